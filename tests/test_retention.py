"""Retention: cases past their landlord's period are erased, figures kept, runs recorded.

Most tests seed a case straight into a database of their own (every table that can hold a
resident's data, written as the activities write it) and run the retention activity; one
takes a real case through the workflow to its end on the session's Temporal server and
checks that its finished history is deleted too.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import sqlite3
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlmodel import Session, select
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import ActivityEnvironment
from temporalio.worker import Worker

from activities.retention import (
    ERASED,
    ErasureRefused,
    RetentionActivities,
    anonymise_case,
    scrub_json,
)
from complaints import casefiles
from complaints.db import make_engine, session_factory, upgrade
from domain.guards import Limits
from domain.machine import ComplaintMachine
from models.actions import (
    Acknowledge,
    Action,
    Close,
    CompleteAction,
    PayRemedy,
    RecordContact,
    Respond,
    Withdraw,
)
from models.case import (
    CaseFile,
    Channel,
    ComplaintDefinition,
    Decision,
    OutstandingAction,
    Party,
    PointFinding,
    Remedy,
    RemedyKind,
)
from models.learning import LearningRow, LearningTagRow
from models.retention import ErasureRequestInput, RetentionRunInput, RetentionRunResult
from models.tables import (
    ActionRow,
    AdjustmentRow,
    AuditRow,
    CaseRecordRow,
    ComplaintRow,
    DeliveryRow,
    ErasureRow,
    ErasureRunRow,
    ExtensionRow,
    LetterRow,
    OmbudsmanDetailsRow,
    PartyRow,
    ReferenceRow,
    RemedyRow,
    ResponseRow,
)
from tests.conftest import Stack, make_intake
from workflows.retention import RetentionWorkflow

#: Distinctive strings in every personal field of the seeded case: none may survive.
NAME = "Zephyrine Quillfeather"
ADDRESS = "17 Marmalade Crescent"
EMAIL = "zq.unique@example.invalid"
PHONE = "07700 900517"
MARKS = ("Zephyrine", "Quillfeather", "Marmalade", "zq.unique", "900517", "xylophone",
         "Brambleworth", "Periwinkle", "Gondolier", "Tamarisk", "Wombatry", "Halcyonix")
STAFF = "hdl-1"
CLOSED_AT = dt.datetime(2019, 6, 3, 10, 0, tzinfo=dt.UTC)
#: More than six years after CLOSED_AT: the case is past the shipped policies' retention.
EXPIRED = dt.date(2026, 6, 4)


def _definition() -> ComplaintDefinition:
    return ComplaintDefinition(
        summary="The xylophone-shaped damp patch in Zephyrine's bedroom",
        points=("Damp reported at 17 Marmalade Crescent was not treated",),
        outcomes_sought=("Treat the Brambleworth damp",))


def _actions() -> list[Action]:
    """A case from acknowledgement to closure, every free text marked."""
    return [
        Acknowledge(by=STAFF, handler_id=STAFF, definition=_definition()),
        RecordContact(by=STAFF, direction="outbound", channel=Channel.PHONE,
                      summary="Called Zephyrine Quillfeather on 07700 900517",
                      with_party="Periwinkle Quillfeather"),
        Respond(by=STAFF, decision=Decision.UPHELD,
                findings=(PointFinding(point="Damp reported at 17 Marmalade Crescent was "
                                             "not treated",
                                       finding="Gondolier survey confirmed it",
                                       reason="Tamarisk records show it"),),
                remedies=(Remedy(kind=RemedyKind.FINANCIAL, amount=Decimal("150.00"),
                                 description="Wombatry carpet compensation",
                                 due_by=dt.date(2019, 5, 30)),),
                outstanding_actions=(OutstandingAction(
                    action_id="A1", description="Treat the Halcyonix damp",
                    due_by=dt.date(2019, 5, 30)),)),
        CompleteAction(by=STAFF, action_id="A1", note="Halcyonix treated"),
        PayRemedy(by=STAFF, stage=1, remedy=1, amount=Decimal("150.00"),
                  paid_on=dt.date(2019, 5, 20), method="cheque to Zephyrine"),
        Close(by=STAFF, note="Closed after Zephyrine's call"),
    ]


def seed_case(session: Session, data_dir: Path, outbox: Path, reference: str, *,
              closed: bool = True, closed_at: dt.datetime = CLOSED_AT) -> None:
    """A case with the resident's data in every table and folder that can hold it."""
    at = closed_at - dt.timedelta(days=40)
    machine = ComplaintMachine(CaseFile(reference=reference, policy_name="connexus",
                                        received_on=at.date(), channel=Channel.PHONE),
                               Limits(casework=3))
    actions = _actions() if closed else _actions()[:2]
    audit = [AuditRow(reference=reference, seq=e.seq, at=e.at, action=e.action, by=e.by,
                      from_state=e.from_state, to_state=e.to_state,
                      detail=json.dumps({"trigger": a.trigger, **a.model_dump(mode="json")},
                                        sort_keys=True))
             for a in actions for e in [machine.apply(a, at)]]
    session.add(ComplaintRow(
        reference=reference, landlord="Connexus", policy_name="connexus", channel="phone",
        category="damp_and_mould", received_on=at.date(), state=machine.state.value,
        stage=1, description="A xylophone-shaped damp patch at 17 Marmalade Crescent",
        outcomes_sought="Treat the Brambleworth damp",
        closed_at=closed_at if closed else None))
    session.add(ReferenceRow(reference=reference, year=at.year,
                             seq=int(reference.rsplit("-", 1)[1]), channel="phone",
                             channel_reference=f"call-{reference}", fingerprint="ab" * 32))
    session.add(PartyRow(reference=reference, position=1, role="resident", name=NAME,
                         address=f"{ADDRESS}\nLudlow", email=EMAIL, phone=PHONE))
    session.add(AdjustmentRow(reference=reference, position=1, recorded_on=at.date(),
                              description="Large print: Zephyrine's sight loss"))
    session.add_all(audit)
    session.add(CaseRecordRow(reference=reference, policy_json="{}",
                              case_json=machine.case.model_dump_json()))
    letter_id = f"{reference}:ack:1"
    session.add(LetterRow(letter_id=letter_id, reference=reference, kind="stage1_acknowledgement",
                          stage=1, seq=1, subject=f"Your complaint {reference}",
                          text=f"Dear {NAME}, {ADDRESS}", html=f"<p>Dear {NAME}</p>",
                          sha256="0" * 64, pdf=f"%PDF {NAME}".encode(), pdf_sha256="1" * 64))
    session.add(DeliveryRow(letter_id=letter_id, channel="smtp", recipient=EMAIL))
    session.add(DeliveryRow(letter_id=letter_id, channel="outbox", recipient="file"))
    session.add(RemedyRow(reference=reference, stage=1, position=1, kind="financial",
                          description="Wombatry carpet compensation", amount_pence=15000,
                          due_by=dt.date(2019, 5, 30), decision="upheld", offered_by=STAFF,
                          offered_at=at))
    session.add(ActionRow(reference=reference, action_id="A1", stage=1,
                          description="Treat the Halcyonix damp", due_by=dt.date(2019, 5, 30)))
    session.add(ExtensionRow(reference=reference, extension_seq=1, stage=1, working_days=5,
                             reason="A specialist survey is needed",
                             good_reason="Gondolier is in hospital", granted_by=STAFF,
                             granted_at=at))
    session.add(OmbudsmanDetailsRow(
        record_id=f"{reference}:ombudsman:1:1", reference=reference, stage=1,
        extension_seq=1, letter_id=letter_id, given_to=NAME, given_at=at,
        name="Housing Ombudsman Service", address="PO Box", phone="0300 111 3000",
        phone_hours="9-5", online_form="https://example.invalid/form"))
    session.commit()
    folder = outbox / reference
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "letter.txt").write_text(f"Dear {NAME}, {ADDRESS}")
    upload = data_dir / "upload" / "zephyrine-photo-notes.txt"
    upload.parent.mkdir(parents=True, exist_ok=True)
    upload.write_text(f"Notes from {NAME} about the xylophone-shaped patch\n")
    casefiles.attach_document(session, data_dir, reference, upload, kind="report",
                              direction="inbound", by=STAFF, note="From Zephyrine",
                              today=at.date())
    upload.unlink()
    casefiles.record_triage(session, reference, complexity="medium", vulnerability="some",
                            risk="low", note="Zephyrine's sight loss", by=STAFF)
    casefiles.add_restriction(session, reference, reason="Zephyrine's repeated calls",
                              evidence="Tamarisk call log", proportionality="Email open",
                              contact_route="Email to Periwinkle only",
                              review_on=at.date() + dt.timedelta(days=30), by=STAFF,
                              today=at.date())


