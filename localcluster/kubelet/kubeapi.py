"""The hollow kubelet's calls to the apiserver, as plain JSON, through the official client.

Why raw JSON (`_preload_content=False`): the kubelet keeps Pods exactly as the apiserver sends
them, and a model round trip would cost time and drop fields we do not know. The official client
still does the kubeconfig, TLS and content-type work. It is synchronous: the async wrappers run
it in worker threads (`asyncio.to_thread`); the long-lived watch has a thread of its own
(`podsource`).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator, Mapping
from typing import Any

import kubernetes.client
from kubernetes.client.exceptions import ApiException
from kubernetes.watch.watch import iter_resp_lines

Json = dict[str, Any]
JSON_MERGE = "application/merge-patch+json"


def _json(response: Any) -> Json:
    try:
        result: Json = json.loads(response.data)
    finally:
        response.release_conn()
    return result


def _drain(response: Any) -> None:
    """Reads an unwanted body and hands the connection back to the pool.

    With `_preload_content=False` urllib3 keeps the connection out of its pool until the
    response is released: an unread one is dropped, and one released late (after the event
    loop got to it) lets the other threads open connections meanwhile, which the full pool then
    discards. Either way the next call pays a new TLS handshake (a third of the kubelet's CPU
    under load). So every call reads and releases in its worker thread."""
    try:
        _ = response.data
    finally:
        response.release_conn()


def not_found(exc: ApiException) -> bool:
    return bool(exc.status == 404)


class KubeApi:
    """The few calls the kubelet makes; `a*` methods are the async forms."""

    def __init__(self, client: kubernetes.client.ApiClient) -> None:
        self.client = client
        self.core = kubernetes.client.CoreV1Api(client)
        self.coordination = kubernetes.client.CoordinationV1Api(client)

    # ----- Pods --------------------------------------------------------------------------

    def list_pods(self) -> Json:
        return _json(self.core.list_pod_for_all_namespaces(_preload_content=False))

    def watch_pods(self, resource_version: str, timeout_seconds: int) -> Iterator[Json]:
        """Watch events from `resource_version` until the server ends the watch."""
        response = self.core.list_pod_for_all_namespaces(
            watch=True,
            resource_version=resource_version,
            allow_watch_bookmarks=True,
            timeout_seconds=timeout_seconds,
            _preload_content=False,
            _request_timeout=(10, timeout_seconds + 30),
        )
        try:
            for line in iter_resp_lines(response):
                if line:
                    yield json.loads(line)
        finally:
            response.release_conn()

    async def patch_pod_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> Json:
        """A strategic merge patch of the status subresource; returns the updated Pod."""

        def call() -> Json:
            return _json(
                self.core.patch_namespaced_pod_status(
                    name, namespace, {"status": status}, _preload_content=False
                )
            )

        return await asyncio.to_thread(call)

    async def delete_pod_now(self, namespace: str, name: str, uid: str) -> None:
        """Deletes with grace 0 and a uid precondition (a same-named successor is left alone)."""
        options = kubernetes.client.V1DeleteOptions(
            grace_period_seconds=0, preconditions=kubernetes.client.V1Preconditions(uid=uid)
        )

        def call() -> None:
            try:
                _drain(
                    self.core.delete_namespaced_pod(
                        name, namespace, body=options, _preload_content=False
                    )
                )
            except ApiException as exc:
                if exc.status not in (404, 409):
                    raise

        await asyncio.to_thread(call)

    async def get_object(self, kind: str, namespace: str, name: str) -> Json | None:
        """A ConfigMap or Secret, or None when it does not exist."""
        read = (
            self.core.read_namespaced_config_map
            if kind == "ConfigMap"
            else self.core.read_namespaced_secret
        )

        def call() -> Json | None:
            try:
                return _json(read(name, namespace, _preload_content=False))
            except ApiException as exc:
                if not_found(exc):
                    return None
                raise

        return await asyncio.to_thread(call)

    async def create_event(self, namespace: str, event: Mapping[str, Any]) -> None:
        def call() -> None:
            _drain(
                self.core.create_namespaced_event(namespace, dict(event), _preload_content=False)
            )

        await asyncio.to_thread(call)

    # ----- Nodes and Leases ----------------------------------------------------------------

    async def get_node(self, name: str) -> Json | None:
        def call() -> Json | None:
            try:
                return _json(self.core.read_node(name, _preload_content=False))
            except ApiException as exc:
                if not_found(exc):
                    return None
                raise

        return await asyncio.to_thread(call)

    async def create_node(self, node: Mapping[str, Any]) -> Json:
        return await asyncio.to_thread(
            lambda: _json(self.core.create_node(dict(node), _preload_content=False))
        )

    async def patch_node(self, name: str, patch: Mapping[str, Any]) -> Json:
        """A merge patch of the Node (labels, taints); include resourceVersion to guard it."""
        return await asyncio.to_thread(
            lambda: _json(
                self.core.patch_node(
                    name, dict(patch), _content_type=JSON_MERGE, _preload_content=False
                )
            )
        )

    async def patch_node_status(self, name: str, status: Mapping[str, Any]) -> Json:
        return await asyncio.to_thread(
            lambda: _json(
                self.core.patch_node_status(name, {"status": status}, _preload_content=False)
            )
        )

    async def delete_node(self, name: str) -> None:
        def call() -> None:
            try:
                _drain(self.core.delete_node(name, _preload_content=False))
            except ApiException as exc:
                if not not_found(exc):
                    raise

        await asyncio.to_thread(call)

    async def renew_lease(self, lease: Mapping[str, Any]) -> None:
        """Creates the node's Lease in kube-node-lease, or patches its spec."""
        name = lease["metadata"]["name"]

        def call() -> None:
            try:
                _drain(
                    self.coordination.patch_namespaced_lease(
                        name,
                        "kube-node-lease",
                        {"spec": lease["spec"]},
                        _content_type=JSON_MERGE,
                        _preload_content=False,
                    )
                )
            except ApiException as exc:
                if not not_found(exc):
                    raise
                _drain(
                    self.coordination.create_namespaced_lease(
                        "kube-node-lease", dict(lease), _preload_content=False
                    )
                )

        await asyncio.to_thread(call)
