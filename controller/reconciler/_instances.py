"""Instances as the decisions see them: the launcher's stream, plus what we did and remember.

Two things the launcher's stream cannot tell by itself:

- **Our own changes not reported yet.** The launcher learns an instance's sleep state by
  probing it (fma launchers, every `--probe-interval`), so right after our `POST /wake_up` its
  stream may still say `sleeping`, and right after our `POST /sleep` still `ready`. A decision
  made on that would wake an instance twice, delay a ready relay by a probe period, or — worse —
  relay a just-slept instance as ready to the next requester bound to it. So after a wake,
  sleep or delete succeeds we hold an *override* for that instance: its phase is what we made
  it (or it is hidden, once deleted) until the launcher reports a newer revision of it that
  agrees (`ready` after a wake, `sleeping` after a sleep, stopped or failed after anything), or
  one without a phase (a reference launcher, whose revisions change with its state only), or
  `HOLD_MAX_S` has passed. A newer revision alone is not enough: an fma launcher's stream also
  reports the growth of an instance's log, and our own `POST /wake_up` adds a line to it before
  the launcher's next probe sees the engine awake; taking that revision as news made about
  half of the wakes go out twice in `bench/hot_path.py`. This is the executor contract's "wait
  for caches to show own writes", applied to launcher state.
- **Recency.** The reference keeps least-recently-used times in memory; so do we: when this
  controller first saw an instance, and when it last put it to sleep (reference-differences B2 would
  persist them; a restart starts them again at "now", as contracts §8.7 allows).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from contract.launcher import InstanceState, Phase, swap_key
from controller.core import InstanceView

Override = Literal["awake", "asleep", "gone"]


_AGREEING: Final[dict[Override, Phase]] = {"awake": "ready", "asleep": "sleeping"}
"""The launcher's `phase` that confirms an override."""

HOLD_MAX_S: Final = 10.0
"""An override ends at the latest this long after the call: the launcher probes each instance
every second (`--probe-interval`), so by then its word is news, not our call's echo."""


@dataclass(slots=True)
class _Held:
    state: Override
    revision: int
    """The instance's revision when we acted: the override holds while the stream is not newer."""
    since: float
    """When the call succeeded."""

    def ends(self, phase: Phase | None, running: bool, revision: int, now: float) -> bool:
        """Whether the launcher's report at `revision` ends the override (module docstring)."""
        if revision <= self.revision:
            return False
        if phase is None or not running or phase == "failed" or now - self.since > HOLD_MAX_S:
            return True
        return _AGREEING.get(self.state) == phase


@dataclass(frozen=True, slots=True)
class _Parsed:
    raw: Mapping[str, Any]
    state: InstanceState
    swap_key: str | None


@dataclass(slots=True)
class _Times:
    first_seen: float
    last_used: float | None = None


def revision_of(instance: Mapping[str, Any]) -> int:
    value = instance.get("revision")
    return value if isinstance(value, int) else -1


