"""Availability by the contract's terms (docs/availability.md), checked against an independent
recomputation from the raw status history, and what the invoice run credits from it."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_DOWN, Decimal
from zoneinfo import ZoneInfo

from django.utils import timezone
from pypdf import PdfReader

from billing import availability, metering
from billing.invoicing import bill_period
from billing.models import Contract, Invoice, Plan
from fleet.exclusions import exclusion_mark
from fleet.models import AssetStatusChange, MaintenanceWindow
from portal import formatting
from portal.models import Customer, User
from tests.billing_fixtures import contract_for, status_change, usage
from tests.conftest import client_for
from tests.fleet_fixtures import Installed

AFTER_OCTOBER = datetime(2026, 11, 5, tzinfo=UTC)
OCTOBER = metering.period_of("2026-10", "Europe/Berlin")  # 30 Sep 22:00 → 31 Oct 23:00 UTC, 745 h


def at(day: int, hour: int) -> datetime:
    return datetime(2026, 10, day, hour, tzinfo=UTC)


def month_with_everything(fleet_a: Installed) -> dict[str, tuple[datetime, datetime]]:
    """October: a fault, a degraded spell, an outage inside a window, an outage the customer caused."""
    asset = fleet_a.asset
    status_change(asset, "online", datetime(2026, 9, 1, tzinfo=UTC), previous="never_seen")
    status_change(asset, "fault", at(5, 10))  # 6 h fault
    status_change(asset, "online", at(5, 16), previous="fault")
    status_change(asset, "warning", at(7, 8))  # 4 h degraded
    status_change(asset, "online", at(7, 12), previous="warning")
    status_change(asset, "offline", at(12, 6))  # 4 h offline, 3 of them in the window
    status_change(asset, "online", at(12, 10), previous="offline")
    status_change(asset, "offline", at(20, 0))  # 5 h offline, 4 of them the customer's
    status_change(asset, "online", at(20, 5), previous="offline")
    window = (at(12, 7), at(12, 11))
    stop = (at(20, 0), at(20, 4))
    MaintenanceWindow.objects.create(
        customer_id=asset.customer_id, title="Compressor overhaul", starts_at=window[0], ends_at=window[1]
    )
    return {"window": window, "stop": stop}


def recompute(
    contract: Contract, fleet_a: Installed, excluded: list[tuple[datetime, datetime]], down_states: set[str]
) -> Decimal:
    """Minute by minute from the raw AssetStatusChange rows, sharing no code with billing.availability."""
    rows = sorted(AssetStatusChange.objects.filter(asset=fleet_a.asset).values_list("at", "status"))
    covered = down_counted = excluded_minutes = 0
    minute = OCTOBER.start
    while minute < OCTOBER.end:
        status = None
        for when, value in rows:
            if when <= minute:
                status = value
        is_excluded = any(began <= minute < ended for began, ended in excluded)
        covered += 1
        excluded_minutes += is_excluded
        down_counted += status in down_states and not is_excluded
        minute += timedelta(minutes=1)
    measured = Decimal(covered - excluded_minutes)
    return (100 * (measured - down_counted) / measured).quantize(Decimal("0.0001"), rounding=ROUND_DOWN)


def credit_for(percent: Decimal) -> str | None:
    # The contract's schedule written out by hand (tests/billing_fixtures.py CREDITS, fee 100.00):
    # at or above 99.5 % nothing; below it 5 %; below 99 % 10 %.
    if percent >= Decimal("99.5"):
        return None
    return "-10.00" if percent < Decimal("99") else "-5.00"


def test_a_month_with_a_fault_a_window_and_a_customer_stop_credits_what_the_history_says(
    customer_a: Customer, plan: Plan, fleet_a: Installed, support: User
) -> None:
    contract = contract_for(customer_a, plan, fleet_a.asset, date(2026, 1, 1), exclude_customer_stops=True)
    spans = month_with_everything(fleet_a)
    exclusion_mark(
        actor=support, asset=fleet_a.asset, starts_at=spans["stop"][0], ends_at=spans["stop"][1],
        reason="Plant shut down by the customer for a holiday",
    )  # fmt: skip

    bill_period("2026-10", now=AFTER_OCTOBER)

    expected = recompute(contract, fleet_a, [spans["window"], spans["stop"]], {"offline", "fault"})
    # By hand: 745 h covered, 8 h excluded, 15 h down of which 7 h excluded: 729/737.
    assert expected == Decimal("98.9145")
    invoice = Invoice.objects.get(contract=contract)
    assert invoice.uptime == expected
    credits = [str(line.amount) for line in invoice.lines.filter(kind="service_credit")]
    assert credits == [credit_for(expected)] == ["-10.00"]

    statement = availability.statement(contract, OCTOBER, now=AFTER_OCTOBER)
    assert statement.availability == expected
    assert statement.credit_percent == Decimal("10")
    assert statement.credit_amount == invoice.lines.get(kind="service_credit").amount
    assert [(i.status, i.start, i.end, i.excluded) for i in statement.intervals] == [
        ("fault", at(5, 10), at(5, 16), timedelta(0)),
        ("offline", at(12, 6), at(12, 10), timedelta(hours=3)),
        ("offline", at(20, 0), at(20, 5), timedelta(hours=4)),
    ]
    assert statement.intervals[1].reasons == ["Compressor overhaul"]
    assert statement.intervals[2].reasons == ["Plant shut down by the customer for a holiday"]
    assert (statement.covered, statement.excluded, statement.down, statement.down_excluded) == (
        timedelta(hours=745), timedelta(hours=8), timedelta(hours=15), timedelta(hours=7),
    )  # fmt: skip


def test_by_default_a_fault_counts_degraded_does_not_and_customer_stops_are_not_excluded(
    contract_a: Contract, fleet_a: Installed, support: User
) -> None:
    spans = month_with_everything(fleet_a)
    exclusion_mark(
        actor=support, asset=fleet_a.asset, starts_at=spans["stop"][0], ends_at=spans["stop"][1],
        reason="Customer switched it off",
    )  # fmt: skip
    assert contract_a.down_states == ["offline", "fault"]
    assert (contract_a.exclude_maintenance, contract_a.exclude_customer_stops) == (True, False)

    result = availability.percentages([contract_a], OCTOBER, now=AFTER_OCTOBER)[str(contract_a.pk)]

    # 6 h fault + 1 h offline outside the window + 5 h customer's outage, of 741 h measured.
    assert result == recompute(contract_a, fleet_a, [spans["window"]], {"offline", "fault"})
    assert result == (100 * Decimal(741 - 12) / 741).quantize(Decimal("0.0001"), rounding=ROUND_DOWN)
    statement = availability.statement(contract_a, OCTOBER, now=AFTER_OCTOBER)
    stop = next(e for e in statement.exclusions if e.kind == "customer")
    assert (stop.title, stop.applies) == ("Customer switched it off", False)  # shown, not left out


def test_degraded_counts_when_the_contract_lists_it(
    customer_a: Customer, plan: Plan, fleet_a: Installed
) -> None:
    contract = contract_for(
        customer_a, plan, fleet_a.asset, date(2026, 1, 1), down_states=["offline", "fault", "warning"]
    )
    spans = month_with_everything(fleet_a)

    result = availability.percentages([contract], OCTOBER, now=AFTER_OCTOBER)[str(contract.pk)]

    assert result == recompute(contract, fleet_a, [spans["window"]], {"offline", "fault", "warning"})
    assert result == (100 * Decimal(741 - 16) / 741).quantize(Decimal("0.0001"), rounding=ROUND_DOWN)


def test_a_window_overlapping_downtime_leaves_out_only_the_overlap_and_only_when_agreed(
    customer_a: Customer, plan: Plan, fleet_a: Installed
) -> None:
    asset = fleet_a.asset
    status_change(asset, "online", datetime(2026, 9, 1, tzinfo=UTC), previous="never_seen")
    status_change(asset, "offline", at(10, 0))
    status_change(asset, "online", at(10, 8), previous="offline")
    MaintenanceWindow.objects.create(
        customer_id=asset.customer_id, title="Visit", starts_at=at(10, 4), ends_at=at(10, 12)
    )
    contract = contract_for(customer_a, plan, asset, date(2026, 1, 1))

    excluding = availability.statement(contract, OCTOBER, now=AFTER_OCTOBER)
    contract.exclude_maintenance = False
    counting = availability.statement(contract, OCTOBER, now=AFTER_OCTOBER)

    # With the window left out: 4 of the 8 offline hours count, of 745 − 8 measured hours.
    assert excluding.availability == (100 * Decimal(737 - 4) / 737).quantize(Decimal("0.0001"), ROUND_DOWN)
    assert excluding.availability == recompute(contract, fleet_a, [(at(10, 4), at(10, 12))], {"offline"})
    # Without: all 8 hours of 745, the figure the old offline-only uptime gave.
    assert counting.availability == Decimal("98.9261")
    assert [e.applies for e in counting.exclusions] == [False]


def test_a_fault_now_earns_a_credit_it_did_not_before(contract_a: Contract, fleet_a: Installed) -> None:
    status_change(fleet_a.asset, "online", datetime(2026, 9, 1, tzinfo=UTC), previous="never_seen")
    status_change(fleet_a.asset, "fault", at(10, 0))
    status_change(fleet_a.asset, "online", at(10, 6), previous="fault")

    bill_period("2026-10", now=AFTER_OCTOBER)

    invoice = Invoice.objects.get()
    assert invoice.uptime == Decimal("99.1946")  # 6 h of 745, as an offline spell would
    assert [str(x.amount) for x in invoice.lines.filter(kind="service_credit")] == ["-5.00"]


def test_usage_inside_a_window_is_left_out_when_the_contract_does_not_meter_maintenance(
    customer_a: Customer, plan: Plan, fleet_a: Installed
) -> None:
    asset = fleet_a.asset
    contract = contract_for(customer_a, plan, asset, date(2026, 1, 1), meter_maintenance=False)
    # The window 10:30–12:30: the hours starting 11:00 and 12:00 start inside it, 10:00 does not.
    MaintenanceWindow.objects.create(
        customer_id=asset.customer_id, title="Visit", starts_at=at(10, 10) + timedelta(minutes=30),
        ends_at=at(10, 12) + timedelta(minutes=30),
    )  # fmt: skip
    for hour in (9, 10, 11, 12, 13):
        usage(asset, at(10, hour), "1")

    assert metering.quantities([contract.pk], OCTOBER)[str(contract.pk)]["run_hours"] == Decimal("3")
    contract.meter_maintenance = True
    contract.save(update_fields=["meter_maintenance"])
    assert metering.quantities([contract.pk], OCTOBER)[str(contract.pk)]["run_hours"] == Decimal("5")


def test_nothing_measurable_gives_no_availability_and_no_credit(
    contract_a: Contract, fleet_a: Installed
) -> None:
    status_change(fleet_a.asset, "offline", datetime(2026, 9, 1, tzinfo=UTC))
    MaintenanceWindow.objects.create(
        customer_id=fleet_a.asset.customer_id, title="All month", starts_at=OCTOBER.start, ends_at=OCTOBER.end
    )

    statement = availability.statement(contract_a, OCTOBER, now=AFTER_OCTOBER)

    assert statement.availability is None
    assert statement.credit_percent == Decimal("0")


def test_the_statement_page_and_pdf_show_every_interval_in_the_customers_zone(
    customer_a: Customer, plan: Plan, fleet_a: Installed, support: User, viewer_a: User
) -> None:
    contract = contract_for(customer_a, plan, fleet_a.asset, date(2026, 1, 1), exclude_customer_stops=True)
    spans = month_with_everything(fleet_a)
    exclusion_mark(
        actor=support, asset=fleet_a.asset, starts_at=spans["stop"][0], ends_at=spans["stop"][1],
        reason="Plant holiday",
    )  # fmt: skip
    client = client_for(viewer_a)
    url = f"/billing/contracts/{contract.pk}/availability/?period=2026-10"

    page = client.get(url)
    pdf = client.get(f"/billing/contracts/{contract.pk}/availability/pdf/?period=2026-10")

    assert page.status_code == 200
    html = page.content.decode()
    # Berlin is UTC+2 until 25 October: the fault 10:00–16:00 UTC reads 12:00–18:00, written as
    # the viewer's pages write every time (|when: their locale, their zone).
    with timezone.override(ZoneInfo("Europe/Berlin")), formatting.override(viewer_a.display_locale):
        fault = [formatting.when(datetime(2026, 10, 5, hour, tzinfo=UTC)) for hour in (10, 16)]
    assert fault[0].endswith("12:00")
    assert fault[1].endswith("18:00")
    for text in (*fault, "Compressor overhaul", "Plant holiday"):
        assert text in html
    assert pdf.status_code == 200
    assert pdf["Content-Type"] == "application/pdf"
    text = " ".join(sheet.extract_text() for sheet in PdfReader(io.BytesIO(pdf.content)).pages)
    text = " ".join(text.split())  # a cell's date and time may wrap onto two lines
    for expected in (
        "Oct 5, 2026, 12:00", "Oct 5, 2026, 18:00", "Oct 12, 2026, 08:00", "Oct 20, 2026, 02:00",
        "fault", "offline", "Compressor overhaul", "Plant holiday", "Europe/Berlin", "99.5",
    ):  # fmt: skip
        assert expected in text, expected
    assert "98.9145" in text.replace(",", ".")  # customer A's locale may write a decimal comma


def test_the_api_answers_the_statements_figures(
    customer_a: Customer, plan: Plan, fleet_a: Installed, support: User, viewer_a: User
) -> None:
    contract = contract_for(customer_a, plan, fleet_a.asset, date(2026, 1, 1), exclude_customer_stops=True)
    spans = month_with_everything(fleet_a)
    exclusion_mark(
        actor=support,
        asset=fleet_a.asset,
        starts_at=spans["stop"][0],
        ends_at=spans["stop"][1],
        reason="Holiday",
    )
    client = client_for(viewer_a)

    body = client.get(f"/api/v1/contracts/{contract.pk}/availability/?period=2026-10").json()
    bad = client.get(f"/api/v1/contracts/{contract.pk}/availability/?period=2026-13")

    assert body["availability"] == "98.9145"
    assert body["credit_percent"] == "10.000"
    assert body["credit_amount"] == "-10.00"
    assert (body["covered_seconds"], body["excluded_seconds"], body["down_seconds"]) == (
        745 * 3600,
        8 * 3600,
        15 * 3600,
    )
    assert [(i["status"], i["excluded_seconds"]) for i in body["intervals"]] == [
        ("fault", 0), ("offline", 3 * 3600), ("offline", 4 * 3600),
    ]  # fmt: skip
    assert {(e["kind"], e["reason"]) for e in body["exclusions"]} == {
        ("maintenance", "Compressor overhaul"), ("customer", "Holiday"),
    }  # fmt: skip
    assert bad.status_code == 400
    assert bad.json()["errors"][0]["field"] == "period"


def test_the_availability_terms_are_set_on_the_api_and_the_form(
    finance: User, plan: Plan, fleet_a: Installed, viewer_a: User
) -> None:
    client = client_for(finance)
    created = client.post(
        "/api/v1/contracts/",
        {"customer": str(fleet_a.asset.customer_id), "plan": str(plan.pk), "start_date": "2026-10-01",
         "down_states": ["warning"], "exclude_customer_stops": True},
        content_type="application/json",
    ).json()  # fmt: skip
    assert (created["down_states"], created["exclude_maintenance"], created["exclude_customer_stops"]) == (
        ["offline", "warning"], True, True,
    )  # fmt: skip
    patched = client.patch(
        f"/api/v1/contracts/{created['id']}/",
        {"down_states": ["fault"], "meter_maintenance": False},
        content_type="application/json",
    )
    assert patched.status_code == 200, patched.json()
    assert (patched.json()["down_states"], patched.json()["meter_maintenance"]) == (
        ["offline", "fault"],
        False,
    )
    unknown = client.patch(
        f"/api/v1/contracts/{created['id']}/", {"down_states": ["asleep"]}, content_type="application/json"
    )
    assert unknown.status_code == 400
    assert unknown.json()["errors"][0]["field"] == "down_states"
    page = client_for(viewer_a).get(f"/billing/contracts/{created['id']}/").content.decode()
    assert "usage in windows not billed" in page

    form = {
        "customer": str(fleet_a.asset.customer_id), "plan": str(plan.pk), "start_date": "2027-01-01",
        "status": "active", "uptime_target": "99.5", "service_credits": "99.5:5", "down_states": ["warning"],
        "exclude_maintenance": "on",
        **{f"respond_P{n}": "60" for n in range(1, 5)}, **{f"resolve_P{n}": "480" for n in range(1, 5)},
    }  # fmt: skip
    assert client.post("/billing/contracts/new/", form).status_code == 302
    contract = Contract.objects.get(start_date=date(2027, 1, 1))
    assert contract.down_states == ["offline", "warning"]
    assert (contract.exclude_maintenance, contract.exclude_customer_stops, contract.meter_maintenance) == (
        True, False, False,
    )  # fmt: skip
