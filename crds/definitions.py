"""The three CustomResourceDefinitions, assembled from the models, and where their files live.

Names and schemas come from `crds.models`; this module adds what only the CRD has: scope,
subresources, printer columns and the category.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from contract.objects import GROUP, VERSION
from crds.models import (
    InferenceServerConfig,
    LauncherConfig,
    LauncherPopulationPolicy,
    Resource,
)
from crds.schema import resource_schema

CRDS_DIR = Path(__file__).resolve().parent
EXAMPLES_DIR = CRDS_DIR / "examples"
CATEGORY = "fma"
"""`kubectl get fma` lists the objects of all three kinds."""

ColumnType = Literal["integer", "number", "string", "boolean", "date"]


@dataclass(frozen=True, slots=True)
class PrinterColumn:
    """One `additionalPrinterColumns` entry of `kubectl get`.

    The apiserver shows the first JSONPath match only, so a column can show a scalar or one list
    element (such as the first error), not a count or a whole list.
    """

    name: str
    type: ColumnType
    json_path: str
    description: str
    priority: int = 0
    """0: always shown; 1: only with `-o wide`."""

    def to_wire(self) -> dict[str, Any]:
        """Return the column as the CRD spells it."""
        column: dict[str, Any] = {
            "name": self.name,
            "type": self.type,
            "jsonPath": self.json_path,
            "description": self.description,
        }
        if self.priority:
            column["priority"] = self.priority
        return column


_AGE = PrinterColumn("Age", "date", ".metadata.creationTimestamp", "Time since creation.")
_ERROR = PrinterColumn(
    "Error", "string", ".status.errors[0]", "The first of the errors in status, if any."
)


@dataclass(frozen=True, slots=True)
class CrdDefinition:
    """A custom resource kind and its CRD manifest."""

    model: type[Resource]
    columns: tuple[PrinterColumn, ...]

    @property
    def kind(self) -> str:
        """The kind, taken from the model's `kind` default."""
        kind = self.model.model_fields["kind"].default
        if not isinstance(kind, str):
            raise TypeError(f"{self.model.__name__}.kind needs a default naming the kind")
        return kind

    @property
    def name(self) -> str:
        """The CRD's object name, `<plural>.<group>`."""
        return f"{self.model.PLURAL}.{GROUP}"

    @property
    def path(self) -> Path:
        """The committed YAML file of this CRD."""
        return CRDS_DIR / f"{self.name}.yaml"

    @property
    def example_path(self) -> Path:
        """The example object of this kind."""
        return EXAMPLES_DIR / f"{self.model.SINGULAR}.yaml"

    def manifest(self) -> dict[str, Any]:
        """Return the CustomResourceDefinition object (apiextensions.k8s.io/v1)."""
        return {
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": self.name},
            "spec": {
                "group": GROUP,
                "names": {
                    "kind": self.kind,
                    "listKind": f"{self.kind}List",
                    "plural": self.model.PLURAL,
                    "singular": self.model.SINGULAR,
                    "shortNames": [self.model.SHORT_NAME],
                    "categories": [CATEGORY],
                },
                "scope": "Namespaced",
                "versions": [
                    {
                        "name": VERSION,
                        "served": True,
                        "storage": True,
                        "subresources": {"status": {}},
                        "additionalPrinterColumns": [c.to_wire() for c in self.columns],
                        "schema": {"openAPIV3Schema": resource_schema(self.model)},
                    }
                ],
            },
        }


DEFINITIONS: tuple[CrdDefinition, ...] = (
    CrdDefinition(
        InferenceServerConfig,
        (
            PrinterColumn(
                "LauncherConfig",
                "string",
                ".spec.launcherConfigName",
                "The LauncherConfig whose launchers host this server.",
            ),
            PrinterColumn("Port", "integer", ".spec.modelServerConfig.port", "vLLM listen port."),
            PrinterColumn(
                "Options", "string", ".spec.modelServerConfig.options", "vLLM options.", 1
            ),
            _AGE,
        ),
    ),
    CrdDefinition(
        LauncherConfig,
        (
            PrinterColumn(
                "MaxInstances",
                "integer",
                ".spec.maxInstances",
                "Most instances per launcher Pod.",
            ),
            PrinterColumn(
                "Image",
                "string",
                '.spec.podTemplate.spec.containers[?(@.name=="inference-server")].image',
                "Image of the inference-server container.",
                1,
            ),
            _ERROR,
            _AGE,
        ),
    ),
    CrdDefinition(LauncherPopulationPolicy, (_ERROR, _AGE)),
)

CRD_FILES: tuple[Path, ...] = tuple(definition.path for definition in DEFINITIONS)
"""The generated CRD manifests, one per kind, in the order of `DEFINITIONS`."""

EXAMPLE_FILES: tuple[Path, ...] = tuple(definition.example_path for definition in DEFINITIONS)
"""One valid example object per kind, in the order of `DEFINITIONS`."""
