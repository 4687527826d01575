"""Admission latency of the webhook server at a fixed request rate (issue 4's benchmark).

    python bench/webhook_latency.py [--rate 500] [--duration 10] [--connections 16]

Starts the real server (uvicorn, TLS, the production app over a preloaded cache) in a child
process, then sends AdmissionReviews of realistic vLLM Pods at a fixed rate, open loop: request
i is due at start + i/rate whether or not earlier ones have finished, so a slow server shows up
as latency instead of being hidden by a slower send rate. Requests alternate between a Pod that
matches an InferenceServerConfig (launcher mode) and one that does not (direct mode, the heavier
path). The client keeps `--connections` keep-alive TLS connections, like the apiserver.

Prints one JSON object. `p50_ms`/`p99_ms` are server side: the time the app reports in its
`Server-Timing` header, from first byte of the request to the response start. `client` holds the
latency seen by the client, measured from each request's due time (so it includes any queueing
for a free connection). Target: server p99 <= 5 ms at 500 requests/s.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from localcluster.processes import free_port

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

NAMESPACE = "bench"


# --- the workload ----------------------------------------------------------------------------


def vllm_container(model: str, *, secret_env: bool) -> dict[str, Any]:
    """The vLLM container; `secret_env` adds an env var from a Secret, which no
    InferenceServerConfig can express (so that Pod goes to direct mode)."""
    env: list[dict[str, Any]] = [
        {"name": "HF_HOME", "value": "/models/cache"},
        {"name": "VLLM_LOGGING_LEVEL", "value": "INFO"},
    ]
    if secret_env:
        env.append(
            {"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": "hf", "key": "token"}}}
        )
    return {
        "name": "vllm",
        "image": "vllm/vllm-openai:v0.10.0",
        "imagePullPolicy": "IfNotPresent",
        "args": [
            model,
            "--port",
            "8000",
            "--max-model-len",
            "4096",
            "--served-model-name",
            "chat",
            "--gpu-memory-utilization",
            "0.9",
            "--disable-log-requests",
        ],
        "env": env,
        "ports": [{"name": "http", "containerPort": 8000, "protocol": "TCP"}],
        "readinessProbe": {
            "httpGet": {"path": "/health", "port": 8000, "scheme": "HTTP"},
            "periodSeconds": 5,
            "timeoutSeconds": 1,
            "successThreshold": 1,
            "failureThreshold": 3,
        },
        "resources": {
            "limits": {"nvidia.com/gpu": "1", "memory": "40Gi"},
            "requests": {"nvidia.com/gpu": "1", "cpu": "4", "memory": "40Gi"},
        },
        "volumeMounts": [
            {"name": "models", "mountPath": "/models", "readOnly": True},
            {"name": "shm", "mountPath": "/dev/shm"},
            {
                "name": "kube-api-access-x1",
                "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
                "readOnly": True,
            },
        ],
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
    }


def vllm_pod(index: int, *, model: str, secret_env: bool) -> dict[str, Any]:
    """A vLLM Pod as a Deployment's ReplicaSet creates it, after the apiserver's defaulting."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "generateName": f"chat-{index % 7}-5d8f7c9b4-",
            "namespace": NAMESPACE,
            "labels": {"app": "chat", "pod-template-hash": "5d8f7c9b4", "tier": "inference"},
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "ReplicaSet",
                    "name": "chat-5d8f7c9b4",
                    "uid": "0b7c5a52-1111-4c38-9d43-5e0a7f1c2b3d",
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {
            "containers": [vllm_container(model, secret_env=secret_env)],
            "volumes": [
                {"name": "models", "persistentVolumeClaim": {"claimName": "models"}},
                {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "8Gi"}},
            ],
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 30,
            "dnsPolicy": "ClusterFirst",
            "serviceAccountName": "default",
            "schedulerName": "default-scheduler",
            "securityContext": {},
            "priority": 0,
            "enableServiceLinks": True,
            "tolerations": [
                {
                    "key": "node.kubernetes.io/not-ready",
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": 300,
                },
                {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
            ],
        },
    }


