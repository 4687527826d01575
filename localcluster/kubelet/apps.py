"""The built-in in-process apps: fma's requester stub and the vLLM stand-in (see `inprocess`).

Each adapter does what the program's `main` does — parse argv and environment, serve until
SIGTERM, exit 0 — but on the kubelet's event loop: its stdout and stderr are the container's,
`terminated` stands for SIGTERM. Messages argparse would print go to the container's streams.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from pathlib import PurePath

from jsonlog import fields
from localcluster.kubelet.inprocess import AppContext

_log = logging.getLogger("fma.requester")


async def requester(ctx: AppContext) -> int:
    """`fma-requester`: its relayed vLLM log is the container's stdout, its JSON log stderr."""
    from launcher.requester.cli import parse_config, serve_until

    with contextlib.redirect_stdout(ctx.stdout), contextlib.redirect_stderr(ctx.stderr):
        try:
            parsed = parse_config(ctx.argv[1:], ctx.env)
        except ValueError as e:
            _log.error("bad configuration", extra=fields(error=str(e)))
            return 2
    config = dataclasses.replace(
        parsed.requester, log_sink=ctx.stdout.buffer, threaded_log_writes=False
    )
    try:
        await serve_until(config, ctx.terminated)
    except OSError as e:
        _log.error("cannot listen", extra=fields(error=str(e)))
        return 1
    return 0


async def vllm_standin(ctx: AppContext) -> int:
    """`fma-vllm-standin`: vLLM's argv; binds the Pod IP unless `--host` says otherwise."""
    from localcluster.vllm_standin.cli import serve_until
    from localcluster.vllm_standin.options import parse

    prog = PurePath(ctx.argv[0]).name if ctx.argv else "api_server.py"
    with contextlib.redirect_stdout(ctx.stdout), contextlib.redirect_stderr(ctx.stderr):
        config = parse(ctx.argv[1:], env=ctx.env, log=ctx.stdout, prog=prog)
    try:
        await serve_until(config, ctx.terminated)
    except OSError as e:
        ctx.stderr.write(f"ERROR: cannot bind {config.host}:{config.port}: {e}\n")
        return 1
    return 0
