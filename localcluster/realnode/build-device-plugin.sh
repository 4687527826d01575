#!/usr/bin/env bash
# Builds fma-fake-gpu-plugin (fakegpu.go, next to this script): a kubelet device plugin for fake
# GPUs, compiled inside Debian's kubernetes source tree that build-kubernetes.sh fetched, so it
# uses the kubelet's own vendored gRPC and device-plugin API (v1beta1) and needs no network.
#
#   bash localcluster/realnode/build-device-plugin.sh   # prints the binary's path
#
# Idempotent: the binary is cached as $FMA_CACHE_DIR/k8s-1.20.2/bin/fma-fake-gpu-plugin-<hash of
# fakegpu.go>, so an edit of the source builds a new one. About 40 s on 2 cores the first time.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
K8S_VERSION=1.20.2
CACHE_DIR="${FMA_CACHE_DIR:-$HOME/.cache/fma}"
OUT_DIR="$CACHE_DIR/k8s-$K8S_VERSION"
SRC="$OUT_DIR/work/src"
HASH="$(sha256sum "$HERE/fakegpu.go" | cut -c1-12)"
BIN="$OUT_DIR/bin/fma-fake-gpu-plugin-$HASH"

if [[ -x "$BIN" ]]; then
  echo "$BIN"
  exit 0
fi
if [[ ! -d "$SRC/vendor/k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1" ]]; then
  echo "build-device-plugin: $SRC has no kubernetes source tree: run \`bash localcluster/build-kubernetes.sh\` first" >&2
  exit 1
fi
if ! command -v go >/dev/null; then
  echo "build-device-plugin: no Go toolchain: run \`bash localcluster/build-kubernetes.sh\` first (it installs golang-go)" >&2
  exit 1
fi

# The same lock as build-kubernetes.sh: one build in the tree at a time.
exec 9>"$OUT_DIR/.build.lock"
flock 9
if [[ -x "$BIN" ]]; then
  echo "$BIN"
  exit 0
fi

# GOPATH mode (the tree's vendor/ is only visible to packages under k8s.io/kubernetes/).
GOPATH_DIR="$OUT_DIR/work/plugin-gopath"
mkdir -p "$GOPATH_DIR/src/k8s.io" "$SRC/cmd/fma-fake-gpu-plugin"
ln -sfn "$SRC" "$GOPATH_DIR/src/k8s.io/kubernetes"
cp "$HERE/fakegpu.go" "$SRC/cmd/fma-fake-gpu-plugin/main.go"
mkdir -p "$OUT_DIR/bin" "$OUT_DIR/work/plugin-home"
(
  cd "$GOPATH_DIR/src/k8s.io/kubernetes"
  HOME="$OUT_DIR/work/plugin-home" GOPATH="$GOPATH_DIR" GO111MODULE=off GOPROXY=off \
    CGO_ENABLED=0 go build -o "$BIN.tmp" ./cmd/fma-fake-gpu-plugin
) >&2
rm -rf "$OUT_DIR/work/plugin-home"
mv -f "$BIN.tmp" "$BIN"
echo "$BIN"
