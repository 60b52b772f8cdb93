"""The report's tallies: complaints, responses and remedies counted as written (revision 0019).

The annual report over a large landlord's year used to read every complaint, response and
remedy of the year, and join each response to its complaint (most of the report's time).
These tables hold the same counts, kept by database triggers on ``complaints``,
``responses``, ``remedies`` and ``remedy_payments`` (created by migration 0019, for SQLite
and PostgreSQL alike), so that every writer keeps them right: the workflow's recording,
``complaints import``, ``complaints resync``, the synthetic year, and any hand-run SQL.
The report adds up a year's rows of them instead (:mod:`complaints.reports.passes`).

- ``response_tally``: per landlord, day issued, stage, tenure, policy file and working
  days taken, how many responses and how each was counted (within the base date, within
  a Code-compliant extended date, within the Code timescales, extended...).
- ``missed_response_tally``: per landlord, day issued, stage, who issued the response and
  the team (category), how many were outside the response timescale (the report's
  breaches).
- ``complaint_tally``: per landlord, day received, channel, team, tenure and policy file,
  how many complaints were received, refused, withdrawn, escalated and imported.
- ``acknowledgement_tally``: per landlord and day received, by the acknowledgement's due
  date and the day it was made, how many complaints (the acknowledgement figures as at
  any date).
- ``escalation_tally``: per landlord and day escalation was requested, tenure and policy
  file, by the stage 2 acknowledgement's due date and the day it was made, how many
  requests; ``taken_on_tally``: per landlord and day, tenure and policy file, the declined
  complaints taken on by the Ombudsman's order.
- ``late_acknowledgement_tally``: per landlord, day acknowledged, stage, handler and team,
  how many acknowledgements were made after their due date (the report's breaches).
- ``remedy_tally``: per landlord, hour offered, kind and date promised, how many remedies
  and their amounts; ``payment_tally``: the payments of financial remedies, by the
  remedy's hour offered and date promised, and the day paid.

Voided cases are never counted, and a change to a complaint's landlord, tenure, policy
file, category, escalation or voiding moves its responses' counts with it. A row can
come to count nothing (a response moved away); the report leaves those out.
"""

import datetime as dt

from sqlmodel import Field, SQLModel

from models.columns import UTCDateTime

__all__ = ["NO_DATE", "AcknowledgementTallyRow", "ComplaintTallyRow", "EscalationTallyRow",
           "LateAcknowledgementTallyRow", "MissedResponseTallyRow", "PaymentTallyRow",
           "RemedyTallyRow", "ResponseTallyRow", "TakenOnTallyRow"]


class ResponseTallyRow(SQLModel, table=True):
    """The responses issued on one day, counted by how each met its timescales.

    Attributes:
        tenure: The complaint's tenure, ``""`` when not recorded (a key cannot be NULL).
        working_days: Working days taken (``responses.working_days_taken``).
        responses: How many responses.
        within_base: Issued on or before the base due date.
        within_extension: Within the base date or a Code-compliant extended date.
        within_code: The strict CH02 verdict was within.
        extended: The stage had an extension.
        extended_within_new_date: Extended, and issued by the extended date.
        late_final: Issued after the due date in force.
        upheld: Decided upheld (``partly_upheld``, ``not_upheld`` likewise).
        escalated: The complaint's escalation was requested (at any date: the report
            takes off those requested after its as-of date).
    """

    __tablename__ = "response_tally"

    landlord: str = Field(primary_key=True)
    responded_on: dt.date = Field(primary_key=True)
    stage: int = Field(primary_key=True)
    tenure: str = Field(primary_key=True)
    policy_name: str = Field(primary_key=True)
    working_days: int = Field(primary_key=True)
    responses: int = 0
    within_base: int = 0
    within_extension: int = 0
    within_code: int = 0
    extended: int = 0
    extended_within_new_date: int = 0
    late_final: int = 0
    upheld: int = 0
    partly_upheld: int = 0
    not_upheld: int = 0
    escalated: int = 0


class MissedResponseTallyRow(SQLModel, table=True):
    """The responses issued on one day outside the response timescale, by who and team.

    Outside means neither on or before the base due date nor on or before a
    Code-compliant extended date (the report's breaches, response only).

    Attributes:
        by: Who issued the response.
        category: The complaint's category (the team).
        missed: How many.
    """

    __tablename__ = "missed_response_tally"

    landlord: str = Field(primary_key=True)
    responded_on: dt.date = Field(primary_key=True)
    stage: int = Field(primary_key=True)
    by: str = Field(primary_key=True)
    category: str = Field(primary_key=True)
    missed: int = 0


class ComplaintTallyRow(SQLModel, table=True):
    """The complaints received on one day, by channel, team, tenure and policy file.

    Attributes:
        tenure: As in :class:`ResponseTallyRow`.
        logged: How many were received.
        refused: Refused under the exclusions when received: still refused, or taken on
            later by the Ombudsman's order.
        withdrawn: Withdrawn since.
        escalated: Escalation requested (at any date: the report takes off those
            requested after its as-of date).
        imported: Came from ``complaints import``.
    """

    __tablename__ = "complaint_tally"

    landlord: str = Field(primary_key=True)
    received_on: dt.date = Field(primary_key=True)
    channel: str = Field(primary_key=True)
    category: str = Field(primary_key=True)
    tenure: str = Field(primary_key=True)
    policy_name: str = Field(primary_key=True)
    logged: int = 0
    refused: int = 0
    withdrawn: int = 0
    escalated: int = 0
    imported: int = 0


