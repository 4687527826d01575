"""Fuzzing `mutate_pod` with hypothesis: 10,000 generated Pods across three tests.

Properties, for every input: no exception escapes and no internal error is reported; the input
is not modified; the result is consistent (a patch iff not skipped, a mode iff a patch); the
patch applies with `jsonpatch`; the mutated Pod is a requester (contracts.md §1.2) whose
direct-mode patch renders as a Go template and parses as YAML; the requester serves like the Pod
it replaced (every TCP serving port of the vLLM container, and its `--port`, is declared by the
stub and in `FMA_SERVING_PORTS`; the stub's own listeners take no port and no name another entry
of the Pod has); and a second call is a no-op.

Strategies are built once at import and mix free text with prebuilt fragments (env lists,
probes, resources): drawing from them is cheap, which keeps 10,000 examples within a minute.
"""

from __future__ import annotations

import copy
import itertools
import json
import random
import shlex
from typing import Any

import jsonpatch
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crds.models import InferenceServerConfig
from tests.unit.mutation_support import ENABLED, SETTINGS, render_go_template
from webhook.mutation import MutationContext, mutate_pod
from webhook.vllm_cmdline import parse_command_line

FUZZ = settings(
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)

TOKENS = [
    "vllm", "serve", "/usr/local/bin/vllm", "python3", "python", "-m", "-u",
    "vllm.entrypoints.openai.api_server", "vllm.entrypoints.cli.main", "sh", "bash", "-c", "exec",
    "--model", "--port", "--port=8000", "8000", "0", "65536", "-1", "1e3", "y", "--",
    "--enable-sleep-mode", "--no-enable-sleep-mode", "--enable_sleep_mode", "-tp", "2",
    "--tensor-parallel-size=2", "--config", "meta/llama", "{{ .NodeName }}", "{{", "}}", "$(MODEL)",
    "a b", "--dtype=half", "~/x", "a/b~c", "'", '"', "&&", "|", "--chat-template", "{% x %}",
]  # fmt: skip
KEYS = [
    "fma.llm-d.ai/inject", "fma.llm-d.ai/mutated", "fma.llm-d.ai/inference-server-config",
    "dual-pods.llm-d.ai/inference-server-config", "dual-pods.llm-d.ai/server-patch",
    "dual-pods.llm-d.ai/requester", "dual-pods.llm-d.ai/launcher-config-name", "app",
    "a/b~c", "~0~1", "on",
]  # fmt: skip
VALUES = ["true", "false", "enabled", "", "v1", "x", "isc-a", "isc-b", "{{"]
API_SERVER = "vllm.entrypoints.openai.api_server"
ISC_CHOICE = "fma.llm-d.ai/inference-server-config"
SECRET = {"secretKeyRef": {"name": "s", "key": "k"}}
ENVS = [
    [],
    [{"name": "A", "value": "1"}],
    [{"name": "HF_TOKEN", "valueFrom": SECRET}, {"name": "HF_HOME", "value": "/c"}],
    [{"name": "VLLM_SERVER_DEV_MODE", "value": "0"}, {"name": "VLLM_SERVER_DEV_MODE"}],
    [{"name": "X", "value": "$(A)"}, {"name": "Y", "value": "{{"}],
    [{"value": "no name"}],
    ["not an object"],
]
PROBES = [
    {"httpGet": {"path": "/health", "port": 8000}},
    {"httpGet": {"path": "/health", "port": "http"}, "periodSeconds": 5},
    {"httpGet": {"path": "/health", "port": "nope"}},
    {"httpGet": {"path": "/health"}},
    {"httpGet": "bad"},
    {"exec": {"command": ["true"]}, "failureThreshold": 9},
    {"tcpSocket": {"port": 8000}},
]
PORTS = [
    [{"name": "http", "containerPort": 8000}],
    [{"containerPort": 8080}],
    [{"name": "spi", "containerPort": 8081, "protocol": "TCP"}],
    [
        {"name": "proxy", "containerPort": 8082},
        {"name": "q", "containerPort": 8082, "protocol": "UDP"},
    ],
    [{"name": "probes", "containerPort": 18080}, {"containerPort": 9000, "protocol": "UDP"}],
    [{"name": "http", "containerPort": "x"}],
    ["bad"],
]
GPUS = [1, "1", "2", 8, 0, "0", "1.5", "x", True, None, -1, 10**12]

text = st.text(max_size=10)
token = st.sampled_from(TOKENS) | text
key = st.sampled_from(KEYS) | text
value = st.sampled_from(VALUES) | text
string_map = st.dictionaries(key, value, max_size=3)
argv = st.lists(token, max_size=7)
scalar: st.SearchStrategy[Any] = st.sampled_from([None, True, 0, -1, "", "x", 8000])
gpu = st.sampled_from(GPUS)

