"""Rounds of the dual-pods benchmarks: bring requesters up, release them, read what happened.

A round scales the Deployment `bench` and waits, through the Pod watcher, until every new
requester is Ready; a release scales it to 0 and waits until every provider (launcher or direct
provider) is unbound and asleep. `breakdown` reads the requester stubs' own logs (in the hollow
kubelets' state directories) to split an interval at the moment the stub was told
`become-ready`.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from dataclasses import dataclass
from typing import Any, Final

from bench._env import BenchEnv
from bench._observe import PodRecord, summary_ms
from bench._templates import APP

SLEEPING: Final = "dual-pods.llm-d.ai/sleeping"
REQUESTER: Final = "dual-pods.llm-d.ai/requester"
_SETTLE_S: Final = 1.0
_WALL_MINUS_MONOTONIC: Final = time.time() - time.monotonic()


@dataclass(frozen=True)
class Sample:
    """One requester of one round."""

    name: str
    uid: str
    running_at: float
    ready_at: float

    @property
    def running_to_ready(self) -> float:
        return self.ready_at - self.running_at


def _live_requesters(records: list[PodRecord]) -> list[PodRecord]:
    return [
        r
        for r in records
        if r.labels.get("app") == APP
        and r.deleted_at is None
        and not (r.obj.get("metadata") or {}).get("deletionTimestamp")
    ]


def bring_up(
    env: BenchEnv, count: int, timeout: float, *, create: dict[str, Any] | None = None
) -> list[Sample]:
    """Creates the Deployment (`create`) or scales it to `count`; waits for `count` new Ready
    requesters and returns them."""
    before = {r.uid for r in env.watcher.records()}
    if create is not None:
        env.create_deployment(APP, create, count)
    else:
        env.scale(APP, count)

    def fresh(records: list[PodRecord]) -> list[PodRecord]:
        return [r for r in _live_requesters(records) if r.uid not in before]

    def done(records: list[PodRecord]) -> bool:
        new = fresh(records)
        return len(new) >= count and all(r.ready_at is not None for r in new)

    env.watcher.wait(f"{count} new requesters Ready", done, timeout)
    samples = []
    for record in fresh(env.watcher.records()):
        assert record.running_at is not None and record.ready_at is not None
        samples.append(Sample(record.name, record.uid, record.running_at, record.ready_at))
    return samples


def release(env: BenchEnv, timeout: float, *, bare_pods: bool = False) -> None:
    """Scale to 0 (or delete the bare requester Pods); wait until no requester is left and
    every provider is unbound and asleep."""
    if bare_pods:
        env.core.delete_collection_namespaced_pod(env.namespace, label_selector=f"app={APP}")
    else:
        env.scale(APP, 0)

    def done(records: list[PodRecord]) -> bool:
        # Gone, not only terminating: until the kubelet deletes a requester, its GPUs stay
        # allocated and the next round's requesters would wait for the scheduler's retry (and
        # its final writes would count as theirs).
        if any(r.labels.get("app") == APP and r.deleted_at is None for r in records):
            return False
        providers = [r for r in records if SLEEPING in r.labels and r.deleted_at is None]
        return all(
            r.labels[SLEEPING] == "true" and REQUESTER not in r.annotations for r in providers
        )

    env.watcher.wait("requesters gone, providers unbound and asleep", done, timeout)
    time.sleep(_SETTLE_S)  # let the controller finish its passes (finalizers, status)


def switch_template(env: BenchEnv, template: dict[str, Any]) -> None:
    """The Deployment's Pod template (while scaled to 0): its next requesters ask for another
    model."""
    env.apps.patch_namespaced_deployment(APP, env.namespace, {"spec": {"template": template}})


def paths(env: BenchEnv) -> dict[str, float]:
    """`fma_actuation_seconds_count` by path: what the controller says it did."""
    return {
        path: env.metric("fma_actuation_seconds_count", {"path": path})
        for path in ("cold", "warm", "hot")
    }


def _stub_times(env: BenchEnv, sample: Sample) -> tuple[float, float] | None:
    """(serving, told ready) of a requester stub, from its log, as monotonic times."""
    pattern = f"kubelet-*/pods/{env.namespace}_{sample.name}_{sample.uid}/inference-server/0.log"
    files = list(env.workdir.glob(pattern))
    if not files:
        return None
    serving = told = None
    for line in files[0].read_text(errors="replace").splitlines():
        content = line.split(" ", 3)[-1]
        if not content.startswith("{"):
            continue
        try:
            entry = json.loads(content)
        except ValueError:
            continue
        stamp = dt.datetime.fromisoformat(entry["ts"]).timestamp() - _WALL_MINUS_MONOTONIC
        if entry.get("msg") == "serving":
            serving = stamp
        elif entry.get("msg") == "readiness changed" and entry.get("ready") and told is None:
            told = stamp
    return (serving, told) if serving is not None and told is not None else None


def breakdown(env: BenchEnv, samples: list[Sample], wake: float) -> dict[str, Any]:
    """Where a hot interval goes, split at the stub's `become-ready` (ms, stub-log based)."""
    controller, report, running_lag = [], [], []
    for sample in samples:
        times = _stub_times(env, sample)
        if times is None:
            continue
        serving, told = times
        controller.append(told - serving - wake)
        report.append(sample.ready_at - told)
        running_lag.append(sample.running_at - serving)
    return {
        "controller_ms": summary_ms(controller),
        "controller_note": "stub serving -> stub told become-ready, minus the wake delay",
        "readiness_report_ms": summary_ms(report),
        "readiness_report_note": "stub told become-ready -> Ready seen (probe wait, status "
        "write, watch)",
        "running_report_ms": summary_ms(running_lag),
        "running_report_note": "stub serving -> Running seen (status write, watch)",
    }
