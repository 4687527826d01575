"""Scale: N requesters (default 500) on M hollow GPU nodes (default 50), all at once, until all
are Ready; the controller's peak resident memory on the way. Prints JSON.

Direct mode: each requester gets a provider Pod running the vLLM stand-in. The hollow kubelet
hosts both the requester stubs and the stand-ins inside its own process (`inProcess`), so a
thousand "containers" cost a few hundred MB instead of a thousand Python processes. Launcher
mode is not used here: every requester would get a launcher Pod of its own (a launcher is bound
to one requester at a time), and a launcher is a FastAPI process of about 90 MB with a fork
server of 20 MB and seconds of CPU to start, which 500 times over does not fit this machine.

The requesters are created as bare Pods by 16 client threads (`--create pods`, the default) or
as one Deployment (`--create deployment`; the ReplicaSet controller then creates them at its
default 20 requests/s, so creation alone takes about 25 s). Either way the scheduler places
them (by free `nvidia.com/gpu`) and the clock starts before the first create.

The nodes are dealt over 4 hollow-kubelet processes (`--kubelets`; a real cluster has one kubelet
per node). One process serving 1000 containers and probing them every second falls behind on
this machine: its probes time out, each flip of a Pod's readiness is an `Unhealthy` Event and
two status writes, and the writes per requester then measure the harness, not fma (issue 17,
runs of one commit: with one process 18.2 writes per hot actuation and 2478 `Unhealthy` Events,
with two 10.5 and 854; with four, none in the runs since).

Targets (issue 6): all Ready within 60 s; controller peak RSS ≤ 300 MB.
Run: `.venv/bin/python bench/scale.py [--requesters 500] [--nodes 50]`.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

_ROOT = Path(__file__).resolve().parent.parent
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

import psutil  # noqa: E402

from bench import _rounds as rounds  # noqa: E402
from bench import _templates as t  # noqa: E402
from bench._env import BenchEnv, BenchSetup, bench_environment  # noqa: E402
from bench._observe import (  # noqa: E402
    WRITES_SETTLE_S,
    PodRecord,
    RssSampler,
    apiserver_writes,
    summary_ms,
    writes_per,
)
from bench._profile import profiling  # noqa: E402

TARGET_READY_S, TARGET_RSS_MB = 60.0, 300.0
_SLEEPING = "dual-pods.llm-d.ai/sleeping"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add = parser.add_argument
    add("--requesters", type=int, default=500)
    add("--nodes", type=int, default=50)
    add("--kubelets", type=int, default=4, help="hollow-kubelet processes sharing the nodes")
    add("--create", choices=("pods", "deployment"), default="pods")
    add("--hot-round", action=argparse.BooleanOptionalAction, default=True,
        help="then release them all and create as many again (hot)")  # fmt: skip
    add("--controller-arg", action="append", default=[], help="extra fma-controller flag")
    add("--timeout", type=float, default=300.0, help="seconds to wait for all Ready")
    add("--workdir", type=Path, default=None, help="keep logs here (default: a temp dir)")
    add("--py-spy", type=Path, default=None, help="py-spy executable: profile the run")
    add("--profile", choices=("controller", "hollow-kubelet", "both"), default="controller")
    return parser


def _requester_pod(name: str, template: dict[str, Any]) -> dict[str, Any]:
    meta = template["metadata"]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, **meta},
        "spec": template["spec"],
    }


def _create(
    env: BenchEnv, args: argparse.Namespace, template: dict[str, Any], *, again: bool = False
) -> float:
    """Creates the requesters (`again`: the second time, scales the Deployment up or creates
    Pods of other names); returns when the last create returned (monotonic)."""
    if args.create == "deployment":
        if again:
            env.scale(t.APP, args.requesters)
        else:
            env.create_deployment(t.APP, template, args.requesters)
        return time.monotonic()
    prefix = f"{t.APP}-hot" if again else t.APP
    with ThreadPoolExecutor(16) as pool:
        bodies = [_requester_pod(f"{prefix}-{i:04d}", template) for i in range(args.requesters)]
        list(pool.map(lambda body: env.core.create_namespaced_pod(env.namespace, body), bodies))
    return time.monotonic()


def _wait_ready(
    env: BenchEnv, count: int, timeout: float, *, besides: set[str] | None = None
) -> float | None:
    """When `count` requesters (other than the UIDs `besides`) were Ready; None: not in time."""
    skip = besides or set()

    def done(records: list[PodRecord]) -> bool:
        ready = [r for r in records if _is_requester(r) and r.uid not in skip and r.ready_at]
        return len(ready) >= count

    try:
        finished: float = env.watcher.wait(f"{count} requesters Ready", done, timeout)
    except TimeoutError:
        return None
    return finished


def _writes_now(env: BenchEnv) -> Counter[str]:
    return apiserver_writes(env.cluster.kubectl("get", "--raw", "/metrics"))


def _hot_round(env: BenchEnv, args: argparse.Namespace, template: dict[str, Any]) -> dict[str, Any]:
    """Every requester away (each provider unbound and put to sleep), then as many again: each
    lands on a GPU whose sleeper it can wake, so every bind is hot. Writes per requester of
    each half, and how long the second took."""
    count: int = args.requesters
    before = _writes_now(env)
    began = time.monotonic()
    rounds.release(env, args.timeout, bare_pods=args.create == "pods")
    released = time.monotonic()
    time.sleep(WRITES_SETTLE_S)
    middle = _writes_now(env)
    seen = {r.uid for r in env.watcher.records()}
    started = time.monotonic()
    _create(env, args, template, again=True)

    finished = _wait_ready(env, count, args.timeout, besides=seen)
    time.sleep(WRITES_SETTLE_S)
    after = _writes_now(env)
    hot = [r for r in env.watcher.records() if _is_requester(r) and r.uid not in seen]
    events = env.core.list_namespaced_event(env.namespace).items
    return {
        # Every Event of the whole run by reason and component (what the writes were).
        "events_by_reason": dict(
            sum((Counter({_event_key(e): e.count or 1}) for e in events), Counter()).most_common()
        ),
        "release_s": round(released - began, 2),
        "all_ready_s": round(finished - started, 2) if finished is not None else None,
        "ready_at_the_end": len([r for r in hot if r.ready_at is not None]),
        "requester_running_to_ready": summary_ms(
            [r.ready_at - r.running_at for r in hot if r.ready_at and r.running_at]
        ),
        "apiserver_writes_unbind": writes_per(before, middle, count),
        "apiserver_writes_hot": writes_per(middle, after, count),
    }


def _event_key(event: Any) -> str:
    """Reason and component; a probe failure also says whose probe (requester or provider) and
    which, as those are what a kubelet that cannot keep up writes."""
    key = f"{event.reason} ({event.source.component})"
    if event.reason != "Unhealthy":
        return key
    role = "provider" if "-dual-" in event.involved_object.name else "requester"
    probe, _, detail = event.message.partition(" probe failed: ")
    return f"{key} {role} {probe.lower()}: {detail.rpartition(': ')[2]}"


def _is_requester(record: PodRecord) -> bool:
    return record.labels.get("app") == t.APP


def _milestones(records: list[PodRecord], started: float) -> dict[str, float | None]:
    """Seconds from the start until the last requester was seen scheduled, Running, Ready."""
    requesters = [r for r in records if _is_requester(r)]
    providers = [r for r in records if _SLEEPING in r.labels]

    def last(values: list[float | None]) -> float | None:
        if not values or any(v is None for v in values):
            return None
        return round(max(v for v in values if v is not None) - started, 2)

    return {
        "all_requesters_running_s": last([r.running_at for r in requesters]),
        "all_providers_created_s": last([r.seen_at for r in providers]),
        "all_providers_running_s": last([r.running_at for r in providers]),
        "all_providers_ready_s": last([r.ready_at for r in providers]),
        "all_requesters_ready_s": last([r.ready_at for r in requesters]),
    }


def _gap(records: list[PodRecord]) -> float | None:
    """How long the last requesters waited after the last provider was Ready: the relay's delay
    at the back of the queue (issue 17)."""
    providers = [r.ready_at for r in records if _SLEEPING in r.labels and r.ready_at]
    requesters = [r.ready_at for r in records if _is_requester(r) and r.ready_at]
    if not providers or not requesters:
        return None
    return round(max(requesters) - max(providers), 2)


def _run(env: BenchEnv, args: argparse.Namespace, kubelet_rss: list[RssSampler]) -> dict[str, Any]:
    template = t.requester_template(server_patch=t.direct_server_patch(wake_delay=0.0))
    count: int = args.requesters
    assert env.rss is not None and env.controller is not None and env.controller.pid
    cpu_before = env.controller_cpu_seconds()
    pids = {"controller": env.controller.pid, "hollow-kubelet": env.kubelets[0].pid or 0}
    pids = {k: v for k, v in pids.items() if args.profile in (k, "both")}
    writes_before = _writes_now(env)
    with profiling(args.py_spy, pids, env.workdir / "profiles") as profiles:
        started = time.monotonic()
        created = _create(env, args, template)

        finished = _wait_ready(env, count, args.timeout)
    time.sleep(WRITES_SETTLE_S)
    writes_after = _writes_now(env)
    controller_cpu_s = env.controller_cpu_seconds() - cpu_before
    records = env.watcher.records()
    requesters = [r for r in records if _is_requester(r)]
    peak_mb = env.rss.peak_bytes / 2**20
    all_ready_s = finished - started if finished is not None else math.inf
    return {
        "all_ready_s": round(all_ready_s, 2) if finished is not None else None,
        "ready_at_the_end": len([r for r in requesters if r.ready_at is not None]),
        "created_s": round(created - started, 2),
        **_milestones(records, started),
        "requester_running_to_ready": summary_ms(
            [r.ready_at - r.running_at for r in requesters if r.ready_at and r.running_at]
        ),
        "providers": len([r for r in records if _SLEEPING in r.labels]),
        # Every client's writes (controller, scheduler, kubelet, Events) per requester made Ready.
        "apiserver_writes": writes_per(writes_before, writes_after, count),
        "last_provider_ready_to_last_requester_ready_s": _gap(records),
        "controller_peak_rss_mb": round(peak_mb, 1),
        "controller_rss_samples": env.rss.samples,
        "controller_cpu_s": round(controller_cpu_s, 1),
        "controller_timings": env.controller_timings(),
        "kubelet_peak_rss_mb": [round(s.peak_bytes / 2**20, 1) for s in kubelet_rss],
        "target_ready_s": TARGET_READY_S,
        "target_controller_rss_mb": TARGET_RSS_MB,
        "meets_targets": bool(all_ready_s <= TARGET_READY_S and peak_mb <= TARGET_RSS_MB),
        "profile": profiles.summary() if args.py_spy else None,
        "hot_round": _hot_round(env, args, template) if args.hot_round else None,
        "paths": {
            path: env.metric("fma_actuation_seconds_count", {"path": path})
            for path in ("cold", "hot")
        },
    }


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    setup = BenchSetup(
        nodes=args.nodes,
        gpus_per_node=math.ceil(args.requesters / args.nodes),
        kubelets=args.kubelets,
        controller_args=tuple(args.controller_arg),
    )
    wall = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="fma-bench-scale-") as tmp:
        workdir = args.workdir or Path(tmp)
        with bench_environment(workdir, setup) as env:
            env.start_controller()
            kubelet_rss = [RssSampler(k.pid or 0, interval=0.5) for k in env.kubelets]
            for sampler in kubelet_rss:
                sampler.start()
            results = _run(env, args, kubelet_rss)
            for sampler in kubelet_rss:
                sampler.stop()
    report = {
        "benchmark": "scale",
        "mode": "direct",
        "requesters": args.requesters,
        "create": args.create,
        "setup": setup.describe(),
        "machine": {"cpus": psutil.cpu_count(), "memory_gb": round(_memory_gb(), 1)},
        **results,
        "wall_s": round(time.monotonic() - wall, 1),
    }
    print(json.dumps(report, indent=2))
    return 0


def _memory_gb() -> float:
    return float(psutil.virtual_memory().total) / 2**30


if __name__ == "__main__":
    raise SystemExit(main())
