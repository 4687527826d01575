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

# Processes of the kind the tests start; none may outlive the run. Only this run's count: their
# command lines name this checkout or this run's pytest temp dir (other checkouts may be busy).
BASETEMP="$(mktemp -d "${TMPDIR:-/tmp}/fma-test-XXXXXX")"
PATTERN='kube-apiserver|kube-controller-manager|kube-scheduler|kube-proxy|etcdbin/etcd|fma-hollow-kubelet|localcluster\.kubelet|vllm\.entrypoints|vllm_standin|fma-requester|launcher\.requester|fma-launcher|launcher\.forkserver|-m launcher|fma-webhook|webhook\.cli|fma-controller|controller\.cli'
leftovers() {
  pgrep -af "$PATTERN" | grep -F -e "$ROOT/" -e "$BASETEMP" | grep -v "^$$ " | cut -d' ' -f1 || true
}
# pytest runs in a private network namespace (only lo): its clusters may run kube-proxy without
# touching the host's or another run's iptables rules, and nothing can leave the machine. The
# namespace shares PIDs with this shell, so the leftover check below still sees every process.
echo "== pytest (in a private network namespace)"
status=0
bash hack/in-netns.sh "$PY/pytest" --basetemp "$BASETEMP" "$@" || status=$?
sleep 1  # processes told to stop may need a moment to exit
new="$(leftovers)"
if [[ -n "$new" ]]; then
  echo "processes left behind by the tests:" >&2
  ps -o pid,args -p "$(paste -sd, <<<"$new")" >&2 || true
  exit 1
fi
rm -rf "$BASETEMP"
exit "$status"
