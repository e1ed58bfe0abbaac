-- 90% GET one item by random id, 10% POST a new item.
function request()
   if math.random() < 0.9 then
      return get_item_request()
   end
   return post_item_request()
end