#: Stands for "no date" in a tally's date key (a key cannot be NULL): later than any
#: as-of date, so never "on or before" one.
NO_DATE = dt.date(9999, 12, 31)


class AcknowledgementTallyRow(SQLModel, table=True):
    """The complaints received on one day, by when they were due to be acknowledged and were.

    The report counts from it the acknowledgements made by its as-of date and those
    overdue at it, whatever that date is.

    Attributes:
        acknowledgement_due: The due date (:data:`NO_DATE` when none was planned).
        acknowledged_on: The day acknowledged (:data:`NO_DATE` when not yet).
        within_limit: 1 when acknowledged on or before the due date.
        is_excluded: 1 while the complaint stands refused under the exclusions.
        pending: 1 while it is neither declined, withdrawn nor referred to the Ombudsman.
        complaints: How many.
    """

    __tablename__ = "acknowledgement_tally"

    landlord: str = Field(primary_key=True)
    received_on: dt.date = Field(primary_key=True)
    acknowledgement_due: dt.date = Field(primary_key=True)
    acknowledged_on: dt.date = Field(primary_key=True)
    within_limit: int = Field(primary_key=True)
    is_excluded: int = Field(primary_key=True)
    pending: int = Field(primary_key=True)
    complaints: int = 0


class EscalationTallyRow(SQLModel, table=True):
    """The escalation requests made on one day, by when each was to be acknowledged and was.

    The report counts from it the stage 2 complaints of a period, their acknowledgements as
    at its as-of date, and those overdue at it.

    Attributes:
        tenure: As in :class:`ResponseTallyRow`.
        stage2_acknowledgement_due: The due date (:data:`NO_DATE` when none was planned).
        stage2_acknowledged_on: The day acknowledged (:data:`NO_DATE` when not yet).
        within_limit: 1 when acknowledged on or before the due date.
        is_refused: 1 while the escalation stands refused.
        still_open: 1 while the case is neither withdrawn nor referred to the Ombudsman.
        requests: How many.
    """

    __tablename__ = "escalation_tally"

    landlord: str = Field(primary_key=True)
    escalation_requested_on: dt.date = Field(primary_key=True)
    tenure: str = Field(primary_key=True)
    policy_name: str = Field(primary_key=True)
    stage2_acknowledgement_due: dt.date = Field(primary_key=True)
    stage2_acknowledged_on: dt.date = Field(primary_key=True)
    within_limit: int = Field(primary_key=True)
    is_refused: int = Field(primary_key=True)
    still_open: int = Field(primary_key=True)
    requests: int = 0


class TakenOnTallyRow(SQLModel, table=True):
    """The declined complaints taken on by the Ombudsman's order on one day (CH01).

    Attributes:
        tenure: As in :class:`ResponseTallyRow`.
        complaints: How many.
    """

    __tablename__ = "taken_on_tally"

    landlord: str = Field(primary_key=True)
    taken_on_on: dt.date = Field(primary_key=True)
    tenure: str = Field(primary_key=True)
    policy_name: str = Field(primary_key=True)
    complaints: int = 0


class LateAcknowledgementTallyRow(SQLModel, table=True):
    """The acknowledgements made on one day after their due date, by stage, handler and team.

    A complaint counts once for each stage acknowledged late: stage 1 on the day it was
    acknowledged, under its stage 1 handler; stage 2 likewise (the report's breaches).

    Attributes:
        handler: The stage's handler, ``""`` when none was recorded.
        category: The complaint's category (the team).
        acknowledgements: How many.
    """

    __tablename__ = "late_acknowledgement_tally"

    landlord: str = Field(primary_key=True)
    acknowledged_on: dt.date = Field(primary_key=True)
    stage: int = Field(primary_key=True)
    handler: str = Field(primary_key=True)
    category: str = Field(primary_key=True)
    acknowledgements: int = 0


class RemedyTallyRow(SQLModel, table=True):
    """The remedies offered in one hour (UTC), by kind and the date promised.

    A London day starts on a whole UTC hour, so a period's remedies are those of its
    hours. The hour is as each database truncates the stored instant (the report only
    compares it with a period's bounds).

    Attributes:
        offered_hour: The hour the remedy was offered in.
        due_by: The date promised (:data:`NO_DATE` when none was).
        remedies: How many.
        amount_pence: Their amounts added up (financial remedies).
        undated: How many were promised with no date.
    """

    __tablename__ = "remedy_tally"

    landlord: str = Field(primary_key=True)
    offered_hour: dt.datetime = Field(primary_key=True, sa_type=UTCDateTime)
    kind: str = Field(primary_key=True)
    due_by: dt.date = Field(primary_key=True)
    remedies: int = 0
    amount_pence: int = 0
    undated: int = 0


class PaymentTallyRow(SQLModel, table=True):
    """Payments of financial remedies, by the remedy's hour offered and date, and day paid.

    Attributes:
        offered_hour: The hour the remedy paid was offered in.
        due_by: The date it was promised by (:data:`NO_DATE` when none was).
        paid_on: The day paid.
        payments: How many.
        amount_pence: The amounts paid added up.
        undated: How many paid remedies were promised with no date.
        paid_late: How many were paid after the date promised.
    """

    __tablename__ = "payment_tally"

    landlord: str = Field(primary_key=True)
    offered_hour: dt.datetime = Field(primary_key=True, sa_type=UTCDateTime)
    due_by: dt.date = Field(primary_key=True)
    paid_on: dt.date = Field(primary_key=True)
    payments: int = 0
    amount_pence: int = 0
    undated: int = 0
    paid_late: int = 0
