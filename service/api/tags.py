"""/api/v1/tags: create, list, get and delete tags (deleting one unlinks it from its items)."""

from __future__ import annotations

from flask import Response

from service.api import requests
from service.api.fields import PageQuery
from service.api.operations import ApiBlueprint
from service.api.tag_schemas import Tag, TagCreate, TagPage
from service.store.tags import TAGS
from service.store.tags import delete_tag as delete_tag_rows

blueprint = ApiBlueprint("tags", __name__, url_prefix="/api/v1/tags")
ACCEPTED = (
    "Deleted, but carried by more items than one request may change (TAG_DELETE_BATCH), "
    "or linked to an item by a write that ran alongside: the tag is gone at once (404, "
    "absent from lists, an unknown name for `?tag=` and for item writes, its name still "
    "taken), and a background sweeper removes it from its items in batches; until it "
    "has, those items may still list its name."
)


@blueprint.operation("GET", "", query=PageQuery, response=TagPage)
def list_tags() -> Response:
    """List tags, oldest first, one page at a time."""
    return requests.listed("tags", PageQuery, TAGS.page)


@blueprint.operation(
    "POST", "", body=TagCreate, response=Tag, status=201,
    errors={409: "You have a tag with this name."},
)  # fmt: skip
def create_tag() -> requests.Created:
    """Create a tag."""
    return requests.create(TAGS, TagCreate, "tags.get_tag")


@blueprint.operation("GET", "/<tag_id>", response=Tag)
def get_tag(tag_id: str) -> Response:
    """Get one tag."""
    return requests.found(TAGS.get, "tag_id", tag_id)


@blueprint.operation(
    "DELETE", "/<tag_id>", response=None, status=204,
    also={202: ACCEPTED},
)  # fmt: skip
def delete_tag(tag_id: str) -> requests.NoContent:
    """Delete a tag, and with it its links to items."""
    number = requests.path_id(tag_id, "tag_id")
    db = requests.db()
    batch = db.settings.tag_delete_batch
    deletion = db.write(delete_tag_rows, requests.scope(), number, batch=batch)
    if deletion is None:
        raise requests.not_found("tag_id", number)
    if deletion.done:
        return "", 204
    db.tag_sweeper.wake()
    return "", 202
