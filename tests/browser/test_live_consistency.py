"""Live pages write what the server writes, and apply every message their server-rendered parts
show: a live update never changes how a date or a figure reads (the text after it is the text a
reload gives), and a new machine's charts, usage and status history fill without a reload.
Heartbeats go through the real ingest endpoint, a real Celery worker and the ASGI server."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from billing.models import InvoiceRun
from billing.runs import publish_progress
from fleet.models import Asset, AssetModel
from portal.models import Customer, User
from tests.browser.chart_checks import assert_titles_clear
from tests.factories import PASSWORD
from tests.fleet.conftest import install
from tests.fleet_fixtures import Installed
from tests.integration import PHONE, login, post_ingest, screenshot, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

READINGS = {"temp_c": 71.5, "pressure_bar": 7.4}


def heartbeat(
    base: str, token: str, seq: int, status: str = "ok", at: datetime | None = None, **metrics: float
) -> None:
    body = {"seq": seq, "ts": (at or datetime.now(UTC)).isoformat(), "status": status, "metrics": metrics}
    assert post_ingest(base, token, body) == 202


def texts(page: Any, selectors: list[str]) -> list[str]:
    return [page.locator(s).first.text_content().strip() for s in selectors]


def as_user(user: User, locale: str, zone: str) -> None:
    User.objects.filter(pk=user.pk).update(locale=locale, time_zone=zone)


@pytest.fixture
def mine(customer_a: Customer, compressor: AssetModel) -> Installed:
    """A new machine of customer A, never seen yet."""
    return install(customer_a, compressor, "LIVE-SAME-1")


def open_live(page: Any, base: str, user: User, path: str) -> None:
    """`user` signed in on `path`, its live socket connected."""
    login(page, base, user.email, PASSWORD)
    page.wait_for_url(f"{base}/")
    page.goto(f"{base}{path}")
    page.wait_for_selector('[data-live-state="live"]')


def test_the_fleet_overview_reads_the_same_before_and_after_a_live_update(
    page: Any, asgi_server: str, live_worker: Any, viewer_a: User, mine: Installed
) -> None:
    as_user(viewer_a, "de-DE", "Europe/Berlin")
    heartbeat(asgi_server, mine.token, 1, **READINGS)
    wait_until(lambda: Asset.objects.get(pk=mine.asset.pk).last_seen_at is not None, "first heartbeat stored")
    open_live(page, asgi_server, viewer_a, "/fleet/")
    row = f'tr[data-asset-id="{mine.asset.pk}"]'
    cells = [f'{row} [data-field="last-seen"]', f'{row} [data-field="values"]']
    served = texts(page, cells)
    stamp = page.get_attribute(f"{cells[0]} time", "datetime")

    time.sleep(1.1)  # a last-seen one second later: the seconds differ
    heartbeat(asgi_server, mine.token, 2, **READINGS)
    page.wait_for_function(
        "([cell, stamp]) => document.querySelector(cell + ' time').getAttribute('datetime') !== stamp",
        arg=[cells[0], stamp],
        timeout=20_000,
    )
    live = texts(page, cells)
    assert live[1] == served[1]  # the same readings read the same: "7,40 bar" stays "7,40 bar"
    assert "Temperature" in live[1]  # each value has its name
    assert "71,5\u00a0°C" in live[1]
    assert "Pressure\u00a07,40\u00a0bar" in live[1].replace(" ", "\u00a0")
    page.reload()
    assert texts(page, cells) == live  # what the live update wrote is what the server writes
    assert "Dez. 2026" in live[0]
    screenshot(page, "live-overview-de")


def test_a_new_machines_asset_page_fills_without_a_reload(
    page: Any, asgi_server: str, live_worker: Any, viewer_a: User, mine: Installed
) -> None:
    as_user(viewer_a, "fr-FR", "America/New_York")
    open_live(page, asgi_server, viewer_a, f"/fleet/assets/{mine.asset.pk}/")
    page.wait_for_selector('[data-chart="temp_c"][data-points="0"]')
    assert "No status changes yet" in page.inner_text("#asset-history")
    page.evaluate("window.__noReload = 1")

    now = datetime.now(UTC)
    heartbeat(
        asgi_server, mine.token, 1, at=now - timedelta(minutes=2), run_hours=100.0, energy_kwh=10, **READINGS
    )
    heartbeat(
        asgi_server,
        mine.token,
        2,
        at=now - timedelta(minutes=1),
        run_hours=100.5,
        energy_kwh=12.25,
        **READINGS,
    )
    page.wait_for_function(
        "() => Number(document.querySelector('[data-chart=\"temp_c\"]').dataset.points) >= 1", timeout=20_000
    )
    page.wait_for_function(
        "() => Number(document.querySelector('[data-usage-chart=\"run_hours\"]').dataset.points) >= 1",
        timeout=20_000,
    )
    page.wait_for_function("() => document.querySelectorAll('#asset-history li').length >= 1", timeout=20_000)
    assert page.evaluate("window.__noReload") == 1
    parts = [
        '.value[data-metric="pressure_bar"] [data-value]',
        '.value[data-metric="temp_c"] [data-value]',
        "#asset-last-seen",
        "#asset-history",
        '[data-usage-total="run_hours"]',
    ]
    live = texts(page, parts)
    assert live[0] == "7,40"
    assert "0,50\u00a0h" in live[4]
    page.reload()
    page.wait_for_selector('[data-usage-chart="run_hours"][data-points]')
    assert texts(page, parts) == live

    page.set_viewport_size(PHONE)
    page.wait_for_timeout(300)  # Plotly's responsive redraw
    assert assert_titles_clear(page, "asset page on a phone") >= 4
    screenshot(page, "live-asset-new-machine-390")


def test_the_alarm_centre_shows_a_first_alarm_in_place_of_no_alarm(
    page: Any, asgi_server: str, live_worker: Any, viewer_a: User, mine: Installed
) -> None:
    open_live(page, asgi_server, viewer_a, "/alarms/")
    assert "No active alarm" in page.inner_text("main")

    heartbeat(asgi_server, mine.token, 1, status="fault", **READINGS)
    page.wait_for_selector("#alarm-table tr[data-alarm-id]", timeout=20_000)
    main = page.inner_text("main")
    assert "No active alarm" not in main
    assert page.locator(".new-alarms").is_hidden()  # nothing to "show": it is shown
    raised = page.locator("#alarm-table tr[data-alarm-id] time").first.text_content()
    page.reload()
    assert page.locator("#alarm-table tr[data-alarm-id] time").first.text_content() == raised


def test_an_invoice_run_started_elsewhere_reads_like_the_others(
    page: Any, asgi_server: str, finance: User
) -> None:
    as_user(finance, "en-GB", "Europe/Berlin")
    InvoiceRun.objects.create(period="2026-09", started_by=finance)
    open_live(page, asgi_server, finance, "/billing/runs/")
    started = "#runs tbody tr:nth-child(%d) [data-field='started']"
    served = page.text_content(started % 1)

    run = InvoiceRun.objects.create(period="2026-10", started_by=finance)
    # What the run's task publishes, through the real channel layer (from a thread of its own:
    # Playwright's event loop holds this one).
    sender = threading.Thread(target=publish_progress, args=(run,))
    sender.start()
    sender.join()
    page.wait_for_selector(f'tr[data-run="{run.pk}"]', timeout=20_000)
    live = page.text_content(started % 1)
    page.reload()
    assert page.text_content(started % 1) == live  # the new run's start, as the server writes it
    assert page.text_content(started % 2) == served
    assert len(live) == len(served)  # one style on the page: "7 Dec 2026, 15:58" for both