#: The lessons recorded on the seeded case's response: staff typed the resident's name in.
LESSONS = f"Call {NAME} back the same day when damp is reported"


def seed_learning(session: Session, reference: str) -> None:
    """The seeded case's stage 1 response, filed under a theme and a root cause, with lessons."""
    responded = CLOSED_AT - dt.timedelta(days=40)  # as ``seed_case`` responds
    session.add(ResponseRow(reference=reference, stage=1, seq=1, decision="upheld",
                            responded_at=responded, responded_on=responded.date(), by=STAFF,
                            clock_start=responded.date(), due_base=responded.date(),
                            due_final=responded.date(), working_days_taken=0))
    learning = LearningRow(reference=reference, stage=1, lessons=LESSONS, recorded_by=STAFF)
    session.add(learning)
    session.flush()
    assert learning.id is not None
    session.add_all([LearningTagRow(learning_id=learning.id, kind="theme", value="damp_and_mould"),
                     LearningTagRow(learning_id=learning.id, kind="root_cause",
                                    value="missed_appointment")])
    session.commit()


class Place:
    """A test's own database, outbox and documents folder."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.db = root / "c.db"
        self.url = f"sqlite:///{self.db}"
        self.outbox = root / "outbox"
        upgrade(self.url)
        self.engine = make_engine(self.url)
        self.sessions = session_factory(self.engine)

    def activities(self, client: Client | None = None,
                   now: dt.datetime | None = None) -> RetentionActivities:
        """The retention activities on this place (the real clock unless ``now``)."""
        if now is None:
            return RetentionActivities(self.sessions, self.outbox, self.root / "documents",
                                       client=client)
        return RetentionActivities(self.sessions, self.outbox, self.root / "documents",
                                   client=client, now=lambda: now)

    def dump(self) -> str:
        """The whole database as SQL text."""
        with sqlite3.connect(self.db) as connection:
            return "\n".join(connection.iterdump())

    def files(self) -> dict[str, bytes]:
        """Every file of the outbox and documents folder, by path."""
        return {str(p.relative_to(self.root)): p.read_bytes()
                for folder in (self.outbox, self.root / "documents") if folder.exists()
                for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def place(tmp_path: Path) -> Iterator[Place]:
    """A fresh database and data folder."""
    made = Place(tmp_path)
    yield made
    made.engine.dispose()


def found(place: Place) -> list[str]:
    """The distinctive strings still anywhere in the database or the files."""
    text = place.dump().casefold()
    blobs = b"\n".join(place.files().values()).decode("utf-8", "replace").casefold()
    return [m for m in MARKS if m.casefold() in text or m.casefold() in blobs]


def seeded(place: Place, reference: str = "CMP-2019-000001", **kwargs: Any) -> str:
    """Seed one case in ``place``; its reference."""
    with place.sessions() as session:
        seed_case(session, place.root, place.outbox, reference, **kwargs)
    return reference


async def test_expired_case_is_erased_everywhere_and_once(place: Place) -> None:
    """Every personal string leaves the database and folders; a rerun changes nothing."""
    reference = seeded(place)
    assert found(place) == list(MARKS)  # the seed holds every mark (the test can fail)
    result = await place.activities().run(RetentionRunInput(as_of=EXPIRED))
    assert result.cases_erased == 1 and result.erased[0].reference == reference
    assert result.letters == 1 and result.documents == 1 and result.files == 2
    assert result.fields >= 20
    assert found(place) == []
    # Not in the file's free pages or the write-ahead log either (secure_delete, checkpoint).
    raw = b"".join(p.read_bytes() for p in place.root.glob("c.db*"))
    assert [m for m in MARKS if m.encode() in raw] == []
    with place.sessions() as session:
        record = session.get(CaseRecordRow, reference)
        assert record is not None
        case = CaseFile.model_validate_json(record.case_json)
        kept = session.get(ComplaintRow, reference)
        remedy = session.exec(select(RemedyRow)).one()
        runs = session.exec(select(ErasureRunRow)).all()
        erasures = session.exec(select(ErasureRow)).all()
        extension = session.exec(select(ExtensionRow)).one()
        payment = json.loads(session.exec(select(AuditRow).where(
            AuditRow.action == "pay_remedy")).one().detail)
    assert case.state == "closed" and case.responses[0].decision is Decision.UPHELD
    assert case.stage1_definition is not None and case.stage1_definition.summary == ERASED
    assert kept is not None and kept.state == "closed" and kept.closed_at == CLOSED_AT
    assert remedy.amount_pence == 15000 and remedy.kind == "financial"
    assert extension.reason == "A specialist survey is needed"  # the report lists reasons
    assert {k: payment[k] for k in ("stage", "remedy", "amount", "paid_on")} == {
        "stage": 1, "remedy": 1, "amount": "150.00", "paid_on": "2019-05-20"}
    assert [(r.as_of, r.cases_erased, r.letters, r.dry_run) for r in runs] == [
        (EXPIRED, 1, 1, False)]
    assert [(e.reference, e.reason, e.run_id, e.letters) for e in erasures] == [
        (reference, "retention", runs[0].id, 1)]
    before = place.dump()
    again = await place.activities().run(RetentionRunInput(as_of=EXPIRED))
    assert again.cases_erased == 0 and again.erased == ()
    with place.sessions() as session:
        assert len(session.exec(select(ErasureRow)).all()) == 1
    after = place.dump()
    assert _without_runs(after) == _without_runs(before)


def _without_runs(dump: str) -> list[str]:
    return [line for line in dump.splitlines() if "erasure_runs" not in line]


async def test_case_inside_retention_or_open_is_untouched(place: Place) -> None:
    """A case closed under six years ago, and an open one, keep every field."""
    seeded(place, "CMP-2019-000001", closed_at=dt.datetime(2021, 1, 4, tzinfo=dt.UTC))
    seeded(place, "CMP-2019-000002", closed=False)
    dump, files = place.dump(), place.files()
    result = await place.activities().run(RetentionRunInput(as_of=EXPIRED))
    assert (result.cases_erased, result.cases_skipped) == (0, 0)
    assert _without_runs(place.dump()) == _without_runs(dump)
    assert place.files() == files


async def test_dry_run_changes_nothing_and_says_what_it_would_do(place: Place) -> None:
    """A dry run reports the case and its counts, and leaves data and files as they were."""
    reference = seeded(place)
    dump, files = place.dump(), place.files()
    result = await place.activities().run(RetentionRunInput(as_of=EXPIRED, dry_run=True))
    assert result.dry_run and result.cases_erased == 1
    assert result.erased[0].reference == reference
    assert (result.letters, result.documents, result.files) == (1, 1, 2)
    assert _without_runs(place.dump()) == _without_runs(dump)
    assert place.files() == files
    with place.sessions() as session:
        run = session.exec(select(ErasureRunRow)).one()
        assert session.exec(select(ErasureRow)).all() == []
    assert run.dry_run and run.cases_erased == 1


async def test_case_still_open_to_the_ombudsman_is_skipped_with_the_reason(
        place: Place) -> None:
    """Without Temporal, a case ended under 366 days ago counts as running and is skipped."""
    reference = seeded(place)
    early = CLOSED_AT + dt.timedelta(days=100)
    result = await place.activities(now=early).run(RetentionRunInput(as_of=EXPIRED))
    assert result.cases_erased == 0
    assert [s.reference for s in result.skipped] == [reference]
    assert "open to late Ombudsman actions until 2020-06-03" in result.skipped[0].reason
    assert found(place) == list(MARKS)


async def test_unreadable_policy_skips_the_case(place: Place) -> None:
    """A case whose policy file is gone is not erased on a guessed period."""
    reference = seeded(place)
    with place.sessions() as session:
        row = session.get(ComplaintRow, reference)
        assert row is not None
        row.policy_name = "gone-policy"
        session.add(row)
        session.commit()
    result = await place.activities().run(RetentionRunInput(as_of=EXPIRED))
    assert result.cases_erased == 0
    assert "policy 'gone-policy' cannot be read" in result.skipped[0].reason


async def test_activity_runs_in_an_activity_environment(place: Place) -> None:
    """``erase_expired`` run as an activity erases and keys the run on the workflow run."""
    seeded(place)
    result = await ActivityEnvironment().run(place.activities().erase_expired,
                                             RetentionRunInput(as_of=EXPIRED))
    assert result.cases_erased == 1
    with place.sessions() as session:
        assert session.exec(select(ErasureRunRow.run_key)).all() == ["test-run"]


async def test_erasure_request_refused_while_open_then_done(place: Place) -> None:
    """A request on an open case is refused in one line; on an ended one it erases."""
    open_case = seeded(place, "CMP-2019-000002", closed=False)
    closed = seeded(place, "CMP-2019-000001")
    activities = place.activities()
    with pytest.raises(ErasureRefused, match=r"still open \(stage1_investigating\)") as info:
        await activities.erase_on_request(ErasureRequestInput(
            reference=open_case, by=STAFF, note="Letter of 3 May"))
    assert "\n" not in str(info.value) and "erase it once the case is closed" in str(info.value)
    done = await activities.erase_on_request(ErasureRequestInput(
        reference=closed, by=STAFF, note="Letter of 3 May"))
    again = await activities.erase_on_request(ErasureRequestInput(
        reference=closed, by=STAFF, note="Letter of 3 May"))
    assert done.letters == 1 and again == done
    with place.sessions() as session:
        erasure = session.exec(select(ErasureRow)).one()
        party = session.exec(select(PartyRow).where(PartyRow.reference == open_case)).one()
    assert (erasure.reason, erasure.requested_by, erasure.run_id) == ("request", STAFF, None)
    assert erasure.request_id is not None and party.name == NAME


async def test_erasure_request_refused_under_an_open_ombudsman_order(place: Place) -> None:
    """An order not complied with keeps the data: the request is refused, saying why."""
    reference = seeded(place)
    with place.sessions() as session:
        record = session.get(CaseRecordRow, reference)
        assert record is not None
        case = json.loads(record.case_json)
        case["orders"] = [{"order_id": "O1", "source": "maladministration",
                           "description": "Pay £100", "due_by": "2019-07-01",
                           "at": "2019-06-10T10:00:00Z", "complied_at": None}]
        record.case_json = json.dumps(case)
        session.add(record)
        session.commit()
    with pytest.raises(ErasureRefused, match="Ombudsman order not yet complied with"):
        await place.activities().erase_on_request(ErasureRequestInput(
            reference=reference, by=STAFF, note="Email of 3 May"))


def test_scrub_json_keeps_ids_dates_and_amounts_only() -> None:
    """Free text goes; the keys the reports and the record need stay."""
    scrubbed, n = scrub_json({"trigger": "pay_remedy", "amount": "150.00", "stage": 1,
                              "method": "cheque", "reason": "duplicate",
                              "findings": [{"finding": "Found so", "point": "Damp"}],
                              "parties": [{"name": NAME, "email": EMAIL}]})
    assert scrubbed == {"trigger": "pay_remedy", "amount": "150.00", "stage": 1,
                        "method": ERASED, "reason": "duplicate",
                        "findings": [{"finding": ERASED, "point": ERASED}],
                        "parties": [{"name": ERASED, "email": ERASED}]}
    assert n == 5


def test_anonymise_counts_nothing_on_an_erased_case(place: Place) -> None:
    """Anonymising twice finds nothing left the second time."""
    reference = seeded(place)
    with place.sessions() as session:
        first = anonymise_case(session, reference, EXPIRED, "retention")
        session.commit()
        second = anonymise_case(session, reference, EXPIRED, "retention")
    assert first["fields"] > 0 and second == {"fields": 0, "letters": 0, "documents": 0}


async def test_erased_case_loses_its_lessons_and_its_learning_still_counts(
        place: Place) -> None:
    """The lessons (they may name the resident) are erased; the learning report is unchanged."""
    from complaints.policies import load_policy
    from complaints.reports.figures import build_report
    from complaints.reports.period import parse_year
    from complaints.reports.queries import ReportOptions

    reference = seeded(place)
    with place.sessions() as session:
        seed_learning(session, reference)
    options = ReportOptions(parse_year("2019/20"), load_policy("connexus"), as_of=EXPIRED)

    def learning() -> dict[str, Any]:
        figures = build_report(place.engine, options).learning
        assert figures is not None
        return figures.model_dump(mode="json", include={"responses_with_learning", "themes",
                                                        "root_causes"})

    before = learning()
    assert before == {"responses_with_learning": 1,
                      "themes": [{"name": "damp_and_mould", "count": 1}],
                      "root_causes": [{"name": "missed_appointment", "count": 1}]}
    result = await place.activities().run(RetentionRunInput(as_of=EXPIRED))
    assert result.cases_erased == 1
    with place.sessions() as session:
        row = session.exec(select(LearningRow)).one()
        tags = len(session.exec(select(LearningTagRow)).all())
    assert row.lessons == ERASED and tags == 2 and found(place) == []
    assert learning() == before


async def test_reports_give_the_same_figures_after_erasure(place: Place) -> None:
    """The annual report, TSM figures and evidence are identical before and after."""
    from complaints.policies import load_policy
    from complaints.reports.figures import build_report
    from complaints.reports.period import parse_year
    from complaints.reports.queries import ReportOptions
    from complaints.synthetic import load_synthetic_year

    policy = load_policy("connexus")
    period = parse_year("2018/19")
    load_synthetic_year(place.engine, policy, period, 400, seed=7, as_of=dt.date(2020, 6, 1))

    def report() -> dict[str, Any]:
        options = ReportOptions(period, policy, as_of=dt.date(2020, 6, 1))
        return build_report(place.engine, options, evidence=True).model_dump(mode="json")

    before = report()
    assert before["remedy_payments"]["paid"] > 0  # payments are read from the audit trail
    result = await place.activities().run(RetentionRunInput(as_of=dt.date(2027, 1, 1)))
    assert result.cases_erased > 300 and result.letters > 300
    erased = {e.reference for e in result.erased} | {"none"}
    with place.sessions() as session:
        texts = {row.reference: row.text for row in session.exec(select(LetterRow)).all()}
        kept = [row.reference for row in session.exec(select(ComplaintRow).where(
            ComplaintRow.description != ERASED)).all()]
    assert all(t.startswith("[erased on ") for r, t in texts.items() if r in erased)
    assert len(kept) == 400 - result.cases_erased and not erased & set(kept)
    assert report() == before


def test_cli_run_and_refused_request(place: Place, monkeypatch: pytest.MonkeyPatch) -> None:
    """`retention run --dry-run` reports; `erase` on an open case is one refusal line."""
    from complaints.cli import cli

    reference = seeded(place)
    open_case = seeded(place, "CMP-2019-000002", closed=False)
    monkeypatch.setenv("COMPLAINTS_ENV_FILE", str(place.root / "absent.env"))
    monkeypatch.setenv("DATA_DIR", str(place.root))
    monkeypatch.setenv("DATABASE_URL", place.url)
    monkeypatch.setenv("OUTBOX_DIR", str(place.outbox))
    runner = CliRunner()
    dry = runner.invoke(cli, ["retention", "run", "--dry-run", "--no-temporal", "--as-of",
                              EXPIRED.isoformat()])
    assert dry.exit_code == 0, dry.output
    assert "would erase 1 case(s)" in dry.output and reference in dry.output
    assert found(place) == list(MARKS)
    refused = runner.invoke(cli, ["erase", "--reference", open_case, "--reason", "Letter",
                                  "--by", STAFF, "--no-temporal"])
    assert refused.exit_code == 1
    lines = [ln for ln in refused.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"Error: refused: {open_case} is still open")
    done = runner.invoke(cli, ["retention", "run", "--no-temporal", "--as-of",
                               EXPIRED.isoformat(), "--json"])
    assert done.exit_code == 0, done.output
    assert RetentionRunResult.model_validate_json(done.output).cases_erased == 1
    with place.sessions() as session:
        names = {r.reference: r.name for r in session.exec(select(PartyRow)).all()}
    assert names == {reference: ERASED, open_case: NAME}
    assert not (place.outbox / reference).exists() and (place.outbox / open_case).exists()


# --- on the session's Temporal server --------------------------------------------------------


async def _gone(client: Client, workflow_id: str) -> bool:
    """Whether Temporal no longer has the workflow.

    Deletion completes in the background: the dev server takes 30-60 s.
    """
    for _ in range(240):
        try:
            await client.get_workflow_handle(workflow_id).describe()
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                return True
            raise
        await asyncio.sleep(0.5)
    return False


async def test_finished_workflow_is_deleted_with_the_case(stack: Stack) -> None:
    """A real case taken to its end: data, letters, documents and its history all go."""
    from tests.test_workflow import do, started

    place = Place(stack.settings.data_dir)
    place.outbox = stack.settings.effective_outbox()
    intake = make_intake(parties=(Party(name=NAME, address=(ADDRESS, "Ludlow"), email=EMAIL,
                                        phone=PHONE),),
                         description="A xylophone-shaped damp patch",
                         outcomes_sought=("Treat the Brambleworth damp",))
    async with stack.worker():
        handle = await stack.lodge(intake)
        await started(handle)
        for action in _actions()[:2]:
            await do(handle, action)
        current = await do(handle, Withdraw(by=STAFF, reason="Zephyrine moved to Tamarisk",
                                             confirmed_via=Channel.EMAIL))
        assert current.state == "withdrawn"
        with place.sessions() as session:
            casefiles.record_triage(session, handle.id, complexity="low", vulnerability="some",
                                    risk="low", note="Zephyrine's sight loss", by=STAFF)
        # False: the workflow ends (366 days after the case did) before the year is out.
        assert not await stack.env.fast_forward(handle, dt.timedelta(days=367))
        await handle.result()
        running = await place.activities(client=stack.env.client).run(RetentionRunInput(
            as_of=dt.date.today() + dt.timedelta(days=7 * 366)))
    assert [e.reference for e in running.erased] == [handle.id]
    assert running.erased[0].histories >= 1 and running.erased[0].letters >= 2
    assert await _gone(stack.env.client, handle.id)
    assert [m for m in MARKS[:6] if m.casefold() in place.dump().casefold()] == []
    assert not (place.outbox / handle.id).exists()
    place.engine.dispose()


async def test_retention_workflow_runs_once_on_the_test_server(stack: Stack,
                                                               tmp_path: Path) -> None:
    """The ``Retention`` workflow calls the activity once and returns its result."""
    place = Place(tmp_path / "own")
    reference = seeded(place)
    queue = f"retention-{uuid.uuid4()}"
    async with Worker(stack.env.client, task_queue=queue, workflows=[RetentionWorkflow],
                      activities=[place.activities(client=stack.env.client).erase_expired]):
        handle = await stack.env.client.start_workflow(
            RetentionWorkflow.run, RetentionRunInput(as_of=EXPIRED),
            id=f"retention-test-{uuid.uuid4()}", task_queue=queue)
        result = await handle.result()
    assert result.cases_erased == 1 and result.erased[0].reference == reference
    with place.sessions() as session:
        run = session.exec(select(ErasureRunRow)).one()
    assert run.run_key == handle.result_run_id and run.finished_at is not None
    place.engine.dispose()


async def _no_schedule(client: Client) -> None:
    """Delete the retention Schedule if an earlier test's worker made it."""
    from complaints.retention import SCHEDULE_ID

    try:
        await client.get_schedule_handle(SCHEDULE_ID).delete()
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:
            raise


