"""Figures people can check: every amount at its currency's decimals, every line recomputable from
what it shows, rows that add up to their totals, revenue kept apart by currency, and one way of
writing figures (portal/formatting.py; the browser's side is tests/browser/test_figures.py)."""

from __future__ import annotations

import io
import json
import re
from datetime import UTC, date, datetime
from decimal import ROUND_CEILING, ROUND_HALF_UP
from decimal import Decimal as D  # noqa: N817 - figures read better
from typing import Any

import pytest
import time_machine
from hypothesis import given
from hypothesis import strategies as st
from lxml import html
from pypdf import PdfReader

from billing import services
from billing.documents import invoice_pdf
from billing.invoicing import bill_period
from billing.models import Contract, Invoice, Plan
from billing.money import round_money
from billing.rating import ChargeModel, Component, Tier, usage_line
from portal import formatting
from portal.models import Customer, User
from tests.billing_fixtures import contract_for, usage
from tests.conftest import client_for
from tests.fleet_fixtures import Installed

AFTER_OCTOBER = datetime(2026, 11, 5, tzinfo=UTC)
MONEY = re.compile(r"^-?\d{1,3}(,\d{3})*\.\d{2}$")  # en: the currency's two decimals, grouped


# --- formatting: one layer, no float artefacts ---------------------------------------------


@pytest.mark.parametrize(
    ("tag", "money", "plain", "quantity", "percent"),
    [
        ("en", "€11,539.38", "11,539.38", "1,356.34\u00a0h", "99.95\u00a0%"),
        ("de-DE", "11.539,38\u00a0€", "11.539,38", "1.356,34\u00a0h", "99,95\u00a0%"),
        # fr groups with a no-break space: always U+00A0 (Babel's CLDR says U+202F; so may Intl's)
        ("fr-FR", "11\u00a0539,38\u00a0€", "11\u00a0539,38", "1\u00a0356,34\u00a0h", "99,95\u00a0%"),
    ],
)
def test_figures_in_three_locales(tag: str, money: str, plain: str, quantity: str, percent: str) -> None:
    stored = D("11539.3800000000")  # what a Sum() over money columns returns
    assert formatting.money(stored, "EUR", tag) == money
    assert formatting.money_plain(stored, "EUR", tag) == plain
    assert formatting.quantity(D("1356.341257"), "h", tag) == quantity
    assert formatting.percent(D("99.9500"), tag=tag) == percent
    assert "\u202f" not in formatting.money(D("1234567.5"), "EUR", tag)


def test_money_rounds_half_up_at_the_minor_unit() -> None:
    # Babel alone rounds half to even (1.00, 2.62); invoices round half up.
    assert formatting.money(D("1.005"), "EUR", "en") == "€1.01"
    assert formatting.money_plain(D("2.625"), "USD", "en") == "2.63"
    assert formatting.money_plain(D("-2.625"), "USD", "en") == "-2.63"
    assert formatting.money_plain(D("0.1") + D("0.2"), "EUR", "en") == "0.30"
    assert formatting.money_plain(0, "EUR", "en") == "0.00"
    assert formatting.money(None, "EUR") == ""


def test_minor_units_come_from_the_currency() -> None:
    assert formatting.money(D("1234.5"), "JPY", "en") == "¥1,235"  # no minor unit
    assert formatting.money_plain(D("1234.5"), "KWD", "en") == "1,234.500"  # three
    assert formatting.money_plain(D("1234.5"), "EUR", "en") == "1,234.50"


def test_quantities_at_their_units_precision() -> None:
    assert formatting.quantity(D("5000.4"), "cycles", "en") == "5,000\u00a0cycles"
    assert formatting.quantity(D("10.05"), "kWh", "en") == "10.1\u00a0kWh"
    assert formatting.quantity(D("1000.000000"), "m³", "en") == "1,000.00\u00a0m³"
    assert formatting.quantity(D("12.345"), "widgets", "en") == "12.35\u00a0widgets"  # default 2
    assert formatting.quantity(D("12.5"), "", "en") == "12.50"
    assert formatting.round_quantity(D("1329.885"), "h") == D("1329.89")


