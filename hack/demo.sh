#!/usr/bin/env bash
# Sets everything up (idempotent), then runs the local demo. It leaves no process behind.
# The demo runs in a private network namespace (hack/in-netns.sh): its cluster's kube-proxy rules
# stay out of the host's and out of a concurrent test run's.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash hack/setup.sh
exec bash hack/in-netns.sh "$ROOT/.venv/bin/python" hack/demo.py "$@"
