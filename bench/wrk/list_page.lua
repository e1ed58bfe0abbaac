-- GET one page of 20 of the caller's items, starting at a random cursor (keyset
-- pagination): a page anywhere in the table, half of them deeper than the middle (5M
-- rows deep at 10M); the bench owner's 20 span about 40 ids.
function request()
   local caller = next_caller()
   local cursor = math.random(0, max_id - 40)
   return wrk.format("GET", "/api/v1/items?limit=20&cursor=" .. cursor, caller.get)
end
