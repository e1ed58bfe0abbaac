"""Which scope a request needs: the one rule both enforcement and the OpenAPI document use."""

from __future__ import annotations

READ = "items:read"
WRITE = "items:write"
# Not a third kind of request: it widens whose rows READ and WRITE reach (service/store/owners.py).
ADMIN = "items:admin"
SCOPES = {
    READ: "read items (every GET under /api)",
    WRITE: "create, change and delete items (POST, PATCH, DELETE under /api)",
    ADMIN: "with those, reach every owner's rows, not only the token's own (lists then "
    "take `?owner=`)",
}
API_PREFIX = "/api"
# Methods that only read; every other method under /api (including ones the API does not
# serve) needs the write scope, so an unexpected method is never less protected.
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def required_scope(method: str, path: str) -> str | None:
    """The scope a `method` on `path` needs, or None when the path is public.

    `method` is the HTTP method in upper case ("GET"); `path` is a request path
    (`/api/v1/items/7`) or a route template (`/api/v1/items/{item_id}`): only its
    prefix matters. Everything under /api needs a token; /livez, /readyz, /metrics
    and /openapi.json do not.
    """
    # Leading slashes merged as the router merges them: `//api/...` is /api too.
    path = "/" + path.lstrip("/")
    if path != API_PREFIX and not path.startswith(API_PREFIX + "/"):
        return None
    return READ if method in READ_METHODS else WRITE
