"""`sigs.k8s.io/yaml.Marshal` output (yaml.v2 emitter) for JSON-shaped Python values.

The instance ID (contracts §4.3) hashes the YAML that the reference gets from
`sigs.k8s.io/yaml.Marshal(modelServerConfig)`: Go JSON, read back by yaml.v2, re-emitted as
block YAML with sorted keys, 2-space indentation and plain scalars folded at column 80. PyYAML
differs in quoting (YAML 1.1 words, `0o17`), folding and key order, so this is a port of the
yaml.v2 2.4 emitter for the node kinds JSON can produce: mappings, sequences, strings,
integers, floats, booleans and null. Anchors, tags and flow style (except the empty `{}` and
`[]`) never occur in that output and are not implemented.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Final

from controller.core._goyaml_scalar import Style, analyze, is_break, is_printable, select_style
from controller.core._yaml_resolve import is_base60_float, resolves_to_string, sort_keys

BEST_WIDTH: Final = 80
BEST_INDENT: Final = 2
_SIMPLE_KEY_MAX_BYTES: Final = 128
_ESCAPES: Final = {
    "\0": "0",
    "\a": "a",
    "\b": "b",
    "\t": "t",
    "\n": "n",
    "\v": "v",
    "\f": "f",
    "\r": "r",
    "\x1b": "e",
    '"': '"',
    "\\": "\\",
    "\x85": "N",
    "\xa0": "_",
    "\u2028": "L",
    "\u2029": "P",
}


def go_yaml(value: object) -> str:
    """The YAML document `sigs.k8s.io/yaml.Marshal` writes for a JSON-shaped value."""
    emitter = _Emitter()
    emitter.node(value)
    emitter.write_indent()  # document end; yaml.v2 clears `open_ended`, so no `...` follows
    return "".join(emitter.out)


class GoYamlError(ValueError):
    """yaml.v2 cannot read back the Go JSON of this value, so the reference fails on it too."""


_NEL_RUN: Final = re.compile("[ \t]*\u0085+[ \t]*")
_REJECTED: Final = re.compile("[\x7f-\x84\x86-\x9f\ufffe\uffff]")


def _reread(text: str, *, key: bool) -> str:
    """The string yaml.v2 gets when it parses Go's JSON for `text` (`JSONToYAML` step one).

    Go's JSON escapes control characters, LS and PS, but writes DEL, C1 controls and NEL raw;
    yaml.v2's reader rejects the former, and folds NEL like a line break inside a double-quoted
    scalar (a key with one is not a valid flow key at all).
    """
    text = "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in text)
    if bad := _REJECTED.search(text):
        msg = f"yaml: control characters are not allowed (U+{ord(bad.group()):04X} in {text!r})"
        raise GoYamlError(msg)
    if "\x85" not in text:
        return text
    if key:
        msg = f"yaml: a mapping key with a NEL (U+0085) cannot be read back: {text!r}"
        raise GoYamlError(msg)
    return _NEL_RUN.sub(
        lambda m: " " if m.group().count("\x85") == 1 else "\n" * (m.group().count("\x85") - 1),
        text,
    )


def _scalar_text(value: object) -> tuple[str, Style]:
    """The text and requested style yaml.v2's encoder gives a scalar (`stringv`, `intv`...)."""
    if value is None:
        return "null", Style.PLAIN
    if value is True or value is False:
        return ("true" if value else "false"), Style.PLAIN
    if isinstance(value, int):
        return str(value), Style.PLAIN
    if isinstance(value, float):
        return _go_float(value), Style.PLAIN
    if isinstance(value, str):
        text = value
        if "\n" in text:
            return text, Style.LITERAL
        plain = resolves_to_string(text) and not is_base60_float(text)
        return text, Style.PLAIN if plain else Style.DOUBLE
    msg = f"cannot marshal {type(value).__name__} as YAML"
    raise TypeError(msg)


