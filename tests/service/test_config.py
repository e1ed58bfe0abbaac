"""Settings from the environment: defaults, every error names the variable, secrets stay secret."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import make_url

from service.config import AuthSettings, ConfigError, DatabaseSettings, Settings

URL = "postgresql://app:s3cret-pw@db.example:5432/app?sslmode=verify-full"


# Production-like settings need an issuer (tests/auth/test_auth_settings.py checks that).
AUTH = {"AUTH_ISSUER": "https://login.example.com/", "AUTH_AUDIENCE": "items-api"}


def settings(**env: str) -> Settings:
    return Settings.from_env({"DATABASE_URL": URL, **AUTH, **env})


def error_for(**env: str) -> str:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({**AUTH, **env})
    return str(caught.value)


def test_defaults_are_safe() -> None:
    s = settings()
    assert s.app_env == "prod" and s.debug is False and s.port == 8000
    assert (
        s.database_url
        == "postgresql+psycopg://app:s3cret-pw@db.example:5432/app?sslmode=verify-full"
    )


def test_values_are_parsed_into_types() -> None:
    s = settings(APP_ENV="Staging", PORT="9000", DEBUG="false", LOG_LEVEL="debug",
                 DB_POOL_TIMEOUT="2.5", METRICS_ENABLED="no", GUNICORN_THREADS="4")  # fmt: skip
    assert (s.app_env, s.port, s.log_level) == ("staging", 9000, "DEBUG")
    assert s.db_pool_timeout == 2.5 and s.metrics_enabled is False and s.gunicorn_threads == 4


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({"PORT": "http"}, "PORT"),
        ({"PORT": "70000"}, "PORT"),
        ({"GUNICORN_WORKERS": "0"}, "GUNICORN_WORKERS"),
        ({"DB_POOL_TIMEOUT": "nan"}, "DB_POOL_TIMEOUT"),
        ({"DEBUG": "maybe"}, "DEBUG"),
        ({"APP_ENV": "production"}, "APP_ENV"),
        ({"LOG_LEVEL": "LOUD"}, "LOG_LEVEL"),
        ({"MAX_BODY_BYTES": "10"}, "MAX_BODY_BYTES"),
    ],
)
def test_malformed_value_names_the_variable_and_the_form(env: dict[str, str], names: str) -> None:
    message = error_for(DATABASE_URL=URL, **env)
    assert message.startswith(names) and "expected" in message


def test_missing_database_url_says_how_to_fix() -> None:
    message = error_for()
    assert "DATABASE_URL is not set" in message and "postgresql://" in message


@pytest.mark.parametrize(
    "url",
    [
        "mysql://app:s3cret-pw@db/app",
        "postgresql://app:s3cret-pw@db:port/app",
        "postgresql://app:s3cret-pw@db:5432/",
        "not a url s3cret-pw",
    ],
)
def test_malformed_database_url_is_refused_without_echoing_it(url: str) -> None:
    message = error_for(DATABASE_URL=url)
    assert message.startswith("DATABASE_URL") and "s3cret-pw" not in message


def test_database_url_from_file(tmp_path: Path) -> None:
    secret = tmp_path / "url"
    secret.write_text(URL + "\n")
    s = Settings.from_env({"DATABASE_URL_FILE": str(secret), **AUTH})
    assert s.database_url.endswith("@db.example:5432/app?sslmode=verify-full")


@pytest.mark.parametrize("app_env", ["staging", "prod"])
@pytest.mark.parametrize("query", ["", "?sslmode=prefer", "?sslmode=disable", "?sslmode=allow"])
def test_staging_and_prod_refuse_a_database_url_that_may_be_unencrypted(
    app_env: str, query: str
) -> None:
    url = f"postgresql://app:s3cret-pw@db.example:5432/app{query}"
    message = error_for(DATABASE_URL=url, APP_ENV=app_env)
    mode = query.rpartition("=")[2] or "prefer"
    assert message.startswith(f"DATABASE_URL has sslmode={mode} with APP_ENV={app_env}")
    assert "sslmode=verify-full" in message and "DB_ALLOW_PLAINTEXT=true" in message
    assert "s3cret" not in message
    assert Settings.from_env(
        {"DATABASE_URL": url, "APP_ENV": app_env, "DB_ALLOW_PLAINTEXT": "true"}
    )


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://app:pw@db.example/app?sslmode=require",
        "postgresql://app:pw@db.example/app?sslmode=verify-ca",
        "postgresql://app:pw@db.example/app?sslmode=verify-full&sslrootcert=/ca.crt",
        "postgresql://app:pw@127.0.0.1:5432/app",  # loopback: never on the network
        "postgresql://app:pw@localhost/app?sslmode=disable",
        "postgresql://app:pw@/app?host=/run/postgresql",  # a Unix socket
    ],
)
def test_encrypted_or_local_database_urls_are_accepted_in_prod(url: str) -> None:
    assert Settings.from_env({"DATABASE_URL": url, "APP_ENV": "prod"}).app_env == "prod"


def test_dev_accepts_a_plaintext_database_url() -> None:
    assert settings(DATABASE_URL="postgresql://a:b@db/app", APP_ENV="dev").app_env == "dev"


def test_database_url_file_problems_are_clear(tmp_path: Path) -> None:
    assert "cannot be read" in error_for(DATABASE_URL_FILE=str(tmp_path / "missing"))
    (tmp_path / "empty").write_text("\n")
    assert "is empty" in error_for(DATABASE_URL_FILE=str(tmp_path / "empty"))
    both = error_for(DATABASE_URL=URL, DATABASE_URL_FILE=str(tmp_path / "empty"))
    assert "both set" in both


@pytest.mark.parametrize("app_env", ["staging", "prod"])
def test_debug_is_refused_outside_dev(app_env: str) -> None:
    message = error_for(DATABASE_URL=URL, APP_ENV=app_env, DEBUG="true")
    assert "DEBUG=true is refused" in message
    assert settings(APP_ENV="dev", DEBUG="true").debug is True


def test_repr_hides_the_password() -> None:
    assert "s3cret-pw" not in repr(settings())


def test_env_example_documents_every_setting() -> None:
    example = (Path(__file__).parents[2] / ".env.example").read_text()
    documented = {line.split("=")[0].lstrip("# ") for line in example.splitlines() if "=" in line}
    names = [f.upper() for f in Settings.__dataclass_fields__
             if f not in ("auth", "database", "tracing")]  # fmt: skip
    names += [f"AUTH_{f.upper()}" for f in AuthSettings.__dataclass_fields__]
    names += [f"DATABASE_{f.upper()}" for f in DatabaseSettings.__dataclass_fields__]
    names += ["OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_TRACES_SAMPLER", "OTEL_SERVICE_NAME"]
    for name in names:
        assert name in documented, f"{name} missing from .env.example"


def test_pool_follows_threads_and_may_not_starve_them() -> None:
    assert settings().db_pool_size == 1
    assert settings(GUNICORN_THREADS="4").db_pool_size == 4
    assert settings(GUNICORN_THREADS="4", DB_POOL_SIZE="2", DB_MAX_OVERFLOW="2").db_pool_size == 2
    message = error_for(DATABASE_URL=URL, GUNICORN_THREADS="4", DB_POOL_SIZE="2")
    assert message.startswith("DB_POOL_SIZE (2) + DB_MAX_OVERFLOW (0)") and "at least 4" in message


def test_metrics_directory_must_be_writable(tmp_path: Path) -> None:
    assert settings(PROMETHEUS_MULTIPROC_DIR=str(tmp_path)).prometheus_multiproc_dir == str(
        tmp_path
    )
    message = error_for(DATABASE_URL=URL, PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "missing"))
    assert message.startswith("PROMETHEUS_MULTIPROC_DIR=") and "not a writable directory" in message


def test_the_deadline_defaults_to_a_second_past_the_statement_timeout() -> None:
    assert settings().db_deadline_ms == 6000  # statement timeout + 1 s, within + 2 s
    assert settings(DB_STATEMENT_TIMEOUT_MS="2000").db_deadline_ms == 3000
    assert settings(DB_STATEMENT_TIMEOUT_MS="0").db_deadline_ms == 6000
    assert settings(DB_DEADLINE_MS="8000").db_deadline_ms == 8000


@pytest.mark.parametrize(
    ("env", "start", "advice"),
    [
        # The statement timeout would never fire: every slow query would cost a connection.
        ({"DB_DEADLINE_MS": "5000"}, "DB_DEADLINE_MS (5000) must be above DB_STATEMENT_TIMEOUT_MS",
         "Set DB_DEADLINE_MS to 6000 or more"),
        # gunicorn would kill the worker (and every request it holds) before the deadline.
        ({"DB_DEADLINE_MS": "29500"}, "DB_DEADLINE_MS (29500) must end a request at least 1 s "
         "before GUNICORN_TIMEOUT (30 s)", "raise GUNICORN_TIMEOUT"),
        ({"DB_STATEMENT_TIMEOUT_MS": "60000"}, "DB_DEADLINE_MS (61000)", "lower DB_DEADLINE_MS"),
    ],
)  # fmt: skip
def test_a_deadline_that_cannot_bound_requests_is_refused(
    env: dict[str, str], start: str, advice: str
) -> None:
    message = error_for(DATABASE_URL=URL, **env)
    assert message.startswith(start) and advice in message
    settings(**{**env, "GUNICORN_TIMEOUT": "90", "DB_DEADLINE_MS": "62000"})  # room for it: fine


# -- the database by its parts, and TLS settings for either form ---------------------------


@pytest.fixture
def credentials(tmp_path: Path) -> dict[str, str]:
    """A basic-auth Secret as the chart mounts it: `username` and `password` files."""
    (tmp_path / "username").write_text("app_service")
    (tmp_path / "password").write_text("p@ss/w:rd 1\n")
    (tmp_path / "ca.crt").write_text("-----BEGIN CERTIFICATE-----\n")
    return {
        "DATABASE_HOST": "app-db-pooler-rw",
        "DATABASE_NAME": "app",
        "DATABASE_USER_FILE": str(tmp_path / "username"),
        "DATABASE_PASSWORD_FILE": str(tmp_path / "password"),
        "DATABASE_SSLMODE": "verify-full",
        "DATABASE_SSLROOTCERT": str(tmp_path / "ca.crt"),
    }


def test_the_database_by_its_parts_is_one_url_with_tls(credentials: dict[str, str]) -> None:
    s = Settings.from_env({**AUTH, **credentials})
    url = make_url(s.database_url)
    assert (url.drivername, url.username, url.password) == ("postgresql+psycopg", "app_service",
                                                            "p@ss/w:rd 1")  # fmt: skip
    assert (url.host, url.port, url.database) == ("app-db-pooler-rw", 5432, "app")
    assert url.query == {"sslmode": "verify-full",
                         "sslrootcert": credentials["DATABASE_SSLROOTCERT"]}  # fmt: skip
    assert s.rereads_database_credentials
    assert "p@ss" not in repr(s)


def test_a_url_as_cloudnative_pg_writes_it_gets_the_tls_settings(tmp_path: Path) -> None:
    """`<cluster>-app`'s `uri`: plain postgresql://, the password escaped as Go's
    url.UserPassword does, the -rw Service by `<name>.<namespace>`, no sslmode."""
    (tmp_path / "uri").write_text("postgresql://app_migrator:a%2Fb%3Fc@app-db-rw.app:5432/app")
    (tmp_path / "ca.crt").write_text("-----BEGIN CERTIFICATE-----\n")
    s = Settings.from_env({**AUTH, "DATABASE_URL_FILE": str(tmp_path / "uri"),
                           "DATABASE_SSLMODE": "verify-full",
                           "DATABASE_SSLROOTCERT": str(tmp_path / "ca.crt")})  # fmt: skip
    assert s.app_env == "prod"
    assert s.database_url.startswith(
        "postgresql+psycopg://app_migrator:a%2Fb%3Fc@app-db-rw.app:5432/app?sslmode=verify-full&"
    )


def test_prod_refuses_parts_without_tls(credentials: dict[str, str]) -> None:
    del credentials["DATABASE_SSLMODE"], credentials["DATABASE_SSLROOTCERT"]
    message = error_for(**credentials)
    assert message.startswith("DATABASE_HOST has sslmode=prefer with APP_ENV=prod")
    assert "DATABASE_SSLMODE=verify-full" in message and "p@ss" not in message
    assert Settings.from_env({**AUTH, **credentials, "DATABASE_SSLMODE": "require"})


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"DATABASE_URL": URL}, "DATABASE_URL and DATABASE_HOST are both set"),
        ({"DATABASE_HOST": ""}, "DATABASE_NAME is set without DATABASE_HOST"),
        ({"DATABASE_NAME": ""}, "DATABASE_NAME is not set"),
        ({"DATABASE_USER_FILE": ""}, "DATABASE_USER is not set"),
        ({"DATABASE_USER": "app_service"}, "DATABASE_USER and DATABASE_USER_FILE are both set"),
        ({"DATABASE_PASSWORD_FILE": "/nonexistent"}, "DATABASE_PASSWORD_FILE=/nonexistent cannot"),
        ({"DATABASE_PORT": "5432x"}, "DATABASE_PORT='5432x' is invalid: expected a whole number"),
        ({"DATABASE_HOST": "db:5432"}, "DATABASE_HOST='db:5432' is invalid"),
        ({"DATABASE_HOST": "postgresql://db"}, "DATABASE_HOST='postgresql://db' is invalid"),
        ({"DATABASE_SSLMODE": "strict"}, "DATABASE_SSLMODE='strict' is invalid: expected one of"),
        ({"DATABASE_SSLROOTCERT": "/nonexistent"}, "DATABASE_SSLROOTCERT=/nonexistent cannot"),
    ],
)
def test_database_parts_problems_name_the_variable(
    credentials: dict[str, str], change: dict[str, str], expected: str
) -> None:
    message = error_for(**{**credentials, **change})
    assert message.startswith(expected), message
    assert "p@ss" not in message


def test_a_url_and_a_tls_setting_that_disagree_are_refused(tmp_path: Path) -> None:
    message = error_for(DATABASE_URL=URL.replace("verify-full", "require"),
                        DATABASE_SSLMODE="verify-full")  # fmt: skip
    assert message == (
        "DATABASE_URL has sslmode=require but DATABASE_SSLMODE=verify-full: set it in one place."
    )
    assert settings(DATABASE_SSLMODE="verify-full").database_url.endswith("?sslmode=verify-full")


def test_a_new_connection_reads_the_rotated_password(credentials: dict[str, str]) -> None:
    from service.config import current_database_url

    s = Settings.from_env({**AUTH, **credentials})
    Path(credentials["DATABASE_PASSWORD_FILE"]).write_text("rotated")
    assert "app_service:rotated@app-db-pooler-rw" in current_database_url(s)
    assert "app_service:p%40ss" in s.database_url  # what the process started with


def test_without_credential_files_nothing_is_read_again() -> None:
    s = settings()
    assert not s.rereads_database_credentials
    direct = Settings.from_env({**AUTH, "DATABASE_HOST": "db.example", "DATABASE_NAME": "app",
                                "DATABASE_USER": "app", "DATABASE_PASSWORD": "s3cret-pw",
                                "DATABASE_SSLMODE": "require"})  # fmt: skip
    assert direct.database_url == (
        "postgresql+psycopg://app:s3cret-pw@db.example:5432/app?sslmode=require"
    )
    assert not direct.rereads_database_credentials and "s3cret-pw" not in repr(direct)


@pytest.mark.parametrize("role", ["App_RW", "app-rw", "1app", "app_rw; DROP TABLE items", "x" * 64])
def test_the_migration_grant_role_must_be_a_plain_name(role: str) -> None:
    message = error_for(DATABASE_URL=URL, MIGRATION_GRANT_ROLE=role)
    assert message.startswith("MIGRATION_GRANT_ROLE=") and "expected a lower-case" in message
    assert settings(MIGRATION_GRANT_ROLE="app_rw").migration_grant_role == "app_rw"
