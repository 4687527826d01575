"""The control CA bundle, published in the focus namespace for requesters written by hand.

Mutated requesters and launcher Pods get the bundle in their spec (the webhook and the
controller put it there). A requester written by hand, as the reference's users write them,
reads it instead from the ConfigMap `contract.auth.TRUST_CONFIG_MAP`, which the controller keeps
equal to its current `ca.crt`, the way Kubernetes keeps `kube-root-ca.crt` in every namespace.
The bundle is public: no secret enters the namespace.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Final

from contract import auth
from kube import CONFIG_MAPS, ApiError, JsonObject, KubeClient

_log = logging.getLogger(__name__)

CHECK_INTERVAL_S: Final = 5.0
"""How often the bundle is compared with what was published: a local comparison (the files are
re-read on change), so a rotation reaches the ConfigMap within seconds."""
REFRESH_S: Final = 300.0
"""The ConfigMap is read back this often even without a change, so a deleted or edited one is
put right."""


def trust_config_map(pem: str) -> JsonObject:
    return {"metadata": {"name": auth.TRUST_CONFIG_MAP}, "data": {auth.CA_FILE: pem}}


async def publish_trust(
    client: KubeClient,
    namespace: str,
    trust: Callable[[], str],
    *,
    interval_s: float = CHECK_INTERVAL_S,
    refresh_s: float = REFRESH_S,
) -> None:
    """Keeps the ConfigMap equal to `trust()` until cancelled; an apiserver error is logged and
    retried at the next interval (a requester's stub waits for the ConfigMap, it does not fail)."""
    loop = asyncio.get_running_loop()
    published: str | None = None
    checked = 0.0
    while True:
        pem = trust()
        if pem != published or loop.time() - checked >= refresh_s:
            try:
                await _ensure(client, namespace, pem)
                published, checked = pem, loop.time()
            except ApiError as exc:
                _log.warning("cannot publish the control CA bundle: %s", exc)
        await asyncio.sleep(interval_s)


async def _ensure(client: KubeClient, namespace: str, pem: str) -> None:
    try:
        current = await client.get(CONFIG_MAPS, auth.TRUST_CONFIG_MAP, namespace=namespace)
    except ApiError as exc:
        if not exc.not_found:
            raise
        await client.create(CONFIG_MAPS, trust_config_map(pem), namespace=namespace)
        _log.info("published the control CA bundle in ConfigMap %s", auth.TRUST_CONFIG_MAP)
        return
    if (current.get("data") or {}).get(auth.CA_FILE) != pem:
        patch = {"data": {auth.CA_FILE: pem}}
        await client.patch(CONFIG_MAPS, auth.TRUST_CONFIG_MAP, patch, namespace=namespace)
        _log.info("updated the control CA bundle in ConfigMap %s", auth.TRUST_CONFIG_MAP)
