-- GET one item by a random id among the seeded rows.
request = get_item_request
