"""How `gopkg.in/yaml.v2` reads a plain scalar back, and how it orders mapping keys.

yaml.v2 quotes a string on output exactly when reading it back unquoted would give something
other than the same string (YAML 1.1 rules: `yes`/`no`/`on`/`off` are booleans, `0o17` and
`0x1F` are integers, `2001-12-14` is a timestamp, `1:20` is a base-60 float, ...). This module
ports `resolve()`, `parseTimestamp()`, `isBase60Float()` and the key sorter `keyList.Less`
from yaml.v2 2.4 so that the instance ID (contracts §4.3) hashes the same bytes as the reference.
"""

from __future__ import annotations

import calendar
import re
import unicodedata
from functools import cmp_to_key
from typing import Final

_BOOL_NULL_AND_SPECIAL: Final = frozenset(
    {
        "y",
        "Y",
        "yes",
        "Yes",
        "YES",
        "true",
        "True",
        "TRUE",
        "on",
        "On",
        "ON",
        "n",
        "N",
        "no",
        "No",
        "NO",
        "false",
        "False",
        "FALSE",
        "off",
        "Off",
        "OFF",
        "~",
        "null",
        "Null",
        "NULL",
        ".nan",
        ".NaN",
        ".NAN",
        ".inf",
        ".Inf",
        ".INF",
        "+.inf",
        "+.Inf",
        "+.INF",
        "-.inf",
        "-.Inf",
        "-.INF",
        "<<",
    }
)
_MAP_HINTS: Final = frozenset("yYnNtTfFoO~")
_YAML_STYLE_FLOAT: Final = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")
_BASE60_FLOAT: Final = re.compile(r"[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?")
_GO_INT: Final = re.compile(
    r"[+-]?(0[xX](_?[0-9a-fA-F])+|0[bB](_?[01])+|0[oO](_?[0-7])+|0(_?[0-7])*|[1-9](_?[0-9])*)"
)
_GO_FLOAT: Final = re.compile(
    r"[+-]?((([0-9](_?[0-9])*)?\.?[0-9](_?[0-9])*|[0-9](_?[0-9])*\.)([eE][+-]?[0-9](_?[0-9])*)?"
    r"|0[xX](_?[0-9a-fA-F])*\.?(_?[0-9a-fA-F])*[pP][+-]?[0-9](_?[0-9])*"
    r"|inf|infinity|nan)",
    re.IGNORECASE,
)
_DATE: Final = r"([0-9]{4})-([0-9]{1,2})-([0-9]{1,2})"
_TIME: Final = r"([0-9]{1,2}):([0-9]{1,2}):([0-9]{1,2})(?:[.,][0-9]+)?"
_TIMESTAMPS: Final = (
    re.compile(_DATE + "[Tt]" + _TIME + r"(Z|[+-][0-9]{2}:[0-9]{2})"),
    re.compile(_DATE + " " + _TIME + "()"),
)
_DATE_ONLY: Final = re.compile(_DATE)
_INT64_MIN: Final = -(2**63)
_UINT64_MAX: Final = 2**64 - 1


def resolves_to_string(text: str) -> bool:
    """True iff yaml.v2 reads `text`, written as a plain scalar, back as the same string."""
    if text == "":
        return False  # the empty plain scalar is null
    hint = text[0]
    if not (hint in "+-0123456789." or hint in _MAP_HINTS):
        return True
    if text in _BOOL_NULL_AND_SPECIAL:
        return False
    if hint == ".":
        return not _go_parse_float(text)
    if hint in _MAP_HINTS:
        return True
    return not (_is_timestamp(text) or _is_number(text.replace("_", "")))


def is_base60_float(text: str) -> bool:
    """yaml.v2 quotes `1:20` and the like for YAML 1.1 readers, though it does not parse them."""
    return _BASE60_FLOAT.fullmatch(text) is not None


def _is_number(plain: str) -> bool:
    """The integer and float checks of yaml.v2 `resolve` on the underscore-free text."""
    if _go_parse_int(plain) is not None:
        return True
    if _YAML_STYLE_FLOAT.fullmatch(plain) and _go_parse_float(plain):
        return True
    if plain.startswith("0b"):
        return re.fullmatch(r"[+-]?[01]+", plain[2:]) is not None and _fits(int(plain[2:], 2))
    if plain.startswith("-0b"):
        digits = plain[3:]
        return re.fullmatch(r"[01]+", digits) is not None and -int(digits, 2) >= _INT64_MIN
    return False


def _go_parse_int(text: str) -> int | None:
    """Go `strconv.ParseInt(text, 0, 64)`, falling back to `ParseUint` as yaml.v2 does."""
    if not _GO_INT.fullmatch(text):
        return None
    sign = -1 if text.startswith("-") else 1
    body = text.lstrip("+-").replace("_", "")
    if len(body) > 1 and body[0] == "0" and body[1] in "xXbBoO":
        value = int(body, 0)
    elif len(body) > 1 and body[0] == "0":
        value = int(body, 8)
    else:
        value = int(body)
    value *= sign
    return value if _fits(value) else None


