"""Remedy payments and the Ombudsman's orders in the compliance report, from real records.

Each case is run by the case book (casework revision 2) with a hand-moved clock, and every
event it queues is written by the real recording activity (``CaseworkActivities.apply``,
without delivering letters), so the report reads exactly what a worker would have written:
order deadlines, the remedies offered and the ``pay_remedy`` audit entries. On SQLite and
on a real PostgreSQL (the payment's JSON is read differently on each).

====  =====================================================================================
case  what happens (all answered at stage 1 on 5 March 2026, £150 financial remedy)
====  =====================================================================================
P     remedy due 18 Dec 2026, paid £150 on 21 Dec (late). Determination: O1 due 1 Apr,
      complied 8 Mar (on time); O2 due 20 Mar, complied 25 Mar (late); O3 due 1 Dec, open
Q     remedy due 1 Mar 2027, unpaid (not yet due at 31 Jan 2027); an instruction to respond
      by 1 Mar 2027, open (not yet due)
R     remedy due 18 Dec 2026, paid £120 on 10 Dec (on time)
W     remedy due 18 Dec 2026, unpaid (overdue); order O9 due 1 Jun, then the case withdrawn
V     like P, then voided as a duplicate: nothing of it is counted
====  =====================================================================================
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Engine

from activities import (
    CaseworkActivities,
    LetterActivities,
    NotificationActivities,
    PolicyActivities,
    RecordActivities,
)
from complaints.db import make_engine, session_factory, upgrade
from complaints.policies import load_compliant_policy
from complaints.reports import Period, ReportOptions, build_report, render
from complaints.reports.model import Report
from domain.casebook import CaseBook
from domain.deadlines import london_time
from models.actions import (
    Acknowledge,
    Action,
    ComplyOrder,
    OmbudsmanContact,
    OmbudsmanContactKind,
    OmbudsmanDetermination,
    OmbudsmanFinding,
    OrderItem,
    PayRemedy,
    Void,
    VoidReason,
    Withdraw,
)
from models.case import Channel, RemedyKind
from models.events import OpenCaseInput
from tests.cases import DEFINITION, STAGE1_HANDLER, Clock, respond_to
from tests.conftest import make_intake
from tests.pg import create_database, postgres_url  # noqa: F401

D = dt.date
RECEIVED = D(2026, 3, 2)
POLICY = load_compliant_policy("code-2024")
PERIOD = Period(D(2026, 1, 1), D(2027, 3, 31))
AS_OF = D(2027, 1, 31)
MANAGER = "mgr-1"

Step = tuple[dt.date, Action]


def _determination(*orders: tuple[str, dt.date]) -> OmbudsmanDetermination:
    return OmbudsmanDetermination(
        by=MANAGER, finding=OmbudsmanFinding.MALADMINISTRATION, details="Repairs delayed",
        orders=tuple(OrderItem(order_id=o, description="Put it right", due_by=due)
                     for o, due in orders))


def _pay(on: dt.date, pounds: str) -> PayRemedy:
    # respond_to offers an apology (remedy 1) and the money (remedy 2).
    return PayRemedy(by=MANAGER, stage=1, remedy=2, paid_on=on, amount=Decimal(pounds),
                     method="bank transfer")


def _comply(order_id: str) -> ComplyOrder:
    return ComplyOrder(by=MANAGER, order_id=order_id, evidence="Letter and photos on file")


def _run_case(casework: CaseworkActivities, remedy_due: dt.date, steps: list[Step],
              money_twice: bool = False) -> str:
    """Run one case through stage 1 and ``steps`` and record every event; its reference.

    ``money_twice``: the response offers a second financial remedy beside the first.
    """
    clock = Clock(london_time(RECEIVED, dt.time(10)))
    intake = make_intake(RECEIVED, policy_name="code-2024")
    book = CaseBook(intake, None, clock, casework=2)
    book.opened(casework.open_case(OpenCaseInput(intake=intake, first_year=2026,
                                                 last_year=2032)))
    book.accept(Acknowledge(by=STAGE1_HANDLER, handler_id=STAGE1_HANDLER,
                            definition=DEFINITION))
    clock.at += dt.timedelta(days=3)
    response = respond_to(book.case, STAGE1_HANDLER)
    response = response.model_copy(update={"remedies": tuple(
        r.model_copy(update={"due_by": remedy_due}) if r.kind is RemedyKind.FINANCIAL else r
        for r in response.remedies)})
    if money_twice:
        money = next(r for r in response.remedies if r.kind is RemedyKind.FINANCIAL)
        response = response.model_copy(update={"remedies": (*response.remedies, money)})
    book.accept(response)
    for day, action in steps:
        clock.at = london_time(day, dt.time(10))
        assert book.refusal(action) is None, action
        book.accept(action)
    for event in book.queue:
        casework.apply(event, deliver=False)
    return intake.reference


def _casework(url: str, tmp_path: Path) -> tuple[Engine, CaseworkActivities]:
    """A new database at ``url``, and the recording activity that writes into it."""
    upgrade(url)
    engine = make_engine(url)
    sessions = session_factory(engine)
    return engine, CaseworkActivities(sessions, PolicyActivities(), RecordActivities(sessions),
                                      LetterActivities(sessions, tmp_path / "outbox"),
                                      NotificationActivities(sessions))


def _load(url: str, tmp_path: Path) -> dict[str, str]:
    """The five cases of the table above, recorded in ``url``; their references by letter."""
    engine, casework = _casework(url, tmp_path)
    dec18, mar1 = D(2026, 12, 18), D(2027, 3, 1)
    like_p: list[Step] = [
        (D(2026, 3, 6), _determination(("O1", D(2026, 4, 1)), ("O2", D(2026, 3, 20)),
                                       ("O3", D(2026, 12, 1)))),
        (D(2026, 3, 8), _comply("O1")), (D(2026, 3, 25), _comply("O2")),
        (D(2026, 12, 21), _pay(D(2026, 12, 21), "150.00"))]
    refs = {
        "P": _run_case(casework, dec18, like_p),
        "Q": _run_case(casework, mar1, [(D(2026, 3, 9), OmbudsmanContact(
            by=MANAGER, kind=OmbudsmanContactKind.INSTRUCTION, details="Respond to the "
            "resident", respond_by=mar1))]),
        "R": _run_case(casework, dec18, [(D(2026, 12, 10), _pay(D(2026, 12, 10), "120.00"))]),
        "W": _run_case(casework, dec18, [
            (D(2026, 3, 6), _determination(("O9", D(2026, 6, 1)))),
            (D(2026, 3, 10), Withdraw(by=MANAGER, reason="Resolved with the resident",
                                      confirmed_via=Channel.PHONE))]),
    }
    refs["V"] = _run_case(casework, dec18, [*like_p, (D(2026, 12, 22), Void(
        by=MANAGER, reason=VoidReason.DUPLICATE, explanation="Lodged twice",
        duplicate_of=refs["P"]))])
    engine.dispose()
    return refs


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def recorded(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
             ) -> Iterator[tuple[Engine, dict[str, str]]]:
    """The five cases in a fresh database of each backend, and their references."""
    folder = tmp_path_factory.mktemp("follow_through")
    if request.param == "sqlite":
        url = f"sqlite:///{(folder / 'c.db').as_posix()}"
    else:
        request.getfixturevalue("postgres_url")
        url = create_database(f"follow_{uuid.uuid4().hex[:8]}")
    refs = _load(url, folder)
    engine = make_engine(url)
    yield engine, refs
    engine.dispose()


def _report(engine: Engine, as_of: dt.date = AS_OF) -> Report:
    return build_report(engine, ReportOptions(PERIOD, POLICY, homes=1000, as_of=as_of))


def test_remedy_payments_offered_paid_late_and_unpaid(
        recorded: tuple[Engine, dict[str, str]]) -> None:
    """P paid late, R paid less on time, Q not yet due, W overdue; V (voided) not counted."""
    engine, refs = recorded
    payments = _report(engine).remedy_payments
    assert (payments.offered, payments.amount_offered_pence) == (4, 60_000)
    assert (payments.paid, payments.amount_paid_pence, payments.paid_late) == (2, 27_000, 1)
    assert (payments.unpaid_overdue, payments.unpaid_not_yet_due,
            payments.unpaid_no_date) == (1, 1, 0)
    assert [(e.reference, e.stage, e.remedy, e.due_by, e.amount_pence)
            for e in payments.overdue] == [(refs["W"], 1, 2, D(2026, 12, 18), 15_000)]


def test_a_response_offering_money_twice_counts_once_among_responses(tmp_path: Path) -> None:
    """Money offered twice in one response counts twice as offered, once as a response."""
    engine, casework = _casework(f"sqlite:///{(tmp_path / 'c.db').as_posix()}", tmp_path)
    _run_case(casework, D(2026, 12, 18), [], money_twice=True)
    _run_case(casework, D(2026, 12, 18), [])
    year = _report(engine)
    engine.dispose()
    assert [(r.kind, r.offered) for r in year.remedies] == [("financial", 3), ("apology", 2)]
    assert year.responses_with_financial_remedy == 2
    assert (year.remedy_payments.offered, year.remedy_payments.unpaid_overdue) == (3, 3)


def test_a_payment_after_the_as_of_date_is_still_unpaid(
        recorded: tuple[Engine, dict[str, str]]) -> None:
    """As at 19 Dec 2026, P's payment of the 21st has not happened: P is unpaid and overdue."""
    engine, refs = recorded
    payments = _report(engine, as_of=D(2026, 12, 19)).remedy_payments
    assert (payments.paid, payments.amount_paid_pence, payments.paid_late) == (1, 12_000, 0)
    assert sorted(e.reference for e in payments.overdue) == sorted([refs["P"], refs["W"]])


