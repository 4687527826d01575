"""Normal Events for what the controller did: bind, launcher/instance creation, wake, sleep.

The decisions emit Warning Events for failures themselves (`EmitEvent`); what went right is
told here, after the action succeeded, so `kubectl describe pod` on the user's requester shows
the actuation step by step (hot: Woken; swap: InstanceSwapped; warm: InstanceCreated; cold:
LauncherCreated, InstanceCreated; unbind: Unbound). Each Event is an apiserver write, so none
repeats what the Pods already say: the bind itself is the `dual` label and the requester's
status (and the next Event names the provider), and the sleep of an unbind is the `sleeping`
label (and `Unbound` says the provider stays as a sleeper). Pure: action in, (reason, message)
out.
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
    Wake,
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
        case Wake(ip=ip, port=port, provider=provider):
            where = f' in server-providing Pod "{provider}"' if provider else ""
            return "Woken", f"woke the sleeping vLLM server at {ip}:{port}{where} (hot start)"
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
