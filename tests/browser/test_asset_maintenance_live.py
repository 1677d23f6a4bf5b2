"""The asset page's "Maintenance" card follows `maintenance.changed`: a window planned over the
machine appears, reads "In progress" when it begins and goes when it ends, with nobody acting
and no reload (docs/maintenance.md "When a window begins or ends"); meanwhile the heading wears
the overview's "In maintenance" badge and the machine's active alarm its "in maintenance" mark;
another customer's window reaches neither the socket nor the card. Real beat, worker, ASGI
server and Chromium."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from fleet import alarms, windows
from fleet.models import AssetModel
from portal.models import Customer, User
from tests.browser.test_live_consistency import open_live
from tests.browser.test_live_gaps import in_a_thread
from tests.fleet.conftest import install
from tests.fleet.test_windows_clock import clock_beat, fresh_cursor
from tests.integration import LAPTOP, PHONE, assert_fits, on_screen, screenshot, watch_console_errors

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]
__all__ = ["clock_beat", "fresh_cursor"]  # fixtures: the beat, and no swept instant left over

TOLD = "window.__told = []; Fleetport.live.on('maintenance.changed', m => window.__told.push(m.window))"


def test_the_asset_card_follows_its_window_and_not_another_customers(
    page: Any, asgi_server: str, clock_beat: None, viewer_a: User, support: User, customer_a: Customer,
    customer_b: Customer, compressor: AssetModel,
) -> None:  # fmt: skip
    mine = install(customer_a, compressor, "LIVE-CARD-A1")
    theirs = install(customer_b, compressor, "LIVE-CARD-B1")
    alarms.alarm_raise(asset=mine.asset, key=alarms.DEVICE_FAULT, kind="device_fault", severity="critical",
                       message="LIVE-CARD-A1 reports a fault", at=timezone.now())  # fmt: skip
    errors = watch_console_errors(page.context)
    open_live(page, asgi_server, viewer_a, f"/fleet/assets/{mine.asset.pk}/")
    card, badge = "#asset-windows", "#asset-maintenance [data-maintenance]"
    marked = '#asset-alarms [data-testid="alarm-in-maintenance"]'
    served = page.text_content(card)
    assert page.locator(badge).count() == 0
    assert page.locator(marked).count() == 0
    page.evaluate("window.__noReload = 1")
    page.evaluate(TOLD)
    # Far enough ahead that the planned row is seen before it begins on a loaded machine.
    start = timezone.now() + timedelta(seconds=8)
    end = start + timedelta(seconds=8)
    planned: dict[str, Any] = {}

    def plan() -> None:  # in a thread: Playwright's event loop holds this one
        try:
            for name, customer, installed in (("theirs", customer_b, theirs), ("mine", customer_a, mine)):
                planned[name] = windows.window_plan(
                    actor=support,
                    customer=customer,
                    title=f"Service {name}",
                    starts_at=start,
                    ends_at=end,
                    assets=[installed.asset],
                )
        finally:
            connection.close()  # the thread's own: else it outlives the test database

    in_a_thread(plan)
    row = f'{card} [data-window-id="{planned["mine"].pk}"]'
    page.wait_for_selector(row, timeout=10_000)  # planned: shown, not begun
    assert "In progress" not in page.text_content(row)

    page.wait_for_selector(f"{row} .badge:text('In progress')", timeout=20_000)
    assert timezone.now() >= start
    page.wait_for_selector(badge, timeout=5_000)  # the heading's badge, as the overview's row
    assert page.text_content(badge) == "In maintenance"
    page.wait_for_selector(marked, timeout=5_000)  # active before the window began: marked now
    for screen in (LAPTOP, PHONE):
        on_screen(page, screen)
        assert_fits(page)
        assert page.locator(badge).is_visible()
    screenshot(page, "live-asset-window-begun")
    page.wait_for_selector(row, state="detached", timeout=20_000)
    assert timezone.now() >= end
    page.wait_for_selector(badge, state="detached", timeout=5_000)
    assert page.locator(marked).count() == 1  # the end unmarks nothing (docs/maintenance.md)
    assert errors == []
    assert page.text_content(card) == served  # back as it was served
    assert page.evaluate("window.__noReload") == 1
    told = page.evaluate("window.__told")
    assert str(planned["mine"].pk) in told
    assert str(planned["theirs"].pk) not in told
    assert "Service theirs" not in page.content()
