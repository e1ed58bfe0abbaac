-- GET one page of 20 items with tag-3 (10% of the seeded items: bench/servers.py),
-- starting at a random cursor; 20 of them span about 200 ids.
function request()
   local cursor = math.random(0, max_id - 200)
   return wrk.format("GET", "/api/v1/items?tag=tag-3&limit=20&cursor=" .. cursor, get_headers)
end
