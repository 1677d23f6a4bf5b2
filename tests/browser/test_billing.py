"""Billing in a real browser: finance runs last month and finalizes; the customer reads usage and bills."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.utils import timezone

from billing import metering, services
from billing.invoicing import bill_period
from billing.models import Contract, Invoice, InvoiceStatus
from billing.runs import invoice_run_start
from portal.models import Customer, User
from tests.billing_fixtures import usage
from tests.factories import PASSWORD
from tests.fleet_fixtures import Installed
from tests.integration import login, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def last_month_usage(installed: Installed) -> metering.Period:
    period = metering.period_containing(timezone.now(), installed.asset.customer.time_zone).previous()
    usage(installed.asset, period.start + timedelta(days=2, hours=8), "40")
    usage(installed.asset, period.start + timedelta(days=3, hours=8), "2.5")
    usage(installed.asset, period.start + timedelta(days=3, hours=9), "1500", metric="energy_kwh")
    usage(installed.asset, timezone.now() - timedelta(hours=2), "3")  # this month so far
    return period


def test_finance_runs_last_month_reviews_and_finalizes(
    page: Any, asgi_server: str, live_worker: Any, finance: User, contract_a: Contract, fleet_a: Installed
) -> None:
    period = last_month_usage(fleet_a)
    login(page, asgi_server, finance.email, PASSWORD)
    page.wait_for_url(f"{asgi_server}/")
    page.goto(f"{asgi_server}/billing/runs/")
    page.wait_for_selector('[data-live-state="live"]')
    page.fill("input[name=period]", period.label)
    page.click('[data-testid="start-run"]')
    page.wait_for_selector(f"text=Invoice run for {period.label} started")
    # The worker's progress arrives over the socket: the row turns to Done without a reload.
    page.wait_for_selector('[data-live-state="live"]')
    page.wait_for_function(
        """() => document.querySelector('tr[data-run] [data-field="status"]').textContent === 'Done'""",
        timeout=30_000,
    )
    assert page.locator('tr[data-run] [data-field="bar"]').get_attribute("value") == "100"
    screenshot(page, "billing-invoice-runs")

    invoice = Invoice.objects.get(contract=contract_a, period=period.label)
    page.goto(f"{asgi_server}/billing/invoices/?period={period.label}")
    page.click("#invoice-table a")
    page.wait_for_selector("#lines")
    assert "Run hours" in page.inner_text("#lines")
    assert "tier 1" in page.inner_text("#lines")  # the graduated energy breakdown
    screenshot(page, "billing-invoice-draft")
    page.click('[data-testid="finalize"]')
    page.click('[data-testid="confirm-ok"]')  # static/js/confirm.js asks first
    page.wait_for_selector("text=Finalized as INV-")
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.FINALIZED
    assert page.inner_text('[data-testid="invoice-status"]') == "Finalized"
    pdf = page.request.get(f"{asgi_server}/api/v1/invoices/{invoice.pk}/pdf/")
    assert pdf.status == 200
    assert pdf.body()[:5] == b"%PDF-"
    screenshot(page, "billing-invoice-finalized")


def test_a_run_started_elsewhere_gets_its_row_without_a_reload(
    page: Any, asgi_server: str, live_worker: Any, finance: User, contract_a: Contract, fleet_a: Installed
) -> None:
    """A colleague's run (or the monthly beat task) appears on an open runs page; the page never
    reloads for it, which would cancel a form the user is submitting at that moment."""
    period = last_month_usage(fleet_a)
    login(page, asgi_server, finance.email, PASSWORD)
    page.wait_for_url(f"{asgi_server}/")
    page.goto(f"{asgi_server}/billing/runs/")
    page.wait_for_selector('[data-live-state="live"]')
    assert page.is_visible("#no-runs")
    page.evaluate("window.__noReload = 1")

    run = invoice_run_start(actor=finance, period=period.label)
    row = f'tr[data-run="{run.pk}"]'
    page.wait_for_function(
        f"""() => document.querySelector('{row} [data-field="status"]')?.textContent === 'Done'""",
        timeout=30_000,
    )
    assert page.evaluate("window.__noReload") == 1
    assert page.inner_text(f'{row} [data-field="period"]') == period.label
    assert page.inner_text(f'{row} [data-field="by"]') == finance.email
    assert page.inner_text(f'{row} [data-field="created"]') == "1"
    assert not page.is_visible("#no-runs")


def test_a_customer_admin_reads_usage_projection_and_the_hours_behind_a_line(
    page: Any, asgi_server: str, admin_a: User, contract_a: Contract, fleet_a: Installed
) -> None:
    period = last_month_usage(fleet_a)
    bill_period(period.label)
    invoice = services.invoice_finalize(actor=None, invoice=Invoice.objects.get(contract=contract_a))

    login(page, asgi_server, admin_a.email, PASSWORD)
    page.wait_for_url(f"{asgi_server}/")
    assert "Usage this month" in page.content()
    page.goto(f"{asgi_server}/billing/contracts/{contract_a.pk}/")
    page.wait_for_selector('[data-testid="usage-chart"] .main-svg')
    assert page.locator('[data-testid="usage-chart"]').count() == 2  # run hours and energy
    assert page.inner_text('tr[data-metric="run_hours"] [data-field="quantity"]') == "3.00\u00a0h"
    projected = Decimal(page.inner_text('.stat [data-field="projected_subtotal"]').replace(",", ""))
    assert projected >= Decimal("100.00")  # at least the period fee
    screenshot(page, "billing-contract-usage")

    page.goto(f"{asgi_server}/billing/invoices/{invoice.pk}/")
    line = invoice.lines.get(metric="run_hours")
    assert page.evaluate("() => typeof window.Plotly") == "undefined"  # loaded when a chart opens
    page.click(f'[data-provenance="{line.pk}"]')
    page.wait_for_selector(f"#provenance-{line.pk} .main-svg")
    # The title is a heading above the chart (Fleetport.chartTitle), in the line's row.
    title = page.inner_text(f"#provenance-row-{line.pk}").replace("\u00a0", " ")
    assert "42.50 h in 2 metered hours" in title  # Fleetport.format: h at two decimals
    screenshot(page, "billing-invoice-provenance")
    page.set_viewport_size({"width": 390, "height": 844})
    screenshot(page, "billing-invoice-phone")


def test_usage_to_date_moves_live_as_heartbeats_arrive(
    page: Any, asgi_server: str, live_worker: Any, viewer_a: User, contract_a: Contract, fleet_a: Installed
) -> None:
    from tests.browser.test_fleet_live import post_counter

    login(page, asgi_server, viewer_a.email, PASSWORD)
    page.wait_for_url(f"{asgi_server}/")
    page.goto(f"{asgi_server}/billing/contracts/{contract_a.pk}/")
    page.wait_for_selector('[data-live-state="live"]')
    page.wait_for_selector('[data-testid="usage-chart"] .main-svg')
    cell = 'tr[data-metric="run_hours"] [data-field="quantity"]'
    assert page.inner_text(cell) == "0.00\u00a0h"
    page.evaluate("window.__noReload = 1")
    assert post_counter(asgi_server, fleet_a.token, 1, 100.0) == 202
    assert post_counter(asgi_server, fleet_a.token, 2, 104.5) == 202  # 4.5 run hours
    page.wait_for_function(
        f"() => document.querySelector('{cell}').textContent === '4.50\u00a0h'", timeout=20_000
    )
    assert page.evaluate("window.__noReload") == 1
    screenshot(page, "billing-contract-usage-live")


def test_a_failed_run_shows_why_live_and_finance_retries_it(
    page: Any, asgi_server: str, live_worker: Any, finance: User, contract_a: Contract, fleet_a: Installed
) -> None:
    period = last_month_usage(fleet_a)
    # A customer time zone that tzdata removed since it was stored (2020b: US/Pacific-New).
    Customer.objects.filter(pk=contract_a.customer_id).update(time_zone="US/Pacific-New")
    login(page, asgi_server, finance.email, PASSWORD)
    page.wait_for_url(f"{asgi_server}/")
    page.goto(f"{asgi_server}/billing/runs/")
    page.wait_for_selector('[data-live-state="live"]')

    run = invoice_run_start(actor=finance, period=period.label)
    row = f'tr[data-run="{run.pk}"]'
    page.wait_for_selector(f'{row} [data-testid="retry-run"]', timeout=30_000)
    assert page.inner_text(f'{row} [data-field="status"]') == "Failed"
    assert "No time zone found with key US/Pacific-New" in page.inner_text(f'{row} [data-field="error"]')

    Customer.objects.filter(pk=contract_a.customer_id).update(time_zone="America/Los_Angeles")
    page.click(f'{row} [data-testid="retry-run"]')
    page.wait_for_selector(f"text=Invoice run for {period.label} queued again.")
    page.wait_for_function(
        f"""() => document.querySelector('{row} [data-field="status"]')?.textContent === 'Done'""",
        timeout=30_000,
    )
    assert not page.is_visible(f'{row} [data-field="error"]')
    assert page.locator(f'{row} [data-testid="retry-run"]').count() == 0
    assert Invoice.objects.get(contract=contract_a).run_id == run.pk
