"""What the docs say must be true of the code: examples, links, names, flags, values.

No cluster needed. `test_doc_commands.py` runs the commands; this module checks the rest:
- every ```bash block is marked (run, fails, or skip with a reason) and every marker parses;
- examples marked `same-as` / `lines-in` equal the files they come from (CRD examples, the
  mutation golden files), and every YAML block parses;
- every relative link resolves, anchors included; every `bench/*.py` named exists, and every
  benchmark is documented;
- every metric, Event reason, status message, chart value and fma command-line flag the docs
  name exists in the code.
"""

from __future__ import annotations

import functools
import json
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import pytest
import yaml

from contract import keys as contract_keys
from contract import objects as contract_objects
from contract import requester as contract_requester
from controller.observability import ControllerMetrics, InformerCollector
from launcher.metrics import LauncherMetrics
from tests.docs.markdown import DOCS, REPO, Block, parse, user_docs
from webhook.metrics import WebhookMetrics

SHELL_LANGUAGES: Final = frozenset({"bash", "sh", "shell", "console", "zsh"})
TOOLS: Final = frozenset(
    {"fma-webhook", "fma-certs", "fma-launcher", "fma-requester", "fma-controller"}
)
TOOLS_WITH_SUBCOMMANDS: Final = frozenset({"fma-webhook", "fma-certs"})
ALL_DOCS: Final = sorted(DOCS.glob("*.md"))
_LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
_INLINE_CODE = re.compile(r"`([^`\n]+)`")


def _ids(paths: list[Path]) -> list[str]:
    return [path.name for path in paths]


def all_blocks() -> Iterator[Block]:
    for path in user_docs():
        yield from parse(path).blocks


def prose(path: Path) -> str:
    """The text of a Markdown file outside fenced blocks."""
    out, fenced = [], False
    for line in path.read_text().splitlines():
        if re.match(r"\s*(```|~~~)", line):
            fenced = not fenced
            continue
        if not fenced:
            out.append(line)
    return "\n".join(out)


# --- markers ---------------------------------------------------------------------------------


@pytest.mark.parametrize("path", user_docs(), ids=_ids(user_docs()))
def test_every_command_is_marked(path: Path) -> None:
    unmarked = [
        block.where
        for block in parse(path).blocks
        if block.language in SHELL_LANGUAGES
        and (block.marker is None or block.marker.kind not in ("run", "fails", "skip"))
    ]
    assert not unmarked, f"shell blocks without a run/fails/skip marker: {unmarked}"
    odd = [b.where for b in parse(path).blocks if b.language in SHELL_LANGUAGES - {"bash"}]
    assert not odd, f"write commands as ```bash blocks: {odd}"


def test_docs_run_commands() -> None:
    """The docs are mostly tested, not mostly skipped."""
    kinds = [b.marker.kind for b in all_blocks() if b.marker and b.language == "bash"]
    assert kinds.count("run") + kinds.count("fails") > kinds.count("skip"), kinds


def _data_at(reference: str) -> Any:
    file, _, pointer = reference.partition("#")
    text = (REPO / file).read_text()
    data: Any = json.loads(text) if file.endswith(".json") else yaml.safe_load(text)
    for token in [t for t in pointer.split("/") if t]:
        key = token.replace("~1", "/").replace("~0", "~")
        data = data[int(key)] if isinstance(data, list) else data[key]
    return data


def test_examples_are_the_files_they_come_from() -> None:
    checked = 0
    for block in all_blocks():
        marker = block.marker
        if marker is None or marker.kind not in ("same-as", "lines-in"):
            continue
        expected = _data_at(marker.argument)
        if marker.kind == "same-as":
            assert yaml.safe_load(block.text) == expected, f"{block.where} differs from {marker}"
        else:
            lines = [line for line in block.text.splitlines() if line.strip()]
            assert lines and all(line in expected for line in lines), (
                f"{block.where}: lines not in {marker.argument}: "
                f"{[line for line in lines if line not in expected]}"
            )
        checked += 1
    assert checked >= 10


def test_yaml_blocks_parse() -> None:
    for block in all_blocks():
        if block.language == "yaml":
            assert list(yaml.safe_load_all(block.text)), block.where


# --- links and files -------------------------------------------------------------------------