def test_percentages_drop_trailing_zeros() -> None:
    assert formatting.percent(D("100.0000"), tag="en") == "100\u00a0%"
    assert formatting.percent(D("99.5000"), tag="en") == "99.5\u00a0%"
    assert formatting.percent(D("99.99999"), tag="en") == "100\u00a0%"
    assert formatting.percent(D("6.2500"), tag="de-DE") == "6,25\u00a0%"


def test_prices_keep_their_decimals_and_at_least_the_currencys() -> None:
    assert formatting.price(D("4.500000"), "EUR", "en") == "4.50"
    assert formatting.price(D("0.185000"), "EUR", "en") == "0.185"
    assert formatting.price(D("1200"), "EUR", "en") == "1,200.00"
    assert formatting.price(D("0.12345678"), "EUR", "en") == "0.123457"  # stored prices have 6


# --- lines anyone can recompute ----------------------------------------------------------------


def recompute(detail: dict[str, Any]) -> D:
    """A line's amount from its detail alone, as a reader with a calculator would."""
    if detail["charge_model"] == ChargeModel.PER_UNIT:
        exact = D(detail["billable"]) * D(detail["unit_price"])
    elif detail["charge_model"] == ChargeModel.PACKAGE:
        (row,) = detail["tiers"]
        assert D(row["packages"]) == (D(detail["billable"]) / D(row["package_size"])).to_integral_value(
            rounding=ROUND_CEILING
        )
        exact = D(row["packages"]) * D(row["package_price"])
    else:
        exact = D(0)
        for row in detail["tiers"]:
            assert D(row["amount"]) == D(row["units"]) * D(row["unit_price"]) + D(row["flat_fee"])
            exact += D(row["amount"])
        if detail["tiers"] and detail["charge_model"] == ChargeModel.GRADUATED:
            assert sum(D(row["units"]) for row in detail["tiers"]) == D(detail["billable"])
    return exact.quantize(D("0.01"), rounding=ROUND_HALF_UP)


STEPPED = (Tier(D("100"), D("1.00"), D("5")), Tier(D("500"), D("0.80")), Tier(None, D("0.455")))
COMPONENTS = [
    Component("run_hours", ChargeModel.PER_UNIT, label="Run hours", unit="h", unit_price=D("1.2"),
              included_units=D("100")),
    Component("energy_kwh", ChargeModel.GRADUATED, label="Energy", unit="kWh", tiers=STEPPED,
              included_units=D("20")),
    Component("energy_kwh", ChargeModel.VOLUME, label="Energy", unit="kWh", tiers=STEPPED),
    Component("cycles", ChargeModel.PACKAGE, label="Starts", unit="cycles", package_size=D("1000"),
              package_price=D("4.5")),
]  # fmt: skip


@pytest.mark.parametrize("component", COMPONENTS, ids=[c.charge_model for c in COMPONENTS])
@given(quantity=st.decimals(min_value=D("0"), max_value=D("20000"), places=6))
def test_every_usage_line_recomputes_from_what_it_shows(component: Component, quantity: D) -> None:
    line = usage_line(component, quantity, "EUR")
    detail = line.detail
    billed = formatting.round_quantity(quantity, component.unit)
    assert line.quantity == billed == D(detail["quantity"])  # the quantity shown is the one billed
    assert D(detail["billable"]) == max(billed - D(detail["included_units"]), D(0))
    assert recompute(detail) == line.amount == D(detail["amount"])


def test_the_issue_s_run_hours_line_adds_up() -> None:
    """`1329.882 h × 1.2 = 1475.86` did not add up: 100 h were included and not shown."""
    line = usage_line(COMPONENTS[0], D("1329.882"), "EUR")
    assert (line.quantity, line.detail["included_units"], line.detail["billable"]) == (
        D("1329.88"), "100", "1229.88",
    )  # fmt: skip
    assert line.amount == D("1475.86") == round_money(D("1229.88") * D("1.2"), "EUR")


def test_a_negotiated_price_is_named_on_its_line() -> None:
    negotiated = Component("run_hours", ChargeModel.PER_UNIT, label="Run hours", unit="h",
                           unit_price=D("0.40"), override="Key account 2026")  # fmt: skip
    line = usage_line(negotiated, D("10"), "EUR")
    assert line.description == "Run hours (negotiated price: Key account 2026)"
    assert line.detail["override"] == "Key account 2026"
    assert usage_line(COMPONENTS[0], D("10"), "EUR").detail["override"] == ""


