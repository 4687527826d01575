"""The Mutating- and ValidatingWebhookConfiguration that register fma's webhooks.

`build_webhook_configurations` is pure (settings in, two API objects out, as plain dicts) so the
chart's templates and the unit tests can be compared with it; `apply_webhook_configurations`
writes them through `kube` (create, or replace at the read resourceVersion), and
`register_webhooks` does that from a command line (`asyncio.run` around one short client).

Selector choices, and why:
- **Mutation (Pods, CREATE), `failurePolicy: Ignore`.** If the webhook is down, Pods start as
  ordinary vLLM Pods: slow, but correct. Two entries implement the opt-in without overlap: Pods
  in a namespace labelled `fma.llm-d.ai/inject: enabled` unless the Pod says `"false"`; and Pods
  labelled `fma.llm-d.ai/inject: "true"` in any other namespace. Exactly one entry matches an
  opted-in Pod, so it is mutated once.
- **Pod guard (Pods, CREATE+UPDATE), `failurePolicy: Fail`**, in three entries that never both
  match one Pod on CREATE (`POD_GUARD_NAME` and `POD_GUARD_LABELS`):
  - `pods.fma.llm-d.ai`: every Pod of a namespace labelled `fma.llm-d.ai/served: "true"`, where
    fma's controllers act. There the controllers read the binding from the annotations of any
    Pod (a Pod with only a forged `dual-pods.llm-d.ai/requester` would count as a provider), so
    every Pod write there is checked;
  - `pods-bound.fma.llm-d.ai` and `pods-launchers.fma.llm-d.ai`: in every other namespace, the
    Pods carrying the `dual` label (both Pods of a binding) or the `launcher-config-name` label
    (launchers), by `objectSelector`. Both labels are ones only the controllers may write
    (`keys.PROTECTED_LABELS`), so they cannot be removed to escape the guard, and a Pod cannot
    be created with them by anyone else (the guard is called, and denies it). On UPDATE the
    apiserver calls an entry when the old *or* the new object matches it, so removing the label
    is checked too. Ordinary Pods there never reach the webhook, so `Fail` cannot make the
    cluster's other Pod writes depend on it. What stays unchecked outside served namespaces are
    annotation-only edits of Pods without those labels (an unbound requester's `status`, an
    unbound direct provider): label the namespaces where controllers act.
  The `pods/status` subresource is not registered: kubelets write it constantly, and ordinary
  users are not granted it. `matchConditions` (skip the controllers' own writes) exist only from
  Kubernetes 1.28 (beta) and not at all on 1.20; the chart adds one to `pods.fma.llm-d.ai` where
  the cluster has them, registration never does (the webhook exempts the controllers anyway).
- **CR guard (ISC, LC, LPP; CREATE+UPDATE), `failurePolicy: Fail`**, everywhere: invalid objects
  must never be stored, and only fma's own resources pay for it.
- **The webhook's own namespace is excluded** from both Pod webhooks, so the webhook's Pods can
  always be created even while no webhook is running (no bootstrap deadlock). Kubernetes 1.20
  does not label namespaces with their name (`kubernetes.io/metadata.name` arrived in 1.21), so
  registration labels the webhook's namespace `fma.llm-d.ai/webhook-namespace: "true"` and the
  selectors say `NotIn ["true"]`. Consequence: run the webhook in a namespace of its own, not in
  a namespace fma serves (`apply_webhook_configurations` refuses that combination).
- System namespaces (`kube-system`, ...) carry no opt-in label in practice; the mutation also
  skips them by name (`webhook.mutation.SYSTEM_NAMESPACES`), which selectors cannot do on 1.20.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from contract.keys import (
    DUAL,
    INJECT_LABEL,
    LC_NAME,
    SERVED_NAMESPACE_LABEL,
    WEBHOOK_NAMESPACE_LABEL,
)
from contract.objects import GROUP, VERSION
from crds.models import (
    InferenceServerConfig,
    LauncherConfig,
    LauncherPopulationPolicy,
)
from kube import (
    MUTATING_WEBHOOK_CONFIGURATIONS,
    NAMESPACES,
    VALIDATING_WEBHOOK_CONFIGURATIONS,
    ApiError,
    ConnectionSettings,
    KubeClient,
    ResourceKind,
    http_client,
    metadata,
)

MUTATE_PODS_PATH: Final = "/mutate-pods"
VALIDATE_PODS_PATH: Final = "/validate-pods"
VALIDATE_FMA_PATH: Final = "/validate-fma"
INJECT_NAMESPACE_VALUE: Final = "enabled"
INJECT_POD_VALUE: Final = "true"
INJECT_POD_OPT_OUT: Final = "false"
LABEL_TRUE: Final = "true"
DEFAULT_CONFIGURATION_NAME: Final = "fma-webhook"
DEFAULT_TIMEOUT_SECONDS: Final = 5
MANAGED_BY: Final = {"app.kubernetes.io/managed-by": "fma"}
FIELD_MANAGER: Final = "fma-webhook"
_ATTEMPTS: Final = 5
POD_GUARD_NAME: Final = "pods.fma.llm-d.ai"
"""The Pod guard of served namespaces (every Pod there)."""
POD_GUARD_LABELS: Final[tuple[tuple[str, str], ...]] = (
    ("pods-bound.fma.llm-d.ai", DUAL),
    ("pods-launchers.fma.llm-d.ai", LC_NAME),
)
"""The Pod guard everywhere else: (webhook name, label) in order; an entry takes the Pods that
carry its label and none of the labels before it, so each labelled Pod has one entry on CREATE."""


@dataclass(frozen=True, kw_only=True)
class ServiceReference:
    """The webhook's Service, as the apiserver reaches it in a cluster."""

    namespace: str
    name: str
    port: int = 443


