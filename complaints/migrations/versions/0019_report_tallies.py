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
- a complaint deleted first deletes its responses, so that they are taken away while the
  complaint is still there to say where they were counted (a cascade runs after it).

A later migration that rebuilds ``responses`` or ``complaints`` on SQLite (Alembic's
batch mode copies the table, which drops its triggers) must create them again:
``tests/test_report_tallies.py`` checks that they are there at head.
"""

from collections.abc import Sequence
from dataclasses import dataclass

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

    Expressions read ``{r}`` (the response) and ``{c}`` (the complaint); a complaint
    tally reads the complaint only.

    Attributes:
        table: The table.
        keys: Its key columns and the expressions that give them.
        counts: Its count columns and the condition each counts.
        where: Which rows are counted (all, when empty).
    """

    table: str
    keys: dict[str, str]
    counts: dict[str, str]
    where: str = ""


def _flag(condition: str) -> str:
    """1 when ``condition`` holds, else 0 (NULL counts as not)."""
    return f"CASE WHEN {condition} THEN 1 ELSE 0 END"


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
    # Acknowledgements made after their due date, per stage (two rows of one table).
    *(Tally("late_acknowledgement_tally", keys={
        "landlord": "{c}.landlord", "acknowledged_on": f"{{c}}.{prefix}acknowledged_on",
        "stage": stage, "handler": f"COALESCE({{c}}.stage{stage}_handler, '')",
        "category": "{c}.category",
    }, counts={"acknowledgements": "1"},
        where=f"{{c}}.{prefix}acknowledged_on > {{c}}.{prefix}acknowledgement_due")
      for stage, prefix in (("1", ""), ("2", "stage2_"))),
)

#: The columns whose change moves a response's counts.
_RESPONSE_COLUMNS = ("reference", "responded_on", "stage", "working_days_taken", "due_base",
                     "due_final", "extension_within_code", "within_code", "extension_days",
                     "decision", '"by"')
#: A complaint's columns the response tallies read: compared whole, or by whether set.
_FOR_RESPONSES = ("landlord", "tenure", "policy_name", "category")
_FOR_RESPONSES_SET = ("escalation_requested_on",)
#: A complaint's columns the complaint tallies read.
_FOR_COMPLAINTS = ("landlord", "received_on", "channel", "category", "tenure", "policy_name",
                   "excluded", "imported", "acknowledgement_due", "acknowledged_on",
                   "stage2_acknowledgement_due", "stage2_acknowledged_on", "stage1_handler",
                   "stage2_handler")
_FOR_COMPLAINTS_SET = ("taken_on_on", "withdrawn_at", "escalation_requested_on",
                       "declined_at", "referred_to_ombudsman_at")


def _insert(tally: Tally, *, sign: str, r: str, c: str, source: str, many: bool) -> str:
    """One INSERT ... SELECT ... ON CONFLICT adding ``sign`` times the rows' counts.

    Args:
        tally: The tally.
        sign: ``""`` to add, ``"-"`` to take away.
        r: What the response columns are read from (``NEW``, ``OLD`` or a table alias).
        c: What the complaint columns are read from (likewise).
        source: The FROM and WHERE clause of the rows (a bare WHERE for one trigger row).
        many: Whether ``source`` gives many rows to count: they are grouped by key, as one
            statement may not update a row twice on PostgreSQL.
    """
    def fill(text: str) -> str:
        return text.format(r=r, c=c)

    # Grouped by the keys read from the table; those of the trigger's row are the same
    # for every row.
    tables = [f"{{{name}}}" for name, value in (("r", r), ("c", c))
              if value and value not in ("NEW", "OLD")]
    grouped = [fill(v) for v in tally.keys.values() if many and any(t in v for t in tables)]
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


def _count(condition: str) -> str:
    return condition if condition == "1" else _flag(condition)


def _of_response(sign: str, row: str) -> list[str]:
    """One response's counts (``row``: NEW or OLD), its complaint read from the table."""
    return [_insert(t, sign=sign, r=row, c="c",
                    source="FROM complaints c WHERE c.reference = {r}.reference "
                           "AND c.state <> 'voided'", many=False) for t in RESPONSE_TALLIES]


def _of_complaints_responses(sign: str, row: str) -> list[str]:
    """Every response of one complaint (``row``: NEW or OLD), under that row's values."""
    return [_insert(t, sign=sign, r="r", c=row,
                    source="FROM responses r WHERE r.reference = {c}.reference "
                           "AND {c}.state <> 'voided'", many=True) for t in RESPONSE_TALLIES]


def _of_complaint(sign: str, row: str) -> list[str]:
    """One complaint's own counts (``row``: NEW or OLD)."""
    return [_insert(t, sign=sign, r="", c=row, source="WHERE {c}.state <> 'voided'",
                    many=False)
            for t in COMPLAINT_TALLIES]


def _changed(whole: Sequence[str], set_or_not: Sequence[str], differ: str) -> str:
    """A trigger's WHEN: any of the columns changed (``differ``: the dialect's IS NOT)."""
    return " OR ".join([
        *(f"OLD.{name} {differ} NEW.{name}" for name in whole),
        *(f"(OLD.{name} IS NULL) {differ} (NEW.{name} IS NULL)" for name in set_or_not),
        f"(OLD.state = 'voided') {differ} (NEW.state = 'voided')"])


