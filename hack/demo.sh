#!/usr/bin/env bash
# Sets everything up (idempotent), then runs the local demo. It leaves no process behind.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash hack/setup.sh
exec "$ROOT/.venv/bin/python" hack/demo.py "$@"
