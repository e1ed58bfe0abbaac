-- GET one page of 20 of the caller's items, starting at a random cursor (keyset
-- pagination); an owner's 20 span about 60 ids.
function request()
   local caller = next_caller()
   local cursor = math.random(0, max_id - 60)
   return wrk.format("GET", "/api/v1/items?limit=20&cursor=" .. cursor, caller.get)
end