async def test_schedule_is_created_once_and_its_run_works(env: Any, tmp_path: Path) -> None:
    """``ensure_schedule`` makes the daily Schedule once; a triggered run records itself."""
    from complaints.retention import SCHEDULE_ID, ensure_schedule

    place = Place(tmp_path)
    seeded(place)
    queue = f"retention-{uuid.uuid4()}"
    client: Client = env.client
    await _no_schedule(client)
    try:
        first = await ensure_schedule(client, queue)
        second = await ensure_schedule(client, queue)
        schedule = client.get_schedule_handle(SCHEDULE_ID)
        described = await schedule.describe()
        async with Worker(client, task_queue=queue, workflows=[RetentionWorkflow],
                          activities=[place.activities(client=client).erase_expired]):
            await schedule.trigger()
            for _ in range(200):
                with place.sessions() as session:
                    run = session.exec(select(ErasureRunRow)).first()
                if run is not None and run.finished_at is not None:
                    break
                await asyncio.sleep(0.1)
    finally:
        await _no_schedule(client)
        place.engine.dispose()
    assert (first, second) == (True, False)
    spec = described.schedule.spec
    assert spec.time_zone_name == "Europe/London"
    assert [r.start for r in spec.calendars[0].hour] == [3]
    # Measured to today: the seeded case ended in 2019, past its six years.
    assert run is not None and run.cases_erased == 1 and not run.dry_run


