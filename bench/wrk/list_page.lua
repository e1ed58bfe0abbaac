-- GET one page of 20, starting at a random cursor (keyset pagination): a page anywhere in
-- the table, half of them deeper than the middle (5M rows deep at 10M).
function request()
   local cursor = math.random(0, max_id - 20)
   return wrk.format("GET", "/api/v1/items?limit=20&cursor=" .. cursor, get_headers)
end
