"""Normal Events for what the controller did: bind, launcher/instance creation, wake, sleep.

The decisions emit Warning Events for failures themselves (`EmitEvent`); what went right is
told here, after the action succeeded, so `kubectl describe pod` on the user's requester shows
the actuation step by step (hot: Bound, Woken; warm: Bound, InstanceCreated; cold:
LauncherCreated, InstanceCreated). Pure: action in, (reason, message) out.
"""

from __future__ import annotations

from controller.core import (
    Action,
    BindProvider,
    CreateDirectProvider,
    CreateInstance,
    CreateLauncher,
    DeleteInstance,
    DeleteProvider,
    Sleep,
    UnbindProvider,
    Wake,
)


def note_for(  # noqa: PLR0911 - one case per action type
    action: Action, *, created: str = ""
) -> tuple[str, str] | None:
    """The Event (reason, message) for a successful `action`, or None for routine ones."""
    match action:
        case BindProvider(pod=pod):
            return "Bound", f'bound to server-providing Pod "{pod.name}"'
        case CreateLauncher(lc_name=lc):
            return "LauncherCreated", (
                f'created launcher Pod "{created}" from LauncherConfig "{lc}", bound to this '
                "requester (cold start)"
            )
        case CreateDirectProvider():
            return "ProviderCreated", f'created server-providing Pod "{created}" (cold start)'
        case CreateInstance(launcher=pod, instance_id=iid):
            return "InstanceCreated", f'created vLLM instance {iid} in launcher Pod "{pod.name}"'
        case Wake(ip=ip, port=port):
            return "Woken", f"woke the sleeping vLLM server at {ip}:{port}"
        case Sleep(ip=ip, port=port):
            return "Slept", f"put the vLLM server at {ip}:{port} to sleep"
        case UnbindProvider(pod=pod):
            return "Unbound", f'unbound server-providing Pod "{pod.name}"; it stays as a sleeper'
        case DeleteInstance(launcher=pod, instance_id=iid, reason=reason) if reason != "stopped":
            return "InstanceDeleted", (
                f'deleted vLLM instance {iid} of launcher Pod "{pod.name}" ({reason})'
            )
        case DeleteProvider(pod=pod, reason=reason):
            return "ProviderDeleted", f'deleted server-providing Pod "{pod.name}": {reason}'
    return None
