"""Settings: the environment (and `<NAME>_FILE` for secrets) parsed once into typed values.

Every problem is reported as one line that names the variable and the expected form;
secrets are never echoed back. The table of variables lives in docs/architecture.md
and .env.example.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, TypeVar, cast
from urllib.parse import parse_qs, urlsplit

AppEnv = Literal["dev", "staging", "prod"]
APP_ENVS: tuple[AppEnv, ...] = ("dev", "staging", "prod")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
POSTGRES_SCHEMES = ("postgresql", "postgres", "postgresql+psycopg")
URL_FORM = "postgresql://USER:PASSWORD@HOST:PORT/DBNAME"
PARTS_FORM = "DATABASE_HOST, DATABASE_NAME and DATABASE_USER (with DATABASE_PASSWORD)"
# libpq's sslmode values, weakest first.
SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
# sslmodes that never send the password or the data in the clear (libpq's).
ENCRYPTED_SSLMODES = ("require", "verify-ca", "verify-full")
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")

T = TypeVar("T")


class ConfigError(ValueError):
    """A setting is missing or malformed; the message is meant for a person."""


# The OpenTelemetry SDK's own variables (service/telemetry/tracing.py). The SDK reads them
# itself; here they are only checked, because the SDK answers a bad value with a warning
# and its default (a misspelt sampler would trace every request).
TRACES_ENDPOINT = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
OTLP_ENDPOINT = "OTEL_EXPORTER_OTLP_ENDPOINT"
SAMPLERS = (
    "always_on",
    "always_off",
    "traceidratio",
    "parentbased_always_on",
    "parentbased_always_off",
    "parentbased_traceidratio",
)
RATIO_SAMPLERS = ("traceidratio", "parentbased_traceidratio")
# The batch span processor's settings, (lowest value, the SDK's default): milliseconds or
# spans. The batch may not exceed the queue (the SDK raises on that, in each worker).
BSP_VARIABLES = {
    "OTEL_BSP_SCHEDULE_DELAY": (1, 5000),
    "OTEL_BSP_EXPORT_TIMEOUT": (0, 30000),
    "OTEL_BSP_MAX_QUEUE_SIZE": (1, 2048),
    "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": (1, 512),
}


@dataclass(frozen=True, slots=True)
class TracingSettings:
    """Traces over OTLP/HTTP: on when an OTLP endpoint is set (and the SDK not disabled)."""

    endpoint: str = ""  # where spans go, as the exporter will resolve it

    @property
    def enabled(self) -> bool:
        return bool(self.endpoint)


@dataclass(frozen=True, slots=True)
class AuthSettings:
    """Bearer-token access control (service/auth/); off when `issuer` is empty."""

    issuer: str = ""
    audience: str = ""
    jwks_url: str = ""
    jwks_file: str = ""
    disabled: bool = False
    owner_claim: str = "sub"  # the claim naming who owns what a token creates

    @property
    def enabled(self) -> bool:
        return bool(self.issuer) and not self.disabled


@dataclass(frozen=True, slots=True)
class DatabaseSettings:
    """DATABASE_*: the database by its parts instead of one DATABASE_URL (a Kubernetes
    basic-auth Secret holds a username and a password, never a URL), and the TLS settings
    that apply to either form. The `*_file` credentials are read again by every new
    connection (service/store/credentials.py), so a rotated password needs no restart."""

    host: str = ""
    port: int = 5432
    name: str = ""
    user: str = ""
    user_file: str = ""
    password: str = field(default="", repr=False)
    password_file: str = ""
    sslmode: str = ""
    sslrootcert: str = ""

    def url_from_parts(self) -> str:
        """postgresql+psycopg://user:password@host:port/name, the credentials as they are now."""
        from sqlalchemy.engine import URL  # only here: `serve` parses settings before gunicorn

        user = _secret(self.user, self.user_file, "DATABASE_USER")
        password = _secret(self.password, self.password_file, "DATABASE_PASSWORD")
        url = URL.create("postgresql+psycopg", username=user, password=password or None,
                         host=self.host, port=self.port, database=self.name)  # fmt: skip
        return url.render_as_string(hide_password=False)

    def with_tls(self, url: str) -> str:
        """The URL with DATABASE_SSLMODE and DATABASE_SSLROOTCERT added: a URL written by
        someone else (CloudNativePG's `<cluster>-app` Secret) names neither."""
        if not self.sslmode and not self.sslrootcert:
            return url
        from sqlalchemy.engine import make_url

        wanted = {"sslmode": ("DATABASE_SSLMODE", self.sslmode),
                  "sslrootcert": ("DATABASE_SSLROOTCERT", self.sslrootcert)}  # fmt: skip
        parsed = make_url(url)
        query = dict(parsed.query)
        for key, (name, value) in wanted.items():
            given = query.get(key)
            if value and given is not None and given != value:
                raise ConfigError(
                    f"DATABASE_URL has {key}={given} but {name}={value}: set it in one place."
                )
            if value:
                query[key] = value
        return parsed.update_query_dict(query).render_as_string(hide_password=False)