def _fits(value: int) -> bool:
    return _INT64_MIN <= value <= _UINT64_MAX


def _go_parse_float(text: str) -> bool:
    """Whether Go `strconv.ParseFloat(text, 64)` succeeds (syntax only; overflow is an error)."""
    if not _GO_FLOAT.fullmatch(text):
        return False
    body = text.lstrip("+-").lower()
    if body in {"inf", "infinity", "nan"}:
        return True
    plain = text.replace("_", "")
    value = float.fromhex(plain) if "0x" in body else float(plain)
    return abs(value) != float("inf")  # Go reports overflow as an error


def _is_timestamp(text: str) -> bool:
    """yaml.v2 `parseTimestamp`: Go `time.Parse` with the four layouts yaml.v2 allows."""
    if not re.match(r"[0-9]{4}-", text):
        return False
    if match := _DATE_ONLY.fullmatch(text):
        return _valid_date(*match.groups())
    for pattern in _TIMESTAMPS:
        if match := pattern.fullmatch(text):
            year, month, day, hour, minute, second, zone = match.groups()
            clock_ok = int(hour) < 24 and int(minute) < 60 and int(second) < 60
            zone_ok = zone in {"", "Z"} or (int(zone[1:3]) <= 24 and int(zone[4:6]) <= 60)
            return clock_ok and zone_ok and _valid_date(year, month, day)
    return False


def _valid_date(year: str, month: str, day: str) -> bool:
    if not 1 <= int(month) <= 12:
        return False
    return 1 <= int(day) <= calendar.monthrange(int(year), int(month))[1]


def sort_keys(keys: list[str]) -> list[str]:
    """Mapping keys in yaml.v2 order: letters before other runes, digit runs by value.

    yaml.v2's comparison is not a total order (`a10` < `a1b` < `a9` < `a10`): for such key
    sets the reference's own output depends on Go's random map iteration order, so no
    implementation can match it byte for byte. For all other key sets the order is unique.
    """
    return sorted(keys, key=cmp_to_key(_compare))


def _is_letter(char: str) -> bool:
    return unicodedata.category(char).startswith("L")


def _is_digit(char: str) -> bool:
    return unicodedata.category(char) == "Nd"


def _compare(a: str, b: str) -> int:
    """Port of yaml.v2 `keyList.Less` for string keys, as a three-way comparison."""
    if a == b:
        return 0
    return -1 if _less(a, b) else 1


def _less(a: str, b: str) -> bool:
    for i in range(min(len(a), len(b))):
        if a[i] == b[i]:
            continue
        a_letter, b_letter = _is_letter(a[i]), _is_letter(b[i])
        if a_letter and b_letter:
            return a[i] < b[i]
        if a_letter or b_letter:
            return b_letter
        a_num = b_num = 0
        if a[i] == "0" or b[i] == "0":
            j = i - 1
            while j >= 0 and _is_digit(a[j]):
                if a[j] != "0":
                    a_num = b_num = 1
                    break
                j -= 1
        a_end, a_num = _digit_run(a, i, a_num)
        b_end, b_num = _digit_run(b, i, b_num)
        if a_num != b_num:
            return a_num < b_num
        if a_end != b_end:
            return a_end < b_end
        return a[i] < b[i]
    return len(a) < len(b)


def _digit_run(text: str, start: int, number: int) -> tuple[int, int]:
    end = start
    while end < len(text) and _is_digit(text[end]):
        number = number * 10 + ord(text[end]) - ord("0")
        end += 1
    return end, number


def resolve_plain(text: str) -> object:  # noqa: PLR0911 - one return per YAML type
    """The value yaml.v2 decodes from a plain scalar into an untyped target (`interface{}`).

    Timestamps stay strings there (yaml.v2 keeps them as text for untyped targets) and base-60
    floats were never parsed.
    """
    if resolves_to_string(text) or _is_timestamp(text):
        return text
    specials: dict[str, object] = {"~": None, "null": None, "Null": None, "NULL": None, "": None}
    if text in specials:
        return specials[text]
    lowered = text.lower()
    if text in _BOOL_NULL_AND_SPECIAL and lowered in {"y", "yes", "true", "on"}:
        return True
    if text in _BOOL_NULL_AND_SPECIAL and lowered in {"n", "no", "false", "off"}:
        return False
    if lowered.endswith(".inf"):
        return float("-inf") if text.startswith("-") else float("inf")
    if lowered == ".nan":
        return float("nan")
    plain = text.replace("_", "")
    if (number := _go_parse_int(plain)) is not None:
        return number
    if plain.startswith(("0b", "-0b")):
        return int(plain.replace("0b", ""), 2)
    return float(plain)
