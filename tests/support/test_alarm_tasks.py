"""Alarm tickets come from Celery tasks: a real worker (on a Redis of the test's own) runs the
handlers of fleet's alarm events after the raising transaction commits."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.db import transaction
from django.utils import timezone

from fleet import events
from fleet.models import Alarm, AlarmRule, IngestInbox
from portal import events as portal_events
from portal import outbox
from portal.models import OutboxMessage
from support.models import Source, Ticket, TicketEvent
from tests.fleet_fixtures import Installed
from tests.integration import ARTIFACTS, at_once, post_ingest, start_worker, stop_process, wait_until
from tests.services import RedisServer
from tests.support.conftest import raise_alarm

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def handler_dir(tmp_path: Path) -> Path:
    return tmp_path


@pytest.fixture
def worker(
    service_env: dict[str, str], handler_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, Any]]:
    """A worker that knows the test handlers, on a Redis of its own, which this process's
    outbox publishes to (no other test's worker takes these messages)."""
    redis = RedisServer().start()
    env = {**service_env, "REDIS_URL": redis.url, "TEST_HANDLER_DIR": str(handler_dir)}
    log = ARTIFACTS / "celery-alarm-tasks.log"
    offset = log.stat().st_size if log.exists() else 0
    monkeypatch.setitem(outbox.app.conf, "broker_write_url", redis.url)
    monkeypatch.setattr(outbox, "_local", threading.local())  # connections to the new URL
    process = start_worker(env, name="alarm-tasks", include="tests.event_handlers")
    try:
        yield {"log": lambda: log.read_text(errors="replace")[offset:]}
    finally:
        stop_process(process)
        redis.stop()


def handled_by(monkeypatch: pytest.MonkeyPatch, event_type: type[portal_events.Event], task: str) -> None:
    """This test's handler instead of the ones the apps subscribed."""
    monkeypatch.setitem(portal_events._subscribers, event_type, [task])


def test_an_alarm_raised_twice_at_once_opens_exactly_one_ticket_from_a_task(
    worker: dict[str, Any], fleet_a: Installed, hot_rule: AlarmRule
) -> None:
    def raise_it() -> Alarm | None:
        with transaction.atomic():  # as an ingest batch does
            return raise_alarm(fleet_a, hot_rule)

    raised = at_once(raise_it, 2)
    (alarm,) = [a for a in raised if a is not None]  # one alarm: the unique index refused the twin
    # And the same event delivered twice more (a relay that died after publishing, say).
    with transaction.atomic():
        events.record(events.AlarmRaised(alarm_id=str(alarm.pk)))
        events.record(events.AlarmRaised(alarm_id=str(alarm.pk)))

    # Three handlings: one opened the ticket, the other two commented on it.
    comments = TicketEvent.objects.filter(kind="comment", body__startswith="Alarm raised")
    wait_until(lambda: comments.count() >= 2, "three handlings")
    ticket = Ticket.objects.get()
    assert (ticket.source, ticket.asset_id, ticket.alarm_key) == (Source.ALARM, fleet_a.asset.pk, alarm.key)
    wait_until(lambda: not OutboxMessage.objects.exists(), "the outbox to empty")
    assert comments.count() == 2


def test_a_failing_handler_is_retried_by_the_worker(
    worker: dict[str, Any], fleet_a: Installed, hot_rule: AlarmRule, monkeypatch: pytest.MonkeyPatch
) -> None:
    handled_by(monkeypatch, events.AlarmRaised, "tests.flaky_alarm_handler")
    alarm = raise_alarm(fleet_a, hot_rule)
    assert alarm is not None

    wait_until(lambda: Ticket.objects.exists(), "the retried handler's ticket")
    log = worker["log"]()
    assert "RuntimeError('the first attempt fails')" in log
    assert "tests.flaky_alarm_handler" in log
    assert "retry: Retry in" in log
    assert Ticket.objects.get().alarm_key == alarm.key


def test_raising_an_alarm_does_not_wait_for_its_handlers(
    worker: dict[str, Any],
    handler_dir: Path,
    fleet_a: Installed,
    hot_rule: AlarmRule,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    handled_by(monkeypatch, events.AlarmRaised, "tests.blocking_alarm_handler")
    started = time.monotonic()
    with transaction.atomic():  # an ingest batch's transaction: its commit publishes the event
        alarm = raise_alarm(fleet_a, hot_rule)
    took = time.monotonic() - started
    assert alarm is not None
    try:
        wait_until(lambda: (handler_dir / f"{alarm.pk}.started").exists(), "the handler to start")
        assert took < 0.5, took  # the handler blocks for up to a minute
        assert not OutboxMessage.objects.exists()  # published on commit
    finally:
        (handler_dir / f"{alarm.pk}.release").touch()


def test_an_alarm_in_an_ingest_burst_opens_exactly_one_ticket_from_a_task(
    live_worker: Any, asgi_server: str, fleet_a: Installed, hot_rule: AlarmRule
) -> None:
    """Four senders at once for one device, every reading over the threshold: the ingest
    worker raises the alarm once, and a task (not the ingest worker) opens its one ticket."""
    start = timezone.now() - timedelta(minutes=30)
    readings = [
        {"seq": seq, "ts": (start + timedelta(seconds=5 * seq)).isoformat(), "status": "ok",
         "metrics": {"temp_c": 97.0, "run_hours": round(seq * 0.01, 2)}}
        for seq in range(200)
    ]  # fmt: skip
    parts = [[readings[i : i + 5] for i in range(first, 200, 20)] for first in (0, 5, 10, 15)]
    codes = at_once(lambda: [post_ingest(asgi_server, fleet_a.token, chunk) for chunk in parts.pop()], 4)
    assert {code for part in codes for code in part} == {202}

    wait_until(lambda: not IngestInbox.objects.exists(), "the burst to be stored", timeout=60)
    wait_until(lambda: Ticket.objects.exists(), "the alarm's ticket")
    wait_until(lambda: not OutboxMessage.objects.exists(), "the outbox to empty")
    (alarm,) = Alarm.objects.filter(asset=fleet_a.asset)
    ticket = Ticket.objects.get()
    assert (ticket.source, ticket.alarm_key, ticket.priority) == (Source.ALARM, alarm.key, "P1")
