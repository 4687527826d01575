#!/usr/bin/env bash
# Sets up everything (idempotent) and runs every check CI runs: lint, format, types, the tests.
# Extra arguments go to pytest, e.g. `bash hack/test.sh tests/unit -x`.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash hack/setup.sh

PY="$ROOT/.venv/bin"
echo "== ruff check"; "$PY/ruff" check .
echo "== ruff format --check"; "$PY/ruff" format --check .
echo "== mypy --strict"; "$PY/mypy"

# Processes of the kind the tests start; none may outlive the run.
leftovers() {
  pgrep -f 'kube-apiserver|kube-controller-manager|kube-scheduler|etcdbin/etcd|fma-hollow-kubelet|localcluster\.kubelet|vllm\.entrypoints|vllm_standin|fma-requester|launcher\.requester|fma-launcher|launcher\.forkserver|-m launcher|fma-webhook|fma-controller' \
    | grep -v "^$$\$" || true
}
before="$(leftovers)"
echo "== pytest"
status=0
"$PY/pytest" "$@" || status=$?
after="$(leftovers)"
new="$(comm -13 <(sort <<<"$before") <(sort <<<"$after") | sed '/^$/d')"
if [[ -n "$new" ]]; then
  echo "processes left behind by the tests:" >&2
  ps -o pid,args -p "$(paste -sd, <<<"$new")" >&2 || true
  exit 1
fi
exit "$status"
