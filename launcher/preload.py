"""What every instance imports, learned from the first one and imported once by the fork server.

A forked instance still imports what vLLM loads lazily while an engine starts (worker, model
runner, attention and model modules): about 0.4 s on CPU per instance, every time, since the
fork server never imported them. No hand-kept list would stay right across vLLM versions and
models, so the fork server learns it: its first child writes the names of its modules once it has
been up for `LEARN_AFTER_S` or when it ends, into the launcher's preload file; the
fork server, when idle, imports the ones it lacks and freezes its heap again, and a later fork
server of the same launcher starts from the file. A module that fails to import is skipped (a
model's remote code, say); if importing initialized CUDA, the fork server must stop serving
(`launcher.forkserver` checks), and the file is removed so that its restart does not repeat it.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import json
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final


def file_name(entry: str) -> str:
    """The preload file of instances of `entry` run by this interpreter, in the launcher's log
    directory: what one entry's instances import says nothing about another's, and launchers
    outside a Pod (tests, benchmarks) may share that directory."""
    key = hashlib.sha256(f"{sys.executable}\0{entry}".encode()).hexdigest()[:16]
    return f".fma-preload-{key}.json"


LEARN_AFTER_S: Final = 30.0
"""How long an instance runs before its modules are taken as "what an instance imports"."""
MIN_NEW_MODULES: Final = 50
"""Modules an instance must have imported beyond the fork server's before it teaches anything."""
_SKIPPED_PREFIXES: Final = ("__main__", "__mp_main__", "transformers_modules")


def start_learning(path: Path | None, *, after_s: float = LEARN_AFTER_S) -> Callable[[], None]:
    """In a forked child: returns what to call when the instance ends, and calls it itself
    after `after_s` seconds (a daemon thread), whichever comes first. Either writes this
    process's module names to `path`, once per launcher, and only once the instance imported
    enough to have started an engine (`MIN_NEW_MODULES`): an instance refused at its argument
    parsing teaches nothing."""
    if path is None or path.exists():
        return _nothing
    baseline = len(sys.modules)
    done = threading.Lock()

    def remember() -> None:
        if not done.acquire(blocking=False) or path.exists():
            return
        if len(sys.modules) - baseline < MIN_NEW_MODULES:
            done.release()  # maybe later, when the engine has started
            return
        names = sorted(n for n in list(sys.modules) if not n.startswith(_SKIPPED_PREFIXES))
        temporary = path.with_name(f".{path.name}.{os.getpid()}")
        with contextlib.suppress(OSError):
            temporary.write_text(json.dumps(names))
            temporary.replace(path)

    def later() -> None:
        time.sleep(after_s)
        remember()

    threading.Thread(target=later, name="fma-preload-learn", daemon=True).start()
    return remember


def _nothing() -> None:
    return None


def learned(path: Path | None) -> list[str]:
    """The module names in `path` that this process has not imported yet ([] without a file)."""
    if path is None:
        return []
    try:
        names = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    if not isinstance(names, list):
        return []
    return [n for n in names if isinstance(n, str) and n not in sys.modules]


def import_all(names: list[str]) -> tuple[int, int]:
    """Imports each of `names`; returns (imported, failed). Failures are expected and harmless:
    the instance imports what it needs itself."""
    imported = failed = 0
    for name in names:
        try:
            importlib.import_module(name)
            imported += 1
        except BaseException:  # a module's import may raise anything, SystemExit included
            failed += 1
    return imported, failed


def forget(path: Path | None) -> None:
    """Removes the preload file (after it made the fork server unusable)."""
    if path is not None:
        with contextlib.suppress(OSError):
            path.unlink()
