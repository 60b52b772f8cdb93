"""Temporal workflows (deterministic: no I/O, no clock, no settings)."""
