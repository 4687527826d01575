"""A faithful double of vLLM's OpenAI server, for tests and benchmarks that need many of them.

Real vLLM on CPU needs about 2.5 GB and 20 s per instance; the stand-in needs a few MB and
starts when told. It answers the endpoints fma relies on (contracts §7) as vLLM 0.32 does, takes
vLLM's command line, and is held to real vLLM by `tests/contract/test_vllm_contract.py`, which
runs the same checks against both. Use it as a process (`fma-vllm-standin`, same argv as
`python -m vllm.entrypoints.openai.api_server`) or in-process (`serve_standin`).
"""

from localcluster.vllm_standin.cli import main
from localcluster.vllm_standin.config import StandinConfig
from localcluster.vllm_standin.engine import StandinEngine
from localcluster.vllm_standin.server import StandinHandle, serve_standin

__all__ = ["StandinConfig", "StandinEngine", "StandinHandle", "main", "serve_standin"]
