"""Wire formats of the decision core, pinned by golden vectors from the real Go libraries.

The goldens in tests/unit/golden/ were produced by hack/core-goldens/ (yaml.v2 2.4 and
sigs.k8s.io/yaml for the instance ID; k8s.io/api and apimachinery for Pod JSON and strategic
merge patch). The instance-ID vector is the one in contracts §4.3.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from contract.launcher import VllmConfig
from contract.rules import QuantityError, quantity_value
from controller.core import (
    GoYamlError,
    go_json,
    go_yaml,
    instance_id,
    vllm_config,
    vllm_config_json,
)
from controller.core._gotemplate import TemplateError, render
from controller.core._k8syaml import yaml_to_json_value
from controller.core._podjson import PodEncodeError, encode_pod
from controller.core._quantity import canonical_quantity
from controller.core._smp import PatchError, strategic_merge_pod
from controller.core._yaml_resolve import resolves_to_string, sort_keys
from crds.models import ModelServerConfig

GOLDEN = Path(__file__).parent / "golden"


def _load(name: str) -> list[dict[str, Any]]:
    return json.loads((GOLDEN / name).read_text())  # type: ignore[no-any-return]


def test_instance_id_matches_contract_vector() -> None:
    config = ModelServerConfig(port=8005, options="--model m --enable-sleep-mode")
    assert go_yaml({"port": 8005, "options": "--model m --enable-sleep-mode"}) == (
        "options: --model m --enable-sleep-mode\nport: 8005\n"
    )
    assert instance_id(config, ["GPU-0"]) == "IeK6fybfWxfdXQPmnr5s2Cx40VKd_PkyXR-YRayc4wp0i"


def test_instance_id_depends_on_gpus_labels_and_order() -> None:
    base = ModelServerConfig(port=8005, options="--model m")
    ids = {
        instance_id(base, ["GPU-0"]),
        instance_id(base, ["GPU-1"]),
        instance_id(base, ["GPU-0", "GPU-1"]),
        instance_id(base, ["GPU-1", "GPU-0"]),
        instance_id(
            ModelServerConfig(port=8005, options="--model m", labels={"a": "b"}), ["GPU-0"]
        ),
    }
    assert len(ids) == 5
    assert all(len(i) == 45 and i.startswith("I") and i.endswith("i") for i in ids)
    empty_maps = ModelServerConfig(port=8005, options="--model m", labels={}, env_vars={})
    assert instance_id(empty_maps, ["GPU-0"]) == instance_id(base, ["GPU-0"])


YAML_CASES = _load("core_yaml.json")


@pytest.mark.parametrize("case", YAML_CASES, ids=[str(i) for i in range(len(YAML_CASES))])
def test_go_yaml_matches_yaml_v2(case: dict[str, Any]) -> None:
    expected = case["yaml"]
    if isinstance(expected, dict):
        with pytest.raises(GoYamlError):
            go_yaml(case["input"])
    else:
        assert go_yaml(case["input"]) == expected


@pytest.mark.parametrize(
    ("text", "plain"),
    [
        ("abc", True),
        ("yes", False),
        ("Off", False),
        ("y", False),
        ("1", False),
        ("0o17", False),
        ("0x1F", False),
        ("08", False),
        ("1e3", False),
        ("1e400", True),
        ("2001-12-14", False),
        ("2001-2-30", True),
        ("1:20", True),
        ("<<", True),
        (".5", False),
        ("._5", True),
        ("-", True),
        ("", False),
        ("~", False),
        ("1_000", False),
    ],
)
def test_plain_resolution_follows_yaml_v2(text: str, plain: bool) -> None:
    assert resolves_to_string(text) is plain


def test_go_yaml_agrees_with_pyyaml_on_structure() -> None:
    """Where both emitters agree (no YAML 1.1 words, short lines), the parse is identical."""
    doc = {"b": {"x": ["1", "two", {"k": "v w"}]}, "a": "line1\nline2\n", "c": [], "d": {}}
    assert yaml.safe_load(go_yaml(doc)) == doc


def test_key_order_is_natural() -> None:
    assert sort_keys(["a10", "a9", "b", "A", "_x", "1"]) == ["_x", "1", "A", "a9", "a10", "b"]


def test_go_json_escapes_like_go() -> None:
    assert go_json({"b": '<&>\u2028\x01\t"\\', "a": [1, 2.5, True, None]}) == (
        '{"a":[1,2.5,true,null],"b":"\\u003c\\u0026\\u003e\\u2028\\u0001\\t\\"\\\\"}'
    )
    assert go_json(1e21) == "1e+21"
    assert go_json(1e-7) == "1e-7"
    assert go_json(123456789.0) == "123456789"


def test_vllm_config_json_field_order_and_omission() -> None:
    config = ModelServerConfig(port=8000, env_vars={"B": "2", "A": "<1>"})
    body = vllm_config("isc", config, ["GPU-1"])
    assert body.options == " --port 8000"
    assert vllm_config_json(body) == (
        '{"options":" --port 8000","gpu_uuids":["GPU-1"],"env_vars":{"A":"\\u003c1\\u003e",'
        '"B":"2"},"annotations":{"inference-port":"8000","isc-name":"isc"}}'
    )
    assert "gpu_uuids" not in vllm_config("isc", config, []).to_json()
    launcher_view = VllmConfig.model_validate_json(vllm_config_json(body))
    assert launcher_view == body  # the launcher reads what the controller writes, one model


@pytest.mark.parametrize("case", _load("core_pod.json"), ids=lambda c: str(len(json.dumps(c))))
def test_pod_encoding_matches_go(case: dict[str, Any]) -> None:
    assert encode_pod(case["pod"]) == case["json"]


def test_pod_encoding_rejects_wrong_types_and_unknown_fields() -> None:
    with pytest.raises(PodEncodeError, match=r"spec.containers\[0\].ports\[0\].containerPort"):
        encode_pod({"spec": {"containers": [{"name": "c", "ports": [{"containerPort": "80"}]}]}})
    with pytest.raises(PodEncodeError, match="unknown field"):
        encode_pod({"spec": {"bogus": 1}}, strict=True)
    assert encode_pod({"spec": {"zz": 1, "containers": []}}).endswith(
        '"containers":[],"zz":1},"status":{}}'
    )


@pytest.mark.parametrize("case", _load("core_smp.json"), ids=lambda c: json.dumps(c["patch"])[:40])
def test_strategic_merge_patch_matches_go(case: dict[str, Any]) -> None:
    if isinstance(case["result"], dict):
        with pytest.raises(PatchError):
            strategic_merge_pod(case["original"], case["patch"])
    else:
        assert go_json(strategic_merge_pod(case["original"], case["patch"])) == case["result"]


def test_smp_does_not_modify_inputs_and_rejects_set_element_order() -> None:
    original = {"metadata": {"labels": {"a": "1"}}}
    patch = {"metadata": {"labels": {"a": None}}}
    assert strategic_merge_pod(original, patch) == {"metadata": {"labels": {}}}
    assert original == {"metadata": {"labels": {"a": "1"}}}
    assert patch == {"metadata": {"labels": {"a": None}}}
    with pytest.raises(PatchError, match="setElementOrder"):
        strategic_merge_pod({"spec": {}}, {"spec": {"$setElementOrder/containers": []}})
    with pytest.raises(PatchError, match="unknown patch type"):
        strategic_merge_pod({"spec": {}}, {"spec": {"$patch": "merge"}})


@pytest.mark.parametrize(
    ("value", "canonical"),
    [
        ("1500m", "1500m"),
        (0.5, "500m"),
        ("2000", "2k"),
        ("1024Mi", "1Gi"),
        ("1.5Ki", "1536"),
        ("1e3", "1e3"),
        ("0.0000000001", "1n"),
        (0, "0"),
        ("-1500m", "-1500m"),
    ],
)
def test_canonical_quantities(value: object, canonical: str) -> None:
    assert canonical_quantity(value) == canonical


def test_quantity_errors() -> None:
    assert quantity_value("1Gi") == 2**30
    for bad in ("abc", "1Zi", True, None, "1e100"):
        with pytest.raises(QuantityError):
            quantity_value(bad)


def test_template_rendering() -> None:
    data = {"NodeName": "n1", "LocalVolume": ""}
    assert render("claim: vcp-{{ .NodeName }}", data) == "claim: vcp-n1"
    assert render('a {{"{{"}} b {{`x`}}', data) == "a {{ b x"
    assert render("a  {{- .NodeName -}}  b", data) == "an1b"
    with pytest.raises(TemplateError, match='no entry for key "Missing"'):
        render("{{ .Missing }}", data)
    with pytest.raises(TemplateError, match="unsupported template action"):
        render("{{ if .NodeName }}x{{ end }}", data)
    with pytest.raises(TemplateError, match="unclosed"):
        render("x {{ .NodeName", data)


def test_server_patch_yaml_reads_like_yaml_v2() -> None:
    value = yaml_to_json_value("a: 0o17\nb: 1e3\nc: 2001-12-14\nd: yes\ne: ~\nf: '1'\n1: x\n")
    assert value == {
        "a": 15,
        "b": 1000.0,
        "c": "2001-12-14",
        "d": True,
        "e": None,
        "f": "1",
        "1": "x",
    }
    with pytest.raises(ValueError, match="not valid YAML"):
        yaml_to_json_value("a: [")