serve_prefix = st.sampled_from(
    [["vllm", "serve"], ["python3", "-m", "vllm.entrypoints.openai.api_server"], ["vllm"]]
)
command_lines = st.one_of(
    st.builds(lambda prefix, words: [*prefix, *words], serve_prefix, argv),
    argv.map(lambda words: ["sh", "-c", " ".join(["vllm", "serve", *words])]),
    argv,
)
resources = st.fixed_dictionaries(
    {},
    optional={
        "limits": st.fixed_dictionaries({}, optional={"nvidia.com/gpu": gpu, "memory": scalar}),
        "requests": st.fixed_dictionaries({}, optional={"nvidia.com/gpu": gpu, "cpu": scalar}),
    },
)
containers = st.fixed_dictionaries(
    {"name": st.sampled_from(["vllm", "inference-server", "sidecar"]) | text},
    optional={
        "image": st.sampled_from(["vllm/vllm-openai:v0.10.0", "busybox"]) | text,
        "command": command_lines | scalar,
        "args": argv | scalar,
        "env": st.sampled_from(ENVS) | scalar,
        "envFrom": st.just([{"secretRef": {"name": "s"}}]),
        "ports": st.sampled_from(PORTS) | scalar,
        "readinessProbe": st.sampled_from(PROBES) | scalar,
        "resources": resources | scalar,
        "securityContext": st.sampled_from([{"privileged": True}, "x"]),
    },
)
owner_references = st.lists(
    st.fixed_dictionaries(
        {"kind": st.sampled_from(["ReplicaSet", "StatefulSet"]), "name": text},
        optional={"controller": st.booleans()},
    ),
    max_size=2,
)
pods = st.fixed_dictionaries(
    {"apiVersion": st.just("v1"), "kind": st.just("Pod")},
    optional={
        "metadata": st.fixed_dictionaries(
            {},
            optional={
                "name": text,
                "labels": string_map | scalar,
                "annotations": string_map | scalar,
                "ownerReferences": owner_references,
            },
        )
        | scalar,
        "spec": st.fixed_dictionaries(
            {},
            optional={
                "containers": st.lists(containers | scalar, max_size=3) | scalar,
                "hostNetwork": st.booleans(),
            },
        )
        | scalar,
    },
)


def _isc(name: str, port: int, options: list[str], env: Any) -> InferenceServerConfig:
    config: dict[str, Any] = {"port": port, "options": " ".join(options)}
    if env is not None:
        config["env_vars"] = env
    return InferenceServerConfig.model_validate(
        {
            "metadata": {"name": name},
            "spec": {"modelServerConfig": config, "launcherConfigName": "lc"},
        }
    )


iscs = st.builds(
    _isc,
    st.sampled_from(["isc-a", "isc-b"]) | text,
    st.sampled_from([8000, 8001]) | st.integers(1, 65535),
    argv,
    st.none() | st.dictionaries(st.sampled_from(["A", "HF_HOME"]) | text, value, max_size=2),
)
selectors: st.SearchStrategy[Any] = st.none() | st.one_of(
    st.fixed_dictionaries({"matchLabels": string_map}),
    st.fixed_dictionaries(
        {
            "matchExpressions": st.lists(
                st.fixed_dictionaries(
                    {"key": key, "operator": st.sampled_from(["In", "NotIn", "Exists", "X"])}
                ),
                max_size=2,
            )
        }
    ),
    string_map,
    st.sampled_from([{"matchLabels": "x"}, {"matchExpressions": [1]}, {"a": 1}]),
)
contexts = st.builds(
    MutationContext,
    namespace=st.sampled_from(["team", "team", "team", "team", "kube-system", "fma", "x"]),
    namespace_labels=st.sampled_from([ENABLED, ENABLED, {}]) | string_map,
    iscs=st.lists(iscs, max_size=3),
    owner_selector=selectors,
    settings=st.just(SETTINGS),
)


