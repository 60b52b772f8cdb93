"""The report's tallies, kept by triggers: complaints and responses counted as written.

Revision ID: 0019
Revises: 0018
Create Date: 2026-11-28

Written by hand against ``models.tallies`` (``tests/test_db.py`` compares the migrated
schema with the models; ``tests/test_report_tallies.py`` checks the triggers against a
recount). The tables are filled from the rows already stored, and from then on triggers
keep them, on SQLite and PostgreSQL alike (the same SQL in each; PostgreSQL wraps it in a
trigger function):

- a response inserted, deleted or changed adds its counts, takes them away, or both;
  likewise a complaint for the complaint tallies;
- a complaint whose landlord, tenure, policy file, category, escalation or voiding
  changes takes its responses' counts away under the old values and adds them under the
  new ones;
- ``late_acknowledgement_tally`` is counted from the complaint too, a row per stage
  acknowledged after its due date;
- a remedy or a payment inserted, deleted or changed likewise (a payment is counted with
  the financial remedy it pays: a change to the remedy moves it);
- a complaint deleted first deletes its responses, so that they are taken away while the
  complaint is still there to say where they were counted (a cascade runs after it).

A later migration that rebuilds ``responses`` or ``complaints`` on SQLite (Alembic's
batch mode copies the table, which drops its triggers) must create them again:
``tests/test_report_tallies.py`` checks that they are there at head.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: Stands for "no date" in a tally's date key (a key cannot be NULL): later than any
#: as-of date, so never "on or before" one.
NO_DATE = "'9999-12-31'"


@dataclass(frozen=True)
class Tally:
    """One tally table: what each counted row adds to it.

    Expressions read ``{r}`` (a response), ``{m}`` (a remedy), ``{p}`` (a payment) and
    ``{c}`` (the complaint); ``{offered_hour}`` is the UTC hour a remedy was offered in.

    Attributes:
        table: The table.
        keys: Its key columns and the expressions that give them.
        counts: Its count columns: the condition each counts, or ``=`` and the value it
            adds up.
        where: Which rows are counted (all, when empty).
    """

    table: str
    keys: dict[str, str]
    counts: dict[str, str]
    where: str = ""


def _flag(condition: str) -> str:
    """1 when ``condition`` holds, else 0 (NULL counts as not)."""
    return f"CASE WHEN {condition} THEN 1 ELSE 0 END"


def _count(count: str) -> str:
    return count if count == "1" else count[1:] if count.startswith("=") else _flag(count)


#: The hour (UTC) a remedy was offered in, as each database writes the instant: a London
#: day starts on a whole UTC hour, so the hours of a period's days are the period's.
_OFFERED_HOUR = {
    "sqlite": "substr({m}.offered_at, 1, 13) || ':00:00.000000'",
    "postgresql": "date_trunc('hour', {m}.offered_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'",
}

#: ``by`` is a reserved word in PostgreSQL, so it is quoted wherever it is named.
_WITHIN_EXTENSION = ("{r}.responded_on <= {r}.due_base OR ({r}.extension_within_code "
                     "AND {r}.responded_on <= {r}.due_final)")
RESPONSE_TALLIES = (
    Tally("response_tally", keys={
        "landlord": "{c}.landlord", "responded_on": "{r}.responded_on", "stage": "{r}.stage",
        "tenure": "COALESCE({c}.tenure, '')", "policy_name": "{c}.policy_name",
        "working_days": "{r}.working_days_taken",
    }, counts={
        "responses": "1",
        "within_base": "{r}.responded_on <= {r}.due_base",
        "within_extension": _WITHIN_EXTENSION,
        "within_code": "{r}.within_code",
        "extended": "{r}.extension_days > 0",
        "extended_within_new_date": "{r}.extension_days > 0 "
                                    "AND {r}.responded_on <= {r}.due_final",
        "late_final": "{r}.responded_on > {r}.due_final",
        "upheld": "{r}.decision = 'upheld'",
        "partly_upheld": "{r}.decision = 'partly_upheld'",
        "not_upheld": "{r}.decision = 'not_upheld'",
        "escalated": "{c}.escalation_requested_on IS NOT NULL",
    }),
    Tally("missed_response_tally", keys={
        "landlord": "{c}.landlord", "responded_on": "{r}.responded_on", "stage": "{r}.stage",
        '"by"': '{r}."by"', "category": "{c}.category",
    }, counts={"missed": "1"}, where=f"NOT ({_WITHIN_EXTENSION})"),
)
COMPLAINT_TALLIES = (
    Tally("complaint_tally", keys={
        "landlord": "{c}.landlord", "received_on": "{c}.received_on",
        "channel": "{c}.channel", "category": "{c}.category",
        "tenure": "COALESCE({c}.tenure, '')", "policy_name": "{c}.policy_name",
    }, counts={
        "logged": "1",
        "refused": "{c}.excluded OR {c}.taken_on_on IS NOT NULL",
        "withdrawn": "{c}.withdrawn_at IS NOT NULL",
        "escalated": "{c}.escalation_requested_on IS NOT NULL",
        "imported": "{c}.imported",
    }),
    Tally("acknowledgement_tally", keys={
        "landlord": "{c}.landlord", "received_on": "{c}.received_on",
        "acknowledgement_due": f"COALESCE({{c}}.acknowledgement_due, {NO_DATE})",
        "acknowledged_on": f"COALESCE({{c}}.acknowledged_on, {NO_DATE})",
        "within_limit": _flag("{c}.acknowledged_on <= {c}.acknowledgement_due"),
        "is_excluded": _flag("{c}.excluded"),
        "pending": _flag("{c}.declined_at IS NULL AND {c}.withdrawn_at IS NULL "
                         "AND {c}.referred_to_ombudsman_at IS NULL"),
    }, counts={"complaints": "1"}),
    Tally("escalation_tally", keys={
        "landlord": "{c}.landlord", "escalation_requested_on": "{c}.escalation_requested_on",
        "tenure": "COALESCE({c}.tenure, '')", "policy_name": "{c}.policy_name",
        "stage2_acknowledgement_due": f"COALESCE({{c}}.stage2_acknowledgement_due, {NO_DATE})",
        "stage2_acknowledged_on": f"COALESCE({{c}}.stage2_acknowledged_on, {NO_DATE})",
        "within_limit": _flag("{c}.stage2_acknowledged_on <= {c}.stage2_acknowledgement_due"),
        "is_refused": _flag("{c}.escalation_refused"),
        "still_open": _flag("{c}.withdrawn_at IS NULL AND {c}.referred_to_ombudsman_at IS NULL"),
    }, counts={"requests": "1"}, where="{c}.escalation_requested_on IS NOT NULL"),
    Tally("taken_on_tally", keys={
        "landlord": "{c}.landlord", "taken_on_on": "{c}.taken_on_on",
        "tenure": "COALESCE({c}.tenure, '')", "policy_name": "{c}.policy_name",
    }, counts={"complaints": "1"}, where="{c}.taken_on_on IS NOT NULL"),
    # Acknowledgements made after their due date, per stage (two rows of one table).
    *(Tally("late_acknowledgement_tally", keys={
        "landlord": "{c}.landlord", "acknowledged_on": f"{{c}}.{prefix}acknowledged_on",
        "stage": stage, "handler": f"COALESCE({{c}}.stage{stage}_handler, '')",
        "category": "{c}.category",
    }, counts={"acknowledgements": "1"},
        where=f"{{c}}.{prefix}acknowledged_on > {{c}}.{prefix}acknowledgement_due")
      for stage, prefix in (("1", ""), ("2", "stage2_"))),
)
_DUE_BY = f"COALESCE({{m}}.due_by, {NO_DATE})"
REMEDY_TALLIES = (
    Tally("remedy_tally", keys={
        "landlord": "{c}.landlord", "offered_hour": "{offered_hour}", "kind": "{m}.kind",
        "due_by": _DUE_BY,
    }, counts={"remedies": "1", "amount_pence": "=COALESCE({m}.amount_pence, 0)",
               "undated": "{m}.due_by IS NULL"}),
)
PAYMENT_TALLIES = (
    Tally("payment_tally", keys={
        "landlord": "{c}.landlord", "offered_hour": "{offered_hour}", "due_by": _DUE_BY,
        "paid_on": "{p}.paid_on",
    }, counts={"payments": "1", "amount_pence": "={p}.amount_pence",
               "undated": "{m}.due_by IS NULL", "paid_late": "{p}.paid_on > {m}.due_by"},
        where="{m}.kind = 'financial'"),
)
ALL_TALLIES = (*RESPONSE_TALLIES, *COMPLAINT_TALLIES, *REMEDY_TALLIES, *PAYMENT_TALLIES)

#: The columns whose change moves a row's counts.
_RESPONSE_COLUMNS = ("reference", "responded_on", "stage", "working_days_taken", "due_base",
                     "due_final", "extension_within_code", "within_code", "extension_days",
                     "decision", '"by"')
_REMEDY_COLUMNS = ("reference", "stage", "position", "kind", "amount_pence", "due_by",
                   "offered_at")
_PAYMENT_COLUMNS = ("reference", "stage", "position", "paid_on", "amount_pence")
#: A complaint's columns its responses' and remedies' counts read: compared whole, or by
#: whether set.
_FOR_CHILDREN = ("landlord", "tenure", "policy_name", "category")
_FOR_CHILDREN_SET = ("escalation_requested_on",)
#: A complaint's columns the complaint tallies read.
_FOR_COMPLAINTS = ("landlord", "received_on", "channel", "category", "tenure", "policy_name",
                   "excluded", "imported", "acknowledgement_due", "acknowledged_on",
                   "stage2_acknowledgement_due", "stage2_acknowledged_on", "stage1_handler",
                   "stage2_handler", "escalation_requested_on", "escalation_refused",
                   "taken_on_on")
_FOR_COMPLAINTS_SET = ("withdrawn_at", "declined_at", "referred_to_ombudsman_at")

#: Where each kind of row's counts come from, with its complaint (``{c}``) not voided.
_RESPONSE_OF = "FROM complaints c WHERE c.reference = {r}.reference AND c.state <> 'voided'"
_REMEDY_OF = "FROM complaints c WHERE c.reference = {m}.reference AND c.state <> 'voided'"
_PAYMENT_OF = ("FROM remedies m JOIN complaints c ON c.reference = m.reference "
               "WHERE m.reference = {p}.reference AND m.stage = {p}.stage "
               "AND m.position = {p}.position AND c.state <> 'voided'")
_PAYMENTS_OF_REMEDY = ("FROM remedy_payments p JOIN complaints c ON c.reference = p.reference "
                       "WHERE p.reference = {m}.reference AND p.stage = {m}.stage "
                       "AND p.position = {m}.position AND c.state <> 'voided'")
_PAID = ("FROM remedy_payments p JOIN remedies m ON m.reference = p.reference "
         "AND m.stage = p.stage AND m.position = p.position")


def _insert(tally: Tally, dialect: str, *, sign: str, rows: dict[str, str], source: str,
            many: bool) -> str:
    """One INSERT ... SELECT ... ON CONFLICT adding ``sign`` times the rows' counts.

    Args:
        tally: The tally.
        dialect: ``sqlite`` or ``postgresql``.
        sign: ``""`` to add, ``"-"`` to take away.
        rows: What each of ``r``, ``m``, ``p`` and ``c`` is read from: ``NEW`` or
            ``OLD`` (the trigger's row) or a table alias of ``source``.
        source: The FROM and WHERE clause of the rows (a bare WHERE for one trigger row).
        many: Whether ``source`` gives many rows to count: they are grouped by key, as one
            statement may not update a row twice on PostgreSQL.
    """
    names = {"r": "", "m": "", "p": "", "c": ""} | rows

    def fill(text: str) -> str:
        return text.replace("{offered_hour}", _OFFERED_HOUR[dialect]).format(**names)

    # Grouped by the keys read from a table; the trigger's row is the same for every row.
    tables = [f"{{{name}}}" for name, value in names.items()
              if value and value not in ("NEW", "OLD")]
    grouped = [fill(v) for v in tally.keys.values()
               if many and any(t in v.replace("{offered_hour}", "{m}") for t in tables)]
    counts = [f"{sign}SUM({_count(fill(v))})" if many else f"{sign}{_count(fill(v))}"
              for v in tally.counts.values()]
    columns = ", ".join((*tally.keys, *tally.counts))
    updates = ", ".join(f"{name} = {tally.table}.{name} + excluded.{name}"
                        for name in tally.counts)
    where = f" AND ({fill(tally.where)})" if tally.where else ""
    return (f"INSERT INTO {tally.table} ({columns}) "
            f"SELECT {', '.join([fill(v) for v in tally.keys.values()] + counts)} "
            f"{fill(source)}{where}{' GROUP BY ' + ', '.join(grouped) if grouped else ''} "
            f"ON CONFLICT ({', '.join(tally.keys)}) DO UPDATE SET {updates}")


def _statements(dialect: str, sign: str, row: str, of: str) -> list[str]:
    """What one trigger row (``row``: NEW or OLD) of table ``of`` adds or takes away."""
    def each(tallies: Sequence[Tally], rows: dict[str, str], source: str,
             many: bool) -> list[str]:
        return [_insert(t, dialect, sign=sign, rows=rows, source=source, many=many)
                for t in tallies]

    if of == "responses":
        return each(RESPONSE_TALLIES, {"r": row, "c": "c"}, _RESPONSE_OF, False)
    if of == "remedies":
        return (each(REMEDY_TALLIES, {"m": row, "c": "c"}, _REMEDY_OF, False)
                + each(PAYMENT_TALLIES, {"m": row, "p": "p", "c": "c"}, _PAYMENTS_OF_REMEDY,
                       True))
    if of == "remedy_payments":
        return each(PAYMENT_TALLIES, {"p": row, "m": "m", "c": "c"}, _PAYMENT_OF, False)
    if of == "complaint":
        return each(COMPLAINT_TALLIES, {"c": row}, "WHERE {c}.state <> 'voided'", False)
    assert of == "children", of  # the complaint's responses, remedies and payments
    mine = " {c}.state <> 'voided' AND "
    return (each(RESPONSE_TALLIES, {"r": "r", "c": row},
                 f"FROM responses r WHERE{mine}r.reference = {{c}}.reference", True)
            + each(REMEDY_TALLIES, {"m": "m", "c": row},
                   f"FROM remedies m WHERE{mine}m.reference = {{c}}.reference", True)
            + each(PAYMENT_TALLIES, {"p": "p", "m": "m", "c": row},
                   f"{_PAID} WHERE{mine}p.reference = {{c}}.reference", True))


def _changed(whole: Sequence[str], set_or_not: Sequence[str], differ: str, *,
             voided: bool = True) -> str:
    """A trigger's WHEN: any of the columns changed (``differ``: the dialect's IS NOT)."""
    return " OR ".join([
        *(f"OLD.{name} {differ} NEW.{name}" for name in whole),
        *(f"(OLD.{name} IS NULL) {differ} (NEW.{name} IS NULL)" for name in set_or_not),
        *([f"(OLD.state = 'voided') {differ} (NEW.state = 'voided')"] if voided else [])])


def _triggers(dialect: str) -> dict[str, tuple[str, str, str | None, list[str]]]:
    """Trigger name -> (timing and event, table, WHEN or None, statements)."""
    differ = "IS DISTINCT FROM" if dialect == "postgresql" else "IS NOT"

    def of(columns: Sequence[str]) -> str:
        return ", ".join(columns)

    def both(table: str) -> list[str]:
        return (_statements(dialect, "-", "OLD", table)
                + _statements(dialect, "", "NEW", table))

    triggers: dict[str, tuple[str, str, str | None, list[str]]] = {}
    for name, table, columns in (("response", "responses", _RESPONSE_COLUMNS),
                                 ("remedy", "remedies", _REMEDY_COLUMNS),
                                 ("payment", "remedy_payments", _PAYMENT_COLUMNS)):
        triggers |= {
            f"{name}_tally_insert": ("AFTER INSERT", table, None,
                                     _statements(dialect, "", "NEW", table)),
            f"{name}_tally_delete": ("AFTER DELETE", table, None,
                                     _statements(dialect, "-", "OLD", table)),
            f"{name}_tally_update": (f"AFTER UPDATE OF {of(columns)}", table,
                                     _changed(columns, (), differ, voided=False), both(table)),
        }
    return triggers | {
        # A complaint lodged again under a reference whose remedies stayed counts them.
        "complaint_tally_insert": ("AFTER INSERT", "complaints", None,
                                   _statements(dialect, "", "NEW", "complaint")
                                   + _statements(dialect, "", "NEW", "children")),
        "complaint_tally_delete": ("AFTER DELETE", "complaints", None,
                                   _statements(dialect, "-", "OLD", "complaint")),
        "complaint_tally_update": (
            f"AFTER UPDATE OF state, {of(_FOR_COMPLAINTS + _FOR_COMPLAINTS_SET)}",
            "complaints", _changed(_FOR_COMPLAINTS, _FOR_COMPLAINTS_SET, differ),
            both("complaint")),
        "complaint_children_update": (
            f"AFTER UPDATE OF state, {of(_FOR_CHILDREN + _FOR_CHILDREN_SET)}",
            "complaints", _changed(_FOR_CHILDREN, _FOR_CHILDREN_SET, differ),
            both("children")),
        # Its responses go with it (deleted here, while it is there to say where they were
        # counted, rather than by the cascade after it); its remedies and payments, which
        # have no foreign key, stay in their tables but are no longer counted.
        "complaint_children_delete": ("BEFORE DELETE", "complaints", None, [
            "DELETE FROM responses WHERE reference = OLD.reference",
            *(s for s in _statements(dialect, "-", "OLD", "children")
              if not s.startswith(tuple(f"INSERT INTO {t.table} " for t in RESPONSE_TALLIES)))]),
    }


def _create(dialect: str) -> None:
    for name, (event, table, when, statements) in _triggers(dialect).items():
        if dialect == "postgresql":
            returns = "OLD" if event.startswith("BEFORE") else "NULL"
            body = "".join(f"  {s};\n" for s in statements)
            op.execute(f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$\n"
                       f"BEGIN\n{body}  RETURN {returns};\nEND\n$$")
            op.execute(f"CREATE TRIGGER {name} {event} ON {table} FOR EACH ROW"
                       f"{f' WHEN ({when})' if when else ''} EXECUTE FUNCTION {name}()")
        else:
            body = "".join(f"{s};\n" for s in statements)
            op.execute(f"CREATE TRIGGER {name} {event} ON {table} FOR EACH ROW"
                       f"{f' WHEN {when}' if when else ''}\nBEGIN\n{body}END")


def _table(tally: Tally, types: dict[str, Any]) -> None:
    keys = [key.strip('"') for key in tally.keys]
    op.create_table(tally.table,
                    *(sa.Column(key, types[key], nullable=False) for key in keys),
                    *(sa.Column(name, sa.Integer(), nullable=False) for name in tally.counts),
                    sa.PrimaryKeyConstraint(*keys))


def upgrade() -> None:
    """Create the tallies, fill them from the rows stored, create the triggers.

    Also an index on the remedies by kind and time offered: the report still reads the
    period's financial remedies themselves for two figures (see ``models.tables``).
    """
    dialect = op.get_bind().dialect.name
    text, day, number = sa.String(), sa.Date(), sa.Integer()
    types = {"landlord": text, "responded_on": day, "received_on": day, "stage": number,
             "tenure": text, "policy_name": text, "working_days": number, "by": text,
             "category": text, "channel": text, "acknowledgement_due": day,
             "acknowledged_on": day, "within_limit": number, "is_excluded": number,
             "pending": number, "handler": text, "kind": text, "due_by": day,
             "paid_on": day, "offered_hour": sa.DateTime(timezone=True),
             "escalation_requested_on": day, "stage2_acknowledgement_due": day,
             "stage2_acknowledged_on": day, "is_refused": number, "still_open": number,
             "taken_on_on": day}
    for tally in {t.table: t for t in ALL_TALLIES}.values():
        _table(tally, types)
    every = {  # each kind of row stored, with its complaint, not voided
        "responses": ({"r": "r", "c": "c"},
                      "FROM responses r JOIN complaints c ON c.reference = r.reference"),
        "complaints": ({"c": "c"}, "FROM complaints c"),
        "remedies": ({"m": "m", "c": "c"},
                     "FROM remedies m JOIN complaints c ON c.reference = m.reference"),
        "payments": ({"p": "p", "m": "m", "c": "c"},
                     f"{_PAID} JOIN complaints c ON c.reference = p.reference"),
    }
    for tallies, (rows, source) in zip(
            (RESPONSE_TALLIES, COMPLAINT_TALLIES, REMEDY_TALLIES, PAYMENT_TALLIES),
            every.values(), strict=True):
        for tally in tallies:
            op.execute(_insert(tally, dialect, sign="", rows=rows,
                               source=f"{source} WHERE c.state <> 'voided'", many=True))
    _create(dialect)
    op.create_index("ix_remedies_kind_offered_at", "remedies",
                    ["kind", "offered_at", "reference", "stage", "position", "due_by"])


def downgrade() -> None:
    """Drop the index, the triggers (and their functions) and the tallies."""
    op.drop_index("ix_remedies_kind_offered_at", table_name="remedies")
    dialect = op.get_bind().dialect.name
    for name, (_, table, _, _) in _triggers(dialect).items():
        if dialect == "postgresql":
            op.execute(f"DROP TRIGGER IF EXISTS {name} ON {table}")
            op.execute(f"DROP FUNCTION IF EXISTS {name}()")
        else:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    for table in {t.table: t for t in ALL_TALLIES}:
        op.drop_table(table)