@dataclass(frozen=True, kw_only=True)
class RegistrationSettings:
    """How the apiserver reaches the webhook and how it trusts it.

    Exactly one of `service` (in-cluster) and `url` (a base URL such as `https://127.0.0.1:9443`,
    for the local test control plane, which reaches the webhook over loopback) is set.
    `ca_bundle` is the PEM trust bundle that signed the serving certificate (`ca.crt`).
    """

    ca_bundle: bytes
    service: ServiceReference | None = None
    url: str | None = None
    configuration_name: str = DEFAULT_CONFIGURATION_NAME
    timeout_seconds: int = DEFAULT_TIMEOUT_SECONDS

    def __post_init__(self) -> None:
        if (self.service is None) == (self.url is None):
            raise ValueError("set exactly one of service and url")
        if self.url is not None and not self.url.startswith("https://"):
            raise ValueError("the webhook url must be https://")
        if not 1 <= self.timeout_seconds <= 30:
            raise ValueError("timeout_seconds must be 1..30 (the apiserver's bounds)")
        if b"-----BEGIN CERTIFICATE-----" not in self.ca_bundle:
            raise ValueError("ca_bundle must be PEM certificates")


def _client_config(settings: RegistrationSettings, path: str) -> dict[str, Any]:
    bundle = base64.b64encode(settings.ca_bundle).decode("ascii")
    service = settings.service
    if service is None:
        return {"url": (settings.url or "").rstrip("/") + path, "caBundle": bundle}
    reference = {"namespace": service.namespace, "name": service.name, "path": path}
    return {"service": {**reference, "port": service.port}, "caBundle": bundle}


def _expression(key: str, operator: str, *values: str) -> dict[str, Any]:
    expression: dict[str, Any] = {"key": key, "operator": operator}
    if values:
        expression["values"] = list(values)
    return expression


def _selector(*expressions: dict[str, Any]) -> dict[str, Any]:
    return {"matchExpressions": list(expressions)}


_NOT_WEBHOOK_NAMESPACE: Final = _expression(WEBHOOK_NAMESPACE_LABEL, "NotIn", LABEL_TRUE)


def _pod_rule(*operations: str) -> dict[str, Any]:
    return {
        "apiGroups": [""],
        "apiVersions": ["v1"],
        "resources": ["pods"],
        "operations": list(operations),
        "scope": "Namespaced",
    }


