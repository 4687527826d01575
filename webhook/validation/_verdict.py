"""What the validating webhook decides, and what it decides with.

`Verdict` is the pure functions' answer; `Findings` collects denials and warnings while a check
walks an object, so that a user sees every problem of an object at once rather than one per
`kubectl apply`. `ValidationContext` is everything a check may consult besides the request: the
settings and a view of the LauncherConfigs that exist (from the server's watch cache; never an
API call on the admission path).
"""

from __future__ import annotations

from collections.abc import Container, Iterable
from dataclasses import dataclass, field
from typing import Final

from webhook.admission import AdmissionReview, allow, deny

# HTTP-style codes the apiserver shows with a denial (`metav1.Status.code`).
CODE_FORBIDDEN: Final = 403
CODE_INVALID: Final = 422
CODE_BAD_REQUEST: Final = 400
# A denial lists at most this many problems; the rest are counted. Keeps messages readable and
# the response small whatever the object holds.
_MAX_PROBLEMS: Final = 20


@dataclass(frozen=True, kw_only=True)
class ValidationSettings:
    """Identities the Pod guard trusts.

    `controller_usernames` are exact usernames (`request.userInfo.username`). The reference
    exempts any ServiceAccount named `*-fma-controllers` in any namespace, so anyone who may
    create ServiceAccounts anywhere could write the controllers' fields; fma trusts only the
    listed identities (reference-differences D2); `webhook.settings` builds the usual one,
    `system:serviceaccount:<namespace>:<release>-fma-controllers`.
    """

    controller_usernames: frozenset[str]


@dataclass(frozen=True, kw_only=True)
class ValidationContext:
    """What the checks may consult besides the request.

    `launcher_configs` holds `(namespace, name)` of the LauncherConfigs that exist; any container
    works (a set, or the watch cache itself if it implements `in`). None means "not known yet"
    (cache not synced): reference checks are then skipped rather than guessed.
    """

    settings: ValidationSettings
    launcher_configs: Container[tuple[str, str]] | None = None

    def is_controller(self, username: str | None) -> bool:
        """True when the request comes from one of the trusted controller identities."""
        return username is not None and username in self.settings.controller_usernames


@dataclass(frozen=True)
class Verdict:
    """The webhook's decision. `message` names the field and the fix; `code` is the HTTP-style
    status shown with a denial (403 forbidden field, 422 invalid content, 400 malformed)."""

    allowed: bool
    message: str = ""
    warnings: list[str] = field(default_factory=list)
    code: int = 200

    def to_review(self, uid: str) -> AdmissionReview:
        """The AdmissionReview response that carries this verdict."""
        if self.allowed:
            return allow(uid, warnings=self.warnings)
        return deny(uid, self.message, code=self.code, warnings=self.warnings)


@dataclass
class Findings:
    """Problems found in one object: denials (with the fix) and warnings."""

    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def deny(self, path: str, problem: str, fix: str) -> None:
        """Record a problem that makes the object unacceptable."""
        self.errors.append(f"{path}: {problem} (fix: {fix})")

    def warn(self, path: str, problem: str) -> None:
        """Record something the user should know; the object is still admitted."""
        self.warnings.append(f"{path}: {problem}")

    def deny_all(self, path: str, problems: Iterable[str], fix: str) -> None:
        """Record each problem of a name check under one path and fix."""
        for problem in problems:
            self.deny(path, problem, fix)

    def verdict(self, subject: str, *, code: int = CODE_INVALID) -> Verdict:
        """Allow when nothing was denied, else deny with every problem (up to a limit)."""
        if not self.errors:
            return Verdict(True, warnings=list(self.warnings))
        shown = self.errors[:_MAX_PROBLEMS]
        message = f"{subject} is invalid: " + "; ".join(shown)
        if len(self.errors) > len(shown):
            message += f"; and {len(self.errors) - len(shown)} more problems"
        return Verdict(False, message, list(self.warnings), code)
