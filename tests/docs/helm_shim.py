"""`helm` for the docs tests: the chart through helm-python-sdk, against the local cluster.

There is no helm binary here, and the local cluster has neither cert-manager nor a registry to
pull fma's image from, so the docs' helm commands cannot install a working release. This shim
runs them as far as they can run, and fails where helm would fail:

- `helm install` / `helm upgrade [--install]`: renders charts/fma with the command's values (the
  values schema and the templates' own checks apply) as the cluster's Kubernetes version would
  see it, installs the chart's CRDs, creates the namespace with `--create-namespace`, and sends
  every object of the release to the apiserver as a server-side dry run (cert-manager's objects
  are left out: their API does not exist here). It records the release and prints the notes.
- `helm template`: prints the rendered objects, hooks included.
- `helm uninstall`: forgets a recorded release; an unknown one is an error, as with helm.

Any flag it does not know is an error, so a doc cannot use a flag the shim silently ignores.
Run as `python -m tests.docs.helm_shim ARGS`; `FMA_DOCS_HELM_STATE` names the file of recorded
releases, `FMA_DOCS_KUBE_VERSION` the Kubernetes version to render for.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import yaml

from tests.chart import support

CERT_MANAGER_GROUP: Final = "cert-manager.io/"
_BOOL_FLAGS: Final = frozenset({"--create-namespace", "--wait", "--install", "--reuse-values"})
_VALUE_FLAGS: Final = frozenset({"--set", "--set-string", "-f", "--values", "--version"})
_IGNORED_VALUE_FLAGS: Final = frozenset({"--timeout", "--version"})
_INTEGER = re.compile(r"-?[0-9]+")


class ShimError(Exception):
    """What helm would print as `Error: ...`."""


@dataclass
class Command:
    verb: str
    positionals: list[str] = field(default_factory=list)
    namespace: str = "default"
    flags: set[str] = field(default_factory=set)
    values: dict[str, Any] = field(default_factory=dict)


def parse(argv: Sequence[str]) -> Command:
    """`helm VERB [ARGS] [FLAGS]` → Command, with --set/-f merged in order."""
    if not argv:
        raise ShimError("no command")
    command = Command(argv[0])
    rest = list(argv[1:])
    while rest:
        token = rest.pop(0)
        name, eq, inline = token.partition("=")
        if name in ("-n", "--namespace"):
            command.namespace = inline if eq else _next(rest, name)
        elif name in _BOOL_FLAGS:
            command.flags.add(name)
        elif name in _VALUE_FLAGS or name in _IGNORED_VALUE_FLAGS:
            value = inline if eq else _next(rest, name)
            _apply_value_flag(command, name, value)
        elif token.startswith("-"):
            raise ShimError(f"flag {token} is not supported by the docs' helm shim")
        else:
            command.positionals.append(token)
    return command


def _next(rest: list[str], flag: str) -> str:
    if not rest:
        raise ShimError(f"flag needs an argument: {flag}")
    return rest.pop(0)


def _apply_value_flag(command: Command, flag: str, value: str) -> None:
    if flag in ("-f", "--values"):
        loaded = yaml.safe_load(Path(value).read_text()) or {}
        command.values = merge(command.values, loaded)
    elif flag in ("--set", "--set-string"):
        for assignment in _split_unescaped(value, ","):
            key, _, raw = assignment.partition("=")
            typed: Any = raw if flag == "--set-string" else typed_value(raw)
            command.values = merge(command.values, nested(key, typed))


def _split_unescaped(text: str, separator: str) -> list[str]:
    parts, current, escaped, depth = [], "", False, 0
    for char in text:
        if escaped:
            current += char
            escaped = False
        elif char == "\\":
            current += char
            escaped = True
        elif char == "{":
            depth += 1
            current += char
        elif char == "}":
            depth -= 1
            current += char
        elif char == separator and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return parts


def typed_value(raw: str) -> Any:
    """helm's `--set` typing: true/false, null, integers, `{a,b}` lists, else a string."""
    if raw in ("true", "false"):
        return raw == "true"
    if raw == "null":
        return None
    if _INTEGER.fullmatch(raw):
        return int(raw)
    if raw.startswith("{") and raw.endswith("}"):
        return [typed_value(item) for item in raw[1:-1].split(",") if item]
    return raw.replace("\\,", ",")


def nested(key: str, value: Any) -> dict[str, Any]:
    """`a.b\\.c=v` → {"a": {"b.c": v}}."""
    parts = [part.replace("\\.", ".") for part in re.split(r"(?<!\\)\.", key)]
    result: Any = value
    for part in reversed(parts):
        result = {part: result}
    out: dict[str, Any] = result
    return out


def merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


