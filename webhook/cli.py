"""`fma-webhook`: run the admission webhook server, or register it with a cluster.

    fma-webhook serve --tls-cert tls.crt --tls-key tls.key [--kubeconfig F | --in-cluster] ...
    fma-webhook register --service-namespace N ... | --url https://HOST:PORT ...

`serve` runs uvicorn over HTTPS with the watch caches' informers on its event loop (the app's
lifespan); it answers `/readyz` once the caches have listed. `register` writes the Mutating and
Validating WebhookConfigurations through `webhook.registration`.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import yaml

import jsonlog
from contract import auth
from controlauth import trust_from_file
from jsonlog import cli
from kube import ConnectionSettings
from webhook.registration import (
    DEFAULT_CONFIGURATION_NAME,
    DEFAULT_TIMEOUT_SECONDS,
    RegistrationSettings,
    ServiceReference,
    build_webhook_configurations,
    register_webhooks,
)
from webhook.settings import DEFAULT_PORT, WebhookSettings, default_namespace

# uvicorn installs handlers of its own; its lines are re-routed to our JSON formatter.
UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")

_log = logging.getLogger("webhook.cli")  # not __main__ under `python -m`


def connection(kubeconfig: Path | None) -> ConnectionSettings:
    """The apiserver of `kubeconfig`, or the Pod's ServiceAccount when None (`kube`)."""
    return ConnectionSettings(kubeconfig=kubeconfig, user_agent="fma-webhook")


def _add_cluster_flags(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--kubeconfig", type=Path, help="kubeconfig file (default: in-cluster)")
    where.add_argument(
        "--in-cluster", action="store_true", help="use the Pod's ServiceAccount (the default)"
    )


def _serve_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    defaults = WebhookSettings(tls_cert=Path(), tls_key=Path())
    p = sub.add_parser("serve", help="run the webhook server over HTTPS")
    # Each flag's dest is the WebhookSettings field it sets (`main` builds them by name).
    p.add_argument("--tls-cert", type=Path, required=True, help="PEM certificate (reloaded)")
    p.add_argument("--tls-key", type=Path, required=True, help="PEM private key (reloaded)")
    p.add_argument("--host", default=defaults.host, help="address to listen on")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help="HTTPS port")
    _add_cluster_flags(p)
    p.add_argument(
        "--namespace",
        default=default_namespace(),
        help="the webhook's own namespace (default: $POD_NAMESPACE or fma-system)",
    )
    p.add_argument("--requester-image", default=defaults.requester_image)
    p.add_argument(
        "--controller-username",
        dest="controller_usernames",
        action="append",
        default=[],
        help="username allowed to write controller-owned Pod fields (repeatable; default "
        "system:serviceaccount:<namespace>:fma-fma-controllers)",
    )
    p.add_argument(
        "--cert-reload-interval",
        dest="cert_reload_interval_s",
        type=float,
        default=defaults.cert_reload_interval_s,
    )
    p.add_argument(
        "--watch-timeout", dest="watch_timeout_s", type=int, default=defaults.watch_timeout_s
    )
    p.add_argument("--owner-wait", dest="owner_wait_s", type=float, default=defaults.owner_wait_s)
    p.add_argument("--control-auth", choices=(auth.MODE_ON, auth.MODE_OFF),
        default=defaults.control_auth, help="give stubs the control CA bundle, so only the "
        "controller drives them (default on); off for a reference controller")  # fmt: skip
    p.add_argument("--control-trust-file", type=Path, default=defaults.control_trust_file,
        help="the control CA bundle, PEM (reloaded; default %(default)s)")  # fmt: skip
    p.add_argument("--log-level", default=defaults.log_level)
    p.add_argument("--access-log", action="store_true")


