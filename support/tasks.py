"""Celery tasks of support: SLA sweep, e-mail notifications, and the handlers of fleet's alarm
events (subscribed in `SupportConfig.ready()`)."""

from __future__ import annotations

from celery import shared_task

from portal.events import HANDLER_TASK


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


@shared_task(name="support.on_alarm_raised", **HANDLER_TASK)
def on_alarm_raised(alarm_id: str) -> None:
    """fleet's AlarmRaised: open, comment on or reopen the alarm's ticket. Idempotent as far as
    the ticket goes (`one_unresolved_alarm_ticket_per_asset_key`); a redelivery comments again."""
    from support import services

    services.on_alarm_raised(alarm_id=alarm_id)


@shared_task(name="support.on_alarm_cleared", **HANDLER_TASK)
def on_alarm_cleared(alarm_id: str) -> None:
    """fleet's AlarmCleared: comment on the alarm's newest ticket unless it is closed."""
    from support import services

    services.on_alarm_cleared(alarm_id=alarm_id)
