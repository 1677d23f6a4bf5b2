"""Celery tasks of billing."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="billing.invoice_run", acks_late=True)
def invoice_run(run_id: str) -> dict[str, object]:
    """Bill a period (idempotent: a redelivered or repeated run leaves one invoice per contract)."""
    from billing.runs import invoice_run_execute

    run = invoice_run_execute(run_id)
    return {"run": run_id, "status": run.status, "processed": run.processed}
