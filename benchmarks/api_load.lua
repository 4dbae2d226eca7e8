-- wrk script for benchmarks/api_load.py: replays ready-made raw HTTP requests in turn and
-- prints one JSON line of totals ("RESULT {...}"), so the Python side never parses wrk's text.
--   wrk -t1 -cC -dD -s api_load.lua http://127.0.0.1:PORT -- REQUESTS_FILE MAX_REQUESTS
-- REQUESTS_FILE: "<length>\n" then that many bytes, for each request. MAX_REQUESTS: each
-- run stops after this many responses (and after -d seconds at the latest): the thread
-- interrupts wrk (SIGINT), which ends its timer early and reports as usual. Use -t1.

local ffi = require("ffi")
ffi.cdef [[ int getpid(void); int kill(int pid, int sig); ]]
local SIGINT = 2
local threads = {}

function setup(thread)
   table.insert(threads, thread)
end

function init(args)
   local f = assert(io.open(args[1], "rb"))
   requests = {}
   while true do
      local n = f:read("*l")
      if not n then break end
      table.insert(requests, f:read(tonumber(n)))
   end
   f:close()
   limit = tonumber(args[2])
   statuses = {}
   answered = 0
   index = math.random(#requests)  -- threads start at different places of the mix
end

function request()
   index = index % #requests + 1
   return requests[index]
end

function response(status, headers, body)
   local key = tostring(status)
   statuses[key] = (statuses[key] or 0) + 1
   answered = answered + 1
   if answered == limit then
      ffi.C.kill(ffi.C.getpid(), SIGINT)
   end
end

function done(summary, latency, requests)
   local counts = {}
   for _, thread in ipairs(threads) do
      for status, n in pairs(thread:get("statuses")) do
         counts[status] = (counts[status] or 0) + n
      end
   end
   local parts = {}
   for status, n in pairs(counts) do
      table.insert(parts, string.format('"%s": %d', status, n))
   end
   local e = summary.errors
   io.write(string.format(
      'RESULT {"requests": %d, "duration_s": %.6f, "statuses": {%s}, ' ..
      '"errors": {"connect": %d, "read": %d, "write": %d, "timeout": %d}, ' ..
      '"latency_ms": {"p50": %.3f, "p95": %.3f, "p99": %.3f, "max": %.3f, "mean": %.3f}}\n',
      summary.requests, summary.duration / 1e6, table.concat(parts, ", "),
      e.connect, e.read, e.write, e.timeout,
      latency:percentile(50) / 1e3, latency:percentile(95) / 1e3, latency:percentile(99) / 1e3,
      latency.max / 1e3, latency.mean / 1e3))
end
