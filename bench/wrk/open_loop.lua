-- GET one item by random id at a fixed rate, whatever the server does (open loop).
-- Run with as many wrk threads as connections: each thread then owns one connection and
-- one schedule, so its request and response hooks pair up. Request k of a connection is
-- due at start + k * interval; its latency is measured from that due time, not from when
-- it was sent, so a stalled server is charged for every request it held up (the
-- "coordinated omission" a plain closed-loop client hides). This is wrk2's method; wrk2
-- itself is not packaged by Debian. Arguments: nonce, seeded items, total rate (req/s).
-- Besides the summary it writes every latency (BENCH_LATENCIES), so that a percentile can
-- be taken over several runs pooled (bench/collector.py).

local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clock_id, bench_timespec *tp);
]]
local CLOCK_MONOTONIC = 1
local timespec = ffi.new("bench_timespec")

local function now_us()
   ffi.C.clock_gettime(CLOCK_MONOTONIC, timespec)
   return tonumber(timespec.tv_sec) * 1e6 + tonumber(timespec.tv_nsec) / 1e3
end

local threads = {}

function setup(thread)
   table.insert(threads, thread)
   thread:set("thread_id", #threads)
end

function init(args)
   max_id = tonumber(args[2] or "100000")
   local rate = tonumber(args[3])
   local nthreads = tonumber(args[4])
   math.randomseed(thread_id * 7919 + #(args[1] or ""))
   interval_us = nthreads * 1e6 / rate
   -- Spread the connections' schedules evenly over one interval.
   next_due = now_us() + interval_us * (thread_id - 1) / nthreads
   latencies, non_2xx = {}, 0
   load_callers()  -- callers.lua, as in common.lua
end

function delay()
   due = next_due
   next_due = next_due + interval_us
   local wait_ms = (due - now_us()) / 1000
   return wait_ms > 0 and wait_ms or 0
end

function request()
   local caller = next_caller()
   return wrk.format("GET", "/api/v1/items/" .. random_id(caller), caller.get)
end

function response(status, headers, body)
   table.insert(latencies, now_us() - due)
   if status < 200 or status > 299 then
      non_2xx = non_2xx + 1
   end
end

function done(summary, latency, requests)
   local all, failed = {}, 0
   for _, thread in ipairs(threads) do
      for _, value in ipairs(thread:get("latencies")) do
         table.insert(all, value)
      end
      failed = failed + thread:get("non_2xx")
   end
   table.sort(all)
   local whole = {}
   for i, value in ipairs(all) do whole[i] = string.format("%d", value) end
   io.write("BENCH_LATENCIES " .. table.concat(whole, ",") .. "\n")
   local function pct(p)
      if #all == 0 then return 0 end
      return all[math.min(#all, math.floor(#all * p / 100) + 1)]
   end
   local e = summary.errors
   io.write(string.format(
      'BENCH_RESULT {"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,' ..
      '"status":%d,"timeout":%d,"p50_us":%d,"p90_us":%d,"p95_us":%d,"p99_us":%d,' ..
      '"max_us":%d,"mean_us":0}\n',
      #all, summary.duration, e.connect, e.read, e.write, failed, e.timeout,
      pct(50), pct(90), pct(95), pct(99), all[#all] or 0))
end
