"""Splitting `options` like a shell and adapting the command to the platform (reference-differences
C4)."""

from __future__ import annotations

import pytest

from launcher.options import (
    OptionsError,
    build_command,
    flag_value,
    instance_port,
    probe_host,
    split_options,
)


def test_unquoted_options_split_exactly_like_str_split() -> None:
    text = "--model /m  --port 8005\t--enable-sleep-mode"
    assert split_options(text) == text.split()


def test_quoted_json_values_stay_whole() -> None:
    argv = split_options('--model m --additional-config \'{"k": 1, "s": "a b"}\' --port 1')
    assert argv == ["--model", "m", "--additional-config", '{"k": 1, "s": "a b"}', "--port", "1"]


def test_unbalanced_quotes_name_the_option_and_the_position() -> None:
    with pytest.raises(OptionsError) as raised:
        split_options('--model m --additional-config \'{"k": 1}')
    message = str(raised.value)
    assert "--additional-config" in message
    assert "character 30" in message
    assert "unbalanced quote" in message


def test_an_unbalanced_quote_before_any_flag_names_options() -> None:
    with pytest.raises(OptionsError, match=r"options: options has an unbalanced quote"):
        split_options('"abc')


def test_a_trailing_backslash_is_reported_too() -> None:
    with pytest.raises(OptionsError, match="cannot split"):
        split_options("--model m \\")


def test_flag_values_in_both_forms_the_last_one_wins() -> None:
    argv = ["--port", "1", "--port=2", "--host", "h"]
    assert flag_value(argv, "--port") == "2"
    assert flag_value(argv, "--host") == "h"
    assert flag_value(argv, "--missing") is None


@pytest.mark.parametrize(("argv", "port"), [([], 8000), (["--port", "8005"], 8005)])
def test_instance_port_defaults_to_vllms(argv: list[str], port: int) -> None:
    assert instance_port(argv) == port


@pytest.mark.parametrize("value", ["x", "0", "70000"])
def test_a_bad_port_is_an_options_error(value: str) -> None:
    with pytest.raises(OptionsError, match="--port"):
        instance_port(["--port", value])


@pytest.mark.parametrize(
    ("argv", "host"),
    [([], "127.0.0.1"), (["--host", "0.0.0.0"], "127.0.0.1"), (["--host", "10.1.2.3"], "10.1.2.3")],
)
def test_probes_go_to_loopback_unless_a_specific_host_is_bound(argv: list[str], host: str) -> None:
    assert probe_host(argv) == host


@pytest.mark.parametrize(
    ("argv", "host"),
    [([], "127.42.1.5"), (["--host", "::"], "127.42.1.5"), (["--host", "10.1.2.3"], "10.1.2.3")],
)
def test_a_wildcard_instance_is_probed_where_a_specifically_bound_launcher_listens(
    argv: list[str], host: str
) -> None:
    assert probe_host(argv, "127.42.1.5") == host


def test_sleep_mode_flag_is_dropped_with_a_note_where_it_cannot_work() -> None:
    command = build_command(["--model", "m", "--enable-sleep-mode"], {}, sleep_mode_available=False)
    assert "--enable-sleep-mode" not in command.argv
    assert command.notes and "sleep mode needs CUDA" in command.notes[0]
    assert command.env["VLLM_SERVER_DEV_MODE"] == "1"


def test_sleep_mode_flag_is_kept_where_it_works() -> None:
    command = build_command(["--enable-sleep-mode"], {}, sleep_mode_available=True)
    assert command.argv[0] == "--enable-sleep-mode"
    assert command.notes == []


def test_single_process_defaults_are_added_but_never_override_the_caller() -> None:
    command = build_command(["--model", "m"], {}, sleep_mode_available=False)
    assert command.argv[-2:] == ["--distributed-executor-backend", "uni"]
    assert command.env["VLLM_ENABLE_V1_MULTIPROCESSING"] == "0"
    mine = build_command(
        ["--distributed-executor-backend", "mp"],
        {"VLLM_ENABLE_V1_MULTIPROCESSING": "1", "VLLM_SERVER_DEV_MODE": "0"},
        sleep_mode_available=False,
    )
    assert mine.argv == ["--distributed-executor-backend", "mp"]
    assert mine.env["VLLM_ENABLE_V1_MULTIPROCESSING"] == "1"
    assert mine.env["VLLM_SERVER_DEV_MODE"] == "0"


@pytest.mark.parametrize("argv", [["-tp", "2"], ["--tensor-parallel-size=4"], ["-pp", "2"]])
def test_parallel_instances_keep_vllms_multiprocessing(argv: list[str]) -> None:
    command = build_command(argv, {}, sleep_mode_available=True)
    assert "--distributed-executor-backend" not in command.argv
    assert "VLLM_ENABLE_V1_MULTIPROCESSING" not in command.env


def test_instances_listen_where_a_specific_launcher_host_listens() -> None:
    pinned = build_command(
        ["--model", "m"], {}, sleep_mode_available=True, launcher_host="10.1.2.3"
    )
    assert pinned.argv[pinned.argv.index("--host") + 1] == "10.1.2.3"
    own = build_command(
        ["--model", "m", "--host", "0.0.0.0"],
        {},
        sleep_mode_available=True,
        launcher_host="10.1.2.3",
    )
    assert own.argv.count("--host") == 1
    wildcard = build_command(["--model", "m"], {}, sleep_mode_available=True)
    assert "--host" not in wildcard.argv
