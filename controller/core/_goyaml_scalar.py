"""Scalar analysis and style choice of the yaml.v2 emitter (a port of libyaml's rules).

yaml.v2 asks for a style (plain, double-quoted, or literal for text with a newline) and the
emitter downgrades it when the text cannot be written that way: a plain scalar with `: ` or
` #` inside, leading or trailing spaces, or a leading indicator becomes single-quoted; text with
unprintable characters becomes double-quoted. The exact rules decide the bytes of the instance
ID's hash input, so they follow `yaml_emitter_analyze_scalar` and
`yaml_emitter_select_scalar_style` closely.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Final

_BREAKS: Final = frozenset("\r\n\u0085\u2028\u2029")
_LEADING_INDICATORS: Final = frozenset("#,[]{}&*!|>'\"%@`")
_FLOW_INDICATORS: Final = frozenset(",?[]{}")


class Style(Enum):
    """Scalar styles of the emitter."""

    PLAIN = "plain"
    SINGLE = "single"
    DOUBLE = "double"
    LITERAL = "literal"


@dataclass(frozen=True, slots=True)
class Analysis:
    """What `yaml_emitter_analyze_scalar` finds out about one scalar."""

    multiline: bool
    flow_plain_allowed: bool
    block_plain_allowed: bool
    single_quoted_allowed: bool
    block_allowed: bool


def is_break(char: str) -> bool:
    """A YAML line break: CR, LF, NEL, LS or PS."""
    return char in _BREAKS


def is_printable(char: str) -> bool:
    """libyaml's printable set (note: no tab, and nothing beyond the Basic Multilingual Plane)."""
    code = ord(char)
    return (
        code == 0x0A
        or 0x20 <= code <= 0x7E
        or 0xA0 <= code <= 0xD7FF
        or (0xE000 <= code <= 0xFFFD and code != 0xFEFF)
    )


def analyze(value: str) -> Analysis:
    """Port of `yaml_emitter_analyze_scalar` (unicode output enabled, as yaml.v2 sets it)."""
    if not value:
        return Analysis(False, False, True, True, False)
    flags = _Flags()
    if value.startswith(("---", "...")):
        flags.block_indicators = flags.flow_indicators = True
    preceded_by_whitespace = True
    previous_space = previous_break = False
    last = len(value) - 1
    for i, char in enumerate(value):
        followed_by_whitespace = i == last or value[i + 1] in " \t"
        _indicators(
            flags,
            char,
            first=i == 0,
            preceded=preceded_by_whitespace,
            followed=followed_by_whitespace,
        )
        if not is_printable(char):
            flags.special_characters = True
        if char == " ":
            flags.leading_space |= i == 0
            flags.trailing_space |= i == last
            flags.break_space |= previous_break
            previous_space, previous_break = True, False
        elif is_break(char):
            flags.line_breaks = True
            flags.leading_break |= i == 0
            flags.trailing_break |= i == last
            flags.space_break |= previous_space
            previous_space, previous_break = False, True
        else:
            previous_space = previous_break = False
        preceded_by_whitespace = char in " \t\0" or is_break(char)
    return flags.result()


def _indicators(flags: _Flags, char: str, *, first: bool, preceded: bool, followed: bool) -> None:
    """The indicator checks of the analysis loop for one character."""
    if first:
        if char in _LEADING_INDICATORS:
            flags.flow_indicators = flags.block_indicators = True
        elif char in "?:":
            flags.flow_indicators = True
            flags.block_indicators |= followed
        elif char == "-" and followed:
            flags.flow_indicators = flags.block_indicators = True
    elif char in _FLOW_INDICATORS:
        flags.flow_indicators = True
    elif char == ":":
        flags.flow_indicators = True
        flags.block_indicators |= followed
    elif char == "#" and preceded:
        flags.flow_indicators = flags.block_indicators = True


class _Flags:
    """Mutable accumulator of the analysis; `result()` applies libyaml's conclusions."""

    def __init__(self) -> None:
        self.block_indicators = self.flow_indicators = False
        self.line_breaks = self.special_characters = False
        self.leading_space = self.leading_break = False
        self.trailing_space = self.trailing_break = False
        self.break_space = self.space_break = False

    def result(self) -> Analysis:
        flow_plain = block_plain = single = block = True
        if self.leading_space or self.leading_break or self.trailing_space or self.trailing_break:
            flow_plain = block_plain = False
        if self.trailing_space:
            block = False
        if self.break_space:
            flow_plain = block_plain = single = False
        if self.space_break or self.special_characters:
            flow_plain = block_plain = single = block = False
        if self.line_breaks:
            flow_plain = block_plain = False
        if self.flow_indicators:
            flow_plain = False
        if self.block_indicators:
            block_plain = False
        return Analysis(self.line_breaks, flow_plain, block_plain, single, block)


def select_style(
    requested: Style, analysis: Analysis, *, empty: bool, flow_level: int, simple_key: bool
) -> Style:
    """Port of `yaml_emitter_select_scalar_style` for implicit (untagged) scalars."""
    style = requested
    if simple_key and analysis.multiline:
        style = Style.DOUBLE
    if style is Style.PLAIN:
        plain_ok = analysis.flow_plain_allowed if flow_level else analysis.block_plain_allowed
        if not plain_ok or (empty and (flow_level or simple_key)):
            style = Style.SINGLE
    if style is Style.SINGLE and not analysis.single_quoted_allowed:
        style = Style.DOUBLE
    if style is Style.LITERAL and (not analysis.block_allowed or flow_level or simple_key):
        style = Style.DOUBLE
    return style
