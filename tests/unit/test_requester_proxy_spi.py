"""The proxy as the stub exposes it: `/v1/proxy/config`, the serving and proxy listeners,
readiness, the set-log length header, and the configuration checks on ports."""

from __future__ import annotations

import asyncio
import io
import json
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

import httpx
import pytest

from contract import auth
from contract.requester import LOG_LENGTH_HEADER, PROXY_CONFIG_PATH, SERVING_PORTS_ENV
from controlauth import ControlToken
from launcher.requester import FixedGpus, RequesterConfig, RequesterHandle
from launcher.requester.cli import parse_config
from launcher.requester.server import serve_requester
from localcluster.processes import free_port
from tests.controlkit import control_kit

pytestmark = pytest.mark.anyio

LOCAL = "127.0.0.1"
GPU = "GPU-11111111-2222-3333-4444-555555555555"


def config(**kwargs: Any) -> RequesterConfig:
    values: dict[str, Any] = {
        "host": LOCAL,
        "probes_port": 0,
        "spi_port": 0,
        "proxy_port": 0,
        "gpus": FixedGpus((GPU,)),
        "log_sink": io.BytesIO(),
        "threaded_log_writes": False,
    }
    return RequesterConfig(**{**values, **kwargs})


@asynccontextmanager
async def stub(**kwargs: Any) -> AsyncIterator[tuple[RequesterHandle, httpx.AsyncClient]]:
    handle = await serve_requester(config(**kwargs))
    try:
        async with httpx.AsyncClient(base_url=f"http://{LOCAL}:{handle.spi_port}") as spi:
            yield handle, spi
    finally:
        await handle.close()


