"""Note request and response schemas, from the model's columns."""

from service.api.fields import MultiLine, body_schema, page_of, row_schema
from service.store.notes import NOTES

NoteCreate = body_schema("NoteCreate", NOTES.table, "A new note on an item.", body=MultiLine)
Note = row_schema("Note", NOTES.shape, "A note on an item, owned by the item's owner.")
NotePage = page_of(Note, "notes")
