"""`fma-certs`: the webhook's and the controller's certificates, without cert-manager.

    fma-certs ensure --service fma-webhook --namespace fma-system --dir /certs
    fma-certs ensure --service fma-webhook --namespace fma-system --secret fma-webhook-tls
    fma-certs create --dns-name localhost --ip-address 127.0.0.1 --dir ./certs
    fma-certs ensure-control --secret fma-control --namespace fma-system [--rotate-ca]
    fma-certs ensure-control --dir ./control
    fma-certs show --dir /certs

`ensure` is idempotent (keep what is valid, renew what is due; see `certs.bundle`), so it can run
on every install and upgrade and from a CronJob. `create` always makes a new CA and leaf and
refuses to replace existing files unless `--force`. `ensure-control` does what `ensure` does for
the controller's client certificate under the control CA (`certs.control`); `--rotate-ca`
rotates that CA now, cross-signed. Each command prints one JSON object.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from certs.bundle import Outcome, RenewalPolicy, StoredMaterial, service_dns_names
from certs.control import CONTROL_POLICY, ensure_control_directory
from certs.files import ensure_directory, read_directory

_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def parse_duration(text: str) -> dt.timedelta:
    """`30d`, `12h`, `1d12h`, `90m`, `3600s`: the units `kubectl` users know."""
    match = _DURATION.match(text.strip())
    if match is None or not any(match.groups()):
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration like 30d, 12h or 1d12h")
    days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return dt.timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)


def _format(delta: dt.timedelta) -> str:
    return f"{delta.days}d" if delta.seconds == 0 else f"{int(delta.total_seconds())}s"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fma-certs", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name, summary in (
        ("ensure", "keep valid certificates, renew what is due (idempotent)"),
        ("create", "make a new CA and serving certificate"),
        ("ensure-control", "keep or renew the controller's control credential (idempotent)"),
        ("show", "print what is stored"),
    ):
        command = commands.add_parser(name, help=summary, description=summary)
        _add_target(command)
        if name in ("ensure", "create"):
            _add_names(command)
            _add_policy(command, RenewalPolicy())
        if name == "create":
            command.add_argument("--force", action="store_true", help="replace existing files")
        if name == "ensure-control":
            _add_policy(command, CONTROL_POLICY)
            command.add_argument(
                "--rotate-ca", action="store_true", help="rotate the control CA now (cross-signed)"
            )
    return parser


def _add_target(parser: argparse.ArgumentParser) -> None:
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--dir", type=Path, help="directory for ca.crt, ca.key, tls.crt, tls.key")
    target.add_argument("--secret", help="serving or credential Secret (kubernetes.io/tls)")
    parser.add_argument("--ca-secret", default="", help="CA Secret (default: <secret>-ca)")
    parser.add_argument("--namespace", default="", help="namespace of the Service and the Secrets")
    parser.add_argument("--kubeconfig", type=Path, help="default: in-cluster, then ~/.kube/config")


def _add_names(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--service", default="", help="webhook Service name (adds its DNS names)")
    parser.add_argument("--cluster-domain", default="cluster.local")
    parser.add_argument("--dns-name", action="append", default=[], help="extra DNS name")
    parser.add_argument("--ip-address", action="append", default=[], help="extra IP address")


def _add_policy(parser: argparse.ArgumentParser, defaults: RenewalPolicy) -> None:
    for flag, default in (
        ("--leaf-lifetime", defaults.leaf_lifetime),
        ("--ca-lifetime", defaults.ca_lifetime),
        ("--renew-before", defaults.leaf_renew_before),
        ("--ca-renew-before", defaults.ca_renew_before),
    ):
        parser.add_argument(
            flag, type=parse_duration, default=default, help=f"({_format(default)})"
        )


def _names(args: argparse.Namespace) -> tuple[list[str], list[str]]:
    dns: list[str] = []
    if args.service:
        if not args.namespace:
            raise ValueError("--service needs --namespace")
        dns += service_dns_names(args.service, args.namespace, args.cluster_domain)
    dns += [n for n in args.dns_name if n not in dns]
    if not dns and not args.ip_address:
        raise ValueError("give --service (with --namespace), --dns-name or --ip-address")
    return dns, list(args.ip_address)


def _api_client(kubeconfig: Path | None) -> Any:
    import kubernetes.client
    import kubernetes.config

    if kubeconfig is None and "KUBERNETES_SERVICE_HOST" in os.environ:
        configuration = kubernetes.client.Configuration()
        kubernetes.config.load_incluster_config(client_configuration=configuration)
        return kubernetes.client.ApiClient(configuration)
    config_file = str(kubeconfig) if kubeconfig else None
    return kubernetes.config.new_client_from_config(config_file=config_file)


def _secret_ref(args: argparse.Namespace) -> Any:
    from certs.secrets_store import SecretRef

    if not args.namespace:
        raise ValueError("--secret needs --namespace")
    return SecretRef(args.namespace, args.secret, args.ca_secret)


def _policy(args: argparse.Namespace) -> RenewalPolicy:
    return RenewalPolicy(
        leaf_lifetime=args.leaf_lifetime,
        ca_lifetime=args.ca_lifetime,
        leaf_renew_before=args.renew_before,
        ca_renew_before=args.ca_renew_before,
    )


def _run_ensure(args: argparse.Namespace, *, fresh: bool) -> dict[str, Any]:
    dns, ips = _names(args)
    policy = _policy(args)
    if args.dir is not None:
        if fresh and not args.force and any(dataclasses.astuple(read_directory(args.dir))):
            raise ValueError(f"{args.dir} already holds certificates; use ensure, or --force")
        outcome = ensure_directory(
            args.dir, dns_names=dns, ip_addresses=ips, policy=policy, fresh=fresh
        )
    else:
        from certs.secrets_store import ensure_secrets

        ref = _secret_ref(args)
        with _api_client(args.kubeconfig) as client:
            outcome = ensure_secrets(
                client,
                ref,
                dns_names=dns,
                ip_addresses=ips,
                policy=policy,
                fresh=fresh,
            )
    return _report(outcome)


def _run_ensure_control(args: argparse.Namespace) -> dict[str, Any]:
    policy = _policy(args)
    if args.dir is not None:
        outcome = ensure_control_directory(args.dir, policy=policy, rotate_ca=args.rotate_ca)
    else:
        from certs.control import ensure_control_secrets

        ref = _secret_ref(args)
        with _api_client(args.kubeconfig) as client:
            outcome = ensure_control_secrets(client, ref, policy=policy, rotate_ca=args.rotate_ca)
    return _report(outcome)


def _report(outcome: Outcome) -> dict[str, Any]:
    material = outcome.certificates.material()
    return {
        "changed": outcome.changed,
        "caRotated": outcome.ca_rotated,
        "leafIssued": outcome.leaf_issued,
        "bundleChanged": outcome.bundle_changed,
        "reasons": list(outcome.reasons),
        **_describe(material),
    }


def _describe(material: StoredMaterial) -> dict[str, Any]:
    """Subjects, names and expiry of what is (or would be) stored. The leaf is `serving` or
    `client` by its usage; `chainCertificates` counts the intermediates after it."""
    facts: dict[str, Any] = {}
    if material.ca_cert:
        facts["ca"] = _certificate_facts(material.ca_cert)[0]
    if material.tls_cert:
        leaf, is_client = _certificate_facts(material.tls_cert)
        facts["client" if is_client else "serving"] = leaf
        if (chain := _count(material.tls_cert) - 1) > 0:
            facts["chainCertificates"] = chain
    if material.ca_bundle:
        facts["bundleCertificates"] = _count(material.ca_bundle)
    return facts


def _certificate_facts(pem: bytes) -> tuple[dict[str, Any], bool]:
    """The first certificate's subject, expiry and names, and whether it is a client's."""
    try:
        cert = x509.load_pem_x509_certificate(pem)
    except ValueError:
        return {"error": "unreadable"}, False
    dns_names, uris = _names_in(cert)
    facts = {
        "subject": cert.subject.rfc4514_string(),
        "notAfter": cert.not_valid_after_utc.isoformat(),
        "dnsNames": dns_names,
        **({"uris": uris} if uris else {}),
    }
    return facts, _is_client(cert)


def _count(pem: bytes) -> int:
    return pem.count(b"-----BEGIN CERTIFICATE-----")


def _names_in(cert: x509.Certificate) -> tuple[list[str], list[str]]:
    """The DNS names and URIs among the subject alternative names."""
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return [], []
    dns = list(sans.get_values_for_type(x509.DNSName))
    return dns, list(sans.get_values_for_type(x509.UniformResourceIdentifier))


def _is_client(cert: x509.Certificate) -> bool:
    try:
        usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return False
    return ExtendedKeyUsageOID.CLIENT_AUTH in usages


def _run_show(args: argparse.Namespace) -> dict[str, Any]:
    if args.dir is not None:
        return _describe(read_directory(args.dir))
    import kubernetes.client

    from certs.secrets_store import read_secrets

    ref = _secret_ref(args)
    with _api_client(args.kubeconfig) as client:
        return _describe(read_secrets(kubernetes.client.CoreV1Api(client), ref))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `fma-certs` console script."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "show":
            result = _run_show(args)
        elif args.command == "ensure-control":
            result = _run_ensure_control(args)
        else:
            result = _run_ensure(args, fresh=args.command == "create")
    except Exception as error:  # a CLI reports every failure the same way: one line, exit 1
        print(f"fma-certs {args.command}: {error}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
