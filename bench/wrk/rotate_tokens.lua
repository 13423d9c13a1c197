-- wrk script: rotate the users' JWTs over the requests, report a machine-readable summary.
--
--   wrk -t1 -c50 -d15s -s bench/wrk/rotate_tokens.lua http://127.0.0.1:8000/api/v1/reconciliation/status/ -- tokens.txt
--   wrk -t1 -c50 -d15s -s bench/wrk/rotate_tokens.lua http://127.0.0.1:8000/healthz          (no tokens: no auth)
--
-- tokens.txt holds one access token per line (bench/run_benchmark.py writes it from mint_tokens' JSON).
-- Every request carries the same "Accept: application/json" (a stable page-cache key per user) and the
-- next user's "Authorization: Bearer <token>". Requests are pre-formatted in init(), so the Lua cost per
-- request is one table lookup. No response() callback: wrk then skips parsing bodies, and non-2xx/3xx
-- answers still show up in summary.errors.status.
--
-- done() prints one line "WRK_JSON {...}" (latencies in microseconds) that bench/results.py parses.

local requests = {}
local counter = 0
local threads = {}

function setup(thread)
   thread:set("thread_id", #threads)
   table.insert(threads, thread)
end

function init(args)
   local path = args[1]
   local headers = { ["Accept"] = "application/json" }
   if path ~= nil and path ~= "" then
      for line in io.lines(path) do
         local token = line:gsub("%s+", "")
         if #token > 0 then
            headers["Authorization"] = "Bearer " .. token
            requests[#requests + 1] = wrk.format("GET", nil, headers, nil)
         end
      end
   end
   if #requests == 0 then
      headers["Authorization"] = nil
      requests[1] = wrk.format("GET", nil, headers, nil)
   end
   -- threads start at different users so they do not walk the list in lockstep
   counter = ((thread_id or 0) * 37) % #requests
end

function request()
   counter = counter + 1
   if counter > #requests then
      counter = 1
   end
   return requests[counter]
end

function done(summary, latency, requests_)
   local e = summary.errors
   io.write(string.format(
      'WRK_JSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
      '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
      '"latency_us":{"mean":%.1f,"stdev":%.1f,"p50":%d,"p90":%d,"p95":%d,"p99":%d,"max":%d}}\n',
      summary.requests, summary.duration, summary.bytes,
      e.connect, e.read, e.write, e.status, e.timeout,
      latency.mean, latency.stdev, latency:percentile(50), latency:percentile(90), latency:percentile(95),
      latency:percentile(99), latency.max))
end
