"""Each new database connection reads the current DATABASE_URL_FILE, so a password
rotation needs no restart: the Secret's new value reaches the mounted file (the kubelet
syncs it within a minute or so) and every connection opened after that uses it."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy import make_url

from service.config import ConfigError, normalise_database_url, read_secret

log = logging.getLogger(__name__)


def reread_on_connect(path: str) -> Callable[..., None]:
    """An engine `do_connect` listener: the connect arguments from the file as it is now.

    Connecting is rare (a pooled connection lives up to 30 minutes), so reading a small
    file then costs nothing a request would notice.
    """

    def do_connect(dialect: Any, _record: Any, _cargs: Any, cparams: dict[str, Any]) -> None:
        try:
            url = normalise_database_url(
                read_secret({"DATABASE_URL_FILE": path}, "DATABASE_URL") or ""
            )
        except ConfigError as exc:  # e.g. mid-rotation: the file briefly missing
            log.warning("connecting with the database URL read before: %s", exc)
            return
        _, current = dialect.create_connect_args(make_url(url))
        cparams.update(current)

    return do_connect
