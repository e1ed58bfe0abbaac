-- Who each request acts for (bench/servers.py, BENCH_CALLERS): the callers take turns,
-- request by request, and each asks only for rows it reaches. BENCH_CALLERS holds one
-- "slots:tag slots:popular:rare:token" per caller: its rows are those whose slot,
-- (id - 1) % 10, is one of the digits `slots` (bench/dataset.py gives each slot an
-- owner), the tags it posts those of `tag slots`, `popular` and `rare` the tags its ?tag=
-- pages ask for, its bearer token ("-": none, auth off). bench/wrk.py prepends this to
-- every script.

local function digits(text)
   local list = {}
   for digit in string.gmatch(text, "%d") do
      table.insert(list, tonumber(digit))
   end
   return list
end

function load_callers()
   callers, turn = {}, (thread_id or 1) - 1
   local specs = os.getenv("BENCH_CALLERS") or "01234:01234:popular:rare:-"
   for spec in string.gmatch(specs, "%S+") do
      local slots, tag_slots, popular, rare, token =
         string.match(spec, "^(%d+):(%d+):([^:]+):([^:]+):(.+)$")
      local caller = {slots = digits(slots), tag_slots = digits(tag_slots), popular = popular,
                      rare = rare, get = {}, json = {["Content-Type"] = "application/json"}}
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

-- A random id among those `caller` reaches, from 1 to max_id: the k-th of them (from 0)
-- is 10 * (k // n) + slots[k % n] + 1, for n slots.
function random_id(caller)
   local n = #caller.slots
   local k = math.random(0, math.floor(max_id / 10) * n - 1)
   return 10 * math.floor(k / n) + caller.slots[k % n + 1] + 1
end

-- A tag of `caller`'s own other than the named ones: id 10q + s + 1 for one of its tag
-- slots s, q in 1 .. tags/10 - 1 (bench/dataset.py names it tag-<id>).
function random_tag_name(caller)
   local q = math.random(1, math.floor(tag_count / 10) - 1)
   return "tag-" .. (10 * q + caller.tag_slots[math.random(1, #caller.tag_slots)] + 1)
end
