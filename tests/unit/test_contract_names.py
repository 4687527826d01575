"""Every wire name is declared once, in `contract/`: no product package spells one itself.

A string literal in code that holds a `dual-pods.llm-d.ai/` or `fma.llm-d.ai/` key (or the bare
group), or one of the fixed ports (launcher 8001, the stub's 8080/8081/8082) given to a name, a
default or a `port` field, is a second declaration: the next change of that name would miss it.
Docstrings and comments may mention names; code imports them from `contract`.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ("jsonlog", "crds", "certs", "kube", "launcher", "webhook", "controller")
"""The packages shipped in the image, besides `contract` itself."""

WIRE_NAME = re.compile(r"(?<![A-Za-z0-9.-])(dual-pods|fma)\.llm-d\.ai(/|$)")
FIXED_PORTS = frozenset({8001, 8080, 8081, 8082})


def _docstrings(tree: ast.AST) -> set[int]:
    """ids of string constants that are docstrings (a bare string statement, anywhere)."""
    return {
        id(node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
    }


def _port(node: ast.AST | None) -> int | None:
    if isinstance(node, ast.Constant) and type(node.value) is int and node.value in FIXED_PORTS:
        return node.value
    return None


def _port_declarations(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """Fixed ports given to a name, an argument default, a `default=` keyword or a `port` key."""
    for node in ast.walk(tree):
        values: list[ast.AST | None] = []
        if isinstance(node, ast.Assign | ast.AnnAssign):
            values = [node.value]
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            values = [*node.args.defaults, *node.args.kw_defaults]
        elif isinstance(node, ast.keyword) and node.arg in ("default", "port"):
            values = [node.value]
        elif isinstance(node, ast.Dict):
            values = [
                value
                for key, value in zip(node.keys, node.values, strict=True)
                if isinstance(key, ast.Constant) and "port" in str(key.value).lower()
            ]
        for value in values:
            if (port := _port(value)) is not None:
                yield getattr(value, "lineno", 0), f"port {port}"


def wire_literals(source: str) -> list[tuple[int, str]]:
    """(line, what) of every wire name declared in `source` outside docstrings."""
    tree = ast.parse(source)
    docstrings = _docstrings(tree)
    found = [
        (node.lineno, repr(node.value))
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in docstrings
        and WIRE_NAME.search(node.value)
    ]
    return sorted(found + list(_port_declarations(tree)))


def test_the_scanner_finds_each_kind_of_declaration() -> None:
    source = '''
"""Docstrings may say dual-pods.llm-d.ai/requester and port 8001."""
KEY = "dual-pods.llm-d.ai/requester"  # a comment may say "fma.llm-d.ai/inject"
LABEL = f"fma.llm-d.ai/{name}"
GROUP = "fma.llm-d.ai"
PORT: Final = 8081
def serve(port: int = 8080) -> None:
    """dual-pods.llm-d.ai/x"""
add("--port", type=int, default=8001)
probe = {"httpGet": {"port": 8082}}
fine = ("hollow-kubelet.fma.llm-d.ai/x", "inject.fma.llm-d.ai", "x-dual-pods.llm-d.ai/y", 8000)
count = 8001 + 1
'''
    assert [line for line, _ in wire_literals(source)] == [3, 4, 5, 6, 7, 9, 10]


@pytest.mark.parametrize("package", PRODUCT)
def test_wire_names_are_declared_only_in_contract(package: str) -> None:
    offenders = [
        f"{path.relative_to(ROOT)}:{line}: {what}"
        for path in sorted((ROOT / package).rglob("*.py"))
        for line, what in wire_literals(path.read_text())
    ]
    assert not offenders, (
        "wire names belong in contract/ (keys, objects, launcher, requester); import them:\n"
        + "\n".join(offenders)
    )


def test_contract_declares_them() -> None:
    """The other side: the names the scan forbids elsewhere are there."""
    found = [
        what
        for path in (ROOT / "contract").rglob("*.py")
        for _, what in wire_literals(path.read_text())
    ]
    assert any("dual-pods.llm-d.ai/" in what for what in found)
    assert {f"port {port}" for port in FIXED_PORTS} <= set(found)
