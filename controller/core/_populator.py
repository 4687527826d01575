"""Launcher-populator decisions (contracts §10, reference-differences E2).

`policy_table` turns LPPs, LCs and Nodes into the desired launcher count per (node, LC) and
the status of each LC and LPP; `decide_population` decides, for one (node, LC) key, which
launcher Pods to create or delete, which to label stuck, and the phase counts for
`fma_launcher_pod_count`. Expectations (waiting for the cache after own writes) belong to the
I/O layer. fma's change (E2): excess launchers are deleted emptiest first (no instances, then
fewest), then least recently used, instead of "from the end of the list".
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from contract import keys
from controller.core import _actions as a
from controller.core._launcher_pod import (
    LauncherTemplate,
    LauncherTemplateError,
    build_launcher_template,
)
from controller.core._selector import SelectorError, check_selector, matches
from controller.core._snapshot import ref
from controller.core._views import LauncherView, NodeView
from crds.models import LauncherConfig, LauncherPopulationPolicy

HANDS_OFF: Final = -1
Phase = Literal["bound", "unbound", "stuck_scheduling", "stuck_starting", "stale"]
LauncherPhase = Phase
"""The phase of a launcher Pod in `fma_launcher_pod_count` and the stuck logic (§10)."""


@dataclass(frozen=True, slots=True)
class LcBuild:
    """An LC's node-independent template, or why it cannot be built."""

    template: LauncherTemplate | None
    error: str | None


def build_lcs(lcs: Iterable[LauncherConfig], *, with_reflector: bool = False) -> dict[str, LcBuild]:
    """Build every LC's template once per pass."""
    out = {}
    for lc in lcs:
        try:
            out[lc.metadata.name or ""] = LcBuild(
                build_launcher_template(lc, with_reflector=with_reflector), None
            )
        except LauncherTemplateError as error:
            out[lc.metadata.name or ""] = LcBuild(None, str(error))
    return out


def lc_status_errors(build: LcBuild, *, rejection: str | None = None) -> list[str] | None:
    """`LC.status.errors`: the build error, or None (absent) when the template is fine.

    fma's addition: `rejection` is the apiserver's answer when it refused the last launcher
    Pod built from this template (422, e.g. an extended resource with requests but no limits),
    which the template build cannot foresee; without it the user would see nothing but retries.
    """
    if build.error:
        return [build.error]
    if rejection:
        return [f"the apiserver rejects launcher Pods built from spec.podTemplate: {rejection}"]
    return None


def build_changed(old: LcBuild | None, new: LcBuild | None) -> bool:
    """Whether an LC's existence, validity or template hash changed (its keys need a pass)."""

    def identity(build: LcBuild | None) -> tuple[bool, str | None, str | None]:
        if build is None:
            return (False, None, None)
        return (True, build.template.template_hash if build.template else None, build.error)

    return identity(old) != identity(new)


def status_patch(
    status: Mapping[str, Any] | None, *, generation: int | None, errors: Sequence[str] | None
) -> dict[str, Any] | None:
    """The `status` merge patch of an LC or LPP, or None when the status already says so.

    An empty error list and an absent one are the same; the patch removes `errors` (null)
    when there are none, so the written status never carries an empty list.
    """
    want = list(errors) if errors else None
    current = status or {}
    if current.get("observedGeneration") == generation and (current.get("errors") or None) == want:
        return None
    return {"observedGeneration": generation, "errors": want}


@dataclass(frozen=True, slots=True)
class PolicyTable:
    """Desired launchers per (node, LC), HANDS_OFF where the LC is missing or malformed."""

    desired: Mapping[tuple[str, str], int]
    lpp_errors: Mapping[str, list[str]]

    def changed_keys(self, other: PolicyTable) -> set[tuple[str, str]]:
        """The (node, LC) entries whose desired count differs between the two tables."""
        return {
            key
            for key in self.desired.keys() | other.desired.keys()
            if self.desired.get(key) != other.desired.get(key)
        }


