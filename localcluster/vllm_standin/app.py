"""The stand-in's routes, answering as vLLM 0.32's OpenAI server does (contracts §7).

Bodies and status codes follow vLLM's FastAPI app: `/health` 200 with an empty body (also while
asleep), `/is_sleeping`, `/sleep` and `/wake_up` only with `VLLM_SERVER_DEV_MODE=1` (else
FastAPI's 404 `{"detail":"Not Found"}`), vLLM's error envelope
`{"error": {"message", "type", "param", "code"}}` for bad requests and unknown models.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Callable
from typing import Any, Final

from launcher.requester.minihttp import Request, Response, Router
from localcluster.vllm_standin.config import StandinConfig
from localcluster.vllm_standin.engine import Generation, StandinEngine

PAUSE_MODES: Final = ("abort", "wait", "keep")


def json_response(
    status: int, value: object, headers: tuple[tuple[str, str], ...] = ()
) -> Response:
    body = json.dumps(value, separators=(",", ":")).encode()
    return Response(status, body, "application/json", headers)


def error(status: int, err_type: str, message: str, param: str | None = None) -> Response:
    return json_response(
        status, {"error": {"message": message, "type": err_type, "param": param, "code": status}}
    )


def validation_error(message: str, param: str | None = None) -> Response:
    """What vLLM's RequestValidationError handler answers: 400, type "Bad Request"."""
    return error(400, "Bad Request", f"1 validation error:\n  {message}", param)


def _model_card(name: str, root: str, max_model_len: int) -> dict[str, Any]:
    now = int(time.time())
    return {
        "id": name,
        "object": "model",
        "created": now,
        "owned_by": "vllm",
        "root": root,
        "parent": None,
        "max_model_len": max_model_len,
        "permission": [
            {
                "id": f"modelperm-{uuid.uuid4().hex}",
                "object": "model_permission",
                "created": now,
                "allow_create_engine": False,
                "allow_sampling": True,
                "allow_logprobs": True,
                "allow_search_indices": False,
                "allow_view": True,
                "allow_fine_tuning": False,
                "organization": "*",
                "group": None,
                "is_blocking": False,
            }
        ],
    }


def _choice(index: int, gen: Generation) -> dict[str, Any]:
    return {
        "index": index,
        "text": gen.text,
        "logprobs": None,
        "finish_reason": gen.finish_reason,
        "stop_reason": None,
        "token_ids": None,
        "prompt_logprobs": None,
        "prompt_token_ids": None,
        "routed_experts": None,
    }


def fingerprint(config: StandinConfig, version: str) -> str:
    """vLLM's default `system_fingerprint` shape: `vllm-<version>-<8 hex of the config hash>`."""
    key = f"{config.model}\0{config.model_names}\0{config.model_len()}"
    return f"vllm-{version}-{hashlib.sha256(key.encode()).hexdigest()[:8]}"


def completion_body(model: str, gens: list[Generation], system_fingerprint: str) -> dict[str, Any]:
    prompt_tokens = sum(g.prompt_tokens for g in gens)
    completion_tokens = sum(g.completion_tokens for g in gens)
    return {
        "id": f"cmpl-{uuid.uuid4().hex}",
        "object": "text_completion",
        "created": int(time.time()),
        "model": model,
        "choices": [_choice(i, g) for i, g in enumerate(gens)],
        "service_tier": None,
        "system_fingerprint": system_fingerprint,
        "usage": {
            "prompt_tokens": prompt_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "completion_tokens": completion_tokens,
            "prompt_tokens_details": None,
            "completion_tokens_details": None,
        },
        "kv_transfer_params": None,
        "ec_transfer_params": None,
        "metrics": None,
    }


def _stream_body(body: dict[str, Any], gens: list[Generation]) -> Response:
    """A streamed completion as vLLM sends it (one event per token, then `[DONE]`), sent whole:
    the stand-in generates instantly, so there is nothing to gain from streaming for real."""
    events = []
    for index, gen in enumerate(gens):
        words = gen.text.split(" ")[1:]
        for n, word in enumerate(words, start=1):
            choice = {
                "index": index,
                "text": f" {word}",
                "logprobs": None,
                "finish_reason": gen.finish_reason if n == len(words) else None,
                "stop_reason": None,
                "prompt_token_ids": None,
                "token_ids": None,
            }
            chunk = {k: body[k] for k in ("id", "object", "created", "model")}
            chunk["choices"] = [choice]
            if choice["finish_reason"] is not None:  # vLLM stamps only the terminal chunk
                chunk["system_fingerprint"] = body["system_fingerprint"]
            events.append(f"data: {json.dumps(chunk, separators=(',', ':'))}\n\n")
    events.append("data: [DONE]\n\n")
    return Response(200, "".join(events).encode(), "text/event-stream; charset=utf-8")


def _json_body(request: Request) -> dict[str, Any] | Response:
    """The request's JSON object, or vLLM's 400 for a wrong media type or bad JSON."""
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media != "application/json":
        return error(
            400,
            "Bad Request",
            "1 validation error:\n  Unsupported Media Type: Only 'application/json' is allowed",
        )
    try:
        body = json.loads(request.body)
    except ValueError as e:
        return validation_error(f"JSON decode error: {e}", "body")
    if not isinstance(body, dict):
        return validation_error("Input should be a valid dictionary", "body")
    return body


