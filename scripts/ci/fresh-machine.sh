#!/usr/bin/env bash
# The README's two commands on the machine a newcomer has: Debian 12 with Python 3.11,
# make, git and curl; a non-root user; no PostgreSQL, no Docker, no helm. Nothing else in
# CI looks like that (CI installs everything), so a test that needs an outside tool and
# forgets to skip only breaks here. In a throwaway container built from the local
# debootstrap base (scripts/ci/base-image.sh):
#   1. clone the committed HEAD (a git bundle) as the non-root user,
#   2. `make test` without CI=true (a laptop: missing tools skip, naming their command),
#   3. `make run`, then /readyz, a POST and a GET against it.
# Runs as any user that can reach the Docker engine; the container gets 2 CPUs.
#
#   DOCKER              Docker client (default /usr/bin/docker: BuildKit built in)
#   BASE_IMAGE          the debootstrap base (default: what scripts/ci/base-image.sh prints)
#   FRESH_CA_BUNDLE     CA bundle handed to pip in the container at run time, read-only
#                       (default /etc/ssl/certs/ca-certificates.crt when it exists: on
#                       machines whose TLS is intercepted it holds the proxy's CA)
#   FRESH_CPUS          CPUs of the container (default 2: the budget is 6 min on 2 cores)
#   FRESH_PYTEST_ARGS   extra pytest arguments for the container's `make test`
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
docker_cli=${DOCKER:-/usr/bin/docker}
ca_bundle=${FRESH_CA_BUNDLE-/etc/ssl/certs/ca-certificates.crt}
cpus=${FRESH_CPUS:-2}
user=newcomer

log() { echo "fresh-machine.sh: $*" >&2; }
die() { log "$*"; exit 1; }

"$docker_cli" info >/dev/null 2>&1 ||
    die "no Docker engine answers; start one with: bash scripts/ci/start-docker.sh"
base=${BASE_IMAGE:-$(bash "$root/scripts/ci/base-image.sh")}

[[ $(git -C "$root" rev-parse --is-shallow-repository) == false ]] ||
    die "a shallow clone cannot be cloned again: fetch its history first (git fetch --unshallow; actions/checkout: fetch-depth: 0)"
if [[ -n $(git -C "$root" status --porcelain --untracked-files=no) ]]; then
    log "warning: uncommitted changes are not part of the check (it clones HEAD)"
fi

# The machine, as the issue describes it: the base (Python 3.11 + venv) plus git, make
# and curl, and an unprivileged account. Tagged by the recipe, so a re-run reuses it.
recipe=$(printf '%s\n' "$base" "git make curl python3-venv" "$user" | sha256sum | cut -c1-12)
image=local/fresh-machine:$recipe
if ! "$docker_cli" image inspect "$image" >/dev/null 2>&1; then
    log "building $image from $base"
    DOCKER_BUILDKIT=1 "$docker_cli" build --quiet --network host --tag "$image" - >/dev/null <<EOF
FROM $base
RUN apt-get update -qq \\
 && apt-get install -y -qq --no-install-recommends git make curl python3-venv >/dev/null \\
 && rm -rf /var/lib/apt/lists/* \\
 && useradd --create-home --shell /bin/bash $user
USER $user
WORKDIR /home/$user
EOF
fi

work=$(mktemp -d /tmp/fresh-machine.XXXXXX)
container=fresh-machine-${work##*.}
# The container goes with this script, however it ends (.ci/run stops it on a failure).
cleanup() { "$docker_cli" rm -f "$container" >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT
trap 'exit 143' TERM INT
git -C "$root" bundle create --quiet "$work/repo.bundle" HEAD
chmod 0755 "$work" && chmod 0644 "$work/repo.bundle"

mounts=(--volume "$work/repo.bundle:/src/repo.bundle:ro")
if [[ -n $ca_bundle ]]; then
    [[ -r $ca_bundle ]] || die "FRESH_CA_BUNDLE=$ca_bundle is not readable; point it at a CA bundle or set it empty"
    mounts+=(--volume "$ca_bundle:/run/host-ca.crt:ro" --env PIP_CERT=/run/host-ca.crt)
fi

log "make test and make run in $image (as $user, $cpus CPUs, commit $(git -C "$root" rev-parse --short HEAD))"
# In the background and waited for: a TERM then reaches this script's trap at once.
"$docker_cli" run --rm --init --name "$container" --cpus "$cpus" "${mounts[@]}" \
    --env "PYTEST_ARGS=${FRESH_PYTEST_ARGS:---durations=15}" "$image" bash -euo pipefail -c '
        git -c advice.detachedHead=false clone --quiet /src/repo.bundle app && cd app
        for tool in psql initdb pg_ctl docker helm; do
            ! command -v "$tool" >/dev/null || { echo "fresh-machine: $tool is installed: not a fresh machine"; exit 1; }
        done
        start=$SECONDS
        make venv
        venv_done=$SECONDS
        make test PYTEST_ARGS="$PYTEST_ARGS" 2>&1 | tee test.log
        echo "fresh-machine: make test passed in $((SECONDS - start)) s" \
            "(the .venv from the lock $((venv_done - start)) s, lint and pytest $((SECONDS - venv_done)) s)"
        # Every skip names the command that provides what is missing (pytest -ra lists them).
        if grep "^SKIPPED" test.log | grep -Ev "apt-get install|bash scripts/|make [a-z]|pip install|npm (ci|install)|curl -fsSL https://"; then
            echo "fresh-machine: the skips above do not name the command that provides what they miss"
            exit 1
        fi

        setsid make run >run.log 2>&1 &
        pid=$!
        stop() { kill -TERM -- "-$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }
        trap stop EXIT
        for _ in $(seq 120); do
            curl -fsS localhost:8000/readyz >/dev/null 2>&1 && break
            kill -0 "$pid" 2>/dev/null || { cat run.log; echo "fresh-machine: make run exited"; exit 1; }
            sleep 1
        done
        curl -fsS localhost:8000/readyz || { cat run.log; echo "fresh-machine: /readyz never answered 200"; exit 1; }
        echo
        created=$(curl -fsS -X POST localhost:8000/api/v1/items \
            -H "Content-Type: application/json" -d "{\"name\": \"fresh machine\"}")
        id=$(python3 -c "import json, sys; print(json.loads(sys.argv[1])[\"id\"])" "$created")
        got=$(curl -fsS "localhost:8000/api/v1/items/$id")
        python3 -c "import json, sys; assert json.loads(sys.argv[1])[\"name\"] == \"fresh machine\", sys.argv[1]" "$got"
        echo "fresh-machine: make run serves: POST then GET /api/v1/items/$id: $got"
    ' &
wait $!
log "passed"
