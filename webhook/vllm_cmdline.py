"""Recognise a container that runs the vLLM OpenAI server and parse its command line.

The webhook rewrites only Pods it fully understands, so this parser is deliberately narrow. It
accepts the forms people write in manifests:

- `vllm serve MODEL [options]` (also `--model MODEL`), and `python -m vllm.entrypoints.cli.main
  serve ...`;
- `python[3] -m vllm.entrypoints.openai.api_server --model MODEL [options]`;
- either of those as the script of `sh -c` / `bash -c`, when the script is a plain word list
  (quotes allowed; no variables, operators, redirections or globs, whose meaning only a shell
  knows);
- no `command` on a `vllm-openai` image, whose entrypoint is the server: `args` are its options.

It knows nothing of vLLM's option table. Options are read as groups: a flag followed by the
tokens that are not flags (`--lora-modules a=x b=y` is one group). A positional MODEL is only
recognised right after `serve`, as vLLM documents it; a line it cannot read unambiguously raises
`UnparseableCommandError`, which names what it met and the fix, and the Pod is then left untouched.
"""

from __future__ import annotations

import itertools
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from contract.requester import DEFAULT_VLLM_PORT

DEFAULT_PORT: Final = DEFAULT_VLLM_PORT
"""vLLM's `--port` default (declared in `contract.requester`)."""

OptionGroup = tuple[str, tuple[str, ...]]
"""A flag as written (`--dtype`, `-tp`) and the values that follow it (possibly none)."""


class CommandForm(StrEnum):
    """How the container starts the server; kept to explain decisions and for metrics."""

    VLLM_SERVE = "vllm serve"
    API_SERVER_MODULE = "python -m vllm.entrypoints.openai.api_server"
    IMAGE_ENTRYPOINT = "vllm-openai image entrypoint"


@dataclass(frozen=True, slots=True)
class VllmServeCommand:
    """A parsed vLLM server command line.

    `options` are the server's arguments as an argv list, in their order, with every `--port`
    and its value removed and `--flag=value` split into `--flag value`; a positional model stays
    where it was. `in_shell` is True when the line came from a `sh -c` script.
    """

    model: str
    options: tuple[str, ...]
    port: int
    form: CommandForm
    in_shell: bool = False


class UnparseableCommandError(ValueError):
    """The container looks like a vLLM server, but its command line cannot be read safely."""


_NUMBER = re.compile(r"-?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")
_PYTHON = re.compile(r"python(\d+(\.\d+)*)?")
_PYTHON_FLAGS: Final = frozenset({"-u", "-B", "-O", "-OO", "-s", "-S", "-E", "-I", "-P", "-q"})
_SHELLS: Final = frozenset({"sh", "bash", "dash", "ash"})
_SHELL_UNSAFE = re.compile(r"[;&|<>$`\\(){}*?\[\]~#!\n\r]")
_SHELL_VLLM = re.compile(r"\bvllm\s+serve\b|\bvllm\.entrypoints\.")
_PORT = re.compile(r"[0-9]{1,5}")
_API_SERVER: Final = "vllm.entrypoints.openai.api_server"
_CLI_MAIN: Final = "vllm.entrypoints.cli.main"
_SHORT_FLAGS: Final = {
    "-tp": "--tensor-parallel-size",
    "-pp": "--pipeline-parallel-size",
    "-dp": "--data-parallel-size",
    "-q": "--quantization",
}


