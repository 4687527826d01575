"""Inputs for the yaml.v2 golden vectors (tests/unit/golden/core_yaml.json).

Run `python hack/core-goldens/yaml_cases.py | yamlgold` (see README.md) to get the outputs.
"""

from __future__ import annotations

import json
import random

WORDS = [
    "",
    " ",
    "  ",
    "a",
    "1",
    "-1",
    "+1",
    "1.5",
    ".5",
    "1e3",
    "1e400",
    "1_000",
    "0x1F",
    "0o17",
    "017",
    "08",
    "0b101",
    "-0b101",
    "0b2",
    "1:20",
    "-1:20:30.5",
    "12:60",
    "true",
    "True",
    "TRUE",
    "tRue",
    "false",
    "yes",
    "Yes",
    "YES",
    "no",
    "No",
    "on",
    "On",
    "off",
    "OFF",
    "y",
    "Y",
    "n",
    "N",
    "null",
    "Null",
    "NULL",
    "~",
    "nil",
    "<<",
    ".nan",
    ".inf",
    "-.inf",
    "+.inf",
    ".Inf",
    "inf",
    "nan",
    "NaN",
    "Infinity",
    "2001-12-14",
    "2001-12-14t21:59:43.10-05:00",
    "2001-12-14 21:59:43.10",
    "2001-2-30",
    "2001-13-01",
    "2001-12-14T25:00:00Z",
    "2001-12-1",
    "20011-12-14",
    "2001-12-14x",
    "--model",
    "- a",
    "-a",
    "-",
    "--",
    "---",
    "--- a",
    "...",
    "? a",
    "?a",
    ": a",
    ":a",
    "a: b",
    "a:b",
    "a :b",
    "a:",
    "a #b",
    "a#b",
    "#a",
    "a, b",
    "[a]",
    "a[0]",
    "{a}",
    "a}",
    "&a",
    "*a",
    "!a",
    "|a",
    ">a",
    "'a",
    '"a',
    "%a",
    "@a",
    "`a",
    "a'b",
    'a"b',
    "a\\b",
    "a\tb",
    "\ta",
    "a\t",
    " a",
    "a ",
    "a  b",
    "a\nb",
    "a\n",
    "a\n\n",
    "\na",
    "\n",
    "\n\n",
    " a\nb",
    "a \nb",
    "a\n b",
    "a\r\nb",
    "a\rb",
    "\u00e9t\u00e9",
    "\u00a0",
    "\u0085",
    "a\u2028b",
    "\u2029",
    "\ufeffa",
    "\U0001f600",
    "\x7f",
    "\x00",
    "\x1b",
    "\u00ad",
    "\ud7ff",
    "\ue000",
    "\ufffe",
    "a\u0085b",
    "{{ .NodeName }}",
    "--a=b --c='d e'",
    '--additional-config {"k": 1}',
    "/models/tiny",
    "http://x:80/y",
    "a=b,c=d",
]


def long_strings() -> list[str]:
    rng = random.Random(7)
    out = []
    for length in (79, 80, 81, 90, 120, 200, 400):
        for sep in (" ", "  ", " - ", ": ", " #"):
            words: list[str] = []
            while len(sep.join(words)) < length:
                words.append("".join(rng.choice("abcdefgh-_.=") for _ in range(rng.randint(1, 12))))
            out.append(sep.join(words))
    out.append("--model /models/" + "x" * 100 + " --enable-sleep-mode --gpu-memory-utilization 0.8")
    out.append("a" * 150)
    out.append(" ".join(["word"] * 40) + "\n" + " ".join(["line"] * 30))
    out.append("'quoted' " * 15)
    out.append('"dq" \t ' * 15)
    return out


def cases() -> list[object]:
    docs: list[object] = []
    for word in WORDS + long_strings():
        docs.append({"port": 8000, "options": word})
        docs.append({"port": 1, "env_vars": {word or "k": "v", "K": word}})
        docs.append({"labels": {"a": word}, "annotations": {"x/" + word.strip() or "z": "1"}})
    # Key sets such as a10/a1b/a9 are left out: yaml.v2 orders them differently from run
    # to run (its comparison is not transitive and Go map iteration is random).
    consistent = ["a10", "a9", "a09", "A", "b", "_x", "1", "10", "9", "Z", "\u00e9", "a", "a0"]
    docs.append({"env_vars": dict.fromkeys([*consistent, "a00", "a-1", "a_1", "a.1", "x2y"], "1")})
    docs.append({"k": [1, "a", None, True, False, 1.5, 1e30, [], {}, [[1, 2], {"a": [3]}], "x\ny"]})
    docs.append({"nested": {"deeper": {"list": ["a\nb", " c", {"m": "n\n"}]}}, "e": {"f": {}}})
    docs.append({"long": "k" * 130, "k" * 130: "v", "multi\nkey": "v", "": "empty key"})
    docs.append({"x": "keep\n\n"})
    docs.append({"x": "a\n\n", "y": 1})
    docs.append({"port": 8005, "options": "--model m --enable-sleep-mode"})
    return docs


if __name__ == "__main__":
    for doc in cases():
        print(json.dumps(doc, ensure_ascii=False))
