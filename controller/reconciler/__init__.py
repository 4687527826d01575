"""The dual-pods controller's runtime: caches → snapshot → decision → actions (contracts §8).

`controller.core` decides; this package does. It gathers each item's snapshot from the
informers and the launchers' watch streams, runs the decision, performs the actions against the
apiserver (with preconditions) and over HTTP (launcher, instance, requester SPI), and keeps what
the decisions must remember. `fma-controller` (controller/cli.py) runs it.
"""

from controller.reconciler._controller import DualPodsController, ReconcilerSettings
from controller.reconciler._executor import Executor, Outcome, PassContext
from controller.reconciler._expectations import Expectation, Expectations
from controller.reconciler._http import CallError, HttpSettings, PeerCalls
from controller.reconciler._instances import InstanceBook
from controller.reconciler._keys import IscKey, Key, KeyLabels, LauncherKey, ServerKey
from controller.reconciler._notes import note_for
from controller.reconciler._podwrites import PodWrites, merge_patch
from controller.reconciler._state import ClusterState, parse_gpu_map

__all__ = [
    "CallError",
    "ClusterState",
    "DualPodsController",
    "Executor",
    "Expectation",
    "Expectations",
    "HttpSettings",
    "InstanceBook",
    "IscKey",
    "Key",
    "KeyLabels",
    "LauncherKey",
    "Outcome",
    "PassContext",
    "PeerCalls",
    "PodWrites",
    "ReconcilerSettings",
    "ServerKey",
    "merge_patch",
    "note_for",
    "parse_gpu_map",
]
