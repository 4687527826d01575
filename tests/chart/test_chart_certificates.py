"""charts/fma's two certificate modes: cert-manager (default) and self-managed (fma-certs), for
the webhook's serving certificate and the controller's control credential (`controlAuth`)."""

from __future__ import annotations

import posixpath
from typing import Any, Final

import pytest

from certs.bundle import service_dns_names
from contract import auth
from tests.chart import support
from tests.chart.support import NAMESPACE, VALUE_SETS, render

CONFIGURATION_KINDS: Final = ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration")
SYNC_SCRIPT: Final = support.CHART_DIR / "files" / "sync_ca_bundle.py"
MODES: Final = ("cert-manager", "self-managed")
CONTROL_SECRET: Final = "fma-control"
CONTROL_CA_SECRET: Final = "fma-control-ca"
OFF: Final = {"controlAuth": {"enabled": False}}


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
    """The user's issuer signs the webhook only: the control CA is always the chart's own."""
    rendered = render(VALUE_SETS["issuer-ref"])
    assert rendered.names("Issuer") == {"fma-selfsigned", CONTROL_CA_SECRET}
    assert rendered.names("Certificate") == {"fma-webhook", CONTROL_CA_SECRET, CONTROL_SECRET}
    issuer = rendered.get("Certificate", "fma-webhook")["spec"]["issuerRef"]
    assert issuer == {"name": "corp-ca", "kind": "ClusterIssuer", "group": "cert-manager.io"}
    without_control = render({**VALUE_SETS["issuer-ref"], **OFF})
    assert without_control.names("Issuer") == set()
    assert without_control.names("Certificate") == {"fma-webhook"}


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


def _values(mode: str, **extra: Any) -> dict[str, Any]:
    return {"certificates": {"mode": mode}, **extra}


def _volume(rendered: support.Rendered, deployment: str, name: str) -> dict[str, Any] | None:
    spec = support.pod_spec(rendered.get("Deployment", deployment))
    assert spec is not None
    return next((dict(v) for v in spec["volumes"] if v["name"] == name), None)


def _mount_path(rendered: support.Rendered, deployment: str, container: str, name: str) -> str:
    mounts = support.container(rendered.get("Deployment", deployment), container)["volumeMounts"]
    [path] = [m["mountPath"] for m in mounts if m["name"] == name]
    return str(path)


def test_cert_manager_mode_issues_the_control_credential_under_its_own_ca() -> None:
    rendered = render()
    ca = rendered.get("Certificate", CONTROL_CA_SECRET)["spec"]
    assert ca == {
        "isCA": True,
        "commonName": CONTROL_CA_SECRET,
        "secretName": CONTROL_CA_SECRET,
        "duration": "87600h",
        # Renewals keep the key: Pods hold the bundle they were created with.
        "privateKey": {"algorithm": "ECDSA", "size": 256, "rotationPolicy": "Never"},
        "issuerRef": {"group": "cert-manager.io", "kind": "Issuer", "name": "fma-selfsigned"},
    }
    assert ca["secretName"] != rendered.get("Certificate", "fma-ca")["spec"]["secretName"]
    assert rendered.get("Issuer", CONTROL_CA_SECRET)["spec"] == {
        "ca": {"secretName": CONTROL_CA_SECRET}
    }
    leaf = rendered.get("Certificate", CONTROL_SECRET)["spec"]
    assert leaf == {
        "secretName": CONTROL_SECRET,
        "commonName": auth.CONTROLLER_COMMON_NAME,
        "uris": [auth.CONTROLLER_IDENTITY_URI],
        "duration": "720h",
        "renewBefore": "240h",
        "usages": ["client auth", "digital signature"],
        "privateKey": {"algorithm": "ECDSA", "size": 256, "rotationPolicy": "Always"},
        "issuerRef": {"group": "cert-manager.io", "kind": "Issuer", "name": CONTROL_CA_SECRET},
    }


