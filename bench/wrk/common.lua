-- Shared by every scenario (bench/wrk.py prepends it to the scenario's script).
-- Each wrk thread gets its own id and random seed; `done` prints one JSON line that
-- bench/wrk.py reads back (latencies in microseconds).

local thread_count = 0

function setup(thread)
   thread_count = thread_count + 1
   thread:set("thread_id", thread_count)
end

-- Arguments after `--` on the wrk command line: a run nonce, and the seeded items and
-- tags (bench/dataset.py).
function init(args)
   run_nonce = args[1] or "run"
   max_id = tonumber(args[2] or "100000")
   tag_count = tonumber(args[3] or "1000")
   local seed = 0
   for i = 1, #run_nonce do
      seed = (seed * 31 + string.byte(run_nonce, i)) % 2147483647
   end
   math.randomseed(seed + (thread_id or 1) * 7919)
   sequence = 0
   -- The service runs with access control on: every API request carries the bearer
   -- token of the caller whose turn it is (callers.lua).
   load_callers()
   if scenario_init then scenario_init() end
end

-- A name no other request of any run has used: a 409 would count as a failure.
function unique_name()
   sequence = sequence + 1
   return string.format("bench-%s-%d-%d", run_nonce, thread_id or 1, sequence)
end

function post_item_request()
   local body = string.format('{"name":"%s","description":"created by the load benchmark"}',
                              unique_name())
   return wrk.format("POST", "/api/v1/items", next_caller().json, body)
end

function get_item_request()
   local caller = next_caller()
   return wrk.format("GET", "/api/v1/items/" .. random_id(caller), caller.get)
end

-- A new item with five distinct tags of its caller's.
function post_item_tags_request()
   local caller = next_caller()
   local names, seen = {}, {}
   while #names < 5 do
      local name = random_tag_name(caller)
      if not seen[name] then
         seen[name] = true
         names[#names + 1] = '"' .. name .. '"'
      end
   end
   local body = string.format(
      '{"name":"%s","description":"created by the load benchmark","tags":[%s]}',
      unique_name(), table.concat(names, ","))
   return wrk.format("POST", "/api/v1/items", caller.json, body)
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      'BENCH_RESULT {"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,' ..
      '"status":%d,"timeout":%d,"p50_us":%d,"p90_us":%d,"p95_us":%d,"p99_us":%d,' ..
      '"max_us":%d,"mean_us":%.1f}\n',
      summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
      latency:percentile(50), latency:percentile(90), latency:percentile(95),
      latency:percentile(99), latency.max, latency.mean))
end
