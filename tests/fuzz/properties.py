"""The hostile inputs (hypothesis strategies) and what every answer must satisfy, per API.

Every property asserts the same four things about each generated call:
- no 5xx, and no crash (`harness.Tally` records both);
- a refusal (4xx) changes no state: the launcher's instances, event revision and logs, the
  stub's readiness, accepted log length and proxy target;
- a refusal for a field at fault names that field (or `body` when the body as a whole is not
  JSON), so the caller can tell what to fix;
- a body over the server's limit gets 413 naming the limit.

`PROPERTIES` lists them with a weight: the share of the example budget each gets (the huge-body
ones move megabytes per example, so they get fewer). `fuzz_settings` derives the settings from
the `fma-fuzz` hypothesis profile and `FMA_FUZZ_EXAMPLES` (the total across all properties).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import quote

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contract.launcher import MAX_BODY_BYTES as LAUNCHER_MAX_BODY
from contract.requester import SPI_MAX_BODY_BYTES
from tests.fuzz.harness import GPU_UUIDS, LOG_BYTES, LOG_ID, Answer, Targets
from webhook.app import MAX_BODY_BYTES as WEBHOOK_MAX_BODY

EXAMPLES_ENV: Final = "FMA_FUZZ_EXAMPLES"
CI_EXAMPLES: Final = 300
"""The total for a test run: a few hundred inputs, well under a minute."""

settings.register_profile(
    "fma-fuzz",
    deadline=None,  # timing varies across machines; a slow answer is not a failure here
    database=None,  # every run explores afresh; nothing is written into the repository
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
)


def total_examples() -> int:
    return int(os.environ.get(EXAMPLES_ENV) or CI_EXAMPLES)


def fuzz_settings(examples: int) -> settings:
    return settings(settings.get_profile("fma-fuzz"), max_examples=max(1, examples))


# --- generic hostile JSON ------------------------------------------------------------------

JSON_SCALARS: Final = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
JSON_VALUES: Final = st.recursive(
    JSON_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def _dumps(value: Any) -> bytes:
    return json.dumps(value).encode()


MALFORMED_JSON: Final = st.one_of(
    st.binary(max_size=300),
    JSON_VALUES.map(_dumps).flatmap(
        lambda good: st.integers(0, max(0, len(good) - 1)).map(lambda cut: good[:cut])
    ),
    st.integers(1, 100_000).map(lambda depth: b"[" * depth + b"]" * depth),
    st.integers(1, 100_000).map(lambda depth: b'{"a":' * depth + b"1" + b"}" * depth),
    st.sampled_from(
        [
            b"",
            b"{",
            b'{"options": "\xff\xfe"}',
            b'{"options": "\\ud800"}',
            b"NaN",
            b"[1e999]",
            b'{"port": 1e400}',
            b"\x00",
            b"\xef\xbb\xbf{}",
        ]
    ),
)
"""Bytes that are not the JSON object an API wants: garbage, truncated JSON, deep nesting."""


def wrong_json_types(*, nullable: bool = True) -> st.SearchStrategy[Any]:
    """JSON values of every type, for a field that wants a string / list / object."""
    scalars = st.booleans() | st.integers() | st.floats(allow_nan=False)
    values = (
        scalars
        | st.lists(st.integers(), max_size=3)
        | st.dictionaries(st.text(max_size=4), st.integers(), max_size=3)
    )
    return values | st.none() if nullable else values


def _wrong_type_for(expected: type) -> st.SearchStrategy[Any]:
    """A JSON value of a type other than `expected` (never null: null may be allowed)."""
    candidates: list[st.SearchStrategy[Any]] = [
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=10),
        st.lists(st.integers(), max_size=3),
        st.dictionaries(st.text(max_size=4), st.integers(), max_size=3),
    ]
    kinds = {bool: 0, int: 1, float: 2, str: 3, list: 4, dict: 5}
    keep = [c for i, c in enumerate(candidates) if i != kinds[expected]]
    if expected is float:  # an integer is a fine float
        keep = [c for i, c in enumerate(candidates) if i not in (1, 2)]
    return st.one_of(keep)


@dataclass(frozen=True)
class Case:
    """One generated call: where, what, and the field a refusal must name (None: any)."""

    method: str
    path: str
    body: bytes
    field: str | None


def _assert_no_5xx(answer: Answer | None, what: str) -> None:
    if answer is not None:
        assert answer.status < 500, f"{what}: {answer.status} {answer.text[:300]}"


def _is_json(body: bytes) -> bool:
    try:
        json.loads(body)
    except (ValueError, RecursionError):
        return False
    return True


def _assert_names(answer: Answer, field: str | None, what: str, body: bytes | None = None) -> None:
    """The refusal names `field`; with `body` given and not JSON, it says the body is at fault."""
    if field is not None:
        assert field in answer.text, f"{what}: the refusal does not name {field!r}: {answer.text}"
    elif body is not None and not _is_json(body):
        named = "body" in answer.text or "JSON" in answer.text
        assert named, f"{what}: the refusal of a non-JSON body does not say so: {answer.text}"


def _assert_too_large(answer: Answer | None, limit: int, what: str) -> None:
    assert answer is not None, f"{what}: no answer to a body over the limit"
    assert answer.status == 413, f"{what}: {answer.status} {answer.text[:200]}"
    assert str(limit) in answer.text, f"{what}: the 413 does not name the limit: {answer.text}"


# --- the launcher ------------------------------------------------------------------------------

_INSTANCES: Final = "/v2/vllm/instances"
_VALID_CONFIG: Final = {
    "options": "--model /m --port 9000",
    "gpu_uuids": [GPU_UUIDS[0]],
    "env_vars": {"A": "1"},
    "annotations": {"isc-name": "x"},
}
_CONFIG_TYPES: Final = {"options": str, "gpu_uuids": list, "env_vars": dict, "annotations": dict}


def _create_path(instance_id: str | None) -> tuple[str, str]:
    if instance_id is None:
        return "POST", _INSTANCES
    return "PUT", f"{_INSTANCES}/{quote(instance_id, safe='')}"


_INSTANCE_IDS: Final = st.none() | st.text(
    st.characters(codec="utf-8", exclude_characters="/"), min_size=1, max_size=20
)


@st.composite
def _config_with_a_wrong_type(draw: st.DrawFn) -> Case:
    """A good config with one field (or one element of it) of the wrong JSON type."""
    body: dict[str, Any] = dict(_VALID_CONFIG)
    field = draw(st.sampled_from(sorted(_CONFIG_TYPES)))
    expected = _CONFIG_TYPES[field]
    where = draw(st.sampled_from(["field", "element"])) if expected is not str else "field"
    if where == "field":
        body[field] = draw(_wrong_type_for(expected).filter(lambda v: v is not None))
    elif expected is list:
        body[field] = [*body[field], draw(_wrong_type_for(str))]
    else:
        body[field] = {**body[field], draw(st.text(max_size=5)): draw(_wrong_type_for(str))}
    method, path = _create_path(draw(_INSTANCE_IDS))
    return Case(method, path, _dumps(body), field)


_BAD_OPTIONS: Final = st.one_of(
    st.builds(lambda a, b: f"{a} '{b}", st.text(max_size=10), st.text(max_size=10)),
    st.builds(lambda a: f'--x "{a}', st.text(max_size=10)),
    st.builds(
        lambda port: f"--model m --port {port}",
        st.integers().filter(lambda p: not 0 < p < 65536).map(str)
        | st.text("0123456789", min_size=19, max_size=5000)
        | st.text("abc.-+x", min_size=1, max_size=8),
    ),
    st.just("--port"),
    st.just("trailing \\"),
)


@st.composite
def _config_with_a_bad_value(draw: st.DrawFn) -> Case:
    """Right types, values the launcher must refuse: unsplittable options, a bad `--port`,
    unknown GPUs, a reserved or blank instance id."""
    body: dict[str, Any] = dict(_VALID_CONFIG)
    kind = draw(st.sampled_from(["options", "gpu_uuids", "id"]))
    # A usable id, so that the refusal is about the field this case breaks.
    instance_id = draw(_INSTANCE_IDS.filter(lambda i: i is None or (i.strip() and i != "watch")))
    field: str = kind
    if kind == "options":
        body["options"] = draw(_BAD_OPTIONS)
    elif kind == "gpu_uuids":
        unknown = st.text(max_size=30).filter(lambda u: u not in GPU_UUIDS)
        body["gpu_uuids"] = draw(st.lists(unknown, min_size=1, max_size=3))
    else:
        instance_id = draw(st.sampled_from(["watch", " ", "\t", "\u3000"]))
        field = "instance id"
    method, path = _create_path(instance_id)
    return Case(method, path, _dumps(body), field)


LAUNCHER_CREATES: Final = st.one_of(
    st.builds(
        lambda ids, body: Case(*_create_path(ids), body, None), _INSTANCE_IDS, MALFORMED_JSON
    ),
    st.builds(
        lambda ids, value: Case(*_create_path(ids), _dumps(value), None), _INSTANCE_IDS, JSON_VALUES
    ),
    _config_with_a_wrong_type(),
    _config_with_a_bad_value(),
)


def check_launcher_create(targets: Targets, case: Case) -> None:
    launcher = targets.launcher
    before = launcher.state()
    answer = launcher.request(
        case.method, case.path, content=case.body, headers={"content-type": "application/json"}
    )
    what = f"{case.method} {case.path} {case.body[:120]!r}"
    _assert_no_5xx(answer, what)
    if answer.status == 201:  # an accepted create (valid by chance): undo it
        launcher.forget(str(json.loads(answer.body)["instance_id"]))
        return
    assert launcher.state() == before, f"{what}: a refused create changed the launcher's state"
    if answer.status in (400, 422):
        _assert_names(answer, case.field, what, case.body)


_RANGE_CHARS: Final = st.characters(min_codepoint=0x20, max_codepoint=0x7E)
RANGE_HEADERS: Final = st.one_of(
    st.none(),
    st.builds(
        lambda start, end: f"bytes={start}-{end}",
        st.integers(min_value=0) | st.text("0123456789", min_size=1, max_size=6000),
        st.just("") | st.integers().map(str) | st.text("0123456789", min_size=1, max_size=6000),
    ),
    st.builds(lambda n: f"bytes=-{n}", st.integers(min_value=0)),
    st.builds(lambda a, b: f"bytes={a}-{b},{b}-", st.integers(0, 99), st.integers(0, 99)),
    st.text(_RANGE_CHARS, max_size=40),
    st.text(_RANGE_CHARS, max_size=40).map(lambda t: f"bytes={t}"),
)
LOG_SIZE: Final = len(LOG_BYTES)


def check_launcher_log(targets: Targets, range_header: str | None) -> None:
    launcher = targets.launcher
    before = launcher.state()
    headers = {} if range_header is None else {"Range": range_header}
    answer = launcher.request("GET", f"{_INSTANCES}/{LOG_ID}/log", headers=headers)
    what = f"Range {range_header!r:.120}"
    _assert_no_5xx(answer, what)
    assert answer.status in (200, 206, 400, 416), f"{what}: {answer.status}"
    assert launcher.state() == before, f"{what}: reading the log changed the launcher's state"
    if answer.status == 400:
        _assert_names(answer, "Range", what)
    if answer.status in (200, 206):
        assert LOG_BYTES.find(answer.body) >= 0, f"{what}: the body is not a slice of the log"
    if answer.status == 416:
        assert answer.headers["content-range"] == f"bytes */{LOG_SIZE}", what


_NOT_INTEGERS: Final = st.text("abcxyz_:/.eE", min_size=1, max_size=10)
LAUNCHER_QUERIES: Final = st.one_of(
    st.tuples(st.just("/watch"), st.just("since"), _NOT_INTEGERS | st.integers(max_value=-1)),
    # More digits than an integer may have (4,300); shorter ones are revisions to wait for.
    st.tuples(
        st.just("/watch"), st.just("since"), st.text("0123456789", min_size=4300).map("9".__add__)
    ),
    st.tuples(st.just(""), st.just("detail"), st.text(_RANGE_CHARS, max_size=10)),
)


def check_launcher_query(targets: Targets, query: tuple[str, str, object]) -> None:
    """Query parameters: `since` that cannot be a revision (a valid one would start a watch
    stream, which never ends) and `detail` of any text."""
    suffix, name, value = query
    launcher = targets.launcher
    before = launcher.state()
    answer = launcher.request("GET", _INSTANCES + suffix, params={name: str(value)})
    what = f"GET {suffix}?{name}={value!r:.80}"
    _assert_no_5xx(answer, what)
    assert launcher.state() == before, what
    if answer.status == 422:
        _assert_names(answer, name, what)
    if name == "since":
        assert answer.status in (410, 422), f"{what}: {answer.status}"


@dataclass(frozen=True)
class Huge:
    size: int
    chunked: bool


def _huge(limit: int) -> st.SearchStrategy[Huge]:
    sizes = st.integers(limit - 64, limit + 64) | st.integers(limit + 1, limit + (1 << 20))
    return st.builds(Huge, sizes, st.booleans())


def check_launcher_huge(targets: Targets, huge: Huge) -> None:
    launcher = targets.launcher
    before = launcher.state()
    body = b"x" * huge.size
    if huge.chunked:
        chunks = [body[i : i + 65536] for i in range(0, len(body), 65536)]
        answer = launcher.request("POST", _INSTANCES, chunks=chunks)
    else:
        answer = launcher.request("POST", _INSTANCES, content=body)
    what = f"{huge}"
    _assert_no_5xx(answer, what)
    if huge.size > LAUNCHER_MAX_BODY:
        _assert_too_large(answer, LAUNCHER_MAX_BODY, what)
    assert launcher.state() == before, what


# --- the requester stub ------------------------------------------------------------------------

_START_POS: Final = st.one_of(
    st.none(),
    st.integers(-5, 400).map(str),
    st.integers().map(str),
    st.text("0123456789", min_size=19, max_size=6000),
    st.text(max_size=12),
)


def check_set_log(targets: Targets, start_pos: str | None, body: bytes, chunked: bool) -> None:
    stub = targets.stub
    before = stub.state()
    query = "" if start_pos is None else f"?startPos={quote(start_pos, safe='')}"
    answer = stub.request("POST", f"/v1/set-log{query}", body, chunked=chunked)
    what = f"set-log startPos={start_pos!r:.60} body={len(body)}"
    _assert_no_5xx(answer, what)
    assert answer is not None, f"{what}: no answer"
    after = stub.state()
    assert answer.headers.get("x-fma-log-length") == str(after[1]), what
    if answer.status == 400:
        assert after == before, f"{what}: a refusal changed state"
        _assert_names(answer, "startPos", what)
    else:
        assert answer.status == 200, f"{what}: {answer.status}"
        assert start_pos is not None
        accepted = max(before.accepted, int(start_pos) + len(body))
        grown = accepted - before.accepted
        assert after == before._replace(accepted=accepted, written=before.written + grown), what


_PROXY_FIELDS: Final = {"address": str, "port": int}


@st.composite
def _proxy_config(draw: st.DrawFn) -> Case:
    """`PUT /v1/proxy/config` bodies: malformed, any JSON, one field of a wrong type, a port
    outside 1-65535, an address that is neither an IP nor a host name."""
    kind = draw(st.sampled_from(["malformed", "json", "type", "port", "address"]))
    if kind == "malformed":
        return Case("PUT", "/v1/proxy/config", draw(MALFORMED_JSON), None)
    if kind == "json":
        return Case("PUT", "/v1/proxy/config", _dumps(draw(JSON_VALUES)), None)
    body: dict[str, Any] = {"address": "10.0.0.7", "port": 8000}
    field = kind
    if kind == "type":
        field = draw(st.sampled_from(sorted(_PROXY_FIELDS)))
        body[field] = draw(_wrong_type_for(_PROXY_FIELDS[field]) | st.none())
    elif kind == "port":
        body["port"] = draw(st.integers().filter(lambda p: not 1 <= p <= 65535))
    else:
        body["address"] = draw(
            st.text(max_size=300).filter(lambda a: not a or any(c in a for c in " /_@!\x00"))
        )
    return Case("PUT", "/v1/proxy/config", _dumps(body), field)


def check_proxy_config(targets: Targets, case: Case) -> None:
    stub = targets.stub
    before = stub.state()
    answer = stub.request(case.method, case.path, case.body)
    what = f"proxy config {case.body[:120]!r}"
    _assert_no_5xx(answer, what)
    assert answer is not None, f"{what}: no answer"
    if answer.status >= 400:
        assert stub.state() == before, f"{what}: a refusal changed state"
    if answer.status == 400:
        _assert_names(answer, case.field, what, case.body)


_STUB_PATHS: Final = st.one_of(
    st.sampled_from(
        [
            "/ready",
            "/healthz",
            "/v1/dual-pods/accelerators",
            "/v1/dual-pods/accelerator-memory-usage",
            "/v1/become-ready",
            "/v1/become-unready",
            "/v1/set-log",
            "/v1/proxy/config",
        ]
    ),
    st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=30).map(
        lambda p: "/" + p
    ),
)
_METHODS: Final = st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"])


def check_stub_any_call(targets: Targets, method: str, path: str, body: bytes, port: str) -> None:
    """Any method on any path with any small body, on either of the stub's servers."""
    stub = targets.stub
    before = stub.state()
    answer = stub.request(method, path, body, port=port)
    what = f"{method} {path} ({port}) {body[:60]!r}"
    assert answer is not None, f"{what}: no answer"
    if (port, method, path) == ("probes", "GET", "/ready"):  # 503 is "not ready", by design
        assert answer.status == (200 if before.ready else 503), what
        return
    _assert_no_5xx(answer, what)
    if answer.status >= 400:
        assert stub.state() == before, f"{what}: a refusal changed state"


