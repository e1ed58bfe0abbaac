"""Note request and response schemas."""

from typing import Annotated

from pydantic import Field

from service.api.fields import MultiLine, Strict, page_of, row_schema
from service.store.models import NOTE_MAX
from service.store.notes import NOTES


class NoteCreate(Strict):
    """The body of POST /api/v1/items/{item_id}/notes."""

    body: Annotated[MultiLine, Field(min_length=1, max_length=NOTE_MAX, description="The text.")]


Note = row_schema("Note", NOTES.shape, "A note on an item, owned by the item's owner.")
NotePage = page_of(Note, "notes")
