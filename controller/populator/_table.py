"""The policy table, kept in step with LPP, LC and Node events (contracts §10).

`PolicyKeeper` is the table's single writer: the informer handlers feed it objects, it keeps
the parsed inputs (LC templates built once per change, LPP models, Node views) and re-evaluates
the table with the pure `controller.core.policy_table`. Each call returns the `Changes` the
runtime must act on: keys whose desired count changed, LCs whose template changed (all their
launchers need a pass, stale ones get replaced), and LCs/LPPs whose status may need a write.

Nothing is evaluated before `build()`, which the runtime calls once every informer has
synced: before that the table would be partial, and a key handled from a partial table could
delete launchers that another LPP, not yet seen, still wants.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import ValidationError

from controller.core import (
    LcBuild,
    NodeView,
    PolicyTable,
    build_changed,
    build_lcs,
    node_view,
    policy_table,
)
from controller.populator._keys import LauncherKey
from crds.models import LauncherConfig, LauncherPopulationPolicy
from kube import JsonObject


@dataclass
class Changes:
    """What a table update asks the runtime to do."""

    keys: set[LauncherKey] = field(default_factory=set)
    """Keys whose desired count changed."""
    lcs: set[str] = field(default_factory=set)
    """LCs whose existence, validity or template hash changed: every launcher Pod of theirs."""
    lc_status: set[str] = field(default_factory=set)
    lpp_status: set[str] = field(default_factory=set)

    def __bool__(self) -> bool:
        return bool(self.keys or self.lcs or self.lc_status or self.lpp_status)


_EMPTY = PolicyTable({}, {})


class PolicyKeeper:
    """Inputs and the resulting policy table; see the module docstring."""

    def __init__(self, *, with_reflector: bool = False) -> None:
        self._with_reflector = with_reflector
        self._builds: dict[str, LcBuild] = {}
        self._lpps: dict[str, LauncherPopulationPolicy] = {}
        self._lpp_invalid: dict[str, list[str]] = {}
        self._nodes: dict[str, NodeView] = {}
        self.table = _EMPTY
        self.ready = False

    # ----- reads -------------------------------------------------------------------------------

    def desired(self, key: LauncherKey) -> int | None:
        """The key's desired count, HANDS_OFF, or None when no LPP covers it."""
        return self.table.desired.get(key)

    def build_of(self, lc: str) -> LcBuild | None:
        """The LC's template build (None: no such LC)."""
        return self._builds.get(lc)

    def node(self, name: str) -> NodeView | None:
        return self._nodes.get(name)

    def lpp_errors(self, name: str) -> list[str] | None:
        """The errors for `LPP.status` (None: the LPP is unknown)."""
        if name in self._lpp_invalid:
            return self._lpp_invalid[name]
        return self.table.lpp_errors.get(name) if name in self._lpps else None

    def keys_of(self, lc: str) -> set[LauncherKey]:
        """Every table key of `lc`."""
        return {LauncherKey(node, name) for node, name in self.table.desired if name == lc}

    # ----- writes (the informer handlers') -----------------------------------------------------

    def set_lc(self, name: str, obj: JsonObject | None) -> Changes:
        old = self._builds.get(name)
        if obj is None:
            self._builds.pop(name, None)
        else:
            self._builds[name] = _build(obj, with_reflector=self._with_reflector)
        changes = Changes(lc_status={name} if obj is not None else set())
        if build_changed(old, self._builds.get(name)):
            changes.lcs.add(name)
            more = self._evaluate()
            changes.keys |= more.keys
            changes.lpp_status |= more.lpp_status
        return changes if self.ready else Changes()

    def set_lpp(self, name: str, obj: JsonObject | None) -> Changes:
        self._lpps.pop(name, None)
        self._lpp_invalid.pop(name, None)
        if obj is not None:
            try:
                self._lpps[name] = LauncherPopulationPolicy.model_validate(obj)
            except ValidationError as error:
                self._lpp_invalid[name] = [_describe(error)]
        changes = self._evaluate()
        if obj is not None:
            changes.lpp_status.add(name)
        return changes if self.ready else Changes()

    def set_node(self, name: str, obj: JsonObject | None) -> Changes:
        view = node_view(obj) if obj is not None else None
        if view == self._nodes.get(name):
            return Changes()  # a heartbeat or a status change the table does not read
        if view is None:
            self._nodes.pop(name, None)
        else:
            self._nodes[name] = view
        return self._evaluate()

    def build(self) -> Changes:
        """The initial evaluation: every key, every LC and LPP status."""
        self.ready = True
        changes = self._evaluate()
        changes.lc_status |= set(self._builds)
        changes.lpp_status |= set(self._lpps) | set(self._lpp_invalid)
        return changes

    # ----- plumbing ----------------------------------------------------------------------------

    def _evaluate(self) -> Changes:
        if not self.ready:
            return Changes()
        new = policy_table(self._lpps.values(), self._builds, self._nodes.values())
        old = self.table
        self.table = new
        lpps = old.lpp_errors.keys() | new.lpp_errors.keys()
        return Changes(
            keys={LauncherKey(*key) for key in old.changed_keys(new)},
            lpp_status={
                name for name in lpps if old.lpp_errors.get(name) != new.lpp_errors.get(name)
            },
        )


def _build(obj: JsonObject, *, with_reflector: bool) -> LcBuild:
    try:
        lc = LauncherConfig.model_validate(obj)
    except ValidationError as error:
        return LcBuild(None, _describe(error))
    return build_lcs([lc], with_reflector=with_reflector)[lc.metadata.name or ""]


def _describe(error: ValidationError) -> str:
    """A one-line summary of a model error: `field.path: message; ...`."""
    parts = []
    for item in error.errors():
        where = ".".join(str(step) for step in item["loc"])
        parts.append(f"{where}: {item['msg']}" if where else item["msg"])
    return "; ".join(parts)
