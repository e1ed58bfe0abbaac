"""Migrations connect straight to the primary, never through a connection pooler.

`migrate` serialises itself with a session-level advisory lock and runs each revision in
a transaction on the session that holds it (migrations/env.py). Through a transaction
pooler (PgBouncer, CloudNativePG's Pooler) consecutive transactions may run on different
server sessions: the lock would be held by a server connection the pooler hands to other
clients, or released by a session that never took it, and two migrators could run at
once. So the migration refuses a pooled connection, with a message saying what to use.

A pooler cannot tie a client to one server session, so it gives the client a process id
of its own in the startup handshake (its BackendKeyData, used to route cancel requests);
the server's `pg_backend_pid()` then differs. A direct connection reports the same
number both ways.
"""

from __future__ import annotations

from sqlalchemy import Connection, text

from service.config import ConfigError

READ_WRITE = {"target_session_attrs": "read-write"}  # libpq: only a writable primary


def refuse_a_pooler(connection: Connection) -> None:
    raw = connection.connection.driver_connection
    handshake_pid = getattr(getattr(raw, "info", None), "backend_pid", None)
    server_pid = connection.execute(text("SELECT pg_backend_pid()")).scalar_one()
    if handshake_pid != server_pid:
        raise ConfigError(
            "migrations must connect directly to the primary, not through a connection pooler "
            f"(the handshake named process {handshake_pid}, the server runs this session as "
            f"{server_pid}: a pooler such as PgBouncer is in between). They hold a "
            "session-level advisory lock, which transaction pooling breaks. Point the "
            "migration's DATABASE_URL (the chart's migration.existingSecret) at the "
            "database's read-write address (CloudNativePG: the <cluster>-rw Service, as in "
            "<cluster>-app), not at the Pooler."
        )
