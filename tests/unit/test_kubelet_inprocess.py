"""In-process apps: configuration, the instance's streams, signals and exit codes, log routing,
and the two built-in apps (requester stub, vLLM stand-in) served on a Pod IP."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pydantic
import pytest

from localcluster.kubelet.config import ImageConfig
from localcluster.kubelet.inprocess import (
    KILLED_EXIT_CODE,
    AppContext,
    AppInstance,
    AppLoadError,
    AppLogRouter,
    load_app,
    route_app_logs,
)
from localcluster.kubelet.logfiles import LogOptions, LogWriter, iter_log
from localcluster.processes import free_port

pytestmark = pytest.mark.anyio

POD_IP = "127.0.0.3"
GPU = "GPU-aaaaaaaa-0000-0000-0000-000000000001"


def records(path: Path) -> list[tuple[str, str]]:
    """(stream, content) of each CRI record."""
    out = []
    for line in path.read_bytes().decode().splitlines():
        _, stream, _, content = line.split(" ", 3)
        out.append((stream, content))
    return out


# ----- configuration ----------------------------------------------------------------------


def test_in_process_programs_are_configured_per_image() -> None:
    image = ImageConfig.model_validate(
        {"inProcess": {"fma-requester": "requester", "x": "pkg.mod:run"}}
    )
    assert image.in_process == {"fma-requester": "requester", "x": "pkg.mod:run"}
    assert ImageConfig().in_process == {}  # process mode is the default


@pytest.mark.parametrize(
    ("mapping", "fragment"),
    [
        ({"bin/fma-requester": "requester"}, "base name"),
        ({"fma-requester": "no-such-app"}, "neither a built-in app"),
        ({"fma-requester": "mod:"}, "neither a built-in app"),
    ],
)
def test_bad_in_process_entries_are_refused(mapping: dict[str, str], fragment: str) -> None:
    with pytest.raises(pydantic.ValidationError, match=fragment):
        ImageConfig.model_validate({"inProcess": mapping})


def test_load_app_names_what_is_missing() -> None:
    assert callable(load_app("requester"))
    with pytest.raises(AppLoadError, match="cannot import no_such_module"):
        load_app("no_such_module:run")
    with pytest.raises(AppLoadError, match="has no nothing"):
        load_app("localcluster.kubelet.apps:nothing")


# ----- instances ---------------------------------------------------------------------------


async def _echo(ctx: AppContext) -> int:
    ctx.stdout.write(f"argv={list(ctx.argv)} cwd={ctx.cwd}\npartial")
    ctx.stdout.flush()
    ctx.stderr.write(f"X={ctx.env['X']}\n")
    ctx.stderr.flush()
    await ctx.terminated.wait()
    return 3


def _start(app: object, tmp_path: Path) -> tuple[AppInstance, LogWriter]:
    writer = LogWriter(tmp_path / "c" / "0.log")
    instance = AppInstance(
        app,  # type: ignore[arg-type]
        argv=["prog", "--flag"],
        env={"X": "1"},
        cwd=str(tmp_path),
        log=writer,
    )
    return instance, writer


async def test_sigterm_sets_terminated_and_the_return_value_is_the_exit_code(
    tmp_path: Path,
) -> None:
    instance, writer = _start(_echo, tmp_path)
    await asyncio.sleep(0.01)
    before = instance.running
    instance.signal(signal.SIGTERM)
    assert await instance.wait() == 3
    assert (before, instance.running) == (True, False)
    writer.finish(3, "now")
    assert records(writer.path) == [
        ("stdout", f"argv=['prog', '--flag'] cwd={tmp_path}"),
        ("stderr", "X=1"),
        ("stdout", "partial"),  # the unfinished line is written when the app ends
    ]


async def test_sigkill_cancels_the_app(tmp_path: Path) -> None:
    instance, _ = _start(_echo, tmp_path)
    await asyncio.sleep(0.01)
    instance.signal(signal.SIGKILL)
    assert await instance.wait() == KILLED_EXIT_CODE


async def _fails(ctx: AppContext) -> int:
    raise RuntimeError("boom")


async def _exits(ctx: AppContext) -> int:
    raise SystemExit(4)


async def test_an_exception_is_exit_code_1_with_the_traceback_on_stderr(tmp_path: Path) -> None:
    instance, writer = _start(_fails, tmp_path)
    assert await instance.wait() == 1
    lines = records(writer.path)
    assert all(stream == "stderr" for stream, _ in lines)
    assert lines[-1][1] == "RuntimeError: boom"
    other, _ = _start(_exits, tmp_path / "other")
    assert await other.wait() == 4


async def _late_writer(ctx: AppContext) -> int:
    async def later() -> None:
        await asyncio.sleep(0.05)
        ctx.stdout.write("after the end\n")
        ctx.stdout.flush()

    asyncio.get_running_loop().create_task(later())
    return 0


async def test_output_after_the_end_is_dropped(tmp_path: Path) -> None:
    instance, writer = _start(_late_writer, tmp_path)
    assert await instance.wait() == 0
    writer.finish(0, "now")
    await asyncio.sleep(0.1)  # the late write must neither fail nor land in the closed log
    assert records(writer.path) == []


async def _logs(ctx: AppContext) -> int:
    logging.getLogger("fma.test").warning("inside", extra={"fields": {"pod": "p"}})
    return 0


@pytest.fixture
def kubelet_log() -> Iterator[list[str]]:
    """A root handler standing for the kubelet's own log, with app logs routed away from it."""
    seen: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())

    root = logging.getLogger()
    handler = Collect()
    root.addHandler(handler)
    route_app_logs()
    router = next(h for h in root.handlers if isinstance(h, AppLogRouter))
    yield seen
    root.removeHandler(handler)
    root.removeHandler(router)