def _webhook(
    settings: RegistrationSettings, name: str, path: str, rule: dict[str, Any], **extra: Any
) -> dict[str, Any]:
    return {
        "name": name,
        "clientConfig": _client_config(settings, path),
        "rules": [rule],
        "sideEffects": "None",
        "admissionReviewVersions": ["v1"],
        "timeoutSeconds": settings.timeout_seconds,
        "matchPolicy": "Equivalent",
        **extra,
    }


def build_mutating_configuration(settings: RegistrationSettings) -> dict[str, Any]:
    """Pods CREATE, opt-in by namespace or by Pod, `Ignore` on failure (see module doc)."""
    common = {"failurePolicy": "Ignore", "reinvocationPolicy": "Never"}
    rule = _pod_rule("CREATE")
    by_namespace = _webhook(
        settings,
        "inject-namespace.fma.llm-d.ai",
        MUTATE_PODS_PATH,
        rule,
        namespaceSelector=_selector(
            _expression(INJECT_LABEL, "In", INJECT_NAMESPACE_VALUE), _NOT_WEBHOOK_NAMESPACE
        ),
        objectSelector=_selector(_expression(INJECT_LABEL, "NotIn", INJECT_POD_OPT_OUT)),
        **common,
    )
    by_pod = _webhook(
        settings,
        "inject-pod.fma.llm-d.ai",
        MUTATE_PODS_PATH,
        rule,
        namespaceSelector=_selector(
            _expression(INJECT_LABEL, "NotIn", INJECT_NAMESPACE_VALUE), _NOT_WEBHOOK_NAMESPACE
        ),
        objectSelector={"matchLabels": {INJECT_LABEL: INJECT_POD_VALUE}},
        **common,
    )
    return _configuration("MutatingWebhookConfiguration", settings, [by_namespace, by_pod])


def build_validating_configuration(settings: RegistrationSettings) -> dict[str, Any]:
    """The CR guard everywhere and the Pod guard (served namespaces, and fma's labelled Pods
    elsewhere), `Fail` on failure (see module doc)."""
    resources = [
        model.PLURAL for model in (InferenceServerConfig, LauncherConfig, LauncherPopulationPolicy)
    ]
    crs = _webhook(
        settings,
        "custom-resources.fma.llm-d.ai",
        VALIDATE_FMA_PATH,
        {
            "apiGroups": [GROUP],
            "apiVersions": [VERSION],
            "resources": resources,
            "operations": ["CREATE", "UPDATE"],
            "scope": "Namespaced",
        },
        failurePolicy="Fail",
    )
    served = _webhook(
        settings,
        POD_GUARD_NAME,
        VALIDATE_PODS_PATH,
        _pod_rule("CREATE", "UPDATE"),
        failurePolicy="Fail",
        namespaceSelector=_selector(
            _expression(SERVED_NAMESPACE_LABEL, "In", LABEL_TRUE), _NOT_WEBHOOK_NAMESPACE
        ),
    )
    elsewhere = _selector(
        _expression(SERVED_NAMESPACE_LABEL, "NotIn", LABEL_TRUE), _NOT_WEBHOOK_NAMESPACE
    )
    labelled = [
        _webhook(
            settings,
            name,
            VALIDATE_PODS_PATH,
            _pod_rule("CREATE", "UPDATE"),
            failurePolicy="Fail",
            namespaceSelector=elsewhere,
            objectSelector=_selector(
                _expression(label, "Exists"),
                *(_expression(before, "DoesNotExist") for _, before in POD_GUARD_LABELS[:index]),
            ),
        )
        for index, (name, label) in enumerate(POD_GUARD_LABELS)
    ]
    return _configuration("ValidatingWebhookConfiguration", settings, [crs, served, *labelled])


def _configuration(
    kind: str, settings: RegistrationSettings, webhooks: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": kind,
        "metadata": {"name": settings.configuration_name, "labels": dict(MANAGED_BY)},
        "webhooks": webhooks,
    }


