"""Celery tasks of support: SLA sweep and e-mail notifications."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="support.sla_sweep")
def sla_sweep() -> int:
    from support.services import sla_sweep as sweep

    return sweep()


@shared_task(name="support.auto_close")
def auto_close() -> int:
    from support.services import auto_close as close

    return close()


@shared_task(name="support.ticket_notify", acks_late=True)
def ticket_notify(event_id: int) -> int:
    from support.notifications import notify

    return notify(event_id)
