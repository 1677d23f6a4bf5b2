"""Celery tasks of billing."""

from __future__ import annotations

from typing import Any

from celery import Task, shared_task
from django.db import DatabaseError

from portal.events import HANDLER_TASK


# A failure of the billing itself ends the run `failed` (billing.runs); what reaches Celery is
# a database that would not even record that, and a retry finds the run `running` (or the
# chunk unbilled) and takes it again, so a run never stays `running` for good.
def _run_task(name: str) -> Any:
    return shared_task(
        name=name, bind=True, acks_late=True, autoretry_for=(DatabaseError,), retry_backoff=True,
        retry_backoff_max=300, max_retries=8,
    )  # fmt: skip


@_run_task("billing.invoice_run")
def invoice_run(self: Task[Any, Any], run_id: str) -> dict[str, object]:
    """Plan a period's run: queue its chunks, bill those no other worker took (idempotent: a
    redelivered or repeated run leaves one invoice per contract)."""
    from billing.runs import invoice_run_execute

    run = invoice_run_execute(run_id, worker=self.request.hostname or "")
    return {"run": run_id, "status": run.status, "processed": run.processed}


@_run_task("billing.invoice_run_chunk")
def invoice_run_chunk(self: Task[Any, Any], chunk_id: int) -> bool:
    """Bill one chunk of a run, on whichever worker takes it (once, however often delivered)."""
    from billing.runs import invoice_run_chunk_execute

    return invoice_run_chunk_execute(chunk_id, worker=self.request.hostname or "")


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


# E-mails to the customer (billing.mail). Each is idempotent: the document's `emailed_at` (or
# the reminder's row) is claimed under a lock, so a redelivered task sends nothing twice.
def _mail_task(name: str) -> Any:
    return shared_task(
        name=name, acks_late=True, autoretry_for=(Exception,), retry_backoff=True,
        retry_backoff_max=600, max_retries=8,
    )  # fmt: skip


@_mail_task("billing.invoice_email")
def invoice_email(invoice_id: str) -> bool:
    """A finalized invoice to its customer's billing address, with its PDF and XML."""
    from billing import mail

    return mail.invoice_send(invoice_id=invoice_id)


@_mail_task("billing.credit_note_email")
def credit_note_email(credit_note_id: str) -> bool:
    """An issued credit note to its customer's billing address, with its PDF and XML."""
    from billing import mail

    return mail.credit_note_send(credit_note_id=credit_note_id)


@_mail_task("billing.invoice_reminder_send")
def invoice_reminder_send(reminder_id: int) -> bool:
    """One dunning e-mail (the sweep made its InvoiceReminder row)."""
    from billing import mail

    return mail.reminder_send(reminder_id=reminder_id)


@shared_task(name="billing.overdue_sweep")
def overdue_sweep() -> dict[str, int]:
    """Celery beat, hourly (each customer's day ends at its own midnight): mark invoices overdue,
    queue reminders (billing.payments); idempotent."""
    from billing import payments

    result = payments.overdue_sweep()
    return {"overdue": result.overdue, "cleared": result.cleared, "reminders": result.reminders}
