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

config=${DOCKER_DAEMON_CONFIG:-/etc/docker/daemon.json}
restart=${DOCKER_RESTART:-systemctl restart docker}
docker_cli=${DOCKER:-docker}

python3 - "$config" <<'PY'
import json
import pathlib
import sys

path = pathlib.Path(sys.argv[1])
text = path.read_text() if path.exists() else ""
try:
    config = json.loads(text) if text.strip() else {}
except json.JSONDecodeError as exc:
    sys.exit(f"docker-classic-image-store.sh: {path} is not valid JSON ({exc}); fix it first")
if not isinstance(config, dict):
    sys.exit(f"docker-classic-image-store.sh: {path} must hold a JSON object")
config.setdefault("features", {})["containerd-snapshotter"] = False
path.parent.mkdir(parents=True, exist_ok=True)
path.write_text(json.dumps(config, indent=2) + "\n")
print(f"docker-classic-image-store.sh: {path}: features.containerd-snapshotter = false")
PY

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