class Releases:
    """The releases the shim 'installed', in a JSON file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> dict[str, dict[str, Any]]:
        if not self.path.exists():
            return {}
        data: dict[str, dict[str, Any]] = json.loads(self.path.read_text())
        return data

    def save(self, releases: dict[str, dict[str, Any]]) -> None:
        self.path.write_text(json.dumps(releases, indent=2))


def _chart(path: str) -> None:
    if Path(path).resolve() != support.CHART_DIR.resolve():
        raise ShimError(f"the docs' helm shim knows only charts/fma, not {path}")


def _kubectl(*args: str, input_text: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["kubectl", *args], input=input_text, capture_output=True, text=True, check=False
    )


def _install(command: Command, releases: Releases, *, upgrade: bool) -> str:
    if len(command.positionals) != 2:
        raise ShimError(f"{command.verb} needs NAME and CHART")
    name, chart = command.positionals
    _chart(chart)
    known = releases.load()
    key = f"{command.namespace}/{name}"
    if upgrade and key not in known and "--install" not in command.flags:
        raise ShimError(f'UPGRADE FAILED: "{name}" has no deployed releases')
    if not upgrade and key in known:
        raise ShimError("INSTALLATION FAILED: cannot re-use a name that is still in use")
    values = command.values
    if "--reuse-values" in command.flags and key in known:
        values = merge(known[key]["values"], values)
    rendered = support.render(
        values,
        kube_version=os.environ.get("FMA_DOCS_KUBE_VERSION", "v1.20.2"),
        namespace=command.namespace,
        release=name,
    )
    for crd in support.chart_crds():
        _check(_kubectl("apply", "-f", "-", input_text=json.dumps(crd)), "CRD")
    if "--create-namespace" in command.flags:
        exists = _kubectl("get", "namespace", command.namespace)
        if exists.returncode != 0:
            _check(_kubectl("create", "namespace", command.namespace), "namespace")
    checked = [o for o in rendered.resources if not o["apiVersion"].startswith(CERT_MANAGER_GROUP)]
    skipped = len(rendered.resources) - len(checked)
    by_namespace: dict[str, list[dict[str, Any]]] = {}
    for obj in checked:  # helm puts objects without a namespace into the release's
        namespace = obj["metadata"].get("namespace") or command.namespace
        by_namespace.setdefault(namespace, []).append(obj)
    for namespace, objects in sorted(by_namespace.items()):
        documents = yaml.safe_dump_all(objects, sort_keys=False)
        dry_run = _kubectl(
            "create", "--dry-run=server", "-n", namespace, "-f", "-", input_text=documents
        )
        _check(dry_run, "server-side dry run")
    known[key] = {"values": values}
    releases.save(known)
    return (
        f"NAME: {name}\nNAMESPACE: {command.namespace}\n"
        f"STATUS: deployed (docs helm shim: {len(checked)} objects accepted by the apiserver "
        f"in a server-side dry run; {skipped} cert-manager objects not sent)\n"
        f"NOTES:\n{rendered.notes}"
    )


def _check(result: subprocess.CompletedProcess[str], what: str) -> None:
    if result.returncode != 0:
        raise ShimError(f"{what} failed: {result.stderr.strip() or result.stdout.strip()}")


def _template(command: Command) -> str:
    if len(command.positionals) != 2:
        raise ShimError("template needs NAME and CHART")
    name, chart = command.positionals
    _chart(chart)
    rendered = support.render(
        command.values,
        kube_version=os.environ.get("FMA_DOCS_KUBE_VERSION", "v1.29.0"),
        namespace=command.namespace,
        release=name,
    )
    return yaml.safe_dump_all(rendered.objects, sort_keys=False)


def _uninstall(command: Command, releases: Releases) -> str:
    if len(command.positionals) != 1:
        raise ShimError("uninstall needs NAME")
    (name,) = command.positionals
    known = releases.load()
    key = f"{command.namespace}/{name}"
    if key not in known:
        raise ShimError(f"uninstall: Release not loaded: {name}: release: not found")
    del known[key]
    releases.save(known)
    return f'release "{name}" uninstalled'


def run(argv: Sequence[str], state: Path) -> str:
    command = parse(argv)
    releases = Releases(state)
    if command.verb == "install":
        return _install(command, releases, upgrade=False)
    if command.verb == "upgrade":
        return _install(command, releases, upgrade=True)
    if command.verb == "template":
        return _template(command)
    if command.verb == "uninstall":
        return _uninstall(command, releases)
    raise ShimError(f"helm {command.verb} is not supported by the docs' helm shim")


def main(argv: Sequence[str] | None = None) -> int:
    state = Path(os.environ.get("FMA_DOCS_HELM_STATE", "helm-releases.json"))
    try:
        print(run(sys.argv[1:] if argv is None else argv, state))
    except ShimError as error:
        print(f"Error: {error}", file=sys.stderr)
        return 1
    except Exception as error:  # render errors of helm-python-sdk, bad values files
        print(f"Error: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