async def test_worker_start_makes_the_schedule(stack: Stack) -> None:
    """``run_worker`` (as ``complaints dev`` runs it) makes the Schedule for its task queue."""
    from temporalio.client import ScheduleActionStartWorkflow

    from complaints.retention import SCHEDULE_ID
    from worker import run_worker

    client = stack.env.client
    await _no_schedule(client)
    settings = stack.settings.model_copy(update={
        "temporal_address": client.service_client.config.target_host,
        "temporal_task_queue": f"tq-{uuid.uuid4()}"})
    stop = asyncio.Event()
    checked = asyncio.Event()
    running = asyncio.create_task(run_worker(settings, stop, checked))
    try:
        await asyncio.wait_for(checked.wait(), timeout=60)
        described = await client.get_schedule_handle(SCHEDULE_ID).describe()
    finally:
        stop.set()
        await asyncio.wait_for(running, timeout=60)
        await _no_schedule(client)
    action = described.schedule.action
    assert isinstance(action, ScheduleActionStartWorkflow)
    assert (action.workflow, action.task_queue) == ("Retention", settings.temporal_task_queue)


async def test_resolved_service_requests_are_erased_after_their_period(place: Place) -> None:
    """Only a request resolved over six years ago and never a complaint is erased, once."""
    from models.service_requests import ServiceRequestRow

    def request(seq: int, resolved: dt.date | None, converted: bool = False) -> None:
        with place.sessions() as session:
            session.add(ServiceRequestRow(
                id=f"SR-2018-{seq:06d}", year=2018, seq=seq, channel="phone",
                category="repairs", received_on=dt.date(2018, 1, seq),
                target_date=dt.date(2018, 2, 1), resident_name=f"Resident{seq} {NAME}",
                resident_email=EMAIL, description=f"Dripping tap {seq}", logged_by="hdl-1",
                resolved_on=resolved, resolution="Washer replaced" if resolved else None,
                complaint_reference=f"CMP-2018-{seq:06d}" if converted else None))
            session.commit()

    old = EXPIRED - dt.timedelta(days=6 * 366 + 30)
    request(1, old)  # resolved long ago, never a complaint: erased
    request(2, EXPIRED - dt.timedelta(days=400))  # resolved a year ago: kept
    request(3, None)  # still open: kept
    request(4, old, converted=True)  # goes with its complaint, not with this sweep
    dry = await place.activities().run(RetentionRunInput(as_of=EXPIRED, dry_run=True))
    assert dry.service_requests_erased == 1
    with place.sessions() as session:
        assert session.get(ServiceRequestRow, "SR-2018-000001").erased_at is None  # type: ignore[union-attr]
    done = await place.activities().run(RetentionRunInput(as_of=EXPIRED))
    assert done.service_requests_erased == 1
    with place.sessions() as session:
        rows = {r.id: r for r in session.exec(select(ServiceRequestRow)).all()}
    first = rows["SR-2018-000001"]
    assert first.erased_at is not None and NAME not in first.resident_name
    assert (first.resident_email, first.category, first.received_on) == (
        None, "repairs", dt.date(2018, 1, 1))
    assert all(NAME in rows[f"SR-2018-{n:06d}"].resident_name for n in (2, 3, 4))
    again = await place.activities().run(RetentionRunInput(as_of=EXPIRED))
    assert again.service_requests_erased == 0
