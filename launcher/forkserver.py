"""The fork server: a single-threaded helper with vLLM imported that forks instances on request.

Why a separate process instead of forking the launcher itself: the launcher is a uvicorn/asyncio
server. `fork()` copies only the calling thread, so any lock another thread held at that moment
(logging, the import lock, allocator or OpenMP internals, the event loop's own state) stays
locked forever in the child, and the child also inherits the listening socket, open client
connections and the loop's selector. Python warns about exactly this (`DeprecationWarning: ... use
of fork() may lead to deadlocks in the child`). The reference closes inherited sockets after the
fork and hopes for the best. Here the launcher instead starts this helper once at boot with
`python -m launcher.forkserver` (fork+exec, which is thread-safe). The helper imports vLLM's server
modules once (6-11 s, the cost a warm start avoids), then loops in one thread, forking a child per
request. Each child is forked from a quiet, thread-free point that already holds everything
imported.

Protocol: JSON lines. Requests on stdin: `{"op": "start", "ref", "argv", "env", "log_path",
"notes"}`. Events on the original stdout: `ready` (once, with `sleep_mode_available`),
`started`/`start_failed` (per request), `exited` (per child, with `exit_code`: negative means
killed by that signal). Anything the imports print goes to stderr, never into the protocol.

CUDA: the helper must never initialize CUDA. A CUDA context does not survive `fork()`: a child
of a process that initialized it fails on its first CUDA call ("Cannot re-initialize CUDA in
forked subprocess"), and each instance needs its own context on its own GPUs anyway. Importing
torch is fine; calling into CUDA is not, and one careless import-time call would break every
instance. So the helper checks (`cuda_initialized`) after its imports, refusing to become ready,
and again before every fork, refusing the start, each time with an error that says why.

Lifetime: the helper asks the kernel for SIGKILL when the launcher dies (`PR_SET_PDEATHSIG`), and
each child asks the same of the helper, so no instance outlives its launcher even after a
SIGKILL. The helper is also a child subreaper: grandchildren orphaned by an instance (vLLM's
EngineCore) are reparented to it and reaped, and each instance's process group is SIGKILLed as
soon as its leader is reaped, so nothing of an exited instance lingers.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib
import json
import os
import selectors
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from launcher import _proc, preload
from launcher.child import run_child

CUDA_REFUSAL = (
    "CUDA is initialized in the fork server (torch.cuda.is_initialized() is true), so no forked "
    "instance could use its GPU; the fork server refuses to start instances. Something in the "
    "entry's imports or its sleep-mode probe called into CUDA: keep CUDA calls out of import time"
)


def cuda_initialized() -> str | None:
    """`CUDA_REFUSAL` when this process holds a CUDA context, else None.

    Looks only at an already imported torch (importing it here would cost seconds and prove
    nothing) and asks `torch.cuda.is_initialized()`, which reads a flag and touches no driver.
    """
    torch = sys.modules.get("torch")
    probe = getattr(getattr(torch, "cuda", None), "is_initialized", None)
    if not callable(probe):
        return None
    try:
        initialized = bool(probe())
    except Exception:  # a broken torch answers nothing; the child will report its own error
        return None
    return CUDA_REFUSAL if initialized else None


def freeze_heap() -> dict[str, float | int]:
    """Collects once, then moves every object the imports made out of the collector's sight.

    vLLM runs full collections while an instance starts (its model loader twice, the EngineCore
    and the API server once each, to freeze their own heaps): each walks the ~600k objects the
    fork server imported, about 0.4 s apiece, most of a forked start on CPU. Frozen here, before
    any fork, they sit in the permanent generation of every child (`gc.freeze`), so those
    collections walk only what the instance itself creates. The frozen objects are the imported
    modules, which live as long as the process anyway; the fork server makes little garbage of its
    own afterwards. It also spares copy-on-write pages: a collection writes to every object's GC
    header, which would copy those pages into each child.
    """
    started = time.monotonic()
    gc.collect()
    gc.freeze()
    return {
        "gc_freeze_seconds": round(time.monotonic() - started, 3),
        "frozen_objects": gc.get_freeze_count(),
    }


def _load_entry(spec: str) -> tuple[Callable[[list[str]], Any], bool]:
    """Imports `module:function`; also asks the module whether vLLM sleep mode works here."""
    module_name, _, attr = spec.partition(":")
    module = importlib.import_module(module_name)
    entry = getattr(module, attr or "serve")
    probe = getattr(module, "sleep_mode_available", None)
    return entry, bool(probe()) if callable(probe) else False


IDLE_CHECK_S = 5.0
"""How often an idle fork server looks for a newly learned preload file."""


class _Server:
    def __init__(
        self,
        entry: Callable[[list[str]], Any],
        proto_fd: int,
        wakeup: tuple[int, int],
        preload_file: Path | None = None,
    ) -> None:
        self.entry = entry
        self.preload_file = preload_file
        self.preloaded = preload_file is not None and preload_file.exists()
        self.proto_fd = proto_fd
        self.wakeup_r, self.wakeup_w = wakeup
        self.children: dict[int, str] = {}
        self.selector = selectors.DefaultSelector()
        self.buffer = b""

    def send(self, message: dict[str, Any]) -> None:
        data = (json.dumps(message) + "\n").encode()
        while data:
            data = data[os.write(self.proto_fd, data) :]

    def serve(self) -> None:
        self.selector.register(0, selectors.EVENT_READ, "requests")
        self.selector.register(self.wakeup_r, selectors.EVENT_READ, "sigchld")
        while True:
            events = self.selector.select(IDLE_CHECK_S)
            if not events:
                self.preload_when_learned()
            for key, _ in events:
                if key.data == "sigchld":
                    with contextlib.suppress(BlockingIOError):
                        os.read(self.wakeup_r, 512)
                    self.reap()
                elif not self.read_requests():
                    return

    def preload_when_learned(self) -> None:
        """Imports what the first instance learned (`launcher.preload`), once, while idle."""
        if self.preloaded or self.preload_file is None or not self.preload_file.exists():
            return
        self.preloaded = True
        imported, failed = preload.import_all(preload.learned(self.preload_file))
        _settle_threads()
        if cuda_initialized() is not None:
            preload.forget(self.preload_file)  # every start is refused now; a restart recovers
        frozen = freeze_heap()
        self.send({"event": "preloaded", "imported": imported, "failed": failed, **frozen})

    def read_requests(self) -> bool:
        chunk = os.read(0, 65536)
        if not chunk:
            return False
        self.buffer += chunk
        while b"\n" in self.buffer:
            line, self.buffer = self.buffer.split(b"\n", 1)
            if line.strip():
                self.handle(json.loads(line))
        return True

    def handle(self, request: dict[str, Any]) -> None:
        ref = str(request.get("ref", ""))
        if request.get("op") != "start":
            self.send({"event": "start_failed", "ref": ref, "error": "unknown op"})
            return
        if (refusal := cuda_initialized()) is not None:
            self.send({"event": "start_failed", "ref": ref, "error": refusal})
            return
        server_pid = os.getpid()
        try:
            pid = os.fork()
        except OSError as err:
            self.send({"event": "start_failed", "ref": ref, "error": f"fork failed: {err}"})
            return
        if pid == 0:
            learned = preload.start_learning(None if self.preloaded else self.preload_file)
            private = [self.proto_fd, self.wakeup_r, self.wakeup_w, self.selector.fileno()]
            run_child(
                request, self.entry, parent=server_pid, close_fds=private, before_exit=learned
            )
        self.children[pid] = ref
        self.send({"event": "started", "ref": ref, "pid": pid})

    def reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            ref = self.children.pop(pid, None)
            if ref is None:
                continue  # an orphaned grandchild handed to us as subreaper
            # Take down whatever the instance left behind in its process group.
            _proc.kill_group(pid, signal.SIGKILL)
            code = os.waitstatus_to_exitcode(status)
            self.send({"event": "exited", "ref": ref, "pid": pid, "exit_code": code})

    def kill_all(self) -> None:
        for pid in list(self.children):
            _proc.kill_group(pid, signal.SIGKILL)


def _settle_threads() -> None:
    """Imports may leave short-lived helper threads behind; forks should start from one thread."""
    settle_until = time.monotonic() + 3
    while _proc.thread_count() > 1 and time.monotonic() < settle_until:
        time.sleep(0.05)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="fma launcher fork server (internal)")
    parser.add_argument("--entry", required=True, help="module:function that serves an instance")
    parser.add_argument("--parent", type=int, required=True, help="the launcher's PID")
    parser.add_argument("--preload-file", type=Path, default=None,
        help="what every instance imports, learned from the first (launcher.preload)")  # fmt: skip
    args = parser.parse_args(argv)

    _proc.die_with_parent(args.parent)
    _proc.become_subreaper()
    # Keep the protocol channel private: stray prints during imports must not corrupt it.
    proto_fd = os.dup(1)
    os.dup2(2, 1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the launcher decides when instances stop
    wakeup_r, wakeup_w = os.pipe()
    os.set_blocking(wakeup_r, False)
    os.set_blocking(wakeup_w, False)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.set_wakeup_fd(wakeup_w)

    started = time.monotonic()
    try:
        entry, sleep_mode = _load_entry(args.entry)
    except BaseException as err:  # report why instead of dying silently
        message = {"event": "import_failed", "error": f"{type(err).__name__}: {err}"}
        os.write(proto_fd, (json.dumps(message) + "\n").encode())
        return 1
    preloaded, _ = preload.import_all(preload.learned(args.preload_file))
    _settle_threads()
    if (refusal := cuda_initialized()) is not None:
        if preloaded:
            preload.forget(args.preload_file)
            refusal += f" (while importing the modules learned in {args.preload_file}, removed)"
        os.write(
            proto_fd, (json.dumps({"event": "import_failed", "error": refusal}) + "\n").encode()
        )
        return 1
    frozen = freeze_heap()
    server = _Server(entry, proto_fd, (wakeup_r, wakeup_w), args.preload_file)
    server.send(
        {
            "event": "ready",
            "pid": os.getpid(),
            "entry": args.entry,
            "sleep_mode_available": sleep_mode,
            "import_seconds": round(time.monotonic() - started, 3),
            "threads": _proc.thread_count(),
            "preloaded_modules": preloaded,
            **frozen,
        }
    )
    try:
        server.serve()
    finally:
        server.kill_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())
