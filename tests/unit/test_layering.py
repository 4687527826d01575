"""The import direction between fma's top-level packages, checked on the source.

Lower layers never import upper ones (see docs/architecture.md, "Code layout"): `contract`,
`jsonlog`, `crds` and `certs` are the bottom; `kube` (the one apiserver client) builds on them;
`launcher`, `webhook` and `controller` build on those; `controller` may use the launcher's wire
models; nothing shipped in the image imports `localcluster`, which exists only for tests,
benchmarks and the demo.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = (
    "contract",
    "controlauth",
    "jsonlog",
    "crds",
    "certs",
    "kube",
    "launcher",
    "webhook",
    "controller",
    "localcluster",
)
_BOTTOM = {"contract", "controlauth", "jsonlog", "crds", "certs"}
ALLOWED: dict[str, set[str]] = {
    "contract": set(),
    "controlauth": {"contract"},  # the token format is wire (contract.auth)
    "jsonlog": set(),
    "crds": {"contract"},  # the CRDs' group and version are wire names (contract.objects)
    "certs": {"contract"},  # the control credential's file names and identity
    "kube": _BOTTOM,
    "launcher": _BOTTOM,
    "webhook": _BOTTOM | {"kube"},
    "controller": _BOTTOM | {"kube", "launcher"},
    "localcluster": _BOTTOM | {"kube", "launcher"},
}


def _imported_packages(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found & set(PACKAGES)


@pytest.mark.parametrize("package", PACKAGES)
def test_package_imports_only_lower_layers(package: str) -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(_imported_packages(path) - ALLOWED[package] - {package})
        for path in sorted((ROOT / package).rglob("*.py"))
    }
    offenders = {file: names for file, names in offenders.items() if names}
    assert not offenders, f"{package} must import only {sorted(ALLOWED[package])}: {offenders}"
