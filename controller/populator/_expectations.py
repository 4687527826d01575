"""Expectations: what the populator waits to see in its cache after its own writes.

The informer's cache lags the apiserver. Right after creating two launchers, a pass that reads
the cache would see none of them and create two more; right after deleting one, it would
delete another. So each create, delete and label patch records an expectation, keyed by the
Pod's UID, and a key's next pass uses the cache only once every expectation of that key is
met (client-go's `ControllerExpectations`, by UID rather than by count):

| write | met when the cache shows |
|---|---|
| create | the Pod (any version), or its deletion |
| delete | a deletionTimestamp on the Pod, or the Pod gone |
| patch | a resourceVersion other than the one the patch was based on, or the Pod gone |

An expectation older than the timeout (`--expectation-timeout`, 5 s) means a lost or very slow
watch event: the key then drops its expectations and LISTs its Pods from the apiserver.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from controller.populator._keys import LauncherKey
from kube import JsonObject, metadata

WriteKind = Literal["create", "delete", "patch"]
State = Literal["satisfied", "pending", "expired"]


@dataclass(frozen=True, slots=True)
class _Expected:
    key: LauncherKey
    kind: WriteKind
    version: str
    since: float


class Expectations:
    """Pending expectations of all keys; `clock` is the event loop's (monotonic) time."""

    def __init__(self, timeout_s: float, clock: Callable[[], float]) -> None:
        self.timeout_s = timeout_s
        self._clock = clock
        self._by_uid: dict[str, _Expected] = {}
        self._by_key: dict[LauncherKey, set[str]] = {}

    def expect(
        self,
        key: LauncherKey,
        uid: str,
        kind: WriteKind,
        *,
        version: str = "",
        cached: JsonObject | None,
    ) -> None:
        """Record a write of `key`'s Pod `uid`; `cached` is what the cache holds for it now.

        The watch event may have arrived before the write's answer, so an expectation the
        cache already meets is not recorded at all.
        """
        entry = _Expected(key, kind, version, self._clock())
        if cached is not None and metadata(cached).get("uid") != uid:
            cached = None  # that name belongs to another Pod now: ours is gone
        if _met(entry, cached, gone=cached is None and kind != "create"):
            return
        self._by_uid[uid] = entry
        self._by_key.setdefault(key, set()).add(uid)

    def observe(self, pod: JsonObject, *, gone: bool = False) -> None:
        """An informer event about `pod` (`gone`: it was deleted)."""
        uid = str(metadata(pod).get("uid") or "")
        entry = self._by_uid.get(uid)
        if entry is not None and _met(entry, pod, gone=gone):
            self._drop(uid, entry.key)

    def state(self, key: LauncherKey) -> tuple[State, float]:
        """Whether `key`'s cache can be used, and (when pending) seconds until expiry."""
        uids = self._by_key.get(key)
        if not uids:
            return "satisfied", 0.0
        oldest = min(self._by_uid[uid].since for uid in uids)
        remaining = oldest + self.timeout_s - self._clock()
        return ("expired", 0.0) if remaining <= 0 else ("pending", remaining)

    def reset(self, key: LauncherKey) -> None:
        """Forget `key`'s expectations (after a LIST, or when the key is done for good)."""
        for uid in self._by_key.pop(key, set()):
            self._by_uid.pop(uid, None)

    def pending(self, key: LauncherKey) -> int:
        return len(self._by_key.get(key, ()))

    def _drop(self, uid: str, key: LauncherKey) -> None:
        self._by_uid.pop(uid, None)
        uids = self._by_key.get(key)
        if uids is not None:
            uids.discard(uid)
            if not uids:
                del self._by_key[key]


def _met(entry: _Expected, pod: JsonObject | None, *, gone: bool) -> bool:
    if gone:
        return True
    if pod is None:
        return False
    meta = metadata(pod)
    if entry.kind == "create":
        return True
    if entry.kind == "delete":
        return bool(meta.get("deletionTimestamp"))
    return str(meta.get("resourceVersion") or "") != entry.version
