"""The requester stub over real HTTP on loopback: every endpoint, auth, set-log, concurrency.

Stubs run in-process (`serve_requester`) on an event loop in a background thread, so the tests
use plain blocking clients, and many callers can hit one stub from threads at once.
"""

from __future__ import annotations

import concurrent.futures
import io
import random
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controlauth import Verifier
from launcher.requester import FixedGpus, RequesterConfig, RequesterHandle
from launcher.requester.server import serve_requester
from tests.controlkit import control_kit
from tests.loopthread import LoopThread

T = TypeVar("T")
A = "GPU-11111111-2222-3333-4444-555555555555"
B = "GPU-66666666-7777-8888-9999-000000000000"


@dataclass
class Stub:
    handle: RequesterHandle
    sink: io.BytesIO
    probes: str
    spi: str


@pytest.fixture
def loop() -> Iterator[LoopThread]:
    running = LoopThread()
    yield running
    running.close()


UID = "requester-uid"


@pytest.fixture
def start(loop: LoopThread) -> Iterator[Callable[..., Stub]]:
    handles: list[RequesterHandle] = []

    def starter(gpus: FixedGpus | None = None, control_auth: Verifier | None = None) -> Stub:
        sink = io.BytesIO()
        config = RequesterConfig(
            host="127.0.0.1",
            probes_port=0,
            spi_port=0,
            proxy_port=0,
            gpus=gpus if gpus is not None else FixedGpus((A, B)),
            control_auth=control_auth,
            log_sink=sink,
        )
        handle = loop.run(serve_requester(config))
        handles.append(handle)
        return Stub(
            handle,
            sink,
            f"http://127.0.0.1:{handle.probes_port}",
            f"http://127.0.0.1:{handle.spi_port}",
        )

    yield starter
    for handle in handles:
        loop.run(handle.close())


@pytest.fixture
def stub(start: Callable[..., Stub]) -> Stub:
    return start()


def test_ready_starts_false_and_follows_become_ready_and_unready(stub: Stub) -> None:
    with httpx.Client() as http:
        ready = http.get(f"{stub.probes}/ready")
        assert (ready.status_code, ready.text) == (503, "Service Unavailable\n")
        r = http.post(f"{stub.spi}/v1/become-ready")
        assert (r.status_code, r.text) == (200, "OK\n")
        ready = http.get(f"{stub.probes}/ready")
        assert (ready.status_code, ready.text) == (200, "OK\n")
        assert http.post(f"{stub.spi}/v1/become-ready").status_code == 200  # idempotent
        r = http.post(f"{stub.spi}/v1/become-unready")
        assert (r.status_code, r.text) == (200, "OK\n")
        assert http.get(f"{stub.probes}/ready").status_code == 503


def test_accelerators_and_memory(stub: Stub) -> None:
    with httpx.Client() as http:
        r = http.get(f"{stub.spi}/v1/dual-pods/accelerators")
        assert r.status_code == 200
        assert r.headers["content-type"] == "application/json"
        assert r.json() == [A, B]
        r = http.get(f"{stub.spi}/v1/dual-pods/accelerator-memory-usage")
        assert (r.status_code, r.json()) == (200, {A: 0, B: 0})


def test_no_gpus_is_500_no_gpus_found(start: Callable[..., Stub]) -> None:
    stub = start(gpus=FixedGpus(()))
    with httpx.Client() as http:
        for path in ("accelerators", "accelerator-memory-usage"):
            r = http.get(f"{stub.spi}/v1/dual-pods/{path}")
            assert (r.status_code, r.text) == (500, "no GPUs found\n")


def test_healthz_on_both_ports_and_404_405(stub: Stub) -> None:
    with httpx.Client() as http:
        assert http.get(f"{stub.probes}/healthz").status_code == 200
        assert http.get(f"{stub.spi}/healthz").status_code == 200
        assert http.get(f"{stub.spi}/ready").status_code == 404
        r = http.get(f"{stub.spi}/v1/become-ready")
        assert (r.status_code, r.headers["allow"]) == (405, "POST")


def test_set_log_relays_new_bytes_to_the_sink(stub: Stub) -> None:
    url = f"{stub.spi}/v1/set-log"
    with httpx.Client() as http:
        assert http.post(url, params={"startPos": "0"}, content=b"hello ").text == "OK\n"
        r = http.post(url, params={"startPos": "3"}, content=b"lo world\n")
        assert (r.status_code, r.text) == (200, "OK\n")
        r = http.post(url, params={"startPos": "0"}, content=b"hello")
        assert (r.status_code, r.text) == (200, "nothing new\n")
    assert stub.sink.getvalue() == b"hello world\n"


@pytest.mark.parametrize(
    "query", [{}, {"startPos": ""}, {"startPos": "x"}, {"startPos": "-1"}, {"startPos": "5"}]
)
def test_set_log_bad_start_positions_are_400(stub: Stub, query: dict[str, str]) -> None:
    with httpx.Client() as http:
        http.post(f"{stub.spi}/v1/set-log", params={"startPos": "0"}, content=b"abc")
        r = http.post(f"{stub.spi}/v1/set-log", params=query, content=b"zzz")
        assert r.status_code == 400, r.text
    assert stub.sink.getvalue() == b"abc"