def quote(value: object, limit: int = 60) -> str:
    """`repr`-quote a user-supplied value for a message, cut so one field cannot flood it."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 4] + "...'"


def is_flag(token: str) -> bool:
    """True for `-x`/`--xyz` tokens; negative numbers and a lone `-` are values."""
    return token.startswith("-") and token != "-" and _NUMBER.fullmatch(token) is None


def canonical_flag(flag: str) -> str:
    """The spelling vLLM resolves a flag to: `_` read as `-` (vLLM accepts both), and the short
    aliases `-tp`, `-pp`, `-dp`, `-q` expanded."""
    flag = _SHORT_FLAGS.get(flag, flag)
    if flag.startswith("--"):
        return "--" + flag[2:].replace("_", "-")
    return flag


def split_equals(tokens: Sequence[str]) -> list[str]:
    """Split `--flag=value` into `--flag`, `value` (at the first `=`); other tokens unchanged."""
    out: list[str] = []
    for token in tokens:
        if is_flag(token) and "=" in token:
            flag, value = token.split("=", 1)
            out.extend((flag, value))
        else:
            out.append(token)
    return out


def option_groups(tokens: Sequence[str]) -> tuple[list[str], list[OptionGroup]]:
    """Split normalised tokens into the positionals before the first flag and the flag groups.

    `--` (end of options) is refused: after it every token is positional, which this reading
    cannot represent, and an added flag would be taken as a positional.
    """
    positionals: list[str] = []
    groups: list[tuple[str, list[str]]] = []
    for token in tokens:
        if token == "--":
            raise UnparseableCommandError("the command line contains `--`; remove it")
        if is_flag(token):
            groups.append((token, []))
        elif groups:
            groups[-1][1].append(token)
        else:
            positionals.append(token)
    return positionals, [(flag, tuple(values)) for flag, values in groups]


def parse_command_line(
    command: Sequence[str] | None, args: Sequence[str] | None, image: str | None
) -> VllmServeCommand | None:
    """Parse what a container runs; None when it does not run the vLLM OpenAI server.

    `command` replaces the image's entrypoint and `args` follow it, as the kubelet does. Raises
    `UnparseableCommandError` when the container does run vLLM but the line is not understood.
    """
    args = list(args or ())
    if command:
        return _parse_argv([*command, *args], in_shell=False)
    if image is not None and "vllm-openai" in image:
        return parse_server_args(args, CommandForm.IMAGE_ENTRYPOINT, in_shell=False)
    return None


def _basename(token: str) -> str:
    return token.rsplit("/", 1)[-1]


def _parse_argv(argv: list[str], *, in_shell: bool) -> VllmServeCommand | None:
    program = _basename(argv[0])
    if program == "vllm":
        if argv[1:2] != ["serve"]:
            return None  # another vllm subcommand (bench, run-batch, ...): not a server
        return parse_server_args(argv[2:], CommandForm.VLLM_SERVE, in_shell=in_shell)
    if _PYTHON.fullmatch(program):
        return _parse_python(argv, in_shell=in_shell)
    if program in _SHELLS and not in_shell and len(argv) >= 3 and argv[1] == "-c":
        return _parse_shell(argv)
    return None


def _parse_python(argv: list[str], *, in_shell: bool) -> VllmServeCommand | None:
    index = 1
    while index < len(argv) and argv[index] in _PYTHON_FLAGS:
        index += 1
    rest = argv[index:]
    if rest[:2] == ["-m", _API_SERVER]:
        return parse_server_args(rest[2:], CommandForm.API_SERVER_MODULE, in_shell=in_shell)
    if rest[:3] == ["-m", _CLI_MAIN, "serve"]:
        return parse_server_args(rest[3:], CommandForm.VLLM_SERVE, in_shell=in_shell)
    if rest[:1] == ["-m"] and rest[1:2] and rest[1].startswith("vllm"):
        raise UnparseableCommandError(
            f"python runs module {quote(rest[1])}, not {_API_SERVER}; use `vllm serve MODEL` "
            "or that module"
        )
    if any(
        token.startswith("-mvllm") or (token == "-m" and after.startswith("vllm"))
        for token, after in itertools.pairwise([*rest, ""])
    ):
        raise UnparseableCommandError(
            "python gets options before `-m vllm...` that are not understood; keep only "
            "-u/-B/-O/-s/-S/-E/-I/-P/-q, and write `-m MODULE` as two words"
        )
    return None


def _parse_shell(argv: list[str]) -> VllmServeCommand | None:
    script = argv[2]
    if _SHELL_VLLM.search(script) is None:
        return None
    hint = "; write it as an exec list, e.g. command: [vllm, serve, MODEL, ...]"
    if len(argv) > 3:
        shell = _basename(argv[0])
        raise UnparseableCommandError(f"`{shell} -c` gets arguments after the script{hint}")
    unsafe = _SHELL_UNSAFE.search(script)
    if unsafe is not None:
        raise UnparseableCommandError(f"the shell script uses {unsafe.group()!r}{hint}")
    try:
        tokens = shlex.split(script)
    except ValueError as error:
        message = f"the shell script does not split into words ({error}){hint}"
        raise UnparseableCommandError(message) from None
    if tokens[:1] == ["exec"]:
        tokens = tokens[1:]
    parsed = _parse_argv(tokens, in_shell=True) if tokens else None
    if parsed is None:
        raise UnparseableCommandError(f"the shell script does not start with `vllm serve`{hint}")
    return parsed


def parse_server_args(
    args: Sequence[str], form: CommandForm, *, in_shell: bool = False
) -> VllmServeCommand:
    """Parse the server's own arguments (what follows `serve` or the module name)."""
    tokens = split_equals(args)
    positionals, groups = option_groups(tokens)
    positional_ok = form is not CommandForm.API_SERVER_MODULE
    if len(positionals) > (1 if positional_ok else 0):
        raise UnparseableCommandError(
            f"unexpected positional arguments {quote(positionals)} before the first option; "
            + ("give only the model there" if positional_ok else "pass the model as --model")
        )
    if any(canonical_flag(flag) == "--config" for flag, _ in groups):
        raise UnparseableCommandError(
            "--config reads options from a file the webhook cannot see; put them on the "
            "command line"
        )
    model = _model(positionals, groups)
    port = DEFAULT_PORT
    options: list[str] = list(positionals)
    for flag, values in groups:
        if canonical_flag(flag) == "--port":
            port = _port(values)
            continue
        options.extend((flag, *values))
    return VllmServeCommand(model, tuple(options), port, form, in_shell)


def _model(positionals: list[str], groups: list[OptionGroup]) -> str:
    models = [values for flag, values in groups if canonical_flag(flag) == "--model"]
    if positionals and models:
        raise UnparseableCommandError("the model is given both as a positional and by --model")
    if len(models) > 1:
        raise UnparseableCommandError("--model is given more than once; keep one")
    if models and len(models[0]) != 1:
        raise UnparseableCommandError("--model must be followed by exactly one value")
    model = positionals[0] if positionals else models[0][0] if models else ""
    if not model:
        raise UnparseableCommandError("no model: add it after `serve` or as --model MODEL")
    return model


def _port(values: tuple[str, ...]) -> int:
    if len(values) != 1 or not _PORT.fullmatch(values[0]) or not 1 <= int(values[0]) <= 65535:
        raise UnparseableCommandError(
            f"--port must be followed by one port number (1-65535), got {quote(list(values))}"
        )
    return int(values[0])