def test_self_managed_mode_runs_fma_certs_ensure_control_everywhere_the_webhook_one_runs() -> None:
    rendered = render(VALUE_SETS["self-managed"])
    for kind, name in (
        ("CronJob", "fma-certs-renew"),
        ("Job", "fma-certs-pre"),
        ("Job", "fma-certs-post"),
    ):
        job = rendered.get(kind, name)
        spec = support.pod_spec(job)
        assert spec is not None
        assert [c["name"] for c in spec["initContainers"]] == ["ensure", "ensure-control"]
        ensure = support.container(job, "ensure-control")
        assert support.argv(ensure) == [
            "fma-certs",
            "ensure-control",
            f"--secret={CONTROL_SECRET}",
            f"--ca-secret={CONTROL_CA_SECRET}",
            f"--namespace={NAMESPACE}",
            "--leaf-lifetime=30d",
            "--renew-before=10d",
            "--ca-lifetime=3650d",
            "--ca-renew-before=90d",
        ]
        sync = support.container(job, "sync-ca-bundle")["args"]
        adopted = [a.split("=", 1)[1] for a in sync if a.startswith("--adopt-secret=")]
        assert adopted == [CONTROL_SECRET, CONTROL_CA_SECRET]
    for role in ("fma-certs", "fma-certs-hook"):
        names = rendered.get("Role", role)["rules"][1]["resourceNames"]
        assert {CONTROL_SECRET, CONTROL_CA_SECRET} <= set(names)


@pytest.mark.parametrize("mode", MODES)
def test_the_controller_mounts_the_credential_and_the_webhook_only_the_bundle(mode: str) -> None:
    rendered = render(_values(mode))
    controller = support.container(rendered.get("Deployment", "fma-controller"), "controller")
    assert f"--control-credentials-dir={auth.CREDENTIALS_DIR}" in controller["args"]
    assert not any(a.startswith("--control-auth") for a in controller["args"])
    assert _volume(rendered, "fma-controller", "control") == {
        "name": "control",
        "secret": {"secretName": CONTROL_SECRET, "defaultMode": 0o440},
    }
    path = _mount_path(rendered, "fma-controller", "controller", "control")
    assert path == auth.CREDENTIALS_DIR
    webhook = support.container(rendered.get("Deployment", "fma-webhook"), "webhook")
    assert f"--control-trust-file={auth.TRUST_FILE}" in webhook["args"]
    assert not any(a.startswith("--control-auth") for a in webhook["args"])
    assert _volume(rendered, "fma-webhook", "control-trust") == {
        "name": "control-trust",
        "secret": {
            "secretName": CONTROL_SECRET,
            "items": [{"key": auth.CA_FILE, "path": auth.CA_FILE}],
            "defaultMode": 0o440,
        },
    }
    trust_dir = _mount_path(rendered, "fma-webhook", "webhook", "control-trust")
    assert posixpath.join(trust_dir, auth.CA_FILE) == auth.TRUST_FILE
    # Whoever issues the Secret the Pods mount is this mode's issuer.
    if mode == "cert-manager":
        assert rendered.get("Certificate", CONTROL_SECRET)["spec"]["secretName"] == CONTROL_SECRET
    else:
        job = rendered.get("CronJob", "fma-certs-renew")
        assert f"--secret={CONTROL_SECRET}" in support.container(job, "ensure-control")["args"]


@pytest.mark.parametrize("mode", MODES)
def test_control_auth_off_renders_no_control_certificates_and_turns_checks_off(mode: str) -> None:
    rendered = render(_values(mode, **OFF))
    every_name = {o["metadata"]["name"] for o in rendered.objects}
    assert not {CONTROL_SECRET, CONTROL_CA_SECRET} & every_name
    for name, container_name in (("fma-controller", "controller"), ("fma-webhook", "webhook")):
        args = support.container(rendered.get("Deployment", name), container_name)["args"]
        assert f"--control-auth={auth.MODE_OFF}" in args
        assert not any(a.startswith(("--control-credentials-dir", "--control-trust")) for a in args)
    assert _volume(rendered, "fma-controller", "control") is None
    assert _volume(rendered, "fma-webhook", "control-trust") is None
    for job in [*rendered.of_kind("Job"), *rendered.of_kind("CronJob")]:
        assert "ensure-control" not in {c["name"] for c in support.containers(job)}
        sync = support.container(job, "sync-ca-bundle")["args"]
        assert not any(a.startswith("--adopt-secret") for a in sync)
    for role in rendered.of_kind("Role"):
        for rule in role["rules"]:
            assert not {CONTROL_SECRET, CONTROL_CA_SECRET} & set(rule.get("resourceNames", []))
