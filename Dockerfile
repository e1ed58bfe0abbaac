# The service image. Targets:
#   runtime (default, last stage)  production: gunicorn as PID 1, UID 10001, read-only root
#   dev                            Flask dev server + reloader, /app writable for file sync
#
# Build (BuildKit required: `DOCKER_BUILDKIT=1` with docker 20.10; `make image` does this):
#   docker build --target runtime -t service:$(git rev-parse --short HEAD) .
# Behind a TLS-intercepting proxy, hand pip the proxy's CA as a secret; it is mounted only
# for the one RUN that downloads and never lands in a layer:
#   docker build --secret id=ca,src=/etc/ssl/certs/ca-certificates.crt ...
#
# BASE_IMAGE is any Debian-family image with python3 (3.11+) and its venv module on PATH:
# the official python:*-slim images (python3 in /usr/local/bin) and plain Debian with
# python3-venv (python3 in /usr/bin) both work, because everything after the venv is
# created runs /opt/venv/bin/python, whichever interpreter it points at.
ARG BASE_IMAGE=python:3.12-slim-bookworm

# ---------------------------------------------------------------------------------------
FROM ${BASE_IMAGE} AS python-base

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONFAULTHANDLER=1 \
    PATH=/opt/venv/bin:$PATH

# ---------------------------------------------------------------------------------------
# Dependencies only: this layer depends on requirements.lock alone, so a code change
# never reinstalls them.
FROM python-base AS dependencies

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_INPUT=1 \
    PIP_ROOT_USER_ACTION=ignore

