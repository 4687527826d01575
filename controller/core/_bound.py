"""The bound path (contracts §8.5): create or wake the server, then relay readiness.

fma's changes: readiness in launcher mode is the launcher's instance phase `ready` (the
launcher health-checks its children, reference-differences A4/C3); an instance that stops, fails or
never becomes ready is reported in the requester's status (exit code and reason) and the requester
is deleted only after `failed_requester_delete_after` (A1); before a wake or an instance start the
GPU memory gate runs (B1); a wake that keeps failing deletes the sleeper so a fresh instance is
started (B1); routing labels that collide are skipped and reported (E3); a launcher that refuses
the instance's PUT (an unknown GPU UUID, C4) is a failure reported the same way, not a retry.
"""

from __future__ import annotations

import functools
from typing import Any

from pydantic import ValidationError

from contract import keys
from contract.launcher import VllmConfig
from controller.core import _actions as a
from controller.core._choose import swap_plan, victims
from controller.core._direct_pod import ProviderBuildError, vllm_port
from controller.core._gpu_memory import Need, instance_need, memory_gate, utilization
from controller.core._memory import recorded_last_used
from controller.core._routing import collisions, is_applied, parse_committed
from controller.core._snapshot import (
    ServerSnapshot,
    admin_port,
    container,
    ref,
    requester_update,
    status_only,
)
from controller.core._views import InstanceView, LauncherView, PodView


def decide_bound_launcher(snap: ServerSnapshot, provider: PodView) -> list[a.Action]:
    """Launcher mode, provider bound and neither Pod being deleted."""
    annotations = provider.annotations
    for key in keys.BIND_ANNOTATIONS:
        if key not in annotations:
            return status_only(
                snap,
                [f'bound launcher Pod "{provider.name}" is missing annotation "{key}"'],
                provider=provider,
            )
    iid, port_text = annotations[keys.INSTANCE_ID], annotations[keys.SERVER_PORT]
    routing = parse_committed(annotations[keys.ROUTING_METADATA])
    config = _committed_config(annotations[keys.VLLM_CONFIG])
    if not port_text.isdigit() or routing is None or config is None:
        return status_only(
            snap,
            [
                f'bound launcher Pod "{provider.name}" has invalid annotation '
                f'"{keys.SERVER_PORT}", "{keys.VLLM_CONFIG}" or "{keys.ROUTING_METADATA}"; '
                "delete the requester to start over"
            ],
            provider=provider,
        )
    if snap.memory.failure is not None or snap.memory.refusal is not None:
        return _failed_or_refused(snap, provider, iid)
    launcher = snap.launcher(provider)
    if provider.ip is None or not provider.ready or launcher.instances is None:
        return _launcher_not_ready(snap, provider, iid)
    cleanup = [
        a.DeleteInstance(launcher=ref(provider), ip=provider.ip, instance_id=i.id, reason="stopped")
        for i in launcher.instances
        if i.stopped and i.id != iid
    ]
    inst = launcher.instance(iid)
    if inst is None:
        return cleanup + _absent(snap, launcher, iid, int(port_text), config)
    seen: list[a.Action] = [] if snap.memory.instance_known else [a.Remember(what="instance-seen")]
    return seen + cleanup + _present(snap, launcher, inst, int(port_text), routing)


def _committed_config(text: str) -> dict[str, Any] | None:
    """The committed VllmConfig as the body to PUT again, or None if the text is not one."""
    parsed = _parse_config(text)
    return dict(parsed) if parsed is not None else None


@functools.lru_cache(maxsize=1024)
def _parse_config(text: str) -> dict[str, Any] | None:
    """Parsed once per text: every pass over a bound server reads its provider's annotation
    (the caller gets its own copy of the top level; nothing changes the values)."""
    try:
        return VllmConfig.model_validate_json(text).to_json()
    except ValidationError:
        return None


def _failed_or_refused(snap: ServerSnapshot, provider: PodView, iid: str) -> list[a.Action]:
    """A failure already reported, or the launcher's refusal of the PUT, reported now."""
    if snap.memory.failure is not None:
        return failed(snap, provider, iid)
    message = f'launcher Pod "{provider.name}" refused to create instance {iid}: '
    return _report_failure(snap, provider, iid, message + f"{snap.memory.refusal}")


