"""Copy the webhook's CA bundle into its webhook configurations; tie its Secrets to the release.

The chart runs this in self-managed certificate mode, right after `fma-certs ensure --secret`
(in the Helm hook Jobs and in the renewal CronJob), as `python -c <this file> ARGS`:

    --namespace NS --secret TLS --ca-secret CA --configuration NAME
    [--owner-service SVC [--adopt-secret NAME]...] [--allow-missing] [--kubeconfig FILE]

1. It reads `ca.crt` of the serving Secret TLS: the trust bundle `fma-certs` keeps (the current
   CA, plus a rotated-out CA until that one expires, so the running webhook stays trusted while it
   reloads its new certificate).
2. It sets `clientConfig.caBundle` of every webhook of the MutatingWebhookConfiguration and the
   ValidatingWebhookConfiguration NAME. The JSON patch tests each webhook's name at its index
   first, so a concurrent edit of the list fails the patch instead of patching the wrong entry.
   An unchanged bundle is not written.
3. With `--owner-service`, it adds an ownerReference to that Service on the Secrets TLS and CA,
   and on each `--adopt-secret` (the controller's control credential and its CA, which
   `fma-certs ensure-control` writes). `fma-certs` writes them, not Helm, so without it
   `helm uninstall` would leave them behind; with it, the garbage collector deletes them together
   with the Service.

`--allow-missing` skips configurations and a Service that do not exist yet: the pre-install hook
runs before Helm creates them, and the post-install hook finishes the job. It needs only the
`kubernetes` client, which the fma image has. It prints one JSON object saying what it changed.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import kubernetes.client
import kubernetes.config
from kubernetes.client.rest import ApiException

JsonPatch = list[dict[str, Any]]
_JSON_PATCH = "application/json-patch+json"
_NOT_FOUND = 404


def bundle_patch(configuration: Mapping[str, Any], bundle_b64: str) -> JsonPatch:
    """The JSON patch setting every webhook's `caBundle` to `bundle_b64` (empty: nothing to do)."""
    patch: JsonPatch = []
    for index, webhook in enumerate(configuration.get("webhooks") or []):
        client_config = webhook.get("clientConfig") or {}
        if client_config.get("caBundle") == bundle_b64:
            continue
        patch.append({"op": "test", "path": f"/webhooks/{index}/name", "value": webhook["name"]})
        patch.append(
            {"op": "add", "path": f"/webhooks/{index}/clientConfig/caBundle", "value": bundle_b64}
        )
    return patch


def owner_patch(metadata: Mapping[str, Any], owner: Mapping[str, Any]) -> JsonPatch:
    """The JSON patch that adds `owner` to `metadata.ownerReferences` (empty: already there).

    It tests the resourceVersion it read, so two runners cannot both append."""
    references = metadata.get("ownerReferences") or []
    if any(reference.get("uid") == owner["uid"] for reference in references):
        return []
    guard = {
        "op": "test",
        "path": "/metadata/resourceVersion",
        "value": metadata["resourceVersion"],
    }
    if references:
        return [guard, {"op": "add", "path": "/metadata/ownerReferences/-", "value": dict(owner)}]
    return [guard, {"op": "add", "path": "/metadata/ownerReferences", "value": [dict(owner)]}]


def service_owner(service: Mapping[str, Any]) -> dict[str, Any]:
    """An ownerReference to `service` (not controlling, not blocking its deletion)."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "name": service["metadata"]["name"],
        "uid": service["metadata"]["uid"],
    }


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sync_ca_bundle", description=__doc__.split("\n")[0])
    parser.add_argument("--namespace", required=True, help="namespace of the Secrets and Service")
    parser.add_argument("--secret", required=True, help="serving Secret holding ca.crt")
    parser.add_argument("--ca-secret", default="", help="CA Secret (default: <secret>-ca)")
    parser.add_argument("--configuration", required=True, help="name of both configurations")
    parser.add_argument("--owner-service", default="", help="Service that owns the Secrets")
    parser.add_argument(
        "--adopt-secret", action="append", default=[], help="another Secret the Service owns"
    )
    parser.add_argument("--allow-missing", action="store_true", help="skip absent objects")
    parser.add_argument("--kubeconfig", default=None, help="default: in-cluster")
    return parser


def _client(kubeconfig: str | None) -> Any:
    if kubeconfig:
        return kubernetes.config.new_client_from_config(config_file=kubeconfig)
    configuration = kubernetes.client.Configuration()
    kubernetes.config.load_incluster_config(client_configuration=configuration)
    return kubernetes.client.ApiClient(configuration)


def _read(read: Callable[..., Any], *args: str, allow_missing: bool) -> dict[str, Any] | None:
    """The object as plain JSON, or None when it is absent and that is allowed."""
    try:
        response = read(*args, _preload_content=False)
    except ApiException as error:
        if error.status == _NOT_FOUND and allow_missing:
            return None
        raise
    body: dict[str, Any] = json.loads(response.data)
    return body


def sync(args: argparse.Namespace, api_client: Any) -> dict[str, Any]:
    """Steps 1-3 of the module doc; returns what changed, by object."""
    core = kubernetes.client.CoreV1Api(api_client)
    admission = kubernetes.client.AdmissionregistrationV1Api(api_client)
    secret = _read(core.read_namespaced_secret, args.secret, args.namespace, allow_missing=False)
    bundle = (secret or {}).get("data", {}).get("ca.crt", "")
    if not base64.b64decode(bundle).strip():
        raise ValueError(
            f"Secret {args.namespace}/{args.secret} has no ca.crt; run fma-certs first"
        )
    changed: dict[str, Any] = {}
    for kind, read, patch in (
        (
            "MutatingWebhookConfiguration",
            admission.read_mutating_webhook_configuration,
            admission.patch_mutating_webhook_configuration,
        ),
        (
            "ValidatingWebhookConfiguration",
            admission.read_validating_webhook_configuration,
            admission.patch_validating_webhook_configuration,
        ),
    ):
        configuration = _read(read, args.configuration, allow_missing=args.allow_missing)
        operations = bundle_patch(configuration, bundle) if configuration else []
        if operations:
            patch(args.configuration, operations, _content_type=_JSON_PATCH)
        changed[kind] = "absent" if configuration is None else bool(operations)
    if args.owner_service:
        service = _read(
            core.read_namespaced_service,
            args.owner_service,
            args.namespace,
            allow_missing=args.allow_missing,
        )
        for name in (args.secret, args.ca_secret or f"{args.secret}-ca", *args.adopt_secret):
            changed[f"Secret/{name}"] = _adopt(core, args.namespace, name, service)
    return changed


def _adopt(core: Any, namespace: str, name: str, service: dict[str, Any] | None) -> Any:
    if service is None:
        return "no owner yet"
    secret = _read(core.read_namespaced_secret, name, namespace, allow_missing=True)
    if secret is None:
        return "absent"
    operations = owner_patch(secret["metadata"], service_owner(service))
    if operations:
        core.patch_namespaced_secret(name, namespace, operations, _content_type=_JSON_PATCH)
    return bool(operations)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    api_client = _client(args.kubeconfig)
    try:
        print(json.dumps({"changed": sync(args, api_client)}, sort_keys=True))
    except (ApiException, ValueError) as error:
        print(f"sync_ca_bundle: {error}", file=sys.stderr)
        return 1
    finally:
        api_client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
