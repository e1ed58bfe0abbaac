-- GET one page of 20 of the items the caller reaches, starting at a random cursor (keyset
-- pagination): a page anywhere in the table, half of them deeper than the middle (5M
-- rows deep at 10M); 20 span about 40 ids of the bench owner's, 100 of owner-1's, 20 of
-- the admin's (every row).
function request()
   local caller = next_caller()
   local cursor = math.random(0, max_id - 100)
   return wrk.format("GET", "/api/v1/items?limit=20&cursor=" .. cursor, caller.get)
end
