"""A landlord's complaints policy, as data.

A policy is loaded from a TOML file (see ``complaints/policies/``) and checked against the
Housing Ombudsman's Complaint Handling Code (2024) before it may drive a case: stricter
than the Code is fine, looser is refused with the provision it breaks.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, field_validator


class Nation(StrEnum):
    """The UK jurisdictions whose bank holidays differ."""

    ENGLAND_AND_WALES = "england-and-wales"
    SCOTLAND = "scotland"
    NORTHERN_IRELAND = "northern-ireland"


class ResponseClock(StrEnum):
    """The event a stage response time limit is counted from."""

    ACKNOWLEDGEMENT = "acknowledgement"
    RECEIPT = "receipt"


class EscalationWindowUnit(StrEnum):
    """Units an escalation window can be written in."""

    WORKING_DAYS = "working_days"
    CALENDAR_DAYS = "calendar_days"
    CALENDAR_MONTHS = "calendar_months"


class EscalationWindowStart(StrEnum):
    """What an escalation window runs from."""

    RESPONSE = "response"
    ACTIONS_COMPLETED = "actions_completed"


class EscalationWindow(BaseModel):
    """How long after stage 1 a resident may ask for stage 2 (policy, not Code)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    length: PositiveInt
    unit: EscalationWindowUnit
    runs_from: EscalationWindowStart = EscalationWindowStart.RESPONSE


class OmbudsmanDetails(BaseModel):
    """The Housing Ombudsman's contact details as printed in letters (Code 3.7, 6.5, 6.16)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = "Housing Ombudsman Service"
    address: str = "PO Box 1484, Unit D, Preston, PR2 0ET"
    phone: str = "0300 111 3000"
    phone_hours: str = "9am-5pm, Monday to Friday"
    online_form: str = "https://www.housing-ombudsman.org.uk/residents/make-a-complaint/"
    email: str | None = "info@housing-ombudsman.org.uk"
    email_new_cases_until: dt.date | None = Field(
        default=dt.date(2026, 1, 13),
        description="From this date the Ombudsman takes no new case enquiries by email.",
    )

    def email_takes_new_cases(self, on: dt.date) -> bool:
        """Whether residents may still open a case by email on ``on``."""
        if self.email is None:
            return False
        return self.email_new_cases_until is None or on < self.email_new_cases_until


class TimeLimits(BaseModel):
    """Every time limit of the policy, in working days."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    stage1_acknowledgement: PositiveInt
    early_contact: PositiveInt | None = None
    stage1_response: PositiveInt
    stage1_response_from: ResponseClock = ResponseClock.ACKNOWLEDGEMENT
    stage1_extension_cap: PositiveInt
    stage2_acknowledgement: PositiveInt
    stage2_response: PositiveInt
    stage2_response_from: ResponseClock = ResponseClock.ACKNOWLEDGEMENT
    stage2_extension_cap: PositiveInt
    reminder_lead: int = Field(default=2, ge=0, description="Working days before a due date.")


