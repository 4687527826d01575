"""Fixtures shared by the tests that run real vLLM instances."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def vllm_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Caches and scratch space in a test directory; a small KV cache (1 GiB)."""
    root = tmp_path_factory.mktemp("vllm")
    (root / "tmp").mkdir()
    return {
        "VLLM_CPU_KVCACHE_SPACE": "1",
        "VLLM_CACHE_ROOT": str(root / "cache"),
        "TORCHINDUCTOR_CACHE_DIR": str(root / "inductor"),
        "TMPDIR": str(root / "tmp"),
        "VLLM_USAGE_STATS_SERVER": "http://127.0.0.1:9",
        "VLLM_NO_USAGE_STATS": "1",
        "DO_NOT_TRACK": "1",
    }
