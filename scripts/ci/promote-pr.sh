#!/usr/bin/env bash
# Open a pull request that promotes a release into values/<ENV>.yaml: `make promote`, one
# commit on a branch of its own, `gh pr create`. Run by .github/workflows/release.yml
# (GH_TOKEN set, a checkout of main); a human reviews and merges, GitOps deploys.
#   bash scripts/ci/promote-pr.sh staging|prod dist/release-<VERSION>.json
set -euo pipefail

env=${1:?usage: promote-pr.sh staging|prod dist/release-<VERSION>.json}
record=${2:?usage: promote-pr.sh staging|prod dist/release-<VERSION>.json}
log() { echo "promote-pr.sh: $*" >&2; }

version=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["version"])' "$record")
image=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["image"])' "$record")
branch="promote/$env-$version"

make promote ENV="$env" RELEASE="$record"
if git diff --quiet -- "values/$env.yaml"; then
    log "values/$env.yaml already runs $image: nothing to promote"
    exit 0
fi

gh auth setup-git
git config user.name "github-actions[bot]"
git config user.email "41898282+github-actions[bot]@users.noreply.github.com"
git switch --create "$branch"
git commit --quiet --message "Promote $version to $env" \
    --message "image: $image (from the $version release record)" -- "values/$env.yaml"
git push --force origin "$branch"
gh pr create --base main --head "$branch" --title "Promote $version to $env" --body \
"Sets \`values/$env.yaml\` to the image of release $version:

\`$image\`

Check the signature before merging (README, \"Verifying a release\"). Rolling back is
reverting this pull request: the previous digest comes back."
log "opened the pull request promoting $version to $env"
