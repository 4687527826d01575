"""What control authentication adds to a controller→launcher call (contracts §14).

    .venv/bin/python bench/control_auth.py [--calls 2000]

Two real launcher processes (`python -m launcher`, mock GPUs) on 127.0.0.1: one verifying control
tokens (`FMA_CONTROL_TRUST`, `FMA_POD_UID`), one with `FMA_CONTROL_AUTH=off`. The controller's own
HTTP layer (`PeerCalls` on `peer_call_client`, connections kept alive as in production) sends the
same mutating call to each, `DELETE /v2/vllm/instances` (stop all; none run, so the launcher's
own work is constant), alternating call by call so both see the same machine. With
authentication on, each call is signed by `Signer` with the credential `fma-certs ensure-control`
issues.

It prints one JSON object: p50/p99 per side, `added_p50_ms` (on minus off), and the CPU cost of
signing and of verifying one token measured in this process. Target: `added_p50_ms` <= 1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

import httpx

REPO: Final = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench._observe import percentile  # noqa: E402 - after making the repo importable
from certs.control import ensure_control_directory  # noqa: E402
from contract import auth  # noqa: E402
from controlauth import TrustAnchors, Verifier, controller_auth_from_dir  # noqa: E402
from controller.observability import ControllerMetrics  # noqa: E402
from controller.reconciler._http import PeerCalls, peer_call_client  # noqa: E402
from localcluster.processes import ManagedProcess, free_port, wait_until  # noqa: E402

LOCAL: Final = "127.0.0.1"
LAUNCHER_UID: Final = "bench-launcher-uid"
TARGET_ADDED_P50_MS: Final = 1.0


@contextmanager
def launcher(workdir: Path, name: str, env: dict[str, str]) -> Iterator[str]:
    """A launcher process on a free port; yields its instances URL."""
    port = free_port(LOCAL)
    log_dir = workdir / name
    log_dir.mkdir()
    argv = [sys.executable, "-m", "launcher", "--host", LOCAL, "--port", str(port)]
    argv += ["--mock-gpus", "--log-dir", str(log_dir), "--log-level", "warning"]
    process = ManagedProcess(
        name, argv, log_path=log_dir / "launcher.log", env={**os.environ, **env}, cwd=REPO
    )
    process.start()
    url = f"http://{LOCAL}:{port}/v2/vllm/instances"
    try:
        wait_until(f"{name} to serve", lambda: _serves(url), timeout=60, process=process)
        yield url
    finally:
        process.stop(grace_seconds=10)


def _serves(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


async def measure(on_url: str, off_url: str, credentials: Path, calls: int) -> dict[str, Any]:
    control = controller_auth_from_dir(credentials)
    async with peer_call_client() as http:
        signed = PeerCalls(http, ControllerMetrics(), namespace="bench", signer=control.signer)
        plain = PeerCalls(http, ControllerMetrics(), namespace="bench")
        times: dict[str, list[float]] = {"on": [], "off": []}
        for index in range(calls + calls // 10):
            for side, peers, url in (("on", signed, on_url), ("off", plain, off_url)):
                started = time.perf_counter()
                await peers.call(
                    "delete_instances", "DELETE", url, timeout_s=10, connect_s=2,
                    audience=LAUNCHER_UID,
                )  # fmt: skip
                if index >= calls // 10:  # the first tenth warms up both sides
                    times[side].append((time.perf_counter() - started) * 1000)
    summary = {
        side: {"p50_ms": round(percentile(v, 50), 3), "p99_ms": round(percentile(v, 99), 3)}
        for side, v in times.items()
    }
    added = summary["on"]["p50_ms"] - summary["off"]["p50_ms"]
    return {**summary, "added_p50_ms": round(added, 3)}


def crypto_cost(credentials: Path, rounds: int = 2000) -> dict[str, float]:
    """Microseconds to sign one token (controller) and to verify one (launcher, stub)."""
    control = controller_auth_from_dir(credentials)
    anchors = TrustAnchors.from_pem(control.trust(), source="bench")
    verifier = Verifier(lambda: anchors, LAUNCHER_UID)
    path, body = "/v2/vllm/instances/x", b'{"options": "--port 9"}'
    started = time.perf_counter()
    tokens = [control.signer.authorization("PUT", path, body, LAUNCHER_UID) for _ in range(rounds)]
    signed = time.perf_counter()
    for token in tokens:
        verifier.check(token, "PUT", path, body)
    verified = time.perf_counter()
    return {
        "sign_us": round((signed - started) / rounds * 1e6, 1),
        "verify_us": round((verified - signed) / rounds * 1e6, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=2000, help="measured calls per side")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="fma-bench-auth-") as tmp:
        workdir = Path(tmp)
        credentials = workdir / "control"
        ensure_control_directory(credentials)
        verifying = {
            auth.TRUST_ENV: (credentials / auth.CA_FILE).read_text(),
            auth.POD_UID_ENV: LAUNCHER_UID,
        }
        with (
            launcher(workdir, "launcher-on", verifying) as on_url,
            launcher(workdir, "launcher-off", {auth.MODE_ENV: auth.MODE_OFF}) as off_url,
        ):
            calls = asyncio.run(measure(on_url, off_url, credentials, args.calls))
        result = {
            "benchmark": "control_auth",
            "calls_per_side": args.calls,
            "call": "DELETE /v2/vllm/instances through PeerCalls, connections kept alive",
            **calls,
            **crypto_cost(credentials),
            "targets": {"added_p50_ms_le_1": calls["added_p50_ms"] <= TARGET_ADDED_P50_MS},
        }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
