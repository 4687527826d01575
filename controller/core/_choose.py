"""Launcher mode without a provider: choose a launcher (hot, swap, warm, reclaim) or create one.

Contracts §8.3 with two fma changes: the reclaim plan with the **fewest** victims wins, then the
one whose victims were used least recently (reference-differences B2; the reference prefers more
victims), and a launcher that is past the stuck threshold or labelled `launcher-stuck` is not
waited for (A5), so a broken launcher does not block the cold path. fma's addition (issue 16):
between hot and warm, **swap**: a launcher holding a sleeper that can take the desired weights
in place (`swap_source`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from contract import keys
from contract.launcher import VllmConfig, swap_key
from controller.core import _actions as a
from controller.core._goyaml import GoYamlError
from controller.core._hashes import (
    instance_id,
    routing_metadata_json,
    vllm_config,
    vllm_config_json,
)
from controller.core._launcher_pod import LauncherTemplateError, build_launcher_template
from controller.core._memory import instance_last_used, recorded_last_used
from controller.core._routing import RoutingMetadata, validate
from controller.core._snapshot import ServerSnapshot, ref, requester_update, status_only
from controller.core._views import InstanceView, LauncherView, PodView


@dataclass(frozen=True, slots=True)
class Desired:
    """What the requester asks for: the instance ID, its config and routing metadata."""

    isc_name: str
    instance_id: str
    port: int
    config: VllmConfig
    routing: RoutingMetadata

    def bind_annotations(self) -> dict[str, str]:
        """The four controller annotations written at bind (§4.4)."""
        return {
            keys.INSTANCE_ID: self.instance_id,
            keys.SERVER_PORT: str(self.port),
            keys.VLLM_CONFIG: vllm_config_json(self.config),
            keys.ROUTING_METADATA: routing_metadata_json(
                self.routing.labels, self.routing.annotations
            ),
        }


@dataclass(frozen=True, slots=True)
class Plan:
    """A chosen launcher and the instances that will have to go (deleted once bound)."""

    launcher: LauncherView
    victims: tuple[InstanceView, ...]


def desired(snap: ServerSnapshot, gpus: tuple[str, ...]) -> Desired | str:
    """The desired instance, or the status error that prevents computing it."""
    req = snap.requester
    assert req is not None
    name = req.annotations.get(keys.ISC_ANNOTATION, "")
    if not name:
        return f'empty value for annotation "{keys.ISC_ANNOTATION}"'
    if snap.isc is None:
        return f'failed to get InferenceServerConfig "{name}": {snap.isc_error or "not found"}'
    cfg = snap.isc.spec.model_server_config
    try:
        iid = instance_id(cfg, gpus)
    except GoYamlError as error:
        return f"failed to configure inference server: {error}"
    routing = RoutingMetadata(dict(cfg.labels or {}), dict(cfg.annotations or {}))
    return Desired(name, iid, cfg.port, vllm_config(name, cfg, gpus), routing)


def decide_unbound_launcher_mode(  # noqa: PLR0911 - each lookup can end the pass
    snap: ServerSnapshot, gpus: tuple[str, ...]
) -> list[a.Action]:
    """§8.3: bind to the best launcher on the node, or create a bound one."""
    req = snap.requester
    assert req is not None and req.node_name is not None
    want = desired(snap, gpus)
    if isinstance(want, str):
        return status_only(snap, [want])
    lc_name = snap.isc.spec.launcher_config_name if snap.isc else ""
    if snap.lc is None:
        return status_only(
            snap, [f'failed to get LauncherConfig "{lc_name}": {snap.lc_error or "not found"}']
        )
    try:
        template = build_launcher_template(snap.lc)
    except LauncherTemplateError as error:
        message = f'LauncherConfig "{lc_name}" is malformed: {error}'
        return status_only(snap, [message], retry=snap.settings.retry_after)
    if problems := validate(want.routing):
        return status_only(snap, problems)
    config_hash = template.config_hash(req.node_name)
    cleanup, usable, pending = _classify(snap, config_hash)
    plan = rank(usable, want, snap.lc.spec.max_instances)
    if plan is not None:
        return cleanup + _bind(snap, plan, want)
    if pending:
        # Wait for a launcher that is still starting; its Ready event re-runs this, and the
        # requeue covers the moment it would count as stuck.
        first_stuck = min(lv.pod.created_at for lv in pending) + snap.settings.stuck_launcher_after
        wait = a.Requeue(after=max(first_stuck - snap.now, 0.0), reason="launcher starting")
        return [*cleanup, *requester_update(snap, errors=[]), wait]
    pod = _cold_launcher(template.for_node(req.node_name), req, want)
    # As for a direct provider: the bound path writes the requester once, naming the launcher.
    return [*cleanup, a.CreateLauncher(pod=pod, lc_name=lc_name)]


def _classify(
    snap: ServerSnapshot, config_hash: str
) -> tuple[list[a.Action], list[LauncherView], list[LauncherView]]:
    """Cleanup actions, launchers usable now, and launchers worth waiting for."""
    cleanup: list[a.Action] = []
    usable, pending = [], []
    for launcher in sorted(snap.launchers, key=lambda lv: lv.name):
        pod = launcher.pod
        if pod.annotations.get(keys.CONFIG_HASH) != config_hash:
            continue
        if pod.phase == "Failed" or pod.deleting or pod.bound_to is not None:
            continue
        if pod.ip is None or not pod.ready or launcher.instances is None:
            if not _stuck(snap, pod):
                pending.append(launcher)
            continue
        for inst in launcher.instances:
            if inst.stopped or inst.port is None:
                reason: a.DeleteReason = "stopped" if inst.stopped else "invalid"
                cleanup.append(
                    a.DeleteInstance(
                        launcher=ref(pod), ip=pod.ip, instance_id=inst.id, reason=reason
                    )
                )
        usable.append(launcher)
    return cleanup, usable, pending


def _stuck(snap: ServerSnapshot, pod: PodView) -> bool:
    """Known-gaps A5: do not wait for a launcher that is stuck."""
    if pod.labels.get(keys.STUCK) == "true":
        return True
    return snap.now - pod.created_at > snap.settings.stuck_launcher_after


def _live(launcher: LauncherView) -> list[InstanceView]:
    return [i for i in launcher.instances or () if not i.stopped and i.port is not None]


def rank(launchers: list[LauncherView], want: Desired, max_instances: int) -> Plan | None:
    """P1 hot, swap, P2 warm, P3 reclaim with the fewest victims, then the least recently used.

    Swap ranks below hot (a wake moves no weights from disk) and above warm (it skips the
    engine's start: seconds instead of tens of seconds). The swap's source is on the desired
    port, so the plan has no victims: the bound path swaps it, or deletes it if the launcher
    refuses and starts the instance fresh (warm) in the same action.
    """
    for launcher in launchers:
        if any(i.id == want.instance_id for i in _live(launcher)):
            return Plan(launcher, ())
    for launcher in launchers:
        if swap_source(_live(launcher), want.instance_id, want.config) is not None:
            return Plan(launcher, ())
    max_others = max_instances - 1
    for launcher in launchers:
        live = _live(launcher)
        if all(i.port != want.port for i in live) and len(live) <= max_others:
            return Plan(launcher, ())
    best: tuple[tuple[int, float, str], Plan] | None = None
    for launcher in launchers:
        recorded = recorded_last_used(launcher.pod.annotations)
        doomed = victims(_live(launcher), port=want.port, max_others=max_others, recorded=recorded)
        newest = max((instance_last_used(recorded, v) for v in doomed), default=0.0)
        key = (len(doomed), newest, launcher.name)
        if best is None or key < best[0]:
            best = (key, Plan(launcher, doomed))
    return best[1] if best else None


def swap_source(
    instances: Iterable[InstanceView], iid: str, config: VllmConfig
) -> InstanceView | None:
    """A sleeper that can take the weights of `config` in place, for instance `iid` (issue 16).

    It is asleep: on the launcher's word (`phase`; a reference launcher has no swap), or
    `ready` where the launcher has not yet probed the sleep the controller asked vLLM for (an
    unbound launcher holds only sleeping instances: contracts §3; the launcher asks vLLM again
    before it swaps). Its `swap_key` (every option but the model, the environment, the GPUs:
    contract.launcher) is the desired one, so it also sits on the desired port and the
    requester's GPUs. Whether the model files match too only the launcher can tell (it reads
    them); it refuses before any vLLM call when they do not, and the executor then goes warm.
    """
    key = swap_key(config)
    if key is None:
        return None
    for inst in instances:
        if inst.id == iid or inst.stopped or inst.phase not in ("sleeping", "ready"):
            continue
        # InstanceView.swap_key is filled from the launcher's InstanceState (the same
        # contract function over the options the sleeper was created with).
        if getattr(inst, "swap_key", None) == key:
            return inst
    return None


def swap_plan(launcher: LauncherView, iid: str, config: Mapping[str, Any]) -> InstanceView | None:
    """The bound path's swap source for the committed VllmConfig `config`, if any."""
    try:
        wanted = VllmConfig.model_validate(dict(config))
    except ValueError:
        return None
    return swap_source(launcher.instances or (), iid, wanted)