# --- the invoice page and the list ---------------------------------------------------------


@pytest.fixture
def usd_plan(compressor: object) -> Plan:
    return services.plan_create(
        actor=None, code="flex-usd", name="Flex USD", currency="USD", period_fee=D("250.00"),
        components=[
            {"metric": "run_hours", "label": "Run hours", "unit": "h", "charge_model": "per_unit",
             "unit_price": D("0.735"), "included_units": D("2")},
        ],
    )  # fmt: skip


@pytest.fixture
def two_currencies(
    contract_a: Contract, customer_b: Customer, usd_plan: Plan, fleet_a: Installed, fleet_b: Installed
) -> tuple[Invoice, Invoice]:
    """October: Alpha in EUR (run hours and graduated energy), Bravo in USD."""
    customer_b.currency = "USD"
    customer_b.save()
    contract_b = contract_for(customer_b, usd_plan, fleet_b.asset, contract_a.start_date)
    usage(fleet_a.asset, datetime(2026, 10, 3, 10, tzinfo=UTC), "10.004")
    usage(fleet_a.asset, datetime(2026, 10, 3, 11, tzinfo=UTC), "3.333")
    usage(fleet_a.asset, datetime(2026, 10, 4, 10, tzinfo=UTC), "1234.56", metric="energy_kwh")
    usage(fleet_b.asset, datetime(2026, 10, 5, 10, tzinfo=UTC), "41.125")
    bill_period("2026-10", now=AFTER_OCTOBER)
    return Invoice.objects.get(contract=contract_a), Invoice.objects.get(contract=contract_b)


def cells(row: Any) -> dict[str, str]:
    return {td.get("data-col"): td.text_content().strip() for td in row.xpath("./td[@data-col]")}


def number(text: str) -> D:
    return D(text.replace(",", "").split("\u00a0")[0])


def test_the_invoice_page_lines_add_up_at_the_currency_s_decimals(
    finance: User, two_currencies: tuple[Invoice, Invoice]
) -> None:
    for invoice in two_currencies:
        page = html.fromstring(client_for(finance).get(f"/billing/invoices/{invoice.pk}/").content)
        rows = page.xpath('//table[@id="lines"]/tbody/tr[@data-line]')
        assert len(rows) == invoice.lines.count() >= 2
        amounts = []
        for row in rows:
            shown = cells(row)
            assert MONEY.match(shown["amount"]), shown
            amounts.append(number(shown["amount"]))
            if row.get("data-kind") == "usage" and shown["unit-price"]:  # per unit: billable × price
                billable = number(shown["billable"])
                assert number(shown["quantity"]) - number(shown["included"]) == billable or billable == 0
                assert round_money(billable * number(shown["unit-price"]), invoice.currency) == amounts[-1]
            if row.get("data-kind") == "period_fee":
                assert "× 31/31 days = " + shown["amount"] in row.text_content()
        subtotal = page.xpath('//*[@data-testid="subtotal"]')[0].text_content().strip()
        tax = page.xpath('//*[@data-testid="tax"]')[0].text_content().strip()
        assert MONEY.match(subtotal)
        assert MONEY.match(tax)
        assert sum(amounts) == number(subtotal) == invoice.subtotal
        assert number(subtotal) + number(tax) == invoice.total
        assert formatting.money(invoice.total, invoice.currency, "en") in page.text_content()

    eur, usd = two_currencies
    text = html.fromstring(client_for(finance).get(f"/billing/invoices/{eur.pk}/").content).text_content()
    # 10.004 + 3.333 = 13.337 h → 13.34 h billed; 1,234.56 kWh → 1,234.6 kWh in two tiers.
    assert "13.34\u00a0h" in text
    assert "tier 1 (0.0\u00a0kWh – 1,000.0\u00a0kWh): 1,000.0\u00a0kWh × 0.20 = 200.00" in text
    assert "tier 2 (over 1,000.0\u00a0kWh): 234.6\u00a0kWh × 0.10 = 23.46" in text
    # USD: 41.125 h → 41.13 h, 2 h included, 39.13 h × 0.735 = 28.76055 → 28.76.
    line = usd.lines.get(metric="run_hours")
    assert (line.quantity, line.amount) == (D("41.13"), D("28.76"))


