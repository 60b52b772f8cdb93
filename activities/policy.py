"""Loading a landlord's policy for a case, checked against the Complaint Handling Code."""

from __future__ import annotations

import re
from pathlib import Path

import structlog
from temporalio import activity
from temporalio.exceptions import ApplicationError

from complaints.policies import POLICY_DIR, PolicyError, PolicyRejected, load_compliant_policy
from models.messages import LoadPolicyInput
from models.policy import Policy

__all__ = ["PolicyActivities"]

log = structlog.get_logger(__name__)

_POLICY_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")


class PolicyActivities:
    """Load policies by name from the landlord's folder, else those shipped."""

    def __init__(self, policy_dir: Path | None = None) -> None:
        """Configure where policies are looked up.

        Args:
            policy_dir: A folder of ``<name>.toml`` policies that take precedence over
                the shipped ones (``complaints/policies/``); None for the shipped only.

        """
        self.policy_dir = policy_dir

    def _path(self, name: str) -> Path:
        if self.policy_dir is not None:
            local = self.policy_dir / f"{name}.toml"
            if local.is_file():
                return local
        return POLICY_DIR / f"{name}.toml"

    @activity.defn
    def load_policy(self, input: LoadPolicyInput) -> Policy:
        """Load the named policy, refusing one that is looser than the Code.

        The policy is read here, not in the workflow, so that the policy a case runs
        under is recorded in its history and later edits of the file do not change it.

        Args:
            input: The policy name (a plain name such as ``connexus``, never a path).

        Returns:
            The policy.

        Raises:
            ApplicationError: Non-retryable, of type ``PolicyRejected`` when the policy
                breaks the Code (the message names the provisions and the first detail
                lists them) or ``PolicyError`` when it is missing or malformed.

        """
        with structlog.contextvars.bound_contextvars(reference=activity.info().workflow_id):
            return self._load(input)

    def _load(self, input: LoadPolicyInput) -> Policy:
        """Load the policy (see ``load_policy``)."""
        return self.read(input.name)

    def read(self, name: str) -> Policy:
        """Load the named policy (see ``load_policy``); callable from any activity."""
        if not _POLICY_NAME.fullmatch(name):
            raise ApplicationError(
                f"invalid policy name {name!r}: lower-case letters, digits and '-' only",
                type="PolicyError", non_retryable=True)
        try:
            policy = load_compliant_policy(self._path(name))
        except PolicyRejected as exc:
            log.warning("policy_rejected", policy=name,
                        provisions=[b.provision for b in exc.breaches])
            raise ApplicationError(str(exc), [b.provision for b in exc.breaches],
                                   type="PolicyRejected", non_retryable=True) from exc
        except PolicyError as exc:
            log.warning("policy_error", policy=name)
            raise ApplicationError(str(exc), type="PolicyError", non_retryable=True) from exc
        log.info("policy_loaded", policy=name, landlord=policy.landlord)
        return policy
