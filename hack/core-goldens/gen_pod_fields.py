"""Write controller/core/_pod_fields.py from the output of podtypes.go (see README.md).

Usage: python hack/core-goldens/gen_pod_fields.py podtypes.json > controller/core/_pod_fields.py
"""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

# Fields added to core/v1 after Kubernetes 1.20 (the tree podtypes.go runs in), as
# (type, field to insert after or "" for the end, "name[?]:type" entries). All are optional.
NEWER = [
    (
        "PodSpec",
        "",
        [
            "os?:*@PodOS",
            "hostUsers?:*b",
            "schedulingGates?:[]@PodSchedulingGate/merge=name",
            "resourceClaims?:[]@PodResourceClaim/merge,retainKeys=name",
            "resources?:*@ResourceRequirements",
            "hostnameOverride?:*s",
        ],
    ),
    (
        "Container",
        "resources",
        [
            "resizePolicy?:[]@ContainerResizePolicy",
            "restartPolicy?:*s",
            "restartPolicyRules?:[]any",
        ],
    ),
    (
        "EphemeralContainer",
        "resources",
        [
            "resizePolicy?:[]@ContainerResizePolicy",
            "restartPolicy?:*s",
            "restartPolicyRules?:[]any",
        ],
    ),
    ("ResourceRequirements", "", ["claims?:[]@ResourceClaim"]),
    ("Probe", "tcpSocket", ["grpc?:*@GRPCAction"]),
    ("Probe", "", ["terminationGracePeriodSeconds?:*i"]),
    ("Handler", "", ["sleep?:*@SleepAction"]),
    ("Lifecycle", "", ["stopSignal?:*s"]),
    ("SecurityContext", "", ["appArmorProfile?:*@AppArmorProfile"]),
    ("PodSecurityContext", "supplementalGroups", ["supplementalGroupsPolicy?:*s"]),
    ("PodSecurityContext", "", ["appArmorProfile?:*@AppArmorProfile", "seLinuxChangePolicy?:*s"]),
    ("VolumeMount", "readOnly", ["recursiveReadOnly?:*s"]),
    ("Volume", "", ["image?:*@ImageVolumeSource"]),
    (
        "TopologySpreadConstraint",
        "",
        ["minDomains?:*i", "nodeAffinityPolicy?:*s", "nodeTaintsPolicy?:*s", "matchLabelKeys?:[]s"],
    ),
    (
        "PodAffinityTerm",
        "",
        ["namespaceSelector?:*@LabelSelector", "matchLabelKeys?:[]s", "mismatchLabelKeys?:[]s"],
    ),
    ("EnvVarSource", "", ["fileKeyRef?:any"]),
]
NEW_TYPES = {
    "PodOS": ["name:s"],
    "PodSchedulingGate": ["name:s"],
    "PodResourceClaim": ["name:s", "resourceClaimName?:*s", "resourceClaimTemplateName?:*s"],
    "ContainerResizePolicy": ["resourceName:s", "restartPolicy:s"],
    "ResourceClaim": ["name:s", "request?:s"],
    "GRPCAction": ["port:i", "service:*s"],
    "SleepAction": ["seconds:i"],
    "AppArmorProfile": ["type:s", "localhostProfile?:*s"],
    "ImageVolumeSource": ["reference?:s", "pullPolicy?:s"],
}


def _entry(name: str, omit: bool, kind: str, strategy: str = "", key: str = "") -> str:
    patch = f"/{strategy}={key}" if strategy else ""
    return f"{name}{'?' if omit else ''}:{kind}{patch}"


def main() -> None:
    raw = json.loads(Path(sys.argv[1]).read_text())
    table = {name: [_entry(*field) for field in fields] for name, fields in raw.items()}
    for type_name, after, entries in NEWER:
        fields = table[type_name]
        names = [entry.split(":")[0].rstrip("?") for entry in fields]
        at = names.index(after) + 1 if after else len(fields)
        fields[at:at] = entries
    table.update(NEW_TYPES)
    print('"""Go `encoding/json` field order of `corev1.Pod` and the types it reaches. Generated.')
    print()
    print("Written by hack/core-goldens/gen_pod_fields.py from a Kubernetes 1.20 tree, plus the")
    print("optional fields added since (listed there). Each type is `name[?]:type` entries in Go")
    print("declaration order, `?` marking `omitempty`; types: s i b f any, @Struct, *X, []X, {}X")
    print("(map by string), !Name (own MarshalJSON: Time, Quantity, IntOrString, ...); then")
    print("`/strategy=mergeKey` where the field has strategic-merge-patch tags.")
    print('"""')
    print()
    print("from typing import Final")
    print()
    print("POD_FIELDS: Final[dict[str, str]] = {")
    for name in sorted(table):
        body = " ".join(table[name])
        lines = textwrap.wrap(body, 88, break_long_words=False, break_on_hyphens=False)
        if len(lines) == 1 and len(name) + len(body) <= 88:
            print(f'    "{name}": "{lines[0]}",')
        else:
            print(f'    "{name}": (')
            for index, line in enumerate(lines):
                sep = " " if index < len(lines) - 1 else ""
                print(f'        "{line}{sep}"')
            print("    ),")
    print("}")


if __name__ == "__main__":
    main()
