"""The kubelet HTTPS API served locally (TLS, no cluster): /healthz and /containerLogs."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from certs.authority import CertificateAuthority
from localcluster.kubelet.httpserver import KubeletApi, log_options, serve, server_ssl_context
from localcluster.kubelet.logfiles import LogWriter, pod_log_dir
from localcluster.kubelet.podspec import PodView, parse_pod

POD = parse_pod(
    {
        "metadata": {"name": "web", "namespace": "ns", "uid": "u1"},
        "spec": {"containers": [{"name": "app", "image": "i"}]},
    }
)


def test_log_options_parse_the_forwarded_query() -> None:
    options = log_options(
        {"follow": ["true"], "tailLines": ["5"], "limitBytes": ["9"], "previous": ["false"]}
    )
    assert (options.follow, options.tail_lines, options.limit_bytes, options.previous) == (
        True,
        5,
        9,
        False,
    )
    assert log_options({"sinceSeconds": ["10"]}).since_time is not None


def test_container_logs_over_tls(tmp_path: Path) -> None:
    log_dir = pod_log_dir(tmp_path, "ns", "web", "u1")
    writer = LogWriter(log_dir / "app" / "0.log")
    for line in (b"hello", b"world"):
        writer.record("stdout", line)
    writer.finish(0, "2024-01-01T00:00:00Z")
    pair = CertificateAuthority.create("test-ca").issue_serving(["node"], ["127.0.0.1"])
    (tmp_path / "tls.crt").write_bytes(pair.cert_pem)
    (tmp_path / "tls.key").write_bytes(pair.key_pem)

    def find(node: str, namespace: str, name: str) -> tuple[PodView, Path] | None:
        return (POD, log_dir) if (namespace, name) == ("ns", "web") else None

    async def scenario() -> dict[str, tuple[int, str]]:
        api = KubeletApi("node", find, lambda node: [dict(POD.raw)], lambda: True)
        server = await serve(
            api, "127.0.0.1", 0, server_ssl_context(tmp_path / "tls.crt", tmp_path / "tls.key")
        )
        port = server.sockets[0].getsockname()[1]
        results = {}
        async with httpx.AsyncClient(verify=False, base_url=f"https://127.0.0.1:{port}") as client:
            for path in (
                "/healthz",
                "/containerLogs/ns/web/app",
                "/containerLogs/ns/web/app?tailLines=1&follow=true",
                "/containerLogs/ns/web/app?previous=true",
                "/containerLogs/ns/web/nope",
                "/containerLogs/ns/gone/app",
                "/pods",
            ):
                response = await client.get(path)
                results[path] = (response.status_code, response.text)
        server.close()
        await server.wait_closed()
        return results

    results = asyncio.run(scenario())
    assert results["/healthz"] == (200, "ok")
    assert results["/containerLogs/ns/web/app"] == (200, "hello\nworld\n")
    assert results["/containerLogs/ns/web/app?tailLines=1&follow=true"] == (200, "world\n")
    assert results["/containerLogs/ns/web/app?previous=true"][0] == 400
    assert results["/containerLogs/ns/web/nope"] == (
        400,
        "container nope is not valid for pod web\n",
    )
    assert results["/containerLogs/ns/gone/app"][0] == 404
    assert '"PodList"' in results["/pods"][1]