def check_ports(mutated: dict[str, Any]) -> None:
    """The requester serves on the replaced container's serving ports, its stub's listeners
    apart from every other port of the Pod, and env, probe and `admin-port` agree."""
    annotations = mutated["metadata"]["annotations"]
    original = json.loads(annotations["fma.llm-d.ai/original-container"])
    command = parse_command_line(
        original.get("command"), original.get("args"), original.get("image")
    )
    assert command is not None
    tcp_names = (None, "TCP")
    tcp = [p for p in original.get("ports") or () if p.get("protocol") in tcp_names]
    wanted = {command.port, *(p["containerPort"] for p in tcp)}
    containers = mutated["spec"]["containers"]
    (stub,) = [c for c in containers if c.get("name") == "inference-server"]
    env = {item["name"]: item["value"] for item in stub["env"] if "value" in item}
    assert {int(port) for port in env["FMA_SERVING_PORTS"].split(",")} == wanted
    assert wanted <= {p["containerPort"] for p in stub["ports"] if p.get("protocol") in tcp_names}
    own = [int(env[name]) for name in ("PROBES_PORT", "SPI_PORT", "PROXY_PORT")]
    own_entries = stub["ports"][-3:]
    assert [p["containerPort"] for p in own_entries] == own
    neighbours = [p for c in containers if c is not stub for p in c.get("ports") or ()]
    others = [*neighbours, *stub["ports"][:-3]]
    assert len(set(own)) == 3 and not set(own) & {p.get("containerPort") for p in others}
    own_names = {p.get("name") for p in own_entries} - {None}
    assert len(own_names) == len([p for p in own_entries if "name" in p])
    assert not own_names & {p.get("name") for p in others}
    assert stub["readinessProbe"]["httpGet"]["port"] == own[0]
    assert int(annotations.get("dual-pods.llm-d.ai/admin-port", "8081")) == own[1]


def check(pod: Any, ctx: MutationContext) -> None:
    """Every property of the module docstring, for one input."""
    snapshot = copy.deepcopy(pod)
    result = mutate_pod(pod, ctx)
    assert pod == snapshot, "mutate_pod modified its input"
    assert result.skip_code != "internal_error", result.skipped
    assert (result.skipped is None) == bool(result.patch) == (result.mode is not None)
    json.dumps(result.patch)
    if not result.patch:
        return
    mutated = jsonpatch.apply_patch(pod, result.patch)
    annotations = mutated["metadata"]["annotations"]
    assert annotations["fma.llm-d.ai/mutated"] == "v1"
    names = [c.get("name") for c in mutated["spec"]["containers"] if isinstance(c, dict)]
    assert names.count("inference-server") == 1
    check_ports(mutated)
    if result.mode == "direct":
        patch_text = annotations["dual-pods.llm-d.ai/server-patch"]
        (container,) = yaml.safe_load(render_go_template(patch_text))["spec"]["containers"]
        assert container["name"] == "inference-server"
        assert container["readinessProbe"]["httpGet"]["port"] > 0
        assert {"name": "VLLM_SERVER_DEV_MODE", "value": "1"} in container["env"]
    else:
        assert annotations["dual-pods.llm-d.ai/inference-server-config"]
    again = mutate_pod(mutated, ctx)
    assert again.patch == [] and again.skip_code == "already_mutated"


@settings(FUZZ, max_examples=4000)
@given(pod=pods, ctx=contexts)
def test_fuzz_arbitrary_pods(pod: dict[str, Any], ctx: MutationContext) -> None:
    check(pod, ctx)


SERVER_FLAGS = [
    "--dtype", "--max-model-len", "--max_model_len", "--port", "--enable-sleep-mode",
    "--no-enable-sleep-mode", "--chat-template", "-tp", "--served-model-name", "--seed",
    "--lora-modules", "--trust-remote-code",
]  # fmt: skip
FLAG_VALUES = [
    "half", "4096", "8001", "8081", "9000", "-1", "{{ x }}", "y", "1e3", "a b", "$(X)", "a=b",
]  # fmt: skip
FORMS = ["serve", "serve --model", "module", "image", "shell", "noise"]
SIDECARS = [
    {"name": "exporter", "image": "exporter:1", "args": ["--vllm-url", "http://localhost:8000"]},
    {"name": "proxy", "image": "envoy", "ports": [{"name": "web", "containerPort": 9901}]},
    {"name": "log", "image": "fluent-bit", "command": ["fluent-bit"]},
    {"name": "inference-server", "image": "x"},
    {"name": "busy", "image": "busybox", "ports": [{"containerPort": 8080}]},
    {"name": "mesh", "image": "envoy", "ports": [{"name": "spi", "containerPort": 18080}]},
]
BENIGN_KEYS = ["app", "team", "app.kubernetes.io/name", "a/b~c", "on", ISC_CHOICE]

flag_group = st.tuples(
    st.sampled_from(SERVER_FLAGS),
    st.lists(st.sampled_from(FLAG_VALUES), max_size=2),
    st.booleans(),
).map(lambda g: [f"{g[0]}={g[1][0]}", *g[1][1:]] if g[2] and g[1] else [g[0], *g[1]])
server_options = st.lists(flag_group, max_size=4).map(lambda g: list(itertools.chain(*g)))
models = st.sampled_from(["org/model", "/models/m", "m"]) | text
benign_map = st.dictionaries(st.sampled_from(BENIGN_KEYS) | text, value, max_size=3)


