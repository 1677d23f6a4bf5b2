"""The fleet overview's "In maintenance" badge follows the clock: it appears when a window
begins and goes when it ends, with nobody acting and no reload (the beat sweep's
`maintenance.changed`, docs/maintenance.md "When a window begins or ends"); the alarm centre
marks the alarms the window took in (`alarm.maintenance`). Real beat, worker, ASGI server and
Chromium."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from fleet import windows
from fleet.models import AssetModel
from portal.models import Customer, User
from tests.browser.test_live_consistency import open_live
from tests.browser.test_live_gaps import in_a_thread
from tests.fleet.conftest import install
from tests.fleet.test_windows import fault
from tests.fleet.test_windows_clock import clock_beat, fresh_cursor
from tests.integration import screenshot

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]
__all__ = ["clock_beat", "fresh_cursor"]  # fixtures: the beat, and no swept instant left over


def test_the_overview_badge_comes_and_goes_with_the_window_without_a_reload(
    page: Any, asgi_server: str, clock_beat: None, viewer_a: User, support: User, customer_a: Customer,
    compressor: AssetModel,
) -> None:  # fmt: skip
    mine = install(customer_a, compressor, "LIVE-CLOCK-1")
    open_live(page, asgi_server, viewer_a, "/fleet/")
    badge = f'tr[data-asset-id="{mine.asset.pk}"] [data-maintenance]'
    page.evaluate("window.__noReload = 1")
    start = timezone.now() + timedelta(seconds=3)
    end = start + timedelta(seconds=4)

    def plan() -> None:  # in a thread: Playwright's event loop holds this one
        try:
            windows.window_plan(actor=support, customer=customer_a, title="Service", starts_at=start,
                                ends_at=end, assets=[mine.asset])  # fmt: skip
        finally:
            connection.close()  # the thread's own: else it outlives the test database

    in_a_thread(plan)
    assert page.locator(badge).count() == 0  # planned, not begun

    page.wait_for_selector(badge, timeout=20_000)
    assert timezone.now() >= start
    screenshot(page, "live-overview-window-begun")
    page.wait_for_selector(badge, state="detached", timeout=20_000)
    assert timezone.now() >= end
    assert page.evaluate("window.__noReload") == 1


def test_the_alarm_centre_marks_an_alarm_the_window_takes_in_without_a_reload(
    page: Any, asgi_server: str, clock_beat: None, viewer_a: User, support: User, customer_a: Customer,
    compressor: AssetModel,
) -> None:  # fmt: skip
    mine = install(customer_a, compressor, "LIVE-CLOCK-2")
    alarm = fault(mine.asset, timezone.now())
    open_live(page, asgi_server, viewer_a, "/alarms/")
    row = f'tr[data-alarm-id="{alarm.pk}"]'
    badge = f'{row} [data-testid="alarm-in-maintenance"]'
    page.wait_for_selector(row)
    assert page.locator(badge).count() == 0
    page.evaluate("window.__noReload = 1")
    start = timezone.now() + timedelta(seconds=3)

    def plan() -> None:  # in a thread: Playwright's event loop holds this one
        try:
            windows.window_plan(actor=support, customer=customer_a, title="Service", starts_at=start,
                                ends_at=start + timedelta(minutes=5), assets=[mine.asset])  # fmt: skip
        finally:
            connection.close()

    in_a_thread(plan)
    assert page.locator(badge).count() == 0  # planned, not begun
    page.wait_for_selector(badge, timeout=20_000)
    assert timezone.now() >= start
    assert page.evaluate("window.__noReload") == 1
    live = page.inner_text(row)
    screenshot(page, "live-alarm-centre-window-begun")
    page.reload()
    assert page.inner_text(row) == live  # the badge as the server draws it
