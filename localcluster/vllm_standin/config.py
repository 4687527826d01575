"""What one stand-in serves, and how it behaves in time."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, TextIO

DEFAULT_MAX_MODEL_LEN: Final = 2048


@dataclass(frozen=True, kw_only=True)
class StandinConfig:
    """`startup_delay` is the time before the port listens (real vLLM: 20-60 s on CPU).

    `log` receives the vLLM-like log (stdout for the CLI); None silences it, which a benchmark
    running hundreds of stand-ins in one process wants.
    """

    model: str
    served_model_names: tuple[str, ...] = ()
    host: str = ""
    port: int = 8000
    max_model_len: int | None = None
    startup_delay: float = 0.5
    sleep_delay: float = 0.0
    wake_delay: float = 0.0
    dev_mode: bool = False
    access_log: bool = True
    access_log_skip: frozenset[str] = frozenset()
    """Request paths (without the query) left out of the access log."""
    log: TextIO | None = None
    non_default_args: dict[str, object] = field(default_factory=dict)

    @property
    def model_names(self) -> tuple[str, ...]:
        """As vLLM: `--served-model-name` values, else the `--model` value."""
        return self.served_model_names or (self.model,)

    def model_len(self) -> int:
        """`--max-model-len`, else the model's `max_position_embeddings` (as vLLM derives it)."""
        if self.max_model_len is not None:
            return self.max_model_len
        try:
            config = json.loads((Path(self.model) / "config.json").read_text())
            return int(config["max_position_embeddings"])
        except (OSError, ValueError, KeyError, TypeError):
            return DEFAULT_MAX_MODEL_LEN
