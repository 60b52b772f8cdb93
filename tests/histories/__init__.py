"""Saved histories of finished cases, replayed by tests/test_replay.py."""
