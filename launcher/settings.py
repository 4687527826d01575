"""The launcher's settings, with their documented defaults, in one typed place."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from contract.launcher import LAUNCHER_PORT
from controlauth import Verifier

DEFAULT_ENTRY: Final = "launcher.vllm_entry:serve"


@dataclass(frozen=True, kw_only=True)
class Settings:
    host: str = "0.0.0.0"
    port: int = LAUNCHER_PORT
    """The launcher API port; a fixed contract (contracts §2.5)."""
    log_level: str = "info"
    mock_gpus: bool = False
    mock_gpu_count: int = 8
    control_auth: Verifier | None = None
    """Checks the controller's token on mutating endpoints; None leaves them open, as the
    reference does (the CLI builds it from the environment and refuses to start without one
    unless `FMA_CONTROL_AUTH=off`)."""
    start_timeout: float = 600.0
    """Seconds an instance may take to answer /health before it is failed and stopped."""
    stop_grace: float = 10.0
    """Seconds between SIGTERM and SIGKILL when an instance is stopped (reference: 10)."""
    probe_interval: float = 1.0
    """Seconds between sleep-state probes of a ready instance (start-up: 4 times as often)."""
    log_dir: Path = field(default_factory=lambda: Path(tempfile.gettempdir()))
    instance_entry: str = DEFAULT_ENTRY
    """`module:function` run in each forked child; tests substitute a cheap fake."""
    watch_buffer: int = 1000
    forkserver_timeout: float = 300.0
    """Seconds the fork server may take to import the entry module (vLLM: 6-11 s)."""
