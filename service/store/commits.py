"""Never acknowledge a write PostgreSQL has not confirmed.

Two outcomes leave a write neither done nor undone, as far as the service can know:
- PostgreSQL committed it locally but a synchronous standby never confirmed it: the
  wait was cancelled (by us at DB_DEADLINE_MS, by an administrator, by a shutdown) and
  PostgreSQL reports *success*, with only a WARNING ("canceling wait for synchronous
  replication ... The transaction has already committed locally, but might not have
  been replicated to the standby"), delivered to psycopg's notice handler, not raised.
  One more failure (the primary lost before the standby has it) and the write is gone.
- The connection was lost, or the server ended the session, while the write's statement
  or its COMMIT was running: in autocommit every write statement is its own commit, so
  it may have committed just before the connection went.
Either is answered 503 `commit_unconfirmed` (service/http/errors.py), never 2xx.
"""

from __future__ import annotations

import psycopg
from psycopg.errors import Diagnostic

SYNC_STANDBY = "sync_standby"  # the reasons, as the metric's label has them
CONNECTION_LOST = "connection_lost"
DEADLINE = "deadline"
REASONS = (SYNC_STANDBY, CONNECTION_LOST, DEADLINE)

# The server ended the session while a statement ran: whether it had committed is unknown.
SESSION_ENDED = frozenset({"57P01", "57P02"})  # admin_shutdown, crash_shutdown

MESSAGE = (
    "The write may or may not have been applied: the database did not confirm its commit "
    "(a standby did not acknowledge it, or the connection was lost). Read the resource back "
    "(or list it) to see whether it was, before you send the write again."
)


class CommitUnconfirmedError(Exception):
    """A write whose commit PostgreSQL did not confirm; `reason` is one of the above."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"commit not confirmed ({reason})")
        self.reason = reason


def unconfirmed_by_standby(diag: Diagnostic) -> bool:
    """The notice PostgreSQL sends when it stops waiting for a synchronous standby after
    committing locally. Matched on the source file (syncrep.c, the same in every locale
    and through PgBouncer) or, should a future server move it, the English message."""
    if diag.severity_nonlocalized != "WARNING":
        return False
    return diag.source_file == "syncrep.c" or "synchronous replication" in (
        diag.message_primary or ""
    )


def outcome_unknown(exc: psycopg.Error, connection_lost: bool) -> bool:
    """Whether a write that failed with `exc` may nevertheless have committed."""
    return connection_lost or exc.sqlstate in SESSION_ENDED
