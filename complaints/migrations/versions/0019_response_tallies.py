"""The report's response tallies, kept by triggers: ``response_tally``, ``missed_response_tally``.

Revision ID: 0019
Revises: 0018
Create Date: 2026-11-28

Written by hand against ``models.tallies`` (``tests/test_db.py`` compares the migrated
schema with the models). The tables are filled from the responses already stored, and
from then on triggers keep them (SQLite and PostgreSQL, the same SQL in each):

- a response inserted, deleted or changed adds its counts, takes them away, or both;
- a complaint whose landlord, tenure, policy file, category, escalation or voiding
  changes takes its responses' counts away under the old values and adds them under the
  new ones;
- a complaint deleted first deletes its responses, so that they are taken away while the
  complaint is still there to say where they were counted (a cascade runs after it).

A later migration that rebuilds ``responses`` or ``complaints`` on SQLite (Alembic's
batch mode copies the table, which drops its triggers) must create them again:
``tests/test_db.py`` checks that they are there at head.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: What each response adds to ``response_tally``: key columns, then counts. ``{r}`` is the
#: response, ``{c}`` its complaint.
_TALLY_KEYS = {
    "landlord": "{c}.landlord",
    "responded_on": "{r}.responded_on",
    "stage": "{r}.stage",
    "tenure": "COALESCE({c}.tenure, '')",
    "policy_name": "{c}.policy_name",
    "working_days": "{r}.working_days_taken",
}
_TALLY_COUNTS = {
    "responses": "1",
    "within_base": "{r}.responded_on <= {r}.due_base",
    "within_extension": "{r}.responded_on <= {r}.due_base OR ({r}.extension_within_code "
                        "AND {r}.responded_on <= {r}.due_final)",
    "within_code": "{r}.within_code",
    "extended": "{r}.extension_days > 0",
    "extended_within_new_date": "{r}.extension_days > 0 AND {r}.responded_on <= {r}.due_final",
    "late_final": "{r}.responded_on > {r}.due_final",
    "upheld": "{r}.decision = 'upheld'",
    "partly_upheld": "{r}.decision = 'partly_upheld'",
    "not_upheld": "{r}.decision = 'not_upheld'",
    "escalated": "{c}.escalation_requested_on IS NOT NULL",
}
#: What a missed response adds to ``missed_response_tally``.
_MISSED_KEYS = {
    "landlord": "{c}.landlord",
    "responded_on": "{r}.responded_on",
    "stage": "{r}.stage",
    '"by"': '{r}."by"',
    "category": "{c}.category",
}
_MISSED_COUNTS = {"missed": "1"}
#: Missed: neither within the base date nor a Code-compliant extended date.
_MISSED_WHERE = "NOT ({r}.responded_on <= {r}.due_base OR ({r}.extension_within_code " \
                "AND {r}.responded_on <= {r}.due_final))"

#: The columns of each table whose change moves a row's counts (``by`` is a reserved word
#: in PostgreSQL, so it is quoted wherever it is named).
_RESPONSE_COLUMNS = ("reference", "responded_on", "stage", "working_days_taken", "due_base",
                     "due_final", "extension_within_code", "within_code", "extension_days",
                     "decision", '"by"')
_COMPLAINT_COLUMNS = ("landlord", "tenure", "policy_name", "category")


def _count(expression: str) -> str:
    """1 when a count's condition holds, else 0 (NULL counts as not)."""
    return expression if expression == "1" else f"CASE WHEN {expression} THEN 1 ELSE 0 END"


