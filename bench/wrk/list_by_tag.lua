-- GET one page of 20 items with the tag `popular` (10% of the bench owner's items, every
-- 20th id: bench/dataset.py), starting at a random cursor; 20 of them span 400 ids.
function request()
   local cursor = math.random(0, max_id - 400)
   return wrk.format("GET", "/api/v1/items?tag=popular&limit=20&cursor=" .. cursor,
                     next_caller().get)
end