def _argv(form: str, model: str, options: list[str], noise: list[str]) -> dict[str, Any]:
    """`command`/`args` of a container running the server in one of the accepted forms."""
    if form == "serve":
        return {"command": ["vllm", "serve", model], "args": options}
    if form == "serve --model":
        return {"command": ["vllm"], "args": ["serve", "--model", model, *options]}
    if form == "module":
        return {"command": ["python3", "-m", API_SERVER, f"--model={model}", *options]}
    if form == "image":
        return {"args": [model, *options]}
    if form == "shell":
        script = " ".join(shlex.quote(word) for word in ["vllm", "serve", model, *options])
        return {"command": ["sh", "-c", "exec " + script]}
    return {"command": noise}


@st.composite
def vllm_cases(draw: st.DrawFn) -> tuple[dict[str, Any], MutationContext]:
    """Opted-in Pods with one GPU container running vLLM in one of the accepted forms, with
    realistic neighbours, and sometimes an ISC built from the same command: the deep paths."""
    form, model, options = draw(st.sampled_from(FORMS)), draw(models), draw(server_options)
    container = {"name": "vllm", "image": "vllm/vllm-openai:v0.10.0"} | _argv(
        form, model, options, draw(argv)
    )
    container["resources"] = {"limits": {"nvidia.com/gpu": draw(st.sampled_from([1, "2"]))}}
    for field, choices in (("env", ENVS), ("ports", PORTS), ("readinessProbe", PROBES)):
        if draw(st.booleans()):
            container[field] = draw(st.sampled_from(choices))
    pod_containers = draw(st.lists(st.sampled_from(SIDECARS), max_size=2))
    pod_containers.insert(draw(st.integers(0, len(pod_containers))), container)
    meta: dict[str, Any] = {
        "name": "p",
        "labels": draw(benign_map) | {"fma.llm-d.ai/inject": "true"},
        "annotations": draw(benign_map),
    }
    if draw(st.booleans()):
        meta["ownerReferences"] = [{"kind": "ReplicaSet", "name": "rs", "controller": True}]
    known = draw(st.lists(iscs, max_size=2))
    if draw(st.booleans()):
        same = [model, *options]
        ports = [int(v) for f, v in itertools.pairwise(same) if f == "--port" and v.isdigit()]
        known.append(_isc("same", ports[-1] if ports else 8000, same, None))
    ctx = MutationContext(
        namespace="team",
        namespace_labels=draw(st.sampled_from([ENABLED, {}])),
        iscs=known,
        owner_selector=draw(selectors),
        settings=SETTINGS,
    )
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": {"containers": pod_containers},
    }
    return pod, ctx


@settings(FUZZ, max_examples=4000)
@given(case=vllm_cases())
def test_fuzz_vllm_pods(case: tuple[dict[str, Any], MutationContext]) -> None:
    check(*case)


flag_groups = st.lists(
    st.tuples(
        st.sampled_from(["--dtype", "--max-model-len", "--seed", "--trust-remote-code", "--lora"]),
        st.lists(st.sampled_from(["half", "4096", "-1", "a=b"]), max_size=2),
    ),
    max_size=4,
    unique_by=lambda group: group[0],
)


@settings(FUZZ, max_examples=2000)
@given(groups=flag_groups, seed=st.integers(0, 2**16), positional=st.booleans())
def test_fuzz_equivalent_isc_is_found(
    groups: list[tuple[str, list[str]]], seed: int, positional: bool
) -> None:
    """A Pod whose options are an ISC's, reordered and spelled differently, selects it."""
    isc_tokens = ["--model", "org/model", "--enable-sleep-mode"]
    for flag, values in groups:
        isc_tokens += [flag, *values]
    shuffled = list(groups)
    random.Random(seed).shuffle(shuffled)
    pod_args = ["org/model"] if positional else ["--model=org/model"]
    for flag, values in shuffled:
        pod_args += ["--" + flag[2:].replace("-", "_"), *values]
    isc = _isc("target", 8000, isc_tokens, None)
    container = {
        "name": "vllm",
        "command": ["vllm", "serve", *pod_args],
        "resources": {"limits": {"nvidia.com/gpu": 1}},
    }
    pod = {
        "metadata": {"labels": {"fma.llm-d.ai/inject": "true"}},
        "spec": {"containers": [container]},
    }
    ctx = MutationContext(namespace="team", iscs=[isc], settings=SETTINGS)
    result = mutate_pod(pod, ctx)
    assert result.mode == "launcher", (pod_args, isc_tokens, result)
    check(pod, ctx)
