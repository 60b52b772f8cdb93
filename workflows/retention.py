"""The ``Retention`` workflow: one run of the retention job, started daily by a Schedule.

Tiny on purpose: it fixes the day retention is measured to (its own clock, so a retried
activity measures to the same day) and calls one activity,
:meth:`activities.retention.RetentionActivities.erase_expired`, which does the work and
records it. The Schedule (id ``complaints-retention``) is made by
:func:`complaints.retention.ensure_schedule` when the worker starts.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from domain.deadlines import london_date
    from models.retention import RetentionRunInput, RetentionRunResult

__all__ = ["RETENTION_RETRY", "RetentionWorkflow"]

#: A run touches every expired case: it may take a while, and heartbeats per case.
RUN_TIMEOUT = timedelta(hours=2)
HEARTBEAT = timedelta(minutes=2)
RETENTION_RETRY = RetryPolicy(initial_interval=timedelta(seconds=5), backoff_coefficient=2.0,
                              maximum_interval=timedelta(minutes=10), maximum_attempts=10,
                              non_retryable_error_types=["RetentionError"])


@workflow.defn(name="Retention")
class RetentionWorkflow:
    """Erase the personal data of every case past its landlord's retention period."""

    @workflow.run
    async def run(self, input: RetentionRunInput | None = None) -> RetentionRunResult:
        """Run the job once, as of ``input.as_of`` or today (London) by the workflow's clock.

        The Schedule starts it with no argument: a stored argument would be encrypted with
        the key of the day the Schedule was made, and undecodable once that key is retired.
        """
        input = input or RetentionRunInput()
        chosen = input.model_copy(update={
            "as_of": input.as_of or london_date(workflow.now()),
            "run_key": input.run_key or workflow.info().run_id})
        result: RetentionRunResult = await workflow.execute_activity(
            "erase_expired", chosen, result_type=RetentionRunResult,
            start_to_close_timeout=RUN_TIMEOUT, heartbeat_timeout=HEARTBEAT,
            retry_policy=RETENTION_RETRY)
        return result
