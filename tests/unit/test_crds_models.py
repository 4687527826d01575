"""The wire models: examples parse, and validation matches what the apiserver rejects."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

import crds
from crds.definitions import DEFINITIONS
from crds.models import (
    CountForLauncher,
    InferenceServerConfig,
    LauncherConfig,
    LauncherPopulationPolicy,
    ModelServerConfig,
    Resource,
)

MODELS: dict[str, type[Resource]] = {
    "InferenceServerConfig": InferenceServerConfig,
    "LauncherConfig": LauncherConfig,
    "LauncherPopulationPolicy": LauncherPopulationPolicy,
}


def load(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return document


def example(kind: str) -> dict[str, Any]:
    [path] = [d.example_path for d in DEFINITIONS if d.kind == kind]
    return load(path)


def _isort_style(name: str) -> tuple[int, str]:
    """Constants, then classes, then the rest (the order ruff's RUF022 keeps)."""
    return (0 if name.isupper() else 1 if name[0].isupper() else 2, name)


def test_public_names() -> None:
    assert crds.__all__ == sorted(crds.__all__, key=_isort_style)
    assert set(crds.__all__) == {
        "API_VERSION",
        "CRD_FILES",
        "EXAMPLES_DIR",
        "EXAMPLE_FILES",
        "GROUP",
        "VERSION",
        "InferenceServerConfig",
        "LauncherConfig",
        "LauncherPopulationPolicy",
    }
    assert f"{crds.GROUP}/{crds.VERSION}" == crds.API_VERSION


def test_one_example_per_kind() -> None:
    assert sorted(crds.EXAMPLES_DIR.glob("*.yaml")) == sorted(crds.EXAMPLE_FILES)
    assert sorted(load(path)["kind"] for path in crds.EXAMPLE_FILES) == sorted(MODELS)


@pytest.mark.parametrize("path", crds.EXAMPLE_FILES, ids=lambda p: p.name)
def test_examples_parse_and_round_trip(path: Path) -> None:
    document = load(path)
    parsed = MODELS[document["kind"]].model_validate(document)
    # Nothing dropped: a misspelt field in an example would be ignored, and show up here.
    assert parsed.to_wire() == document
    assert parsed.api_version == crds.API_VERSION


def test_examples_say_what_the_brief_asks() -> None:
    isc = InferenceServerConfig.model_validate(example("InferenceServerConfig"))
    lc = LauncherConfig.model_validate(example("LauncherConfig"))
    lpp = LauncherPopulationPolicy.model_validate(example("LauncherPopulationPolicy"))
    assert "--enable-sleep-mode" in (isc.spec.model_server_config.options or "")
    assert isc.spec.launcher_config_name == lc.metadata.name
    assert lc.spec.pod_template is not None
    assert lc.spec.pod_template.spec is not None
    assert "inference-server" in [c.name for c in lc.spec.pod_template.spec.containers]
    assert lpp.spec is not None
    selector = lpp.spec.enhanced_node_selector.label_selector
    assert selector.match_labels == {"nvidia.com/gpu.present": "true"}
    assert [(c.launcher_config_name, c.launcher_count) for c in lpp.spec.count_for_launcher] == [
        (lc.metadata.name, 1)
    ]


def test_python_names_and_wire_names() -> None:
    config = ModelServerConfig(port=8000, env_vars={"A": "1"})
    assert config.to_wire() == {"port": 8000, "env_vars": {"A": "1"}}
    assert ModelServerConfig.model_validate({"port": 1, "env_vars": {}}).env_vars == {}
    entry = CountForLauncher(launcher_config_name="lc", launcher_count=-2)
    assert entry.to_wire() == {"launcherConfigName": "lc", "launcherCount": -2}
    assert CountForLauncher.model_validate(entry.to_wire()) == entry


def test_unknown_pod_spec_fields_are_kept() -> None:
    document = example("LauncherConfig")
    template = document["spec"]["podTemplate"]
    template["spec"]["nodeSelector"] = {"gpu": "yes"}
    template["spec"]["containers"][0]["args"] = ["--port", "8001"]
    assert LauncherConfig.model_validate(document).to_wire() == document


def test_status_parses() -> None:
    document = example("LauncherConfig")
    document["status"] = {"observedGeneration": 3, "errors": ["broken"]}
    status = LauncherConfig.model_validate(document).status
    assert status is not None
    assert (status.observed_generation, status.errors) == (3, ["broken"])


def _edited(kind: str, path: tuple[str | int, ...], value: Any) -> dict[str, Any]:
    """The example of `kind` with the value at `path` replaced (or deleted if value is ...)."""
    document = copy.deepcopy(example(kind))
    node: Any = document
    for key in path[:-1]:
        node = node[key]
    if value is ...:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return document


PORT = ("spec", "modelServerConfig", "port")
MAX = ("spec", "maxInstances")
COUNTS = ("spec", "countForLauncher")
BOUNDS = ("spec", "enhancedNodeSelector", "allocatableResources", "nvidia.com/gpu")


@pytest.mark.parametrize(
    ("kind", "path", "value", "error"),
    [
        ("InferenceServerConfig", PORT, 0, "greater than or equal to 1"),
        ("InferenceServerConfig", PORT, 65536, "less than or equal to 65535"),
        ("InferenceServerConfig", PORT, "8000", "valid integer"),
        ("InferenceServerConfig", PORT, True, "valid integer"),
        ("InferenceServerConfig", ("spec", "modelServerConfig", "options"), 1, "valid string"),
        ("InferenceServerConfig", ("spec", "launcherConfigName"), ..., "launcherConfigName"),
        ("InferenceServerConfig", ("spec",), ..., "spec"),
        ("InferenceServerConfig", ("kind",), "LauncherConfig", "kind"),
        ("InferenceServerConfig", ("apiVersion",), "fma.llm-d.ai/v1", "apiVersion"),
        ("LauncherConfig", MAX, 0, "greater than or equal to 1"),
        ("LauncherConfig", MAX, 2**31, "int32"),
        ("LauncherConfig", ("spec", "podTemplate", "spec", "containers", 0, "name"), ..., "name"),
        ("LauncherConfig", ("spec", "podTemplate", "spec", "containers"), ..., "containers"),
        ("LauncherPopulationPolicy", (*COUNTS, 0, "launcherConfigName"), ..., "launcherConfig"),
        ("LauncherPopulationPolicy", (*COUNTS, 0, "launcherCount"), -(2**31) - 1, "int32"),
        ("LauncherPopulationPolicy", (*BOUNDS, "min"), "lots", "should match pattern"),
        ("LauncherPopulationPolicy", (*BOUNDS, "max"), 1.5, "max"),
        (
            "LauncherPopulationPolicy",
            COUNTS,
            [
                {"launcherConfigName": "a", "launcherCount": 1},
                {"launcherConfigName": "a", "launcherCount": 2},
            ],
            "duplicate launcherConfigName 'a'",
        ),
        (
            "LauncherPopulationPolicy",
            ("spec", "enhancedNodeSelector", "labelSelector"),
            ...,
            "labelSelector",
        ),
    ],
)
def test_rejects_what_the_apiserver_rejects(
    kind: str, path: tuple[str | int, ...], value: Any, error: str
) -> None:
    with pytest.raises(ValidationError, match=error):
        MODELS[kind].model_validate(_edited(kind, path, value))


@pytest.mark.parametrize(
    ("kind", "path", "value"),
    [
        # Semantic checks belong to the webhook and controllers, which report them on status.
        ("LauncherPopulationPolicy", (*COUNTS, 0, "launcherCount"), -5),
        ("LauncherPopulationPolicy", (*BOUNDS, "min"), "80Gi"),
        ("LauncherPopulationPolicy", (*BOUNDS, "max"), -1),
        ("LauncherPopulationPolicy", ("spec",), ...),
        ("LauncherConfig", ("spec", "podTemplate", "spec", "containers"), [{"name": "other"}]),
        ("LauncherConfig", ("spec", "podTemplate"), ...),
        ("InferenceServerConfig", ("spec", "launcherConfigName"), ""),
        ("InferenceServerConfig", PORT, 65535),
    ],
)
def test_accepts_what_the_apiserver_accepts(
    kind: str, path: tuple[str | int, ...], value: Any
) -> None:
    MODELS[kind].model_validate(_edited(kind, path, value))
