"""`fma-controller`'s flags (contracts §13) and what they configure."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.cli import parse_args
from controller.populator import Settings as PopulatorSettings
from controller.reconciler import ReconcilerSettings


def test_defaults_follow_the_contract() -> None:
    config = parse_args(["-n", "team"])
    assert config.reconciler.namespace == "team"
    assert config.reconciler.workers == 2
    assert config.reconciler.core.sleeper_limit == 2  # the chart's too (the reference binary: 1)
    assert config.reconciler.core.memory_check
    assert config.server.port == 8002
    assert config.leader is not None and config.leader.namespace == "team"
    assert config.leader.lease_name == "fma-dual-pods-controller"
    assert config.connection.kubeconfig is None
    assert config.log_level == "info"
    # One default per setting: the flags' are the settings objects'.
    assert config.reconciler == ReconcilerSettings(namespace="team")
    assert config.populator == PopulatorSettings(namespace="team")


def test_flags_reach_the_settings() -> None:
    config = parse_args(
        [
            "--namespace", "ns", "--kubeconfig", "/k", "--num-workers", "8",
            "--sleeper-limit", "2", "--no-debug-accelerator-memory", "--metrics-port", "9000",
            "--instance-start-timeout", "30", "--failed-requester-delete-after", "4",
            "--sleep-deadline", "9", "--leader-elect-identity", "me",
            "--leader-elect-namespace", "kube-system", "-v", "4",
        ]
    )  # fmt: skip
    core = config.reconciler.core
    assert (core.sleeper_limit, core.memory_check, core.instance_start_timeout) == (2, False, 30.0)
    assert (core.failed_requester_delete_after, core.sleep_deadline) == (4.0, 9.0)
    assert config.reconciler.workers == 8 and config.server.port == 9000
    assert config.connection.kubeconfig == Path("/k")
    assert config.leader is not None
    assert (config.leader.identity, config.leader.namespace) == ("me", "kube-system")
    assert config.log_level == "debug"


def test_leader_election_can_be_turned_off() -> None:
    assert parse_args(["-n", "ns", "--no-leader-elect"]).leader is None


def test_the_namespace_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse_args([])
    assert "--namespace" in capsys.readouterr().err
