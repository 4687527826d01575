"""Checks of an ISC's `modelServerConfig.options`, the vLLM command line of an instance.

fma's launcher splits `options` with `shlex` (so `--additional-config '{"k": 1}'` works); the
reference launcher splits on whitespace. The controllers append `--port <port>` themselves, so
the options must not carry one: vLLM would take the last `--port`, and the controllers would
talk to the wrong port.
"""

from __future__ import annotations

import shlex

from contract.vllm import SLEEP_MODE_FLAG
from webhook.validation._verdict import Findings


def check_options(options: str, path: str, findings: Findings) -> None:
    """Deny `--port` and unsplittable text; warn about portability and missing sleep mode."""
    try:
        argv = shlex.split(options)
    except ValueError:
        findings.deny(path, _split_problem(options), "close the quote, or escape it with '\\'")
        return
    for token in argv:
        if token == "--port" or token.startswith("--port="):
            findings.deny(
                path,
                f"must not set --port (found {token!r})",
                "remove it; the controllers append --port from spec.modelServerConfig.port",
            )
    if argv != options.split():
        findings.warn(
            path,
            "uses quotes or backslashes: fma's launcher honours them (shlex), but the "
            "reference v0.6 launcher splits on whitespace and would pass them on literally",
        )
    if not any(t == SLEEP_MODE_FLAG or t.startswith(SLEEP_MODE_FLAG + "=") for t in argv):
        findings.warn(
            path,
            f"has no {SLEEP_MODE_FLAG}: the controllers put idle instances to sleep, which fails "
            "without it, so the instance is deleted instead of kept for a fast restart",
        )


def _split_problem(options: str) -> str:
    """Say where `shlex` failed: the quote left open and the option it belongs to."""
    start = _open_quote_at(options)
    if start is None:
        return "ends with an unescaped backslash, so it cannot be split into arguments"
    quote = options[start]
    token_start = start
    while token_start > 0 and not options[token_start - 1].isspace():
        token_start -= 1
    token = options[token_start:start]
    if token.startswith("-"):
        option: str | None = token.split("=", 1)[0]
    else:
        option = _previous_option(options, token_start)
    where = f"in the value of option {option}" if option else "before any option"
    return f"has an unbalanced {quote} quote at character {start + 1} ({where})"


def _open_quote_at(text: str) -> int | None:
    """Index of the quote left open at the end of `text` (POSIX shell rules), or None."""
    quote: str | None = None
    start = 0
    i = 0
    while i < len(text):
        char = text[i]
        if quote is None:
            if char == "\\":
                i += 1
            elif char in "'\"":
                quote, start = char, i
        elif char == quote:
            quote = None
        elif quote == '"' and char == "\\":
            i += 1
        i += 1
    return start if quote is not None else None


def _previous_option(text: str, end: int) -> str | None:
    """The last `-x`/`--xyz` word before `end`, whose value the text at `end` is."""
    for word in reversed(text[:end].split()):
        if word.startswith("-"):
            return word.split("=", 1)[0]
    return None