class InstanceBook:
    """Overrides and LRU times of every instance, by launcher Pod UID, then instance ID."""

    def __init__(self) -> None:
        self._held: dict[str, dict[str, _Held]] = {}
        self._times: dict[str, dict[str, _Times]] = {}
        self._parsed: dict[str, dict[str, _Parsed]] = {}

    def hold(
        self, launcher: str, instance_id: str, state: Override, revision: int, *, now: float
    ) -> None:
        """We just (at `now`) woke, slept or deleted this instance, as seen at `revision`."""
        self._held.setdefault(launcher, {})[instance_id] = _Held(state, revision, now)

    def used(self, launcher: str, instance_id: str, now: float) -> None:
        """The instance stopped serving a requester (it was put to sleep) at `now`."""
        times = self._times.setdefault(launcher, {})
        times.setdefault(instance_id, _Times(first_seen=now)).last_used = now

    def seen(self, launcher: str, instances: Mapping[str, Mapping[str, Any]], now: float) -> None:
        """The launcher's current instances (its stream changed): start and end records."""
        times = self._times.setdefault(launcher, {})
        for instance_id in instances:
            times.setdefault(instance_id, _Times(first_seen=now))
        books: tuple[dict[str, Any], ...] = (
            times,
            self._held.get(launcher, {}),
            self._parsed.get(launcher, {}),
        )
        for book in books:
            for instance_id in [i for i in book if i not in instances]:
                del book[instance_id]

    def forget_launcher(self, launcher: str) -> None:
        self._times.pop(launcher, None)
        self._held.pop(launcher, None)
        self._parsed.pop(launcher, None)

    def views(
        self, launcher: str, instances: Mapping[str, Mapping[str, Any]], now: float
    ) -> tuple[InstanceView, ...]:
        """The instances of one launcher as decisions see them (overrides applied)."""
        out = []
        for instance_id, raw in sorted(instances.items()):
            view = self._view(launcher, instance_id, raw, now)
            if view is not None:
                out.append(view)
        return tuple(out)

    def _state(self, launcher: str, instance_id: str, raw: Mapping[str, Any]) -> _Parsed:
        """The instance's wire state and swap key, parsed once per report: every pass over a
        server reads every instance of its node's launchers, and the stream replaces an
        instance's object with each event (it never edits one), so the same object is the same
        report."""
        cached = self._parsed.get(launcher, {}).get(instance_id)
        if cached is not None and cached.raw is raw:
            return cached
        state = InstanceState.from_wire(raw)
        parsed = _Parsed(raw, state, swap_key(state))
        self._parsed.setdefault(launcher, {})[instance_id] = parsed
        return parsed

    def same_view(
        self,
        launcher: str,
        instance_id: str,
        before: Mapping[str, Any],
        after: Mapping[str, Any],
        now: float,
    ) -> bool:
        """Whether a decision sees the instance alike in the two reports (a launcher's change
        that only confirms what we hold, say: `ready` after our wake). `after` is the current
        report: an override it ends is ended, as the next pass would."""
        seen_before = self._view(launcher, instance_id, before, now, keep=True)
        return seen_before == self._view(launcher, instance_id, after, now)

    def _view(
        self,
        launcher: str,
        instance_id: str,
        raw: Mapping[str, Any],
        now: float,
        *,
        keep: bool = False,
    ) -> InstanceView | None:
        """`keep`: an override the report ends is kept (the view is only looked at)."""
        parsed = self._state(launcher, instance_id, raw)
        state = parsed.state
        phase, running = state.phase, state.running
        held_here = self._held.get(launcher, {})
        held = held_here.get(instance_id)
        if held is not None:
            if held.ends(phase, running, revision_of(raw), now):
                if not keep:
                    del held_here[instance_id]  # the launcher has caught up with what we did
            elif held.state == "gone":
                return None
            elif running and phase != "failed":
                phase = "ready" if held.state == "awake" else "sleeping"
        times = self._times.get(launcher, {}).get(instance_id) or _Times(first_seen=now)
        return instance_view(state, instance_id, phase, running, times, key=parsed.swap_key)

    def __len__(self) -> int:
        return sum(len(times) for times in self._times.values())


def instance_view(
    state: InstanceState,
    instance_id: str,
    phase: Phase | None,
    running: bool,
    times: _Times,
    *,
    key: str | None,
) -> InstanceView:
    """An `InstanceView` from the launcher's InstanceState (contracts §5.1)."""
    return InstanceView(
        id=instance_id,
        running=running,
        phase=phase,
        isc_name=state.isc_name,
        port=state.port,
        gpu_uuids=tuple(state.gpu_uuids or ()),
        created_at=times.first_seen,
        last_used=times.last_used or times.first_seen,
        exit_code=state.exit_code,
        reason=state.reason or None,
        swap_key=key,
    )
