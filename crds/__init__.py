"""fma's custom resources: pydantic wire models, and the CRDs generated from them.

Controllers parse objects with the three resource models; installers and tests apply the files in
`CRD_FILES`; `EXAMPLE_FILES` holds one valid object of each kind. Everything else lives in
`crds.models` (the field models), `crds.definitions` (CRD assembly) and `crds.generate`
(`fma-gen-crds`).
"""

from contract.objects import API_VERSION, GROUP, VERSION
from crds.definitions import CRD_FILES, EXAMPLE_FILES, EXAMPLES_DIR
from crds.models import (
    InferenceServerConfig,
    LauncherConfig,
    LauncherPopulationPolicy,
)

__all__ = [
    "API_VERSION",
    "CRD_FILES",
    "EXAMPLES_DIR",
    "EXAMPLE_FILES",
    "GROUP",
    "VERSION",
    "InferenceServerConfig",
    "LauncherConfig",
    "LauncherPopulationPolicy",
]
