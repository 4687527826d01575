"""The event loop every fma process runs on: uvloop, the one `uvicorn[standard]` brings.

A controller spends much of its CPU in the event loop itself (socket reads and writes, TLS,
timers, callbacks): for each actuation it parses a dozen watch events and makes ten HTTP calls.
uvloop does that work in C (libuv); asyncio's default loop does it in Python. The webhook and
the launcher's instances already ran on it (through uvicorn, and vLLM's `uvloop.run`).
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run_event_loop(main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Runs the coroutine `main()` to completion on uvloop (asyncio's loop without it).

    What the process imported so far is moved out of the garbage collector's sight first
    (`gc.freeze`): modules, classes and functions live as long as the process, and without the
    freeze every full collection walks them again (the controller spent 4% of its CPU in the
    collector during `bench/hot_path.py`). Frozen objects are still freed by reference counting.
    """
    gc.freeze()
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvicorn[standard] brings it
        return asyncio.run(main())
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main())
