"""Each new database connection reads its credentials again (DATABASE_URL_FILE, or
DATABASE_USER_FILE and DATABASE_PASSWORD_FILE), so a password rotation needs no restart:
the Secret's new value reaches the mounted file (the kubelet syncs it within a minute or
so) and every connection opened after that uses it."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy import make_url

from service.config import ConfigError, Settings, current_database_url

log = logging.getLogger(__name__)


def reread_on_connect(settings: Settings) -> Callable[..., None]:
    """An engine `do_connect` listener: the connect arguments from the files as they are now.

    Connecting is rare (a pooled connection lives up to 30 minutes), so reading a small
    file or two then costs nothing a request would notice.
    """

    def do_connect(dialect: Any, _record: Any, _cargs: Any, cparams: dict[str, Any]) -> None:
        try:
            url = current_database_url(settings)
        except ConfigError as exc:  # e.g. mid-rotation: the file briefly missing
            log.warning("connecting with the database credentials read before: %s", exc)
            return
        _, current = dialect.create_connect_args(make_url(url))
        cparams.update(current)

    return do_connect
