-- POST a new item (a name unique across threads, runs and rounds) with five of its
-- caller's own tags, picked at random.
request = post_item_tags_request
