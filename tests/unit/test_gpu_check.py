"""The device check's CPU side (issue 15): it skips cleanly without CUDA, and the CUDA rules it
checks on a GPU hold here with doubles: the fork server refuses to fork once CUDA is initialized
in it, and an instance's environment numbers GPUs as NVML does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

from launcher import forkserver
from launcher.gpus import child_env

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "gpu_check.py"


def _run(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_without_cuda_the_script_prints_the_skip_and_exits_0() -> None:
    env = {**os.environ, "PATH": "/usr/bin:/bin"}
    done = _run(env)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert list(out) == ["skipped"]
    assert out["skipped"]


def test_an_nvidia_smi_without_a_driver_is_a_skip_too(tmp_path: Path) -> None:
    fake = tmp_path / "nvidia-smi"
    fake.write_text("#!/bin/sh\nexit 9\n")
    fake.chmod(0o755)
    done = _run({**os.environ, "PATH": f"{tmp_path}:/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    reason = json.loads(done.stdout)["skipped"]
    assert "NVML" in reason or "pynvml" in reason


def _fake_torch(initialized: bool) -> types.ModuleType:
    torch = types.ModuleType("torch")
    torch.cuda = types.SimpleNamespace(is_initialized=lambda: initialized)  # type: ignore[attr-defined]
    return torch


def test_cuda_initialized_reads_only_an_imported_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    assert forkserver.cuda_initialized() is None
    monkeypatch.setitem(sys.modules, "torch", _fake_torch(False))
    assert forkserver.cuda_initialized() is None
    monkeypatch.setitem(sys.modules, "torch", _fake_torch(True))
    assert forkserver.cuda_initialized() == forkserver.CUDA_REFUSAL


def test_a_start_is_refused_without_forking_once_cuda_is_initialized(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "torch", _fake_torch(True))
    read, write = os.pipe()
    server = forkserver._Server(lambda _argv: 0, write, (-1, -1))
    try:
        server.handle({"op": "start", "ref": "i1", "argv": []})
        answer = json.loads(os.read(read, 65536).decode())
    finally:
        os.close(read)
        os.close(write)
    assert answer == {"event": "start_failed", "ref": "i1", "error": forkserver.CUDA_REFUSAL}
    assert server.children == {}


def test_a_fork_server_whose_imports_initialize_cuda_refuses_to_serve(tmp_path: Path) -> None:
    """The real process: its entry's import leaves CUDA initialized (a fake torch says so)."""
    (tmp_path / "cuda_at_import.py").write_text(
        "import sys, types\n"
        "torch = types.ModuleType('torch')\n"
        "torch.cuda = types.SimpleNamespace(is_initialized=lambda: True)\n"
        "sys.modules['torch'] = torch\n"
        "def serve(argv):\n"
        "    return 0\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "launcher.forkserver",
            "--entry",
            "cuda_at_import:serve",
            "--parent",
            str(os.getpid()),
        ],
        env=env,
        cwd=ROOT,
        input="",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    said = json.loads(done.stdout.splitlines()[0])
    assert said == {"event": "import_failed", "error": forkserver.CUDA_REFUSAL}


def test_an_instance_with_gpus_counts_them_in_pci_bus_order() -> None:
    assert child_env({"A": "1"}) == {"A": "1"}
    env = child_env({"CUDA_VISIBLE_DEVICES": "1", "CUDA_DEVICE_ORDER": "FASTEST_FIRST"})
    assert env == {"CUDA_VISIBLE_DEVICES": "1", "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}
