-- wrk script of bench/run.py: POSTs a JSON body and prints one machine-readable result line.
--
-- Environment:
--   BENCH_BODY          file holding the request body (required)
--   BENCH_BODY_ALT      optional second body file: requests then alternate between the two
--   BENCH_KEYS          optional comma-separated bearer keys: each request carries the next
--                       one in turn (`Authorization: Bearer <key>`), cycling with the bodies
--   BENCH_MAX_REQUESTS  optional: end the test after this many responses (exact with -t1)
--   BENCH_EXPECT_START  optional: every response body must start with this text...
--   BENCH_EXPECT_HAS    ...and contain this one (e.g. a stream's last event); each that does
--                       not is counted as `unexpected` (wrk then parses every body: the same
--                       cost for every load that sets them)
--
-- done() prints `BENCH_RESULT {json}` with the request count, duration, latency percentiles
-- (microseconds) and wrk's error counters; `status` is wrk's "Non-2xx or 3xx responses",
-- `unexpected` the bodies that failed BENCH_EXPECT_* (0 without them).

local function slurp(path)
  local file = assert(io.open(path, "rb"))
  local data = file:read("*a")
  file:close()
  return data
end

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = slurp(assert(os.getenv("BENCH_BODY"), "BENCH_BODY is not set"))

local bodies = { wrk.body }
local alt = os.getenv("BENCH_BODY_ALT")
if alt then
  bodies[2] = slurp(alt)
end
local keys = {}
for key in string.gmatch(os.getenv("BENCH_KEYS") or "", "[^,]+") do
  keys[#keys + 1] = key
end

if #bodies > 1 or #keys > 0 then
  local prepared
  local sent = 0
  -- Formatted in init(): wrk sets the Host header just before calling it. Every (body, key)
  -- pair is one prepared request; request() cycles through them, so with two keys and one
  -- body the keys alternate request by request.
  function init(args)
    prepared = {}
    for _, body in ipairs(bodies) do
      if #keys == 0 then
        prepared[#prepared + 1] = wrk.format(nil, nil, nil, body)
      end
      for _, key in ipairs(keys) do
        -- wrk.format uses the headers given instead of wrk.headers: copy them
        local headers = {}
        for name, value in pairs(wrk.headers) do
          headers[name] = value
        end
        headers["Authorization"] = "Bearer " .. key
        prepared[#prepared + 1] = wrk.format(nil, nil, headers, body)
      end
    end
  end
  function request()
    sent = sent + 1
    return prepared[sent % #prepared + 1]
  end
end

local max_requests = tonumber(os.getenv("BENCH_MAX_REQUESTS") or "")
local expect_start = os.getenv("BENCH_EXPECT_START")
local expect_has = os.getenv("BENCH_EXPECT_HAS")
-- a global of each thread's environment, read from done() through thread:get
unexpected = 0

local function expected(body)
  return (expect_start == nil or body:sub(1, #expect_start) == expect_start)
    and (expect_has == nil or body:find(expect_has, 1, true) ~= nil)
end

if max_requests or expect_start or expect_has then
  local seen = 0
  function response(status, headers, body)
    if not expected(body) then
      unexpected = unexpected + 1
    end
    seen = seen + 1
    if seen == max_requests then
      -- Stopping the thread alone would leave wrk sleeping out -d; SIGINT ends the test now,
      -- with the summary and done() as usual. $PPID of the shell is wrk; not os.execute,
      -- whose system() ignores SIGINT while it waits.
      wrk.thread:stop()
      io.popen("kill -INT $PPID"):close()
    end
  end
end

local threads = {}

function setup(thread)
  threads[#threads + 1] = thread
end

function done(summary, latency, requests)
  local errors = summary.errors
  local wrong = 0
  for _, thread in ipairs(threads) do
    wrong = wrong + thread:get("unexpected")
  end
  io.write(string.format(
    'BENCH_RESULT {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, '
      .. '"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d, '
      .. '"unexpected": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    errors.connect, errors.read, errors.write, errors.status, errors.timeout, wrong))
end