# binutils only for `strip`: SQLAlchemy's compiled extensions ship ~8 MB of debug info
# that production never reads. This stage is discarded, so the tool never reaches runtime.
# DL3008 (unpinned apt package): a pin breaks on every Debian point release of the base,
# and this builder-only tool never ships.
# hadolint ignore=DL3008
RUN apt-get update -qq \
    && apt-get install -y -qq --no-install-recommends binutils >/dev/null \
    && rm -rf /var/lib/apt/lists/*

COPY requirements.lock /tmp/requirements.lock

# --require-hashes: every file is checked against the lock. --only-binary: no sdist can
#   pull in a compiler or run a build script. --no-deps: nothing outside the lock.
# pip and setuptools are removed afterwards: the runtime installs nothing.
# --strip-debug drops only debug sections; symbols and code are untouched.
# pip byte-compiles what it installs, so the dependencies start from .pyc files too.
# The cache mount keeps downloads across builds (a lock change fetches only what changed)
#   without putting them in the image.
# /app.pth puts the code directory on the venv's sys.path, so `python -m service` and the
#   gunicorn workers find it whatever the working directory is.
RUN --mount=type=secret,id=ca \
    --mount=type=cache,target=/root/.cache/pip,sharing=locked \
    set -eu; \
    if [ -s /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca; fi; \
    python3 -m venv /opt/venv; \
    /opt/venv/bin/python -m pip install --quiet --require-hashes --only-binary=:all: \
        --no-deps -r /tmp/requirements.lock; \
    /opt/venv/bin/python -m pip uninstall --quiet --yes pip setuptools; \
    site_packages=$(/opt/venv/bin/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))'); \
    echo /app > "$site_packages/app.pth"; \
    find /opt/venv -name '*.so*' -type f -exec strip --strip-debug {} +

# ---------------------------------------------------------------------------------------
# The code, byte-compiled here so a read-only root filesystem costs nothing at start.
# The .pyc files record the sources' mtimes, which COPY --from preserves.
FROM python-base AS code

WORKDIR /app
COPY alembic.ini ./
COPY migrations ./migrations
COPY service ./service
RUN python3 -m compileall -q -j 0 /app/service /app/migrations

# ---------------------------------------------------------------------------------------
# What both final targets share: the account and the virtualenv.
FROM python-base AS app-base

# No login shell and no home: the account exists only to own processes.
# /run/metrics is a scratch directory like /tmp (1777, root-owned) rather than the app's:
# Docker gives a `--tmpfs` the mode of the directory it covers but not its owner, and any
# UID an orchestrator picks (OpenShift's arbitrary UIDs) can write it too.
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin app \
    && install -d -m 1777 /run/metrics

COPY --from=dependencies /opt/venv /opt/venv

ENV PORT=8000 \
    PROMETHEUS_MULTIPROC_DIR=/run/metrics

WORKDIR /app
EXPOSE 8000
ENTRYPOINT ["/opt/venv/bin/python", "-m", "service"]

# ---------------------------------------------------------------------------------------
# Development: the same interpreter and dependencies as production (the dev server and its
# reloader are Flask's and Werkzeug's, already in the runtime lock; test and lint tools
# run on the host, not here), plus the code owned by the app user so `skaffold dev` file
# sync (tar) and bind mounts can replace files, which the reloader picks up.
FROM app-base AS dev

COPY --from=code --chown=10001:10001 /app /app
RUN chown 10001:10001 /app && command -v tar >/dev/null

ENV APP_ENV=dev
USER 10001:10001
CMD ["dev"]

ARG BASE_IMAGE
ARG SOURCE_URL=""
ARG VERSION="0.1.0"
ARG REVISION=""
# Last, so a new revision changes only the image config, never a cached layer.
LABEL org.opencontainers.image.title="service-dev" \
      org.opencontainers.image.description="Reference Flask + gunicorn + PostgreSQL service for Kubernetes (development server)" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.base.name="${BASE_IMAGE}" \
      org.opencontainers.image.source="${SOURCE_URL}" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"

# ---------------------------------------------------------------------------------------
# Production (the default target): code owned by root, read-only to the app user.
FROM app-base AS runtime

COPY --from=code /app /app

# Official python images ship the standard library without .pyc files. Importing what a
# start imports (serve and migrate), with writing bytecode allowed, compiles exactly those
# modules into the image (a few MB; nothing on bases that ship them) so no process compiles
# at start on a read-only root; the OpenTelemetry modules too, which only a pod with
# tracing on imports. It doubles as a smoke test: code that cannot import fails
# the build. The placeholder URLs (database, issuer) are never contacted: keys are fetched
# on the first request that needs them, never at import.
# Werkzeug's interactive debugger is a remote code-execution console; the production image
# does not contain it, so no combination of DEBUG, APP_ENV and command can turn it on
# (`dev` refuses to start without it). Nothing else imports it: gunicorn serves, not
# Werkzeug's dev server.
RUN rm -r /opt/venv/lib/python3*/site-packages/werkzeug/debug \
    && metrics_dir=$(mktemp -d) \
    && PYTHONDONTWRITEBYTECODE='' PROMETHEUS_MULTIPROC_DIR="$metrics_dir" \
        DATABASE_URL=postgresql://build:unused@127.0.0.1:9/build \
        AUTH_ISSUER=https://build.invalid AUTH_AUDIENCE=build \
        python -c 'import gunicorn.app.wsgiapp, gunicorn.workers.sync, gunicorn.workers.gthread, alembic.command, service.__main__, service.runtime.gunicorn_conf, service.wsgi, service.telemetry.span_drops, opentelemetry.exporter.otlp.proto.http.trace_exporter, opentelemetry.instrumentation.wsgi, opentelemetry.instrumentation.psycopg' \
    && rm -rf "$metrics_dir"

USER 10001:10001
CMD ["serve"]

ARG BASE_IMAGE
ARG SOURCE_URL=""
ARG VERSION="0.1.0"
ARG REVISION=""
# Last, so a new revision changes only the image config, never a cached layer.
LABEL org.opencontainers.image.title="service" \
      org.opencontainers.image.description="Reference Flask + gunicorn + PostgreSQL service for Kubernetes" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.base.name="${BASE_IMAGE}" \
      org.opencontainers.image.source="${SOURCE_URL}" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