def test_set_log_takes_chunked_bodies_and_expect_continue(stub: Stub) -> None:
    def chunks() -> Iterator[bytes]:
        yield b"first "
        yield b"second"

    with httpx.Client() as http:
        r = http.post(f"{stub.spi}/v1/set-log", params={"startPos": "0"}, content=chunks())
        assert r.status_code == 200
    with socket.create_connection(("127.0.0.1", stub.handle.spi_port)) as raw:
        raw.sendall(
            b"POST /v1/set-log?startPos=12 HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
            b"Expect: 100-continue\r\nConnection: close\r\n\r\n"
        )
        assert raw.recv(100).startswith(b"HTTP/1.1 100 Continue")
        raw.sendall(b"!!!\n")
        reply = b""
        while chunk := raw.recv(4096):
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 200 OK")
    assert stub.sink.getvalue() == b"first second!!!\n"


def test_malformed_requests_get_400_and_the_server_lives_on(stub: Stub) -> None:
    for garbage in (b"NONSENSE\r\n\r\n", b"GET / HTTP/1.1\r\nbad header\r\n\r\n"):
        with socket.create_connection(("127.0.0.1", stub.handle.spi_port)) as raw:
            raw.sendall(garbage)
            assert raw.recv(100).startswith(b"HTTP/1.1 400")
    with httpx.Client() as http:
        assert http.get(f"{stub.spi}/healthz").status_code == 200


def test_mutating_calls_need_the_controllers_token(
    start: Callable[..., Stub], tmp_path: Path
) -> None:
    kit = control_kit(tmp_path / "control")
    stub = start(control_auth=kit.verifier(UID))
    with httpx.Client() as http:
        for path in ("/v1/become-ready", "/v1/become-unready", "/v1/set-log?startPos=0"):
            r = http.post(f"{stub.spi}{path}", content=b"x")
            assert (r.status_code, r.headers["www-authenticate"]) == (401, "Bearer"), path
            assert "Authorization" in r.text
            for wrong in (
                kit.header("POST", path, "another-pod", b"x"),  # for another Pod
                kit.header("POST", "/v1/become-ready?x", UID, b"x"),  # for another request
                kit.header("PUT", path, UID, b"x"),  # another method
                kit.header("POST", path, UID, b"y"),  # another body
                "Bearer " + "e30." * 2 + "c2ln",  # no signature of ours
            ):
                refused = http.post(
                    f"{stub.spi}{path}", content=b"x", headers={"Authorization": wrong}
                )
                assert refused.status_code == 401, (path, refused.text)
        assert http.get(f"{stub.spi}/v1/dual-pods/accelerators").status_code == 200  # reads open
        assert http.get(f"{stub.probes}/ready").status_code == 503  # nothing changed
        good = {"Authorization": kit.header("POST", "/v1/become-ready", UID)}
        assert http.post(f"{stub.spi}/v1/become-ready", headers=good).status_code == 200
        assert http.get(f"{stub.probes}/ready").status_code == 200
        again = http.post(f"{stub.spi}/v1/become-ready", headers=good)
        assert again.status_code == 401 and "used before" in again.text  # no replay
    assert stub.sink.getvalue() == b""


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    log=st.binary(min_size=1, max_size=3000),
    cuts=st.lists(st.tuples(st.integers(0, 3000), st.integers(0, 3000)), max_size=12),
)
def test_set_log_over_http_random_overlapping_chunks(
    start: Callable[..., Stub], log: bytes, cuts: list[tuple[int, int]]
) -> None:
    stub = start()
    accepted = 0
    with httpx.Client() as http:
        for a, b in [*cuts, (0, len(log))]:
            lo, hi = sorted((a % (len(log) + 1), b % (len(log) + 1)))
            r = http.post(f"{stub.spi}/v1/set-log?startPos={lo}", content=log[lo:hi])
            assert r.status_code == (400 if lo > accepted else 200)
            if r.status_code == 200:
                accepted = max(accepted, hi)
            assert stub.sink.getvalue() == log[:accepted]
    assert stub.sink.getvalue() == log


def test_concurrent_callers_never_duplicate_or_lose_bytes(stub: Stub) -> None:
    """Eight callers race, each sending the whole log in its own random chunking."""
    log = b"".join(f"line {i:05d} of the vLLM log\n".encode() for i in range(2000))

    def caller(seed: int) -> None:
        rng = random.Random(seed)
        with httpx.Client() as http:
            pos = 0
            while pos < len(log):
                end = min(len(log), pos + rng.randint(1, 4000))
                r = http.post(f"{stub.spi}/v1/set-log?startPos={pos}", content=log[pos:end])
                assert r.status_code == 200, r.text
                pos = end

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(caller, range(8)))
    assert stub.sink.getvalue() == log


def test_many_stubs_in_one_process(start: Callable[..., Stub]) -> None:
    stubs = [start(gpus=FixedGpus((f"GPU-{i}",))) for i in range(20)]
    with httpx.Client() as http:
        for i, s in enumerate(stubs):
            assert http.get(f"{s.spi}/v1/dual-pods/accelerators").json() == [f"GPU-{i}"]
        http.post(f"{stubs[3].spi}/v1/become-ready")
        ready = [http.get(f"{s.probes}/ready").status_code for s in stubs]
    assert ready == [200 if i == 3 else 503 for i in range(20)]