_HEAD_LINES: Final = st.one_of(
    st.sampled_from(
        [
            "Transfer-Encoding: chunked",
            "Content-Length: 5",
            "Content-Length: -1",
            "Content-Length: +5",
            "Content-Length: 1_0",
            "Content-Length: 99999999999999999999999999999",
            "Content-Length: 1, 2",
            "Expect: 100-continue",
            "Connection: keep-alive",
            " folded: header",
            "no colon",
            ": empty name",
        ]
    ),
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=40),
)
_TARGETS: Final = st.one_of(
    st.sampled_from(["/v1/set-log?startPos=0", "/ready", "http://[x/", "*", "", "//x", "/%ff"]),
    st.text(st.characters(min_codepoint=0x21, max_codepoint=0xFF), max_size=40),
)
_CHUNKED_BODIES: Final = st.one_of(
    st.sampled_from(
        [b"0\r\n\r\n", b"5\r\nhello\r\n0\r\n\r\n", b"zz\r\n", b"-5\r\n", b"0x5\r\nhello\r\n"]
    ),
    st.binary(max_size=80),
    st.integers(1, 100_000).map(lambda n: b"1" * n + b"\r\n"),
    st.text("0123456789abcdefABCDEF", min_size=1, max_size=40).map(lambda h: h.encode() + b"\r\n"),
)


