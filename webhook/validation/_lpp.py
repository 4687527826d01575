"""LauncherPopulationPolicy checks beyond the CRD schema."""

from __future__ import annotations

from crds.models import LauncherPopulationPolicy
from webhook.validation._references import check_launcher_config_reference
from webhook.validation._selector import check_allocatable_resources, check_label_selector
from webhook.validation._verdict import Findings, ValidationContext


def check_launcher_population_policy(
    lpp: LauncherPopulationPolicy, namespace: str, ctx: ValidationContext, findings: Findings
) -> None:
    """Selector and ranges must parse; each counted LauncherConfig name must be possible."""
    if lpp.spec is None:
        findings.deny(
            "spec",
            "is required: a policy without a node selector and counts does nothing",
            "add spec.enhancedNodeSelector and spec.countForLauncher",
        )
        return
    selector = lpp.spec.enhanced_node_selector
    check_label_selector(
        selector.label_selector, "spec.enhancedNodeSelector.labelSelector", findings
    )
    check_allocatable_resources(
        selector.allocatable_resources or {},
        "spec.enhancedNodeSelector.allocatableResources",
        findings,
    )
    if not lpp.spec.count_for_launcher:
        findings.warn("spec.countForLauncher", "is empty, so this policy keeps no launchers")
    for index, entry in enumerate(lpp.spec.count_for_launcher):
        path = f"spec.countForLauncher[{index}]"
        check_launcher_config_reference(
            entry.launcher_config_name, namespace, f"{path}.launcherConfigName", ctx, findings
        )
        if entry.launcher_count < 0:
            findings.warn(f"{path}.launcherCount", "is negative and acts as 0")
