"""Whether and when a dead container is restarted: restartPolicy and the kubelet's back-off.

A port of the kubelet's rules (kuberuntime `doBackOff` with `flowcontrol.Backoff`):
- the first restart of a container is immediate; each later one waits until `backoff` has passed
  since the container *finished*, where `backoff` starts at 10 s and doubles up to 300 s;
- the back-off resets when the container has run longer than the cap since its last restart;
- while waiting, the container shows `waiting: CrashLoopBackOff` with the kubelet's message.
Init containers treat `Always` as `OnFailure`: they must end, and end well, once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from localcluster.kubelet.podspec import RestartPolicy


def should_restart(policy: RestartPolicy, exit_code: int, *, init: bool = False) -> bool:
    """Whether a container that exited with `exit_code` is started again."""
    if policy == "Never":
        return False
    if policy == "OnFailure" or init:
        return exit_code != 0
    return True


@dataclass
class _Entry:
    backoff: float
    last_update: float


@dataclass
class Backoff:
    """Per-key exponential back-off, timed on the caller's clock (seconds, any epoch)."""

    initial: float
    maximum: float
    _entries: dict[str, _Entry] = field(default_factory=dict)

    def delay(self, key: str, finished_at: float, now: float) -> float:
        """Seconds to wait before restarting a container that finished at `finished_at`."""
        entry = self._entries.get(key)
        if entry is None or self._expired(entry, finished_at):
            return 0.0
        return max(0.0, finished_at + entry.backoff - now)

    def record_restart(self, key: str, finished_at: float, now: float) -> None:
        """Called when the restart happens: the next back-off doubles (the kubelet's `Next`)."""
        entry = self._entries.get(key)
        if entry is None or self._expired(entry, finished_at):
            self._entries[key] = _Entry(self.initial, now)
            return
        entry.backoff = min(entry.backoff * 2, self.maximum)
        entry.last_update = now

    def current(self, key: str) -> float:
        """The back-off now in force for `key` (what the CrashLoopBackOff message shows)."""
        entry = self._entries.get(key)
        return entry.backoff if entry is not None else 0.0

    def forget(self, key_prefix: str) -> None:
        for key in [k for k in self._entries if k.startswith(key_prefix)]:
            del self._entries[key]

    def _expired(self, entry: _Entry, event_time: float) -> bool:
        return event_time - entry.last_update > self.maximum


def format_duration(seconds: float) -> str:
    """Go's time.Duration String for the values back-off takes: `10s`, `1m20s`, `5m0s`, `1.5s`."""
    if seconds < 60:
        return f"{seconds:g}s"
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes)}m{rest:g}s"


def crash_loop_message(backoff: float, container: str, pod: str, namespace: str, uid: str) -> str:
    """The kubelet's CrashLoopBackOff message."""
    return (
        f"back-off {format_duration(backoff)} restarting failed container={container} "
        f"pod={pod}_{namespace}({uid})"
    )
