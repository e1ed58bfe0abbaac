-- GET one page of 20 items with the caller's popular tag (10% of its owner's items:
-- bench/dataset.py), starting at a random cursor; 20 of them span 400 ids (`popular`,
-- every 20th id) or 1,000 (`popular-1`, every 50th).
function request()
   local caller = next_caller()
   local cursor = math.random(0, max_id - 1000)
   return wrk.format("GET", "/api/v1/items?tag=" .. caller.popular .. "&limit=20&cursor=" ..
                     cursor, caller.get)
end