@st.composite
def raw_requests(draw: st.DrawFn) -> bytes:
    """Bytes on a connection: mostly near-HTTP (a request line, headers, a body) with one part
    broken, sometimes plain garbage."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=300))
    method = draw(_METHODS | st.text(max_size=8))
    target = draw(_TARGETS)
    version = draw(st.sampled_from(["HTTP/1.1", "HTTP/1.0", "HTTP/2", "HTTP/1.1 extra", ""]))
    lines = [f"{method} {target} {version}".rstrip(), "Host: stub"]
    lines += draw(st.lists(_HEAD_LINES, max_size=4))
    head = "\r\n".join(lines).encode("latin-1", "replace") + b"\r\n\r\n"
    body = draw(_CHUNKED_BODIES | st.binary(max_size=40))
    return head + body


def check_stub_raw(targets: Targets, data: bytes) -> None:
    stub = targets.stub
    before = stub.state()
    crashes = len(targets.tally.crashes)
    answer = stub.raw(data)
    what = f"raw {data[:160]!r}"
    _assert_no_5xx(answer, what)
    assert len(targets.tally.crashes) == crashes, f"{what}: {targets.tally.crashes[-1]}"
    if answer is None or answer.status >= 400:
        assert stub.state() == before, f"{what}: a refused request changed state"


def check_stub_huge(targets: Targets, huge: Huge) -> None:
    stub = targets.stub
    before = stub.state()
    accepted = before.accepted
    # One past the accepted length: under the limit that is a refusal too (it would leave a
    # hole), so no size may change the state.
    answer = stub.request(
        "POST", f"/v1/set-log?startPos={accepted + 1}", b"y" * huge.size, chunked=huge.chunked
    )
    what = f"{huge}"
    _assert_no_5xx(answer, what)
    if huge.size > SPI_MAX_BODY_BYTES:
        _assert_too_large(answer, SPI_MAX_BODY_BYTES, what)
    else:
        assert answer is not None and answer.status == 400, what  # startPos past the end
    assert stub.state() == before, what


# --- the webhook -------------------------------------------------------------------------------

_ADMISSION_PATHS: Final = st.sampled_from(["/mutate-pods", "/validate-pods", "/validate-fma"])


def _review(obj: Any, old: Any = None, operation: str = "CREATE") -> dict[str, Any]:
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "5f0b6c1e-fuzz",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": "team",
            "operation": operation,
            "userInfo": {"username": "alice", "groups": ["system:authenticated"]},
            "object": obj,
            "oldObject": old,
        },
    }


_REVIEW_FIELDS: Final[dict[tuple[str, ...], type]] = {
    ("apiVersion",): str,
    ("kind",): str,
    ("request",): dict,
    ("request", "uid"): str,
    ("request", "kind"): dict,
    ("request", "kind", "version"): str,
    ("request", "resource"): dict,
    ("request", "resource", "resource"): str,
    ("request", "operation"): str,
    ("request", "userInfo"): dict,
    ("request", "userInfo", "groups"): list,
    ("request", "object"): dict,
    ("request", "oldObject"): dict,
    ("request", "dryRun"): bool,
    ("request", "namespace"): str,
}


@st.composite
def _review_with_a_wrong_type(draw: st.DrawFn) -> tuple[bytes, str]:
    review = _review({"metadata": {"name": "p"}, "spec": {"containers": []}})
    where = draw(st.sampled_from(sorted(_REVIEW_FIELDS)))
    parent: dict[str, Any] = review
    for key in where[:-1]:
        parent = parent[key]
    bad = _wrong_type_for(_REVIEW_FIELDS[where])
    if where[-1] == "dryRun":  # pydantic takes 0/1 and "true"/"yes" as booleans
        bad = st.lists(st.integers(), max_size=2) | st.dictionaries(st.text(max_size=3), st.none())
    parent[where[-1]] = draw(bad)
    return _dumps(review), ".".join(where)


_POD_PARTS: Final = st.fixed_dictionaries(
    {},
    optional={
        "apiVersion": JSON_VALUES,
        "kind": st.just("Pod") | JSON_VALUES,
        "metadata": JSON_VALUES
        | st.fixed_dictionaries(
            {},
            optional={
                "name": JSON_VALUES,
                "namespace": JSON_VALUES,
                "labels": JSON_VALUES,
                "annotations": JSON_VALUES,
                "ownerReferences": JSON_VALUES
                | st.lists(
                    st.dictionaries(
                        st.sampled_from(["kind", "name", "uid", "controller"]), JSON_VALUES
                    )
                ),
            },
        ),
        "spec": JSON_VALUES
        | st.fixed_dictionaries(
            {},
            optional={
                "containers": JSON_VALUES
                | st.lists(
                    st.dictionaries(
                        st.sampled_from(
                            ["name", "image", "command", "args", "resources", "ports", "env"]
                        ),
                        JSON_VALUES,
                    ),
                    max_size=3,
                ),
                "initContainers": JSON_VALUES,
                "volumes": JSON_VALUES,
            },
        ),
    },
)
"""Pod-like objects whose every part may be any JSON: what reaches the checks when the
apiserver's own validation is not there (a webhook runs before it)."""


