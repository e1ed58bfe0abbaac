-- GET the first page of the items with the tag `rare` (ten items, spread over the ids:
-- bench/dataset.py): one page holds them all.
function request()
   return wrk.format("GET", "/api/v1/items?tag=rare", next_caller().get)
end
