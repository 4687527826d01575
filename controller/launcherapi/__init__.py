"""The controller's client side of the launcher API (contracts §5): the instance watch streams."""

from controller.launcherapi._watch import (
    InstanceEvent,
    LauncherListener,
    LauncherView,
    LauncherWatch,
    LauncherWatchSettings,
    launcher_http_client,
)
from controller.launcherapi._watches import LauncherWatches

__all__ = [
    "InstanceEvent",
    "LauncherListener",
    "LauncherView",
    "LauncherWatch",
    "LauncherWatchSettings",
    "LauncherWatches",
    "launcher_http_client",
]
