"""The admission handlers: decode an AdmissionReview, call a pure function, encode the answer.

Everything that decides lives in `webhook.mutation` and `webhook.validation`; this module only
gathers their inputs from the watch cache, counts and logs the outcome, and turns exceptions into
answers that match each webhook's failure policy:
- a Pod mutation that fails admits the Pod unchanged with a warning (a Pod is never broken by
  the webhook, as with failurePolicy Ignore);
- a validation that fails denies with "internal error" (as with failurePolicy Fail: a guard that
  cannot decide must not wave writes through).
A body that is not an AdmissionReview gets HTTP 400, which the apiserver treats as a call failure
and handles by the configured failure policy.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable, Container, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal, Protocol

from pydantic import ValidationError

from crds.models import InferenceServerConfig
from jsonlog import fields
from webhook.admission import AdmissionRequest, AdmissionReview, allow, parse_review, patch_response
from webhook.cache import OWNER_KINDS, OwnerSelector
from webhook.metrics import WebhookMetrics
from webhook.mutation import MutationContext, MutationResult, MutationSettings, mutate_pod
from webhook.validation import (
    ValidationContext,
    ValidationSettings,
    Verdict,
    validate_custom_resource,
    validate_pod,
)

_log = logging.getLogger("webhook.admission")

WebhookName = Literal["mutate-pods", "validate-pods", "validate-fma"]
_OWNER_POLL_S: Final = 0.01
_INTERNAL_ERROR_WARNING: Final = (
    "fma webhook: internal error while rewriting this Pod; it was admitted unchanged "
    "(see the webhook's logs)"
)


class CacheView(Protocol):
    """What the handlers read from the watch cache (`webhook.cache.WebhookCache`)."""

    @property
    def synced(self) -> bool: ...

    @property
    def launcher_configs(self) -> Container[tuple[str, str]]: ...

    def namespace_labels(self, namespace: str) -> Mapping[str, str] | None: ...

    def iscs(self, namespace: str) -> Sequence[InferenceServerConfig]: ...

    def owner(self, kind: str, namespace: str, name: str) -> OwnerSelector | None: ...


class BadReviewError(ValueError):
    """The request body is not an AdmissionReview with a request (HTTP 400)."""


@dataclass(frozen=True, kw_only=True)
class Handlers:
    """The three admission webhooks over one cache, one set of settings and one metrics set."""

    cache: CacheView
    mutation_settings: MutationSettings
    validation_settings: ValidationSettings
    metrics: WebhookMetrics
    owner_wait_s: float = 0.5
    control_trust: Callable[[], str] | None = None
    """The current control CA bundle (a reloaded file); each mutation gives the stub the bundle
    of that moment. None: `mutation_settings.control_trust` as it is."""

    def decode(self, webhook: WebhookName, body: bytes) -> AdmissionRequest:
        try:
            request = parse_review(body)
        except (ValidationError, ValueError) as exc:
            self.metrics.errors.labels(webhook=webhook, stage="decode").inc()
            raise BadReviewError(_short(exc)) from exc
        self.metrics.requests.labels(webhook=webhook, operation=request.operation).inc()
        return request

    # ----- mutating: Pods -------------------------------------------------------------------

    async def mutate_pods(self, body: bytes) -> bytes:
        request = self.decode("mutate-pods", body)
        pod = request.object
        if request.operation != "CREATE" or not isinstance(pod, dict):
            return _encode(allow(request.uid))
        try:
            result = await self._mutate(request.namespace, pod)
        except Exception:
            self.metrics.errors.labels(webhook="mutate-pods", stage="handler").inc()
            _log.exception("mutation failed", extra=_pod_fields(request, "mutation_failed"))
            return _encode(allow(request.uid, warnings=[_INTERNAL_ERROR_WARNING]))
        self._record_mutation(request, result)
        return _encode(patch_response(request.uid, result.patch, result.warnings))

    async def _mutate(self, namespace: str, pod: dict[str, Any]) -> MutationResult:
        """`mutate_pod` with the owner's selector, waiting briefly for it only when it matters.

        The selector matters only in direct mode (the server patch nulls its labels), and a
        watched owner (ReplicaSet, StatefulSet) is missing from the cache only in the moment
        between its creation and its watch event, so the common path never waits. Owners of
        other kinds are never cached: `mutate_pod` drops all of the Pod's labels for them.
        """
        owner = controller_of(pod)
        found = self._lookup(namespace, owner) if owner else None
        result = mutate_pod(pod, self._context(namespace, found))
        if owner is None or owner.kind not in OWNER_KINDS:
            return result
        if found is not None or result.mode != "direct":
            return result
        deadline = time.monotonic() + self.owner_wait_s
        while found is None and time.monotonic() < deadline:
            await asyncio.sleep(_OWNER_POLL_S)
            found = self._lookup(namespace, owner)
        if found is None:
            return result  # `mutate_pod` already dropped all of the Pod's labels
        return mutate_pod(pod, self._context(namespace, found))

    def _lookup(self, namespace: str, owner: OwnerRef) -> Mapping[str, Any] | None:
        cached = self.cache.owner(owner.kind, namespace, owner.name)
        if cached is None or (owner.uid and cached.uid and cached.uid != owner.uid):
            return None
        return cached.selector

    def _context(self, namespace: str, selector: Mapping[str, Any] | None) -> MutationContext:
        return MutationContext(
            namespace=namespace,
            namespace_labels=self.cache.namespace_labels(namespace) or {},
            iscs=self.cache.iscs(namespace),
            owner_selector=selector,
            settings=self._mutation_settings(),
        )

    def _mutation_settings(self) -> MutationSettings:
        if self.control_trust is None:
            return self.mutation_settings
        return dataclasses.replace(self.mutation_settings, control_trust=self.control_trust())

    def _record_mutation(self, request: AdmissionRequest, result: MutationResult) -> None:
        if result.mode is not None and result.patch:
            self.metrics.mutations.labels(mode=result.mode).inc()
            _log.info("mutated", extra=_pod_fields(request, "mutated", mode=result.mode))
        elif result.skipped is not None:
            category = result.skip_code or "malformed"
            self.metrics.skips.labels(reason=category).inc()
            if category == "internal_error":
                self.metrics.errors.labels(webhook="mutate-pods", stage="handler").inc()
            level = logging.INFO if result.warnings else logging.DEBUG
            _log.log(
                level,
                "skipped",
                extra=_pod_fields(request, "skipped", category=category, reason=result.skipped),
            )

    # ----- validating: Pods and fma's custom resources --------------------------------------

    async def validate_pods(self, body: bytes) -> bytes:
        return self._validate("validate-pods", body, validate_pod)

    async def validate_fma(self, body: bytes) -> bytes:
        return self._validate("validate-fma", body, validate_custom_resource)

    def _validate(
        self,
        webhook: WebhookName,
        body: bytes,
        check: Callable[[AdmissionRequest, ValidationContext], Verdict],
    ) -> bytes:
        request = self.decode(webhook, body)
        context = ValidationContext(
            settings=self.validation_settings,
            launcher_configs=self.cache.launcher_configs if self.cache.synced else None,
        )
        try:
            verdict = check(request, context)
        except Exception:
            self.metrics.errors.labels(webhook=webhook, stage="handler").inc()
            _log.exception("validation failed", extra=_request_fields(request, "error"))
            verdict = Verdict(False, "fma webhook: internal error; see its logs", code=500)
        if not verdict.allowed:
            self.metrics.denials.labels(webhook=webhook, resource=request.resource.resource).inc()
            _log.info("denied", extra=_request_fields(request, "denied", message=verdict.message))
        return _encode(verdict.to_review(request.uid))


@dataclass(frozen=True)
class OwnerRef:
    kind: str
    name: str
    uid: str


def controller_of(pod: Mapping[str, Any]) -> OwnerRef | None:
    """The Pod's controlling owner reference (`controller: true`), if any."""
    meta = pod.get("metadata")
    refs = meta.get("ownerReferences") if isinstance(meta, dict) else None
    if not isinstance(refs, list):
        return None
    for ref in refs:
        if isinstance(ref, dict) and ref.get("controller") is True:
            return OwnerRef(
                str(ref.get("kind", "")), str(ref.get("name", "")), str(ref.get("uid", ""))
            )
    return None


def _encode(review: AdmissionReview) -> bytes:
    return review.model_dump_json(exclude_none=True).encode()


def _short(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"  # no loc: the JSON itself
        return f"not an AdmissionReview v1: {where}: {first['msg']}"
    return str(exc)


def _request_fields(request: AdmissionRequest, event: str, **extra: Any) -> dict[str, Any]:
    return fields(
        event=event,
        uid=request.uid,
        operation=request.operation,
        resource=request.resource.resource,
        namespace=request.namespace,
        name=request.name,
        user=request.user_info.username,
        dry_run=request.dry_run,
        **extra,
    )


def _pod_fields(request: AdmissionRequest, event: str, **extra: Any) -> dict[str, Any]:
    pod = request.object or {}
    meta = pod.get("metadata")
    meta = meta if isinstance(meta, dict) else {}  # the apiserver's schema is not ours to trust
    name = request.name or meta.get("name") or f"{meta.get('generateName', '')}*"
    return fields(
        event=event,
        uid=request.uid,
        namespace=request.namespace,
        pod=name,
        dry_run=request.dry_run,
        **extra,
    )
