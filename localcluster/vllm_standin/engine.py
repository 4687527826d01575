"""The stand-in's engine: vLLM's sleep/wake state machine and a deterministic "model".

The state follows vLLM 0.32's `EngineCore` and `Executor` (the contract test holds us to it):
- `sleep(level)` pauses the scheduler (requests that arrive are queued, not refused); at level
  >= 1 the executor also sleeps, which marks the tags `weights` and `kv_cache` as sleeping.
  Sleeping twice is a no-op.
- `wake_up(tags)` wakes the given tags (all when none are given; the tag `scheduling` only
  resumes scheduling); an unknown or already awake tag makes the call a no-op, as in vLLM. The
  scheduler resumes, and queued requests run, only once no tag sleeps any more.
- `is_sleeping` is true while the scheduler is paused or any tag sleeps ("true until fully
  awake", contracts §7).
Sleep and wake take `sleep_delay`/`wake_delay` seconds, so benchmarks can model a real GPU's
wake time (about 3 s for 64 GiB) and subtract it.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

LogFn = Callable[[str, str], None]
"""(level, message) → the instance's vLLM-like log."""

SLEEP_TAGS: Final = frozenset({"weights", "kv_cache"})
_WORDS: Final = (
    "the", "model", "is", "asleep", "awake", "and", "fast", "warm", "cold", "hot", "path", "gpu",
    "server", "launcher", "instance", "request", "token", "stand", "in", "vllm", "fma", "ready",
    "pod", "node", "a", "of", "to", "on", "with", "for", "we", "it",
)  # fmt: skip


@dataclass(frozen=True)
class Generation:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str


def generate_text(model: str, prompt: str, max_tokens: int) -> Generation:
    """Deterministic text for (model, prompt, max_tokens): one word per token.

    Tests can compare outputs across runs and stand-ins; nothing depends on a random seed.
    """
    digest = hashlib.sha256(f"{model}\0{prompt}".encode()).digest()
    words = [_WORDS[digest[i % len(digest)] % len(_WORDS)] for i in range(max_tokens)]
    return Generation(
        text="".join(f" {w}" for w in words),
        prompt_tokens=max(1, len(prompt.split())),
        completion_tokens=max_tokens,
        finish_reason="length",
    )


class StandinEngine:
    """Sleep/wake and request gating. One sleep or wake at a time, as vLLM's engine core
    handles its utility calls one by one."""

    def __init__(
        self, *, sleep_delay: float = 0.0, wake_delay: float = 0.0, log: LogFn | None = None
    ) -> None:
        self._log: LogFn = log or (lambda level, message: None)
        self.sleep_delay = sleep_delay
        self.wake_delay = wake_delay
        self.paused = False
        self.sleeping_tags: set[str] = set()
        self._resumed = asyncio.Event()
        self._resumed.set()
        self._lock = asyncio.Lock()
        self.waiting = 0

    def is_sleeping(self) -> bool:
        return self.paused or bool(self.sleeping_tags)

    async def sleep(self, level: int) -> None:
        async with self._lock:
            self.paused = True
            self._resumed.clear()
            if level < 1:
                return
            if "weights" in self.sleeping_tags:
                self._log("WARNING", "Executor is already sleeping.")
                return
            await asyncio.sleep(self.sleep_delay)
            self.sleeping_tags |= SLEEP_TAGS
            self._log("INFO", f"It took {self.sleep_delay:.6f} seconds to fall asleep.")

    async def wake_up(self, tags: Sequence[str] | None) -> bool:
        """Returns whether the engine is fully awake afterwards."""
        async with self._lock:
            executor_tags = None if tags is None else [t for t in tags if t != "scheduling"]
            if executor_tags is None or executor_tags:
                await self._wake_executor(executor_tags)
            fully_awake = not self.sleeping_tags
            if fully_awake:
                self.paused = False
                self._resumed.set()
            return fully_awake

    async def _wake_executor(self, tags: Sequence[str] | None) -> None:
        if not self.sleeping_tags:
            self._log("WARNING", "Executor is not sleeping.")
            return
        for tag in tags or ():
            if tag not in self.sleeping_tags:
                self._log("WARNING", f"Tag {tag} is not in sleeping tags {self.sleeping_tags}")
                return
        await asyncio.sleep(self.wake_delay)
        if tags:
            self.sleeping_tags -= set(tags)
        else:
            self.sleeping_tags.clear()
        self._log("INFO", f"It took {self.wake_delay:.6f} seconds to wake up tags {tags}.")

    async def generate(self, model: str, prompt: str, max_tokens: int) -> Generation:
        """Waits while the scheduler is paused, as a request sent to a sleeping vLLM does."""
        if not self._resumed.is_set():
            self.waiting += 1
            try:
                await self._resumed.wait()
            finally:
                self.waiting -= 1
        return generate_text(model, prompt, max_tokens)