def _launcher_not_ready(snap: ServerSnapshot, provider: PodView, iid: str) -> list[a.Action]:
    deadline = provider.created_at + snap.settings.launcher_start_timeout
    if snap.now >= deadline and not provider.ready:
        message = (
            f'launcher Pod "{provider.name}" did not become Ready within '
            f"{snap.settings.launcher_start_timeout:.0f}s"
        )
        return _report_failure(snap, provider, iid, message)
    return [
        *requester_update(snap, errors=[], provider=provider, instance_id=iid),
        a.Requeue(after=deadline - snap.now, reason="launcher starting"),
    ]


def _absent(
    snap: ServerSnapshot, launcher: LauncherView, iid: str, port: int, config: dict[str, object]
) -> list[a.Action]:
    req, provider = snap.requester, launcher.pod
    assert req is not None and provider.ip is not None
    created = snap.memory.instance_created_at
    if snap.memory.instance_known and created is not None:
        grace = created + snap.settings.instance_list_grace - snap.now
        if grace > 0:  # the launcher's stream has not shown our PUT yet
            return [a.Requeue(after=grace, reason="waiting for the launcher to list the instance")]
    if snap.memory.instance_known:
        message = (
            f'instance {iid} is gone from launcher Pod "{provider.name}" (launcher '
            "restarted?); deleting the requester so that it is recreated"
        )
        return [
            a.UpdateProvider(pod=ref(provider), patch=a.PodPatch(labels={keys.SLEEPING: "true"})),
            a.EmitEvent(pod=ref(req), type="Warning", reason="InstanceLost", message=message),
            a.DeleteRequester(pod=ref(req), reason=message),
        ]
    gpus = snap.memory.gpu_uuids or ()
    if (source := swap_plan(launcher, iid, config)) is not None:
        return _swap(snap, launcher, iid, source.id, config)
    if reclaim := _make_room(snap, launcher, iid, port):
        return reclaim
    need = instance_need(snap, launcher, iid, str(config.get("options", "")), "start")
    gate = memory_gate(snap, gpus=gpus, need=need, keep_instance=iid)
    if gate.wait:
        return gate.wait
    return [
        *gate.go,
        a.CreateInstance(launcher=ref(provider), ip=provider.ip, instance_id=iid, config=config),
        *requester_update(snap, errors=[], provider=provider, instance_id=iid),
    ]


def _swap(
    snap: ServerSnapshot, launcher: LauncherView, iid: str, source: str, config: dict[str, object]
) -> list[a.Action]:
    """Issue 16: new weights into the sleeper `source` (its port is ours, so nothing else has
    to go); the memory it needs is what its wake needs. The executor goes warm if the launcher
    refuses."""
    provider = launcher.pod
    assert provider.ip is not None
    options = str(config.get("options", ""))
    need = instance_need(snap, launcher, source, options, "wake")
    gate = memory_gate(snap, gpus=snap.memory.gpu_uuids or (), need=need, keep_instance=source)
    if gate.wait:
        return gate.wait
    swap = a.SwapInstance(
        launcher=ref(provider), ip=provider.ip, instance_id=iid, source_id=source, config=config
    )
    return [
        *gate.go,
        swap,
        *requester_update(snap, errors=[], provider=provider, instance_id=iid),
    ]


def _make_room(snap: ServerSnapshot, launcher: LauncherView, iid: str, port: int) -> list[a.Action]:
    """§8.3 P3, done once the launcher is bound to us: free the port and `maxInstances`."""
    provider = launcher.pod
    assert provider.ip is not None
    live = [i for i in launcher.instances or () if not i.stopped and i.id != iid]
    limit = snap.lc.spec.max_instances if snap.lc is not None else len(live) + 1
    recorded = recorded_last_used(provider.annotations)
    return [
        a.DeleteInstance(launcher=ref(provider), ip=provider.ip, instance_id=v.id, reason="reclaim")
        for v in victims(live, port=port, max_others=limit - 1, recorded=recorded)
    ]