def serve(settings: WebhookSettings) -> None:
    """Start the caches and serve until SIGTERM; the caches stop with the server."""
    from kube import run_event_loop
    from webhook.app import create_app
    from webhook.cache import cluster_cache
    from webhook.handlers import Handlers
    from webhook.metrics import WebhookMetrics
    from webhook.server import serve_tls

    cache = cluster_cache(connection(settings.kubeconfig), watch_timeout_s=settings.watch_timeout_s)
    metrics = WebhookMetrics()
    metrics.watch_cache(lambda: cache.synced, lambda: {s.kind: len(s) for s in cache.stores()})
    handlers = Handlers(
        cache=cache,
        control_trust=_control_trust(settings),
        mutation_settings=settings.mutation_settings(),
        validation_settings=settings.validation_settings(),
        metrics=metrics,
        owner_wait_s=settings.owner_wait_s,
    )
    _log.info(
        "starting",
        extra=jsonlog.fields(
            event="starting",
            port=settings.port,
            namespace=settings.namespace,
            controller_usernames=sorted(settings.effective_controller_usernames()),
        ),
    )
    run_event_loop(
        lambda: serve_tls(
            create_app(handlers, lifespan=cache.running),
            cert=settings.tls_cert,
            key=settings.tls_key,
            host=settings.host,
            port=settings.port,
            reload_interval_s=settings.cert_reload_interval_s,
            metrics=metrics,
            access_log=settings.access_log,
        )
    )


def _control_trust(settings: WebhookSettings) -> Callable[[], str] | None:
    """The reloaded bundle, or None when `--control-auth off`; exits naming the flag when the
    file is missing or holds no CA certificate."""
    if settings.control_auth == auth.MODE_OFF:
        return None
    try:
        bundle = trust_from_file(
            settings.control_trust_file, interval_s=settings.cert_reload_interval_s
        )
    except (OSError, ValueError) as exc:
        raise SystemExit(
            f"fma-webhook: --control-trust-file: {exc}; mount the control CA bundle there (the "
            f"chart does), or pass --control-auth {auth.MODE_OFF}"
        ) from exc
    return lambda: bundle().decode()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fma-webhook", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    _serve_parser(sub)
    _register_parser(sub)
    args = parser.parse_args(argv)
    jsonlog.configure(getattr(args, "log_level", "info"), adopt=UVICORN_LOGGERS)
    if args.command == "serve":
        usernames = frozenset(args.controller_usernames)
        serve(cli.settings_from(WebhookSettings, args, controller_usernames=usernames))
        return 0
    return register(args)


def _register_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("register", help="write the webhook configurations to the cluster")
    p.add_argument("--ca-bundle", type=Path, required=True, help="PEM CA that signed the cert")
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--url", help="base URL the apiserver calls, e.g. https://127.0.0.1:9443")
    target.add_argument("--service-name", help="the webhook's Service (in --service-namespace)")
    p.add_argument("--service-namespace", default=default_namespace())
    p.add_argument("--service-port", type=int, default=443)
    p.add_argument("--name", default=DEFAULT_CONFIGURATION_NAME, help="configuration name")
    p.add_argument("--timeout-seconds", type=int, default=DEFAULT_TIMEOUT_SECONDS)
    p.add_argument(
        "--webhook-namespace", help="label this namespace as the webhook's (never intercepted)"
    )
    p.add_argument(
        "--served-namespace",
        action="append",
        default=[],
        help="label this namespace as served by fma (Pod guard on; repeatable)",
    )
    p.add_argument("--dry-run", action="store_true", help="print the objects; change nothing")
    _add_cluster_flags(p)


def register(args: argparse.Namespace) -> int:
    """Build both configurations from the flags and apply them (or print them)."""
    service = None
    if args.service_name:
        service = ServiceReference(
            namespace=args.service_namespace, name=args.service_name, port=args.service_port
        )
    settings = RegistrationSettings(
        ca_bundle=args.ca_bundle.read_bytes(),
        service=service,
        url=args.url,
        configuration_name=args.name,
        timeout_seconds=args.timeout_seconds,
    )
    mutating, validating = build_webhook_configurations(settings)
    if args.dry_run:
        print(yaml.safe_dump_all([mutating, validating], sort_keys=False), end="")
        return 0
    register_webhooks(
        connection(args.kubeconfig),
        mutating,
        validating,
        webhook_namespace=args.webhook_namespace,
        served_namespaces=args.served_namespace,
    )
    _log.info("registered", extra=jsonlog.fields(event="registered", name=args.name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
