-- Requests for wrk from a file prepared by the harness, one per line:
--   METHOD <TAB> PATH <TAB> AUTHORIZATION (may be empty) <TAB> JSON BODY (may be empty)
--   [<TAB> CLIENT ADDRESS, sent as X-Forwarded-For (may be empty)]
-- Environment: BENCH_REQUESTS (the file), BENCH_THREADS (wrk -t), BENCH_ONCE=1 to send each
-- line once and stop (single-use codes), BENCH_EXPECT (a string every 2xx body must hold).
-- done() prints one JSON line that the harness parses.

local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

local requests, counter, bad = {}, 1, 0
local once = os.getenv("BENCH_ONCE") == "1"
local expect = os.getenv("BENCH_EXPECT") or ""

function init(args)
  local n = tonumber(os.getenv("BENCH_THREADS"))
  local i = 0
  for line in io.lines(os.getenv("BENCH_REQUESTS")) do
    if i % n == id then
      local method, path, auth, body, client =
        line:match("^([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)\t?([^\t]*)$")
      local headers = {}
      if auth ~= "" then headers["Authorization"] = auth end
      if client ~= "" then headers["X-Forwarded-For"] = client end
      if body == "" then body = nil else headers["Content-Type"] = "application/json" end
      table.insert(requests, wrk.format(method, path, headers, body))
    end
    i = i + 1
  end
end

function request()
  if counter > #requests then
    if once then wrk.thread:stop() end
    counter = 1
  end
  local r = requests[counter]
  counter = counter + 1
  return r
end

if expect ~= "" then
  function response(status, headers, body)
    if status < 300 and not string.find(body, expect, 1, true) then
      bad = bad + 1
      wrk.thread:set("bad", bad)
    end
  end
end

function done(summary, latency, requests_)
  local unexpected = 0
  for _, t in ipairs(threads) do unexpected = unexpected + (t:get("bad") or 0) end
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "connect_errors": %d, "read_errors": %d, ' ..
    '"write_errors": %d, "non_2xx": %d, "timeouts": %d, "unexpected_bodies": %d, ' ..
    '"p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    unexpected, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max))
end
