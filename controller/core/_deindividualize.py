"""Pod spec de-individualization (contracts §4.1 step 1), shared by both provider builders."""

from __future__ import annotations

import re
from typing import Any, Final

_SERVICE_ACCOUNT_VOLUME: Final = re.compile(r"kube-api-access-[a-z0-9]+")


def deindividualize(spec: dict[str, Any]) -> dict[str, Any]:
    """Drop what ties a spec to one Pod: ephemeral containers and the injected token volume.

    The first volume named `kube-api-access-<suffix>` (added by the ServiceAccount admission
    plugin) goes, with its mounts in every container and init container; the apiserver adds a
    fresh one to the new Pod. Modifies and returns `spec`.
    """
    spec.pop("ephemeralContainers", None)
    volumes = spec.get("volumes") or []
    for index, volume in enumerate(volumes):
        name = volume.get("name", "")
        if _SERVICE_ACCOUNT_VOLUME.fullmatch(name):
            del volumes[index]
            for key in ("containers", "initContainers"):
                for container in spec.get(key) or []:
                    mounts = container.get("volumeMounts")
                    if mounts:
                        container["volumeMounts"] = [m for m in mounts if m.get("name") != name]
            break
    return spec