def build_webhook_configurations(
    settings: RegistrationSettings,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(MutatingWebhookConfiguration, ValidatingWebhookConfiguration) as plain API objects."""
    return build_mutating_configuration(settings), build_validating_configuration(settings)


def namespace_labels(
    *, webhook_namespace: str | None, served_namespaces: Sequence[str] = ()
) -> dict[str, dict[str, str]]:
    """The labels registration sets, by namespace: the webhook's namespace (excluded from the
    Pod webhooks) and the namespaces fma serves (Pod guard on).

    Refuses a webhook namespace that is also served: the exclusion would silently switch the
    Pod guard off there.
    """
    if webhook_namespace is not None and webhook_namespace in served_namespaces:
        raise ValueError(
            f"namespace {webhook_namespace!r} cannot be both the webhook's namespace (excluded "
            "from the Pod webhooks) and served by fma; run the webhook in a namespace of its own"
        )
    labels = {name: {SERVED_NAMESPACE_LABEL: LABEL_TRUE} for name in served_namespaces}
    if webhook_namespace is not None:
        labels[webhook_namespace] = {WEBHOOK_NAMESPACE_LABEL: LABEL_TRUE}
    return labels


async def label_namespaces(
    client: KubeClient,
    *,
    webhook_namespace: str | None,
    served_namespaces: Sequence[str] = (),
) -> None:
    """Merge-patch `namespace_labels` onto the namespaces (ValueError: a bad combination)."""
    wanted = namespace_labels(
        webhook_namespace=webhook_namespace, served_namespaces=served_namespaces
    )
    for name, labels in wanted.items():
        await client.patch(NAMESPACES, name, {"metadata": {"labels": labels}})


async def apply_webhook_configurations(
    client: KubeClient,
    mutating: Mapping[str, Any],
    validating: Mapping[str, Any],
    *,
    webhook_namespace: str | None = None,
    served_namespaces: Sequence[str] = (),
) -> None:
    """Label namespaces (first, so the exclusions hold from the start), then create or replace
    both configurations. Raises `kube.ApiError` on API errors, ValueError on a bad combination."""
    await label_namespaces(
        client, webhook_namespace=webhook_namespace, served_namespaces=served_namespaces
    )
    await _create_or_replace(client, MUTATING_WEBHOOK_CONFIGURATIONS, mutating)
    await _create_or_replace(client, VALIDATING_WEBHOOK_CONFIGURATIONS, validating)


def register_webhooks(
    connection: ConnectionSettings,
    mutating: Mapping[str, Any],
    validating: Mapping[str, Any],
    *,
    webhook_namespace: str | None = None,
    served_namespaces: Sequence[str] = (),
) -> None:
    """`apply_webhook_configurations` from synchronous code (a CLI): one client, then closed."""
    namespace_labels(webhook_namespace=webhook_namespace, served_namespaces=served_namespaces)

    async def run() -> None:
        client = KubeClient(http_client(connection), field_manager=FIELD_MANAGER)
        try:
            await apply_webhook_configurations(
                client,
                mutating,
                validating,
                webhook_namespace=webhook_namespace,
                served_namespaces=served_namespaces,
            )
        finally:
            await client.aclose()

    asyncio.run(run())


async def _create_or_replace(
    client: KubeClient, kind: ResourceKind, body: Mapping[str, Any]
) -> None:
    """Create, or replace at the resourceVersion just read; retry if someone else wrote."""
    name = body["metadata"]["name"]
    for _ in range(_ATTEMPTS):
        try:
            version = metadata(await client.get(kind, name)).get("resourceVersion")
        except ApiError as error:
            if not error.not_found:
                raise
            version = None
        try:
            if version is None:
                await client.create(kind, dict(body))
            else:
                meta = {**body["metadata"], "resourceVersion": version}
                await client.replace(kind, {**body, "metadata": meta})
        except ApiError as error:
            if error.conflict:  # a newer version, or created meanwhile (AlreadyExists)
                continue
            raise
        return
    raise RuntimeError(f"{body['kind']} {name} kept changing during {_ATTEMPTS} attempts")