def check_webhook_review(targets: Targets, path: str, body: bytes, field: str | None) -> None:
    webhook = targets.webhook
    crashes = len(targets.tally.crashes)
    answer = webhook.post(path, body)
    what = f"{path} {body[:200]!r}"
    _assert_no_5xx(answer, what)
    assert len(targets.tally.crashes) == crashes, f"{what}: {targets.tally.crashes[-1]}"
    assert answer.status in (200, 400), f"{what}: {answer.status} {answer.text[:200]}"
    if answer.status == 400:
        _assert_names(answer, field, what, body)
        return
    review = json.loads(answer.body)
    response = review["response"]
    assert response["uid"] == json.loads(body)["request"]["uid"], what
    assert "internal error" not in json.dumps(response), f"{what}: {response}"


WEBHOOK_REVIEWS: Final = st.one_of(
    st.tuples(_ADMISSION_PATHS, MALFORMED_JSON, st.none()),
    st.tuples(_ADMISSION_PATHS, JSON_VALUES.map(_dumps), st.none()),
    st.builds(lambda p, rf: (p, rf[0], rf[1]), _ADMISSION_PATHS, _review_with_a_wrong_type()),
    st.builds(
        lambda p, obj, old, op: (p, _dumps(_review(obj, old, op)), None),
        _ADMISSION_PATHS,
        _POD_PARTS,
        st.none() | _POD_PARTS,
        st.sampled_from(["CREATE", "UPDATE", "DELETE", "CONNECT"]),
    ),
)


