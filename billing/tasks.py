"""Celery tasks of billing."""

from __future__ import annotations

from celery import shared_task
from django.db import DatabaseError

from portal.events import HANDLER_TASK


# A failure of the billing itself ends the run `failed` (billing.runs.invoice_run_execute); what
# reaches Celery is a database that would not even record that, and a retry finds the run
# `running` and claims it again, so it never stays `running` for good.
@shared_task(
    name="billing.invoice_run",
    acks_late=True,
    autoretry_for=(DatabaseError,),
    retry_backoff=True,
    retry_backoff_max=300,
    max_retries=8,
)
def invoice_run(run_id: str) -> dict[str, object]:
    """Bill a period (idempotent: a redelivered or repeated run leaves one invoice per contract)."""
    from billing.runs import invoice_run_execute

    run = invoice_run_execute(run_id)
    return {"run": run_id, "status": run.status, "processed": run.processed}


@shared_task(name="billing.invoice_run_last_month")
def invoice_run_last_month() -> str:
    """Celery beat, early on the 2nd of each month: drafts for last month, for finance to review."""
    from django.utils import timezone

    from billing import metering
    from billing.runs import invoice_run_start

    label = metering.period_containing(timezone.now(), "UTC").previous().label
    return str(invoice_run_start(actor=None, period=label).pk)


# A live message that is late by minutes is no use: two tries, not eight.
@shared_task(name="billing.assets_reported", **{**HANDLER_TASK, "max_retries": 2})
def assets_reported(asset_ids: list[str]) -> None:
    """fleet's AssetStatusChanged (coalesced by the outbox: at most a task a second per
    process, whatever the ingest rate): live `usage.updated` for the covered assets."""
    from billing import live

    live.assets_reported(asset_ids=asset_ids)
