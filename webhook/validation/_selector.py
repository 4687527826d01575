"""LauncherPopulationPolicy node selection: the label selector and the allocatable ranges.

The CRD schema types both but cannot say which operators exist, how many values each takes, or
whether `min` exceeds `max`. The launcher-populator would otherwise discover that only when it
evaluates the policy, and report it on the LPP's status where nobody is looking.
"""

from __future__ import annotations

from collections.abc import Mapping
from fractions import Fraction

from contract import rules
from crds.models import LabelSelector, ResourceRange
from webhook.validation import _names
from webhook.validation._verdict import Findings


def check_label_selector(selector: LabelSelector, path: str, findings: Findings) -> None:
    """Check a `metav1.LabelSelector` the way `metav1.LabelSelectorAsSelector` would parse it."""
    for key, value in (selector.match_labels or {}).items():
        key_path = f"{path}.matchLabels{_names.field_key(key)}"
        findings.deny_all(key_path, rules.label_key(key), "use a valid label key")
        findings.deny_all(key_path, rules.label_value(value), "use a valid label value")
    for index, requirement in enumerate(selector.match_expressions or []):
        item = f"{path}.matchExpressions[{index}]"
        findings.deny_all(f"{item}.key", rules.label_key(requirement.key), "use a valid label key")
        values = requirement.values or []
        problem = rules.requirement_problem(requirement.operator, values)
        if problem is not None:
            field, text = problem
            if field == "operator":
                fix = "use one of In, NotIn, Exists, DoesNotExist"
            elif values:
                fix = "remove the values, or use In/NotIn"
            else:
                fix = "list at least one value, or use Exists/DoesNotExist"
            findings.deny(f"{item}.{field}", text, fix)
        for value_index, value in enumerate(values):
            findings.deny_all(
                f"{item}.values[{value_index}]",
                rules.label_value(value),
                "use a valid label value",
            )
    if not selector.match_labels and not selector.match_expressions:
        findings.warn(path, "is empty and selects every Node")


def check_allocatable_resources(
    ranges: Mapping[str, ResourceRange], path: str, findings: Findings
) -> None:
    """Resource names must be qualified names; bounds must parse and satisfy min <= max."""
    for name, bounds in ranges.items():
        entry = f"{path}{_names.field_key(name)}"
        findings.deny_all(
            entry, rules.qualified_name(name), "use a resource name such as nvidia.com/gpu"
        )
        low = _bound(bounds.min, f"{entry}.min", findings)
        high = _bound(bounds.max, f"{entry}.max", findings)
        if low is not None and high is not None and low > high:
            findings.deny(
                entry,
                f"min ({bounds.min}) is greater than max ({bounds.max}), so no Node can match",
                "swap them or widen the range",
            )


def _bound(value: int | str | None, path: str, findings: Findings) -> Fraction | None:
    """The parsed bound, or None when absent or unparsable (then a denial is recorded)."""
    if value is None:
        return None
    try:
        return rules.quantity_value(value)
    except rules.QuantityError as error:
        findings.deny(path, f"{value!r} is not a quantity: {error}", "write e.g. 4, 500m, 80Gi")
        return None
