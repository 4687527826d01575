"""Regenerates `vllm_options.py`, the stand-in's copy of vLLM's command-line vocabulary.

Run with an interpreter that has vLLM: `python -m localcluster.vllm_standin.gen_options`. The
contract test compares the copy with the installed vLLM and fails when they differ, naming this
command, so the stand-in accepts exactly the options real vLLM accepts.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

TARGET = Path(__file__).with_name("vllm_options.py")


def arity(action: argparse.Action) -> str:
    """How many values an option takes: "0", "1", "?" or "+"."""
    nargs = action.nargs
    if nargs == 0:
        return "0"
    if nargs is None or nargs == 1:
        return "1"
    if nargs == "?":
        return "?"
    return "+"


def value_kind(action: argparse.Action) -> str:
    """ "int"/"float" where vLLM parses the value as such (so a bad value fails alike)."""
    if action.type is int:
        return "int"
    if action.type is float:
        return "float"
    return "str"


def live_vocabulary() -> tuple[str, dict[str, tuple[str, str]], dict[str, Any]]:
    """(vLLM version, option → (arity, kind), defaults of the options the stand-in models)."""
    import vllm
    from vllm.entrypoints.launchers.cli_args import make_arg_parser
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    parser_class: Any = FlexibleArgumentParser  # vLLM's own annotations are partial
    parser = make_arg_parser(parser_class(description="vLLM"))
    options: dict[str, tuple[str, str]] = {}
    defaults: dict[str, Any] = {}
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        for option in action.option_strings:
            options[option] = (arity(action), value_kind(action))
        if action.dest in ("model", "host", "port", "max_model_len"):
            defaults[action.dest] = action.default
    return str(vllm.__version__), dict(sorted(options.items())), defaults


def render(version: str, options: dict[str, tuple[str, str]], defaults: dict[str, Any]) -> str:
    lines = [
        '"""vLLM\'s command-line vocabulary (generated; do not edit).',
        "",
        "Regenerate with `python -m localcluster.vllm_standin.gen_options` in an environment",
        "with vLLM; option → (arity: 0/1/?/+, value kind: int/float/str).",
        '"""',
        "",
        "from typing import Final",
        "",
        f"VLLM_VERSION: Final = {json.dumps(version)}",
        f"DEFAULT_MODEL: Final = {json.dumps(defaults.get('model'))}",
        f"DEFAULT_PORT: Final = {int(defaults.get('port') or 8000)}",
        "OPTIONS: Final[dict[str, tuple[str, str]]] = {",
        *(
            f"    {json.dumps(name)}: ({json.dumps(spec[0])}, {json.dumps(spec[1])}),"
            for name, spec in options.items()
        ),
        "}",
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    TARGET.write_text(render(*live_vocabulary()))
    print(f"wrote {TARGET}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