def test_the_list_totals_each_currency_and_names_drafts(
    finance: User, two_currencies: tuple[Invoice, Invoice]
) -> None:
    eur, usd = two_currencies
    page = html.fromstring(client_for(finance).get("/billing/invoices/?period=2026-10").content)
    names = [a.text_content() for a in page.xpath('//table[@id="invoice-table"]/tbody//a')]
    assert "Draft · Alpha Dairy · 2026-10" in names
    assert "Draft · Bravo Breweries · 2026-10" in names
    footers = {row.get("data-currency-total"): row for row in page.xpath("//tfoot/tr[@data-currency-total]")}
    assert set(footers) == {"EUR", "USD"}
    for invoice in (eur, usd):
        footer = footers[invoice.currency]
        assert f"Total of the 1 {invoice.currency} invoice listed" in footer.text_content()
        shown = cells(footer)
        assert shown["total"] == formatting.money(invoice.total, invoice.currency, "en")
        assert shown["amount-due"] == formatting.money(invoice.amount_due, invoice.currency, "en")
    for row in page.xpath('//table[@id="invoice-table"]/tbody/tr'):
        for col in ("total", "amount-due"):
            assert re.match(r"^[€$]\d{1,3}(,\d{3})*\.\d{2}$", cells(row)[col]), cells(row)


# --- the contract's usage table --------------------------------------------------------------


@time_machine.travel(datetime(2026, 10, 16, 22, tzinfo=UTC), tick=False)
def test_the_contract_usage_rows_add_up_to_their_subtotal(
    viewer_a: User, fleet_a: Installed, compressor: object
) -> None:
    committed = services.plan_create(
        actor=None, code="committed", name="Committed", currency="EUR", period_fee=D("100.00"),
        minimum_commitment=D("900"),
        components=[{"metric": "run_hours", "label": "Run hours", "unit": "h", "charge_model": "per_unit",
                     "unit_price": D("0.50")}],
    )  # fmt: skip
    contract = contract_for(fleet_a.asset.customer, committed, fleet_a.asset, date(2026, 1, 1))
    usage(fleet_a.asset, datetime(2026, 10, 3, 10, tzinfo=UTC), "100.004")
    page = html.fromstring(client_for(viewer_a).get(f"/billing/contracts/{contract.pk}/").content)
    table = page.xpath('//table[@id="meters"]')[0]
    for column, total in (
        (("period_fee", "amount"), "subtotal_so_far"),
        (("projected_period_fee", "projected_amount", "projected_adjustments"), "projected_subtotal"),
    ):
        shown = [
            td
            for td in table.xpath("./tbody/tr[not(@hidden)]/td[@data-field]")
            if td.get("data-field") in column
        ]
        foot = table.xpath(f'./tfoot//td[@data-field="{total}"]')[0]
        assert len(shown) >= 2
        assert all(MONEY.match(td.text_content().strip()) for td in [*shown, foot])
        assert sum(number(td.text_content().strip()) for td in shown) == number(foot.text_content().strip())
    # The minimum commitment (900) tops up the projection: a row says so and is counted.
    adjustments = table.xpath('./tbody/tr[@data-row="adjustments"]')[0]
    assert adjustments.get("hidden") is None
    assert "Minimum commitment true-up" in adjustments.text_content()
    assert table.xpath('.//td[@data-field="quantity"]')[0].text_content() == "100.00\u00a0h"
    assert re.match(
        r"^(\d+(\.\d{1,2})?\u00a0%|—)$", page.xpath('//*[@data-field="uptime"]')[0].text_content()
    )


# --- revenue per currency ----------------------------------------------------------------------


