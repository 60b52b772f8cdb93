"""Data models.

``models.policy``, ``models.case`` and ``models.letters`` are pydantic messages that cross
Temporal boundaries (workflow inputs, update payloads, activity inputs and results).
``models.tables`` holds the SQLModel tables and is imported only by activities and tools.
"""
