"""Normal Events for what the controller did: bind, launcher/instance creation, wake, sleep.

The decisions emit Warning Events for failures themselves (`EmitEvent`); what went right is
told here, after the action succeeded, so `kubectl describe pod` on the user's requester shows
what the actuation created or changed (swap: InstanceSwapped; warm: InstanceCreated; cold:
LauncherCreated, InstanceCreated; unbind: Unbound). Each Event is an apiserver write, so none
repeats what the Pods already say: a bind is the requester's `dual` label and status, a wake
the provider's `sleeping` label turning "false" and the requester turning Ready (a hot start
thus writes no Event: its 3 writes are the bind, the requester's and the provider's labels),
and the sleep of an unbind is the `sleeping` label (`Unbound` says where the server sleeps).
Pure: action in, (reason, message) out.
"""

from __future__ import annotations

from controller.core import (
    Action,
    CreateDirectProvider,
    CreateInstance,
    CreateLauncher,
    DeleteInstance,
    DeleteProvider,
    UnbindProvider,
)


def note_for(  # noqa: PLR0911 - one case per action type
    action: Action, *, created: str = ""
) -> tuple[str, str] | None:
    """The Event (reason, message) for a successful `action`, or None for routine ones."""
    match action:
        case CreateLauncher(lc_name=lc):
            return "LauncherCreated", (
                f'created launcher Pod "{created}" from LauncherConfig "{lc}", bound to this '
                "requester (cold start)"
            )
        case CreateDirectProvider():
            return "ProviderCreated", f'created server-providing Pod "{created}" (cold start)'
        case CreateInstance(launcher=pod, instance_id=iid):
            return "InstanceCreated", f'created vLLM instance {iid} in launcher Pod "{pod.name}"'
        case UnbindProvider(pod=pod):
            return "Unbound", (
                f'unbound server-providing Pod "{pod.name}"; its vLLM server stays there, asleep'
            )
        case DeleteInstance(launcher=pod, instance_id=iid, reason=reason) if reason != "stopped":
            return "InstanceDeleted", (
                f'deleted vLLM instance {iid} of launcher Pod "{pod.name}" ({reason})'
            )
        case DeleteProvider(pod=pod, reason=reason):
            return "ProviderDeleted", f'deleted server-providing Pod "{pod.name}": {reason}'
    return None
