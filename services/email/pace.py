"""One sending rate for the whole installation: every worker process on every host takes a
slot from the same budget before it hands a message to SMTP.

The budget is a GCRA-style schedule (the next free slot, `tat`) kept where every sender can
reach it: in Redis when the broker is Redis (one Lua script per slot, atomic, on Redis's
clock, so hosts need not agree on the time), else in a file under TWOFA_HOME guarded by an
`flock` (the embedded default runs on one host). Nothing is held while a message is sent: a
worker killed mid-send leaves at most the slots it reserved unused, never a lock, and never
a reason to send anything again.

Rate (`TWOFA_SMTP_MAX_RATE`, messages per second): unset means no pacing until the relay
says otherwise. A `421`/`451` answer *cuts* the shared rate (×0.7, or, with no rate yet, to
the rate at which this process saw messages accepted lately, if any, growing fast from that
guess until the next cut), pauses every sender (0.5 s; doubling up to 30 s while nothing
gets through between cuts), and each slot granted afterwards raises the rate again by 10% a
second, up to the configured limit (AIMD). With no limit a cut is forgotten after
CUT_MEMORY seconds without another.

Transactional mail (`priority=True`) takes the next slot of its own schedule and pushes the
bulk schedule back by one slot: it goes ahead of invitations and reminders while the total
stays within the rate.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any, Protocol

from services.config import Settings, get_settings

log = logging.getLogger(__name__)

BETA = 0.7  # a cut keeps this share of the rate
GROWTH = 0.1  # the rate grows by this share per second of granted slots
SLOW_START_GROWTH = 1.0  # ... and this much until the second cut, when it began as a guess
MIN_RATE = 0.5
BASE_BACKOFF, MAX_BACKOFF = 0.5, 30.0
CUT_MEMORY = 120.0  # with no limit set, a cut this old no longer paces anyone
PEEK_EVERY = 0.25  # with no rate in force, how often a process looks at the shared state


def take(state: dict[str, float], now: float, max_rate: float, priority: bool
         ) -> tuple[float, int]:
    """Reserve the next slot in `state` (changed in place): (seconds to wait for it, the
    number of cuts so far, which the send hands back to `cut` if it is refused).

    `rate` in the state is a cut in force (0: none, so the configured limit, 0 = unlimited).
    """
    rate = _rate_in_force(state, now, max_rate)
    start = max(now, state.get("pause_until", 0.0))
    cuts = int(state.get("cuts", 0))
    if rate <= 0:
        return start - now, cuts
    interval = 1.0 / rate
    tat = min(state.get("tat", 0.0), now + 3600)  # a clock set back must not stall us
    if priority:
        slot = max(start, state.get("ptat", 0.0))
        state["ptat"] = slot + interval
        state["tat"] = max(tat, start) + interval
    else:
        slot = max(start, tat)
        state["tat"] = slot + interval
    cut = state.get("rate", 0.0)
    if cut > 0:
        growth = SLOW_START_GROWTH if state.get("slow_start", 0.0) else GROWTH
        cut += max(MIN_RATE, growth * cut) * interval
        state["rate"] = 0.0 if 0 < max_rate <= cut else cut
    return slot - now, cuts


def cut(state: dict[str, float], now: float, seen: float, max_rate: float, cuts: int,
        stuck: bool) -> float:
    """A relay refused a send granted after `cuts` cuts: lower the rate and pause (unless a
    cut came since: the refusals of sends in flight at a cut count once); seconds until
    sending resumes. `stuck`: nothing went through since the last cut, so the last pause
    was too short and this one doubles."""
    if int(state.get("cuts", 0)) != cuts:
        return max(0.0, state.get("pause_until", 0.0) - now)
    current = _rate_in_force(state, now, max_rate)
    if current > 0:
        state.update(rate=max(MIN_RATE, current * BETA), slow_start=0.0)
    elif seen > 0:  # no rate yet: start from what went through lately, and grow fast
        state.update(rate=seen, slow_start=1.0)
    # else nothing went through yet: no rate to start from, the pause alone slows us down
    backoff = state.get("backoff", 0.0)
    backoff = min(2 * backoff, MAX_BACKOFF) if stuck and backoff else BASE_BACKOFF
    state.update(last_cut=now, backoff=backoff, pause_until=now + backoff, cuts=cuts + 1)
    return backoff


def _rate_in_force(state: dict[str, float], now: float, max_rate: float) -> float:
    rate = state.get("rate", 0.0)
    if rate > 0 and max_rate <= 0 and now - state.get("last_cut", 0.0) > CUT_MEMORY:
        state["rate"] = rate = 0.0
    if rate <= 0:
        return max_rate
    return min(rate, max_rate) if max_rate > 0 else rate


class Store(Protocol):
    def take(self, max_rate: float, priority: bool) -> tuple[float, int]: ...
    def cut(self, seen: float, max_rate: float, cuts: int, stuck: bool) -> float: ...
    def paced(self, max_rate: float) -> tuple[bool, float, int]:
        """(whether a rate is in force, seconds of pause left, cuts so far)."""
        ...


class FileStore:
    """The state as JSON in a file, changed under an exclusive flock (one host)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)

    def _change(self, change: Any) -> Any:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # released by the kernel if this process dies
            raw = os.pread(fd, 4096, 0)
            try:
                state = {k: float(v) for k, v in json.loads(raw).items()} if raw else {}
            except ValueError:
                state = {}
            before = dict(state)
            result = change(state, time.time())
            if state != before:
                data = json.dumps(state).encode()
                os.pwrite(fd, data, 0)
                os.ftruncate(fd, len(data))
            return result
        finally:
            os.close(fd)  # closing drops the flock

    def take(self, max_rate: float, priority: bool) -> tuple[float, int]:
        wait, cuts = self._change(lambda s, now: take(s, now, max_rate, priority))
        return float(wait), int(cuts)

    def cut(self, seen: float, max_rate: float, cuts: int, stuck: bool) -> float:
        return float(self._change(lambda s, now: cut(s, now, seen, max_rate, cuts, stuck)))

    def paced(self, max_rate: float) -> tuple[bool, float, int]:
        def look(s: dict[str, float], now: float) -> tuple[bool, float, int]:
            return (_rate_in_force(s, now, max_rate) > 0,
                    max(0.0, s.get("pause_until", 0.0) - now), int(s.get("cuts", 0)))
        active, pause, cuts = self._change(look)
        return bool(active), float(pause), int(cuts)