def policy_table(
    lpps: Iterable[LauncherPopulationPolicy],
    builds: Mapping[str, LcBuild],
    nodes: Iterable[NodeView],
) -> PolicyTable:
    """Evaluate all LPPs: the max count per (node, LC) over the LPPs selecting the node."""
    desired: dict[tuple[str, str], int] = {}
    errors: dict[str, list[str]] = {}
    live_nodes = [node for node in nodes if not node.deleting]
    for lpp in lpps:
        name = lpp.metadata.name or ""
        problems: list[str] = []
        if lpp.spec is None:
            errors[name] = ["spec is missing"]
            continue
        counts: dict[str, int] = {}
        for entry in lpp.spec.count_for_launcher:
            lc = entry.launcher_config_name
            build = builds.get(lc)
            if build is None:
                problems.append(
                    f'LauncherConfig "{lc}" referenced in CountForLauncher does not exist'
                )
            elif build.error:
                problems.append(
                    f'LauncherConfig "{lc}" referenced in CountForLauncher is malformed: '
                    f"{build.error}"
                )
            counts[lc] = max(counts.get(lc, 0), entry.launcher_count, 0)
        try:
            check_selector(lpp.spec.enhanced_node_selector)
        except SelectorError as error:
            errors[name] = [str(error), *problems]
            continue
        errors[name] = problems
        for node in live_nodes:
            if not matches(lpp.spec.enhanced_node_selector, node):
                continue
            for lc, count in counts.items():
                build = builds.get(lc)
                key = (node.name, lc)
                if build is None or build.error:
                    desired[key] = HANDS_OFF
                elif desired.get(key) != HANDS_OFF:
                    desired[key] = max(desired.get(key, 0), count)
    return PolicyTable(desired, errors)


