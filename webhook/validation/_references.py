"""References from one custom resource to a LauncherConfig.

A missing LauncherConfig is a **warning**, never a denial: objects are applied in any order
(`kubectl apply -f dir/` sorts by file name, Helm and GitOps tools by their own rules), and an
ISC or LPP that names a LauncherConfig created a second later is the normal case. The controllers
already treat a missing LauncherConfig as "hands off" until it appears (contracts §10). A name
that can never exist (not a valid object name) is denied.
"""

from __future__ import annotations

from contract import rules
from webhook.validation._verdict import Findings, ValidationContext


def check_launcher_config_reference(
    name: str, namespace: str, path: str, ctx: ValidationContext, findings: Findings
) -> None:
    """Deny an impossible name; warn when the LauncherConfig is not (yet) known to exist."""
    if not name:
        findings.deny(path, "must name a LauncherConfig", "set the name of a LauncherConfig")
        return
    problems = rules.dns1123_subdomain(name)
    if problems:
        findings.deny_all(path, problems, "use the metadata.name of a LauncherConfig")
        return
    if ctx.launcher_configs is not None and (namespace, name) not in ctx.launcher_configs:
        findings.warn(
            path,
            f'LauncherConfig "{name}" does not exist in namespace "{namespace}" (yet); nothing '
            "is launched for this reference until it is created",
        )
