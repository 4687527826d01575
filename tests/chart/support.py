"""charts/fma through helm-python-sdk: render, lint, install and uninstall, without a helm binary.

helm-python-sdk 0.2.2 binds Helm v4's Go SDK. Its Python wrapper does not forward every option
the native library accepts: `kube_version` when rendering (what the templates see as
`.Capabilities.KubeVersion`) and `disable_hooks` for install, upgrade and uninstall.
`_native_call` hands them to the native entry points the wrapper itself uses, as the JSON
options the Go SDK reads; the dev extra pins the SDK's version for that reason.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import helm_python
import yaml
from helm_python import _native

REPO: Final = Path(__file__).resolve().parents[2]
CHART_DIR: Final = REPO / "charts" / "fma"
RELEASE: Final = "fma"
NAMESPACE: Final = "fma-system"
HOOK_ANNOTATION: Final = "helm.sh/hook"
KUBE_VERSIONS: Final = ("v1.20.2", "v1.29.0", "v1.33.0")
"""The local control plane's version, and the two the offline schemas are checked against."""

JsonObject = dict[str, Any]

VALUE_SETS: Final[Mapping[str, JsonObject]] = {
    "defaults": {},
    "self-managed": {"certificates": {"mode": "self-managed"}},
    "control-auth-off": {
        "certificates": {"mode": "self-managed"},
        "controlAuth": {"enabled": False},
    },
    "custom-image": {
        "image": {"repository": "registry.example.com/ml/fma", "tag": "1.2.3"},
        "imagePullSecrets": [{"name": "regcred"}],
        "webhook": {"requesterImage": "registry.example.com/ml/fma-stub:1.2.3"},
    },
    "image-digest": {"image": {"digest": "sha256:" + "ab" * 32, "pullPolicy": "Always"}},
    "served-namespace": {
        "servedNamespace": "llm",
        "controller": {"sleeperLimit": 3, "numWorkers": 4, "memoryCheck": False},
    },
    "issuer-ref": {
        "certificates": {
            "certManager": {
                "issuerRef": {
                    "name": "corp-ca",
                    "kind": "ClusterIssuer",
                    "group": "cert-manager.io",
                }
            }
        }
    },
    "single-replica": {
        "commonLabels": {"team": "ml-platform"},
        "webhook": {
            "replicas": 1,
            "podAntiAffinity": "hard",
            "podDisruptionBudget": {"enabled": False, "minAvailable": 1},
            "timeoutSeconds": 10,
            "extraControllerUsernames": ["system:serviceaccount:ops:fma-operator"],
        },
        "controller": {"replicas": 1, "leaderElection": {"enabled": False}},
    },
}
"""Value sets every offline check runs over (the install test uses `self-managed`)."""


def _native_call(function: str, *args: Any) -> Any:
    return json.loads(_native.call_string(function, *args))


@dataclass(frozen=True)
class Rendered:
    """What one `helm template` would print: the objects (hooks included) and the notes."""

    objects: list[JsonObject]
    notes: str

    def of_kind(self, kind: str) -> list[JsonObject]:
        return [o for o in self.objects if o["kind"] == kind]

    def get(self, kind: str, name: str) -> JsonObject:
        matches = [o for o in self.of_kind(kind) if o["metadata"]["name"] == name]
        assert len(matches) == 1, f"{kind}/{name}: {len(matches)} rendered"
        return matches[0]

    def names(self, kind: str) -> set[str]:
        return {o["metadata"]["name"] for o in self.of_kind(kind)}

    @property
    def hooks(self) -> list[JsonObject]:
        return [o for o in self.objects if HOOK_ANNOTATION in annotations_of(o)]

    @property
    def resources(self) -> list[JsonObject]:
        """The release's own objects (what `helm install --no-hooks` creates, CRDs aside)."""
        return [o for o in self.objects if HOOK_ANNOTATION not in annotations_of(o)]


def annotations_of(obj: Mapping[str, Any]) -> dict[str, str]:
    return dict((obj.get("metadata") or {}).get("annotations") or {})


