"""Column types and helpers shared by every SQLModel table module.

``UTCDateTime`` (timezone-aware timestamps stored in UTC), ``utcnow`` (the default for
timestamp columns) and ``reference_fk`` (the named foreign key from a row's ``reference``
to its complaint). :mod:`models.tables` re-exports the first two, the names every other
table module imports them by.
"""

import datetime as dt
from typing import Any

from sqlalchemy import DateTime, Dialect, ForeignKey, TypeDecorator

__all__ = ["UTCDateTime", "reference_fk", "utcnow"]


class UTCDateTime(TypeDecorator[dt.datetime]):
    """An aware datetime stored as UTC, and read back as an aware UTC datetime.

    The column is ``DateTime(timezone=True)``. PostgreSQL keeps the offset itself; SQLite
    has no time zones, so values are converted to UTC before they are written and marked
    as UTC when read. Naive datetimes are refused: their meaning is ambiguous.
    """

    impl = DateTime
    cache_ok = True

    def __init__(self) -> None:
        super().__init__(timezone=True)

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> Any:
        """Convert an aware datetime to UTC before it is stored.

        Args:
            value: The datetime to store, or None.
            dialect: The database dialect (unused).

        Returns:
            The same instant in UTC, or None.

        Raises:
            ValueError: If ``value`` is naive.

        """
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("naive datetimes are not stored: give a timezone-aware datetime")
        return value.astimezone(dt.UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        """Return a stored datetime as an aware UTC datetime.

        Args:
            value: The value the driver returned, or None.
            dialect: The database dialect (unused).

        Returns:
            The instant in UTC, or None.

        """
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


def utcnow() -> dt.datetime:
    """Return the current time as an aware UTC datetime."""
    return dt.datetime.now(dt.UTC)


def reference_fk(table: str) -> ForeignKey:
    """Build a named foreign key from ``table.reference`` to the complaint."""
    return ForeignKey("complaints.reference", name=f"fk_{table}_reference_complaints",
                      ondelete="CASCADE")
