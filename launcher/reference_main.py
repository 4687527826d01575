"""`/app/launcher.py` in fma's image: the reference's launcher entry, running fma's launcher.

A LauncherConfig written for the reference runs its launcher as `python3 launcher.py` with
`workingDir: /app` and the flags `--mock-gpus`, `--mock-gpu-count N`, `--host H`, `--port P`,
`--log-level L` (contracts §5.7). The Dockerfile copies this file to `/app/launcher.py`, so
such a LauncherConfig runs unchanged on fma's image; fma's `fma-launcher` takes the same flags.

Run as a script, this file is `__main__` and its directory is first on `sys.path`; through the
`PYTHONPATH=/app` every launcher Pod gets, and as the working directory of `python -m
launcher.forkserver`, it is on the path of the processes the launcher starts too. There a file
`launcher.py` would hide fma's `launcher` package. So unless that directory holds the package
itself (fma's image keeps its source in `/app`), it leaves `sys.path` and `PYTHONPATH`, and
`PYTHONSAFEPATH=1` keeps child interpreters from putting their working directory first.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def _leave(directory: Path) -> None:
    """Takes `directory` off this process's path and its children's (`""` is the cwd)."""

    def same(entry: str) -> bool:
        try:
            return Path(entry or ".").resolve() == directory
        except OSError:
            return False

    sys.path[:] = [entry for entry in sys.path if not same(entry)]
    kept = [e for e in os.environ.get("PYTHONPATH", "").split(os.pathsep) if e and not same(e)]
    if kept:
        os.environ["PYTHONPATH"] = os.pathsep.join(kept)
    else:
        os.environ.pop("PYTHONPATH", None)
    os.environ["PYTHONSAFEPATH"] = "1"


def main() -> int:
    here = Path(__file__).resolve().parent
    if not (here / "launcher" / "__init__.py").is_file():
        _leave(here)
    from launcher.cli import main as launcher_main

    return launcher_main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
