"""Heartbeats only as often as an activity's heartbeat timeout needs."""

from __future__ import annotations

import datetime as dt
import threading
import time

from temporalio import activity

#: A beat goes out once this share of the heartbeat timeout has passed since the attempt
#: started or last beat. A sync activity's beat waits for the worker's event loop; under
#: load that round trip was 40 % of a recording's time (``bench_history.py`` profiled),
#: and a recording that takes milliseconds needs no beat to prove it is alive.
BEAT_SHARE = 0.25
_beats = threading.local()


def heartbeat(*details: object) -> None:
    """Heartbeat when running as an activity, only as often as its timeout needs.

    A no-op when called directly, when the activity has no heartbeat timeout, and while
    less than :data:`BEAT_SHARE` of that timeout has passed since the attempt started or
    last beat. So a slow step (an SMTP send, a database outage) is still followed by a
    beat, and a quick one costs nothing.
    """
    if not activity.in_activity():
        return
    info = activity.info()
    timeout = info.heartbeat_timeout
    if not timeout:
        return
    now = time.monotonic()
    if getattr(_beats, "task_token", None) != info.task_token:
        # First call in this attempt: measure from its start (the server's clock). A
        # worker clock behind the server's would make that negative: then beat, to be safe.
        _beats.task_token = info.task_token
        since_start = (dt.datetime.now(dt.UTC) - info.started_time).total_seconds()
        _beats.last = now - (since_start if since_start >= 0 else timeout.total_seconds())
    if now - _beats.last >= timeout.total_seconds() * BEAT_SHARE:
        activity.heartbeat(*details)
        _beats.last = now