def github_anchor(heading: str) -> str:
    """GitHub's heading anchor: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"`", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    return {
        github_anchor(line.lstrip("#"))
        for line in prose(path).splitlines()
        if re.match(r"#{1,6} ", line)
    }


@pytest.mark.parametrize("path", [*ALL_DOCS, REPO / "README.md"], ids=[*_ids(ALL_DOCS), "README"])
def test_relative_links_resolve(path: Path) -> None:
    broken = []
    for target in _LINK.findall(prose(path)):
        if re.match(r"[a-z]+:", target):
            continue
        file, _, anchor = target.partition("#")
        resolved = (path.parent / file).resolve() if file else path
        missing_anchor = resolved.suffix == ".md" and anchor and anchor not in anchors(resolved)
        if not resolved.exists() or missing_anchor:
            broken.append(target)
    assert not broken, f"{path.name}: broken links {broken}"


def test_user_docs_are_linked_from_the_readme() -> None:
    readme = (REPO / "README.md").read_text()
    missing = [p.name for p in user_docs() if f"docs/{p.name}" not in readme]
    assert not missing


def test_named_bench_scripts_exist_and_all_are_documented() -> None:
    named: set[str] = set()
    for path in [*ALL_DOCS, REPO / "README.md"]:
        named |= set(re.findall(r"bench/\w+\.py", path.read_text()))
    missing = [name for name in named if not (REPO / name).exists()]
    assert not missing
    scripts = {
        f"bench/{p.name}" for p in (REPO / "bench").glob("*.py") if not p.name.startswith("_")
    }
    documented = set(re.findall(r"bench/\w+\.py", (DOCS / "benchmarks.md").read_text()))
    undocumented = scripts - documented
    assert not undocumented, f"benchmarks.md does not describe {sorted(undocumented)}"


# --- names the code must have ----------------------------------------------------------------


class _Informer:
    has_synced = True
    lists = 1


def exported_metrics() -> set[str]:
    """Every metric and sample name fma's processes export (metrics are labelled lazily, so
    families without samples count by name)."""
    controller = ControllerMetrics()
    controller.registry.register(InformerCollector(lambda: {"pods": _Informer()}))
    webhook = WebhookMetrics()
    webhook.watch_cache(lambda: True, lambda: {"pods": 1})
    launcher = LauncherMetrics()
    launcher.watch_phases(dict)
    names: set[str] = set()
    for registry in (controller.registry, webhook.registry, launcher.registry):
        for family in registry.collect():
            names.add(family.name)
            names |= {family.name + suffix for suffix in ("_total", "_bucket", "_count", "_sum")}
            names |= {sample.name for sample in family.samples}
    return names


def test_documented_metrics_exist() -> None:
    exported = exported_metrics()
    for path in user_docs():
        named = set(re.findall(r"\b(?:fma|leader_election)_[a-z0-9_]*[a-z0-9]", path.read_text()))
        unknown = sorted(named - exported)
        assert not unknown, f"{path.name} names metrics no fma process exports: {unknown}"


def _source(folder: str) -> str:
    return "\n".join(p.read_text() for p in sorted((REPO / folder).rglob("*.py")))


def _table_rows(path: Path, heading: str) -> list[list[str]]:
    """The cells of the first table after `heading`."""
    lines = prose(path).splitlines()
    start = lines.index(heading)
    rows = []
    for line in lines[start + 1 :]:
        if line.startswith("#"):
            break
        if line.startswith("|") and not re.match(r"\|\s*-", line):
            rows.append([cell.strip() for cell in line.strip("|").split("|")])
        elif rows and not line.startswith("|"):
            break
    return rows[1:]


def test_documented_event_reasons_exist() -> None:
    source = _source("controller")
    reasons = [row[0].strip("`") for row in _table_rows(DOCS / "operations.md", "## Events")]
    assert len(reasons) >= 10
    unknown = [r for r in reasons if f'"{r}"' not in source]
    assert not unknown, f"Event reasons the controller never records: {unknown}"


def _core_source() -> str:
    """The decision core's source, with the contract's names (`{keys.SERVER_PATCH}`, ...)
    written out, as its f-strings put them into the messages."""
    source = _source("controller/core")
    for module, alias in (
        (contract_keys, "keys."),
        (contract_objects, "objects."),
        (contract_requester, ""),
    ):
        for name, value in vars(module).items():
            if name.isupper() and isinstance(value, str):
                source = source.replace(f"{{{alias}{name}}}", value)
    return source


def test_documented_status_messages_exist() -> None:
    source = _core_source()
    rows = _table_rows(DOCS / "troubleshooting.md", "## Status messages")
    assert len(rows) >= 15
    for row in rows:
        for message in re.findall(r"`([^`]+)`", row[0]):
            fixed = message.split("<")[0].split("…")[0].strip()
            assert fixed and fixed in source, f"status message not in the controller: {message!r}"


@functools.cache
def chart_values() -> dict[str, Any]:
    values: dict[str, Any] = yaml.safe_load((REPO / "charts/fma/values.yaml").read_text())
    return values


def _value_exists(path: str) -> bool:
    node: Any = chart_values()
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def test_documented_chart_values_exist() -> None:
    tops = set(chart_values())
    checked = 0
    for path in user_docs():
        text = path.read_text()
        mentioned = set(re.findall(r"--set(?:-string)? ([\w.]+)=", text))
        mentioned |= {
            span.split("=")[0]
            for span in _INLINE_CODE.findall(prose(path))
            if re.fullmatch(r"[a-z][\w.]*(=\S*)?", span) and span.split(".")[0] in tops
        }
        unknown = sorted(key for key in mentioned if not _value_exists(key))
        assert not unknown, f"{path.name} names chart values that do not exist: {unknown}"
        checked += len(mentioned)
    assert checked >= 10


# --- command-line flags ----------------------------------------------------------------------


@functools.cache
def help_text(*command: str) -> str:
    """`--help` of one of fma's commands (or a bench script)."""
    if command[0].startswith("bench/"):
        argv = [sys.executable, str(REPO / command[0]), "--help"]
    else:
        argv = [str(Path(sys.executable).parent / command[0]), *command[1:], "--help"]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout


