"""The time that enforcement reads: grace periods, reminders and exemptions.

In production this is the wall clock. Tests of behaviour that spans hours or days move it
forward instead of sleeping: `TWOFA_TEST_CLOCK_FILE` names a file holding an offset in
seconds that every process (API, workers, relay) adds to the wall clock, so one write moves
them all. Production refuses the setting (services/config.py). Sessions, leases, throttles
and event times keep the real clock: only what the enforcement lifecycle decides moves.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from services.config import get_settings

_cache: tuple[Path | None, tuple[int, int, int], timedelta] = (None, (0, 0, 0), timedelta(0))


def now() -> datetime:
    path = get_settings().test_clock_file
    if path is None:
        return datetime.now(UTC)
    return datetime.now(UTC) + _offset(path)


def _offset(path: Path) -> timedelta:
    """The file's offset, re-read only when the file changed (a stat per call)."""
    global _cache
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return timedelta(0)
    stamp = (info.st_ino, info.st_mtime_ns, info.st_size)  # set_offset makes a new file
    cached_path, cached_stamp, offset = _cache
    if cached_path != path or cached_stamp != stamp:
        text = path.read_text().strip()
        offset = timedelta(seconds=float(text or 0))
        _cache = (path, stamp, offset)
    return offset


def set_offset(path: Path, offset: timedelta) -> None:
    """Move every process reading `path` to wall clock + `offset` (tests only)."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(str(offset.total_seconds()))
    os.replace(tmp, path)  # atomic: a reader never sees half a number
