"""/api/v1/items/{item_id}/notes and /api/v1/notes/{note_id}: an item's notes."""

from flask import Response

from service.api import requests
from service.api.fields import PageQuery
from service.api.note_schemas import Note, NoteCreate, NotePage
from service.api.operations import ApiBlueprint
from service.store.notes import NOTES

blueprint = ApiBlueprint("notes", __name__, url_prefix="/api/v1")


@blueprint.operation("GET", "/items/<item_id>/notes", query=PageQuery, response=NotePage)
def list_notes(item_id: str) -> Response:
    """List an item's notes, oldest first, one page at a time."""
    return requests.listed("notes", PageQuery, NOTES.page, item_id=item_id)


@blueprint.operation("POST", "/items/<item_id>/notes", body=NoteCreate, response=Note, status=201)
def create_note(item_id: str) -> requests.Created:
    """Add a note to an item."""
    return requests.create(NOTES, NoteCreate, "notes.get_note", item_id=item_id)


@blueprint.operation("GET", "/notes/<note_id>", response=Note)
def get_note(note_id: str) -> Response:
    """Get one note."""
    return requests.found(NOTES.get, "note_id", note_id)


@blueprint.operation("DELETE", "/notes/<note_id>", response=None, status=204)
def delete_note(note_id: str) -> requests.NoContent:
    """Delete a note."""
    return requests.deleted(NOTES.delete, "note_id", note_id)
