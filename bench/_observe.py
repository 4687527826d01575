"""What the dual-pods benchmarks observe: Pod transitions as a watcher sees them, a process's
resident memory over time, percentiles.

Times are this process's `time.monotonic()` when a watch event arrives. The apiserver's own
timestamps (`startedAt`, conditions' `lastTransitionTime`) have one-second resolution, too coarse
for a 100 ms budget; arrival times carry the same delay (kubelet status write, watch delivery)
on both ends of an interval, so differences between them are sound.
"""

from __future__ import annotations

import contextlib
import json
import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import kubernetes.client
import psutil
from kubernetes.watch.watch import iter_resp_lines
from prometheus_client.parser import text_string_to_metric_families

Pod = dict[str, Any]


@dataclass
class PodRecord:
    """One Pod's latest object and when it was first seen Running and Ready."""

    uid: str
    name: str
    obj: Pod
    seen_at: float
    running_at: float | None = None
    ready_at: float | None = None
    deleted_at: float | None = None

    @property
    def labels(self) -> Mapping[str, str]:
        return (self.obj.get("metadata") or {}).get("labels") or {}

    @property
    def annotations(self) -> Mapping[str, str]:
        return (self.obj.get("metadata") or {}).get("annotations") or {}

    @property
    def node(self) -> str:
        return str((self.obj.get("spec") or {}).get("nodeName") or "")


def _running(pod: Pod) -> bool:
    statuses = (pod.get("status") or {}).get("containerStatuses") or ()
    return any((s.get("state") or {}).get("running") is not None for s in statuses)


def is_ready(pod: Pod) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or ()
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


class PodWatcher:
    """Watches the Pods of one namespace in a thread and keeps a `PodRecord` per uid."""

    def __init__(self, client: kubernetes.client.ApiClient, namespace: str) -> None:
        self._core = kubernetes.client.CoreV1Api(client)
        self._namespace = namespace
        self._lock = threading.Lock()
        self._records: dict[str, PodRecord] = {}
        self._stop = threading.Event()
        self._synced = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pod-watcher", daemon=True)
        self._response: Any = None

    def start(self) -> None:
        self._thread.start()
        if not self._synced.wait(30):
            raise TimeoutError(f"the Pod watcher of {self._namespace} never listed")

    def stop(self) -> None:
        """Ends the watch now: an open watch would hold up the apiserver's shutdown."""
        self._stop.set()
        response = self._response
        if response is not None:
            with contextlib.suppress(Exception):
                response.shutdown()
        self._thread.join(timeout=5)

    def records(self) -> list[PodRecord]:
        with self._lock:
            return list(self._records.values())

    def wait(self, what: str, check: Callable[[list[PodRecord]], bool], timeout: float) -> float:
        """Polls `check(records)` until true; returns when (monotonic), raising on timeout."""
        deadline = time.monotonic() + timeout
        while not check(self.records()):
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
            time.sleep(0.02)
        return time.monotonic()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                listed = self._core.list_namespaced_pod(self._namespace, _preload_content=False)
                body = json.loads(listed.data)
                for item in body["items"]:
                    self._observe("ADDED", item)
                self._synced.set()
                self._watch(body["metadata"]["resourceVersion"])
            except Exception:  # a broken watch: list again, as an informer does
                time.sleep(0.2)

    def _watch(self, version: str) -> None:
        while not self._stop.is_set():
            response = self._core.list_namespaced_pod(
                self._namespace,
                watch=True,
                resource_version=version,
                allow_watch_bookmarks=True,
                timeout_seconds=30,
                _preload_content=False,
                _request_timeout=(10, 60),
            )
            self._response = response
            try:
                for line in iter_resp_lines(response):
                    if not line:
                        continue
                    event = json.loads(line)
                    if event["type"] == "ERROR":
                        return
                    version = event["object"]["metadata"]["resourceVersion"]
                    if event["type"] != "BOOKMARK":
                        self._observe(event["type"], event["object"])
            finally:
                self._response = None
                response.release_conn()

    def _observe(self, kind: str, pod: Pod) -> None:
        now = time.monotonic()
        meta = pod.get("metadata") or {}
        uid = str(meta.get("uid"))
        with self._lock:
            record = self._records.get(uid)
            if record is None:
                record = PodRecord(uid, str(meta.get("name")), pod, now)
                self._records[uid] = record
            record.obj = pod
            if record.running_at is None and _running(pod):
                record.running_at = now
            if record.ready_at is None and is_ready(pod):
                record.ready_at = now
            if kind == "DELETED" and record.deleted_at is None:
                record.deleted_at = now


