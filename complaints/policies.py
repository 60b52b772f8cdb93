"""Loading landlord policies and checking them against the Complaint Handling Code.

Policies ship as TOML files in ``complaints/policies/`` and are addressed by name; a path
to any other TOML file works too. Loading is the only I/O here.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from models.policy import Policy

POLICY_DIR = Path(__file__).parent / "policies"


@dataclass(frozen=True)
class CodeBreach:
    """One way a policy is looser than the Code.

    Attributes:
        provision: The Code provision broken, e.g. ``"6.2"``.
        message: What the policy says and what the Code requires.
    """

    provision: str
    message: str

    def __str__(self) -> str:
        return f"Code {self.provision}: {self.message}"


class PolicyError(Exception):
    """A policy could not be loaded (missing, unreadable or malformed)."""


class PolicyRejected(PolicyError):
    """A policy is looser than the Code; ``breaches`` says where."""

    def __init__(self, policy: Policy, breaches: list[CodeBreach]) -> None:
        self.policy = policy
        self.breaches = breaches
        listed = "; ".join(str(b) for b in breaches)
        super().__init__(f"policy {policy.name!r} breaks the Complaint Handling Code: {listed}")


#: The Code's own time limits: (limit field, Code maximum, provision, what it covers).
CODE_MAXIMA: tuple[tuple[str, int, str, str], ...] = (
    ("stage1_acknowledgement", 5, "6.2",
     "stage 1 complaints must be acknowledged within 5 working days of receipt"),
    ("stage1_response", 10, "6.3",
     "stage 1 responses are due within 10 working days of the acknowledgement"),
    ("stage1_extension_cap", 10, "6.4",
     "a stage 1 extension may be no more than 10 working days without good reason"),
    ("stage2_acknowledgement", 5, "6.11",
     "stage 2 requests must be acknowledged within 5 working days of the request"),
    ("stage2_response", 20, "6.14",
     "stage 2 final responses are due within 20 working days of the acknowledgement"),
    ("stage2_extension_cap", 20, "6.15",
     "a stage 2 extension may be no more than 20 working days without good reason"),
)


def check_against_code(policy: Policy) -> list[CodeBreach]:
    """List every way ``policy`` is looser than the Complaint Handling Code 2024.

    Stricter limits are fine. A response clock that runs from receipt rather than from the
    acknowledgement is stricter, so it is accepted with the same number of days.

    Args:
        policy: The policy to check.

    Returns:
        The breaches, empty when the policy complies.
    """
    breaches: list[CodeBreach] = []
    if policy.informal_stage:
        breaches.append(CodeBreach(
            "5.2", "the policy has an informal stage; extra named stages such as 'stage 0' "
            "or 'informal complaint' are not appropriate"))
    if policy.stages > 2:
        breaches.append(CodeBreach(
            "5.3", f"the policy has {policy.stages} stages; a process with more than two "
            "stages is not acceptable under any circumstances"))
    elif policy.stages < 2:
        breaches.append(CodeBreach(
            "6.10", "the policy has one stage; a complaint not resolved at stage 1 must be "
            "progressed to stage 2"))
    if policy.written_complaints_only:
        breaches.append(CodeBreach(
            "1.2", "the policy accepts only written complaints; a complaint is an expression "
            "of dissatisfaction however made (also 3.2: raised in any way)"))
    for field, maximum, provision, rule in CODE_MAXIMA:
        value = getattr(policy.limits, field)
        if value > maximum:
            breaches.append(CodeBreach(
                provision, f"{field.replace('_', ' ')} is {value} working days; {rule}"))
    if policy.exclusion_window_months < 12:
        breaches.append(CodeBreach(
            "2.3", f"complaints are excluded after {policy.exclusion_window_months} months; "
            "complaints within 12 months of the issue must be accepted"))
    ombudsman = policy.ombudsman
    if not (ombudsman.phone and ombudsman.address and ombudsman.online_form):
        breaches.append(CodeBreach(
            "6.5", "the Ombudsman's contact details (phone, address, online form) are "
            "incomplete; residents must be given them with every extension (also 6.16)"))
    return breaches


def policy_path(name_or_path: str | Path) -> Path:
    """Resolve a shipped policy name (``connexus``) or a file path to a TOML file."""
    candidate = Path(name_or_path)
    if candidate.suffix == ".toml" or candidate.exists():
        return candidate
    return POLICY_DIR / f"{name_or_path}.toml"


def shipped_policy_names() -> list[str]:
    """Names of the policies shipped with the engine."""
    return sorted(p.stem for p in POLICY_DIR.glob("*.toml"))


def load_policy(name_or_path: str | Path) -> Policy:
    """Load a policy without checking it against the Code.

    Raises:
        PolicyError: The file is missing or is not a valid policy; the message says how
            to fix it.
    """
    path = policy_path(name_or_path)
    if not path.is_file():
        names = ", ".join(shipped_policy_names())
        raise PolicyError(f"no policy {str(name_or_path)!r}: give a file path or one of {names}")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise PolicyError(f"cannot read policy file {path}: {exc}") from exc
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors())
        raise PolicyError(f"invalid policy file {path}: {problems}") from exc


def load_compliant_policy(name_or_path: str | Path) -> Policy:
    """Load a policy and refuse it unless it meets the Code.

    Raises:
        PolicyError: The policy cannot be read.
        PolicyRejected: The policy is looser than the Code.
    """
    policy = load_policy(name_or_path)
    breaches = check_against_code(policy)
    if breaches:
        raise PolicyRejected(policy, breaches)
    return policy
