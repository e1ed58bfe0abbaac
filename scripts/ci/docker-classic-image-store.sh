#!/usr/bin/env bash
# Hosted runners (Docker 29) use the containerd image store, from which `kind load
# docker-image` fails with `content digest ... not found` for images saved as an OCI
# index (kind issues 3795, 4066). Switch Docker back to its classic image store, before
# anything is pulled or built. The suite also builds without default attestations
# (make/image.mk), so a laptop on the containerd store works too; this is the runner's
# second line of defence. Keeps every other daemon.json setting.
#
#   DOCKER_DAEMON_CONFIG   the file to edit (default /etc/docker/daemon.json)
#   DOCKER_RESTART         command that restarts the engine (default: systemctl restart docker)
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
config=${DOCKER_DAEMON_CONFIG:-/etc/docker/daemon.json}
restart=${DOCKER_RESTART:-systemctl restart docker}
docker_cli=${DOCKER:-docker}

python3 "$root/tools/daemon_json.py" "$config" features.containerd-snapshotter false

$restart
for _ in $(seq 60); do
    if status=$("$docker_cli" info --format '{{json .DriverStatus}}' 2>/dev/null); then
        if [[ $status == *io.containerd.snapshotter* ]]; then
            echo "docker-classic-image-store.sh: Docker still uses the containerd image store: $status" >&2
            exit 1
        fi
        echo "docker-classic-image-store.sh: Docker uses the classic image store: $status"
        exit 0
    fi
    sleep 1
done
echo "docker-classic-image-store.sh: Docker did not answer within 60 s after \`$restart\`" >&2
exit 1
