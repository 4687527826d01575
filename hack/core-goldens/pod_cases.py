"""Inputs for the Pod-encoding and strategic-merge-patch golden vectors.

`python hack/core-goldens/pod_cases.py pod | podgold pod` and `... smp | podgold smp` (see
README.md) give tests/unit/golden/core_pod.json and core_smp.json.
"""

from __future__ import annotations

import json
import sys

CONTAINER = {
    "name": "inference-server",
    "image": "img",
    "command": ["python3"],
    "ports": [{"containerPort": 8000, "name": "http"}, {"containerPort": 8081}],
    "env": [
        {"name": "A", "value": "<&>"},
        {"name": "B", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
    ],
    "resources": {
        "limits": {"cpu": "1000m", "memory": "1024Mi", "nvidia.com/gpu": 1},
        "requests": {"cpu": 0.5, "memory": "0.5Gi"},
    },
    "volumeMounts": [
        {"name": "cache", "mountPath": "/c"},
        {"name": "kube-api-access-x1", "mountPath": "/var/run/secrets"},
    ],
    "readinessProbe": {"httpGet": {"path": "/ready", "port": 8080}, "periodSeconds": 1},
    "securityContext": {},
}
POD = {
    "metadata": {
        "name": "p",
        "namespace": "ns",
        "labels": {"b": "2", "a": "1"},
        "annotations": {"x": "y"},
    },
    "spec": {
        "containers": [CONTAINER, {"name": "side", "image": "s", "resources": {}}],
        "volumes": [
            {"name": "cache", "emptyDir": {"sizeLimit": "2000"}},
            {"name": "kube-api-access-x1", "projected": {"sources": []}},
        ],
        "tolerations": [{"key": "k", "operator": "Exists"}],
        "nodeSelector": {"kubernetes.io/hostname": "n1"},
        "restartPolicy": "Always",
        "enableServiceLinks": False,
        "priority": 0,
    },
}

PODS = [
    {},
    {"spec": {"containers": []}},
    POD,
    {
        "metadata": {
            "ownerReferences": [
                {
                    "apiVersion": "v1",
                    "kind": "K",
                    "name": "n",
                    "uid": "u",
                    "controller": False,
                    "blockOwnerDeletion": False,
                }
            ]
        },
        "spec": {"containers": [{"name": "c"}]},
    },
    {
        "spec": {
            "containers": [
                {
                    "name": "c",
                    "resources": {
                        "limits": {
                            q: q
                            for q in [
                                "1",
                                "1.5",
                                "1500m",
                                "2000",
                                "1Ki",
                                "1.5Ki",
                                "0.5Ki",
                                "1024",
                                "1e3",
                                "12e1",
                                "0.1",
                                "100Mi",
                                "1024Mi",
                                "1000k",
                                "1.5Gi",
                                "0",
                            ]
                        }
                    },
                }
            ]
        }
    },
    {
        "spec": {
            "containers": [
                {
                    "name": "c",
                    "livenessProbe": {"exec": {"command": ["true"]}},
                    "lifecycle": {"preStop": {"exec": {}}},
                }
            ],
            "affinity": {"nodeAffinity": {}},
        }
    },
]

SMP = [
    (
        {"metadata": {"labels": {"app": "x", "k": "v"}}},
        {"metadata": {"labels": {"app": None, "new": "1"}}},
    ),
    (
        POD,
        {
            "spec": {
                "containers": [
                    {
                        "name": "inference-server",
                        "image": "vllm",
                        "env": [{"name": "B", "value": "b"}, {"name": "C", "value": "c"}],
                    }
                ]
            }
        },
    ),
    (
        POD,
        {"spec": {"containers": [{"name": "new", "image": "n"}, {"name": "side", "image": "s2"}]}},
    ),
    (POD, {"spec": {"containers": [{"$patch": "replace"}, {"name": "only", "image": "o"}]}}),
    (POD, {"spec": {"containers": [{"name": "side", "$patch": "delete"}]}}),
    (
        POD,
        {
            "spec": {
                "containers": [
                    {
                        "name": "inference-server",
                        "ports": [
                            {"containerPort": 8000, "protocol": "TCP"},
                            {"containerPort": 9000},
                        ],
                    }
                ]
            }
        },
    ),
    (
        POD,
        {
            "spec": {
                "containers": [
                    {
                        "name": "inference-server",
                        "volumeMounts": [
                            {"name": "other", "mountPath": "/c"},
                            {"name": "x", "mountPath": "/x"},
                        ],
                    }
                ]
            }
        },
    ),
    (
        POD,
        {
            "spec": {
                "volumes": [
                    {"name": "cache", "persistentVolumeClaim": {"claimName": "c"}},
                    {"name": "v2", "emptyDir": {}},
                ]
            }
        },
    ),
    (POD, {"spec": {"tolerations": [{"key": "z"}], "nodeSelector": {"a": "b"}}}),
    (
        POD,
        {
            "spec": {
                "containers": [
                    {
                        "name": "inference-server",
                        "resources": {"$patch": "replace", "limits": {"cpu": "2"}},
                    }
                ]
            }
        },
    ),
    (
        POD,
        {
            "spec": {
                "containers": [
                    {"name": "inference-server", "securityContext": {"$patch": "delete"}}
                ]
            }
        },
    ),
    (POD, {"metadata": {"finalizers": ["f1", "f2", "f1"]}}),
    (
        POD,
        {
            "spec": {
                "containers": [
                    {"name": "inference-server", "args": ["--a", "--b"], "command": None}
                ]
            }
        },
    ),
    (
        POD,
        {
            "spec": {
                "containers": [
                    {
                        "name": "inference-server",
                        "env": [{"name": "A", "$patch": "delete"}, {"name": "Z", "value": "z"}],
                    }
                ]
            }
        },
    ),
    (POD, {"spec": {"containers": [{"image": "no-name"}]}}),
    (POD, {"spec": {"containers": "not-a-list"}}),
    (
        POD,
        {
            "spec": {
                "unknownField": {"a": 1},
                "volumes": [{"name": "cache", "unknownInVolume": {"x": 1}}],
            }
        },
    ),
]


if __name__ == "__main__":
    if sys.argv[1] == "pod":
        for pod in PODS:
            print(json.dumps(pod))
    else:
        for original, patch in SMP:
            print(json.dumps({"original": original, "patch": patch}))
