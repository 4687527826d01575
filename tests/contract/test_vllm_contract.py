"""One set of checks, run against the vLLM stand-in and against real vLLM, so they cannot drift.

Each check is a behaviour the controller, the launcher or our tests rely on (contracts §7): how
`/health` behaves from start-up on and while asleep, the sleep/wake state machine, a request sent
to a sleeping server waiting for the wake-up, `/v1/models`, vLLM's error envelope, dev endpoints
hidden without `VLLM_SERVER_DEV_MODE=1`, and a bad option failing the start. Response shapes are
compared by key sets, so a field vLLM adds or drops shows up here first.

Each target is started once per module (a real vLLM start is ~20 s) and once more without dev
mode for the last check. The real-vLLM parameter is skipped, with the reason, only where vllm or
the tiny model is missing; `hack/setup.sh` installs both, so CI runs it.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import httpx
import pytest

from localcluster.vllm_standin import vllm_options
from tests.contract.vllm_targets import (
    MAX_MODEL_LEN,
    SERVED_NAME,
    STANDIN_MODULE,
    VLLM_MODULE,
    Target,
    stub_model_dir,
    tiny_model_dir,
    vllm_missing_reason,
    vllm_python,
)

pytestmark = pytest.mark.timeout(900)

MODEL_CARD_KEYS: Final = {
    "id", "object", "created", "owned_by", "root", "parent", "max_model_len", "permission",
}  # fmt: skip
COMPLETION_KEYS: Final = {
    "id", "object", "created", "model", "choices", "service_tier", "system_fingerprint", "usage",
    "kv_transfer_params", "ec_transfer_params", "metrics",
}  # fmt: skip
CHOICE_KEYS: Final = {
    "index", "text", "logprobs", "finish_reason", "stop_reason", "token_ids", "prompt_logprobs",
    "prompt_token_ids", "routed_experts",
}  # fmt: skip
ASLEEP_WAIT: Final = 2.0


@pytest.fixture(scope="module", params=["standin", "vllm"])
def target(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Target]:
    workdir = tmp_path_factory.mktemp(request.param)
    model_dir, why_no_model = tiny_model_dir()
    if request.param == "vllm":
        reason = vllm_missing_reason() or (why_no_model if model_dir is None else None)
        if reason:
            pytest.skip(reason)
        assert model_dir is not None
        t = Target("vllm", VLLM_MODULE, vllm_python(), model_dir, workdir)
    else:
        model = model_dir if model_dir is not None else stub_model_dir(workdir)
        t = Target("standin", STANDIN_MODULE, sys.executable, model, workdir)
    # Before any server runs, so two vLLM processes never coexist.
    t.bad_option = t.run_bad_option()
    yield t
    t.stop()


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=60.0) as client:
        yield client


def complete(http: httpx.Client, base: str, **body: Any) -> httpx.Response:
    payload = {"model": SERVED_NAME, "prompt": "Hello, my name is", "max_tokens": 4, **body}
    return http.post(f"{base}/v1/completions", json=payload)


def test_health_refuses_connections_until_it_answers_200(
    target: Target, http: httpx.Client
) -> None:
    base = target.ensure(dev_mode=True)
    assert target.startup_observations, "the first poll already succeeded; start-up was not seen"
    assert set(target.startup_observations) == {"refused"}, target.startup_observations
    response = http.get(f"{base}/health")
    assert response.status_code == 200
    assert response.content == b""


def test_models_lists_the_served_model(target: Target, http: httpx.Client) -> None:
    base = target.ensure(dev_mode=True)
    body = http.get(f"{base}/v1/models").json()
    assert body["object"] == "list"
    [card] = body["data"]
    assert set(card) == MODEL_CARD_KEYS
    assert card["id"] == SERVED_NAME
    assert card["object"] == "model"
    assert card["root"] == str(target.model_dir)
    assert card["max_model_len"] == MAX_MODEL_LEN


def test_completion_returns_text(target: Target, http: httpx.Client) -> None:
    base = target.ensure(dev_mode=True)
    response = complete(http, base)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == COMPLETION_KEYS
    assert body["object"] == "text_completion"
    assert body["model"] == SERVED_NAME
    [choice] = body["choices"]
    assert set(choice) == CHOICE_KEYS
    assert isinstance(choice["text"], str)
    assert 1 <= body["usage"]["completion_tokens"] <= 4
    assert body["system_fingerprint"].startswith(f"vllm-{vllm_options.VLLM_VERSION}-")


STREAM_CHOICE_KEYS: Final = {
    "index", "text", "logprobs", "finish_reason", "stop_reason", "prompt_token_ids", "token_ids",
}  # fmt: skip


def test_streamed_completion_is_server_sent_events(target: Target, http: httpx.Client) -> None:
    base = target.ensure(dev_mode=True)
    response = complete(http, base, stream=True)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = [e for e in response.text.split("\n\n") if e]
    assert all(e.startswith("data: ") for e in events)
    assert events[-1] == "data: [DONE]"
    chunks = [json.loads(e.removeprefix("data: ")) for e in events[:-1]]
    assert chunks
    for chunk in chunks[:-1]:
        assert set(chunk) == {"id", "object", "created", "model", "choices"}
    assert set(chunks[-1]) == {"id", "object", "created", "model", "choices", "system_fingerprint"}
    assert chunks[-1]["system_fingerprint"].startswith(f"vllm-{vllm_options.VLLM_VERSION}-")
    for chunk in chunks:
        assert chunk["model"] == SERVED_NAME
        [choice] = chunk["choices"]
        assert set(choice) == STREAM_CHOICE_KEYS
    assert len({c["id"] for c in chunks}) == 1
    assert chunks[-1]["choices"][0]["finish_reason"] is not None
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks[:-1])


def test_metrics_are_prometheus_text_with_vllms_series(target: Target, http: httpx.Client) -> None:
    """What a user's PodMonitor scrapes through the requester (the series fma users chart)."""
    base = target.ensure(dev_mode=True)
    assert complete(http, base).status_code == 200
    response = http.get(f"{base}/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    totals: dict[str, float] = {}
    for line in response.text.splitlines():
        if line.startswith("vllm:") and f'model_name="{SERVED_NAME}"' in line:
            name = line.split("{", 1)[0]
            totals[name] = totals.get(name, 0.0) + float(line.rsplit(" ", 1)[1])
    for name in ("vllm:num_requests_running", "vllm:request_success_total"):
        assert name in totals, f"{name} missing from /metrics"
    assert totals["vllm:request_success_total"] >= 1


def test_version(target: Target, http: httpx.Client) -> None:
    base = target.ensure(dev_mode=True)
    assert http.get(f"{base}/version").json() == {"version": vllm_options.VLLM_VERSION}


def test_unknown_model_is_a_404_in_vllms_error_envelope(target: Target, http: httpx.Client) -> None:
    base = target.ensure(dev_mode=True)
    response = complete(http, base, model="no-such-model")
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["type"] == "NotFoundError"
    assert error["code"] == 404
    assert "no-such-model" in error["message"]


def test_unknown_route_is_fastapis_404(target: Target, http: httpx.Client) -> None:
    base = target.ensure(dev_mode=True)
    response = http.get(f"{base}/no/such/route")
    assert response.status_code == 404
    assert response.json() == {"detail": "Not Found"}


def test_sleep_level_out_of_range_is_a_400(target: Target, http: httpx.Client) -> None:
    base = target.ensure(dev_mode=True)
    response = http.post(f"{base}/sleep", params={"level": "3"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == 400
    assert http.get(f"{base}/is_sleeping").json() == {"is_sleeping": False}


def test_request_sent_while_asleep_waits_for_wake_up(target: Target, http: httpx.Client) -> None:
    base = target.ensure(dev_mode=True)
    assert http.get(f"{base}/is_sleeping").json() == {"is_sleeping": False}
    slept = http.post(f"{base}/sleep", params={"level": "1"})
    assert slept.status_code == 200
    assert slept.json() == {"status": "sleeping", "level": 1}
    assert http.get(f"{base}/is_sleeping").json() == {"is_sleeping": True}
    health = http.get(f"{base}/health")
    assert (health.status_code, health.content) == (200, b"")
    with concurrent.futures.ThreadPoolExecutor(1) as pool, httpx.Client(timeout=120) as other:
        pending = pool.submit(complete, other, base)
        with pytest.raises(concurrent.futures.TimeoutError):
            pending.result(timeout=ASLEEP_WAIT)
        woke = http.post(f"{base}/wake_up")
        assert woke.status_code == 200
        assert woke.json() == {"status": "awake", "tags": None}
        finished = pending.result(timeout=90)
    assert finished.status_code == 200, finished.text
    assert isinstance(finished.json()["choices"][0]["text"], str)
    assert http.get(f"{base}/is_sleeping").json() == {"is_sleeping": False}


def test_wake_up_by_tags_is_awake_only_when_all_tags_are(
    target: Target, http: httpx.Client
) -> None:
    base = target.ensure(dev_mode=True)
    assert http.post(f"{base}/sleep").status_code == 200
    partial = http.post(f"{base}/wake_up", params={"tags": "weights"})
    assert partial.json() == {"status": "sleeping", "tags": ["weights"]}
    assert http.get(f"{base}/is_sleeping").json() == {"is_sleeping": True}
    rest = http.post(f"{base}/wake_up", params={"tags": "kv_cache"})
    assert rest.json() == {"status": "awake", "tags": ["kv_cache"]}
    assert http.get(f"{base}/is_sleeping").json() == {"is_sleeping": False}
    assert complete(http, base).status_code == 200


def test_sleep_level_0_pauses_scheduling_only(target: Target, http: httpx.Client) -> None:
    base = target.ensure(dev_mode=True)
    slept = http.post(f"{base}/sleep", params={"level": "0"})
    assert slept.json() == {"status": "sleeping", "level": 0}
    assert http.get(f"{base}/is_sleeping").json() == {"is_sleeping": True}
    woke = http.post(f"{base}/wake_up", params={"tags": "scheduling"})
    assert woke.json() == {"status": "awake", "tags": ["scheduling"]}
    assert http.get(f"{base}/is_sleeping").json() == {"is_sleeping": False}


def test_sleeping_twice_needs_one_wake_up(target: Target, http: httpx.Client) -> None:
    base = target.ensure(dev_mode=True)
    assert http.post(f"{base}/sleep").status_code == 200
    assert http.post(f"{base}/sleep").status_code == 200
    assert http.post(f"{base}/wake_up").json() == {"status": "awake", "tags": None}
    assert http.get(f"{base}/is_sleeping").json() == {"is_sleeping": False}
    assert http.post(f"{base}/wake_up").json() == {"status": "awake", "tags": None}


def test_bad_option_fails_the_start_with_argparses_error(target: Target) -> None:
    assert target.bad_option is not None
    code, output = target.bad_option
    assert code == 2, output[-2000:]
    assert "error: unrecognized arguments: --no-such-flag" in output, output[-2000:]


def test_dev_endpoints_are_404_without_dev_mode(target: Target, http: httpx.Client) -> None:
    """Last in the module: it restarts the target without VLLM_SERVER_DEV_MODE."""
    base = target.ensure(dev_mode=False)
    assert http.post(f"{base}/sleep").status_code == 404
    assert http.post(f"{base}/wake_up").status_code == 404
    assert http.get(f"{base}/is_sleeping").status_code == 404
    assert http.get(f"{base}/health").status_code == 200
    assert complete(http, base).status_code == 200


def test_standin_knows_exactly_vllms_options() -> None:
    """The stand-in's copy of vLLM's option vocabulary equals the installed vLLM's."""
    if reason := vllm_missing_reason():
        pytest.skip(reason)
    repo = Path(__file__).resolve().parents[2]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "vocabulary.json"
        script = (
            "import json, sys; from localcluster.vllm_standin.gen_options import live_vocabulary;"
            f"open({str(out)!r}, 'w').write(json.dumps(live_vocabulary()))"
        )
        env = {**os.environ, "PYTHONPATH": str(repo)}
        subprocess.run(
            [vllm_python(), "-c", script], env=env, check=True, timeout=300, capture_output=True
        )
        version, options, _ = json.loads(out.read_text())
    regenerate = "regenerate with: python -m localcluster.vllm_standin.gen_options"
    assert version == vllm_options.VLLM_VERSION, regenerate
    live = {k: tuple(v) for k, v in options.items()}
    assert live == vllm_options.OPTIONS, regenerate
