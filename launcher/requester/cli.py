"""`fma-requester`: the process in every requester Pod.

Configuration comes from the environment, as in the reference (which documents flags but reads
`PROBES_PORT`/`SPI_PORT`, reference-differences F); the flags below only override it, for local
runs. Stops cleanly on SIGTERM/SIGINT with exit code 0; a bad setting exits 2, a port it cannot
bind 1.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import re
import signal
import sys
from collections.abc import Mapping, Sequence

import jsonlog
from jsonlog import fields
from launcher.requester.gpus import GpuError
from launcher.requester.proxy import DIAL_TIMEOUT_SECONDS
from launcher.requester.server import RequesterConfig, serve_requester

_log = logging.getLogger("fma.requester")

_EPILOG = """\
environment:
  POD_IP                       address to bind (default: all interfaces)
  PROBES_PORT, SPI_PORT        ports (default 8080, 8081)
  PROXY_PORT                   the reference's proxy listener (default 8082)
  FMA_SERVING_PORTS            comma-separated serving ports of the replaced vLLM container,
                               proxied like PROXY_PORT (default: none)
  NVIDIA_VISIBLE_DEVICES       GPU UUIDs when NVML is unavailable (void/none: no GPUs)
  FMA_REQUESTER_GPU_SOURCE     auto (NVML, else NVIDIA_VISIBLE_DEVICES), nvml or env
  FMA_REQUESTER_FAKE_MEMORY_MIB, FMA_REQUESTER_FAKE_MEMORY_FILE
                               memory in use without a GPU, JSON {"<uuid>": MiB}
  FMA_CONTROL_TRUST            control CA bundle (PEM): mutating SPI calls need the
                               controller's token signed under it (required unless off)
  FMA_POD_UID                  this Pod's UID (downward API metadata.uid): the token audience
  FMA_CONTROL_AUTH             off: accept unauthenticated calls (a reference controller)
Connections to the proxy and serving ports are relayed byte for byte to the server the
controller sets with PUT /v1/proxy/config; until then they are closed at once.
stdout carries only the relayed vLLM log; the stub's own log is JSON lines on stderr.
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fma-requester",
        description="The requester stub: readiness probe, the controller's SPI, and the proxy "
        "to the bound vLLM server.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", help="override POD_IP")
    parser.add_argument("--probes-port", type=int, help="override PROBES_PORT")
    parser.add_argument("--spi-port", type=int, help="override SPI_PORT")
    parser.add_argument("--proxy-port", type=int, help="override PROXY_PORT")
    parser.add_argument(
        "--proxy-dial-timeout",
        type=_seconds,
        help=f"seconds (or Go-style 10s, 500ms) to connect to the target "
        f"(default {DIAL_TIMEOUT_SECONDS:g})",
    )
    parser.add_argument("--log-level", default="info", help="default: info")
    return parser


def _seconds(raw: str) -> float:
    """`10`, `2.5`, `10s`, `500ms`, `1m`: the reference takes a Go duration here."""
    match = re.fullmatch(r"([0-9]+(?:\.[0-9]*)?)(ms|s|m)?", raw.strip())
    if match is None or float(match[1]) <= 0:
        raise argparse.ArgumentTypeError(f"{raw!r}: want a positive duration such as 10s")
    return float(match[1]) * {"ms": 0.001, "s": 1.0, "m": 60.0}[match[2] or "s"]


async def serve_until(config: RequesterConfig, stop: asyncio.Event) -> None:
    """Serves until `stop` is set (the CLI sets it on SIGTERM; a host process decides itself)."""
    handle = await serve_requester(config)
    try:
        gpus: object = config.gpus.accelerators()
    except GpuError as e:
        gpus = f"error: {e}"
    _log.info(
        "serving",
        extra=fields(
            host=config.host,
            probes_port=handle.probes_port,
            spi_port=handle.spi_port,
            proxy_port=handle.proxy_port,
            serving_ports=list(handle.serving_ports),
            gpus=gpus,
        ),
    )
    try:
        await stop.wait()
        _log.info("stopping")
    finally:
        await handle.close()


async def _run(config: RequesterConfig) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await serve_until(config, stop)


@dataclasses.dataclass(frozen=True)
class Config:
    """What the command line and the environment configure."""

    requester: RequesterConfig
    log_level: str


def parse_config(argv: Sequence[str] | None, env: Mapping[str, str] | None = None) -> Config:
    """The command line and the environment → (config, log level); ValueError when bad, and
    argparse's usual exit 2 for bad flags."""
    args = _parser().parse_args(argv)
    overrides = {
        k: v
        for k, v in {
            "host": args.host,
            "probes_port": args.probes_port,
            "spi_port": args.spi_port,
            "proxy_port": args.proxy_port,
            "proxy_dial_timeout": args.proxy_dial_timeout,
        }.items()
        if v is not None
    }
    return Config(RequesterConfig.from_env(env, **overrides), args.log_level)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        config = parse_config(argv)
    except ValueError as e:
        jsonlog.configure()
        _log.error("bad configuration", extra=fields(error=str(e)))
        return 2
    jsonlog.configure(config.log_level)
    try:
        asyncio.run(_run(config.requester))
    except OSError as e:
        _log.error("cannot listen", extra=fields(error=str(e)))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
