"""Invoice runs on PostgreSQL: metering by the customer's month, idempotence, late usage, uptime."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import close_old_connections

from billing import availability, metering, services
from billing.invoicing import bill_period
from billing.models import Contract, Invoice, InvoiceLine, InvoiceRun, InvoiceStatus, Plan
from billing.runs import invoice_run_execute, invoice_run_start
from portal.models import AuditEntry, Customer, OutboxMessage, User
from tests.billing_fixtures import contract_for, status_change, usage
from tests.conftest import client_for
from tests.factories import CustomerFactory
from tests.fleet_fixtures import Installed, install

AFTER_OCTOBER = datetime(2026, 11, 5, tzinfo=UTC)


def lines_of(invoice: Invoice) -> list[tuple[str, str, str]]:
    return [(line.kind, line.metric, str(line.amount)) for line in invoice.lines.order_by("position")]


def test_usage_counts_inside_the_customers_month_only(contract_a: Contract, fleet_a: Installed) -> None:
    asset = fleet_a.asset  # customer A bills in Europe/Berlin: October is 30 Sep 22:00 → 31 Oct 23:00 UTC
    usage(asset, datetime(2026, 9, 30, 21, tzinfo=UTC), "100")  # 23:00 on 30 September in Berlin
    usage(asset, datetime(2026, 9, 30, 22, tzinfo=UTC), "10")  # midnight, 1 October
    usage(asset, datetime(2026, 10, 31, 22, tzinfo=UTC), "20")  # 23:00 on 31 October
    usage(asset, datetime(2026, 10, 31, 23, tzinfo=UTC), "200")  # midnight, 1 November
    usage(asset, datetime(2026, 10, 12, 8, tzinfo=UTC), "900", metric="energy_kwh")

    assert bill_period("2026-10", now=AFTER_OCTOBER) == {
        "processed": 1,
        "created": 1,
        "updated": 0,
        "skipped": 0,
    }

    invoice = Invoice.objects.get(contract=contract_a, period="2026-10")
    assert lines_of(invoice) == [
        ("period_fee", "", "100.00"),
        ("usage", "run_hours", "15.00"),  # 30 h × 0.50
        ("usage", "energy_kwh", "180.00"),  # 900 kWh in the first tier at 0.20
    ]
    assert (invoice.subtotal, invoice.tax, invoice.total) == (
        Decimal("295.00"),
        Decimal("56.05"),
        Decimal("351.05"),
    )
    assert invoice.billed_quantities == {
        "2026-10": {"run_hours": "30.00", "energy_kwh": "900.0"}
    }  # at the units' precision
    assert invoice.period_start == datetime(2026, 9, 30, 22, tzinfo=UTC)
    assert invoice.period_end == datetime(2026, 10, 31, 23, tzinfo=UTC)


@pytest.mark.parametrize(("label", "hours"), [("2026-11", 721), ("2026-03", 743), ("2026-07", 744)])
def test_a_month_across_a_dst_change_has_its_real_number_of_hours(
    plan: Plan, compressor: object, label: str, hours: int
) -> None:
    customer = CustomerFactory(slug="nyc", time_zone="America/New_York", tax_rate=Decimal("0"))
    installed = install(customer, compressor, "NY-1")
    contract = contract_for(customer, plan, installed.asset, date(2026, 1, 1))
    period = metering.period_of(label, "America/New_York")
    assert period.hours == hours
    hour = period.start - timedelta(hours=3)
    while hour < period.end + timedelta(hours=3):  # one run hour in every UTC hour around the month
        usage(installed.asset, hour, "1")
        hour += timedelta(hours=1)

    bill_period(label, now=period.end)

    invoice = Invoice.objects.get(contract=contract, period=label)
    assert invoice.lines.get(metric="run_hours").quantity == hours


def test_a_contract_starting_mid_month_prorates_its_fee_and_bills_usage_from_its_start(
    customer_a: Customer, plan: Plan, fleet_a: Installed
) -> None:
    contract = contract_for(customer_a, plan, fleet_a.asset, date(2026, 10, 17))
    usage(fleet_a.asset, datetime(2026, 10, 10, 9, tzinfo=UTC), "40")  # before the contract
    usage(fleet_a.asset, datetime(2026, 10, 16, 21, tzinfo=UTC), "8")  # 23:00 on the 16th in Berlin
    usage(fleet_a.asset, datetime(2026, 10, 16, 22, tzinfo=UTC), "6")  # midnight, the 17th
    usage(fleet_a.asset, datetime(2026, 10, 20, 9, tzinfo=UTC), "4")

    bill_period("2026-10", now=AFTER_OCTOBER)

    invoice = Invoice.objects.get(contract=contract)
    fee = invoice.lines.get(kind="period_fee")
    assert (fee.amount, fee.detail["active_days"], fee.detail["days_in_period"]) == (Decimal("48.39"), 15, 31)
    assert invoice.lines.get(metric="run_hours").quantity == Decimal("10")  # 6 + 4


def test_a_contract_ending_mid_month_stops_billing_at_its_end(
    customer_a: Customer, plan: Plan, fleet_a: Installed
) -> None:
    contract = contract_for(customer_a, plan, fleet_a.asset, date(2026, 1, 1), end_date=date(2026, 10, 10))
    usage(fleet_a.asset, datetime(2026, 10, 9, 12, tzinfo=UTC), "2")
    usage(fleet_a.asset, datetime(2026, 10, 11, 12, tzinfo=UTC), "50")  # after the end

    bill_period("2026-10", now=AFTER_OCTOBER)
    bill_period("2026-11", now=AFTER_OCTOBER)

    invoice = Invoice.objects.get(contract=contract)
    assert invoice.lines.get(kind="period_fee").amount == Decimal("32.26")  # 10 of 31 days
    assert invoice.lines.get(metric="run_hours").quantity == Decimal("2")
    assert not Invoice.objects.filter(period="2026-11").exists()


def test_running_again_changes_nothing_and_a_draft_picks_up_new_usage(
    contract_a: Contract, fleet_a: Installed
) -> None:
    usage(fleet_a.asset, datetime(2026, 10, 3, 10, tzinfo=UTC), "10")
    bill_period("2026-10", now=AFTER_OCTOBER)
    invoice = Invoice.objects.get()
    before = lines_of(invoice)

    assert bill_period("2026-10", now=AFTER_OCTOBER) == {
        "processed": 1,
        "created": 0,
        "updated": 1,
        "skipped": 0,
    }
    assert Invoice.objects.count() == 1
    assert lines_of(Invoice.objects.get()) == before

    usage(fleet_a.asset, datetime(2026, 10, 3, 11, tzinfo=UTC), "4")
    bill_period("2026-10", now=AFTER_OCTOBER)
    assert Invoice.objects.get().lines.get(metric="run_hours").amount == Decimal("7.00")
    assert InvoiceLine.objects.count() == 3


def test_late_usage_is_billed_on_the_next_invoice_as_the_rerated_difference(
    contract_a: Contract, fleet_a: Installed
) -> None:
    asset = fleet_a.asset
    usage(asset, datetime(2026, 10, 12, 8, tzinfo=UTC), "900", metric="energy_kwh")
    bill_period("2026-10", now=AFTER_OCTOBER)
    october = services.invoice_finalize(actor=None, invoice=Invoice.objects.get(period="2026-10"))
    frozen = (lines_of(october), october.total)

    # 300 kWh for October arrive late: re-rated, 900 → 1,200 kWh costs 180 → 220 (tiers at 1,000).
    usage(asset, datetime(2026, 10, 20, 8, tzinfo=UTC), "300", metric="energy_kwh")
    usage(asset, datetime(2026, 11, 3, 8, tzinfo=UTC), "5")
    assert bill_period("2026-10", now=AFTER_OCTOBER)["skipped"] == 1
    november_ends = datetime(2026, 12, 2, tzinfo=UTC)
    bill_period("2026-11", now=november_ends)

    october.refresh_from_db()
    assert (lines_of(october), october.total) == frozen
    november = Invoice.objects.get(period="2026-11")
    late = november.lines.get(kind="late_usage")
    assert (late.period, late.metric, late.quantity, late.amount) == (
        "2026-10", "energy_kwh", Decimal("300"), Decimal("40.00"),
    )  # fmt: skip
    assert late.detail["invoice"] == october.number
    assert november.billed_quantities["2026-10"] == {"energy_kwh": "300.0"}  # kWh: one decimal

    # Billed once: neither a re-run of November nor December bills it again.
    bill_period("2026-11", now=november_ends)
    services.invoice_finalize(actor=None, invoice=Invoice.objects.get(period="2026-11"))
    bill_period("2026-12", now=datetime(2027, 1, 2, tzinfo=UTC))
    assert InvoiceLine.objects.filter(kind="late_usage").count() == 1


def test_voiding_a_finalized_invoice_lets_the_period_be_billed_afresh(contract_a: Contract) -> None:
    bill_period("2026-10", now=AFTER_OCTOBER)
    first = services.invoice_finalize(actor=None, invoice=Invoice.objects.get())
    services.invoice_void(actor=None, invoice=first, reason="Wrong plan")

    bill_period("2026-10", now=AFTER_OCTOBER)

    assert list(
        Invoice.objects.filter(period="2026-10").values_list("status", flat=True).order_by("status")
    ) == [
        InvoiceStatus.DRAFT,
        InvoiceStatus.VOID,
    ]


@pytest.mark.parametrize(
    ("outage", "uptime", "credit"),
    [
        # October in Berlin has 745 hours; 6 offline hours leave 99.1946 %: 5 % of the fee.
        ((datetime(2026, 10, 10, 0, tzinfo=UTC), datetime(2026, 10, 10, 6, tzinfo=UTC)), "99.1946", "-5.00"),
        # Offline since before the month (counted from its start, 4 h): 99.4630 %.
        ((datetime(2026, 9, 30, 20, tzinfo=UTC), datetime(2026, 10, 1, 2, tzinfo=UTC)), "99.4630", "-5.00"),
        # Eight hours: 98.9261 % crosses 99 %: 10 %.
        ((datetime(2026, 10, 10, 0, tzinfo=UTC), datetime(2026, 10, 10, 8, tzinfo=UTC)), "98.9261", "-10.00"),
        # Two hours: 99.7315 %, above target.
        ((datetime(2026, 10, 10, 0, tzinfo=UTC), datetime(2026, 10, 10, 2, tzinfo=UTC)), "99.7315", None),
    ],
)
def test_uptime_from_offline_intervals_turns_into_service_credits(
    contract_a: Contract,
    fleet_a: Installed,
    outage: tuple[datetime, datetime],
    uptime: str,
    credit: str | None,
) -> None:
    status_change(fleet_a.asset, "online", datetime(2026, 9, 1, tzinfo=UTC), previous="never_seen")
    status_change(fleet_a.asset, "offline", outage[0])
    status_change(fleet_a.asset, "online", outage[1], previous="offline")

    bill_period("2026-10", now=AFTER_OCTOBER)

    invoice = Invoice.objects.get()
    assert invoice.uptime == Decimal(uptime)
    credits = [str(line.amount) for line in invoice.lines.filter(kind="service_credit")]
    assert credits == ([credit] if credit else [])


def test_uptime_is_measured_only_until_now_for_the_running_month(
    contract_a: Contract, fleet_a: Installed
) -> None:
    status_change(fleet_a.asset, "offline", datetime(2026, 10, 10, 0, tzinfo=UTC))
    # Offline from the 10th until "now" on the 11th: one of ten and a bit days.
    now = datetime(2026, 10, 11, 0, tzinfo=UTC)
    result = availability.percentages([contract_a], metering.period_of("2026-10", "Europe/Berlin"), now=now)
    covered_hours = Decimal((now - datetime(2026, 9, 30, 22, tzinfo=UTC)).total_seconds() / 3600)
    assert result[str(contract_a.pk)] == (100 * (covered_hours - 24) / covered_hours).quantize(
        Decimal("0.0001"), rounding="ROUND_DOWN"
    )


def test_usage_of_an_asset_counts_only_while_it_was_covered(contract_a: Contract, fleet_a: Installed) -> None:
    services.contract_remove_asset(
        actor=None, contract=contract_a, asset=fleet_a.asset, at=datetime(2026, 10, 15, tzinfo=UTC)
    )
    usage(fleet_a.asset, datetime(2026, 10, 14, 23, tzinfo=UTC), "3")
    usage(fleet_a.asset, datetime(2026, 10, 15, 0, tzinfo=UTC), "30")

    bill_period("2026-10", now=AFTER_OCTOBER)

    assert Invoice.objects.get().lines.get(metric="run_hours").quantity == Decimal("3")


@pytest.mark.django_db(transaction=True)
def test_twenty_concurrent_runs_leave_one_invoice_per_contract(
    contract_a: Contract, contract_b: Contract, fleet_a: Installed
) -> None:
    usage(fleet_a.asset, datetime(2026, 10, 3, 10, tzinfo=UTC), "10")
    errors: list[BaseException] = []
    start = threading.Barrier(20)

    def run() -> None:
        try:
            start.wait()
            bill_period("2026-10", now=AFTER_OCTOBER)
        except BaseException as error:  # noqa: BLE001 - reported by the assertion below
            errors.append(error)
        finally:
            close_old_connections()

    threads = [threading.Thread(target=run) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert sorted(Invoice.objects.values_list("contract__number", flat=True)) == sorted(
        [contract_a.number, contract_b.number]
    )
    assert InvoiceLine.objects.count() == 6
    assert Invoice.objects.get(contract=contract_a).lines.get(metric="run_hours").amount == Decimal("5.00")


def test_an_asset_is_never_covered_twice_at_once(contract_a: Contract, fleet_a: Installed) -> None:
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError, match="already covered by this contract"):
        services.contract_add_asset(
            actor=None,
            contract=contract_a,
            asset=fleet_a.asset,
            covered_from=datetime(2026, 3, 1, tzinfo=UTC),
        )
    services.contract_remove_asset(
        actor=None, contract=contract_a, asset=fleet_a.asset, at=datetime(2026, 10, 15, tzinfo=UTC)
    )
    with pytest.raises(ValidationError):  # re-adding from before the removal would overlap
        services.contract_add_asset(
            actor=None,
            contract=contract_a,
            asset=fleet_a.asset,
            covered_from=datetime(2026, 10, 1, tzinfo=UTC),
        )
    services.contract_add_asset(
        actor=None, contract=contract_a, asset=fleet_a.asset, covered_from=datetime(2026, 10, 20, tzinfo=UTC)
    )
    usage(fleet_a.asset, datetime(2026, 10, 10, tzinfo=UTC), "1")
    usage(fleet_a.asset, datetime(2026, 10, 17, tzinfo=UTC), "10")  # not covered: between the two
    usage(fleet_a.asset, datetime(2026, 10, 21, tzinfo=UTC), "100")
    bill_period("2026-10", now=AFTER_OCTOBER)
    assert Invoice.objects.get().lines.get(metric="run_hours").quantity == Decimal("101")


def test_extending_a_contract_extends_its_coverage(
    customer_a: Customer, plan: Plan, fleet_a: Installed
) -> None:
    contract = contract_for(customer_a, plan, fleet_a.asset, date(2026, 1, 1), end_date=date(2026, 10, 10))
    services.contract_update(actor=None, contract=contract, end_date=None)
    usage(fleet_a.asset, datetime(2026, 10, 20, tzinfo=UTC), "7")
    bill_period("2026-10", now=AFTER_OCTOBER)
    invoice = Invoice.objects.get()
    assert invoice.lines.get(metric="run_hours").quantity == Decimal("7")
    assert invoice.lines.get(kind="period_fee").amount == Decimal("100.00")


def test_late_usage_of_an_ended_contract_is_still_billed(
    customer_a: Customer, plan: Plan, fleet_a: Installed
) -> None:
    contract = contract_for(customer_a, plan, fleet_a.asset, date(2026, 1, 1), end_date=date(2026, 10, 31))
    services.contract_update(actor=None, contract=contract, status="ended")
    bill_period("2026-10", now=AFTER_OCTOBER)
    services.invoice_finalize(actor=None, invoice=Invoice.objects.get())
    bill_period("2026-11", now=datetime(2026, 12, 2, tzinfo=UTC))
    assert Invoice.objects.count() == 1  # nothing late: no invoice for November

    usage(fleet_a.asset, datetime(2026, 10, 20, tzinfo=UTC), "8")  # arrives after October was billed
    bill_period("2026-12", now=datetime(2027, 1, 2, tzinfo=UTC))
    late = Invoice.objects.get(period="2026-12")
    assert [(x.kind, x.period, x.amount) for x in late.lines.all()] == [
        ("late_usage", "2026-10", Decimal("4.00"))
    ]


def test_a_run_whose_billing_raises_ends_failed_with_its_error_and_a_retry_completes_it(
    contract_a: Contract, fleet_a: Installed, finance: User, admin_b: User
) -> None:
    # Given a customer whose time zone was valid when stored and is gone from tzdata since
    # (2020b removed US/Pacific-New): the run cannot compute that customer's month.
    Customer.objects.filter(pk=contract_a.customer_id).update(time_zone="US/Pacific-New")
    usage(fleet_a.asset, datetime(2026, 10, 3, 8, tzinfo=UTC), "10")
    run = invoice_run_start(actor=finance, period="2026-10")

    # When the task runs it
    invoice_run_execute(str(run.pk))

    # Then the run is failed, not stuck, and says why: in the API, on the page and live.
    staff = client_for(finance)
    shown = staff.get(f"/api/v1/invoice-runs/{run.pk}/").json()
    assert shown["status"] == "failed"
    assert shown["error"] == "ZoneInfoNotFoundError: 'No time zone found with key US/Pacific-New'"
    assert shown["finished_at"] is not None
    page = staff.get("/billing/runs/").content.decode()
    assert "No time zone found with key US/Pacific-New" in page
    assert f'action="/billing/runs/{run.pk}/retry/"' in page
    assert not Invoice.objects.exists()
    # A second delivery of the task leaves it failed (only a retry queues it again).
    assert invoice_run_execute(str(run.pk)).status == "failed"
    # A customer admin can neither see nor retry it.
    assert client_for(admin_b).post(f"/api/v1/invoice-runs/{run.pk}/retry/").status_code in (403, 404)

    # When finance fixes the cause and retries
    Customer.objects.filter(pk=contract_a.customer_id).update(time_zone="America/Los_Angeles")
    response = staff.post(f"/api/v1/invoice-runs/{run.pk}/retry/")
    assert response.status_code == 202
    assert (response.json()["status"], response.json()["error"]) == ("queued", "")
    assert OutboxMessage.objects.filter(task="billing.invoice_run").count() == 2  # start, retry
    invoice_run_execute(str(run.pk))

    # Then the same run completes the month.
    run.refresh_from_db()
    assert (run.status, run.error, run.processed, run.created_count) == ("done", "", 1, 1)
    assert Invoice.objects.get().run_id == run.pk
    # And a run that is not failed cannot be retried: a 400 with the reason, on the page too.
    again = staff.post(f"/api/v1/invoice-runs/{run.pk}/retry/")
    assert again.status_code == 400
    assert again.json()["detail"] == "Only a failed run can be retried; this one is done."
    followed = staff.post(f"/billing/runs/{run.pk}/retry/", follow=True)
    assert "Only a failed run can be retried; this one is done." in followed.content.decode()
    audit = AuditEntry.objects.filter(action__startswith="invoice_run.").order_by("created_at")
    assert list(audit.values_list("action", flat=True)) == [
        "invoice_run.started",
        "invoice_run.retried",
    ]


def test_the_retry_button_queues_a_failed_run_again(contract_a: Contract, finance: User) -> None:
    run = InvoiceRun.objects.create(period="2026-10", started_by=finance, status="failed", error="Boom")
    response = client_for(finance).post(f"/billing/runs/{run.pk}/retry/", follow=True)
    assert "Invoice run for 2026-10 queued again." in response.content.decode()
    run.refresh_from_db()
    assert (run.status, run.error) == ("queued", "")
