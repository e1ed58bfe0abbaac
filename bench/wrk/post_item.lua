-- POST a new item with a name unique across threads, runs and rounds.
request = post_item_request
