"""fma-certs with Secrets on the real apiserver: idempotent, renewing, and safe when raced; the
webhook's serving certificate and the controller's control credential."""

from __future__ import annotations

import datetime as dt
from concurrent.futures import ThreadPoolExecutor

import kubernetes.client
from cryptography import x509

from certs.bundle import RenewalPolicy, service_dns_names
from certs.control import ensure_control_secrets
from certs.secrets_store import SecretRef, ensure_secrets, read_secrets
from contract import auth
from localcluster.controlplane import LocalCluster


def test_ensure_creates_once_then_keeps_valid_certificates(
    api_client: kubernetes.client.ApiClient, namespace: str
) -> None:
    ref = SecretRef(namespace, "webhook-tls")
    names = service_dns_names("fma-webhook", namespace)
    first = ensure_secrets(api_client, ref, dns_names=names)
    assert first.changed
    second = ensure_secrets(api_client, ref, dns_names=names)
    assert not second.changed
    core = kubernetes.client.CoreV1Api(api_client)
    assert read_secrets(core, ref) == second.certificates.material()
    serving = core.read_namespaced_secret("webhook-tls", namespace)
    assert serving.type == "kubernetes.io/tls"
    assert sorted(serving.data) == ["ca.crt", "tls.crt", "tls.key"]


def test_a_leaf_inside_the_renewal_window_is_reissued_under_the_same_ca(
    api_client: kubernetes.client.ApiClient, namespace: str
) -> None:
    ref = SecretRef(namespace, "webhook-tls")
    names = service_dns_names("fma-webhook", namespace)
    created = ensure_secrets(api_client, ref, dns_names=names)
    # The stored leaf has about 365 days left; a 370-day window makes it due now.
    eager = RenewalPolicy(
        leaf_lifetime=dt.timedelta(days=400),
        leaf_renew_before=dt.timedelta(days=370),
        ca_renew_before=dt.timedelta(days=370),
    )
    renewed = ensure_secrets(api_client, ref, dns_names=names, policy=eager)
    assert renewed.leaf_issued
    assert not renewed.ca_rotated
    assert renewed.certificates.ca == created.certificates.ca
    assert renewed.certificates.leaf != created.certificates.leaf


def test_concurrent_runners_agree_on_one_set_of_certificates(
    cluster: LocalCluster, namespace: str
) -> None:
    ref = SecretRef(namespace, "raced-tls")
    names = service_dns_names("fma-webhook", namespace)

    def run(_: int) -> bytes | None:
        client = cluster.api_client()
        with client:
            return ensure_secrets(client, ref, dns_names=names).certificates.leaf.cert_pem

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = set(pool.map(run, range(4)))
    assert len(results) == 1


def test_the_control_credential_is_kept_in_two_secrets_and_rotates_cross_signed(
    api_client: kubernetes.client.ApiClient, namespace: str
) -> None:
    ref = SecretRef(namespace, "fma-control")
    first = ensure_control_secrets(api_client, ref)
    assert first.changed
    assert not ensure_control_secrets(api_client, ref).changed
    core = kubernetes.client.CoreV1Api(api_client)
    credential = core.read_namespaced_secret("fma-control", namespace)
    assert credential.type == "kubernetes.io/tls"
    assert sorted(credential.data) == sorted((auth.CA_FILE, auth.CERT_FILE, auth.KEY_FILE))
    assert sorted(core.read_namespaced_secret("fma-control-ca", namespace).data) == [
        "tls.crt",
        "tls.key",
    ]
    rotated = ensure_control_secrets(api_client, ref, rotate_ca=True)
    assert rotated.ca_rotated
    stored = read_secrets(core, ref)
    assert stored == rotated.certificates.material()
    leaf, cross = x509.load_pem_x509_certificates(stored.tls_cert or b"")
    new_ca, old_ca = x509.load_pem_x509_certificates(stored.ca_bundle or b"")
    assert old_ca == first.certificates.ca.certificate
    leaf.verify_directly_issued_by(new_ca)
    cross.verify_directly_issued_by(old_ca)