def _triggers(differ: str) -> dict[str, tuple[str, str, str | None, list[str]]]:
    """Trigger name -> (timing and event, table, WHEN or None, statements)."""
    def of(columns: Sequence[str]) -> str:
        return ", ".join(columns)

    return {
        "response_tally_insert": ("AFTER INSERT", "responses", None,
                                  _of_response("", "NEW")),
        "response_tally_delete": ("AFTER DELETE", "responses", None,
                                  _of_response("-", "OLD")),
        "response_tally_update": (
            f"AFTER UPDATE OF {of(_RESPONSE_COLUMNS)}", "responses",
            " OR ".join(f"OLD.{name} {differ} NEW.{name}" for name in _RESPONSE_COLUMNS),
            _of_response("-", "OLD") + _of_response("", "NEW")),
        "response_tally_complaint": (
            f"AFTER UPDATE OF state, {of(_FOR_RESPONSES + _FOR_RESPONSES_SET)}",
            "complaints", _changed(_FOR_RESPONSES, _FOR_RESPONSES_SET, differ),
            _of_complaints_responses("-", "OLD") + _of_complaints_responses("", "NEW")),
        "response_tally_complaint_delete": (
            "BEFORE DELETE", "complaints", None,
            ["DELETE FROM responses WHERE reference = OLD.reference"]),
        "complaint_tally_insert": ("AFTER INSERT", "complaints", None,
                                   _of_complaint("", "NEW")),
        "complaint_tally_delete": ("AFTER DELETE", "complaints", None,
                                   _of_complaint("-", "OLD")),
        "complaint_tally_update": (
            f"AFTER UPDATE OF state, {of(_FOR_COMPLAINTS + _FOR_COMPLAINTS_SET)}",
            "complaints", _changed(_FOR_COMPLAINTS, _FOR_COMPLAINTS_SET, differ),
            _of_complaint("-", "OLD") + _of_complaint("", "NEW")),
    }


#: Every trigger's name and table (for dropping them).
TRIGGERS = {name: table for name, (_, table, _, _) in _triggers("IS NOT").items()}


def _create_sqlite() -> None:
    for name, (event, table, when, statements) in _triggers("IS NOT").items():
        body = "".join(f"{s};\n" for s in statements)
        op.execute(f"CREATE TRIGGER {name} {event} ON {table} FOR EACH ROW"
                   f"{f' WHEN {when}' if when else ''}\nBEGIN\n{body}END")


def _create_postgresql() -> None:
    for name, (event, table, when, statements) in _triggers("IS DISTINCT FROM").items():
        returns = "OLD" if event.startswith("BEFORE") else "NULL"
        body = "".join(f"  {s};\n" for s in statements)
        op.execute(f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$\n"
                   f"BEGIN\n{body}  RETURN {returns};\nEND\n$$")
        op.execute(f"CREATE TRIGGER {name} {event} ON {table} FOR EACH ROW"
                   f"{f' WHEN ({when})' if when else ''} EXECUTE FUNCTION {name}()")


def _table(tally: Tally, types: dict[str, sa.types.TypeEngine]) -> None:
    keys = [key.strip('"') for key in tally.keys]
    op.create_table(tally.table,
                    *(sa.Column(key, types[key], nullable=False) for key in keys),
                    *(sa.Column(name, sa.Integer(), nullable=False) for name in tally.counts),
                    sa.PrimaryKeyConstraint(*keys))


def upgrade() -> None:
    """Create the tallies, fill them from the rows stored, create the triggers."""
    text, day, number = sa.String(), sa.Date(), sa.Integer()
    types = {"landlord": text, "responded_on": day, "received_on": day, "stage": number,
             "tenure": text, "policy_name": text, "working_days": number, "by": text,
             "category": text, "channel": text, "acknowledgement_due": day,
             "acknowledged_on": day, "within_limit": number, "is_excluded": number,
             "pending": number, "handler": text}
    for tally in {t.table: t for t in (*RESPONSE_TALLIES, *COMPLAINT_TALLIES)}.values():
        _table(tally, types)
    for tally in RESPONSE_TALLIES:
        op.execute(_insert(tally, sign="", r="r", c="c",
                           source="FROM responses r JOIN complaints c "
                                  "ON c.reference = r.reference WHERE c.state <> 'voided'",
                           many=True))
    for tally in COMPLAINT_TALLIES:
        op.execute(_insert(tally, sign="", r="", c="c",
                           source="FROM complaints c WHERE c.state <> 'voided'",
                           many=True))
    if op.get_bind().dialect.name == "postgresql":
        _create_postgresql()
    else:
        _create_sqlite()


def downgrade() -> None:
    """Drop the triggers (and their functions) and the tallies."""
    postgresql = op.get_bind().dialect.name == "postgresql"
    for name, table in TRIGGERS.items():
        op.execute(f"DROP TRIGGER IF EXISTS {name}" + (f" ON {table}" if postgresql else ""))
        if postgresql:
            op.execute(f"DROP FUNCTION IF EXISTS {name}()")
    for table in {t.table: t for t in (*RESPONSE_TALLIES, *COMPLAINT_TALLIES)}:
        op.drop_table(table)