@asynccontextmanager
async def vllm_like() -> AsyncIterator[int]:
    """An upstream that answers every request with its port, so a test sees where it landed."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while (await reader.readuntil(b"\r\n\r\n")).startswith(b"GET"):
            body = b"upstream %d" % port
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            await writer.drain()

    async def guarded(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await answer(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(guarded, LOCAL, 0)
    port = int(server.sockets[0].getsockname()[1])
    try:
        yield port
    finally:
        server.close()


# --- PUT/GET /v1/proxy/config -------------------------------------------------------------------


async def test_put_sets_once_repeats_are_fine_and_another_target_is_409() -> None:
    async with stub() as (handle, spi):
        assert (await spi.get(PROXY_CONFIG_PATH)).status_code == 404
        r = await spi.put(PROXY_CONFIG_PATH, json={"address": "10.1.2.3", "port": 8000})
        assert (r.status_code, r.json()) == (200, {"address": "10.1.2.3", "port": 8000})
        r = await spi.get(PROXY_CONFIG_PATH)
        assert (r.status_code, r.json()) == (200, {"address": "10.1.2.3", "port": 8000})
        r = await spi.put(PROXY_CONFIG_PATH, json={"address": "10.1.2.3", "port": 8000})
        assert r.status_code == 200
        r = await spi.put(PROXY_CONFIG_PATH, json={"address": "10.1.2.4", "port": 8000})
        assert r.status_code == 409
        assert "10.1.2.3:8000" in r.text
        assert (await spi.get(PROXY_CONFIG_PATH)).json()["address"] == "10.1.2.3"
        assert str(handle.proxy.target) == "10.1.2.3:8000"
        assert (await spi.post(PROXY_CONFIG_PATH)).status_code == 405


async def test_addresses_are_normalised_so_a_repeat_matches() -> None:
    async with stub() as (_, spi):
        r = await spi.put(PROXY_CONFIG_PATH, json={"address": "::0:1", "port": 1})
        assert r.json() == {"address": "::1", "port": 1}
        assert (await spi.put(PROXY_CONFIG_PATH, json={"address": "::1", "port": 1})).is_success


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (b"not json", "not JSON"),
        (b"[1, 2]", "JSON object"),
        (b'{"port": 8000}', "address"),
        (b'{"address": "", "port": 8000}', "address"),
        (b'{"address": 10, "port": 8000}', "address"),
        (b'{"address": "bad host!", "port": 8000}', "address"),
        (b'{"address": "10.0.0.300", "port": 8000}', "address"),
        (b'{"address": "-a.example", "port": 8000}', "address"),
        (b'{"address": "10.0.0.1"}', "port"),
        (b'{"address": "10.0.0.1", "port": "8000"}', "port"),
        (b'{"address": "10.0.0.1", "port": 0}', "port"),
        (b'{"address": "10.0.0.1", "port": 65536}', "port"),
        (b'{"address": "10.0.0.1", "port": 80.5}', "port"),
        (b'{"address": "10.0.0.1", "port": true}', "port"),
    ],
)
async def test_bad_bodies_are_400_naming_the_field(body: bytes, needle: str) -> None:
    async with stub() as (handle, spi):
        r = await spi.put(PROXY_CONFIG_PATH, content=body)
        assert r.status_code == 400
        assert needle in r.text
        assert handle.proxy.target is None


@pytest.mark.parametrize("address", ["vllm-0.llm.svc.cluster.local", "localhost", "fd00::5"])
async def test_host_names_and_ipv6_are_targets(address: str) -> None:
    async with stub() as (_, spi):
        r = await spi.put(PROXY_CONFIG_PATH, json={"address": address, "port": 8000})
        assert (r.status_code, r.json()["address"]) == (200, address)


async def test_only_the_controller_can_point_the_proxy(tmp_path: Path) -> None:
    """A tenant's PUT (no token, or the controller's token for another requester) changes
    nothing; the controller's own call, signed by `ControlToken`, sets the target."""
    kit = control_kit(tmp_path / "control")
    async with stub(control_auth=kit.verifier("req-a")) as (handle, spi):
        body = {"address": LOCAL, "port": 9}
        r = await spi.put(PROXY_CONFIG_PATH, json=body)
        assert (r.status_code, r.headers["www-authenticate"]) == (401, "Bearer")
        foreign = ControlToken(kit.auth.signer, "req-b")
        assert (await spi.put(PROXY_CONFIG_PATH, json=body, auth=foreign)).status_code == 401
        assert handle.proxy.target is None
        assert (await spi.get(PROXY_CONFIG_PATH)).status_code == 404  # reads stay open
        own = ControlToken(kit.auth.signer, "req-a")
        assert (await spi.put(PROXY_CONFIG_PATH, json=body, auth=own)).status_code == 200
        assert handle.proxy.target is not None


# --- The listeners ------------------------------------------------------------------------------


async def test_serving_and_proxy_ports_relay_to_the_configured_server() -> None:
    async with vllm_like() as port, stub(serving_ports=(0, 0)) as (handle, spi):
        listeners = [handle.proxy_port, *handle.serving_ports]
        assert len(set(listeners)) == 3
        async with httpx.AsyncClient() as client:
            for listen in listeners:  # closed at once before the target is set
                with pytest.raises(httpx.TransportError):
                    await client.get(f"http://{LOCAL}:{listen}/v1/models")
            await spi.put(PROXY_CONFIG_PATH, json={"address": LOCAL, "port": port})
            for listen in listeners:
                r = await client.get(f"http://{LOCAL}:{listen}/v1/models")
                assert r.text == f"upstream {port}"


async def test_readiness_is_the_flag_alone() -> None:
    """A reference controller never configures the proxy and must still see Ready."""
    async with stub() as (handle, spi), httpx.AsyncClient() as client:
        ready = f"http://{LOCAL}:{handle.probes_port}/ready"
        await spi.put(PROXY_CONFIG_PATH, json={"address": LOCAL, "port": 9})
        assert (await client.get(ready)).status_code == 503
        await spi.post("/v1/become-ready")
        assert (await client.get(ready)).status_code == 200
    async with stub() as (handle, spi), httpx.AsyncClient() as client:
        await spi.post("/v1/become-ready")
        assert (await client.get(f"http://{LOCAL}:{handle.probes_port}/ready")).status_code == 200