async def test_logging_inside_an_app_goes_to_its_stderr(
    tmp_path: Path, kubelet_log: list[str]
) -> None:
    instance, writer = _start(_logs, tmp_path)
    assert await instance.wait() == 0
    ((stream, content),) = records(writer.path)
    entry = json.loads(content)
    assert (stream, entry["msg"], entry["pod"], entry["level"]) == (
        "stderr",
        "inside",
        "p",
        "warning",
    )
    logging.getLogger("fma.test").warning("outside")
    assert kubelet_log == ["outside"]


# ----- built-in apps -----------------------------------------------------------------------


async def test_requester_app_serves_on_the_pod_ip_and_stops_on_sigterm(tmp_path: Path) -> None:
    probes, spi = free_port(POD_IP), free_port(POD_IP)
    writer = LogWriter(tmp_path / "c" / "0.log")
    env = {
        "POD_IP": POD_IP,
        "PROBES_PORT": str(probes),
        "SPI_PORT": str(spi),
        "NVIDIA_VISIBLE_DEVICES": GPU,
        "FMA_REQUESTER_GPU_SOURCE": "env",
        "FMA_CONTROL_AUTH": "off",
    }
    instance = AppInstance(
        load_app("requester"), argv=["fma-requester"], env=env, cwd=str(tmp_path), log=writer
    )
    async with httpx.AsyncClient() as client:
        spi_url, probes_url = f"http://{POD_IP}:{spi}", f"http://{POD_IP}:{probes}"
        for _ in range(100):
            try:
                accelerators = await client.get(f"{spi_url}/v1/dual-pods/accelerators")
                break
            except httpx.TransportError:
                await asyncio.sleep(0.01)
        assert accelerators.json() == [GPU]
        assert (await client.get(f"{probes_url}/ready")).status_code == 503
        await client.post(f"{spi_url}/v1/become-ready")
        assert (await client.get(f"{probes_url}/ready")).status_code == 200
        body = b"vLLM says hello\n"
        await client.post(f"{spi_url}/v1/set-log?startPos=0", content=body)
        instance.signal(signal.SIGTERM)
        assert await instance.wait() == 0
        with pytest.raises(httpx.ConnectError):
            await client.get(f"{probes_url}/ready")
    writer.finish(0, "now")
    assert b"".join(c for c in iter_log(writer.path, LogOptions()) if c).startswith(body)


async def test_standin_app_binds_the_pod_ip_and_reports_bad_arguments(tmp_path: Path) -> None:
    port = free_port(POD_IP)
    argv = ["fma-vllm-standin", "--model", "m", "--port", str(port), "--startup-delay", "0"]
    env = {"POD_IP": POD_IP, "VLLM_SERVER_DEV_MODE": "1"}
    writer = LogWriter(tmp_path / "a" / "0.log")
    instance = AppInstance(
        load_app("vllm-standin"), argv=argv, env=env, cwd=str(tmp_path), log=writer
    )
    async with httpx.AsyncClient() as client:
        for _ in range(100):
            try:
                health = await client.get(f"http://{POD_IP}:{port}/health")
                break
            except httpx.TransportError:
                await asyncio.sleep(0.01)
        assert health.status_code == 200
        assert (await client.get(f"http://{POD_IP}:{port}/is_sleeping")).json() == {
            "is_sleeping": False
        }
    instance.signal(signal.SIGTERM)
    assert await instance.wait() == 0
    writer.finish(0, "now")
    assert any("Starting vLLM server" in c for s, c in records(writer.path) if s == "stdout")
    bad = LogWriter(tmp_path / "b" / "0.log")
    broken = AppInstance(
        load_app("vllm-standin"),
        argv=["fma-vllm-standin", "--no-such-flag"],
        env=env,
        cwd=str(tmp_path),
        log=bad,
    )
    assert await broken.wait() == 2
    bad.finish(2, "now")
    assert any("unrecognized arguments" in c for s, c in records(bad.path) if s == "stderr")