@dataclass
class RssSampler:
    """Samples a process's resident set size every `interval` seconds in a thread."""

    pid: int
    interval: float = 0.1
    peak_bytes: int = 0
    samples: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def reset_peak(self) -> None:
        self.peak_bytes, self.samples = 0, 0

    def _run(self) -> None:
        process = psutil.Process(self.pid)
        while not self._stop.is_set():
            try:
                rss = int(process.memory_info().rss)
            except psutil.Error:
                return
            self.peak_bytes = max(self.peak_bytes, rss)
            self.samples += 1
            self._stop.wait(self.interval)


@dataclass
class CpuMeter:
    """CPU time of one process, of the busiest others, and of the whole machine, over windows.

    The benchmarks run the whole cluster on one small machine: when the machine is busy, every
    latency includes waiting for a core, and these figures say how much and for whom.
    """

    pid: int
    label: str = "controller"
    """The name `pid` is reported under."""
    machine_busy_s: float = 0.0
    wall_s: float = 0.0
    by_name: dict[str, float] = field(default_factory=dict)
    idle_s: float = 0.0
    idle_wall_s: float = 0.0

    def idle(self, seconds: float) -> None:
        """Sample the process's own CPU while nothing is asked of it (its timers, heartbeats,
        streams), so that the report can say what the windows cost on top of that."""
        before = process_cpu_seconds(self.pid)
        time.sleep(seconds)
        self.idle_s += process_cpu_seconds(self.pid) - before
        self.idle_wall_s += seconds

    @contextlib.contextmanager
    def window(self) -> Iterator[None]:
        before, machine, started = _cpu_by_pid(), _busy(), time.monotonic()
        try:
            yield
        finally:
            after = _cpu_by_pid()
            self.machine_busy_s += _busy() - machine
            self.wall_s += time.monotonic() - started
            for pid, (name, seconds) in after.items():
                spent = seconds - before.get(pid, (name, 0.0))[1]
                label = self.label if pid == self.pid else name
                self.by_name[label] = self.by_name.get(label, 0.0) + spent

    def report(self, actuations: int) -> dict[str, Any]:
        cpus = psutil.cpu_count() or 1
        wall = self.wall_s or 1.0
        busiest = sorted(self.by_name.items(), key=lambda item: -item[1])[:8]
        own = self.by_name.get(self.label, 0.0)
        idle_rate = self.idle_s / self.idle_wall_s if self.idle_wall_s else 0.0
        above_idle = own - idle_rate * wall
        return {
            "process_cpu_ms_per_actuation": round(1000 * own / max(actuations, 1), 1),
            "process_cpu_ms_per_actuation_above_idle": round(
                1000 * above_idle / max(actuations, 1), 1
            ),
            "process_cpu_percent_of_one_core": round(100 * own / wall, 1),
            "process_idle_percent_of_one_core": round(100 * idle_rate, 1),
            "machine_busy_percent": round(100 * self.machine_busy_s / (wall * cpus), 1),
            "busiest_percent_of_one_core": {name: round(100 * s / wall, 1) for name, s in busiest},
            "cpus": cpus,
            "wall_s": round(self.wall_s, 2),
        }


