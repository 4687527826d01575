"""`fma-vllm-standin` / `python -m localcluster.vllm_standin`: one stand-in as a process.

It takes vLLM's command line (see `options`), prints a vLLM-like log to stdout, and stops on
SIGTERM/SIGINT with exit code 0. A bad option exits 2 with argparse's message on stderr, and a
taken port exits 1, both before anything listens, as vLLM does.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from contract.vllm import PROBED_PATHS
from localcluster.vllm_standin.config import StandinConfig
from localcluster.vllm_standin.options import parse
from localcluster.vllm_standin.server import serve_standin


async def serve_until(config: StandinConfig, stop: asyncio.Event) -> None:
    """Serves until `stop` is set (the CLI sets it on SIGTERM; a host process decides itself).

    Raises OSError when the port cannot be bound."""
    handle = await serve_standin(config)
    try:
        await stop.wait()
        handle.log("INFO", "[shutdown] API server: shutdown triggered", "launcher.py")
    finally:
        await handle.close()
    handle.log.uvicorn("Shutting down")
    handle.log.uvicorn(f"Finished server process [{handle.log.pid}]")


async def _run(config: StandinConfig) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await serve_until(config, stop)


def main(argv: Sequence[str] | None = None, *, quiet_paths: Sequence[str] = ()) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    prog = Path(sys.argv[0]).name or "api_server.py"
    config = parse(args, log=sys.stdout, prog=prog, quiet_paths=quiet_paths)
    try:
        asyncio.run(_run(config))
    except OSError as e:
        print(f"ERROR: cannot bind {config.host}:{config.port}: {e}", file=sys.stderr)
        return 1
    return 0


def launcher_instance(argv: Sequence[str]) -> int:
    """The launcher's `--instance-entry` for the stand-in: as `launcher.vllm_entry.serve` does
    for vLLM, the paths the launcher probes stay out of the access log unless the options name
    `--disable-access-log-for-endpoints` themselves."""
    return main(argv, quiet_paths=PROBED_PATHS)