def _present(
    snap: ServerSnapshot, launcher: LauncherView, inst: InstanceView, port: int, routing: object
) -> list[a.Action]:
    provider = launcher.pod
    assert provider.ip is not None
    if inst.stopped:
        code = "unknown" if inst.exit_code is None else str(inst.exit_code)
        why = f": {inst.reason}" if inst.reason else ""
        message = (
            f'instance {inst.id} in launcher Pod "{provider.name}" stopped (exit code {code}){why}'
        )
        if inst.reason:  # fma's launcher: the reason holds the log's last lines already
            return _report_failure(snap, provider, inst.id, message)
        return _instance_failure(snap, provider, inst.id, message)
    sleeping = inst.phase == "sleeping" if inst.phase is not None else snap.memory.sleeping
    if inst.phase == "starting" or (inst.phase is None and sleeping is None):
        return _starting(snap, provider, inst, port)
    if sleeping:
        return _wake(snap, launcher, inst, port)
    ready = inst.phase in ("ready", None)
    serving = _serving(snap, provider, inst.id, routing, port=port, ready=ready)
    return serving + _measure_after(snap) if ready else serving


def _measure_after(snap: ServerSnapshot) -> list[a.Action]:
    """B1: once a measured wake or start serves, read memory again (after the ready relay, so
    readiness does not wait for it); the rise is the instance's footprint (`_memory`)."""
    memory, req = snap.memory, snap.requester
    since = memory.footprint_since
    if since is None or memory.footprint_base is None or req is None or req.ip is None:
        return []
    if memory.memory_usage_at is not None and memory.memory_usage_at > since:
        return []
    return [a.QueryMemoryUsage(ip=req.ip, port=admin_port(req))]


def _starting(
    snap: ServerSnapshot, provider: PodView, inst: InstanceView, port: int
) -> list[a.Action]:
    started = snap.memory.instance_created_at or inst.created_at or snap.now
    deadline = started + snap.settings.instance_start_timeout
    if snap.now >= deadline:
        message = (
            f'instance {inst.id} in launcher Pod "{provider.name}" did not become ready '
            f"within {snap.settings.instance_start_timeout:.0f}s"
        )
        return _instance_failure(snap, provider, inst.id, message)
    actions = requester_update(snap, errors=[], provider=provider, instance_id=inst.id)
    actions += _relay(snap, ready=False)
    if inst.phase is None:
        assert provider.ip is not None
        actions.append(a.QuerySleeping(ip=provider.ip, port=port))
    actions.append(a.Requeue(after=deadline - snap.now, reason="instance starting"))
    return actions


def _wake(
    snap: ServerSnapshot, launcher: LauncherView, inst: InstanceView, port: int
) -> list[a.Action]:
    provider = launcher.pod
    assert provider.ip is not None
    if snap.memory.wake_failures >= snap.settings.max_wake_failures:
        reason = snap.memory.last_wake_error or "unknown error"
        req = snap.requester
        assert req is not None
        message = (
            f"waking instance {inst.id} failed {snap.memory.wake_failures} times "
            f"({reason}); deleting it to start a fresh one"
        )
        return [
            a.EmitEvent(pod=ref(req), type="Warning", reason="WakeFailed", message=message),
            a.DeleteInstance(
                launcher=ref(provider), ip=provider.ip, instance_id=inst.id, reason="wedged"
            ),
        ]
    options = _committed_options(provider)
    need = instance_need(snap, launcher, inst.id, options, "wake")
    gate = memory_gate(snap, gpus=snap.memory.gpu_uuids or (), need=need, keep_instance=inst.id)
    if gate.wait:
        return gate.wait
    return [
        *gate.go,
        a.Wake(ip=provider.ip, port=port),
        *requester_update(snap, errors=[], provider=provider, instance_id=inst.id),
    ]


def _committed_options(provider: PodView) -> str:
    """The bound instance's vLLM options, from the committed VllmConfig ("" if unreadable)."""
    config = _committed_config(provider.annotations.get(keys.VLLM_CONFIG, ""))
    return str((config or {}).get("options", ""))


