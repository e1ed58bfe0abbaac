#!/usr/bin/env bash
# Build, once, a local Debian bookworm base image with Python 3.11 + venv, because no
# registry is reachable here (python:3.12-slim cannot be pulled). Prints the image's
# name:tag on stdout and nothing else; progress goes to stderr.
#
# The tag carries a hash of the recipe below, so changing the package list builds a new
# image while re-runs with the same recipe cost one `docker image inspect`.
set -euo pipefail

docker_cli=${DOCKER:-/usr/bin/docker}
suite=bookworm
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
packages=python3,python3-venv,ca-certificates,tar
repository=${BASE_IMAGE_REPOSITORY:-local/debian-python}

recipe_hash=$(printf '%s\n' "$suite" "$packages" "minbase" | sha256sum | cut -c1-12)
image="$repository:$suite-$recipe_hash"

log() { echo "base-image.sh: $*" >&2; }

if ! "$docker_cli" info >/dev/null 2>&1; then
    log "no Docker engine answers; start one with: bash scripts/ci/start-docker.sh"
    exit 1
fi
if ! command -v debootstrap >/dev/null 2>&1; then
    log "debootstrap not found; install it with: apt-get install debootstrap"
    exit 1
fi

# Several engineers (or parallel CI steps) may ask at once: build under a lock, and
# re-check inside it so only the first one pays the ~40 s.
exec 9>"/tmp/base-image-$recipe_hash.lock"
flock 9

if "$docker_cli" image inspect "$image" >/dev/null 2>&1; then
    log "reusing $image"
    echo "$image"
    exit 0
fi

rootfs=$(mktemp -d /tmp/base-image-rootfs.XXXXXX)
trap 'rm -rf "$rootfs"' EXIT

log "debootstrap $suite ($packages) into $rootfs"
debootstrap --variant=minbase --include="$packages" "$suite" "$rootfs" "$mirror" >&2

# What an official slim image also leaves out: downloaded .debs, apt indexes, docs.
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
    "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/*

log "importing as $image"
tar -C "$rootfs" -c . | "$docker_cli" import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["/bin/bash"]' \
    --message "debootstrap --variant=minbase --include=$packages $suite" \
    - "$image" >&2

echo "$image"
