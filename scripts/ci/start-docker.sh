#!/usr/bin/env bash
# Start the Docker engine in the background unless one already answers, then wait
# until it does. Idempotent: a running engine (ours or another engineer's) is reused.
set -euo pipefail

docker_cli=${DOCKER:-/usr/bin/docker}
log=${DOCKERD_LOG:-/tmp/dockerd.log}
wait_seconds=${DOCKERD_WAIT_SECONDS:-60}

if "$docker_cli" info >/dev/null 2>&1; then
    echo "start-docker.sh: the Docker engine already answers" >&2
    exit 0
fi

if ! command -v dockerd >/dev/null 2>&1; then
    echo "start-docker.sh: dockerd not found; install it with: apt-get install docker.io" >&2
    exit 1
fi

# A live pid in dockerd's pid file means an engine is still starting: only wait for it.
# (A stale pid file from an engine that died is ignored: dockerd replaces it.)
pid_file=/var/run/docker.pid
if ! { [[ -s $pid_file ]] && kill -0 "$(cat "$pid_file")" 2>/dev/null; }; then
    echo "start-docker.sh: starting dockerd (log: $log)" >&2
    setsid dockerd >"$log" 2>&1 </dev/null &
fi

for _ in $(seq "$wait_seconds"); do
    if "$docker_cli" info >/dev/null 2>&1; then
        echo "start-docker.sh: the Docker engine answers" >&2
        exit 0
    fi
    sleep 1
done
echo "start-docker.sh: dockerd did not answer within ${wait_seconds}s; see $log" >&2
tail -n 20 "$log" >&2 || true
exit 1