async def test_a_taken_serving_port_fails_the_start_and_closes_the_rest() -> None:
    async with vllm_like() as taken:
        with pytest.raises(OSError):
            await serve_requester(config(serving_ports=(taken,)))


# --- set-log's length header --------------------------------------------------------------------


async def test_every_set_log_answer_carries_the_accepted_length() -> None:
    async with stub() as (_, spi):
        r = await spi.post("/v1/set-log?startPos=0", content=b"")
        assert (r.status_code, r.headers[LOG_LENGTH_HEADER]) == (200, "0")
        r = await spi.post("/v1/set-log?startPos=0", content=b"hello\n")
        assert r.headers[LOG_LENGTH_HEADER] == "6"
        r = await spi.post("/v1/set-log?startPos=0", content=b"")  # a restarted controller
        assert (r.status_code, r.headers[LOG_LENGTH_HEADER]) == (200, "6")
        r = await spi.post("/v1/set-log?startPos=9", content=b"gap")
        assert (r.status_code, r.headers[LOG_LENGTH_HEADER]) == (400, "6")
        r = await spi.post("/v1/set-log", content=b"x")
        assert (r.status_code, r.headers[LOG_LENGTH_HEADER]) == (400, "6")


# --- Port configuration -------------------------------------------------------------------------


def _env(**extra: str) -> dict[str, str]:
    """A stub's environment; authentication off unless `extra` gives the control bundle."""
    base = {"FMA_REQUESTER_GPU_SOURCE": "env", "NVIDIA_VISIBLE_DEVICES": GPU}
    if auth.TRUST_ENV not in extra:
        base[auth.MODE_ENV] = auth.MODE_OFF
    return {**base, **extra}


def test_the_stub_will_not_serve_an_open_spi_unless_told(tmp_path: Path) -> None:
    """Secure by default: no bundle, no start; the error names both ways out."""
    bare = {"FMA_REQUESTER_GPU_SOURCE": "env", "NVIDIA_VISIBLE_DEVICES": GPU}
    with pytest.raises(ValueError) as caught:
        parse_config([], bare)
    assert auth.TRUST_ENV in str(caught.value) and f"{auth.MODE_ENV}=off" in str(caught.value)
    kit = control_kit(tmp_path / "control")
    with pytest.raises(ValueError, match=auth.POD_UID_ENV):
        parse_config([], {**bare, auth.TRUST_ENV: kit.auth.trust_pem()})
    with pytest.raises(ValueError, match=auth.TRUST_ENV):
        parse_config([], {**bare, auth.TRUST_ENV: "not a bundle", auth.POD_UID_ENV: "u"})
    verifier = parse_config([], _env(**kit.env("u"))).requester.control_auth
    assert verifier is not None and verifier.audience == "u"
    assert parse_config([], _env()).requester.control_auth is None


def test_serving_ports_come_from_the_environment() -> None:
    parsed = parse_config([], _env(FMA_SERVING_PORTS=" 8000, 9000,8000,"))
    assert parsed.requester.serving_ports == (8000, 9000)
    assert parsed.requester.proxy_port == 8082
    assert parse_config([], _env(FMA_SERVING_PORTS="")).requester.serving_ports == ()
    assert parse_config([], _env()).requester.serving_ports == ()
    assert parse_config(["--proxy-port", "9"], _env()).requester.proxy_port == 9
    timeout = parse_config(["--proxy-dial-timeout", "500ms"], _env()).requester
    assert timeout.proxy_dial_timeout == 0.5