def _serving(
    snap: ServerSnapshot, provider: PodView, iid: str, routing: object, *, port: int, ready: bool
) -> list[a.Action]:
    """Awake: sleeping label, routing metadata (minus collisions), status, readiness."""
    from controller.core._routing import RoutingMetadata

    assert isinstance(routing, RoutingMetadata)
    problems: list[str] = []
    labels: dict[str, str | None] = {}
    annotations: dict[str, str | None] = {}
    if provider.labels.get(keys.SLEEPING) != "false":
        labels[keys.SLEEPING] = "false"
    if not is_applied(routing, provider.labels, provider.annotations):
        problems, usable = collisions(routing, provider.labels, provider.annotations)
        labels.update({k: v for k, v in usable.labels.items() if provider.labels.get(k) != v})
        annotations.update(
            {k: v for k, v in usable.annotations.items() if provider.annotations.get(k) != v}
        )
    actions: list[a.Action] = []
    if labels or annotations:
        patch = a.PodPatch(labels=labels, annotations=annotations)
        actions.append(a.UpdateProvider(pod=ref(provider), patch=patch))
    actions += requester_update(snap, errors=problems, provider=provider, instance_id=iid)
    assert provider.ip is not None
    return actions + _relay(snap, ready=ready, target=(provider.ip, port))


def decide_bound_direct(snap: ServerSnapshot, provider: PodView) -> list[a.Action]:  # noqa: PLR0911
    """Direct mode, provider bound and neither Pod being deleted."""
    try:
        port = vllm_port(container(provider.raw))
    except ProviderBuildError as error:
        return status_only(snap, [str(error)], provider=provider)
    if snap.memory.failure is not None:
        return failed(snap, provider, None)
    deadline = provider.created_at + snap.settings.instance_start_timeout
    if provider.phase == "Failed" or (snap.memory.sleeping is None and snap.now >= deadline):
        message = (
            f'server-providing Pod "{provider.name}" did not start serving within '
            f"{snap.settings.instance_start_timeout:.0f}s (phase {provider.phase})"
        )
        return _report_failure(snap, provider, None, message)
    if provider.ip is None or snap.memory.sleeping is None:
        actions = requester_update(snap, errors=[], provider=provider) + _relay(snap, ready=False)
        if provider.ip is not None:
            actions.append(a.QuerySleeping(ip=provider.ip, port=port))
        return [*actions, a.Requeue(after=snap.settings.retry_after, reason="vLLM starting")]
    if snap.memory.sleeping:
        gpus = snap.memory.gpu_uuids or ()
        indices = _direct_indices(snap, provider, gpus)
        server = container(provider.raw)
        argv = [str(w) for w in [*(server.get("command") or []), *(server.get("args") or [])]]
        need = Need(utilization=utilization(argv, snap.settings.gpu_memory_utilization))
        gate = memory_gate(snap, gpus=gpus, need=need, gpu_indices=indices)
        if gate.wait:
            return gate.wait
        return [
            a.Wake(ip=provider.ip, port=port),
            *requester_update(snap, errors=[], provider=provider),
        ]
    serving: list[a.Action] = []
    if provider.labels.get(keys.SLEEPING) != "false":
        patch = a.PodPatch(labels={keys.SLEEPING: "false"})
        serving.append(a.UpdateProvider(pod=ref(provider), patch=patch))
    serving += requester_update(snap, errors=[], provider=provider)
    return serving + _relay(snap, ready=provider.ready, target=(provider.ip, port))


def _direct_indices(
    snap: ServerSnapshot, provider: PodView, gpus: tuple[str, ...]
) -> dict[str, int]:
    node = provider.node or ""
    mapping = (snap.gpu_map or {}).get(node, {})
    return {u: mapping[u] for u in gpus if u in mapping}


def _instance_failure(
    snap: ServerSnapshot, provider: PodView, iid: str, message: str
) -> list[a.Action]:
    """A launcher instance failed: read its last log lines first, so that they stay on the
    requester (status and Event) after the instance and its log are deleted."""
    tail = snap.memory.log_tail
    if tail is None and provider.ip is not None:
        return [a.QueryLogTail(ip=provider.ip, instance_id=iid)]
    if tail:
        message = f"{message}; last log lines:\n{tail}"
    return _report_failure(snap, provider, iid, message)