def _go_float(value: float) -> str:
    """A float as it comes back from Go JSON through yaml.v2, then `FormatFloat(v, 'g', -1)`.

    Go writes an integral float64 below 1e21 without a fraction (`1`), which yaml.v2 then reads
    as an integer; other values keep their shortest digits, with an exponent when the decimal
    exponent is below -4 or at least 6 (the 'g' rule for the shortest precision).
    """
    if math.isnan(value):
        return ".nan"
    if value in (float("inf"), float("-inf")):
        return ".inf" if value > 0 else "-.inf"
    if value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    sign, digit_tuple, exponent = Decimal(repr(value)).normalize().as_tuple()
    assert isinstance(exponent, int)
    digits = "".join(map(str, digit_tuple))
    point = len(digits) + exponent  # value = 0.<digits> x 10**point
    prefix = "-" if sign else ""
    decimal_exponent = point - 1
    if decimal_exponent < -4 or decimal_exponent >= 6:
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        exp_sign = "-" if decimal_exponent < 0 else "+"
        return f"{prefix}{mantissa}e{exp_sign}{abs(decimal_exponent):02d}"
    if point <= 0:
        return f"{prefix}0.{'0' * -point}{digits}"
    return f"{prefix}{digits[:point]}.{digits[point:]}"


class _Emitter:
    """The state of `yaml_emitter_t` that block output needs, and its write primitives."""

    def __init__(self) -> None:
        self.out: list[str] = []
        self.column = 0
        self.whitespace = True
        self.indention = True
        self.indent = -1
        self.indents: list[int] = []
        self.flow_level = 0

    # --- primitives (put, write_indent, write_indicator) ---

    def put(self, text: str) -> None:
        self.out.append(text)
        self.column += len(text)

    def put_break(self) -> None:
        self.out.append("\n")
        self.column = 0

    def write_indent(self) -> None:
        indent = max(self.indent, 0)
        if (
            not self.indention
            or self.column > indent
            or (self.column == indent and not self.whitespace)
        ):
            self.put_break()
        while self.column < indent:
            self.put(" ")
        self.whitespace = True
        self.indention = True

    def indicator(
        self,
        text: str,
        *,
        need_whitespace: bool,
        is_whitespace: bool = False,
        is_indention: bool = False,
    ) -> None:
        if need_whitespace and not self.whitespace:
            self.put(" ")
        self.put(text)
        self.whitespace = is_whitespace
        self.indention = self.indention and is_indention

    def increase_indent(self, *, flow: bool, indentless: bool) -> None:
        self.indents.append(self.indent)
        if self.indent < 0:
            self.indent = BEST_INDENT if flow else 0
        elif not indentless:
            self.indent += BEST_INDENT

    def pop_indent(self) -> None:
        self.indent = self.indents.pop()

    # --- nodes ---

    def node(self, value: object, *, mapping: bool = False, simple_key: bool = False) -> None:
        if isinstance(value, Mapping):
            self.mapping(value)
        elif isinstance(value, Sequence) and not isinstance(value, str):
            self.sequence(value, mapping_context=mapping)
        else:
            if isinstance(value, str):
                value = _reread(value, key=simple_key)
            self.scalar(value, simple_key=simple_key)

    def empty_flow(self, opening: str, closing: str) -> None:
        self.indicator(opening, need_whitespace=True, is_whitespace=True)
        self.indicator(closing, need_whitespace=False)

    def mapping(self, value: Mapping[object, object]) -> None:
        if not value:
            self.empty_flow("{", "}")
            return
        self.increase_indent(flow=False, indentless=False)
        keys = {_reread(str(key), key=True): key for key in value}
        for text in sort_keys(list(keys)):
            self.write_indent()
            item = value[keys[text]]
            if _is_simple_key(text):
                self.node(text, mapping=True, simple_key=True)
                self.indicator(":", need_whitespace=False)
            else:
                self.indicator("?", need_whitespace=True, is_indention=True)
                self.node(text, mapping=True)
                self.write_indent()
                self.indicator(":", need_whitespace=True, is_indention=True)
            self.node(item, mapping=True)
        self.pop_indent()

    def sequence(self, value: Sequence[object], *, mapping_context: bool) -> None:
        if not value:
            self.empty_flow("[", "]")
            return
        self.increase_indent(flow=False, indentless=mapping_context and not self.indention)
        for item in value:
            self.write_indent()
            self.indicator("-", need_whitespace=True, is_indention=True)
            self.node(item)
        self.pop_indent()

    def scalar(self, value: object, *, simple_key: bool) -> None:
        text, requested = _scalar_text(value)
        analysis = analyze(text)
        style = select_style(
            requested, analysis, empty=not text, flow_level=self.flow_level, simple_key=simple_key
        )
        self.increase_indent(flow=True, indentless=False)
        allow_breaks = not simple_key
        if style is Style.PLAIN:
            self.write_plain(text, allow_breaks=allow_breaks)
        elif style is Style.SINGLE:
            self.write_single(text, allow_breaks=allow_breaks)
        elif style is Style.DOUBLE:
            self.write_double(text, allow_breaks=allow_breaks)
        else:
            self.write_literal(text)
        self.pop_indent()

    # --- scalar writers (yaml_emitter_write_*_scalar) ---

    def write_plain(self, text: str, *, allow_breaks: bool) -> None:
        if not self.whitespace:
            self.put(" ")
        self._folded_body(text, allow_breaks=allow_breaks, quote=None)
        self.whitespace = False
        self.indention = False

    def write_single(self, text: str, *, allow_breaks: bool) -> None:
        self.indicator("'", need_whitespace=True)
        self._folded_body(text, allow_breaks=allow_breaks, quote="'")
        self.indicator("'", need_whitespace=False)
        self.whitespace = False
        self.indention = False

    def _folded_body(self, text: str, *, allow_breaks: bool, quote: str | None) -> None:
        """The shared loop of the plain and single-quoted writers (folding at spaces)."""
        spaces = breaks = False
        last = len(text) - 1
        for i, char in enumerate(text):
            if char == " ":
                next_is_space = i < last and text[i + 1] == " "
                inner = quote is None or 0 < i < last
                if (
                    allow_breaks
                    and not spaces
                    and self.column > BEST_WIDTH
                    and inner
                    and not next_is_space
                ):
                    self.write_indent()
                else:
                    self.put(char)
                spaces = True
            elif is_break(char):
                if not breaks and char == "\n":
                    self.put_break()
                self.write_break(char)
                self.indention = True
                breaks = True
            else:
                self.put_text(char * 2 if char == quote else char, after_break=breaks)
                spaces = breaks = False

    def put_text(self, text: str, *, after_break: bool) -> None:
        """Scalar text; the first after a line break starts the next, indented line."""
        if after_break:
            self.write_indent()
        self.put(text)
        self.indention = False

    def write_break(self, char: str) -> None:
        if char == "\n":
            self.put_break()
        else:
            self.out.append(char)
            self.column = 0

    def write_double(self, text: str, *, allow_breaks: bool) -> None:
        self.indicator('"', need_whitespace=True)
        spaces = False
        bom = text.startswith("\ufeff")  # libyaml's is_bom looks at the first character only
        last = len(text) - 1
        for i, char in enumerate(text):
            if not is_printable(char) or bom or is_break(char) or char in '"\\':
                self.put("\\" + _escape(char))
                spaces = False
            elif char == " ":
                if allow_breaks and not spaces and self.column > BEST_WIDTH and 0 < i < last:
                    self.write_indent()
                    if text[i + 1] == " ":
                        self.put("\\")
                else:
                    self.put(char)
                spaces = True
            else:
                self.put(char)
                spaces = False
        self.indicator('"', need_whitespace=False)
        self.whitespace = False
        self.indention = False

    def write_literal(self, text: str) -> None:
        self.indicator("|", need_whitespace=True)
        if text[0] == " " or is_break(text[0]):
            self.indicator(str(BEST_INDENT), need_whitespace=False)
        if chomp := _chomping(text):
            self.indicator(chomp, need_whitespace=False)
        self.put_break()
        self.indention = True
        self.whitespace = True
        breaks = True
        for char in text:
            if is_break(char):
                self.write_break(char)
                self.indention = True
                breaks = True
            else:
                self.put_text(char, after_break=breaks)
                breaks = False


def _escape(char: str) -> str:
    if char in _ESCAPES:
        return _ESCAPES[char]
    code = ord(char)
    if code <= 0xFF:
        return f"x{code:02X}"
    if code <= 0xFFFF:
        return f"u{code:04X}"
    return f"U{code:08X}"


def _chomping(text: str) -> str:
    """The block chomping indicator: `-` strip, `+` keep, `` clip (yaml.v2's choice)."""
    if not is_break(text[-1]):
        return "-"
    if len(text) == 1 or is_break(text[-2]):
        return "+"
    return ""


def _is_simple_key(text: str) -> bool:
    """`yaml_emitter_check_simple_key` for a string key: one line and at most 128 bytes."""
    return not analyze(text).multiline and len(text.encode()) <= _SIMPLE_KEY_MAX_BYTES
