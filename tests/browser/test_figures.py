"""One way of writing figures and dates: what static/js/format.js writes in the browser is,
string for string, what portal/formatting.py writes on the server, in en, de-DE and fr-FR (and,
for dates, two time zones across their DST changes); and the pages whose figures move live
write them the same way after a live update."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from billing import metering, services
from billing.invoicing import bill_period
from billing.models import Contract, Invoice
from portal import formatting
from portal.models import User
from tests.billing_fixtures import usage
from tests.browser.chart_checks import assert_titles_clear
from tests.factories import PASSWORD
from tests.fleet_fixtures import Installed
from tests.integration import SCREENS, assert_fits, login, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

# (function, arguments) as both sides take them; amounts as the API sends them: decimal strings.
CASES: list[tuple[str, list[Any]]] = [
    ("money", ["11539.385", "EUR"]),  # half up: .39 (Babel alone: .38)
    ("money", ["-1234.5", "USD"]),
    ("money", ["0", "EUR"]),
    ("money", ["1234567.891", "CHF"]),  # CLDR currency spacing: CHF\u00a01,234,567.89
    ("money", ["-5", "CHF"]),
    ("money", ["3", "SEK"]),
    ("money", ["1234.5", "JPY"]),  # no minor unit
    ("moneyPlain", ["1234567.005", "EUR"]),
    ("moneyPlain", ["-0.005", "USD"]),
    ("quantity", ["1356.345", "h"]),
    ("quantity", ["5000.4", "cycles"]),
    ("quantity", ["10.05", "kWh"]),
    ("quantity", ["1234.5", "m³"]),
    ("quantity", ["12.345", ""]),
    ("quantity", [1.005, "bar"]),  # a reading as JSON carries it: a float, its shortest digits
    ("quantity", [71.5, "°C"]),
    ("reading", [7.4, "bar"]),
    ("reading", [-0.05, "kW"]),
    ("percent", ["99.954"]),
    ("percent", ["100.0000"]),
    ("percent", ["6.25"]),
    ("price", ["0.185000", "EUR"]),
    ("price", ["1200", "EUR"]),
    ("number", ["1234567", 0]),
]
SERVER: dict[str, Callable[..., str]] = {
    "money": formatting.money,
    "moneyPlain": formatting.money_plain,
    "quantity": formatting.quantity,
    "reading": formatting.reading,
    "percent": formatting.percent,
    "price": formatting.price,
    "number": formatting.number,
}
LOCALES = ["en", "de-DE", "fr-FR"]


def test_the_browser_writes_every_figure_as_the_server_does(
    page: Any, asgi_server: str, finance: User
) -> None:
    login(page, asgi_server, finance.email, PASSWORD)
    page.wait_for_url(f"{asgi_server}/")
    for tag in LOCALES:
        User.objects.filter(pk=finance.pk).update(locale=tag)
        page.goto(f"{asgi_server}/")
        assert page.evaluate("() => window.Fleetport.format.locale") == tag
        browser = page.evaluate(
            """(cases) => cases.map(([name, args]) => window.Fleetport.format[name].apply(null, args))""",
            CASES,
        )
        with formatting.override(tag):
            server = [SERVER[name](*args) for name, args in CASES]
        assert browser == server, json.dumps(
            [(c, b, s) for c, b, s in zip(CASES, browser, server, strict=True) if b != s], ensure_ascii=False
        )
        # One kind of space in every figure (ICU and Babel disagree on U+202F for fr).
        assert all("\u202f" not in text and " " not in text for text in browser)
    assert "11\u00a0539,39\u00a0€" in browser  # fr-FR, the last locale


# Moments as live messages carry them (isoformat of aware UTC datetimes) and dates as the API
# sends them. Each zone's DST changes of 2026 on both sides: Berlin 29 Mar / 25 Oct 01:00 UTC,
# New York 8 Mar 07:00 UTC / 1 Nov 06:00 UTC; and a moment whose local date differs from UTC's.
MOMENTS = [
    "2026-03-29T00:59:59+00:00",
    "2026-03-29T01:00:00+00:00",
    "2026-10-25T00:59:59.999999+00:00",
    "2026-10-25T01:00:00+00:00",
    "2026-03-08T06:59:00+00:00",
    "2026-03-08T07:00:00+00:00",
    "2026-11-01T05:30:00+00:00",
    "2026-11-01T06:30:00+00:00",
    "2026-12-31T23:30:00+00:00",
    "2027-01-01T04:00:00Z",
    "2026-12-07T07:47:16.123+00:00",
]
DAYS = ["2026-12-07", "2027-01-01", "2026-03-29"]
DATE_FUNCTIONS: dict[str, Callable[..., str]] = {
    "when": formatting.when,
    "whenSeconds": formatting.when_seconds,
    "day": formatting.day,
    "dayWeekday": formatting.day_weekday,
}
ZONES = ["Europe/Berlin", "America/New_York"]


def test_the_browser_writes_every_date_as_the_server_does(page: Any, asgi_server: str, finance: User) -> None:
    cases = [(name, value) for name in DATE_FUNCTIONS for value in MOMENTS + DAYS]
    login(page, asgi_server, finance.email, PASSWORD)
    page.wait_for_url(f"{asgi_server}/")
    seen = []
    for zone in ZONES:
        for tag in LOCALES:
            User.objects.filter(pk=finance.pk).update(locale=tag, time_zone=zone)
            page.goto(f"{asgi_server}/")
            assert page.evaluate("() => window.Fleetport.format.timeZone") == zone
            browser = page.evaluate(
                "(cases) => cases.map(([name, value]) => window.Fleetport.format[name](value))", cases
            )
            with formatting.override(tag), timezone.override(ZoneInfo(zone)):
                server = [DATE_FUNCTIONS[name](value) for name, value in cases]
            differ = [(c, b, s) for c, b, s in zip(cases, browser, server, strict=True) if b != s]
            assert browser == server, json.dumps(differ, ensure_ascii=False)
            seen.extend(browser)
    # The DST edge, written in local time on either side of the change (Berlin, en first):
    assert "Oct 25, 2026, 02:59:59" in seen
    assert "Oct 25, 2026, 02:00:00" in seen
    assert "Mar 8, 2026, 01:59" in seen  # New York
    assert "Mar 8, 2026, 03:00" in seen
    assert "1 janv. 2027, 00:30" in seen  # Berlin, fr-FR: already next year there
    assert "31. Dez. 2026, 18:30" in seen  # New York, de-DE
    assert "Dec 7, 2026" in seen  # a date alone is that day in every zone
    assert "lun. 7 déc. 2026" in seen
    assert not any("\u202f" in text for text in seen)


def test_live_usage_figures_read_as_the_server_wrote_them(
    page: Any, asgi_server: str, viewer_a: User, contract_a: Contract, fleet_a: Installed
) -> None:
    """contract-usage.js rewrites the usage table from the API on load: every figure it writes
    is the one the server put there, in the user's locale (de-DE here)."""
    User.objects.filter(pk=viewer_a.pk).update(locale="de-DE")
    now = timezone.now()
    period = metering.period_containing(now, contract_a.customer.time_zone)
    hour = max(period.start, now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=1))
    usage(fleet_a.asset, hour, "1234.567")
    usage(fleet_a.asset, hour, "1500.04", metric="energy_kwh")
    login(page, asgi_server, viewer_a.email, PASSWORD)
    page.wait_for_url(f"{asgi_server}/")
    page.route("**/api/v1/contracts/*/usage/*", lambda route: route.abort())  # the server's text only
    page.goto(f"{asgi_server}/billing/contracts/{contract_a.pk}/")
    # The projection moves with the clock between two loads; what was used so far does not.
    fields = "#usage [data-field]:not([data-field^='projected'])"
    served = page.eval_on_selector_all(fields, "(els) => els.map((e) => [e.dataset.field, e.textContent])")
    page.unroute("**/api/v1/contracts/*/usage/*")
    page.reload()
    page.wait_for_selector('[data-testid="usage-chart"] .main-svg')
    page.wait_for_function(
        """() => document.querySelector('tr[data-metric="run_hours"] [data-field="quantity"]')
               .textContent === '1.234,57\u00a0h'"""
    )
    live = page.eval_on_selector_all(fields, "(els) => els.map((e) => [e.dataset.field, e.textContent])")
    assert live == served
    assert ["quantity", "1.500,0\u00a0kWh"] in live
    for viewport in SCREENS:
        page.set_viewport_size(viewport)
        page.reload()
        page.wait_for_selector('[data-testid="usage-chart"] .main-svg')
        assert_fits(page)
        assert assert_titles_clear(page, viewport) >= 1  # Plotly's toolbar covers no title
        screenshot(page, f"figures-contract-usage-de-{viewport['width']}")


