"""The stand-in's command line: vLLM's options, so one argv starts either.

Tests and the launcher pass the stand-in exactly what they would pass vLLM. Options it models
(`--model`, `--served-model-name`, `--host`, `--port`, `--max-model-len`,
`--disable-uvicorn-access-log`, `--disable-access-log-for-endpoints`) take effect; every other
option vLLM knows is accepted and ignored (the vocabulary is generated from vLLM, see
`gen_options`); anything else fails as vLLM's
argparse fails: usage, `error: unrecognized arguments: ...` on stderr, exit code 2. Like vLLM's
`FlexibleArgumentParser`, `--a_b` means `--a-b`, dotted `--json-arg.key value` forms are
accepted for JSON options, and `-O3` means `--optimization-level 3`.

Options of the stand-in itself: `--startup-delay`, `--sleep-delay`, `--wake-delay` (seconds).
"""

from __future__ import annotations

import argparse
import functools
import os
from collections.abc import Mapping, Sequence
from typing import Final, TextIO

from localcluster.vllm_standin.config import StandinConfig
from localcluster.vllm_standin.vllm_options import DEFAULT_MODEL, DEFAULT_PORT, OPTIONS

_MODELLED: Final = frozenset(
    {
        "--model",
        "--served-model-name",
        "--host",
        "--port",
        "--max-model-len",
        "--disable-uvicorn-access-log",
        "--no-disable-uvicorn-access-log",
        "--disable-access-log-for-endpoints",
    }
)
_TYPES: Final = {"int": int, "float": float, "str": str}
_NARGS: Final[dict[str, int | str | None]] = {"1": None, "?": "?", "+": "+"}


def build_parser(prog: str = "api_server.py") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog, description="vLLM stand-in: the HTTP behaviour of vLLM's OpenAI server."
    )
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--served-model-name", nargs="+", default=None)
    parser.add_argument("--host", default=None)
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--max-model-len", default=None)
    parser.add_argument(
        "--disable-uvicorn-access-log", action=argparse.BooleanOptionalAction, default=False
    )
    parser.add_argument("--disable-access-log-for-endpoints", default=None)
    own = parser.add_argument_group("stand-in")
    own.add_argument("--startup-delay", type=float, default=0.5, help="seconds until it listens")
    own.add_argument("--sleep-delay", type=float, default=0.0, help="seconds a sleep takes")
    own.add_argument("--wake-delay", type=float, default=0.0, help="seconds a wake-up takes")
    for option, (arity, kind) in OPTIONS.items():
        if option in _MODELLED or option in ("-h", "--help"):
            continue
        dest = "ignored_" + option.lstrip("-").replace("-", "_").replace(".", "_")
        if arity == "0":
            parser.add_argument(option, dest=dest, action="store_true", help=argparse.SUPPRESS)
        else:
            parser.add_argument(
                option, dest=dest, nargs=_NARGS[arity], type=_TYPES[kind], help=argparse.SUPPRESS
            )
    return parser


@functools.lru_cache(maxsize=4)
def _shared_parser(prog: str) -> tuple[argparse.ArgumentParser, dict[str, object]]:
    """One parser per program name, with its defaults: building vLLM's vocabulary and asking
    each option for its default cost about 7 ms, which a kubelet starting 500 in-process
    stand-ins pays once instead of 500 times (parsing does not change a parser)."""
    parser = build_parser(prog)
    return parser, vars(parser.parse_args([]))


def normalize(args: Sequence[str]) -> list[str]:
    """vLLM's spelling rules (see module docstring) applied before argparse sees the args."""
    out: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if arg.startswith("--"):
            key, eq, value = arg.partition("=")
            head, dot, rest = key[2:].partition(".")
            base = "--" + head.replace("_", "-")
            if dot and base in OPTIONS:
                if not eq:
                    i += 1  # the dotted key's value is the next arg
                out.append(f"{base}={{}}")
            else:
                out.append(f"{base}{dot}{rest}{eq}{value}")
        elif arg.startswith("-O") and arg != "-O":
            out += ["--optimization-level", arg[3:] if arg[2:3] == "=" else arg[2:]]
        else:
            out.append(arg)
    return out


def _paths(raw: str | None, default: Sequence[str]) -> frozenset[str]:
    """`--disable-access-log-for-endpoints`: comma-separated paths, matched exactly; when the
    option is absent, `default` (what the launcher's instance entry gives)."""
    if raw is None:
        return frozenset(default)
    return frozenset(path.strip() for path in raw.split(",") if path.strip())


def _model_len(raw: str | None, parser: argparse.ArgumentParser) -> int | None:
    """vLLM's human-readable ints: 2048, 2k, 1K (x1024), 2m ..."""
    if raw is None:
        return None
    units = {"k": 1000, "K": 1024, "m": 1000**2, "M": 1024**2, "g": 1000**3, "G": 1024**3}
    try:
        if raw[-1:] in units:
            return int(float(raw[:-1]) * units[raw[-1]])
        return int(raw)
    except ValueError:
        parser.error(f"argument --max-model-len: invalid value {raw!r}")


def _dev_mode(env: Mapping[str, str], parser: argparse.ArgumentParser) -> bool:
    """vLLM reads `bool(int(VLLM_SERVER_DEV_MODE))`: "1" on, "0" off, anything else fails."""
    raw = env.get("VLLM_SERVER_DEV_MODE", "0")
    try:
        return bool(int(raw))
    except ValueError:
        parser.error(f"VLLM_SERVER_DEV_MODE={raw!r} is not an integer")


def parse(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    log: TextIO | None = None,
    prog: str = "api_server.py",
    quiet_paths: Sequence[str] = (),
) -> StandinConfig:
    """argv (without the program name) → config; exits 2 with argparse's message when bad."""
    env = os.environ if env is None else env
    parser, defaults = _shared_parser(prog)
    ns = parser.parse_args(normalize(argv))
    non_default = {
        k: v for k, v in vars(ns).items() if v != defaults.get(k) and not k.endswith("_delay")
    }
    return StandinConfig(
        model=ns.model,
        served_model_names=tuple(ns.served_model_name or ()),
        host=ns.host if ns.host is not None else env.get("POD_IP", "0.0.0.0"),
        port=ns.port,
        max_model_len=_model_len(ns.max_model_len, parser),
        startup_delay=ns.startup_delay,
        sleep_delay=ns.sleep_delay,
        wake_delay=ns.wake_delay,
        dev_mode=_dev_mode(env, parser),
        access_log=not ns.disable_uvicorn_access_log,
        access_log_skip=_paths(ns.disable_access_log_for_endpoints, quiet_paths),
        log=log,
        non_default_args=non_default,
    )
