-- GET one page of 20, starting at a random cursor (keyset pagination).
function request()
   local cursor = math.random(0, max_id - 20)
   return wrk.format("GET", "/api/v1/items?limit=20&cursor=" .. cursor, get_headers)
end