# The same functions as take(), cut() and paced() above, in Lua, run by Redis atomically.
_LUA_PRELUDE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local raw = redis.call('HGETALL', KEYS[1])
local s = {}
for i = 1, #raw, 2 do s[raw[i]] = tonumber(raw[i + 1]) end
local function get(k) return s[k] or 0 end
local max_rate = tonumber(ARGV[1])
local function in_force()
  local rate = get('rate')
  if rate > 0 and max_rate <= 0 and now - get('last_cut') > %(memory)s then
    s['rate'] = 0; rate = 0
  end
  if rate <= 0 then return max_rate end
  if max_rate > 0 then return math.min(rate, max_rate) end
  return rate
end
local function save()
  local out = {}
  for k, v in pairs(s) do out[#out + 1] = k; out[#out + 1] = string.format('%%.6f', v) end
  redis.call('HSET', KEYS[1], unpack(out))
  redis.call('EXPIRE', KEYS[1], 3600)
end
"""

_LUA_TAKE = _LUA_PRELUDE + """
local priority = ARGV[2] == '1'
local rate = in_force()
local start = math.max(now, get('pause_until'))
local cuts = get('cuts')
if rate <= 0 then return {string.format('%%.6f', start - now), cuts} end
local interval = 1.0 / rate
local tat = math.min(get('tat'), now + 3600)
local slot
if priority then
  slot = math.max(start, get('ptat'))
  s['ptat'] = slot + interval
  s['tat'] = math.max(tat, start) + interval
else
  slot = math.max(start, tat)
  s['tat'] = slot + interval
end
local cut = get('rate')
if cut > 0 then
  local growth = %(growth)s
  if get('slow_start') > 0 then growth = %(slow_start_growth)s end
  cut = cut + math.max(%(min_rate)s, growth * cut) * interval
  if max_rate > 0 and cut >= max_rate then cut = 0 end
  s['rate'] = cut
end
save()
return {string.format('%%.6f', slot - now), cuts}
"""

_LUA_CUT = _LUA_PRELUDE + """
local seen = tonumber(ARGV[2])
if get('cuts') ~= tonumber(ARGV[3]) then
  return string.format('%%.6f', math.max(0, get('pause_until') - now))
end
local current = in_force()
if current > 0 then s['rate'] = math.max(%(min_rate)s, current * %(beta)s); s['slow_start'] = 0
elseif seen > 0 then s['rate'] = seen; s['slow_start'] = 1 end
local backoff = get('backoff')
if ARGV[4] == '1' and backoff > 0 then backoff = math.min(2 * backoff, %(max_backoff)s)
else backoff = %(base)s end
s['last_cut'] = now; s['backoff'] = backoff; s['pause_until'] = now + backoff
s['cuts'] = get('cuts') + 1
save()
return string.format('%%.6f', backoff)
"""

_LUA_PACED = _LUA_PRELUDE + """
return {in_force() > 0 and 1 or 0, string.format('%%.6f', math.max(0, get('pause_until') - now)),
        get('cuts')}
"""

_CONSTANTS = {"memory": CUT_MEMORY, "min_rate": MIN_RATE, "growth": GROWTH,
              "slow_start_growth": SLOW_START_GROWTH, "beta": BETA, "base": BASE_BACKOFF,
              "max_backoff": MAX_BACKOFF}


class RedisStore:
    """The state as a Redis hash, changed by Lua scripts (atomic, on Redis's clock)."""

    def __init__(self, url: str, key: str) -> None:
        import redis

        self.key = key
        self.client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        self._take = self.client.register_script(_LUA_TAKE % _CONSTANTS)
        self._cut = self.client.register_script(_LUA_CUT % _CONSTANTS)
        self._paced = self.client.register_script(_LUA_PACED % _CONSTANTS)

    def take(self, max_rate: float, priority: bool) -> tuple[float, int]:
        wait, cuts = self._take(keys=[self.key], args=[max_rate, int(priority)])
        return float(wait), int(cuts)

    def cut(self, seen: float, max_rate: float, cuts: int, stuck: bool) -> float:
        return float(self._cut(keys=[self.key], args=[max_rate, seen, cuts, int(stuck)]))

    def paced(self, max_rate: float) -> tuple[bool, float, int]:
        active, pause, cuts = self._paced(keys=[self.key], args=[max_rate])
        return bool(int(active)), float(pause), int(cuts)


class Pace:
    """This process's handle on the shared rate; thread-safe (a batch's connections share it).

    `acquire` returns a token (the cuts seen when the slot was granted) that a refused send
    hands to `throttled`.
    """

    def __init__(self, store: Store, max_rate: float | None) -> None:
        self.store = store
        self.max_rate = max_rate or 0.0
        self._lock = threading.Lock()
        self._accepted: deque[float] = deque()  # this process's accepted sends, last second
        self._sending_since = 0.0  # its first accepted send
        # Accepted sends by the token they were granted with (the cuts seen then): a
        # refusal's pause doubles only if nothing granted since the cut before went through.
        self._accepted_by_token: dict[int, int] = {}
        # With no limit: until when the shared state needs no look (no rate, no pause), and
        # the cuts it had then.
        self._unpaced_until, self._cuts = 0.0, 0
        self._refusals = 0  # refusals this process saw: a look begun before one is stale

    def acquire(self, priority: bool = False) -> int:
        """Wait for this send's slot (a bulk send, or transactional with `priority`)."""
        try:
            if self.max_rate <= 0:
                if time.monotonic() < self._unpaced_until:
                    return self._cuts
                with self._lock:
                    refusals = self._refusals
                active, pause, cuts = self.store.paced(0.0)
                if not active:
                    with self._lock:
                        # Not if a refusal came while this looked: the look may predate its
                        # pause, and another connection would send a refused item again in
                        # it (three refusals within one pause defer the item).
                        if pause <= 0 and self._refusals == refusals:
                            self._unpaced_until, self._cuts = \
                                time.monotonic() + PEEK_EVERY, cuts
                    time.sleep(pause)
                    return cuts
            wait, cuts = self.store.take(self.max_rate, priority)
        except Exception as exc:  # the shared state is out of reach: pace this process alone
            log.warning("the shared SMTP rate is unavailable (%s); pacing this process alone",
                        exc)
            wait, cuts = (1.0 / self.max_rate if self.max_rate > 0 else 0.0), -1
        if wait > 0:
            time.sleep(wait)
        return cuts

    def accepted(self, token: int) -> None:
        """The relay accepted a send granted with `token` (what `acquire` returned)."""
        now = time.monotonic()
        with self._lock:
            self._accepted.append(now)
            self._accepted_by_token[token] = self._accepted_by_token.get(token, 0) + 1
            for old in [t for t in self._accepted_by_token if t < token - 1]:
                del self._accepted_by_token[old]
            self._sending_since = self._sending_since or now
            while self._accepted and self._accepted[0] < now - 1.0:
                self._accepted.popleft()

    def throttled(self, cuts: int) -> float:
        """The relay answered 421/451 to a send granted with token `cuts`: cut the shared
        rate (once per burst); seconds until sending resumes."""
        now = time.monotonic()
        with self._lock:
            # This process's accepted sends a second, over the last second or since it began.
            window = max(0.25, min(1.0, now - self._sending_since)) if self._sending_since \
                else 1.0
            seen = sum(1 for t in self._accepted if t >= now - 1.0) / window
            # Stuck: nothing granted since the cut before this one went through, so the last
            # pause was too short. Not "nothing since the last cut": after a pause a refusal
            # (answered at MAIL or RCPT) comes before a send of the same moment is accepted
            # (after DATA), and a relay that lets one through per pause saw its pause double
            # to MAX_BACKOFF.
            stuck = not (self._accepted_by_token.get(cuts, 0)
                         or self._accepted_by_token.get(cuts - 1, 0))
            self._unpaced_until = 0.0
        try:
            return self.store.cut(seen, self.max_rate, cuts, stuck)
        except Exception as exc:
            log.warning("the shared SMTP rate is unavailable (%s)", exc)
            time.sleep(BASE_BACKOFF)
            return BASE_BACKOFF
        finally:
            with self._lock:  # the pause is stored: looks begun before it are stale
                self._refusals += 1
                self._unpaced_until = 0.0


def store_for(settings: Settings) -> Store:
    """Redis when the broker is Redis (shared by every host), else a file under TWOFA_HOME."""
    url = settings.resolved_broker_url
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisStore(url, f"{settings.queue}:smtp-pace")
    return FileStore(settings.home_dir / "smtp-pace.json")


_pace: tuple[int, str, Pace] | None = None
_pace_lock = threading.Lock()


def get_pace() -> Pace:
    """The process's Pace, made again after a fork or when the settings changed (tests)."""
    global _pace
    settings = get_settings()
    ident = f"{settings.resolved_broker_url}|{settings.queue}|{settings.home_dir}|" \
            f"{settings.smtp_max_rate}"
    with _pace_lock:
        if _pace is None or _pace[0] != os.getpid() or _pace[1] != ident:
            _pace = (os.getpid(), ident, Pace(store_for(settings), settings.smtp_max_rate))
        return _pace[2]