def victims(
    live: list[InstanceView],
    *,
    port: int,
    max_others: int,
    recorded: Mapping[str, float] | None = None,
) -> tuple[InstanceView, ...]:
    """What must go for one more instance on `port`: every instance on that port, then the
    least recently used others until at most `max_others` remain.

    Recency is the launcher's record (`recorded`, which survives a controller restart), else
    this controller's memory; equal times go by instance ID, so every run picks the same (B2).
    """
    times = recorded or {}
    conflicts = [i for i in live if i.port == port]
    others = sorted(
        (i for i in live if i.port != port), key=lambda i: (instance_last_used(times, i), i.id)
    )
    extra = max(len(live) - max_others - len(conflicts), 0)
    return tuple(conflicts + others[:extra])


def _bind(snap: ServerSnapshot, plan: Plan, want: Desired) -> list[a.Action]:
    """Claim the launcher with one conditional Update; nothing is destroyed before that.

    fma's change: the reference deletes a reclaim plan's victims first and binds after. Two
    requesters of one node decided at the same time may then both plan on one launcher: the
    loser's bind fails, but only after it deleted an instance the winner may have just woken.
    Here the victims are deleted by the bound path (`_bound`), once the launcher is ours.
    """
    req = snap.requester
    assert req is not None
    pod = plan.launcher.pod
    patch = a.PodPatch(
        labels={keys.DUAL: req.name},
        annotations={keys.REQUESTER: f"{req.uid} {req.name}", **want.bind_annotations()},
        add_finalizers=(keys.PROVIDER_FINALIZER,),
    )
    # The requester's side (status, accelerators, labels, finalizer) is written by the bound
    # path, in one Update with the wake or the instance create: on the hot path nothing but the
    # bind and the memory check stands between the requester and its wake-up.
    return [a.BindProvider(pod=ref(pod), patch=patch)]


def _cold_launcher(pod: dict[str, Any], req: PodView, want: Desired) -> dict[str, Any]:
    """§4.2 additions for a launcher the DPC creates: bound from the start."""
    meta = pod["metadata"]
    meta["annotations"].update({keys.REQUESTER: f"{req.uid} {req.name}", **want.bind_annotations()})
    meta["labels"][keys.DUAL] = req.name
    meta["finalizers"] = [keys.PROVIDER_FINALIZER]
    return pod
