"""charts/fma's two certificate modes: cert-manager (default) and self-managed (fma-certs)."""

from __future__ import annotations

from typing import Any, Final

from certs.bundle import service_dns_names
from tests.chart import support
from tests.chart.support import NAMESPACE, VALUE_SETS, render

CONFIGURATION_KINDS: Final = ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration")
SYNC_SCRIPT: Final = support.CHART_DIR / "files" / "sync_ca_bundle.py"


def _tls_volume(rendered: support.Rendered) -> dict[str, Any]:
    spec = support.pod_spec(rendered.get("Deployment", "fma-webhook"))
    assert spec is not None
    [volume] = [v for v in spec["volumes"] if v["name"] == "tls"]
    return dict(volume)


def test_cert_manager_mode_issues_and_injects() -> None:
    rendered = render()
    certificate = rendered.get("Certificate", "fma-webhook")["spec"]
    assert certificate["dnsNames"] == service_dns_names("fma-webhook", NAMESPACE)
    assert certificate["issuerRef"] == {
        "group": "cert-manager.io",
        "kind": "Issuer",
        "name": "fma-ca",
    }
    assert rendered.get("Certificate", "fma-ca")["spec"]["isCA"] is True
    assert rendered.get("Issuer", "fma-ca")["spec"] == {"ca": {"secretName": "fma-ca"}}
    assert rendered.get("Issuer", "fma-selfsigned")["spec"] == {"selfSigned": {}}
    for kind in CONFIGURATION_KINDS:
        configuration = rendered.get(kind, "fma-webhook")
        assert support.annotations_of(configuration) == {
            "cert-manager.io/inject-ca-from": f"{NAMESPACE}/fma-webhook"
        }
        assert all("caBundle" not in w["clientConfig"] for w in configuration["webhooks"])
    assert _tls_volume(rendered)["secret"] == {
        "secretName": certificate["secretName"],
        "defaultMode": 0o440,
    }
    assert not rendered.of_kind("Job") and not rendered.of_kind("CronJob")


def test_cert_manager_mode_with_an_existing_issuer() -> None:
    rendered = render(VALUE_SETS["issuer-ref"])
    assert rendered.names("Issuer") == set()
    assert rendered.names("Certificate") == {"fma-webhook"}
    issuer = rendered.get("Certificate", "fma-webhook")["spec"]["issuerRef"]
    assert issuer == {"name": "corp-ca", "kind": "ClusterIssuer", "group": "cert-manager.io"}


def test_self_managed_mode_runs_fma_certs_in_hooks_and_a_cronjob() -> None:
    rendered = render(VALUE_SETS["self-managed"])
    assert not [o for o in rendered.objects if o["apiVersion"].startswith("cert-manager.io/")]
    for kind in CONFIGURATION_KINDS:
        assert support.annotations_of(rendered.get(kind, "fma-webhook")) == {}
    hooks = {
        (o["kind"], o["metadata"]["name"]): support.annotations_of(o)["helm.sh/hook"]
        for o in rendered.hooks
    }
    assert hooks[("Job", "fma-certs-pre")] == "pre-install,pre-upgrade"
    assert hooks[("Job", "fma-certs-post")] == "post-install,post-upgrade"
    every_phase = "pre-install,pre-upgrade,post-install,post-upgrade"
    for kind in ("ServiceAccount", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"):
        assert hooks[(kind, "fma-certs-hook")] == every_phase
    webhook_secret = _tls_volume(rendered)["secret"]["secretName"]
    cronjob = rendered.get("CronJob", "fma-certs-renew")
    jobs = [rendered.get("Job", "fma-certs-pre"), rendered.get("Job", "fma-certs-post")]
    for job in [cronjob, *jobs]:
        ensure = support.container(job, "ensure")["args"]
        assert ensure[:5] == [
            "ensure",
            f"--secret={webhook_secret}",
            f"--ca-secret={webhook_secret}-ca",
            f"--namespace={NAMESPACE}",
            "--service=fma-webhook",
        ]
        sync = support.container(job, "sync-ca-bundle")
        assert sync["command"][:2] == ["python", "-c"]
        assert sync["command"][2] == SYNC_SCRIPT.read_text()
        assert ("--allow-missing" in sync["args"]) is (job["metadata"]["name"] == "fma-certs-pre")
    assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"
    assert "fma-certs-renew" in rendered.notes