def cluster_objects() -> list[dict[str, Any]]:
    """What the server's cache holds: the opted-in namespace, one ISC, the ReplicaSet."""
    return [
        {
            "kind": "Namespace",
            "metadata": {"name": NAMESPACE, "labels": {"fma.llm-d.ai/inject": "enabled"}},
        },
        {
            "apiVersion": "fma.llm-d.ai/v1alpha1",
            "kind": "InferenceServerConfig",
            "metadata": {"name": "llama", "namespace": NAMESPACE},
            "spec": {
                "launcherConfigName": "gpu-launchers",
                "modelServerConfig": {
                    "port": 8000,
                    "options": (
                        "--model /models/llama --max-model-len 4096 --served-model-name chat "
                        "--gpu-memory-utilization 0.9 --disable-log-requests"
                    ),
                    "env_vars": {"HF_HOME": "/models/cache", "VLLM_LOGGING_LEVEL": "INFO"},
                },
            },
        },
        {
            "kind": "ReplicaSet",
            "metadata": {
                "name": "chat-5d8f7c9b4",
                "namespace": NAMESPACE,
                "uid": "0b7c5a52-1111-4c38-9d43-5e0a7f1c2b3d",
            },
            "spec": {
                "selector": {"matchLabels": {"app": "chat", "pod-template-hash": "5d8f7c9b4"}}
            },
        },
    ]


def review_body(index: int) -> bytes:
    """Even requests match the ISC (launcher mode), odd ones do not (direct mode)."""
    launcher = index % 2 == 0
    model = "/models/llama" if launcher else "/models/mistral"
    request = {
        "uid": f"00000000-0000-4000-8000-{index:012d}",
        "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "resource": {"group": "", "version": "v1", "resource": "pods"},
        "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
        "requestResource": {"group": "", "version": "v1", "resource": "pods"},
        "namespace": NAMESPACE,
        "operation": "CREATE",
        "userInfo": {
            "username": "system:serviceaccount:kube-system:replicaset-controller",
            "uid": "c1d0c5e4-2222-4b8f-a0f9-1f2e3d4c5b6a",
            "groups": [
                "system:serviceaccounts",
                "system:serviceaccounts:kube-system",
                "system:authenticated",
            ],
        },
        "object": vllm_pod(index, model=model, secret_env=not launcher),
        "oldObject": None,
        "dryRun": False,
        "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
    }
    review = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}
    return json.dumps(review).encode()


# --- the server (child process) --------------------------------------------------------------


def serve(cert: Path, key: Path, port: int) -> None:
    import jsonlog
    from kube import run_event_loop
    from webhook.app import create_app
    from webhook.cache import WebhookCache
    from webhook.cli import UVICORN_LOGGERS
    from webhook.handlers import Handlers
    from webhook.metrics import WebhookMetrics
    from webhook.mutation import MutationSettings
    from webhook.server import serve_tls
    from webhook.validation import ValidationSettings

    jsonlog.configure("info", adopt=UVICORN_LOGGERS)
    metrics = WebhookMetrics()
    handlers = Handlers(
        cache=WebhookCache.from_objects(cluster_objects()),
        mutation_settings=MutationSettings(requester_image="ghcr.io/llm-d/fma:bench"),
        validation_settings=ValidationSettings(controller_usernames=frozenset()),
        metrics=metrics,
    )
    app = create_app(handlers)
    run_event_loop(
        lambda: serve_tls(
            app,
            cert=cert,
            key=key,
            host="127.0.0.1",
            port=port,
            reload_interval_s=2.0,
            metrics=metrics,
        )
    )


# --- the client --------------------------------------------------------------------------------