def render(
    values: Mapping[str, Any] | None = None,
    *,
    kube_version: str = "v1.29.0",
    namespace: str = NAMESPACE,
    release: str = RELEASE,
) -> Rendered:
    """Render offline as Kubernetes `kube_version` would be told (`.Capabilities.KubeVersion`).

    Raises helm_python.HelmRenderError (a `fail` in a template) or HelmValuesError (schema)."""
    options = {
        "name": release,
        "namespace": namespace,
        "is_install": True,
        "kube_version": kube_version,
    }
    with helm_python.Chart.load(CHART_DIR) as chart:
        files: dict[str, str] = _native_call(
            "helm_render", chart._raw(), json.dumps(dict(values or {})), json.dumps(options)
        )
    objects: list[JsonObject] = []
    notes = ""
    for path, text in sorted(files.items()):
        if path.endswith("NOTES.txt"):
            notes = text
            continue
        objects += [doc for doc in yaml.safe_load_all(text) if doc]
    return Rendered(objects, notes)


def chart_crds() -> list[JsonObject]:
    """The CRDs in the chart's crds/ folder, which Helm installs before anything else."""
    with helm_python.Chart.load(CHART_DIR) as chart:
        return [yaml.safe_load(crd["data"]) for crd in chart.crds]


def lint(values: Mapping[str, Any] | None, *, kube_version: str) -> dict[str, Any]:
    """`helm lint --strict` with the target version; returns the SDK's report."""
    return helm_python.lint(
        CHART_DIR, dict(values or {}), strict=True, namespace=NAMESPACE, kube_version=kube_version
    )


def validate_values(values: Mapping[str, Any]) -> None:
    """values.schema.json check; raises helm_python.HelmValuesError naming the key."""
    with helm_python.Chart.load(CHART_DIR) as chart:
        chart.validate_schema(dict(values))


def install(
    kubeconfig: Path,
    values: Mapping[str, Any],
    *,
    release: str,
    namespace: str,
    disable_hooks: bool,
) -> JsonObject:
    """`helm install [--no-hooks]` into the cluster of `kubeconfig`; returns the release."""
    options = {"namespace": namespace, "disable_hooks": disable_hooks, "timeout_seconds": 120}
    with (
        helm_python.Config(kubeconfig_path=kubeconfig, namespace=namespace) as config,
        helm_python.Chart.load(CHART_DIR) as chart,
    ):
        release_info: JsonObject = _native_call(
            "helm_install",
            config._raw(),
            _native.HANDLE(0),
            chart._raw(),
            None,
            release,
            json.dumps(dict(values)),
            json.dumps(options),
        )
    return release_info


def upgrade(
    kubeconfig: Path,
    values: Mapping[str, Any],
    *,
    release: str,
    namespace: str,
    disable_hooks: bool,
) -> JsonObject:
    """`helm upgrade [--no-hooks]` of an installed release; returns the new revision."""
    options = {"namespace": namespace, "disable_hooks": disable_hooks, "timeout_seconds": 120}
    with (
        helm_python.Config(kubeconfig_path=kubeconfig, namespace=namespace) as config,
        helm_python.Chart.load(CHART_DIR) as chart,
    ):
        release_info: JsonObject = _native_call(
            "helm_upgrade",
            config._raw(),
            _native.HANDLE(0),
            chart._raw(),
            None,
            release,
            json.dumps(dict(values)),
            json.dumps(options),
        )
    return release_info


def uninstall(kubeconfig: Path, *, release: str, namespace: str, disable_hooks: bool) -> None:
    """`helm uninstall [--no-hooks]`; a release that is not there is not an error."""
    options = {"disable_hooks": disable_hooks, "ignore_not_found": True, "timeout_seconds": 120}
    with helm_python.Config(kubeconfig_path=kubeconfig, namespace=namespace) as config:
        _native_call("helm_uninstall", config._raw(), release, json.dumps(options))


def containers(obj: Mapping[str, Any]) -> Iterator[JsonObject]:
    """Every container and init container of a Deployment, Job or CronJob."""
    spec = pod_spec(obj)
    if spec is not None:
        yield from spec.get("initContainers") or []
        yield from spec.get("containers") or []


def pod_spec(obj: Mapping[str, Any]) -> JsonObject | None:
    spec = obj.get("spec") or {}
    if obj.get("kind") == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    template = spec.get("template")
    return template["spec"] if template else None


def container(obj: Mapping[str, Any], name: str) -> JsonObject:
    matches = [c for c in containers(obj) if c["name"] == name]
    assert len(matches) == 1, f"container {name}: {len(matches)} found"
    return matches[0]


def argv(container_spec: Mapping[str, Any]) -> list[str]:
    return [*container_spec.get("command", []), *container_spec.get("args", [])]