class Retention(BaseModel):
    """How long a closed case's personal data is kept (UK GDPR storage limitation).

    Applied by the retention job (``activities.retention``) from the *current* policy
    file, not the copy a case recorded when it started: a landlord that shortens or
    lengthens its period changes it for every case.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    years_after_closure: int = Field(
        default=6, ge=1, le=50,
        description="Whole years after a case closed (or was declined, withdrawn or "
                    "voided) before its personal data is erased.")


#: The themes a response is filed under when the policy names none (Code 8.1, 9.1).
DEFAULT_THEMES: tuple[str, ...] = (
    "repairs_delays", "damp_and_mould", "communication", "staff_conduct",
    "complaint_handling", "anti_social_behaviour", "rent_and_charges", "estate_services",
    "neighbourhood_and_safety", "policy_or_process", "other")
#: The root causes a response is filed under when the policy names none.
DEFAULT_ROOT_CAUSES: tuple[str, ...] = (
    "process_not_followed", "process_gap", "poor_communication", "missed_appointment",
    "contractor_performance", "record_keeping", "staff_knowledge", "resourcing",
    "system_failure", "third_party", "no_service_failure")
#: A vocabulary entry: lower case, digits and underscores (shown with spaces).
VOCABULARY_ENTRY = r"^[a-z0-9][a-z0-9_]{0,63}$"


class LearningVocabulary(BaseModel):
    """The themes and root causes a landlord files each response under (Code 8.1, 9).

    Read only by the application layer (``complaints.learning``) from the *current*
    policy file; the workflow never uses it. TOML: ``[learning] themes = [...]`` and
    ``root_causes = [...]``, each entry lower case with underscores.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    themes: tuple[str, ...] = Field(default=DEFAULT_THEMES, min_length=1, max_length=100)
    root_causes: tuple[str, ...] = Field(default=DEFAULT_ROOT_CAUSES, min_length=1,
                                         max_length=100)

    @field_validator("themes", "root_causes")
    @classmethod
    def _entries(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        """Each entry is a lower-case slug, listed once."""
        bad = [v for v in value if not re.match(VOCABULARY_ENTRY, v)]
        if bad:
            raise ValueError(f"{bad[0]!r} is not an entry: lower case letters, digits and "
                             "underscores, at most 64")
        if len(set(value)) != len(value):
            raise ValueError("an entry is listed twice: list each once")
        return value


class HomesByTenure(BaseModel):
    """Homes owned at 31 March of a reporting year, per tenure (the TSM's denominators)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    year: int = Field(ge=2000, le=2100,
                      description="The reporting year's first year (2025: 2025/26).")
    lcra: int = Field(default=0, ge=0, description="Low-cost rental accommodation homes.")
    lcho: int = Field(default=0, ge=0, description="Low-cost home ownership homes.")

    @property
    def total(self) -> int:
        """LCRA and LCHO homes together."""
        return self.lcra + self.lcho


class Policy(BaseModel):
    """A landlord's complaints policy.

    Attributes:
        name: Short name the policy is addressed by (``code-2024``, ``connexus``...).
        landlord: The landlord's name as printed in letters.
        nation: Whose bank holidays count.
        stages: Formal complaint stages; the Code allows exactly two (5.3).
        informal_stage: Whether an "informal"/"stage 0" step comes first (5.2 forbids it).
        written_complaints_only: Whether only written complaints are accepted (1.2, 3.2).
        limits: Time limits in working days.
        escalation_window: How long after stage 1 escalation is accepted.
        exclusion_window_months: Complaints about issues this old may be excluded (2.3).
        closure_days: Days the landlord is closed (e.g. a Christmas shutdown). They never
            lengthen a Code timescale: deadlines count Monday to Friday less the nation's
            bank holidays, and staff are warned when a due date falls in or just after a
            closure, so that the work is done before it.
        one_off_bank_holidays: Proclaimed one-off bank holidays not yet in holiday data.
        ombudsman: Contact details printed in letters.
        homes_owned: Homes owned, for reporting per 1,000 homes (CH01): the fallback
            total when ``homes`` has no figure for the year.
        homes: Homes per tenure as at 31 March, by reporting year (``2025`` is 2025/26,
            counted at 31 March 2026): TOML ``[homes.2025]`` with ``lcra`` and ``lcho``.
        retention: How long a closed case's personal data is kept (default 6 years).
        learning: The themes and root causes responses are filed under (Code 8.1, 9).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    landlord: str
    nation: Nation
    stages: PositiveInt = 2
    informal_stage: bool = False
    written_complaints_only: bool = False
    limits: TimeLimits
    escalation_window: EscalationWindow
    exclusion_window_months: PositiveInt = 12
    closure_days: tuple[dt.date, ...] = ()
    one_off_bank_holidays: tuple[dt.date, ...] = ()
    ombudsman: OmbudsmanDetails = OmbudsmanDetails()
    homes_owned: int = Field(default=0, ge=0)
    homes: tuple[HomesByTenure, ...] = ()
    landlord_contact: str = ""
    source: str = ""
    retention: Retention = Retention()
    learning: LearningVocabulary = LearningVocabulary()

    def homes_in(self, year: int) -> HomesByTenure | None:
        """Homes per tenure for the reporting year starting 1 April ``year``, if given."""
        return next((h for h in self.homes if h.year == year), None)

    @field_validator("homes", mode="before")
    @classmethod
    def _homes_by_year(cls, value: Any) -> Any:
        """Read TOML's ``[homes.2025]`` tables (a mapping by year) as a tuple of years."""
        if isinstance(value, Mapping):
            return tuple({"year": int(year), **dict(homes)}
                         for year, homes in sorted(value.items(), key=lambda i: int(i[0])))
        return value

    def extension_cap(self, stage: int) -> int:
        """The extension cap in working days at ``stage`` (6.4 for 1, 6.15 for 2)."""
        return self.limits.stage1_extension_cap if stage == 1 else self.limits.stage2_extension_cap

    def non_working_days(self) -> tuple[dt.date, ...]:
        """Days that do not count as working days on top of the nation's bank holidays.

        Only proclaimed one-off bank holidays: a landlord's closure days never lengthen a
        Code timescale (see ``closure_days``).
        """
        return tuple(sorted(set(self.one_off_bank_holidays)))