@dataclass(frozen=True, slots=True)
class Settings:
    app_env: AppEnv = "prod"
    # The connection URL, from DATABASE_URL or DATABASE_HOST and the rest (DatabaseSettings),
    # with the TLS settings in it. repr=False keeps the password out of any log line or
    # traceback that prints Settings.
    database_url: str = field(default="", repr=False)
    # Re-read by each new connection (service/store/credentials.py): password rotation.
    database_url_file: str | None = None
    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    debug: bool = False
    log_level: str = "INFO"
    port: int = 8000
    gunicorn_workers: int = 2
    gunicorn_threads: int = 1
    gunicorn_timeout: int = 30
    gunicorn_graceful_timeout: int = 20
    gunicorn_keepalive: int = 5
    gunicorn_max_requests: int = 100000
    gunicorn_max_requests_jitter: int = 10000
    db_pool_size: int = 1
    db_max_overflow: int = 0
    db_pool_timeout: float = 5.0
    db_connect_timeout: int = 3
    db_statement_timeout_ms: int = 5000
    # The longest a request waits on the database, however it waits (service/store/deadline.py).
    db_deadline_ms: int = 6000
    db_prepared_statements: bool = True
    db_allow_plaintext: bool = False
    migration_lock_timeout_ms: int = 3000
    migration_lock_attempts: int = 5
    tag_delete_batch: int = 10_000
    tag_sweep_interval_s: float = 30.0
    migration_grant_role: str = ""
    max_body_bytes: int = 65536
    trusted_proxies: int = 0
    metrics_enabled: bool = True
    prometheus_multiproc_dir: str | None = None
    auth: AuthSettings = field(default_factory=AuthSettings)
    tracing: TracingSettings = field(default_factory=TracingSettings)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Parse and validate every setting; raise ConfigError on the first bad one."""
        env = _Env(os.environ if environ is None else environ)
        app_env = cast(AppEnv, env.choice("APP_ENV", APP_ENVS, "prod"))
        threads = env.integer("GUNICORN_THREADS", 1, 1, 64)
        # At most, the deadline's at most less a second (it must stay above the timeout).
        statement_timeout_ms = env.integer("DB_STATEMENT_TIMEOUT_MS", 5000, 0, 3_598_000)
        database = database_settings_from_env(env.environ)
        settings = cls(
            app_env=app_env,
            database_url=build_database_url(read_secret(env.environ, "DATABASE_URL"), database),
            database_url_file=env.environ.get("DATABASE_URL_FILE") or None,
            database=database,
            debug=env.boolean("DEBUG", False),
            log_level=env.choice("LOG_LEVEL", LOG_LEVELS, "INFO", upper=True),
            port=env.integer("PORT", 8000, 1, 65535),
            gunicorn_workers=env.integer("GUNICORN_WORKERS", 2, 1, 64),
            gunicorn_threads=threads,
            gunicorn_timeout=env.integer("GUNICORN_TIMEOUT", 30, 2, 3600),
            gunicorn_graceful_timeout=env.integer("GUNICORN_GRACEFUL_TIMEOUT", 20, 1, 3600),
            gunicorn_keepalive=env.integer("GUNICORN_KEEPALIVE", 5, 0, 3600),
            gunicorn_max_requests=env.integer("GUNICORN_MAX_REQUESTS", 100000, 0, 10**9),
            gunicorn_max_requests_jitter=env.integer(
                "GUNICORN_MAX_REQUESTS_JITTER", 10000, 0, 10**9
            ),
            # A worker serves at most one request per thread, each needing one connection;
            # more would only hold server slots (see the chart's connection budget).
            db_pool_size=env.integer("DB_POOL_SIZE", threads, 1, 100),
            db_max_overflow=env.integer("DB_MAX_OVERFLOW", 0, 0, 100),
            db_pool_timeout=env.number("DB_POOL_TIMEOUT", 5.0, 0.1, 300.0),
            db_connect_timeout=env.integer("DB_CONNECT_TIMEOUT", 3, 1, 300),
            db_statement_timeout_ms=statement_timeout_ms,
            # By default one second past the statement timeout, which ends a slow statement
            # more cheaply (the connection stays): the deadline is for what it cannot end.
            # At most 1 s less than GUNICORN_TIMEOUT's most (refuse_unbounded_requests).
            db_deadline_ms=env.integer(
                "DB_DEADLINE_MS", (statement_timeout_ms or 5000) + 1000, 100, 3_599_000
            ),
            db_prepared_statements=env.boolean("DB_PREPARED_STATEMENTS", True),
            db_allow_plaintext=env.boolean("DB_ALLOW_PLAINTEXT", False),
            migration_lock_timeout_ms=env.integer("MIGRATION_LOCK_TIMEOUT_MS", 3000, 100, 600_000),
            migration_lock_attempts=env.integer("MIGRATION_LOCK_ATTEMPTS", 5, 1, 100),
            tag_delete_batch=env.integer("TAG_DELETE_BATCH", 10_000, 1, 1_000_000),
            tag_sweep_interval_s=env.number("TAG_SWEEP_INTERVAL_S", 30.0, 0.0, 86_400.0),
            migration_grant_role=migration_grant_role_from_env(env.environ),
            max_body_bytes=env.integer("MAX_BODY_BYTES", 65536, 1024, 100 * 1024 * 1024),
            trusted_proxies=env.integer("TRUSTED_PROXIES", 0, 0, 10),
            metrics_enabled=env.boolean("METRICS_ENABLED", True),
            prometheus_multiproc_dir=env.directory("PROMETHEUS_MULTIPROC_DIR"),
            auth=auth_settings_from_env(env.environ),
            tracing=tracing_settings_from_env(env.environ),
        )
        settings.refuse_unsafe()
        return settings

    @property
    def rereads_database_credentials(self) -> bool:
        """Whether a new connection reads its credentials from files (a mounted Secret)."""
        database = self.database
        return bool(self.database_url_file or database.user_file or database.password_file)

    def refuse_anonymous_api(self) -> None:
        """Serving only (the migrator and the schema wait need no tokens): outside dev, /api
        needs an issuer, or an explicit AUTH_DISABLED=true."""
        if not self.auth.issuer and not self.auth.disabled and self.app_env != "dev":
            raise ConfigError(
                f"AUTH_ISSUER is not set with APP_ENV={self.app_env}: set AUTH_ISSUER (the "
                "identity provider's issuer URL) and AUTH_AUDIENCE (this API's audience), or "
                "AUTH_DISABLED=true if a gateway in front already authenticates callers."
            )

    def refuse_unsafe(self) -> None:
        if self.db_pool_size + self.db_max_overflow < self.gunicorn_threads:
            raise ConfigError(
                f"DB_POOL_SIZE ({self.db_pool_size}) + DB_MAX_OVERFLOW ({self.db_max_overflow})"
                f" is less than GUNICORN_THREADS ({self.gunicorn_threads}): threads would queue"
                f" for a connection. Set DB_POOL_SIZE to at least {self.gunicorn_threads}."
            )
        self.refuse_unbounded_requests()
        if self.debug and self.app_env != "dev":
            raise ConfigError(
                f"DEBUG=true is refused with APP_ENV={self.app_env}: the debugger runs "
                "arbitrary code. Unset DEBUG, or use APP_ENV=dev on a developer machine."
            )
        mode = sslmode(self.database_url, self.db_allow_plaintext)
        if self.app_env != "dev" and mode is not None:
            given = "DATABASE_HOST" if self.database.host else "DATABASE_URL"
            raise ConfigError(
                f"{given} has sslmode={mode} with APP_ENV={self.app_env}: the password "
                "and data could cross the network unencrypted. Set DATABASE_SSLMODE="
                "verify-full and DATABASE_SSLROOTCERT=/run/secrets/database-ca/ca.crt (or add "
                "?sslmode=verify-full&sslrootcert=/run/secrets/database-ca/ca.crt to the URL; "
                "the chart's database.caSecret mounts that file), or set "
                "DB_ALLOW_PLAINTEXT=true for a database without TLS inside the cluster."
            )

    def refuse_unbounded_requests(self) -> None:
        """The deadline must end a request before gunicorn kills its worker (with every
        request it holds), and after the statement timeout, which ends a slow statement
        without discarding its connection or tripping the circuit breaker."""
        if self.db_deadline_ms + 1000 > self.gunicorn_timeout * 1000:
            raise ConfigError(
                f"DB_DEADLINE_MS ({self.db_deadline_ms}) must end a request at least 1 s before "
                f"GUNICORN_TIMEOUT ({self.gunicorn_timeout} s) kills its worker: lower "
                "DB_DEADLINE_MS (and DB_STATEMENT_TIMEOUT_MS below it) or raise GUNICORN_TIMEOUT."
            )
        if self.db_statement_timeout_ms and self.db_deadline_ms <= self.db_statement_timeout_ms:
            raise ConfigError(
                f"DB_DEADLINE_MS ({self.db_deadline_ms}) must be above DB_STATEMENT_TIMEOUT_MS "
                f"({self.db_statement_timeout_ms}): the statement timeout ends a slow query and "
                "keeps the connection; the deadline is for waits it cannot end (a commit "
                "waiting for a standby, a server that stopped answering). Set DB_DEADLINE_MS "
                f"to {self.db_statement_timeout_ms + 1000} or more."
            )


def sslmode(url: str, allow_plaintext: bool) -> str | None:
    """The URL's sslmode if it may be unencrypted and that is not allowed, else None.

    A loopback or Unix-socket host never crosses the network (a local database, or a
    sidecar such as a cloud SQL proxy that encrypts itself), so any mode is fine there.
    """
    if allow_plaintext or not url:
        return None
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    host = parts.hostname or (query.get("host") or [""])[0]
    if host in LOOPBACK_HOSTS or host.startswith("/"):
        return None
    mode = (query.get("sslmode") or [os.environ.get("PGSSLMODE", "prefer")])[-1]
    return None if mode in ENCRYPTED_SSLMODES else mode


def auth_settings_from_env(environ: Mapping[str, str]) -> AuthSettings:
    """AUTH_*: an issuer with its audience, an explicit AUTH_DISABLED=true, or neither."""
    env = _Env(environ)
    disabled = env.boolean("AUTH_DISABLED", False)
    issuer = _issuer_url(environ, "AUTH_ISSUER")
    audience = environ.get("AUTH_AUDIENCE", "").strip()
    jwks_url = _issuer_url(environ, "AUTH_JWKS_URL")
    jwks_file = environ.get("AUTH_JWKS_FILE", "").strip()
    owner_claim = _owner_claim(environ)
    if disabled:
        return AuthSettings(disabled=True)
    if not issuer:
        # Anonymous: dev only (Settings.refuse_unsafe), announced at start (service/auth/).
        return AuthSettings()
    if not audience:
        raise ConfigError(
            "AUTH_AUDIENCE is not set: set it to the `aud` value this API accepts in tokens "
            "from AUTH_ISSUER (e.g. the client id or API identifier at the provider)."
        )
    if jwks_file and not os.access(jwks_file, os.R_OK):
        raise ConfigError(
            f"AUTH_JWKS_FILE={jwks_file} cannot be read: point it at the mounted JWKS file "
            "(JSON with a `keys` list), or unset it to fetch keys from the issuer."
        )
    return AuthSettings(issuer, audience, jwks_url, jwks_file, owner_claim=owner_claim)


# Claims every token of an issuer shares (iss, aud), or that differ per token (jti) or
# say something else (times, scopes): as an owner, they would put every caller's rows
# in one heap, or lose them with the next token. Refused rather than silently so.
NOT_OWNER_CLAIMS = frozenset({"iss", "aud", "exp", "nbf", "iat", "jti", "scope", "scp"})


def _owner_claim(environ: Mapping[str, str]) -> str:
    """AUTH_OWNER_CLAIM: the claim naming who owns what a token creates (`sub` if unset)."""
    claim = environ.get("AUTH_OWNER_CLAIM", "").strip() or "sub"
    if not claim.isprintable() or " " in claim or len(claim) > 256:
        raise ConfigError(
            f"AUTH_OWNER_CLAIM={claim!r} is invalid: expected the name of a token claim "
            "(e.g. `sub`, the default, or `tenant_id`), without spaces."
        )
    if claim in NOT_OWNER_CLAIMS:
        raise ConfigError(
            f"AUTH_OWNER_CLAIM={claim} cannot name an owner: it is the same for every token "
            "of the issuer, or new on each token, or not an identity. Name the claim that "
            "identifies a user or tenant (`sub`, the default, or e.g. `tenant_id`)."
        )
    return claim


def tracing_settings_from_env(environ: Mapping[str, str]) -> TracingSettings:
    """OTEL_*: tracing is on with an endpoint; then every variable the SDK reads is checked."""
    env = _Env(environ)
    traces_endpoint = environ.get(TRACES_ENDPOINT, "").strip()
    base_endpoint = environ.get(OTLP_ENDPOINT, "").strip()
    if not (traces_endpoint or base_endpoint):
        return TracingSettings()  # no exporter at all: nothing else is read
    if env.boolean("OTEL_SDK_DISABLED", False):
        return TracingSettings()
    for name, value in ((TRACES_ENDPOINT, traces_endpoint), (OTLP_ENDPOINT, base_endpoint)):
        if value:
            _otlp_url(name, value)
    # As the SDK's exporter resolves it: the traces URL as given, else the base + /v1/traces.
    endpoint = traces_endpoint or base_endpoint.rstrip("/") + "/v1/traces"
    for name in ("OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"):
        protocol = environ.get(name, "").strip()
        if protocol and protocol != "http/protobuf":
            raise ConfigError(
                f"{name}={protocol!r} is not supported: this service exports OTLP over HTTP "
                "with protobuf (port 4318 on a collector). Unset it or set http/protobuf."
            )
    exporter = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter == "none":
        return TracingSettings()
    if exporter not in ("", "otlp"):
        raise ConfigError(
            f"OTEL_TRACES_EXPORTER={exporter!r} is not supported: expected otlp (the default) "
            "or none (no traces)."
        )
    sampler = env.choice("OTEL_TRACES_SAMPLER", SAMPLERS, "parentbased_always_on")
    if sampler in RATIO_SAMPLERS:
        env.number("OTEL_TRACES_SAMPLER_ARG", 1.0, 0.0, 1.0)
    sizes = {name: env.integer(name, default, low, 10**9)
             for name, (low, default) in BSP_VARIABLES.items()}  # fmt: skip
    queue, batch = sizes["OTEL_BSP_MAX_QUEUE_SIZE"], sizes["OTEL_BSP_MAX_EXPORT_BATCH_SIZE"]
    if batch > queue:
        raise ConfigError(
            f"OTEL_BSP_MAX_EXPORT_BATCH_SIZE ({batch}) is larger than OTEL_BSP_MAX_QUEUE_SIZE "
            f"({queue}): a batch is taken from the queue; lower the batch or raise the queue."
        )
    _resource_attributes(environ.get("OTEL_RESOURCE_ATTRIBUTES", ""))
    return TracingSettings(endpoint=endpoint)


def _otlp_url(name: str, url: str) -> None:
    try:
        parts = urlsplit(url)
        host = parts.hostname
        _ = parts.port
    except ValueError:
        host, parts = None, urlsplit("")
    if parts.scheme not in ("http", "https") or not host:
        raise ConfigError(
            f"{name}={url!r} is invalid: expected the collector's OTLP/HTTP URL, e.g. "
            "http://otel-collector.observability:4318 (https:// with TLS)."
        )


def _resource_attributes(raw: str) -> None:
    """`key=value` pairs separated by commas, as the W3C Baggage format writes them."""
    for item in filter(None, (part.strip() for part in raw.split(","))):
        key, sep, _ = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(
                f"OTEL_RESOURCE_ATTRIBUTES has {item!r}: expected key=value pairs "
                "separated by commas, e.g. deployment.environment.name=prod,team=payments."
            )


def _issuer_url(environ: Mapping[str, str], name: str) -> str:
    url = environ.get(name, "").strip()
    if not url:
        return ""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError:
        host, parts = "", urlsplit("")
    if parts.scheme == "https" and host:
        return url
    if parts.scheme == "http" and _is_loopback(host):
        return url
    raise ConfigError(
        f"{name}={url!r} is invalid: expected an https:// URL (plain http:// only on a "
        "loopback address: 127.0.0.0/8, ::1 or localhost)."
    )


def _is_ip_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _is_loopback(host: str) -> bool:
    if host in LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def read_secret(environ: Mapping[str, str], name: str) -> str | None:
    """Value of `name`, or the contents of the file named by `<name>_FILE` (never both)."""
    file_var = f"{name}_FILE"
    direct, path = environ.get(name), environ.get(file_var)
    if direct and path:
        raise ConfigError(f"{name} and {file_var} are both set: set only one of them.")
    if not path:
        return direct or None
    try:
        value = Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(
            f"{file_var}={path} cannot be read ({exc.strerror}): point it at the mounted "
            "secret file."
        ) from None
    if not value:
        raise ConfigError(f"{file_var}={path} is empty: the secret file must hold {name}.")
    return value


def migration_settings_from_env() -> Settings:
    """Settings for `migrate` and Alembic's env.py, which serve no metrics.

    The image sets PROMETHEUS_MULTIPROC_DIR for the server; the migration Job runs the same
    image on a read-only root filesystem with no metrics volume, so the directory is not
    checked here.
    """
    environ = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    return Settings.from_env(environ)


def migration_grant_role_from_env(environ: Mapping[str, str] | None = None) -> str:
    """MIGRATION_GRANT_ROLE alone, for `alembic upgrade --sql`, which checks nothing else."""
    return _Env(os.environ if environ is None else environ).identifier("MIGRATION_GRANT_ROLE")


def database_url_from_env(environ: Mapping[str, str] | None = None) -> str:
    """The database URL from DATABASE_URL (or DATABASE_URL_FILE) or from DATABASE_HOST and
    the rest, checked and normalised to SQLAlchemy's psycopg form.

    Shared by the app and the migrator so both read the database the same way.
    """
    env = os.environ if environ is None else environ
    return build_database_url(read_secret(env, "DATABASE_URL"), database_settings_from_env(env))


def current_database_url(settings: Settings) -> str:
    """The database URL as its files say now (a rotated password), for a new connection."""
    url = None
    if settings.database_url_file:
        url = read_secret({"DATABASE_URL_FILE": settings.database_url_file}, "DATABASE_URL")
    return build_database_url(url, settings.database)


def build_database_url(url: str | None, database: DatabaseSettings) -> str:
    """One URL from either form, with the TLS settings in it."""
    if url is not None and database.host:
        raise ConfigError(
            "DATABASE_URL and DATABASE_HOST are both set: give the database either as one "
            f"URL or as {PARTS_FORM}."
        )
    if url is None and not database.host:
        raise ConfigError(
            f"DATABASE_URL is not set: set it to {URL_FORM} (or DATABASE_URL_FILE to a file "
            f"holding it), or set {PARTS_FORM} (the credentials may be files: "
            "DATABASE_USER_FILE, DATABASE_PASSWORD_FILE). `make run` starts a local "
            "PostgreSQL for you."
        )
    base = normalise_database_url(url) if url is not None else database.url_from_parts()
    return database.with_tls(base)


def database_settings_from_env(environ: Mapping[str, str]) -> DatabaseSettings:
    """DATABASE_HOST and the rest, checked once here; the credential files are read again
    for each new connection."""
    env = _Env(environ)
    host = environ.get("DATABASE_HOST", "").strip()
    parts = [name for name in DATABASE_PARTS if environ.get(name, "").strip()]
    if parts and not host:
        raise ConfigError(
            f"{parts[0]} is set without DATABASE_HOST: set DATABASE_HOST to the database "
            "server's address, or give the whole connection as DATABASE_URL instead."
        )
    database = DatabaseSettings(
        host=host,
        port=env.integer("DATABASE_PORT", 5432, 1, 65535),
        name=environ.get("DATABASE_NAME", "").strip(),
        user=environ.get("DATABASE_USER", "").strip(),
        user_file=environ.get("DATABASE_USER_FILE", "").strip(),
        password=environ.get("DATABASE_PASSWORD", ""),
        password_file=environ.get("DATABASE_PASSWORD_FILE", "").strip(),
        sslmode=env.choice("DATABASE_SSLMODE", SSLMODES, ""),
        sslrootcert=_readable_file(environ, "DATABASE_SSLROOTCERT"),
    )
    if host:
        if not (HOST_NAME.fullmatch(host) or _is_ip_address(host)):
            raise ConfigError(
                f"DATABASE_HOST={host!r} is invalid: expected a host name or an IP address, "
                "without a port (DATABASE_PORT) or a scheme."
            )
        if not database.name:
            raise ConfigError("DATABASE_NAME is not set: name the database to connect to.")
        database.url_from_parts()  # the credentials are there and readable
    return database


DATABASE_PARTS = ("DATABASE_PORT", "DATABASE_NAME", "DATABASE_USER", "DATABASE_USER_FILE",
                  "DATABASE_PASSWORD", "DATABASE_PASSWORD_FILE")  # fmt: skip
# A DNS name (an IP address is checked apart); no port, path or credentials.
HOST_NAME = re.compile(r"[A-Za-z0-9._-]+")


def _secret(value: str, path: str, name: str) -> str:
    secret = read_secret({name: value, f"{name}_FILE": path}, name)
    if secret is None and name == "DATABASE_USER":
        raise ConfigError(
            "DATABASE_USER is not set: with DATABASE_HOST, set DATABASE_USER (or "
            "DATABASE_USER_FILE, e.g. a basic-auth Secret's `username` key mounted as a file)."
        )
    return secret or ""


def _readable_file(environ: Mapping[str, str], name: str) -> str:
    path = environ.get(name, "").strip()
    if path and not os.access(path, os.R_OK):
        raise ConfigError(
            f"{name}={path} cannot be read: point it at the mounted file (the chart mounts "
            "database.caSecret at /run/secrets/database-ca/ca.crt), or unset it."
        )
    return path


def normalise_database_url(url: str) -> str:
    # The value itself may hold a password, so errors describe it without quoting it.
    not_postgres = ConfigError(f"DATABASE_URL is not a PostgreSQL URL: expected {URL_FORM}.")
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises ValueError on a non-numeric or out-of-range port
    except ValueError:
        raise not_postgres from None
    if parts.scheme not in POSTGRES_SCHEMES:
        raise not_postgres
    if not parts.hostname and "host=" not in parts.query:
        raise ConfigError(f"DATABASE_URL has no host: expected {URL_FORM}.")
    if not parts.path.strip("/"):
        raise ConfigError(f"DATABASE_URL names no database: expected {URL_FORM}.")
    return "postgresql+psycopg" + url[len(parts.scheme) :]


@dataclass(frozen=True, slots=True)
class _Env:
    environ: Mapping[str, str]

    def _get(self, name: str, default: T, parse: Callable[[str], T], form: str) -> T:
        raw = self.environ.get(name, "").strip()
        if raw == "":
            return default
        try:
            return parse(raw)
        except ValueError:
            raise ConfigError(f"{name}={raw!r} is invalid: expected {form}.") from None

    def integer(self, name: str, default: int, low: int, high: int) -> int:
        def parse(raw: str) -> int:
            value = int(raw)
            if not low <= value <= high:
                raise ValueError
            return value

        return self._get(name, default, parse, f"a whole number from {low} to {high}")

    def number(self, name: str, default: float, low: float, high: float) -> float:
        def parse(raw: str) -> float:
            value = float(raw)
            if not low <= value <= high:  # also rejects nan
                raise ValueError
            return value

        return self._get(name, default, parse, f"a number from {low} to {high}")

    def boolean(self, name: str, default: bool) -> bool:
        words = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}

        def parse(raw: str) -> bool:
            try:
                return words[raw.lower()]
            except KeyError:
                raise ValueError(raw) from None

        return self._get(name, default, parse, "true or false")

    def directory(self, name: str) -> str | None:
        path = self.environ.get(name, "").strip()
        if path and not (os.path.isdir(path) and os.access(path, os.W_OK | os.X_OK)):
            raise ConfigError(
                f"{name}={path} is not a writable directory: create it (the chart mounts an "
                "emptyDir there) or unset it to keep metrics per process."
            )
        return path or None

    def identifier(self, name: str) -> str:
        """A PostgreSQL role or object name as written unquoted (lower case), or ""."""

        def parse(raw: str) -> str:
            if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", raw):
                raise ValueError
            return raw

        return self._get(name, "", parse, "a lower-case PostgreSQL name (a-z, 0-9, _)")

    def choice(self, name: str, choices: tuple[str, ...], default: str, upper: bool = False) -> str:
        def parse(raw: str) -> str:
            value = raw.upper() if upper else raw.lower()
            if value not in choices:
                raise ValueError
            return value

        return self._get(name, default, parse, "one of " + ", ".join(choices))
