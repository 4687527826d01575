"""Exponential backoff: one schedule type for watches, work-queue retries and launcher streams.

A retry loop that hammers a failing apiserver or launcher makes an outage worse; one that waits
too long makes recovery slow. Delays double from `initial_s` up to `maximum_s`; a little jitter
(a fraction of the delay, off by default so tests are exact) keeps many clients that failed
together from retrying in lockstep.
"""

from __future__ import annotations

import random
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True, kw_only=True)
class Backoff:
    """The delay before retry number `attempt` (0-based): `initial_s * factor**attempt`, capped."""

    initial_s: float = 0.5
    maximum_s: float = 30.0
    factor: float = 2.0
    jitter: float = 0.0
    """Up to this fraction of the delay is added at random (0.1 → up to +10%)."""

    def __post_init__(self) -> None:
        if self.initial_s <= 0 or self.maximum_s < self.initial_s or self.factor < 1:
            raise ValueError(f"invalid backoff {self}")

    def delay(self, attempt: int) -> float:
        # Past ~64 doublings the float overflows; the cap has long been reached by then.
        base = min(self.initial_s * self.factor ** min(attempt, 64), self.maximum_s)
        if self.jitter > 0:
            base += base * self.jitter * random.random()
        return base


class Attempts:
    """Counts consecutive failures of one loop and turns them into delays."""

    def __init__(self, backoff: Backoff) -> None:
        self.backoff = backoff
        self.failures = 0

    def next_delay(self) -> float:
        delay = self.backoff.delay(self.failures)
        self.failures += 1
        return delay

    def reset(self) -> None:
        self.failures = 0


class PerKeyBackoff(Generic[K]):
    """Failure counts per key (the work queue's rate limiter); `forget` after a success."""

    def __init__(self, backoff: Backoff) -> None:
        self.backoff = backoff
        self._failures: dict[K, int] = {}

    def next_delay(self, key: K) -> float:
        failures = self._failures.get(key, 0)
        self._failures[key] = failures + 1
        return self.backoff.delay(failures)

    def failures(self, key: K) -> int:
        return self._failures.get(key, 0)

    def forget(self, key: K) -> None:
        self._failures.pop(key, None)

    def __len__(self) -> int:
        return len(self._failures)
