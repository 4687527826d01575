"""The work items of the dual-pods controller (contracts §8.1, §8.7), as work-queue keys.

One inference server is keyed by its requester's UID (and name, to find the Pod again: the
requester may be gone while its provider still needs unbinding). An unbound launcher and an
ISC's instance garbage collection are items of their own. Keys are small frozen values, so the
work queue can deduplicate them and keep one of them in one worker at a time.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PodKey:
    """A Pod by UID (which Pod it is) and name (to find it again, even once it is gone).

    The kinds of key stay distinct classes: a server and a launcher are different items, and
    dataclass equality compares the class, so equal fields never merge them in the queue.
    """

    uid: str
    name: str


@dataclass(frozen=True, slots=True)
class ServerKey(PodKey):
    """One inference server: the requester with this UID and its bound provider."""


@dataclass(frozen=True, slots=True)
class LauncherKey(PodKey):
    """An unbound launcher Pod: clean up its stopped instances, wake its node's requesters."""


@dataclass(frozen=True, slots=True)
class IscKey:
    """An ISC changed or went away: delete sleeping instances made from an older version."""

    name: str


Key = ServerKey | LauncherKey | IscKey


class KeyLabels:
    """The `node` label of each key for the queue metrics, fixed when the key is first seen.

    The queue reports a key's depth under one label when it is added and under the same label
    when it is taken, so a key's label must not change while it lives (a requester scheduled
    meanwhile would otherwise leave the depth gauge of the old label off by one).
    """

    def __init__(self) -> None:
        self._labels: dict[Key, str] = {}

    def remember(self, key: Key, node: str) -> None:
        """The first node given for `key` stays its label until `forget`."""
        self._labels.setdefault(key, node)

    def __call__(self, key: Key) -> str:
        return self._labels.get(key, "")

    def forget(self, key: Key) -> None:
        self._labels.pop(key, None)

    def __len__(self) -> int:
        return len(self._labels)
