#!/usr/bin/env bash
# Runs a command in a private network namespace: only the loopback interface (brought up), so no
# route leads out of the machine.
#
#   bash hack/in-netns.sh <command> [args...]
#   bash hack/in-netns.sh .venv/bin/pytest tests/cluster/test_kube_proxy.py
#
# Why: the local cluster's kube-proxy writes iptables rules, and those belong to a network
# namespace. In a namespace of its own, a test run, the demo and a developer's cluster never
# rewrite each other's rules (or the host's), every rule vanishes with the namespace even after a
# SIGKILL, and a packet to any address outside 127.0.0.0/8 fails at once with "Network is
# unreachable" instead of leaving the machine. `hack/test.sh` runs pytest, and `hack/demo.sh` the
# demo, through this script.
#
# Only the network is private: processes, files and PIDs are the machine's, so `ps`, `kill` and
# logs work as usual. The command replaces this script (same PID), so signals reach it directly,
# and its exit status is this script's. FMA_IN_NETNS=1 tells the tests they must not skip
# kube-proxy checks. Needs root; another user gets a user namespace mapping them to root in it
# (where the kernel allows unprivileged user namespaces).
set -euo pipefail

if [[ $# -eq 0 ]]; then
  echo "usage: bash hack/in-netns.sh <command> [args...]" >&2
  exit 2
fi

export PATH="$PATH:/usr/sbin:/sbin"
for tool in unshare ip; do
  if ! command -v "$tool" >/dev/null; then
    echo "in-netns: '$tool' is missing (Debian packages util-linux and iproute2; bash hack/setup.sh installs them)" >&2
    exit 1
  fi
done

opts=(--net)
if [[ $(id -u) -ne 0 ]]; then
  opts+=(--user --map-root-user)
fi

export FMA_IN_NETNS=1
# shellcheck disable=SC2016  # $@ is expanded by the inner shell, on purpose
exec unshare "${opts[@]}" -- sh -c 'ip link set lo up && exec "$@"' in-netns "$@"
