-- GET one page of 20 items with the caller's tag-3 (10% of an owner's items:
-- bench/servers.py), starting at a random cursor; 20 of them span about 600 ids.
function request()
   local caller = next_caller()
   local cursor = math.random(0, max_id - 600)
   local path = "/api/v1/items?tag=" .. caller.tag .. "&limit=20&cursor=" .. cursor
   return wrk.format("GET", path, caller.get)
end
