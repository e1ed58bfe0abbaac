-- Who each request acts for (bench/servers.py, BENCH_CALLERS): the callers take turns,
-- request by request, and each asks only for rows it reaches. BENCH_CALLERS holds one
-- "residue:tag prefix:token" per caller: its ids are those with id % 3 == residue ("*":
-- every id, an admin), its tags <prefix>tag-N, its bearer token ("-": none, auth off).
-- bench/wrk.py prepends this to every script.

function load_callers()
   callers, turn = {}, (thread_id or 1) - 1
   for spec in string.gmatch(os.getenv("BENCH_CALLERS") or "*:a-:-", "%S+") do
      local residue, prefix, token = string.match(spec, "^([^:]+):([^:]+):(.+)$")
      local caller = {residue = tonumber(residue), tag = prefix .. "tag-3", get = {},
                      json = {["Content-Type"] = "application/json"}}
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

-- A random id among those `caller` reaches, from 1 to max_id.
function random_id(caller)
   if caller.residue == nil then
      return math.random(1, max_id)
   end
   local id = 3 * math.random(0, math.floor((max_id - caller.residue) / 3)) + caller.residue
   if id < 1 then id = id + 3 end
   return id
end
