"""The transactional outbox: a task goes to the broker only once its transaction committed, and
stays in the outbox until the broker took it."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Any

import pytest
from django.db import close_old_connections, transaction
from django.utils import timezone
from kombu.exceptions import OperationalError

from fleet import events
from portal import outbox
from portal.models import OutboxMessage
from portal.tasks import user_invite_send
from tests.integration import wait_until

pytestmark = pytest.mark.django_db(transaction=True)


class Sent(list[tuple[str, dict[str, Any]]]):
    down = False


@pytest.fixture
def broker(monkeypatch: pytest.MonkeyPatch) -> Sent:
    """What reaches the broker; `broker.down = True` refuses like a Redis that is not there."""
    sent = Sent()

    def send_task(name: str, *, kwargs: dict[str, Any], **_: Any) -> None:
        if sent.down:
            raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")
        sent.append((name, kwargs))

    monkeypatch.setattr(outbox.app, "send_task", send_task)
    return sent


def test_a_task_goes_out_after_the_commit_and_leaves_no_row(broker: Sent) -> None:
    with transaction.atomic():
        outbox.enqueue(user_invite_send, user_id="u-1")
        assert broker == []  # not before the commit: the worker would not find the user
        assert OutboxMessage.objects.count() == 1
    assert broker == [("portal.user_invite_send", {"user_id": "u-1"})]
    assert not OutboxMessage.objects.exists()


def test_a_rolled_back_transaction_sends_nothing(broker: Sent) -> None:
    def failing_service() -> None:
        with transaction.atomic():
            outbox.enqueue(user_invite_send, user_id="u-1")
            raise RuntimeError("the service failed")

    with pytest.raises(RuntimeError):
        failing_service()
    assert broker == []
    assert not OutboxMessage.objects.exists()


def test_a_broker_outage_keeps_the_row_until_the_relay_gets_it_through(broker: Sent) -> None:
    broker.down = True
    with transaction.atomic():
        outbox.enqueue(user_invite_send, user_id="u-1")  # the caller's commit does not fail
    row = OutboxMessage.objects.get()
    assert (row.attempts, "Connection refused" in row.last_error) == (1, True)
    assert row.due_at > timezone.now()  # backs off: not before a second
    assert outbox.relay() == 0

    OutboxMessage.objects.update(due_at=timezone.now() - timedelta(seconds=1))
    assert outbox.relay() == 0  # still down: two attempts, the next one 2 s later
    row = OutboxMessage.objects.get()
    assert row.attempts == 2
    assert row.due_at > timezone.now() + timedelta(seconds=1)

    broker.down = False
    OutboxMessage.objects.update(due_at=timezone.now())
    assert outbox.relay() == 1
    assert broker == [("portal.user_invite_send", {"user_id": "u-1"})]
    assert not OutboxMessage.objects.exists()


def test_rows_another_transaction_holds_are_skipped_not_waited_for(broker: Sent) -> None:
    broker.down = True
    outbox.enqueue(user_invite_send, user_id="held")
    broker.down = False
    OutboxMessage.objects.update(due_at=timezone.now())
    outbox.enqueue(user_invite_send, user_id="free")
    assert broker == [("portal.user_invite_send", {"user_id": "free"})]
    broker.clear()
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        try:
            with transaction.atomic():
                list(OutboxMessage.objects.select_for_update())
                held.set()
                release.wait(10)
        finally:
            close_old_connections()

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert held.wait(10)
        started = time.monotonic()
        assert outbox.relay() == 0
        assert time.monotonic() - started < 1
    finally:
        release.set()
        holder.join()
    assert outbox.relay() == 1
    assert broker == [("portal.user_invite_send", {"user_id": "held"})]


@pytest.fixture
def coalescer(monkeypatch: pytest.MonkeyPatch) -> outbox._Coalescer:
    """This process's coalescer as new (no publish in the last second)."""
    fresh = outbox._Coalescer()
    monkeypatch.setattr(outbox, "_coalescer", fresh)
    return fresh


def test_coalesced_events_go_out_merged_at_most_once_a_second(broker: Sent, coalescer: Any) -> None:
    with transaction.atomic():
        events.record(events.AssetStatusChanged(asset_ids=["b", "a"]))  # what an ingest batch does
    assert broker == [("billing.assets_reported", {"asset_ids": ["a", "b"]})]  # at once
    started = time.monotonic()
    for ids in (["c"], ["a"]):
        with transaction.atomic():
            events.record(events.AssetStatusChanged(asset_ids=ids))
    assert len(broker) == 1  # not one task per batch
    # The timer's publish: sent, then its rows deleted in the claiming transaction.
    wait_until(lambda: len(broker) == 2 and not OutboxMessage.objects.exists(), "the 2nd publish", timeout=5)
    assert time.monotonic() - started > 0.5  # a second after the first
    assert broker[1] == ("billing.assets_reported", {"asset_ids": ["a", "c"]})


def test_coalesced_rows_a_stopped_process_left_go_with_the_relay(
    broker: Sent, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(outbox._coalescer, "poke", lambda: None)  # stopped before it published
    events.record(events.AssetStatusChanged(asset_ids=["a"]))
    assert broker == []
    assert outbox.relay() == 1
    assert broker == [("billing.assets_reported", {"asset_ids": ["a"]})]


def test_a_large_backlog_of_coalesced_events_goes_in_chunks(broker: Sent, coalescer: Any) -> None:
    ids = [f"{n:05}" for n in range(2500)]
    events.record(events.AssetStatusChanged(asset_ids=ids))
    assert [len(kwargs["asset_ids"]) for _, kwargs in broker] == [1000, 1000, 500]
    assert sorted(i for _, kwargs in broker for i in kwargs["asset_ids"]) == ids
