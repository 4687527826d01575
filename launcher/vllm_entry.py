"""The default instance entry: vLLM's OpenAI-compatible server, run in-process.

The fork server imports this module once, so everything imported at module level here is paid
for at launcher start instead of at every instance start: that is the warm path. `serve` mirrors
`vllm.entrypoints.launchers.api_server.entry.main` (CLI environment set-up, vLLM's own argument
parser and validation, `run_server` on uvloop) but takes its argv as a parameter.

Only the fork server and its children import this module; the launcher process itself never
imports vLLM, which keeps the API server small and its start-up quick.
"""

from __future__ import annotations

import multiprocessing
import os
from typing import Any, cast

import uvloop
import vllm.v1.engine.async_llm  # noqa: F401 - preloaded: the API server creates an AsyncLLM
import vllm.v1.engine.utils as engine_utils
from vllm.entrypoints.launchers.api_server.entry import run_server
from vllm.entrypoints.launchers.cli_args import make_arg_parser, validate_parsed_serve_args
from vllm.entrypoints.serve.utils.api_utils import cli_env_setup
from vllm.logger import configure_logging_from_args
from vllm.platforms import current_platform
from vllm.utils.argparse_utils import FlexibleArgumentParser
from vllm.utils.platform_utils import cuda_is_initialized
from vllm.utils.system_utils import get_mp_context

from contract.vllm import PROBED_PATHS
from launcher import _proc

FORK_ENGINE_CORE_ENV = "FMA_FORK_ENGINE_CORE"


def _engine_core_context() -> Any:
    """The multiprocessing context for vLLM's EngineCore: fork, where that is safe.

    vLLM's API server starts its EngineCore as a separate process. The CLI (and, on CPU, the
    platform) ask for `spawn`, which starts a fresh interpreter that imports vLLM, torch and the
    model code all over again: about 7-10 s, most of what a forked instance still waited for.
    The instance process already has all of that imported (from the fork server), so forking it
    gives the EngineCore the same modules for free. vLLM itself forks the EngineCore when CUDA is
    not initialized in the API server (its default on GPU outside the CLI), so the checks stay
    vLLM's: we call its `get_mp_context` first (for its environment side effects) and use
    `spawn` whenever CUDA is initialized. `FMA_FORK_ENGINE_CORE=0` restores vLLM's choice.
    """
    context = cast(Any, get_mp_context)()
    if os.environ.get(FORK_ENGINE_CORE_ENV, "1") != "1" or cuda_is_initialized():
        return context
    return _ForkContext()


class _EngineCoreProcess(multiprocessing.context.ForkProcess):
    """A forked EngineCore that dies with its instance (vLLM's has no parent-death check).

    Without this, a SIGKILLed instance would orphan its EngineCore. vLLM starts it from the
    instance's main thread, which lives as long as the instance, so `PR_SET_PDEATHSIG` (tied to
    the parent thread) fires exactly when the instance dies.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._fma_parent = os.getpid()

    def run(self) -> None:
        _proc.die_with_parent(self._fma_parent)
        super().run()


class _ForkContext(multiprocessing.context.ForkContext):
    Process = _EngineCoreProcess


def sleep_mode_available() -> bool:
    """vLLM's own answer (CUDA, ROCm, XPU: yes; CPU: no); decides `--enable-sleep-mode`."""
    return bool(current_platform.is_sleep_mode_available())


def serve(argv: list[str]) -> Any:
    cast(Any, engine_utils).get_mp_context = _engine_core_context  # this child only
    # vLLM is partly untyped; calls go through Any so that mypy agrees with or without it.
    cast(Any, cli_env_setup)()
    parser = make_arg_parser(
        cast(Any, FlexibleArgumentParser)(
            description="vLLM OpenAI-compatible server (fma instance)"
        )
    )
    args = parser.parse_args(argv)
    if getattr(args, "disable_access_log_for_endpoints", "absent") is None:
        args.disable_access_log_for_endpoints = ",".join(PROBED_PATHS)
    configure_logging_from_args(args)
    validate_parsed_serve_args(args)
    uvloop.run(run_server(args))
    return 0
