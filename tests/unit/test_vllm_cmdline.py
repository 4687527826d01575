"""The vLLM command-line recogniser: which containers run the server, and what they run."""

from __future__ import annotations

import pytest

from webhook.vllm_cmdline import (
    CommandForm,
    UnparseableCommandError,
    VllmServeCommand,
    canonical_flag,
    option_groups,
    parse_command_line,
    split_equals,
)

IMAGE = "vllm/vllm-openai:v0.10.0"


def parse(command: list[str] | None, args: list[str] | None = None, image: str = "x") -> object:
    return parse_command_line(command, args, image)


@pytest.mark.parametrize(
    ("command", "args", "image", "expected"),
    [
        pytest.param(
            ["vllm", "serve", "m"],
            None,
            "x",
            VllmServeCommand("m", ("m",), 8000, CommandForm.VLLM_SERVE),
            id="positional-default-port",
        ),
        pytest.param(
            ["/usr/local/bin/vllm"],
            ["serve", "--model", "m", "--port", "9000", "--dtype=half"],
            "x",
            VllmServeCommand(
                "m", ("--model", "m", "--dtype", "half"), 9000, CommandForm.VLLM_SERVE
            ),
            id="model-flag-port-removed-equals-split",
        ),
        pytest.param(
            ["python3", "-u", "-m", "vllm.entrypoints.openai.api_server"],
            ["--model=m", "--port=8080", "--max-model-len", "4096"],
            "x",
            VllmServeCommand(
                "m",
                ("--model", "m", "--max-model-len", "4096"),
                8080,
                CommandForm.API_SERVER_MODULE,
            ),
            id="python-module",
        ),
        pytest.param(
            ["python", "-m", "vllm.entrypoints.cli.main", "serve", "m"],
            None,
            "x",
            VllmServeCommand("m", ("m",), 8000, CommandForm.VLLM_SERVE),
            id="python-cli-main",
        ),
        pytest.param(
            None,
            ["m", "--tensor-parallel-size", "2"],
            IMAGE,
            VllmServeCommand(
                "m", ("m", "--tensor-parallel-size", "2"), 8000, CommandForm.IMAGE_ENTRYPOINT
            ),
            id="image-entrypoint",
        ),
        pytest.param(
            ["sh", "-c"],
            ["exec vllm serve 'my model' --port 8001"],
            "x",
            VllmServeCommand(
                "my model", ("my model",), 8001, CommandForm.VLLM_SERVE, in_shell=True
            ),
            id="shell-simple",
        ),
        pytest.param(
            ["vllm", "serve", "m", "--seed", "-1", "--lora-modules", "a=x", "b=y"],
            None,
            "x",
            VllmServeCommand(
                "m",
                ("m", "--seed", "-1", "--lora-modules", "a=x", "b=y"),
                8000,
                CommandForm.VLLM_SERVE,
            ),
            id="negative-number-and-multi-value",
        ),
    ],
)
def test_recognised_forms(
    command: list[str] | None, args: list[str] | None, image: str, expected: VllmServeCommand
) -> None:
    assert parse(command, args, image) == expected


@pytest.mark.parametrize(
    ("command", "args", "image"),
    [
        pytest.param(None, ["vllm", "serve", "m"], "busybox", id="args-only-unknown-image"),
        pytest.param(["vllm", "bench", "serve"], None, "x", id="other-subcommand"),
        pytest.param(["vllm"], None, "x", id="bare-vllm"),
        pytest.param(["python3", "exporter.py", "--vllm-url", "u"], None, "x", id="exporter"),
        pytest.param(["sh", "-c", "python exporter.py --vllm http://x"], None, "x", id="sh"),
        pytest.param(["nginx"], None, IMAGE, id="command-on-vllm-image"),
        pytest.param(None, None, "busybox", id="nothing"),
    ],
)
def test_not_vllm(command: list[str] | None, args: list[str] | None, image: str) -> None:
    assert parse(command, args, image) is None


@pytest.mark.parametrize(
    ("command", "args", "image", "message"),
    [
        pytest.param(["vllm", "serve"], None, "x", "no model", id="no-model"),
        pytest.param(None, [], IMAGE, "no model", id="image-no-args"),
        pytest.param(["vllm", "serve", "a", "--model", "b"], None, "x", "both", id="model-twice"),
        pytest.param(
            ["vllm", "serve", "--model", "a", "--model", "b"],
            None,
            "x",
            "more than once",
            id="model-flag-twice",
        ),
        pytest.param(["vllm", "serve", "a", "b"], None, "x", "positional", id="two-positionals"),
        pytest.param(
            ["python3", "-m", "vllm.entrypoints.openai.api_server", "m"],
            None,
            "x",
            "--model",
            id="module-positional",
        ),
        pytest.param(["vllm", "serve", "m", "--port", "http"], None, "x", "--port", id="port"),
        pytest.param(["vllm", "serve", "m", "--port", "0"], None, "x", "--port", id="port-0"),
        pytest.param(
            ["vllm", "serve", "m", "--port", "$(PORT)"], None, "x", "--port", id="port-var"
        ),
        pytest.param(["vllm", "serve", "m", "--", "x"], None, "x", "`--`", id="end-of-options"),
        pytest.param(["vllm", "serve", "--config", "c.yaml"], None, "x", "--config", id="cfg"),
        pytest.param(
            ["sh", "-c", "pip install x && vllm serve m"], None, "x", "'&'", id="shell-and"
        ),
        pytest.param(["sh", "-c", "vllm serve $MODEL"], None, "x", "'$'", id="shell-variable"),
        pytest.param(["sh", "-c", "vllm serve 'm"], None, "x", "words", id="shell-quote"),
        pytest.param(
            ["sh", "-c", "FOO=1 vllm serve m"], None, "x", "does not start", id="shell-env"
        ),
        pytest.param(
            ["sh", "-c", "vllm serve m", "arg0"], None, "x", "after the script", id="shell-args"
        ),
        pytest.param(
            ["python3", "-m", "vllm.entrypoints.api_server"], None, "x", "module", id="old-api"
        ),
        pytest.param(
            ["python3", "-X", "dev", "-m", "vllm.entrypoints.openai.api_server"],
            None,
            "x",
            "python gets options",
            id="python-unknown-flag",
        ),
    ],
)
def test_unparseable(
    command: list[str] | None, args: list[str] | None, image: str, message: str
) -> None:
    with pytest.raises(UnparseableCommandError, match=None) as caught:
        parse(command, args, image)
    assert message in str(caught.value)


def test_flag_helpers() -> None:
    assert split_equals(["--a=b=c", "x=y", "-tp=2", "-1"]) == [
        "--a",
        "b=c",
        "x=y",
        "-tp",
        "2",
        "-1",
    ]
    assert option_groups(["m", "--a", "1", "2", "--b"]) == (
        ["m"],
        [("--a", ("1", "2")), ("--b", ())],
    )
    assert canonical_flag("--max_model_len") == "--max-model-len"
    assert canonical_flag("-tp") == "--tensor-parallel-size"
    assert canonical_flag("-x") == "-x"
