"""`fma-launcher`: the command line, structured logging, and the uvicorn server around the app.

Flags follow the reference (`--mock-gpus`, `--mock-gpu-count`, `--host`, `--port`,
`--log-level`); the rest are fma's (timeouts, probe interval, log directory, entry). The control
CA bundle, the Pod's UID and the compatibility switch come from the environment (`FMA_CONTROL_*`,
`FMA_POD_UID`; contract.auth), where the populator puts them in every launcher Pod.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import sys
from pathlib import Path
from types import FrameType
from typing import Any

import uvicorn

import jsonlog
from contract.auth import MODE_ENV, MODE_OFF
from contract.launcher import LAUNCHER_PORT
from controlauth import verifier_from_env
from jsonlog import cli
from launcher import gpus
from launcher.app import create_app
from launcher.settings import Settings

_log = logging.getLogger("launcher")
LEVELS = ("critical", "error", "warning", "info", "debug")


def parse_args(argv: list[str] | None) -> Settings:
    parser = argparse.ArgumentParser(prog="fma-launcher", description="fma's vLLM launcher")
    add = parser.add_argument
    defaults = Settings()  # the one place the defaults live; each dest is a field's name
    add("--host", default=defaults.host)
    add("--port", type=int, default=LAUNCHER_PORT)  # = defaults.port, the contract's
    add("--log-level", choices=LEVELS, default=defaults.log_level)
    add("--mock-gpus", action="store_true", help="no NVML: use gpu-map or GPU-0..GPU-<n-1>")
    add("--mock-gpu-count", type=int, default=defaults.mock_gpu_count)
    add("--start-timeout", type=float, default=defaults.start_timeout,
        help="seconds until /health must answer")  # fmt: skip
    add("--stop-grace", type=float, default=defaults.stop_grace,
        help="seconds between SIGTERM and SIGKILL")  # fmt: skip
    add("--probe-interval", type=float, default=defaults.probe_interval,
        help="seconds between sleep-state probes")  # fmt: skip
    add("--log-dir", type=Path, default=defaults.log_dir,
        help="instance logs (default: the temp dir)")  # fmt: skip
    add("--instance-entry", default=defaults.instance_entry,
        help="module:function run in each child")  # fmt: skip
    add("--watch-buffer", type=int, default=defaults.watch_buffer,
        help="events kept for watch resumption")  # fmt: skip
    args = parser.parse_args(argv)
    return cli.settings_from(Settings, args)


class _Server(uvicorn.Server):
    """Ends open watch streams as soon as a stop is asked for.

    uvicorn waits for open responses before running the app's shutdown; a watch never ends by
    itself, so without this a SIGTERM would wait for the graceful-shutdown timeout.
    """

    def __init__(self, config: uvicorn.Config, on_exit: Any) -> None:
        super().__init__(config)
        self._on_exit = on_exit

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        with_loop = getattr(self, "_loop", None)
        if isinstance(with_loop, asyncio.AbstractEventLoop):
            with_loop.call_soon_threadsafe(self._on_exit)
        super().handle_exit(sig, frame)

    async def serve(self, sockets: Any = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)


def main(argv: list[str] | None = None) -> int:
    settings = parse_args(argv)
    try:
        settings = dataclasses.replace(settings, control_auth=verifier_from_env())
    except ValueError as exc:
        print(f"fma-launcher: {exc}", file=sys.stderr)
        return 2
    jsonlog.configure(settings.log_level, adopt=("uvicorn", "uvicorn.error", "uvicorn.access"))
    gpu_map = gpus.load(mock=settings.mock_gpus, mock_count=settings.mock_gpu_count)
    app = create_app(settings, gpu_map)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        log_config=None,  # keep our JSON handler
        timeout_graceful_shutdown=5,
        lifespan="on",
    )
    server = _Server(config, on_exit=app.state.manager.events.close)
    _log.info(
        "fma-launcher on %s:%d (control token %s)",
        settings.host,
        settings.port,
        "required" if settings.control_auth else f"not required: {MODE_ENV}={MODE_OFF}",
    )
    server.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
