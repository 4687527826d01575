"""One name and one default per setting, across the code, the command lines, the chart and the docs.

- The chart's default command lines mean what the bare binaries do: `fma-controller` and
  `fma-webhook serve` parse the rendered args into the settings they would build without them
  (only the deliberately deployment-specific flags differ: namespace, TLS files, images, names).
- `charts/fma/values.yaml` holds the flags' defaults, key by key.
- The settings table of docs/operations.md names each flag with its chart value and its default.

The launcher is not charted (LauncherConfigs hold its command line).
"""

from __future__ import annotations

import argparse
import dataclasses
import re
from pathlib import Path
from typing import Any, Final

import pytest
import yaml

import controller.cli
import jsonlog
import webhook.cli
from tests.chart import support
from tests.chart.support import CHART_DIR, render
from webhook.settings import WebhookSettings

VALUES: Final = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
OPERATIONS: Final = support.REPO / "docs" / "operations.md"
WEBHOOK_PER_DEPLOYMENT: Final = ("tls_cert", "tls_key", "namespace", "requester_image",
                                 "controller_usernames")  # fmt: skip
"""`fma-webhook serve` flags the chart sets from the release, not to a tunable's value."""


def _controller_parser() -> argparse.ArgumentParser:
    return controller.cli._parser()


def _webhook_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fma-webhook")
    sub = parser.add_subparsers(dest="command", required=True)
    webhook.cli._serve_parser(sub)
    webhook.cli._register_parser(sub)
    return parser


def _subparser(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    [choices] = [a.choices for a in parser._actions if isinstance(a.choices, dict)]
    found: argparse.ArgumentParser = choices[name]
    return found


def _default(parser: argparse.ArgumentParser, flag: str) -> Any:
    return parser._option_string_actions[flag].default


def _value(path: str) -> Any:
    node: Any = VALUES
    for part in path.split("."):
        node = node[part]
    return node


def _same_lease_identity(config: controller.cli.CliConfig) -> controller.cli.CliConfig:
    """The Lease identity defaults to `<hostname>_<random>`, new at every parse."""
    if config.leader is None:
        return config
    return dataclasses.replace(config, leader=dataclasses.replace(config.leader, identity="-"))


def test_the_controller_command_line_of_the_chart_is_the_binarys_defaults() -> None:
    container = support.container(render().get("Deployment", "fma-controller"), "controller")
    argv = support.argv(container)
    assert argv[0] == "fma-controller"
    charted = controller.cli.parse_args(argv[1:])
    bare = controller.cli.parse_args(["--namespace", VALUES["servedNamespace"]])
    assert _same_lease_identity(charted) == _same_lease_identity(bare)


def _webhook_settings(argv: list[str]) -> WebhookSettings:
    captured: list[WebhookSettings] = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(webhook.cli, "serve", captured.append)
        patch.setattr(jsonlog, "configure", lambda *args, **kwargs: None)
        assert webhook.cli.main(argv) == 0
    return captured[0]


def test_the_webhook_command_line_of_the_chart_is_the_binarys_defaults() -> None:
    container = support.container(render().get("Deployment", "fma-webhook"), "webhook")
    argv = support.argv(container)
    assert argv[:2] == ["fma-webhook", "serve"]
    charted = _webhook_settings(argv[1:])
    bare = _webhook_settings(["serve", "--tls-cert", "c", "--tls-key", "k"])
    keep = {name: getattr(charted, name) for name in WEBHOOK_PER_DEPLOYMENT}
    assert dataclasses.replace(bare, **keep) == charted


def _table(heading: str) -> list[list[str]]:
    """The rows of the docs/operations.md table whose first header cell is `heading`."""
    lines = OPERATIONS.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {heading} |"))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip().strip("`") for cell in line.strip().strip("|").split("|")])
    return rows


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


@pytest.mark.parametrize("command", ["fma-controller", "fma-webhook"])
def test_the_settings_table_names_each_flag_its_chart_value_and_default(command: str) -> None:
    rows = _table(f"`{command}` flag")
    assert len(rows) >= 4
    for flag_cell, chart_value, default, _meaning in rows:
        if command == "fma-controller":
            parser, flag = _controller_parser(), flag_cell
        else:
            subcommand, flag = flag_cell.split()
            parser = _subparser(_webhook_parser(), subcommand)
        assert flag in parser._option_string_actions, f"{command}: no {flag_cell}"
        assert _shown(_default(parser, flag)) == default, f"{command} {flag_cell}"
        if chart_value:
            assert _shown(_value(chart_value)) == default, f"values.yaml {chart_value}"


def test_every_tunable_the_chart_passes_is_in_the_table() -> None:
    rendered = render()
    documented = {row[0] for row in _table("`fma-controller` flag")}
    documented |= {row[0].split()[1] for row in _table("`fma-webhook` flag")}
    # Set by the Deployment itself (names, mount paths), not tunables.
    per_deployment = {"--namespace", "--tls-cert", "--tls-key", "--requester-image",
                      "--controller-username", "--control-credentials-dir",
                      "--control-trust-file"}  # fmt: skip
    for name, container_name in (("fma-controller", "controller"), ("fma-webhook", "webhook")):
        container = support.container(rendered.get("Deployment", name), container_name)
        passed = {re.sub(r"^--no-", "--", a.split("=")[0]) for a in support.argv(container)}
        flags = {a for a in passed if a.startswith("--")} - per_deployment
        assert flags <= documented, f"{name}: {sorted(flags - documented)} not in the table"


def test_values_hold_the_defaults_of_the_settings_objects() -> None:
    """The chart's values against the code's defaults directly (for a reader of values.yaml)."""
    from controller.core import Settings
    from controller.observability import ServerSettings
    from controller.reconciler import ReconcilerSettings
    from webhook.registration import DEFAULT_TIMEOUT_SECONDS

    chart = VALUES["controller"]
    assert chart["sleeperLimit"] == Settings().sleeper_limit
    assert chart["memoryCheck"] is Settings().memory_check
    assert chart["numWorkers"] == ReconcilerSettings(namespace="-").workers
    assert chart["metricsPort"] == ServerSettings().port
    assert chart["logLevel"] == controller.cli.LOG_LEVEL
    settings = WebhookSettings(tls_cert=Path(), tls_key=Path())
    hook = VALUES["webhook"]
    assert (hook["port"], hook["logLevel"]) == (settings.port, settings.log_level)
    assert hook["certReloadInterval"] == settings.cert_reload_interval_s
    assert hook["timeoutSeconds"] == DEFAULT_TIMEOUT_SECONDS