def _logical_lines(text: str) -> list[str]:
    return text.replace("\\\n", " ").splitlines()


def invocations(text: str) -> Iterator[tuple[tuple[str, ...], list[str]]]:
    """(command, flags) for each fma command or bench script called in shell text."""
    for line in _logical_lines(text):
        try:
            tokens = shlex.split(line, comments=True)
        except ValueError:
            tokens = line.split()
        for index, token in enumerate(tokens):
            name = Path(token).name
            if name in TOOLS and (token == name or token.endswith(f"/bin/{name}")):
                command: tuple[str, ...] = (name,)
                if name in TOOLS_WITH_SUBCOMMANDS and index + 1 < len(tokens):
                    command = (name, tokens[index + 1])
            elif re.fullmatch(r"bench/\w+\.py", token):
                command = (token,)
            else:
                continue
            flags = []
            for arg in tokens[index + 1 :]:
                if arg in ("|", "&&", ";", "||"):
                    break
                if arg.startswith("--"):
                    flags.append(arg.split("=")[0])
            yield command, flags
            break


def _yaml_invocations(text: str) -> Iterator[tuple[tuple[str, ...], list[str]]]:
    """Containers of manifests whose command is one of fma's."""
    for document in yaml.safe_load_all(text):
        for container in _containers(document):
            argv = [*(container.get("command") or []), *(container.get("args") or [])]
            if argv and Path(str(argv[0])).name in TOOLS:
                flags = [str(a).split("=")[0] for a in argv[1:] if str(a).startswith("--")]
                yield (Path(str(argv[0])).name,), flags


def _containers(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("containers", "initContainers") and isinstance(value, list):
                yield from (c for c in value if isinstance(c, dict))
            else:
                yield from _containers(value)
    elif isinstance(node, list):
        for item in node:
            yield from _containers(item)


def documented_invocations() -> Iterator[tuple[str, tuple[str, ...], list[str]]]:
    for path in user_docs():
        for block in parse(path).blocks:
            if block.language in SHELL_LANGUAGES:
                found = invocations(block.text)
            elif block.language == "yaml":
                found = _yaml_invocations(block.text)
            else:
                continue
            for command, flags in found:
                yield block.where, command, flags
        for span in _INLINE_CODE.findall(prose(path)):
            for command, flags in invocations(span):
                yield path.name, command, flags
    for manifest in sorted((DOCS / "e2e-kind").glob("*.yaml")):
        for command, flags in _yaml_invocations(manifest.read_text()):
            yield manifest.name, command, flags


def test_documented_flags_exist() -> None:
    checked = 0
    for where, command, flags in documented_invocations():
        text = help_text(*command)
        unknown = [flag for flag in flags if not re.search(rf"{re.escape(flag)}\b", text)]
        assert not unknown, f"{where}: `{' '.join(command)}` has no {unknown}"
        checked += len(flags)
    assert checked >= 15
