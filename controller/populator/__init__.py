"""The launcher-populator (contracts §10): keeps unbound launcher Pods ready ahead of demand.

LauncherPopulationPolicies ask for a number of launchers of a LauncherConfig on each selected
Node; the populator creates and deletes launcher Pods to match, never touching bound ones,
replacing stale-template ones, reporting stuck ones, and writing LC and LPP status. Its
decisions are `controller.core`'s (`policy_table`, `decide_population`); this package is the
I/O around them. It runs inside `fma-controller` (`Populator`) or alone
(`python -m controller.populator`).
"""

from controller.populator._expectations import Expectations
from controller.populator._flags import add_flags, settings_from
from controller.populator._instances import (
    InstanceSource,
    NoInstances,
    WatchedInstances,
    instance_view,
)
from controller.populator._keys import LauncherKey, key_of
from controller.populator._runtime import INFORMERS, KINDS, Populator
from controller.populator._settings import COMPONENT, Settings, parse_duration
from controller.populator._status import StatusKey
from controller.populator._table import Changes, PolicyKeeper

__all__ = [
    "COMPONENT",
    "INFORMERS",
    "KINDS",
    "Changes",
    "Expectations",
    "InstanceSource",
    "LauncherKey",
    "NoInstances",
    "PolicyKeeper",
    "Populator",
    "Settings",
    "StatusKey",
    "WatchedInstances",
    "add_flags",
    "instance_view",
    "key_of",
    "parse_duration",
    "settings_from",
]
