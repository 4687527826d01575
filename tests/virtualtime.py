"""An asyncio event loop on a virtual clock: timers fire at once, in order, and tests never sleep.

Whenever the loop would block waiting for its next timer, the clock jumps to that timer
instead. So `await asyncio.sleep(20)` returns immediately with `loop.time()` 20 s later, and
backoff schedules, lease timeouts and delayed queue items can be asserted exactly. Real I/O is
still polled (without blocking), so `call_soon_threadsafe` and sockets keep working, but a test
that waits on the outside world should use a real loop: here time would run away meanwhile.

A loop with nothing scheduled and nothing to do is deadlocked; instead of hanging, it raises.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

T = TypeVar("T")


class Deadlock(RuntimeError):  # noqa: N818 - it is a state, not an error class of a library
    """The loop would wait forever: no timer, no ready callback, no I/O."""


class _VirtualSelector(selectors.BaseSelector):
    """A real selector that never blocks: a wait becomes a clock jump."""

    def __init__(self, loop: VirtualTimeLoop) -> None:
        self._real = selectors.DefaultSelector()
        self._loop = loop

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._real.register(fileobj, events, data)

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        return self._real.unregister(fileobj)

    def modify(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._real.modify(fileobj, events, data)

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready = self._real.select(0)
        if ready or timeout == 0:
            return ready
        if timeout is None:
            raise Deadlock("the event loop would wait forever (nothing scheduled)")
        self._loop.advance(timeout)
        return []

    def close(self) -> None:
        self._real.close()

    def get_map(self) -> Mapping[Any, selectors.SelectorKey]:
        return self._real.get_map()


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """`loop.time()` starts at 0 and moves only when the loop would otherwise wait."""

    def __init__(self) -> None:
        self._virtual_now = 0.0
        super().__init__(_VirtualSelector(self))

    def time(self) -> float:
        return self._virtual_now

    def advance(self, seconds: float) -> None:
        self._virtual_now += max(0.0, seconds)


def run_virtual(main: Callable[[], Awaitable[T]]) -> T:
    """Runs the coroutine function `main` on a fresh virtual-time loop."""

    async def wrapper() -> T:
        return await main()

    with asyncio.Runner(loop_factory=VirtualTimeLoop) as runner:
        return runner.run(wrapper())
