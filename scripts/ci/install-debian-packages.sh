#!/usr/bin/env bash
# Debian packages the test suite needs on a bare Debian 12 CI machine. Idempotent:
# apt-get skips what is already installed, so re-running costs one index refresh.
#   postgresql  the server the service, migration and image tests run against
#   pgbouncer   the transaction pooler the failover tests run the service through
#               (tests/reliability/test_failover.py, test_pooler.py)
#   docker.io   the engine (and Debian's BuildKit-capable client) for the image tests
#   debootstrap builds the local base image (no registry is reachable)
#   wrk         the load generator of `make bench` / `make bench-image`
#   prometheus  promtool (alert rule unit tests) and the server the dashboard test scrapes with
#   curl        readiness polling in scripts and benchmarks
#   docker-registry, skopeo  a real OCI registry (distribution 2.8) for the release tests
#               (tests/release/) and the tool `make release` reads digests and labels with
#   make, git, python3-venv  `make test` itself: the Makefile, image tags from the git
#               revision, and the .venv it creates (a bare Debian has none of them)
set -euo pipefail

packages=(postgresql pgbouncer docker.io debootstrap wrk prometheus curl docker-registry skopeo ca-certificates
          tar make git python3-venv)

if [[ $(id -u) -ne 0 ]]; then
    echo "install-debian-packages.sh: must run as root (it calls apt-get install)" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
echo "install-debian-packages.sh: installed or already present: ${packages[*]}" >&2
