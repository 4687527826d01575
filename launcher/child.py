"""What a forked instance does before and while it runs vLLM (runs only in the child).

Order matters: first detach (own process group, so a stop signal reaches vLLM's helpers too, and
death with the fork server), then cut every tie to the parent (its signal handlers, its private
pipes and any socket), then point stdout/stderr at the instance log, overlay the instance's
environment, and only then run the entry. The child never returns into the fork server's loop:
whatever happens it leaves through `os._exit` with a meaningful code (argparse errors are 2,
uncaught exceptions 1, with the traceback in the log).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from launcher import _proc


def _exit_code(value: object) -> int:
    if value is None:
        return 0
    if isinstance(value, int) and not isinstance(value, bool):
        return value & 0xFF
    print(value, file=sys.stderr)  # SystemExit("message") convention: print, exit 1
    return 1


def _reset_signals() -> None:
    signal.set_wakeup_fd(-1)
    for sig in (signal.SIGCHLD, signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)


def _prepare(request: dict[str, Any], parent: int, close_fds: Sequence[int]) -> list[str]:
    os.setpgrp()
    _proc.die_with_parent(parent)
    _reset_signals()
    _proc.close_inherited(close_fds)
    _proc.redirect_output(Path(str(request["log_path"])))
    env = {str(k): str(v) for k, v in dict(request.get("env") or {}).items()}
    os.environ.update(env)
    argv = [str(word) for word in request.get("argv") or []]
    sys.argv = ["vllm-serve", *argv]
    ref = request.get("ref", "?")
    print(f"[fma-launcher] instance {ref}: pid {os.getpid()}, argv {argv}", file=sys.stderr)
    for note in request.get("notes") or []:
        print(f"[fma-launcher] instance {ref}: {note}", file=sys.stderr)
    sys.stderr.flush()
    return argv


def run_child(
    request: dict[str, Any],
    entry: Callable[[list[str]], Any],
    *,
    parent: int,
    close_fds: Sequence[int],
    before_exit: Callable[[], None] | None = None,
) -> NoReturn:
    code = 1
    try:
        argv = _prepare(request, parent, close_fds)
        code = _exit_code(entry(argv))
    except SystemExit as exit_:
        code = _exit_code(exit_.code)
    except BaseException:
        traceback.print_exc()
        code = 1
    finally:
        if before_exit is not None:
            with contextlib.suppress(Exception):  # bookkeeping must not change the exit code
                before_exit()
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):  # a broken log must not change the exit code
                stream.flush()
        os._exit(code)
