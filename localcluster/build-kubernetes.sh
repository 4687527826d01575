#!/usr/bin/env bash
# Builds kube-apiserver, kube-controller-manager, kube-scheduler, kube-proxy, kubectl and kubelet v1.20.2
# from Debian bookworm's `kubernetes` source package and caches them outside the repository.
#
# Why from source: no registry we can reach ships these binaries, and there is no Docker engine for
# kind. Debian's source package carries the whole tree with vendor/, so the build needs no network
# beyond Debian's mirror. docs/local-cluster.md explains the facts this relies on.
#
# Idempotent: when every binary is already in the cache it exits at once; otherwise it builds only
# the missing ones (a cache made before kubelet was added gains kubelet alone). The cache location is
# $FMA_CACHE_DIR (default ~/.cache/fma); binaries land in $FMA_CACHE_DIR/k8s-1.20.2/bin.
set -euo pipefail

K8S_VERSION=1.20.2
CACHE_DIR="${FMA_CACHE_DIR:-$HOME/.cache/fma}"
OUT_DIR="$CACHE_DIR/k8s-$K8S_VERSION"
BIN_DIR="$OUT_DIR/bin"
# kubelet is only for the real node (localcluster/realnode); the rest is the control plane.
COMMANDS=(kube-apiserver kube-controller-manager kube-scheduler kube-proxy kubectl kubelet)

have_all() {
  local c
  for c in "${COMMANDS[@]}"; do
    [[ -x "$BIN_DIR/$c" ]] || return 1
  done
}

if have_all; then
  echo "kubernetes $K8S_VERSION binaries cached in $BIN_DIR"
  exit 0
fi

log() { printf '[build-kubernetes] %s\n' "$*" >&2; }

# Two set-ups started at once (a test run and the demo, say) must not build in one tree together.
mkdir -p "$OUT_DIR"
exec 9>"$OUT_DIR/.build.lock"
flock 9
if have_all; then
  echo "kubernetes $K8S_VERSION binaries cached in $BIN_DIR"
  exit 0
fi

as_root() {
  if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi
}

# Toolchain: Debian's Go (1.19) builds this tree; rsync is used by the Makefile.
if ! command -v go >/dev/null || ! command -v rsync >/dev/null || ! command -v make >/dev/null; then
  log "installing golang-go, rsync, make"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq golang-go rsync make >/dev/null
fi

WORK="$OUT_DIR/work"
mkdir -p "$WORK"
APT_STATE="$WORK/apt"
mkdir -p "$APT_STATE/lists/partial" "$APT_STATE/cache/archives/partial"
printf 'deb http://deb.debian.org/debian bookworm main\ndeb-src http://deb.debian.org/debian bookworm main\n' \
  >"$APT_STATE/sources.list"
APT_OPTS=(
  -o "Dir::Etc::SourceList=$APT_STATE/sources.list"
  -o "Dir::Etc::SourceParts=/dev/null"
  -o "Dir::State::Lists=$APT_STATE/lists"
  -o "Dir::Cache=$APT_STATE/cache"
  -o "Debug::NoLocking=1"
  -o "APT::Sandbox::User=root"
)

SRC="$WORK/src"
if [[ ! -f "$SRC/Makefile" ]]; then
  log "fetching Debian source package kubernetes (bookworm)"
  (
    cd "$WORK"
    apt-get "${APT_OPTS[@]}" update -qq >/dev/null
    rm -f kubernetes_*.dsc
    apt-get "${APT_OPTS[@]}" source --download-only kubernetes
    rm -rf "$SRC"
    dpkg-source -x kubernetes_*.dsc "$SRC" >/dev/null
  )
fi

# Required fix: vendored modern-go/reflect2 v1.0.1 faults in runtime.mapiterinit under Go >= 1.18 on
# the first custom-resource write. Swap in Debian's 1.0.2 sources.
R2_DIR="$SRC/vendor/github.com/modern-go/reflect2"
if ! grep -q 'modern-go/reflect2 v1.0.1 => github.com/modern-go/reflect2 v1.0.2' "$SRC/vendor/modules.txt" \
  && grep -q 'modern-go/reflect2 v1.0.1' "$SRC/vendor/modules.txt"; then
  log "patching vendored modern-go/reflect2 to 1.0.2"
  (
    cd "$WORK"
    rm -rf reflect2-deb && mkdir reflect2-deb
    cd reflect2-deb
    apt-get "${APT_OPTS[@]}" download golang-github-modern-go-reflect2-dev >/dev/null
    dpkg-deb -x golang-github-modern-go-reflect2-dev_*.deb x
    NEW="x/usr/share/gocode/src/github.com/modern-go/reflect2"
    rm -f "$R2_DIR"/*.go "$R2_DIR"/*.s
    cp "$NEW"/*.go "$R2_DIR"/
    cp "$NEW"/*.s "$R2_DIR"/ 2>/dev/null || true
    rm -f "$R2_DIR"/*_test.go
  )
  sed -i 's#^\(\# github.com/modern-go/reflect2 v1.0.1 => github.com/modern-go/reflect2\) v1.0.1#\1 v1.0.2#' \
    "$SRC/vendor/modules.txt"
fi

MISSING=()
for c in "${COMMANDS[@]}"; do
  [[ -x "$BIN_DIR/$c" ]] || MISSING+=("$c")
done
log "building ${MISSING[*]} (several minutes on 2 cores)"
WHAT=""
for c in "${MISSING[@]}"; do WHAT+="cmd/$c "; done
(
  cd "$SRC"
  mkdir -p "$WORK/home"
  HOME="$WORK/home" GOPROXY=off CGO_ENABLED=0 GOMAXPROCS="$(nproc)" \
    make WHAT="${WHAT% }" >"$WORK/build.log" 2>&1 || {
    tail -n 40 "$WORK/build.log" >&2
    exit 1
  }
)

mkdir -p "$BIN_DIR"
for c in "${MISSING[@]}"; do
  install -m 0755 "$SRC/_output/bin/$c" "$BIN_DIR/$c.tmp"
  mv -f "$BIN_DIR/$c.tmp" "$BIN_DIR/$c"
done

# The tree and the Go caches are only needed to build; keep the cache small.
rm -rf "$SRC/_output" "$WORK/home" "$SRC/.go"
log "done: $BIN_DIR"
