"""The REST client's requests and error mapping, on `httpx.MockTransport` (the real apiserver
is exercised in tests/cluster/test_controller_kube.py)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest
import yaml

from kube import (
    INFERENCE_SERVER_CONFIGS,
    NODES,
    PODS,
    ApiError,
    ConnectionSettings,
    KubeClient,
    Preconditions,
    http_client_for,
    load_configuration,
)


def _kubeconfig(tmp_path: Path) -> Path:
    path = tmp_path / "kubeconfig"
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": "https://api.test:6443"}}],
        "users": [{"name": "u", "user": {"token": "s3cret"}}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "x",
    }
    path.write_text(yaml.safe_dump(config))
    return path


def _client(tmp_path: Path, handler: httpx.MockTransport) -> KubeClient:
    settings = ConnectionSettings(kubeconfig=_kubeconfig(tmp_path))
    http = http_client_for(load_configuration(settings), settings, transport=handler)
    return KubeClient(http)


def _mock(handler: Callable[[httpx.Request], httpx.Response]) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url="https://api.test", transport=httpx.MockTransport(handler))


def test_requests_carry_the_token_paths_selectors_and_field_manager(tmp_path: Path) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"metadata": {"name": "x"}})

    async def main() -> None:
        client = _client(tmp_path, httpx.MockTransport(handler))
        await client.list(PODS, namespace="ns", label_selector="a=b", limit=5)
        await client.get(NODES, "node-1")
        await client.create(INFERENCE_SERVER_CONFIGS, {"metadata": {"namespace": "ns"}})
        await client.patch(PODS, "p", {"metadata": {}}, namespace="ns", patch_type="strategic")
        await client.delete(
            PODS, "p", namespace="ns", preconditions=Preconditions(uid="u", resource_version="9")
        )
        await client.aclose()

    asyncio.run(main())
    assert all(r.headers["authorization"] == "Bearer s3cret" for r in seen)
    assert [(r.method, r.url.path) for r in seen] == [
        ("GET", "/api/v1/namespaces/ns/pods"),
        ("GET", "/api/v1/nodes/node-1"),
        ("POST", "/apis/fma.llm-d.ai/v1alpha1/namespaces/ns/inferenceserverconfigs"),
        ("PATCH", "/api/v1/namespaces/ns/pods/p"),
        ("DELETE", "/api/v1/namespaces/ns/pods/p"),
    ]
    assert dict(seen[0].url.params) == {"labelSelector": "a=b", "limit": "5"}
    assert seen[2].url.params["fieldManager"] == "dual-pods-controller"
    assert seen[3].headers["content-type"] == "application/strategic-merge-patch+json"
    assert json.loads(seen[4].content)["preconditions"] == {"uid": "u", "resourceVersion": "9"}


def test_errors_become_api_errors_with_the_status_reason() -> None:
    status = {"kind": "Status", "reason": "Conflict", "message": "the object has been modified"}

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/gone"):
            return httpx.Response(404, text="404 page not found")
        return httpx.Response(409, json=status)

    async def main() -> tuple[ApiError, ApiError]:
        client = KubeClient(_mock(handler))
        with pytest.raises(ApiError) as conflict:
            await client.get(PODS, "p", namespace="ns")
        with pytest.raises(ApiError) as missing:
            await client.get(PODS, "gone", namespace="ns")
        return conflict.value, missing.value

    conflict, missing = asyncio.run(main())
    assert conflict.conflict and conflict.reason == "Conflict"
    assert conflict.message == "the object has been modified" and conflict.body == status
    assert missing.not_found and missing.message == "404 page not found"


def test_watch_streams_ndjson_events_and_raises_on_an_http_410() -> None:
    lines = [
        {"type": "ADDED", "object": {"metadata": {"name": "a", "resourceVersion": "5"}}},
        {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "6"}}},
    ]

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.params["resourceVersion"] == "1":
            return httpx.Response(410, json={"reason": "Expired", "message": "too old"})
        assert request.url.params["watch"] == "true"
        assert request.url.params["allowWatchBookmarks"] == "true"
        body = "".join(json.dumps(line) + "\n" for line in lines) + "\n"
        return httpx.Response(200, content=body.encode())

    async def main() -> list[object]:
        client = KubeClient(_mock(handler))
        async with client.watch(PODS, resource_version="4", timeout_s=10, namespace="ns") as events:
            got = [event async for event in events]
        with pytest.raises(ApiError) as gone:
            async with client.watch(PODS, resource_version="1", timeout_s=10):
                pass
        assert gone.value.gone
        return list(got)

    assert asyncio.run(main()) == lines


@pytest.mark.parametrize("size", [1, 7, 64, 100_000])
def test_watch_events_split_anywhere_by_the_network_arrive_whole(size: int) -> None:
    """The stream's chunks end anywhere: inside an event, inside a UTF-8 character."""
    lines = [
        {"type": "ADDED", "object": {"metadata": {"name": f"p{i}", "annotations": {"é": "ü" * i}}}}
        for i in range(20)
    ]
    body = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines).encode()

    class Chunked(httpx.AsyncByteStream):
        async def __aiter__(self) -> AsyncIterator[bytes]:
            for start in range(0, len(body), size):
                yield body[start : start + size]

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, stream=Chunked())

    async def main() -> list[object]:
        client = KubeClient(_mock(handler))
        async with client.watch(PODS, resource_version="4", timeout_s=10) as events:
            return [event async for event in events]

    assert asyncio.run(main()) == lines


def test_resource_paths_refuse_impossible_combinations() -> None:
    with pytest.raises(ValueError, match="cluster-scoped"):
        NODES.path(namespace="ns")
    with pytest.raises(ValueError, match="needs a name"):
        PODS.path(namespace="ns", subresource="status")
    assert PODS.path(namespace="ns", name="p", subresource="status") == (
        "/api/v1/namespaces/ns/pods/p/status"
    )
    assert INFERENCE_SERVER_CONFIGS.api_version == "fma.llm-d.ai/v1alpha1"