def _report_failure(
    snap: ServerSnapshot, provider: PodView, iid: str | None, message: str
) -> list[a.Action]:
    """First sight of a failure: remember it (timer starts), report it, relay unready."""
    req = snap.requester
    assert req is not None
    return [
        a.Remember(what="failure", message=message),
        a.EmitEvent(pod=ref(req), type="Warning", reason="ServerFailed", message=message),
        *requester_update(snap, errors=[message], provider=provider, instance_id=iid),
        *_relay(snap, ready=False),
        a.Requeue(after=snap.settings.failed_requester_delete_after, reason="failure reported"),
    ]


def failed(snap: ServerSnapshot, provider: PodView, iid: str | None) -> list[a.Action]:
    """A reported failure: keep it visible, then delete the requester after the timeout."""
    req = snap.requester
    assert req is not None and snap.memory.failure is not None
    message = snap.memory.failure
    since = snap.memory.failed_at if snap.memory.failed_at is not None else snap.now
    remaining = since + snap.settings.failed_requester_delete_after - snap.now
    if remaining > 0:
        actions = requester_update(snap, errors=[message], provider=provider, instance_id=iid)
        return [*actions, *_relay(snap, ready=False), a.Requeue(after=remaining, reason=message)]
    return [a.DeleteRequester(pod=ref(req), reason=message)]


def _relay(
    snap: ServerSnapshot, *, ready: bool, target: tuple[str, int] | None = None
) -> list[a.Action]:
    """§8.5 step 10: relay readiness when it changed; observe the actuation on the first ready.

    fma's changes: a ready relay is preceded by the proxy configuration (`target`, the bound
    server's address and port) whenever the requester container has not been given it, so its
    serving ports lead to vLLM before a Service routes there; that includes a stub that
    restarted (and lost both) and a controller that restarted (the PUT is idempotent). When the
    ready relay was answered before the cache showed the requester's container as Running (a
    fast hot path beats the kubelet's status update), the actuation is observed on a later
    pass, from the container's start to that answer (`relayed_at`).
    """
    req = snap.requester
    memory = snap.memory
    if req is None or req.ip is None:
        return []
    if ready and target is not None and memory.proxied != (*target, req.restarts):
        return _configure_then_relay(snap, req, target)
    if memory.relayed_ready == ready:
        late = ready and memory.relayed_at is not None
        return _observation(snap, end=memory.relayed_at) if late else []
    if req.server_ready == ready:
        return [a.Remember(what="relayed", ready=ready)]
    port = admin_port(req)
    if not ready:
        return [a.RelayUnready(ip=req.ip, port=port, uid=req.uid)]
    return [a.RelayReady(ip=req.ip, port=port, uid=req.uid), *_observation(snap, end=snap.now)]


def _configure_then_relay(
    snap: ServerSnapshot, req: PodView, target: tuple[str, int]
) -> list[a.Action]:
    assert req.ip is not None
    port = admin_port(req)
    configure = a.ConfigureProxy(
        ip=req.ip,
        port=port,
        uid=req.uid,
        address=target[0],
        target_port=target[1],
        restarts=req.restarts,
    )
    if req.server_ready:  # already serving: a controller restart, keep what it has
        return [configure, a.Remember(what="relayed", ready=True)]
    relay = a.RelayReady(ip=req.ip, port=port, uid=req.uid)
    return [configure, relay, *_observation(snap, end=snap.now)]


def _observation(snap: ServerSnapshot, *, end: float | None) -> list[a.Action]:
    """`ObserveActuation` once per server, when the requester container's start is known."""
    req, memory = snap.requester, snap.memory
    assert req is not None
    started = req.server_started_at
    if memory.actuation_observed or not req.server_running or started is None or end is None:
        return []
    return [
        a.ObserveActuation(
            path=memory.path or "hot",
            instances_deleted=memory.instances_deleted,
            seconds=max(end - started, 0.0),
            isc_name=req.annotations.get(keys.ISC_ANNOTATION, ""),
            started_at=started,
        )
    ]