@dataclass(frozen=True, slots=True, kw_only=True)
class PopulatorSettings:
    """Thresholds of §10 (seconds). The defaults of `fma-controller`'s flags of the same names
    (`controller.populator` reads them from here) and of the chart."""

    stuck_scheduling_threshold_s: float = 120.0
    """`--stuck-scheduling-threshold`: an unscheduled launcher is stuck this long after its
    creation."""
    stuck_starting_threshold_s: float = 450.0
    """`--stuck-starting-threshold`: a scheduled launcher that is not Ready is stuck this long
    after its `PodScheduled` transition."""
    keep_sleepers_s: float = 1800.0
    """`--keep-sleepers`, fma's addition (reference-differences E2): on a key no LPP covers, an
    unbound launcher that holds instances is kept until this long after its most recent instance was
    last used (or created), so the hot path survives a scale to zero; instances of unknown age,
    or a launcher whose instances are unknown, keep it indefinitely. 0 is the reference: such
    launchers are deleted as soon as they are unbound, sleepers and all, which ends the hot path
    for nodes no policy covers."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PopulationDecision:
    """What to do for one (node, LC) key."""

    create: tuple[dict[str, object], ...] = ()
    actions: tuple[a.Action, ...] = ()
    phase_counts: Mapping[Phase, int] = field(default_factory=dict)
    requeue_after: float | None = None


def launcher_phase(
    launcher: LauncherView, template_hash: str | None, now: float, settings: PopulatorSettings
) -> Phase:
    """§10 phase, first match wins."""
    pod = launcher.pod
    if pod.bound_to is not None:
        return "bound"
    if template_hash is not None and pod.annotations.get(keys.TEMPLATE_HASH) != template_hash:
        return "stale"
    if pod.ready:
        return "unbound"
    if pod.scheduled_at is not None:
        late = now - pod.scheduled_at > settings.stuck_starting_threshold_s
        return "stuck_starting" if late else "unbound"
    late = now - pod.created_at > settings.stuck_scheduling_threshold_s
    return "stuck_scheduling" if late else "unbound"


def decide_population(
    *,
    node: NodeView | None,
    lc_name: str,
    desired: int | None,
    build: LcBuild | None,
    launchers: Iterable[LauncherView],
    now: float,
    settings: PopulatorSettings = PopulatorSettings(),
) -> PopulationDecision:
    """§10 per-key steps 1-9. `desired` None = no LPP covers the key (desired 0)."""
    pods = sorted(launchers, key=lambda lv: lv.name)
    template = build.template if build else None
    th = template.template_hash if template else None
    counts: dict[Phase, int] = {}
    for lv in pods:
        phase = launcher_phase(lv, th, now, settings)
        counts[phase] = counts.get(phase, 0) + 1
    requeue = _next_stuck(pods, now, settings)
    if desired == HANDS_OFF or template is None or node is None or node.deleting:
        return PopulationDecision(phase_counts=counts, requeue_after=requeue)
    want = desired if desired is not None else 0
    deleting, bound, stale, current = _classify(pods, th)
    actions: list[a.Action] = [
        a.DeletePod(pod=ref(lv.pod), reason="stale template") for lv in stale
    ]
    diff = want - (len(bound) + len(current) + len(stale))
    if diff < 0:
        held = _held(current, now, settings) if desired is None else {}
        excess = sorted((lv for lv in current if lv.name not in held), key=_deletion_order)
        actions += [
            a.DeletePod(pod=ref(lv.pod), reason="more launchers than desired")
            for lv in excess[:-diff]
        ]
        current = [lv for lv in current if lv not in excess[:-diff]]
        requeue = _earliest(requeue, [until - now for until in held.values()])
    actions += _stuck_reports(current, th, now, settings)
    if actions or deleting:
        return PopulationDecision(
            actions=tuple(actions),
            phase_counts=counts,
            requeue_after=requeue if not deleting else 1.0,
        )
    pods_to_create = tuple(template.for_node(node.name) for _ in range(max(diff, 0)))
    return PopulationDecision(create=pods_to_create, phase_counts=counts, requeue_after=requeue)


def _classify(
    pods: list[LauncherView], template_hash: str | None
) -> tuple[list[LauncherView], list[LauncherView], list[LauncherView], list[LauncherView]]:
    """§10 step 4: being deleted, bound, stale (unbound, other template), current unbound."""
    deleting = [lv for lv in pods if lv.pod.deleting]
    live = [lv for lv in pods if not lv.pod.deleting]
    bound = [lv for lv in live if lv.pod.bound_to is not None]
    unbound = [lv for lv in live if lv.pod.bound_to is None]
    stale = [lv for lv in unbound if lv.pod.annotations.get(keys.TEMPLATE_HASH) != template_hash]
    return deleting, bound, stale, [lv for lv in unbound if lv not in stale]


def _held(current: list[LauncherView], now: float, settings: PopulatorSettings) -> dict[str, float]:
    """Launchers kept for their sleepers (E2), by name: until when (inf: indefinitely)."""
    if settings.keep_sleepers_s <= 0:
        return {}
    held = {}
    for lv in current:
        if lv.instances == ():
            continue
        times = [i.last_used or i.created_at for i in lv.instances or ()]
        if lv.instances is None or None in times:
            held[lv.name] = math.inf
        elif (until := max(t for t in times if t is not None) + settings.keep_sleepers_s) > now:
            held[lv.name] = until
    return held


def _earliest(requeue: float | None, delays: Iterable[float]) -> float | None:
    finite = [d for d in delays if d < math.inf]
    return min([*finite, *([requeue] if requeue is not None else [])], default=None)


def _deletion_order(lv: LauncherView) -> tuple[int, float, str]:
    """E2: launchers without instances first, then fewest, then least recently used."""
    instances = lv.instances
    count = len(instances) if instances is not None else 1_000_000
    used = max(
        (i.last_used or i.created_at or 0.0 for i in instances or ()), default=lv.pod.created_at
    )
    return (count, used, lv.name)


def _stuck_reports(
    current: list[LauncherView], th: str | None, now: float, settings: PopulatorSettings
) -> list[a.Action]:
    actions: list[a.Action] = []
    for lv in current:
        phase = launcher_phase(lv, th, now, settings)
        stuck = phase in ("stuck_scheduling", "stuck_starting")
        labelled = lv.pod.labels.get(keys.STUCK) == "true"
        if stuck == labelled:
            continue
        patch = a.PodPatch(labels={keys.STUCK: "true" if stuck else None})
        actions.append(a.UpdatePod(pod=a.PodRef(name=lv.pod.name, uid=lv.pod.uid), patch=patch))
        if stuck:
            message = f"Launcher is stuck ({phase}); leaving it in place for investigation"
            actions.append(
                a.EmitEvent(
                    pod=ref(lv.pod), type="Warning", reason="LauncherStuck", message=message
                )
            )
    return actions


def _next_stuck(pods: list[LauncherView], now: float, settings: PopulatorSettings) -> float | None:
    """Seconds until the next unbound, not-Ready Pod would become stuck."""
    moments = []
    for lv in pods:
        pod = lv.pod
        if pod.bound_to is not None or pod.ready or pod.deleting:
            continue
        if pod.scheduled_at is not None:
            moments.append(pod.scheduled_at + settings.stuck_starting_threshold_s)
        else:
            moments.append(pod.created_at + settings.stuck_scheduling_threshold_s)
    future = [m - now for m in moments if m > now]
    return min(future) if future else None
