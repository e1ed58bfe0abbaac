"""Note queries: an item's notes, a child resource (its parent is in its path)."""

from service.store.items import ITEMS
from service.store.models import Note
from service.store.sql import Resource

NOTES = Resource(Note, creates=("body",), parent=ITEMS)
