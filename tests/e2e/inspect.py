"""Reading the state of an end-to-end run: Pods as JSON, launchers and their instances, metrics,
and the protocol's invariants (what the fault-injection test checks after every recovery).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

import httpx
from prometheus_client.parser import text_string_to_metric_families

from localcluster.fma.environment import FmaEnvironment

Pod = dict[str, Any]
REQUESTER: Final = "dual-pods.llm-d.ai/requester"
PROVIDER_FINALIZER: Final = "dual-pods.llm-d.ai/provider"
REQUESTER_FINALIZER: Final = "dual-pods.llm-d.ai/requester"
LC_LABEL: Final = "dual-pods.llm-d.ai/launcher-config-name"
NODE_LABEL: Final = "dual-pods.llm-d.ai/node-name"


def pods(env: FmaEnvironment, selector: str | None = None) -> list[Pod]:
    """The namespace's Pods as the apiserver's JSON (no client model round trip)."""
    kwargs = {"label_selector": selector} if selector else {}
    response = env.core.list_namespaced_pod(env.namespace, _preload_content=False, **kwargs)
    items: list[Pod] = json.loads(response.data)["items"]
    return items


def pod(env: FmaEnvironment, name: str) -> Pod | None:
    found = [p for p in pods(env) if p["metadata"]["name"] == name]
    return found[0] if found else None


def meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


def ready(obj: Mapping[str, Any]) -> bool:
    conditions = (obj.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def live(obj: Mapping[str, Any]) -> bool:
    return not meta(obj).get("deletionTimestamp")


def requesters(env: FmaEnvironment, app: str) -> list[Pod]:
    return pods(env, f"app={app}")


def ready_requester(env: FmaEnvironment, app: str, timeout: float = 30.0) -> Pod:
    """The first live, Ready requester of the Deployment `app` (waits up to `timeout`)."""

    def check() -> Pod | None:
        found = [p for p in requesters(env, app) if live(p) and ready(p)]
        return found[0] if found else None

    result: Pod = env.wait(f"a Ready requester of {app}", check, timeout)
    return result


def launchers(env: FmaEnvironment, node: str | None = None) -> list[Pod]:
    selector = LC_LABEL if node is None else f"{LC_LABEL},{NODE_LABEL}={node}"
    return pods(env, selector)


def binding(obj: Mapping[str, Any]) -> tuple[str, str] | None:
    value = (meta(obj).get("annotations") or {}).get(REQUESTER) or ""
    parts = value.split(" ")
    return (parts[0], parts[1]) if len(parts) == 2 and all(parts) else None


def providers_of(env: FmaEnvironment, requester: Mapping[str, Any]) -> list[Pod]:
    uid = meta(requester)["uid"]
    return [p for p in pods(env) if (binding(p) or ("",))[0] == uid]


def instances(launcher: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The launcher's instances (`GET /v2/vllm/instances`), straight from its API."""
    ip = (launcher.get("status") or {}).get("podIP")
    if not ip:
        return []
    try:
        response = httpx.get(f"http://{ip}:8001/v2/vllm/instances", timeout=5, trust_env=False)
    except httpx.HTTPError:
        return []
    found: list[dict[str, Any]] = response.json().get("instances") or []
    return found


def metric(text: str, name: str, labels: Mapping[str, str] | None = None) -> float:
    """The sum of the samples of `name` whose labels include `labels` (0 if none)."""
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(
                sample.labels.get(k) == v for k, v in (labels or {}).items()
            ):
                total += sample.value
    return total


def violations(env: FmaEnvironment) -> list[str]:
    """What breaks the protocol's invariants right now (empty when all hold).

    - at most one provider per requester;
    - vLLM awake ⇒ its provider is bound (no awake instance in an unbound launcher);
    - no finalizer left on a Pod whose partner is gone.
    """
    everything = pods(env)
    by_uid = {meta(p)["uid"]: p for p in everything}
    problems: list[str] = []
    bound: dict[str, list[str]] = {}
    for p in everything:
        name, finalizers = meta(p)["name"], meta(p).get("finalizers") or []
        pair = binding(p)
        if pair is not None:
            bound.setdefault(pair[0], []).append(name)
        if PROVIDER_FINALIZER in finalizers and (pair is None or pair[0] not in by_uid):
            problems.append(f"provider {name} keeps its finalizer but its requester is gone")
        if REQUESTER_FINALIZER in finalizers and meta(p)["uid"] not in bound_uids(everything):
            problems.append(f"requester {name} keeps its finalizer but has no provider")
        if LC_LABEL in (meta(p).get("labels") or {}) and pair is None and live(p):
            awake = [i["instance_id"] for i in instances(p) if _awake(p, i)]
            if awake:
                problems.append(f"unbound launcher {name} has awake instances {awake}")
    problems += [f"requester {u} has providers {n}" for u, n in bound.items() if len(n) > 1]
    return problems


def bound_uids(everything: list[Pod]) -> set[str]:
    return {pair[0] for p in everything if (pair := binding(p)) is not None}


def _awake(launcher: Mapping[str, Any], instance: Mapping[str, Any]) -> bool:
    """Asked of the instance itself (`/is_sleeping`), not of the launcher's last probe."""
    if instance.get("status") != "running":
        return False
    port = (instance.get("annotations") or {}).get("inference-port")
    ip = (launcher.get("status") or {}).get("podIP")
    try:
        response = httpx.get(f"http://{ip}:{port}/is_sleeping", timeout=5, trust_env=False)
        return response.json().get("is_sleeping") is False
    except (httpx.HTTPError, ValueError):
        return instance.get("phase") == "starting"  # not listening yet: starting, so awake