class Connection:
    """One keep-alive HTTP/1.1 connection over TLS, one request at a time.

    A hand-written client keeps the load generator's own CPU cost (it shares the machine with
    the server) far below an HTTP library's.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int, context: ssl.SSLContext) -> Connection:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=context, server_hostname="127.0.0.1"
        )
        return cls(reader, writer)

    async def post(self, path: str, body: bytes) -> tuple[int, dict[str, str], bytes]:
        head = (
            f"POST {path} HTTP/1.1\r\nHost: webhook\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        self.writer.write(head + body)
        raw = await self.reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                name, value = line.split(":", 1)
                headers[name.strip().lower()] = value.strip()
        payload = await self.reader.readexactly(int(headers.get("content-length", "0")))
        return status, headers, payload

    def close(self) -> None:
        self.writer.close()


def _server_ms(headers: dict[str, str]) -> float | None:
    timing = headers.get("server-timing", "")
    if "dur=" not in timing:
        return None
    return float(timing.split("dur=", 1)[1].split(";", 1)[0])


async def load(
    port: int, context: ssl.SSLContext, *, rate: float, duration: float, connections: int
) -> dict[str, Any]:
    pool: asyncio.Queue[Connection] = asyncio.Queue()
    for _ in range(connections):
        pool.put_nowait(await Connection.open(port, context))
    bodies = [review_body(i) for i in range(64)]
    server_ms: list[float] = []
    client_ms: list[float] = []
    errors: list[str] = []

    async def one(index: int, due: float) -> None:
        conn = await pool.get()
        try:
            status, headers, payload = await conn.post("/mutate-pods", bodies[index % len(bodies)])
            client_ms.append((time.perf_counter() - due) * 1000)
            measured = _server_ms(headers)
            if status != 200 or measured is None or b'"allowed":true' not in payload:
                errors.append(f"HTTP {status}: {payload[:200]!r}")
            else:
                server_ms.append(measured)
        except Exception as exc:
            errors.append(repr(exc))
            conn = await Connection.open(port, context)
        finally:
            pool.put_nowait(conn)

    total = max(1, int(rate * duration))
    tasks: list[asyncio.Task[None]] = []
    start = time.perf_counter()
    for i in range(total):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i, due)))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - start
    while not pool.empty():
        pool.get_nowait().close()
    return {
        "requests": total,
        "elapsed_s": round(elapsed, 3),
        "achieved_rate": round(total / elapsed, 1),
        "errors": len(errors),
        "error_samples": errors[:3],
        "server": summary(server_ms),
        "client": summary(client_ms),
    }


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (no interpolation: a reported p99 is a latency that happened)."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def summary(values: Sequence[float]) -> dict[str, float]:
    if not values:
        return {}
    return {
        "p50_ms": round(percentile(values, 50), 3),
        "p90_ms": round(percentile(values, 90), 3),
        "p99_ms": round(percentile(values, 99), 3),
        "max_ms": round(max(values), 3),
        "mean_ms": round(sum(values) / len(values), 3),
    }


# --- orchestration ---------------------------------------------------------------------------


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _ready(port: int, context: ssl.SSLContext) -> bool:
    with (
        contextlib.suppress(OSError),
        socket.create_connection(("127.0.0.1", port), 1) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        tls.sendall(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        return tls.recv(64).startswith(b"HTTP/1.1 200")
    return False


def _wait_ready(port: int, context: ssl.SSLContext, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the server exited with code {server.returncode}")
        if _ready(port, context):
            return
        time.sleep(0.1)
    raise TimeoutError("the server did not become ready in 30 s")


def run(rate: float, duration: float, connections: int, warmup: float) -> dict[str, Any]:
    from certs.authority import CertificateAuthority

    with tempfile.TemporaryDirectory(prefix="fma-bench-") as tmp:
        directory = Path(tmp)
        ca = CertificateAuthority.create("bench-ca")
        pair = ca.issue_serving(["localhost"], ["127.0.0.1"])
        (directory / "tls.crt").write_bytes(pair.cert_pem)
        (directory / "tls.key").write_bytes(pair.key_pem)
        context = ssl.create_default_context(cadata=ca.cert_pem.decode())
        port = free_port()
        argv = [sys.executable, __file__, "--serve", str(directory), "--port", str(port)]
        with (directory / "server.log").open("wb") as log:
            server = subprocess.Popen(argv, stdout=log, stderr=log, cwd=ROOT)
        try:
            _wait_ready(port, context, server)
            if warmup > 0:
                asyncio.run(
                    load(port, context, rate=rate, duration=warmup, connections=connections)
                )
            server_cpu, client_cpu = _cpu_seconds(server.pid), time.process_time()
            result = asyncio.run(
                load(port, context, rate=rate, duration=duration, connections=connections)
            )
            server_cpu = _cpu_seconds(server.pid) - server_cpu
            client_cpu = time.process_time() - client_cpu
        finally:
            server.terminate()
            try:
                server.wait(10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
    server_stats = result["server"]
    requests = max(1, result["requests"])
    result["cpu_ms_per_request"] = {
        "server": round(server_cpu * 1000 / requests, 3),
        "client": round(client_cpu * 1000 / requests, 3),
    }
    return {
        "p50_ms": server_stats.get("p50_ms"),
        "p99_ms": server_stats.get("p99_ms"),
        "rate": rate,
        "duration_s": duration,
        "connections": connections,
        "cpus": os.cpu_count(),
        **result,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=500.0, help="requests per second")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of measured load")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds of unmeasured load")
    parser.add_argument("--connections", type=int, default=16, help="keep-alive connections")
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve is not None:
        serve(args.serve / "tls.crt", args.serve / "tls.key", args.port)
        return 0
    result = run(args.rate, args.duration, args.connections, args.warmup)
    print(json.dumps(result, indent=2))
    return 1 if result["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
