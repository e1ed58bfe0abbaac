-- Who each request acts for (bench/servers.py, BENCH_CALLERS): the callers take turns,
-- request by request, and each asks only for rows it reaches. BENCH_CALLERS holds one
-- "slots:token" per caller: its rows are those whose slot, (id - 1) % 10, is one of the
-- digits `slots` (bench/dataset.py gives each slot an owner), its bearer token ("-":
-- none, auth off). bench/wrk.py prepends this to every script.

function load_callers()
   callers, turn = {}, (thread_id or 1) - 1
   for spec in string.gmatch(os.getenv("BENCH_CALLERS") or "01234:-", "%S+") do
      local slots, token = string.match(spec, "^(%d+):(.+)$")
      local caller = {slots = {}, get = {}, json = {["Content-Type"] = "application/json"}}
      for digit in string.gmatch(slots, "%d") do
         table.insert(caller.slots, tonumber(digit))
      end
      if token ~= "-" then
         caller.get["Authorization"] = "Bearer " .. token
         caller.json["Authorization"] = "Bearer " .. token
      end
      table.insert(callers, caller)
   end
end

function next_caller()
   turn = turn % #callers + 1
   return callers[turn]
end

-- A random id among those `caller` owns, from 1 to max_id: the k-th of them (from 0) is
-- 10 * (k // n) + slots[k % n] + 1, for n slots.
function random_id(caller)
   local n = #caller.slots
   local k = math.random(0, math.floor(max_id / 10) * n - 1)
   return 10 * math.floor(k / n) + caller.slots[k % n + 1] + 1
end

-- A tag of `caller`'s other than `popular` and `rare`: id 10q + s + 1 for one of its
-- slots s, q in 1 .. tags/10 - 1 (bench/dataset.py names it tag-<id>).
function random_tag_name(caller)
   local q = math.random(1, math.floor(tag_count / 10) - 1)
   return "tag-" .. (10 * q + caller.slots[math.random(1, #caller.slots)] + 1)
end
