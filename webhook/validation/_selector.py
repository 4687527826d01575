"""LauncherPopulationPolicy node selection: the label selector and the allocatable ranges.

The CRD schema types both but cannot say which operators exist, how many values each takes, or
whether `min` exceeds `max`. The launcher-populator would otherwise discover that only when it
evaluates the policy, and report it on the LPP's status where nobody is looking.
"""

from __future__ import annotations

from collections.abc import Mapping
from fractions import Fraction
from typing import Final

from crds.models import LabelSelector, ResourceRange
from webhook.validation import _names
from webhook.validation._quantity import QuantityError, parse_quantity
from webhook.validation._verdict import Findings

_VALUE_OPERATORS: Final = frozenset({"In", "NotIn"})
_EXISTENCE_OPERATORS: Final = frozenset({"Exists", "DoesNotExist"})


def check_label_selector(selector: LabelSelector, path: str, findings: Findings) -> None:
    """Check a `metav1.LabelSelector` the way `metav1.LabelSelectorAsSelector` would parse it."""
    for key, value in (selector.match_labels or {}).items():
        key_path = f"{path}.matchLabels{_names.field_key(key)}"
        findings.deny_all(key_path, _names.label_key(key), "use a valid label key")
        findings.deny_all(key_path, _names.label_value(value), "use a valid label value")
    for index, requirement in enumerate(selector.match_expressions or []):
        item = f"{path}.matchExpressions[{index}]"
        findings.deny_all(f"{item}.key", _names.label_key(requirement.key), "use a valid label key")
        values = requirement.values or []
        if requirement.operator in _VALUE_OPERATORS:
            if not values:
                findings.deny(
                    f"{item}.values",
                    f"must be non-empty for operator {requirement.operator}",
                    "list at least one value, or use Exists/DoesNotExist",
                )
        elif requirement.operator in _EXISTENCE_OPERATORS:
            if values:
                findings.deny(
                    f"{item}.values",
                    f"must be empty for operator {requirement.operator}",
                    "remove the values, or use In/NotIn",
                )
        else:
            findings.deny(
                f"{item}.operator",
                f"unknown operator {requirement.operator!r}",
                "use one of In, NotIn, Exists, DoesNotExist",
            )
        for value_index, value in enumerate(values):
            findings.deny_all(
                f"{item}.values[{value_index}]",
                _names.label_value(value),
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
            entry, _names.qualified_name(name), "use a resource name such as nvidia.com/gpu"
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
        return parse_quantity(value)
    except QuantityError as error:
        findings.deny(path, f"{value!r} is not a quantity: {error}", "write e.g. 4, 500m, 80Gi")
        return None
