"""`fma-requester` as a process: env configuration, POD_IP binding, stdout vs stderr, SIGTERM."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from localcluster.processes import free_port

POD_IP = "127.0.0.2"  # the hollow kubelet gives each Pod its own loopback address
A = "GPU-aaaaaaaa-0000-0000-0000-000000000001"


@contextmanager
def requester(env: dict[str, str]) -> Iterator[tuple[subprocess.Popen[bytes], str, str]]:
    probes, spi = free_port(POD_IP), free_port(POD_IP)
    full_env = {
        "PATH": "/usr/bin:/bin",
        "POD_IP": POD_IP,
        "PROBES_PORT": str(probes),
        "SPI_PORT": str(spi),
        "PROXY_PORT": str(free_port(POD_IP)),
        "FMA_REQUESTER_GPU_SOURCE": "env",
        "FMA_CONTROL_AUTH": "off",  # control authentication: test_requester_proxy_spi
        **env,
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "launcher.requester.cli"],
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    base_probes, base_spi = f"http://{POD_IP}:{probes}", f"http://{POD_IP}:{spi}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"{base_spi}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the stub never served /healthz"
            time.sleep(0.05)
        yield proc, base_probes, base_spi
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_process_serves_relays_to_stdout_logs_json_to_stderr_and_stops_on_sigterm() -> None:
    with requester({"NVIDIA_VISIBLE_DEVICES": A}) as (proc, probes, spi), httpx.Client() as http:
        assert http.get(f"{probes}/ready").status_code == 503
        assert http.get(f"{spi}/v1/dual-pods/accelerators").json() == [A]
        assert http.post(f"{spi}/v1/become-ready").status_code == 200
        assert http.get(f"{probes}/ready").status_code == 200
        http.post(f"{spi}/v1/set-log?startPos=0", content=b"INFO vllm says hi\n")
        http.post(f"{spi}/v1/set-log?startPos=5", content=b"vllm says hi\nsecond line\n")
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0
    assert out == b"INFO vllm says hi\nsecond line\n"
    records = [json.loads(line) for line in err.decode().splitlines()]
    assert records[0]["msg"] == "serving"
    assert records[0]["host"] == POD_IP
    assert records[0]["gpus"] == [A]
    assert {"ready": True, "event": "ready"}.items() <= records[1].items()
    assert records[-1]["msg"] == "stopping"


def test_nvidia_visible_devices_all_without_nvml_reports_why() -> None:
    with requester({"NVIDIA_VISIBLE_DEVICES": "all"}) as (_, _probes, spi):
        r = httpx.get(f"{spi}/v1/dual-pods/accelerators")
    assert r.status_code == 500
    assert "NVIDIA_VISIBLE_DEVICES=all" in r.text


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"SPI_PORT": "eighty"}, "SPI_PORT"),
        ({"FMA_REQUESTER_GPU_SOURCE": "magic"}, "FMA_REQUESTER_GPU_SOURCE"),
    ],
)
def test_bad_configuration_exits_2_naming_the_variable(env: dict[str, str], needle: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "launcher.requester.cli"],
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2
    assert done.stdout == b""
    assert needle in json.loads(done.stderr.decode().splitlines()[-1])["error"]


def test_a_taken_port_exits_1() -> None:
    with socket.socket() as taken:
        taken.bind((POD_IP, 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "launcher.requester.cli"],
            env={
                "PATH": "/usr/bin:/bin",
                "POD_IP": POD_IP,
                "PROBES_PORT": str(port),
                "FMA_CONTROL_AUTH": "off",
            },
            capture_output=True,
            timeout=30,
            check=False,
        )
    assert done.returncode == 1
    assert "cannot listen" in done.stderr.decode()