def test_ombudsman_orders_on_time_late_outstanding_and_stopped(
        recorded: tuple[Engine, dict[str, str]]) -> None:
    """O1 on time, O2 late, O3 overdue, Q's instruction not yet due, W's order stopped."""
    engine, refs = recorded
    orders = _report(engine).ombudsman_orders
    assert (orders.made, orders.from_determinations, orders.instructions) == (5, 4, 1)
    assert (orders.complied_on_time, orders.complied_late) == (1, 1)
    assert (orders.outstanding_not_yet_due, orders.outstanding_overdue,
            orders.stopped) == (1, 1, 1)
    assert [(e.reference, e.order_id, e.due_by, e.what) for e in orders.overdue] == [
        (refs["P"], "O3", D(2026, 12, 1), "maladministration")]


def test_an_order_complied_with_after_the_as_of_date_is_outstanding(
        recorded: tuple[Engine, dict[str, str]]) -> None:
    """As at 22 Mar 2026, O2 (due 20 Mar, complied 25 Mar) is outstanding and overdue."""
    engine, refs = recorded
    orders = _report(engine, as_of=D(2026, 3, 22)).ombudsman_orders
    assert (orders.complied_on_time, orders.complied_late) == (1, 0)
    assert [(e.reference, e.order_id) for e in orders.overdue] == [(refs["P"], "O2")]


@pytest.mark.parametrize(("fmt", "expected"), [
    ("md", ["Financial remedies paid: 2 of 4 offered (£270.00 of £600.00); 1 paid late; 1 "
            "unpaid past the date promised.",
            "| Unpaid, past the date promised at 2027-01-31 | 1 | - |",
            "Ombudsman orders and instructions: 5 recorded; 1 complied with on time, 1 late; "
            "2 outstanding (1 overdue).",
            "| Outstanding at 2027-01-31, overdue | 1 |"]),
    ("html", ["<h3>Remedy payments</h3>", "<h3>Ombudsman orders and instructions</h3>",
              '<td>Complied with late</td><td class="n">1</td>']),
    ("csv", ["remedy_payments,,amount_paid_pence,27000",
             "ombudsman_orders,,complied_late,1", "ombudsman_orders.overdue,"]),
])
def test_the_report_shows_payments_and_orders(recorded: tuple[Engine, dict[str, str]],
                                              fmt: str, expected: list[str]) -> None:
    """The Markdown, HTML and CSV reports carry the payment and order figures."""
    engine, refs = recorded
    text = render(_report(engine), fmt)
    for line in expected:
        assert line in text, line
    assert refs["V"] not in text
