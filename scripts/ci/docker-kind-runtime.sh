#!/usr/bin/env bash
# Register the Docker runtime `kind-sandbox` on a machine that withholds a capability from
# every process (our build machines withhold CAP_SYS_RESOURCE). There, kind's node
# containers (`docker run --privileged`) fail in runc with "unable to apply caps:
# operation not permitted"; kind-sandbox is runc less the withheld capabilities
# (local/from-source/sandbox/sandbox-runc), and tools/kind_sandbox.py runs kind's node
# containers on it. On a machine that withholds nothing this does nothing.
#
# Adds one entry to the daemon's `runtimes` (every other daemon.json setting is kept) and
# reloads the configuration with SIGHUP: no restart, running containers are untouched, and
# containers that do not ask for the runtime never use it. Idempotent.
#   DOCKER_DAEMON_CONFIG   the file to edit (default /etc/docker/daemon.json)
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
config=${DOCKER_DAEMON_CONFIG:-/etc/docker/daemon.json}
docker_cli=${DOCKER:-docker}
runtime=kind-sandbox
installed=/usr/local/lib/kind-sandbox/sandbox-runc
log() { echo "docker-kind-runtime.sh: $*" >&2; }

withheld=$(python3 - <<'PY'
last = int(open("/proc/sys/kernel/cap_last_cap").read())
bounding = next(int(l.split()[1], 16) for l in open("/proc/1/status") if l.startswith("CapBnd:"))
print(" ".join(str(bit) for bit in range(last + 1) if not bounding >> bit & 1))
PY
)
if [[ -z $withheld ]]; then
    log "this machine withholds no capability: kind's privileged nodes need no extra runtime"
    exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
    log "capabilities $withheld are withheld here; run me as root to register the $runtime runtime"
    exit 1
fi

# A copy outside the checkout: the daemon keeps the path after this clone is gone.
install -D -m 0755 "$root/local/from-source/sandbox/sandbox-runc" "$installed"

python3 "$root/tools/daemon_json.py" "$config" "runtimes.$runtime" "{\"path\": \"$installed\"}"

pid_file=/var/run/docker.pid
if [[ -s $pid_file ]] && kill -0 "$(cat "$pid_file")" 2>/dev/null; then
    kill -HUP "$(cat "$pid_file")"
    for _ in $(seq 30); do
        if "$docker_cli" info --format '{{json .Runtimes}}' 2>/dev/null | grep -q "\"$runtime\""; then
            log "the Docker engine offers the $runtime runtime (capabilities withheld here: $withheld)"
            exit 0
        fi
        sleep 1
    done
    log "the Docker engine did not pick up runtimes.$runtime from $config after SIGHUP"
    exit 1
fi
log "no Docker engine runs; it will offer $runtime when it starts (scripts/ci/start-docker.sh)"
