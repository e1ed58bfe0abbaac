-- GET the first page of the items with the caller's rare tag (ten items, spread over the
-- ids: bench/dataset.py): one page holds them all.
function request()
   local caller = next_caller()
   return wrk.format("GET", "/api/v1/items?tag=" .. caller.rare, caller.get)
end
