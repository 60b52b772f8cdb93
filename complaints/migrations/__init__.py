"""Alembic migrations of the complaints database (run by ``complaints.db.upgrade``)."""