def parse_completion_request(
    request: Request, config: StandinConfig
) -> tuple[str, list[str], int, bool] | Response:
    """(model, prompts, max_tokens, stream), or the error vLLM would answer."""
    body = _json_body(request)
    if isinstance(body, Response):
        return body
    prompt = body.get("prompt")
    prompts = [prompt] if isinstance(prompt, str) else prompt
    if not isinstance(prompts, list) or not prompts or not all(isinstance(p, str) for p in prompts):
        return validation_error("prompt: a string or a non-empty list of strings", "body.prompt")
    max_tokens = body.get("max_tokens", 16)
    max_tokens = 16 if max_tokens is None else max_tokens
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        return validation_error("max_tokens: a whole number >= 1", "body.max_tokens")
    model = body.get("model")
    names = config.model_names
    if model and model not in names:
        return error(
            404,
            "NotFoundError",
            f"The model `{model}` does not exist. Valid aliases: {', '.join(names)}.",
            "model",
        )
    return names[0], prompts, max_tokens, bool(body.get("stream"))


def _dev_routes(router: Router, engine: StandinEngine) -> None:
    async def sleep(request: Request) -> Response:
        raw_level = request.query_first("level") or "1"
        mode = request.query_first("mode") or "abort"
        if not raw_level.lstrip("-").isdigit() or not 0 <= int(raw_level) <= 2:
            return validation_error(
                f"level: want an integer 0..2, got {raw_level!r}", "query.level"
            )
        if mode not in PAUSE_MODES:
            return validation_error(f"mode: want one of {PAUSE_MODES}, got {mode!r}", "query.mode")
        level = int(raw_level)
        await engine.sleep(level)
        return json_response(200, {"status": "sleeping", "level": level})

    async def wake_up(request: Request) -> Response:
        tags = list(request.query.get("tags", [])) or None
        fully_awake = await engine.wake_up(tags)
        return json_response(200, {"status": "awake" if fully_awake else "sleeping", "tags": tags})

    async def is_sleeping(_: Request) -> Response:
        return json_response(200, {"is_sleeping": engine.is_sleeping()})

    router.add("POST", "/sleep", sleep)
    router.add("POST", "/wake_up", wake_up)
    router.add("GET", "/is_sleeping", is_sleeping)


class _Counters:
    """A few of vLLM's own Prometheus series (same names and labels), so that a scrape of the
    stand-in looks like a scrape of vLLM (`vllm:` prefix, `model_name` label)."""

    def __init__(self) -> None:
        self.requests: dict[str, int] = {}
        self.generated: dict[str, int] = {}

    def count(self, model: str, gens: list[Generation]) -> None:
        self.requests[model] = self.requests.get(model, 0) + len(gens)
        tokens = sum(g.completion_tokens for g in gens)
        self.generated[model] = self.generated.get(model, 0) + tokens

    def exposition(self, default_model: str) -> str:
        models = sorted(set(self.requests) | {default_model})
        lines = [
            "# HELP vllm:num_requests_running Number of requests in model execution batches.",
            "# TYPE vllm:num_requests_running gauge",
            *(f'vllm:num_requests_running{{model_name="{m}"}} 0.0' for m in models),
            "# HELP vllm:request_success_total Count of successfully processed requests.",
            "# TYPE vllm:request_success_total counter",
            *(
                f'vllm:request_success_total{{finished_reason="length",model_name="{m}"}} '
                f"{float(self.requests.get(m, 0))}"
                for m in models
            ),
            "# HELP vllm:generation_tokens_total Number of generation tokens processed.",
            "# TYPE vllm:generation_tokens_total counter",
            *(
                f'vllm:generation_tokens_total{{model_name="{m}"}} '
                f"{float(self.generated.get(m, 0))}"
                for m in models
            ),
        ]
        return "\n".join(lines) + "\n"


def build_router(
    config: StandinConfig, engine: StandinEngine, version: str, log: Callable[[str, str], None]
) -> Router:
    stamp = fingerprint(config, version)
    router = Router(
        not_found=json_response(404, {"detail": "Not Found"}),
        method_not_allowed=json_response(405, {"detail": "Method Not Allowed"}),
    )

    async def health(_: Request) -> Response:
        return Response(200, b"", None)

    async def show_version(_: Request) -> Response:
        return json_response(200, {"version": version})

    async def models(_: Request) -> Response:
        cards = [_model_card(n, config.model, config.model_len()) for n in config.model_names]
        return json_response(200, {"object": "list", "data": cards})

    counters = _Counters()

    async def completions(request: Request) -> Response:
        parsed = parse_completion_request(request, config)
        if isinstance(parsed, Response):
            return parsed
        model, prompts, max_tokens, stream = parsed
        if engine.is_sleeping():
            log("INFO", "Request received while the engine sleeps; it waits for wake-up.")
        gens = [await engine.generate(model, p, max_tokens) for p in prompts]
        counters.count(model, gens)
        body = completion_body(model, gens, stamp)
        return _stream_body(body, gens) if stream else json_response(200, body)

    async def metrics(_: Request) -> Response:
        text = counters.exposition(config.model_names[0])
        return Response(200, text.encode(), "text/plain; version=0.0.4; charset=utf-8")

    router.add("GET", "/health", health)
    router.add("GET", "/ping", health)
    router.add("POST", "/ping", health)
    router.add("GET", "/version", show_version)
    router.add("GET", "/v1/models", models)
    router.add("POST", "/v1/completions", completions)
    router.add("GET", "/metrics", metrics)
    if config.dev_mode:
        _dev_routes(router, engine)
    return router
