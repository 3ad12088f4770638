#!/usr/bin/env bash
# Builds the Kubernetes cluster the tests run against (etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler, kubectl, helm, and the node's kubelet and
# kube-proxy) from the Go modules pinned in tests/k8s/,
# and caches the binaries outside the clone, keyed by their versions.
#
# Usage: tests/build-k8s.sh
#   Prints progress on stderr; the last line on stdout is `MQ_K8S_BIN=<dir>`.
#   A warm cache returns at once. Set MQ_CACHE to move the cache
#   (default: ~/.cache/mailqueue-operator).
#
# Needs Go (the machine's; no container engine) and the Go module proxy.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
modules="$here/k8s"

# The modules ask for go 1.26.0; a newer toolchain is only fetched if that changes.
export GOTOOLCHAIN="${GOTOOLCHAIN:-local}"
export GOFLAGS="-trimpath -buildvcs=false -mod=readonly"
export CGO_ENABLED=0

log() { printf '[build-k8s] %s\n' "$*" >&2; }

# The version a module pins, read from its go.mod so it is written in one place.
pinned() { # <module dir> <module path>
    awk -v m="$2" '$1 == "require" && $2 == m { print $3 } $1 == m { print $2 }' "$modules/$1/go.mod" | head -n1
}

k8s_version="$(pinned kubernetes k8s.io/kubernetes)"
etcd_version="$(pinned etcd go.etcd.io/etcd/server/v3)"
helm_version="$(pinned helm helm.sh/helm/v3)"
for v in "$k8s_version" "$etcd_version" "$helm_version"; do
    [[ -n "$v" ]] || { log "could not read a pinned version from $modules/*/go.mod"; exit 1; }
done

cache="${MQ_CACHE:-$HOME/.cache/mailqueue-operator}"
dest="$cache/k8s-$k8s_version-etcd-$etcd_version-helm-$helm_version"
bin="$dest/bin"
tools=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet kube-proxy helm)

complete() {
    local t
    for t in "${tools[@]}"; do [[ -x "$bin/$t" ]] || return 1; done
}

if complete; then
    echo "MQ_K8S_BIN=$bin"
    exit 0
fi

mkdir -p "$cache"
# One build at a time: parallel test binaries wait here for the first to finish.
exec 9>"$cache/.build-k8s.lock"
if ! flock -n 9; then
    log "another build is running; waiting for it ($cache/.build-k8s.lock)"
    flock 9
fi
if complete; then
    echo "MQ_K8S_BIN=$bin"
    exit 0
fi

# Built into a scratch directory and renamed at the end, so an interrupted build is
# never mistaken for a complete one.
scratch="$(mktemp -d "$cache/.build-k8s.XXXXXX")"
ticker=""
builder=""
cleanup() {
    [[ -n "$builder" ]] && kill "$builder" 2>/dev/null || true
    [[ -n "$ticker" ]] && kill "$ticker" 2>/dev/null || true
    rm -rf "$scratch"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
chmod 755 "$scratch"
mkdir -p "$scratch/bin"

# Kubernetes reads its version from these variables; without them /version says
# v0.0.0-master and clients such as helm refuse the server.
k8s_minor="${k8s_version#v*.}"; k8s_minor="${k8s_minor%%.*}"
k8s_major="${k8s_version#v}"; k8s_major="${k8s_major%%.*}"
build_date="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
k8s_ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    k8s_ldflags+=" -X $pkg.gitVersion=$k8s_version -X $pkg.gitMajor=$k8s_major"
    k8s_ldflags+=" -X $pkg.gitMinor=$k8s_minor -X $pkg.gitTreeState=clean -X $pkg.buildDate=$build_date"
done
helm_ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$helm_version"
helm_ldflags+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"

started=$SECONDS
n=0
build() { # <name> <module dir> <package> <ldflags>
    local name="$1" dir="$2" pkg="$3" flags="$4" t0=$SECONDS
    n=$((n + 1))
    log "($n/${#tools[@]}) building $name from $pkg"
    # Go prints nothing while compiling; say every minute that it is still going.
    # sleep gets no copy of the output pipes, which would stay open after the ticker
    # is killed and keep a reader of this script waiting.
    ( while sleep 60 </dev/null >/dev/null 2>&1; do log "    still building $name ($(( SECONDS - t0 ))s)"; done ) 9>&- &
    ticker=$!
    # In the background so that a signal reaches the trap at once (and the build is
    # stopped with the script); without the lock, which is the script's alone.
    (cd "$modules/$dir" && exec go build -ldflags "$flags" -o "$scratch/bin/$name" "$pkg") 9>&- &
    builder=$!
    wait "$builder"
    builder=""
    kill "$ticker" 2>/dev/null || true
    wait "$ticker" 2>/dev/null || true
    ticker=""
    log "    $name done in $(( SECONDS - t0 ))s"
}

log "building into $dest (Go $(go env GOVERSION), $(nproc) cores; a cold build takes a while)"
build etcd etcd go.etcd.io/etcd/server/v3 "-s -w"
build kube-apiserver kubernetes k8s.io/kubernetes/cmd/kube-apiserver "$k8s_ldflags"
build kube-controller-manager kubernetes k8s.io/kubernetes/cmd/kube-controller-manager "$k8s_ldflags"
build kube-scheduler kubernetes k8s.io/kubernetes/cmd/kube-scheduler "$k8s_ldflags"
build kubectl kubernetes k8s.io/kubernetes/cmd/kubectl "$k8s_ldflags"
build kubelet kubernetes k8s.io/kubernetes/cmd/kubelet "$k8s_ldflags"
build kube-proxy kubernetes k8s.io/kubernetes/cmd/kube-proxy "$k8s_ldflags"
build helm helm helm.sh/helm/v3/cmd/helm "$helm_ldflags"

rm -rf "$dest"
mv "$scratch" "$dest"
log "all built in $(( SECONDS - started ))s"
echo "MQ_K8S_BIN=$bin"
