"""The stand-in's own mechanics (its HTTP behaviour is held to vLLM by test_vllm_contract)."""

from __future__ import annotations

import asyncio
import io
import socket

import httpx
import pytest

from localcluster.vllm_standin import StandinConfig, StandinEngine, serve_standin
from localcluster.vllm_standin.engine import generate_text
from localcluster.vllm_standin.options import normalize, parse


def test_normalize_follows_vllms_spelling_rules() -> None:
    assert normalize(["--enable_sleep_mode", "--max_model_len=8", "x_y"]) == [
        "--enable-sleep-mode",
        "--max-model-len=8",
        "x_y",
    ]
    assert normalize(["--compilation_config.level", "3", "--port", "1"]) == [
        "--compilation-config={}",
        "--port",
        "1",
    ]
    assert normalize(["--compilation-config.mode=3"]) == ["--compilation-config={}"]
    assert normalize(["-O3", "-O=2"]) == ["--optimization-level", "3", "--optimization-level", "2"]


def test_parse_models_some_options_and_ignores_the_rest_of_vllms() -> None:
    config = parse(
        [
            "--model",
            "/m",
            "--served-model-name",
            "a",
            "b",
            "--port",
            "9000",
            "--max-model-len",
            "2K",
            "--enable-sleep-mode",
            "--gpu-memory-utilization",
            "0.8",
            "-tp",
            "1",
            "--startup-delay",
            "0",
            "--wake-delay",
            "1.5",
        ],
        env={"POD_IP": "127.0.0.9", "VLLM_SERVER_DEV_MODE": "1"},
    )
    assert config.model_names == ("a", "b")
    assert (config.host, config.port, config.max_model_len) == ("127.0.0.9", 9000, 2048)
    assert (config.startup_delay, config.wake_delay, config.dev_mode) == (0.0, 1.5, True)
    assert config.access_log


def test_defaults_are_vllms() -> None:
    config = parse([], env={})
    assert (config.model, config.port, config.host, config.dev_mode) == (
        "Qwen/Qwen3-0.6B",
        8000,
        "0.0.0.0",
        False,
    )
    assert config.model_names == ("Qwen/Qwen3-0.6B",)
    assert config.model_len() == 2048  # no config.json to read


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        (["--no-such-flag"], {}, "unrecognized arguments: --no-such-flag"),
        (["--port", "http"], {}, "argument --port: invalid int value"),
        (["--gpu-memory-utilization", "most"], {}, "invalid float value"),
        (["--max-model-len", "lots"], {}, "--max-model-len"),
        (["positional"], {}, "unrecognized arguments: positional"),
        ([], {"VLLM_SERVER_DEV_MODE": "true"}, "VLLM_SERVER_DEV_MODE"),
    ],
)
def test_bad_command_lines_exit_2_like_argparse(
    argv: list[str], env: dict[str, str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        parse(argv, env=env)
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


def test_generation_is_deterministic() -> None:
    one = generate_text("m", "hello", 5)
    assert one == generate_text("m", "hello", 5)
    assert one != generate_text("m", "goodbye", 5)
    assert len(one.text.split()) == one.completion_tokens == 5


def test_engine_wakes_fully_only_when_every_tag_is_awake() -> None:
    async def scenario() -> None:
        engine = StandinEngine()
        await engine.sleep(1)
        assert engine.sleeping_tags == {"weights", "kv_cache"}
        assert await engine.wake_up(["no-such-tag"]) is False  # a no-op, as in vLLM
        assert engine.sleeping_tags == {"weights", "kv_cache"}
        assert await engine.wake_up(["weights", "scheduling"]) is False
        assert engine.is_sleeping()
        assert await engine.wake_up(None) is True
        assert not engine.is_sleeping()

    asyncio.run(scenario())


def test_requests_wait_while_asleep_and_delays_are_honoured() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        engine = StandinEngine(sleep_delay=0.05, wake_delay=0.2)
        t0 = loop.time()
        await engine.sleep(1)
        assert loop.time() - t0 >= 0.05
        pending = asyncio.create_task(engine.generate("m", "p", 3))
        await asyncio.sleep(0.05)
        assert not pending.done()
        assert engine.waiting == 1
        t1 = loop.time()
        assert await engine.wake_up(None)
        assert loop.time() - t1 >= 0.2
        assert (await pending).completion_tokens == 3
        assert engine.waiting == 0

    asyncio.run(scenario())


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_in_process_stand_in_binds_at_once_and_listens_after_the_startup_delay() -> None:
    log = io.StringIO()

    async def scenario() -> None:
        config = StandinConfig(model="m", host="127.0.0.1", port=0, startup_delay=0.3, log=log)
        handle = await serve_standin(config)
        try:
            assert not _port_open(handle.port)  # bound, refusing connections
            await asyncio.wait_for(handle.wait_listening(), 5)
            with pytest.raises(OSError):  # a port someone listens on fails at once
                await serve_standin(StandinConfig(model="m", host="127.0.0.1", port=handle.port))
            async with httpx.AsyncClient(base_url=handle.url) as http:
                assert (await http.get("/health")).status_code == 200
                assert (await http.get("/is_sleeping")).status_code == 404  # no dev mode
        finally:
            await handle.close()

    asyncio.run(scenario())
    text = log.getvalue()
    assert "Application startup complete." in text
    assert '"GET /health HTTP/1.1" 200 OK' in text


@pytest.mark.parametrize(
    ("argv", "quiet", "logged"),
    [
        ([], (), {"/health", "/v1/models"}),
        ([], ("/health", "/is_sleeping"), {"/v1/models"}),  # the launcher's instance entry
        (["--disable-access-log-for-endpoints", "/v1/models"], ("/health",), {"/health"}),
        (["--disable_access_log_for_endpoints=/health,/v1/models"], (), set()),
    ],
)
def test_access_log_leaves_out_the_endpoints_named_as_vllm_does(
    argv: list[str], quiet: tuple[str, ...], logged: set[str]
) -> None:
    log = io.StringIO()
    argv = ["--host", "127.0.0.1", "--port", "0", "--startup-delay", "0", *argv]
    config = parse(argv, env={}, log=log, quiet_paths=quiet)

    async def scenario() -> None:
        handle = await serve_standin(config)
        try:
            await asyncio.wait_for(handle.wait_listening(), 5)
            async with httpx.AsyncClient(base_url=handle.url) as http:
                for path in ("/health", "/v1/models?x=1"):
                    assert (await http.get(path)).status_code == 200
        finally:
            await handle.close()

    asyncio.run(scenario())
    text = log.getvalue()
    assert {path for path in ("/health", "/v1/models") if f'"GET {path}' in text} == logged


def test_many_stand_ins_share_one_event_loop() -> None:
    async def scenario() -> None:
        configs = [
            StandinConfig(model=f"m{i}", host="127.0.0.1", port=0, startup_delay=0, dev_mode=True)
            for i in range(30)
        ]
        handles = [await serve_standin(c) for c in configs]
        try:
            await asyncio.gather(*(h.wait_listening() for h in handles))
            async with httpx.AsyncClient() as http:
                await http.post(f"{handles[7].url}/sleep")
                states = await asyncio.gather(*(http.get(f"{h.url}/is_sleeping") for h in handles))
        finally:
            await asyncio.gather(*(h.close() for h in handles))
        assert [s.json()["is_sleeping"] for s in states] == [i == 7 for i in range(30)]

    asyncio.run(scenario())
