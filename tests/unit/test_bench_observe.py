"""The benchmarks' reading of the apiserver's request counters (what "writes per actuation"
is computed from)."""

from __future__ import annotations

from collections import Counter

from bench._observe import apiserver_writes, writes_per

_LABELS = 'dry_run="",group="",version="v1",scope="resource",component="apiserver",code="201"'


def _line(verb: str, resource: str, subresource: str, value: int) -> str:
    labels = f'verb="{verb}",resource="{resource}",subresource="{subresource}",{_LABELS}'
    return f"apiserver_request_total{{{labels}}} {value}"


METRICS = "\n".join(
    [
        "# HELP apiserver_request_total Counter of apiserver requests.",
        "# TYPE apiserver_request_total counter",
        _line("POST", "pods", "", 4),  # creates, as a real 1.20 apiserver labels them
        _line("POST", "pods", "binding", 2),
        _line("PUT", "pods", "", 3),  # the controller's Updates
        _line("PATCH", "pods", "status", 5),
        _line("DELETE", "pods", "", 1),
        _line("PUT", "leases", "", 7),
        _line("GET", "pods", "", 50),
        _line("LIST", "pods", "", 9),
        _line("WATCH", "pods", "", 3),
        "",
    ]
)


def test_writes_are_the_http_methods_that_write_and_reads_do_not_count() -> None:
    assert apiserver_writes(METRICS) == Counter(
        {
            "POST pods": 4,
            "POST pods/binding": 2,
            "PUT pods": 3,
            "PATCH pods/status": 5,
            "DELETE pods": 1,
            "PUT leases": 7,
        }
    )


def test_heartbeats_are_reported_apart_from_what_actuations_cost() -> None:
    report = writes_per(Counter(), apiserver_writes(METRICS), actuations=3)
    assert report["total"] == 15 and report["per_actuation"] == 5.0
    assert report["background"] == {"PUT leases": 7}
    assert "PUT leases" not in report["by_kind"]


def test_the_warm_start_breakdown_reads_vllms_own_timings() -> None:
    from bench.warm_start import phases

    log = (
        "INFO 12-05 04:33:54 [default_loader.py:267] Loading weights took 0.01 seconds\n"
        "(EngineCore_DP0 pid=9) INFO 12-05 04:33:54 [gpu_model_runner.py:2] Model loading took"
        " 0.0020 GiB memory and 0.123 seconds\n"
        "INFO 12-05 04:33:55 [core.py:210] init engine (profile, create kv cache, warmup model)"
        " took 0.26 seconds\n"
        "INFO 12-05 04:33:55 [api_server.py:1] Starting vLLM API server 0 on http://0.0.0.0:8000\n"
    )
    assert phases(log) == {
        "Loading weights": 0.01,
        "Model loading": 0.123,
        "init engine (profile, create kv cache, warmup model)": 0.26,
    }
