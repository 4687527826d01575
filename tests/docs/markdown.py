"""Reads the user docs (docs/*.md) into fenced blocks and the test markers that govern them.

A marker is an HTML comment, invisible on a rendered page, right before a fenced block:

    <!-- test: run -->                    run the next ```bash block; it must exit 0
    <!-- test: run; expect "text" -->     ... and print `text` (stdout or stderr; repeatable)
    <!-- test: run; retry 30 -->          ... retrying for up to 30 s until it passes
    <!-- test: fails; expect "text" -->   the block must exit non-zero and print `text`
    <!-- test: skip: REASON -->           not run here; the reason is required
    <!-- test: file NAME -->              the next ```yaml block is written to NAME
    <!-- test: same-as PATH[#/POINTER] -->  the next block holds the data of PATH (YAML or
                                          JSON), or of the JSON Pointer inside it
    <!-- test: lines-in PATH#/POINTER --> every line of the next block is an item of that list
    <!-- test: output -->                 every line of the next block is a line that the last
                                          run or fails block printed

Two markers stand alone:

    <!-- test: environment webhook -->    before the first block, start what the doc needs
    <!-- test: setup
    commands
    -->                                   hidden commands, run where they stand

Every ```bash block must carry a run, fails or skip marker (`test_every_command_is_marked`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal

REPO: Final = Path(__file__).resolve().parents[2]
DOCS: Final = REPO / "docs"
USER_DOCS: Final = (
    "quickstart.md",
    "mutation.md",
    "crds.md",
    "operations.md",
    "troubleshooting.md",
    "benchmarks.md",
)
"""The docs whose commands are tested (architecture.md and local-cluster.md are for developers
and hold no commands)."""

Kind = Literal[
    "run", "fails", "skip", "file", "same-as", "lines-in", "output", "setup", "environment"
]
KINDS: Final = frozenset(
    {"run", "fails", "skip", "file", "same-as", "lines-in", "output", "setup", "environment"}
)
_MARKER = re.compile(r"<!--\s*test:\s*(?P<body>.*?)\s*-->", re.DOTALL)
_FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,}|~{3,})(?P<info>[^`]*)$")
_EXPECT = re.compile(r'expect\s+"(?P<text>[^"]*)"')
_RETRY = re.compile(r"\bretry\s+(?P<seconds>\d+)\b")


class MarkerError(ValueError):
    """A marker that cannot be read, or one in the wrong place."""


@dataclass(frozen=True)
class Marker:
    """One `<!-- test: ... -->` comment."""

    line: int
    kind: Kind
    argument: str = ""
    expects: tuple[str, ...] = ()
    retry_s: float = 0.0


@dataclass(frozen=True)
class Block:
    """A fenced block: where it is, its info string, its text, and the marker before it."""

    path: Path
    line: int
    info: str
    text: str
    marker: Marker | None = None

    @property
    def language(self) -> str:
        return self.info.split()[0] if self.info.split() else ""

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(REPO)}:{self.line}"


@dataclass(frozen=True)
class Doc:
    """A Markdown file as the runner sees it: its blocks and markers, in order."""

    path: Path
    steps: list[Block | Marker] = field(default_factory=list)

    @property
    def blocks(self) -> list[Block]:
        return [step for step in self.steps if isinstance(step, Block)]

    @property
    def environment(self) -> set[str]:
        return {
            name.strip()
            for step in self.steps
            if isinstance(step, Marker) and step.kind == "environment"
            for name in step.argument.split(",")
            if name.strip()
        }


def parse_marker(body: str, line: int) -> Marker:
    """`run; expect "x"`, `skip: reason`, `file NAME`, ... → Marker."""
    match = re.match(r"(?P<kind>[a-z-]+)\s*:?\s*(?P<rest>.*)", body, re.DOTALL)
    if match is None or match["kind"] not in KINDS:
        raise MarkerError(f"line {line}: unknown test marker {body[:40]!r}; use one of {KINDS}")
    kind: Kind = match["kind"]  # type: ignore[assignment]
    rest = match["rest"].strip()
    if kind in ("run", "fails"):
        options = rest.lstrip(";").strip()
        leftover = _RETRY.sub("", _EXPECT.sub("", options)).replace(";", "").strip()
        if leftover:
            raise MarkerError(f"line {line}: cannot read {leftover!r} in a {kind} marker")
        retry = _RETRY.search(options)
        return Marker(
            line,
            kind,
            expects=tuple(m["text"] for m in _EXPECT.finditer(options)),
            retry_s=float(retry["seconds"]) if retry else 0.0,
        )
    if kind in ("skip", "file", "same-as", "lines-in", "environment") and not rest:
        raise MarkerError(f"line {line}: a {kind} marker needs an argument (a reason, a path)")
    if kind == "lines-in" and "#" not in rest:
        raise MarkerError(f"line {line}: lines-in needs PATH#/POINTER to a list")
    return Marker(line, kind, argument=rest)


def parse(path: Path) -> Doc:
    """The blocks and markers of one Markdown file; raises MarkerError for a misplaced marker."""
    text = path.read_text()
    lines = text.splitlines()
    doc = Doc(path)
    pending: Marker | None = None
    index = 0
    while index < len(lines):
        line = lines[index]
        fence = _FENCE.match(line)
        if fence is not None:
            start = index
            body: list[str] = []
            index += 1
            closing = fence["fence"]
            while index < len(lines) and not lines[index].strip().startswith(closing):
                body.append(_dedent(lines[index], len(fence["indent"])))
                index += 1
            doc.steps.append(
                Block(path, start + 1, fence["info"].strip(), "\n".join(body) + "\n", pending)
            )
            pending = None
            index += 1
            continue
        if "<!--" in line and "test:" in line:
            end = index
            while "-->" not in lines[end]:
                end += 1
            comment = "\n".join(lines[index : end + 1])
            found = _MARKER.search(comment)
            if found is None:
                raise MarkerError(f"{path.name}:{index + 1}: unreadable test marker")
            marker = _setup(found["body"], index + 1) or parse_marker(found["body"], index + 1)
            if marker.kind in ("setup", "environment"):
                doc.steps.append(marker)
            else:
                if pending is not None:
                    raise MarkerError(f"{path.name}:{pending.line}: marker without a block")
                pending = marker
            index = end + 1
            continue
        if pending is not None and line.strip():
            raise MarkerError(f"{path.name}:{pending.line}: a marker must precede a fenced block")
        index += 1
    if pending is not None:
        raise MarkerError(f"{path.name}:{pending.line}: marker without a block")
    return doc


def _setup(body: str, line: int) -> Marker | None:
    """A multi-line `setup` comment: its commands are the marker's argument."""
    head, _, commands = body.partition("\n")
    if head.strip() != "setup":
        return None
    return Marker(line, "setup", argument=commands.strip() + "\n")


def _dedent(line: str, indent: int) -> str:
    """A line of a block that is indented (inside a list item) without that indentation."""
    return line[indent:] if line[:indent].strip() == "" else line.lstrip()


def user_docs() -> list[Path]:
    return [DOCS / name for name in USER_DOCS]
