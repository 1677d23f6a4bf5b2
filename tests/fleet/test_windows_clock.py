"""Windows that begin or end on their own (the clock passes a start or an end, each repetition
of a recurring one) are told to live pages as a user's change is: one `maintenance.changed` to
the window's customer and staff, once per boundary, by the beat sweep
(docs/maintenance.md, "When a window begins or ends")."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from hypothesis import given, settings
from hypothesis import strategies as st

from fleet import alarms, window_sweep, windows
from fleet.maintenance import boundaries, occurrences
from fleet.models import Alarm, MaintenanceWindow, Recurrence, WindowStatus
from portal import redis_conn
from portal.models import Customer, User
from tests.fleet.test_windows import fault
from tests.fleet_fixtures import Installed
from tests.integration import at_once, start_beat, stop_process
from tests.support.test_live_state import _connect, _messages

CHANGED = "maintenance.changed"


@pytest.fixture(autouse=True)
def fresh_cursor() -> Iterator[None]:
    """Each test starts with no swept instant (the suite shares one Redis)."""
    client = redis_conn.client()
    client.delete(window_sweep.SWEPT_KEY)
    yield
    client.delete(window_sweep.SWEPT_KEY)
    client.close()


@pytest.fixture
def clock_beat(service_env: dict[str, str], live_worker: Any, tmp_path: Path) -> Iterator[None]:
    """A real `celery beat` sending the project's schedule, the boundary sweep every second
    (instead of 30 s: a test waits seconds, not minutes), to the real worker."""
    beat = start_beat({**service_env, "MAINTENANCE_SWEEP_SECONDS": "1"}, name="beat-windows",
                      schedule=tmp_path / "beat-schedule")  # fmt: skip
    yield
    stop_process(beat)


def window(customer: Customer, start: datetime, end: datetime, **fields: Any) -> MaintenanceWindow:
    """A window written as it is stored (no service, so nothing is announced for it)."""
    return MaintenanceWindow.objects.create(customer=customer, title="Service", starts_at=start, ends_at=end,
                                            **fields)  # fmt: skip


def changed(got: list[dict[str, Any]]) -> list[str]:
    return [m["window"] for m in got if m["type"] == CHANGED]


@pytest.mark.django_db(transaction=True)
def test_each_boundary_is_told_once_to_its_customer_and_staff_even_when_the_sweep_runs_twice(
    customer_a: Customer, customer_b: Customer, viewer_a: User, viewer_b: User, support: User
) -> None:
    t = timezone.now().replace(microsecond=0)
    mine = window(customer_a, t + timedelta(minutes=10), t + timedelta(minutes=20))
    theirs = window(customer_b, t + timedelta(minutes=10), t + timedelta(minutes=20))
    # Daily for 400 days at the same Berlin wall-clock time: today's begins at t + 30 min.
    berlin = (t + timedelta(minutes=30)).astimezone(ZoneInfo("Europe/Berlin"))
    daily = window(customer_a, (berlin - timedelta(days=400)).astimezone(UTC),
                   (berlin - timedelta(days=400) + timedelta(hours=1)).astimezone(UTC),
                   recurrence=Recurrence.DAILY)  # fmt: skip
    # Never told: not in effect, or no boundary in any sweep below.
    window(customer_a, t + timedelta(minutes=10), t + timedelta(minutes=20), status=WindowStatus.CANCELLED)
    window(customer_a, t + timedelta(minutes=10), t + timedelta(minutes=20), status=WindowStatus.PROPOSED)
    window(customer_a, t - timedelta(days=1), t + timedelta(days=1))

    def sweep(after: timedelta) -> int:
        return window_sweep.window_boundaries_announce(now=t + after)

    async def scenario() -> None:
        a, b, staff = await _connect(viewer_a), await _connect(viewer_b), await _connect(support)
        second = timedelta(seconds=1)
        assert await sync_to_async(sweep)(timedelta(minutes=10) + second) == 2  # both starts
        assert await sync_to_async(sweep)(timedelta(minutes=10) + second) == 0  # the same sweep again
        assert await sync_to_async(sweep)(timedelta(minutes=15)) == 0  # nothing passed meanwhile
        # Two workers at once: one covers the span, the other finds it taken.
        both = await sync_to_async(at_once)(lambda: sweep(timedelta(minutes=20) + second), 2)
        assert sorted(both) == [0, 2]  # both ends, told once
        assert await sync_to_async(sweep)(timedelta(minutes=30) + second) == 1  # today's daily start
        assert await sync_to_async(sweep)(timedelta(minutes=90) + second) == 1  # and its end
        assert changed(await _messages(a)) == [str(mine.pk)] * 2 + [str(daily.pk)] * 2
        assert changed(await _messages(b)) == [str(theirs.pk)] * 2  # B hears of its own only
        assert sorted(changed(await _messages(staff))) == sorted([str(mine.pk), str(theirs.pk)] * 2
                                                                 + [str(daily.pk)] * 2)  # fmt: skip
        for socket in (a, b, staff):
            await socket.disconnect()

    async_to_sync(scenario)()


@pytest.mark.django_db
def test_a_missing_or_unreadable_swept_instant_looks_back_a_minute(customer_a: Customer) -> None:
    t = timezone.now().replace(microsecond=0)
    window(customer_a, t + timedelta(minutes=10), t + timedelta(minutes=20))
    client = redis_conn.client()
    client.set(window_sweep.SWEPT_KEY, "yesterday")
    assert window_sweep.window_boundaries_announce(now=t + timedelta(minutes=11)) == 0  # began 60 s before
    client.delete(window_sweep.SWEPT_KEY)
    assert window_sweep.window_boundaries_announce(now=t + timedelta(minutes=10, seconds=59)) == 1
    assert client.get(window_sweep.SWEPT_KEY) == (t + timedelta(minutes=10, seconds=59)).isoformat().encode()
    client.close()


@pytest.mark.django_db
def test_boundaries_are_the_instants_in_the_range_not_yet_told_by_a_write(
    customer_a: Customer, support: User, fleet_a: Installed
) -> None:
    t = timezone.now().replace(microsecond=0)
    later = window(customer_a, t + timedelta(minutes=10), t + timedelta(minutes=20))
    # Closed early for a moment still to come: that moment is its end, told by the clock.
    windows.window_close_early(actor=support, window=later, at=t + timedelta(minutes=15))
    # An emergency window's start was told by its own write; only its end is the clock's.
    emergency = windows.window_open_emergency(
        actor=support, customer=customer_a, title="Leak", ends_at=t + timedelta(minutes=12),
        assets=[fleet_a.asset],
    )  # fmt: skip
    with CaptureQueriesContext(connection) as queries:
        found = boundaries(t - timedelta(minutes=1), t + timedelta(minutes=30))
    assert len(queries) == 1  # one query, whatever the number of windows and customers
    assert [(w.pk, instants) for w, instants in found] == [
        (emergency.pk, [t + timedelta(minutes=12)]),
        (later.pk, [t + timedelta(minutes=10), t + timedelta(minutes=15)]),
    ]
    assert boundaries(t + timedelta(minutes=15), t + timedelta(minutes=30)) == []  # (since, until]


ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Pacific/Apia"]


@settings(max_examples=200, deadline=None)
@given(
    zone=st.sampled_from(ZONES),
    recurrence=st.sampled_from([Recurrence.DAILY, Recurrence.WEEKLY, Recurrence.MONTHLY]),
    first=st.integers(min_value=0, max_value=18 * 365 * 24 * 60).map(
        lambda minutes: datetime(2008, 1, 1, tzinfo=UTC) + timedelta(minutes=minutes)
    ),
    hours=st.integers(min_value=1, max_value=24 * 40),
    ahead=st.integers(min_value=0, max_value=24 * 365 * 5),
)
def test_skipping_ahead_finds_the_same_repetitions_as_walking_from_the_first(
    zone: str, recurrence: str, first: datetime, hours: int, ahead: int
) -> None:
    span = timedelta(hours=hours)
    repeating = MaintenanceWindow(starts_at=first, ends_at=first + span, recurrence=recurrence)
    start = first + timedelta(hours=ahead)
    end = start + timedelta(days=3)
    walked = [span for span in occurrences(repeating, first, end, zone) if span[1] > start]
    assert list(occurrences(repeating, start, end, zone)) == walked


@pytest.mark.django_db(transaction=True)
def test_a_window_starting_in_two_seconds_is_told_by_the_beat_without_anyone_acting(
    clock_beat: None, customer_a: Customer, fleet_a: Installed, viewer_a: User, viewer_b: User, support: User
) -> None:
    async def scenario() -> None:
        a, b = await _connect(viewer_a), await _connect(viewer_b)
        start = timezone.now() + timedelta(seconds=2)
        planned = await sync_to_async(windows.window_plan)(
            actor=support, customer=customer_a, title="Service", starts_at=start,
            ends_at=start + timedelta(seconds=2), assets=[fleet_a.asset],
        )  # fmt: skip
        told: list[tuple[datetime, str]] = []  # (when it came, window)
        deadline = time.monotonic() + 20
        while len(told) < 3 and time.monotonic() < deadline:  # the plan's own, the start, the end
            if await a.receive_nothing(timeout=0.2):
                continue
            frame = await a.receive_json_from()
            told += [(timezone.now(), w) for w in changed(frame if isinstance(frame, list) else [frame])]
        assert [w for _, w in told] == [str(planned.pk)] * 3
        assert told[0][0] < start <= told[1][0]  # no one acted after planning: the clock told it
        assert planned.ends_at <= told[2][0]
        assert changed(await _messages(a)) == []  # each boundary once
        assert await _messages(b) == []  # customer B hears nothing of A's windows
        for socket in (a, b):
            await socket.disconnect()

    async_to_sync(scenario)()


@pytest.mark.django_db
def test_alarms_active_when_a_window_begins_are_marked_in_maintenance_by_the_sweep(
    fleet_a: Installed, fleet_b: Installed
) -> None:
    t = timezone.now().replace(microsecond=0)
    mine, _theirs = fault(fleet_a.asset, t), fault(fleet_b.asset, t)
    fault(fleet_a.asset, t, key=alarms.OFFLINE)
    alarms.alarm_clear_key(asset=fleet_a.asset, key=alarms.OFFLINE, reason="back")
    # Customer A's whole fleet, from t + 10 min to t + 20 min (written as stored: only the clock tells).
    window(fleet_a.asset.customer, t + timedelta(minutes=10), t + timedelta(minutes=20))

    def marked() -> set[Alarm]:
        return set(Alarm.objects.filter(in_maintenance=True))

    window_sweep.window_boundaries_announce(now=t + timedelta(minutes=9, seconds=59))
    assert marked() == set()  # not begun yet
    assert window_sweep.window_boundaries_announce(now=t + timedelta(minutes=10, seconds=1)) == 1
    assert marked() == {mine}  # active, A's: not B's, not the cleared one
    window_sweep.window_boundaries_announce(now=t + timedelta(minutes=20, seconds=1))
    assert marked() == {mine}  # the end unmarks nothing, as for an alarm raised inside


def entered(got: list[dict[str, Any]]) -> list[str]:
    return [m["alarm"] for m in got if m["type"] == "alarm.maintenance" and m["in_maintenance"] is True]


@pytest.mark.django_db(transaction=True)
def test_alarms_a_window_takes_in_are_told_to_their_own_customer_and_staff_once(
    fleet_a: Installed, fleet_b: Installed, viewer_a: User, viewer_b: User, support: User
) -> None:
    t = timezone.now().replace(microsecond=0)
    mine, theirs = fault(fleet_a.asset, t), fault(fleet_b.asset, t)
    customer_a, customer_b = fleet_a.asset.customer, fleet_b.asset.customer
    window(customer_a, t + timedelta(minutes=10), t + timedelta(minutes=20))
    # B's window begins later, so B's socket would hear A's alarm if it leaked at A's start.
    window(customer_b, t + timedelta(minutes=30), t + timedelta(minutes=40))
    again = window(customer_a, t + timedelta(minutes=50), t + timedelta(minutes=60))

    def sweep(after: timedelta) -> int:
        return window_sweep.window_boundaries_announce(now=t + after)

    async def scenario() -> None:
        a, b, staff = await _connect(viewer_a), await _connect(viewer_b), await _connect(support)
        assert await sync_to_async(sweep)(timedelta(minutes=10, seconds=1)) == 1
        assert entered(await _messages(a)) == [str(mine.pk)]
        assert entered(await _messages(b)) == []  # A's alarm is not B's business
        assert entered(await _messages(staff)) == [str(mine.pk)]
        assert await sync_to_async(sweep)(timedelta(minutes=30, seconds=1)) == 2  # A's end, B's start
        assert entered(await _messages(a)) == []
        assert entered(await _messages(b)) == [str(theirs.pk)]

        # Marked already: a later window of A's, and two calls at once, tell nothing more.
        def enter_again() -> int:
            return alarms.alarms_enter_maintenance(window=again, spans=[(again.starts_at, again.ends_at)])

        assert await sync_to_async(at_once)(enter_again, 2) == [0, 0]
        assert entered(await _messages(a)) == []
        for socket in (a, b, staff):
            await socket.disconnect()

    async_to_sync(scenario)()


@pytest.mark.django_db(transaction=True)
def test_two_windows_beginning_at_once_tell_each_alarm_once(fleet_a: Installed, viewer_a: User) -> None:
    t = timezone.now().replace(microsecond=0)
    mine = fault(fleet_a.asset, t)
    first = window(fleet_a.asset.customer, t, t + timedelta(minutes=10))
    second = window(fleet_a.asset.customer, t, t + timedelta(minutes=10))

    async def scenario() -> None:
        a = await _connect(viewer_a)
        calls = iter([first, second])

        def enter() -> int:
            return alarms.alarms_enter_maintenance(window=next(calls), spans=[(t, t + timedelta(minutes=10))])

        assert sorted(await sync_to_async(at_once)(enter, 2)) == [0, 1]  # one of them marks it
        assert entered(await _messages(a)) == [str(mine.pk)]
        await a.disconnect()

    async_to_sync(scenario)()
