"""Bulk writes of a case's child rows by natural key, in Core SQL.

:class:`Upsert` rewrites one child table's rows of a case (deadlines, extensions,
responses...) inserting the missing ones and updating only those that differ;
:func:`table_of` gives a model's table for Core statements. Used by the read model
(:mod:`activities.records`) and by the writers that share its tables.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, cast

from sqlalchemy import Connection, Table, bindparam, insert, inspect, update
from sqlalchemy import select as select_columns
from sqlmodel import SQLModel


def table_of(model: type[SQLModel]) -> Table:
    """The SQLAlchemy table of a ``table=True`` model (for Core statements)."""
    return cast(Table, inspect(model).local_table)


class Upsert:
    """Write a case's rows of one child table by their natural key, in bulk (Core).

    The read model is rewritten on every event, mostly with what it holds already: the
    ORM's per-row objects, identity map and flush cost more than the work itself. This
    reads the case's stored rows once, inserts the missing ones in one ``executemany``
    and updates, by id, only those whose values differ: the same rows as an ORM upsert,
    in plain SQL every dialect runs. The statements are built once (SQLAlchemy caches
    their compiled form by statement).
    """

    def __init__(self, model: type[SQLModel], key: tuple[str, ...],
                 values: tuple[str, ...]) -> None:
        """Prepare the statements.

        Args:
            model: The table's model: an ``id`` primary key and a ``reference`` column,
                unique on ``reference`` and ``key``.
            key: The columns that name a row within its case.
            values: The other columns written (every one, on insert and on update).

        """
        table = table_of(model)
        self.key = key
        self.values = values
        self._select = select_columns(table.c.id, *(table.c[c] for c in key + values)).where(
            table.c.reference == bindparam("reference"))
        self._insert = insert(table)
        # No SET clause: executemany derives it from the parameters (the value columns).
        self._update = update(table).where(table.c.id == bindparam("row_id"))

    def write(self, connection: Connection, reference: str,
              rows: Iterable[Mapping[str, Any]]) -> None:
        """Make the case's stored rows hold ``rows`` (rows not named are left as they are).

        Args:
            connection: The session's connection (its transaction).
            reference: The case.
            rows: Each row's key and value columns. Of two rows with the same key the
                later one's values are written, in the first one's place (as the ORM
                upsert of actions did; the others failed on the unique key instead).

        """
        wanted: dict[tuple[Any, ...], Mapping[str, Any]] = {}
        for row in rows:
            wanted[tuple(row[k] for k in self.key)] = row
        if not wanted:
            return
        stored = {tuple(r[k] for k in self.key): r for r in connection.execute(
            self._select, {"reference": reference}).mappings()}
        inserts: list[dict[str, Any]] = []
        updates: list[dict[str, Any]] = []
        for key, row in wanted.items():
            old = stored.get(key)
            if old is None:
                inserts.append({"reference": reference, **{c: row[c] for c in self.key},
                                **{c: row[c] for c in self.values}})
            elif any(old[c] != row[c] for c in self.values):
                updates.append({"row_id": old["id"], **{c: row[c] for c in self.values}})
        if inserts:
            connection.execute(self._insert, inserts)
        if updates:
            connection.execute(self._update, updates)

