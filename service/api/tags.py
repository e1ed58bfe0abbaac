"""/api/v1/tags: create, list, get and delete tags (deleting one unlinks it from every item)."""

from __future__ import annotations

from flask import Response

from service.api import requests
from service.api.fields import PageQuery
from service.api.operations import ApiBlueprint
from service.api.tag_schemas import Tag, TagCreate, TagPage
from service.store.tags import TAGS

blueprint = ApiBlueprint("tags", __name__, url_prefix="/api/v1/tags")
NO_SUCH_TAG = {404: "No such tag."}


@blueprint.operation("GET", "", query=PageQuery, response=TagPage)
def list_tags() -> Response:
    """List tags, oldest first, one page at a time."""
    return requests.listed("tags", PageQuery, TAGS.page)


@blueprint.operation(
    "POST", "", body=TagCreate, response=Tag, status=201,
    errors={409: "A tag with this name exists."},
)  # fmt: skip
def create_tag() -> tuple[Response, int, dict[str, str]]:
    """Create a tag."""
    row = requests.db().write(TAGS.create, requests.body(TagCreate).model_dump())
    return requests.created(row, "tags.get_tag", tag_id=row["id"])


@blueprint.operation("GET", "/<tag_id>", response=Tag, errors=NO_SUCH_TAG)
def get_tag(tag_id: str) -> Response:
    """Get one tag."""
    return requests.found(TAGS.get, "tag_id", tag_id)


@blueprint.operation("DELETE", "/<tag_id>", response=None, status=204, errors=NO_SUCH_TAG)
def delete_tag(tag_id: str) -> tuple[str, int]:
    """Delete a tag, and with it its links to items."""
    return requests.deleted(TAGS.delete, "tag_id", tag_id)