def test_revenue_keeps_currencies_apart_and_subtracts_credit_notes(
    finance: User, two_currencies: tuple[Invoice, Invoice]
) -> None:
    eur, usd = (services.invoice_finalize(actor=None, invoice=i) for i in two_currencies)
    services.credit_note_create(actor=None, invoice=eur, amount=D("25.50"), reason="Goodwill")
    response = client_for(finance).get("/billing/revenue/")
    page = html.fromstring(response.content)
    data = json.loads(page.xpath('//script[@id="revenue-data"]')[0].text)

    by_currency = {c["currency"]: c for c in data["currencies"]}
    assert set(by_currency) == {"EUR", "USD"}
    assert by_currency["EUR"]["net"] == {"Alpha Dairy": {"2026-10": str(eur.subtotal - D("25.50"))}}
    assert by_currency["USD"]["net"] == {"Bravo Breweries": {"2026-10": str(usd.subtotal)}}
    # Meters by name, per currency: USD has run hours only, and never EUR's amounts.
    assert [m["name"] for m in by_currency["EUR"]["meters"]] == ["Energy", "Run hours"]
    assert [m["name"] for m in by_currency["USD"]["meters"]] == ["Run hours"]
    assert by_currency["USD"]["meters"][0]["amount"] == {"2026-10": "28.76"}

    sections = {s.get("data-currency"): s for s in page.xpath('//section[@data-testid="revenue-currency"]')}
    assert set(sections) == {"EUR", "USD"}
    eur_net = sections["EUR"].xpath('.//*[@data-field="net"]')[0].text_content()
    usd_net = sections["USD"].xpath('.//*[@data-field="net"]')[0].text_content()
    assert eur_net == formatting.money(eur.subtotal - D("25.50"), "EUR", "en")
    assert usd_net == formatting.money(usd.subtotal, "USD", "en")
    assert "$" not in sections["EUR"].text_content()
    assert "€" not in sections["USD"].text_content()


# --- late usage at the unit's precision -----------------------------------------------------


def test_late_usage_under_the_units_precision_waits_until_it_moves_the_billed_quantity(
    contract_a: Contract, fleet_a: Installed
) -> None:
    usage(fleet_a.asset, datetime(2026, 10, 3, 10, tzinfo=UTC), "10")
    bill_period("2026-10", now=AFTER_OCTOBER)
    services.invoice_finalize(actor=None, invoice=Invoice.objects.get(period="2026-10"))
    november_ends = datetime(2026, 12, 2, tzinfo=UTC)

    usage(fleet_a.asset, datetime(2026, 10, 20, 8, tzinfo=UTC), "0.004")  # 10.004 h still bills as 10.00
    bill_period("2026-11", now=november_ends)
    november = Invoice.objects.get(period="2026-11")
    assert not november.lines.filter(kind="late_usage").exists()

    usage(fleet_a.asset, datetime(2026, 10, 21, 8, tzinfo=UTC), "0.003")  # 10.007 h → 10.01 h
    bill_period("2026-11", now=november_ends)
    late = november.lines.get(kind="late_usage")
    november.refresh_from_db()
    assert (late.quantity, late.amount) == (D("0.01"), D("0.01"))  # 10.01 × 0.50 − 10 × 0.50 = 0.005
    assert november.billed_quantities["2026-10"] == {"run_hours": "0.01"}


def test_the_pdf_shows_the_same_recomputable_lines(two_currencies: tuple[Invoice, Invoice]) -> None:
    eur, usd = two_currencies
    for invoice in (eur, usd):
        reader = PdfReader(io.BytesIO(invoice_pdf(invoice)))
        text = "\n".join(page.extract_text() for page in reader.pages).replace("\u00a0", " ")
        for line in invoice.lines.all():
            assert formatting.money_plain(line.amount, invoice.currency, "en") in text
        assert f"Subtotal {formatting.money_plain(invoice.subtotal, invoice.currency, 'en')}" in text
        assert f"Total {formatting.money(invoice.total, invoice.currency, 'en')}" in text
        assert "× 31/31 days" in text
    text = "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(invoice_pdf(usd))).pages)
    # quantity · included · billable · unit price · amount: 39.13 h × 0.735 = 28.76055 → 28.76
    assert "Run hours 41.13 h 2.00 h 39.13 h 0.735 28.76" in text.replace("\u00a0", " ")


def test_a_service_credit_line_says_its_uptime_as_people_write_it() -> None:
    from billing.rating import CreditStep, Pricing, rate_period

    lines = rate_period(
        Pricing("EUR", D("1000")), {}, active_days=31, days_in_period=31,
        uptime=D("99.1946"), uptime_target=D("99.500"), credit_schedule=[CreditStep(D("99.5"), D("5"))],
    )  # fmt: skip
    credit = lines[-1]
    assert credit.description == "Service credit: uptime 99.1946 % below 99.5 %"
    assert credit.amount == -round_money(D("1000") * D("5") / 100, "EUR")
    assert credit.detail["period_fee"] == "1000.00"