def process_cpu_seconds(pid: int) -> float:
    """User and system CPU seconds of the process `pid` so far."""
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def _cpu_by_pid() -> dict[int, tuple[str, float]]:
    """pid → (a short name, CPU seconds) of every process this user may read."""
    found = {}
    for process in psutil.process_iter(["name", "cmdline", "cpu_times"]):
        times = process.info.get("cpu_times")
        if times is None:
            continue
        found[process.pid] = (_short_name(process.info), float(times.user + times.system))
    return found


def _short_name(info: Mapping[str, Any]) -> str:
    """`kube-apiserver`, `etcd`, or for Python the script or module it runs."""
    argv = info.get("cmdline") or []
    name = str(info.get("name") or "?")
    if not name.startswith("python") or len(argv) < 2:
        return name
    if argv[1] == "-m" and len(argv) > 2:
        return str(argv[2])
    return str(argv[1]).rsplit("/", 1)[-1]


def _busy() -> float:
    times = psutil.cpu_times()
    return float(sum(times) - times.idle - getattr(times, "iowait", 0.0))


def percentile(values: Iterable[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty collection."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def summary_ms(values: list[float]) -> dict[str, float | int]:
    """Count, p50, p90, p99, max and mean of durations given in seconds, in milliseconds."""
    if not values:
        return {"count": 0}
    return {
        "count": len(values),
        "p50_ms": round(percentile(values, 50) * 1000, 1),
        "p90_ms": round(percentile(values, 90) * 1000, 1),
        "p99_ms": round(percentile(values, 99) * 1000, 1),
        "max_ms": round(max(values) * 1000, 1),
        "mean_ms": round(sum(values) / len(values) * 1000, 1),
    }


_WRITE_VERBS = frozenset({"POST", "PUT", "PATCH", "DELETE", "APPLY"})
"""The `verb` label of a write: the apiserver reports the HTTP method (`cleanVerb` in its
endpoints/metrics; a collection's DELETE too), APPLY for a server-side apply."""
_BACKGROUND: Final = frozenset({"leases", "nodes/status"})
"""Heartbeats (node leases, leader election, node status): written on a clock, not per
actuation, so reported apart from what the actuations cost."""


def apiserver_writes(metrics_text: str) -> Counter[str]:
    """Writes the apiserver served so far, by `VERB resource[/subresource]`, from its
    `apiserver_request_total` (every client's: the controller's, the scheduler's bindings, the
    kubelet's status updates, Events). Two readings subtract to what a run cost."""
    counts: Counter[str] = Counter()
    for family in text_string_to_metric_families(metrics_text):
        if family.name != "apiserver_request":
            continue
        for sample in family.samples:
            labels = sample.labels
            if sample.name != "apiserver_request_total" or labels.get("verb") not in _WRITE_VERBS:
                continue
            resource = labels.get("resource", "")
            if labels.get("subresource"):
                resource += "/" + labels["subresource"]
            counts[f"{labels['verb']} {resource}"] += int(sample.value)
    return counts


WRITES_SETTLE_S: Final = 1.5
"""How long after an actuation its last writes may still come: the controller writes its
Events `controller.cli.EVENT_DELAY_S` (1 s) late, after a burst. A reading taken at once would
count them in the next phase."""


def writes_per(before: Counter[str], after: Counter[str], actuations: int) -> dict[str, Any]:
    """What `actuations` actuations cost the apiserver in writes, per actuation and by kind;
    heartbeats in the same time are counted apart (`background`)."""
    spent = after - before
    background = Counter({k: v for k, v in spent.items() if k.split(" ", 1)[1] in _BACKGROUND})
    spent -= background
    total = sum(spent.values())
    return {
        "per_actuation": round(total / actuations, 2) if actuations else None,
        "total": total,
        "by_kind": dict(spent.most_common()),
        "background": dict(background.most_common()),
    }