def _tally(table: str, keys: dict[str, str], counts: dict[str, str], *, sign: str, r: str,
           c: str, source: str, where: str = "", group: bool = False) -> str:
    """One INSERT ... SELECT ... ON CONFLICT adding ``sign`` times the rows' counts.

    Args:
        table: The tally table.
        keys: Its key columns and the expressions that give them.
        counts: Its count columns and their conditions.
        sign: ``""`` to add, ``"-"`` to take away.
        r: What the response columns are read from (``NEW``, ``OLD`` or ``r``).
        c: What the complaint columns are read from (``NEW``, ``OLD`` or ``c``).
        source: The FROM and WHERE clause the rows come from.
        where: A further condition on the rows counted.
        group: Whether many responses are counted (grouped by the key, as one statement
            may not update a row twice on PostgreSQL).
    """
    def fill(text: str) -> str:
        return text.format(r=r, c=c)

    key_values = [fill(v) for v in keys.values()]
    count_values = [f"{sign}SUM({_count(fill(v))})" if group else f"{sign}{_count(fill(v))}"
                    for v in counts.values()]
    columns = ", ".join((*keys, *counts))
    updates = ", ".join(f"{name} = {table}.{name} + excluded.{name}" for name in counts)
    grouped = [v for v in key_values if not v.startswith(("NEW.", "OLD.", "COALESCE(NEW",
                                                           "COALESCE(OLD"))]
    return (f"INSERT INTO {table} ({columns}) SELECT {', '.join(key_values + count_values)} "
            f"{fill(source)}{f' AND {fill(where)}' if where else ''}"
            f"{' GROUP BY ' + ', '.join(grouped) if group else ''} "
            f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {updates}")


def _both(sign: str, r: str, c: str, source: str, *, group: bool = False) -> list[str]:
    """The statements adding (or taking away) rows' counts in both tallies."""
    return [_tally("response_tally", _TALLY_KEYS, _TALLY_COUNTS, sign=sign, r=r, c=c,
                   source=source, group=group),
            _tally("missed_response_tally", _MISSED_KEYS, _MISSED_COUNTS, sign=sign, r=r,
                   c=c, source=source, where=_MISSED_WHERE, group=group)]


def _of_response(sign: str, row: str) -> list[str]:
    """One response's counts (``row``: NEW or OLD), its complaint read from the table."""
    return _both(sign, row, "c", "FROM complaints c WHERE c.reference = {r}.reference "
                                 "AND c.state <> 'voided'")


def _of_complaint(sign: str, row: str) -> list[str]:
    """Every response of one complaint (``row``: NEW or OLD), under that row's values."""
    return _both(sign, "r", row, "FROM responses r WHERE r.reference = {c}.reference "
                                 "AND {c}.state <> 'voided'", group=True)


def _changed(columns: Sequence[str], differ: str) -> str:
    """A trigger's WHEN: any of ``columns`` changed (``differ``: the dialect's IS NOT)."""
    return " OR ".join(f"OLD.{name} {differ} NEW.{name}" for name in columns)


def _complaint_changed(differ: str) -> str:
    """A complaint change that moves its responses' counts."""
    return " OR ".join([
        _changed(_COMPLAINT_COLUMNS, differ),
        f"(OLD.state = 'voided') {differ} (NEW.state = 'voided')",
        f"(OLD.escalation_requested_on IS NULL) {differ} "
        "(NEW.escalation_requested_on IS NULL)"])


#: Trigger name -> (timing and event, table, WHEN or None, statements).
def _triggers(differ: str) -> dict[str, tuple[str, str, str | None, list[str]]]:
    return {
        "response_tally_insert": ("AFTER INSERT", "responses", None,
                                  _of_response("", "NEW")),
        "response_tally_delete": ("AFTER DELETE", "responses", None,
                                  _of_response("-", "OLD")),
        "response_tally_update": (f"AFTER UPDATE OF {', '.join(_RESPONSE_COLUMNS)}",
                                  "responses", _changed(_RESPONSE_COLUMNS, differ),
                                  _of_response("-", "OLD") + _of_response("", "NEW")),
        "response_tally_complaint": (
            "AFTER UPDATE OF landlord, state, tenure, policy_name, category, "
            "escalation_requested_on", "complaints", _complaint_changed(differ),
            _of_complaint("-", "OLD") + _of_complaint("", "NEW")),
        "response_tally_complaint_delete": (
            "BEFORE DELETE", "complaints", None,
            ["DELETE FROM responses WHERE reference = OLD.reference"]),
    }


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


def _counts(columns: Sequence[str]) -> list[sa.Column]:
    return [sa.Column(name, sa.Integer(), nullable=False) for name in columns]


def upgrade() -> None:
    """Create the tallies, fill them from the responses stored, create the triggers."""
    op.create_table(
        "response_tally",
        sa.Column("landlord", sa.String(), nullable=False),
        sa.Column("responded_on", sa.Date(), nullable=False),
        sa.Column("stage", sa.Integer(), nullable=False),
        sa.Column("tenure", sa.String(), nullable=False),
        sa.Column("policy_name", sa.String(), nullable=False),
        sa.Column("working_days", sa.Integer(), nullable=False),
        *_counts(_TALLY_COUNTS),
        sa.PrimaryKeyConstraint(*_TALLY_KEYS))
    op.create_table(
        "missed_response_tally",
        sa.Column("landlord", sa.String(), nullable=False),
        sa.Column("responded_on", sa.Date(), nullable=False),
        sa.Column("stage", sa.Integer(), nullable=False),
        sa.Column("by", sa.String(), nullable=False),
        sa.Column("category", sa.String(), nullable=False),
        *_counts(_MISSED_COUNTS),
        sa.PrimaryKeyConstraint(*(key.strip('"') for key in _MISSED_KEYS)))
    every = ("FROM responses r JOIN complaints c ON c.reference = r.reference "
             "WHERE c.state <> 'voided'")
    for statement in (_tally("response_tally", _TALLY_KEYS, _TALLY_COUNTS, sign="", r="r",
                             c="c", source=every, group=True),
                      _tally("missed_response_tally", _MISSED_KEYS, _MISSED_COUNTS,
                             sign="", r="r", c="c", source=every, where=_MISSED_WHERE,
                             group=True)):
        op.execute(statement)
    if op.get_bind().dialect.name == "postgresql":
        _create_postgresql()
    else:
        _create_sqlite()


def downgrade() -> None:
    """Drop the triggers (and their functions) and the tallies."""
    postgresql = op.get_bind().dialect.name == "postgresql"
    for name, (_, table, _, _) in _triggers("IS NOT").items():
        op.execute(f"DROP TRIGGER IF EXISTS {name}" + (f" ON {table}" if postgresql else ""))
        if postgresql:
            op.execute(f"DROP FUNCTION IF EXISTS {name}()")
    op.drop_table("missed_response_tally")
    op.drop_table("response_tally")
