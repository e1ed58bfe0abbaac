"""Who owns a row, and whose rows a request reaches: the rule every statement applies.

Every owned table has an `owner` column (service/store/models.py, `Owned`). A request
acts for one owner, recorded on the rows it creates: the token's `sub` (or the claim
AUTH_OWNER_CLAIM names), or `anonymous` when access control is off. Its Scope says
whose rows it reaches: its own; with auth off, its own and those from before owners
existed; with `items:admin`, everyone's. service/store/sql.py compiles each statement
once per kind of reach, so a query never builds its owner filter by hand.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Any

# Reserved: no token may act as either (service/auth/verify.py answers 401).
ANONYMOUS = "anonymous"  # every request, when access control is off
UNOWNED = "unowned"  # rows from before owners existed, or written by that release since
RESERVED = frozenset({ANONYMOUS, UNOWNED})
OWNER_MAX = 255  # OpenID Connect's limit for `sub`


class Reach(IntEnum):
    """Whose rows a statement may touch (an index into each statement's variants)."""

    OWNER = 0  # owner = %(owner)s: one owner, served by an index that starts with it
    OWNERS = 1  # owner = ANY(%(owners)s): auth off reaches `anonymous` and `unowned`
    EVERY_OWNER = 2  # no filter: `items:admin`


@dataclass(frozen=True, slots=True)
class Scope:
    """One caller's owner (recorded on what it creates) and whose rows it reaches."""

    owner: str
    reach: Reach
    params: dict[str, Any]  # the owner filter's bind parameters; `owner` is always there

    @classmethod
    def of(cls, owner: str) -> Scope:
        """A token's: its own rows."""
        return cls(owner, Reach.OWNER, {"owner": owner})

    @classmethod
    def admin(cls, owner: str) -> Scope:
        """A token with `items:admin`: every owner's rows (it creates its own)."""
        return cls(owner, Reach.EVERY_OWNER, {"owner": owner})

    def listing(self, owner: str | None) -> Scope | None:
        """What a list reaches: all this scope reaches or, with `?owner=`, that owner's
        rows among them (None: none of them, an empty page)."""
        if owner is None:
            return self
        if self.reach is Reach.EVERY_OWNER or owner in self.params.get("owners", (self.owner,)):
            return Scope.of(owner)
        return None


# Access control off: every request is `anonymous`, and reaches the rows from before
# owners existed too, so the data of `make run` stays visible after the upgrade.
ANONYMOUS_SCOPE = Scope(
    ANONYMOUS, Reach.OWNERS, {"owner": ANONYMOUS, "owners": [ANONYMOUS, UNOWNED]}
)


def refusal(owner: str) -> str | None:
    """Why `owner` (a token's owner claim) cannot own rows, or None if it can."""
    if not owner:
        return "names no owner"
    if len(owner) > OWNER_MAX:
        return f"names an owner longer than {OWNER_MAX} characters"
    if owner in RESERVED:
        return f"names the reserved owner `{owner}`"
    # Stored as text (no NUL, no lone surrogates) and shown in JSON and logs: printable only.
    if not owner.isprintable() or not _encodable(owner):
        return "names an owner with unprintable characters"
    return None


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
