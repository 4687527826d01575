"""The HTTP layer in-process (no fork server): status codes, shapes, auth, logs and 410.

Process mechanics are covered over real HTTP in tests/launcher; here the handlers' mapping of
requests and errors is pinned with instances placed directly in the manager.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute

from controlauth import ControlToken
from launcher.app import create_app
from launcher.gpus import GpuMap
from launcher.manager import InstanceManager
from launcher.settings import Settings
from launcher.state import Instance
from tests.controlkit import control_kit
from tests.launcher.support import place_instance

pytestmark = pytest.mark.anyio

GPUS = GpuMap(indices={"GPU-0": 0, "GPU-1": 1}, source="mock")


def _app(tmp_path: Path, **settings: object) -> FastAPI:
    return create_app(Settings(log_dir=tmp_path, **settings), GPUS)  # type: ignore[arg-type]


def _manager(app: FastAPI) -> InstanceManager:
    manager: InstanceManager = app.state.manager
    return manager


def _place(app: FastAPI, tmp_path: Path, instance_id: str, log: bytes = b"") -> Instance:
    return place_instance(_manager(app), tmp_path, instance_id, log)


@pytest.fixture
def app(tmp_path: Path) -> FastAPI:
    return _app(tmp_path)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://launcher") as http:
        yield http


async def test_root_and_health(client: httpx.AsyncClient) -> None:
    root = (await client.get("/")).json()
    assert (root["name"], root["version"]) == ("Multi-Instance vLLM Management API", "2.0")
    assert (await client.get("/health")).json() == {"status": "OK"}
    assert (await client.get("/readyz")).status_code == 503  # no fork server in this test


async def test_root_names_every_route(app: FastAPI, client: httpx.AsyncClient) -> None:
    listed = set()
    for entry in (await client.get("/")).json()["endpoints"].values():
        method, _, path = entry.partition(" ")
        listed.add((method, path.split("[")[0]))
    served = {
        (method, route.path)
        for route in app.routes
        if isinstance(route, APIRoute) and route.include_in_schema
        for method in route.methods
    }
    assert listed == served
    assert {("GET", "/"), ("GET", "/v2/vllm/instances/watch")} <= listed


async def test_delete_all_answers_the_stopped_instance_states(
    app: FastAPI, tmp_path: Path, client: httpx.AsyncClient
) -> None:
    for name in ("a", "b"):
        _place(app, tmp_path, name)
    answer = (await client.delete("/v2/vllm/instances")).json()
    assert (answer["status"], answer["total_stopped"]) == ("all_stopped", 2)
    states = sorted(answer["stopped_instances"], key=lambda state: str(state["instance_id"]))
    assert [(s["instance_id"], s["status"], s["options"]) for s in states] == [
        ("a", "stopped", "--port 9"),
        ("b", "stopped", "--port 9"),
    ]
    assert sorted(s["revision"] for s in states) == [1, 2]  # each one's DELETED event
    assert (await client.get("/v2/vllm/instances")).json()["instances"] == []


async def test_list_shapes(app: FastAPI, tmp_path: Path, client: httpx.AsyncClient) -> None:
    _place(app, tmp_path, "a")
    detail = (await client.get("/v2/vllm/instances")).json()
    assert detail["revision"] == 0
    assert (detail["total_instances"], detail["running_instances"]) == (1, 1)
    assert detail["instances"][0]["instance_id"] == "a"
    brief = (await client.get("/v2/vllm/instances", params={"detail": "false"})).json()
    assert brief == {"revision": 0, "instance_ids": ["a"], "count": 1}


async def test_get_unknown_is_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/v2/vllm/instances/nope")
    assert (response.status_code, response.json()) == (404, {"detail": "Instance nope not found"})
    assert (await client.delete("/v2/vllm/instances/nope")).status_code == 404
    assert (await client.get("/v2/vllm/instances/nope/log")).status_code == 404


async def test_create_rejections(app: FastAPI, tmp_path: Path, client: httpx.AsyncClient) -> None:
    _place(app, tmp_path, "taken")
    url = "/v2/vllm/instances/"
    dup = await client.put(url + "taken", json={"options": "--port 1"})
    assert (dup.status_code, dup.json()["detail"]) == (409, "Instance taken already exists")
    reserved = await client.put(url + "watch", json={"options": "--port 1"})
    assert reserved.status_code == 422
    assert "reserved" in reserved.json()["detail"]
    gpu = await client.put(url + "g", json={"options": "--port 1", "gpu_uuids": ["GPU-9"]})
    assert gpu.status_code == 422
    assert gpu.json()["detail"] == "gpu_uuids: unknown GPU UUID(s) GPU-9; known: GPU-0, GPU-1"
    post = await client.post(url[:-1], json={"options": "--port 1", "gpu_uuids": ["GPU-9"]})
    assert post.status_code == 422  # the reference answers 500 here
    quote = await client.put(url + "q", json={"options": '--additional-config \'{"a": 1}'})
    assert quote.status_code == 422
    assert "--additional-config" in quote.json()["detail"]
    body = await client.put(url + "b", json={"gpu_uuids": []})
    assert body.status_code == 422
    assert isinstance(body.json()["detail"], list)  # FastAPI's validation shape


async def test_mutations_need_the_controllers_token(tmp_path: Path) -> None:
    kit = control_kit(tmp_path / "control")
    app = _app(tmp_path, control_auth=kit.verifier("launcher-uid"))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://launcher") as client:
        url = "/v2/vllm/instances"
        for method, path in (("POST", url), ("PUT", url + "/x"), ("DELETE", url + "/x")):
            response = await client.request(method, path, json={"options": ""})
            assert response.status_code == 401, (method, path)
            assert response.headers["WWW-Authenticate"] == "Bearer"
            assert "Authorization" in response.json()["detail"]
        wrong = await client.delete(url, auth=ControlToken(kit.auth.signer, "other-launcher"))
        assert wrong.status_code == 401
        assert "audience" in wrong.json()["detail"].lower()
        query = await client.delete(
            url + "?x=1", headers={"Authorization": kit.header("DELETE", url, "launcher-uid")}
        )
        assert query.status_code == 401  # the query is part of what is signed
        right = await client.delete(url, auth=ControlToken(kit.auth.signer, "launcher-uid"))
        assert right.json() == {
            "status": "all_stopped",
            "stopped_instances": [],
            "total_stopped": 0,
        }
        assert (await client.get(url)).status_code == 200  # reads stay open


async def test_log_ranges(app: FastAPI, tmp_path: Path, client: httpx.AsyncClient) -> None:
    _place(app, tmp_path, "a", b"0123456789")
    url = "/v2/vllm/instances/a/log"
    full = await client.get(url)
    assert (full.status_code, full.content) == (200, b"0123456789")
    assert full.headers["Content-Type"] == "application/octet-stream"
    assert full.headers["Accept-Ranges"] == "bytes"
    assert full.headers["Content-Range"] == "bytes 0-9/10"
    part = await client.get(url, headers={"Range": "bytes=3-5"})
    assert (part.status_code, part.content) == (206, b"345")
    assert part.headers["Content-Range"] == "bytes 3-5/10"
    tail = await client.get(url, headers={"Range": "bytes=7-"})
    assert (tail.status_code, tail.content) == (206, b"789")
    bad = await client.get(url, headers={"Range": "bytes=-3"})
    assert bad.status_code == 400
    past = await client.get(url, headers={"Range": "bytes=10-"})
    assert (past.status_code, past.content) == (416, b"")
    assert past.headers["Content-Range"] == "bytes */10"


async def test_empty_log_is_200(app: FastAPI, tmp_path: Path, client: httpx.AsyncClient) -> None:
    _place(app, tmp_path, "e")
    response = await client.get("/v2/vllm/instances/e/log")
    assert (response.status_code, response.content) == (200, b"")
    ranged = await client.get("/v2/vllm/instances/e/log", headers={"Range": "bytes=0-"})
    assert ranged.status_code == 416


async def test_watch_since_too_old_is_410(tmp_path: Path) -> None:
    app = _app(tmp_path, watch_buffer=2)
    events = _manager(app).events
    for _ in range(3):
        events.append("CREATED", {})
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://launcher") as client:
        response = await client.get("/v2/vllm/instances/watch", params={"since": 0})
    assert response.status_code == 410
    assert response.json() == {
        "detail": "Requested revision 0 is no longer available. Oldest available: 1."
    }