def check_webhook_huge(targets: Targets, path: str, huge: Huge) -> None:
    webhook = targets.webhook
    answer = webhook.post(path, b" " * huge.size, chunked=huge.chunked)
    what = f"{path} {huge}"
    _assert_no_5xx(answer, what)
    if huge.size > WEBHOOK_MAX_BODY:
        _assert_too_large(answer, WEBHOOK_MAX_BODY, what)
    else:
        assert answer.status == 400, what


# --- the list ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Property:
    """One property: the API it fuzzes, its share of the budget, and a runner that takes the
    running servers and a number of examples."""

    api: str
    name: str
    weight: float
    run: Callable[[Targets, int], None]


def _property(
    api: str, name: str, weight: float, check: Callable[..., None], *strategies: Any
) -> Property:
    def run(targets: Targets, examples: int) -> None:
        @fuzz_settings(examples)
        @given(st.tuples(*strategies))
        def fuzz(values: tuple[Any, ...]) -> None:
            check(targets, *values)

        fuzz()

    return Property(api, name, weight, run)


PROPERTIES: Final = (
    _property("launcher", "create", 3.0, check_launcher_create, LAUNCHER_CREATES),
    _property("launcher", "log_range", 2.0, check_launcher_log, RANGE_HEADERS),
    _property("launcher", "query", 1.0, check_launcher_query, LAUNCHER_QUERIES),
    _property("launcher", "huge_body", 0.25, check_launcher_huge, _huge(LAUNCHER_MAX_BODY)),
    _property(
        "stub",
        "set_log",
        2.0,
        check_set_log,
        _START_POS,
        st.binary(max_size=64),
        st.booleans(),
    ),
    _property("stub", "proxy_config", 2.0, check_proxy_config, _proxy_config()),
    _property(
        "stub",
        "any_call",
        1.5,
        check_stub_any_call,
        _METHODS,
        _STUB_PATHS,
        st.binary(max_size=64),
        st.sampled_from(["spi", "probes"]),
    ),
    _property("stub", "raw_http", 2.0, check_stub_raw, raw_requests()),
    _property("stub", "huge_body", 0.25, check_stub_huge, _huge(SPI_MAX_BODY_BYTES)),
    _property(
        "webhook",
        "review",
        4.0,
        lambda targets, case: check_webhook_review(targets, *case),
        WEBHOOK_REVIEWS,
    ),
    _property(
        "webhook",
        "huge_body",
        0.25,
        check_webhook_huge,
        _ADMISSION_PATHS,
        _huge(WEBHOOK_MAX_BODY),
    ),
)


def examples_for(prop: Property, total: int) -> int:
    """`prop`'s share of `total`, by weight."""
    weights = sum(p.weight for p in PROPERTIES)
    return max(1, round(total * prop.weight / weights))