def test_invoice_list_revenue_and_lines_fit_a_phone(
    page: Any, asgi_server: str, finance: User, contract_a: Contract, fleet_a: Installed
) -> None:
    usage(fleet_a.asset, datetime(2026, 10, 3, 10, tzinfo=UTC), "1329.882")
    usage(fleet_a.asset, datetime(2026, 10, 4, 10, tzinfo=UTC), "1234.56", metric="energy_kwh")
    bill_period("2026-10", now=datetime(2026, 11, 5, tzinfo=UTC))
    invoice = services.invoice_finalize(actor=None, invoice=Invoice.objects.get(contract=contract_a))
    services.credit_note_create(actor=None, invoice=invoice, amount=Decimal("10"), reason="Goodwill")
    login(page, asgi_server, finance.email, PASSWORD)
    page.wait_for_url(f"{asgi_server}/")
    for path, ready, name in (
        (f"/billing/invoices/{invoice.pk}/", "#lines", "figures-invoice"),
        ("/billing/invoices/", "#invoice-table", "figures-invoice-list"),
        ("/billing/revenue/", "#revenue-chart-EUR .main-svg", "figures-revenue"),
    ):
        for viewport in SCREENS:
            page.set_viewport_size(viewport)
            page.goto(f"{asgi_server}{path}")
            page.wait_for_selector(ready)
            assert_fits(page, path)
            assert_titles_clear(page, (path, viewport))
            screenshot(page, f"{name}-{viewport['width']}")
    page.goto(f"{asgi_server}/billing/invoices/{invoice.pk}/")
    text = page.inner_text("#lines").replace("\u00a0", " ")
    assert "1,329.88 h" in text  # billed at the unit's precision, and shown so
    assert "100.00 × 31/31 days = 100.00" in text