@pytest.mark.parametrize(
    ("env", "argv", "needles"),
    [
        ({SERVING_PORTS_ENV: "8000,8081"}, [], ["FMA_SERVING_PORTS", "SPI_PORT", "8081"]),
        ({SERVING_PORTS_ENV: "8080"}, [], ["FMA_SERVING_PORTS", "PROBES_PORT"]),
        ({SERVING_PORTS_ENV: "8082"}, [], ["FMA_SERVING_PORTS", "PROXY_PORT"]),
        ({SERVING_PORTS_ENV: "9000", "SPI_PORT": "9000"}, [], ["FMA_SERVING_PORTS", "SPI_PORT"]),
        ({SERVING_PORTS_ENV: "7000"}, ["--proxy-port", "7000"], ["--proxy-port"]),
        ({"PROXY_PORT": "8081"}, [], ["SPI_PORT", "PROXY_PORT"]),
        ({SERVING_PORTS_ENV: "80a"}, [], ["FMA_SERVING_PORTS", "'80a'"]),
        ({SERVING_PORTS_ENV: "0"}, [], ["FMA_SERVING_PORTS"]),
        ({SERVING_PORTS_ENV: "65536"}, [], ["FMA_SERVING_PORTS"]),
    ],
)
def test_port_collisions_and_bad_ports_are_refused(
    env: dict[str, str], argv: list[str], needles: list[str]
) -> None:
    with pytest.raises(ValueError) as caught:
        parse_config(argv, _env(**env))
    for needle in needles:
        assert needle in str(caught.value)


def test_a_flag_can_resolve_a_collision_in_the_environment() -> None:
    parsed = parse_config(["--proxy-port", "9082"], _env(FMA_SERVING_PORTS="8082"))
    assert (parsed.requester.proxy_port, parsed.requester.serving_ports) == (9082, (8082,))


def test_the_process_exits_2_on_a_serving_port_collision() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "launcher.requester.cli"],
        env={"PATH": "/usr/bin:/bin", **_env(FMA_SERVING_PORTS="8081")},
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2
    error = json.loads(done.stderr.decode().splitlines()[-1])["error"]
    assert "FMA_SERVING_PORTS" in error
    assert "SPI_PORT" in error


def test_the_process_proxies_its_serving_ports(tmp_path: Path) -> None:
    """The CLI end to end, authentication on; the target is the stub's own SPI, so no other
    server is needed."""
    kit = control_kit(tmp_path / "control")
    probes, spi, proxy, serving = (free_port(LOCAL) for _ in range(4))
    env = _env(
        **kit.env("stub-uid"),
        PATH="/usr/bin:/bin",
        POD_IP=LOCAL,
        PROBES_PORT=str(probes),
        SPI_PORT=str(spi),
        PROXY_PORT=str(proxy),
        FMA_SERVING_PORTS=str(serving),
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "launcher.requester.cli"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        with httpx.Client(base_url=f"http://{LOCAL}:{spi}") as http:
            deadline = time.monotonic() + 20
            while True:
                with suppress(httpx.TransportError):
                    if http.get("/healthz").status_code == 200:
                        break
                assert process.poll() is None, process.communicate()
                assert time.monotonic() < deadline, "the stub never served"
                time.sleep(0.05)
            target = {"address": LOCAL, "port": spi}
            assert http.put(PROXY_CONFIG_PATH, json=target).status_code == 401
            own = ControlToken(kit.auth.signer, "stub-uid")
            http.put(PROXY_CONFIG_PATH, json=target, auth=own).raise_for_status()
            for port in (serving, proxy):
                assert http.get(f"http://{LOCAL}:{port}/healthz").text == "ok\n"
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0
    records = [json.loads(line) for line in err.decode().splitlines()]
    assert (records[0]["proxy_port"], records[0]["serving_ports"]) == (proxy, [serving])
    assert records[1]["msg"] == "refused an unauthenticated call"  # the tenant's try, logged
    assert {"msg": "proxy target set", "port": spi}.items() <= records[2].items()
