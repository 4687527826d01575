"""Named health checks behind `/healthz` and `/readyz`.

What the two endpoints mean for the controller (and why):

- **`/healthz` (liveness)**: the process should be restarted if it fails. It answers from the
  event loop, so a wedged loop fails it by timing out. Checks added here must only fail for
  states a restart fixes; the leader elector adds one that fails when this replica *thinks*
  it leads but has not renewed the lease for a whole lease duration (a stuck renewal loop).
- **`/readyz` (readiness)**: the controller has no Service and takes no traffic, so readiness
  only gates rollouts and tells operators "this replica is working". It is ready when its
  caches have synced; with leader election on, a **standby** replica (not leading) is ready
  when it can read the Lease, because it stands ready to take over and a Deployment with
  two replicas would otherwise never finish a rolling update (one replica is always standby).
  The leader is ready once its caches synced after it took the lease.

Output follows the apiserver's: `ok`, or one `[+]name ok` / `[-]name failed: reason` line per
check, and 200 vs 503.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

Check = Callable[[], tuple[bool, str]]
"""Returns (healthy, detail)."""


@dataclass
class HealthChecks:
    """The checks of one endpoint; `report` runs them all."""

    checks: dict[str, Check] = field(default_factory=dict)

    def add(self, name: str, check: Check) -> None:
        if name in self.checks:
            raise ValueError(f"health check {name!r} already registered")
        self.checks[name] = check

    def remove(self, name: str) -> None:
        self.checks.pop(name, None)

    def report(self, *, verbose: bool = False) -> tuple[bool, str]:
        """(all healthy, body); a failing check never raises out of here."""
        lines: list[str] = []
        healthy = True
        for name, check in sorted(self.checks.items()):
            try:
                ok, detail = check()
            except Exception as exc:
                ok, detail = False, f"{type(exc).__name__}: {exc}"
            healthy = healthy and ok
            lines.append(f"[+]{name} ok" if ok else f"[-]{name} failed: {detail}")
        if healthy and not verbose:
            return True, "ok\n"
        status = "ok" if healthy else "failed"
        return healthy, "\n".join([*lines, f"check {status}"]) + "\n"


def all_synced(synced: Callable[[], dict[str, bool]]) -> Check:
    """A check that passes once every named cache reports synced."""

    def check() -> tuple[bool, str]:
        waiting = sorted(name for name, ok in synced().items() if not ok)
        return (not waiting, "not synced: " + ", ".join(waiting) if waiting else "synced")

    return check
