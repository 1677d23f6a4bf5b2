"""The demo's billing: a plan and a contract per demo customer, and usage history to bill.

The simulator only makes live heartbeats, so finance would have nothing to invoice for last
month; this seeds believable hourly usage from the start of the month before last up to the
current hour (never overwriting what the pipeline already recorded), and one long outage last
month so that the demo invoice shows a service credit. The month before last is already
billed and finalized (on the 1st of last month, so its invoices are due by now): Acme paid in
full, Borealis paid part, Calypso nothing yet — the overdue page and the reminders have work.
Last month is left for finance to run. Idempotent like the rest of the demo.
"""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.utils import timezone

from billing import demo_volume, metering, overrides, payments, services
from billing.invoicing import bill_period
from billing.models import Contract, Invoice, InvoiceStatus, Plan
from fleet.models import Asset, AssetStatusChange, HourlyUsage
from portal.models import Customer

CREDITS = [{"below": "99.5", "credit_percent": "5"}, {"below": "99", "credit_percent": "10"}]
RESPONSE = {"P1": 60, "P2": 240, "P3": 480, "P4": 1440}
RESOLUTION = {"P1": 480, "P2": 1440, "P3": 4320, "P4": 10080}

PLANS = {
    "utility-eur": {
        "code": "utility-eur",
        "name": "Air & cold as a service",
        "currency": "EUR",
        "period_fee": Decimal("450.00"),
        "minimum_commitment": Decimal("1500.00"),
        "components": [
            {"metric": "run_hours", "label": "Run hours", "unit": "h", "charge_model": "per_unit",
             "unit_price": Decimal("1.20"), "included_units": Decimal("100")},
            {"metric": "energy_kwh", "label": "Energy", "unit": "kWh", "charge_model": "graduated",
             "tiers": [{"up_to": "5000", "unit_price": "0.18"}, {"up_to": "20000", "unit_price": "0.15"},
                       {"up_to": None, "unit_price": "0.12"}]},
            {"metric": "cycles", "label": "Pump cycles", "unit": "cycles", "charge_model": "package",
             "package_size": Decimal("1000"), "package_price": Decimal("4.50")},
        ],
    },
    "cold-usd": {
        "code": "cold-usd",
        "name": "Cold chain as a service",
        "currency": "USD",
        "period_fee": Decimal("600.00"),
        "minimum_commitment": None,
        "components": [
            {"metric": "run_hours", "label": "Run hours", "unit": "h", "charge_model": "volume",
             "tiers": [{"up_to": "500", "unit_price": "1.50"}, {"up_to": "2000", "unit_price": "1.25"},
                       {"up_to": None, "unit_price": "1.00", "flat_fee": "50"}]},
            {"metric": "energy_kwh", "label": "Energy", "unit": "kWh", "charge_model": "per_unit",
             "unit_price": Decimal("0.14")},
            {"metric": "cycles", "label": "Pump cycles", "unit": "cycles", "charge_model": "per_unit",
             "unit_price": Decimal("0.004"), "included_units": Decimal("2000")},
        ],
    },
}  # fmt: skip

# customer slug -> (plan code, the customer's purchase order its invoices print). Calypso rents
# no machine yet: its invoices bill the period fee and the minimum commitment, under reverse charge.
CONTRACTS = {
    "acme": ("utility-eur", "4500012345"),
    "borealis": ("cold-usd", "PO-BCS-2026-117"),
    "calypso": ("utility-eur", "CD/INK/2026/0042"),
}

# Negotiated prices: Acme pays less per run hour than the plan's 1.20, with more included.
NEGOTIATED = {
    "acme": {"metric": "run_hours", "label": "Run hours", "unit": "h", "charge_model": "per_unit",
             "unit_price": Decimal("1.05"), "included_units": Decimal("150"),
             "note": "Negotiated for 2026, framework agreement FA-17"},
}  # fmt: skip

# Per model: (run share by day, by night, kWh per run hour, cycles per run hour).
PROFILES = {
    "aircomp-75": (Decimal("0.85"), Decimal("0.25"), Decimal("58"), Decimal("0")),
    "frostline-200": (Decimal("0.75"), Decimal("0.6"), Decimal("41"), Decimal("0")),
    "hydro-p40": (Decimal("0.5"), Decimal("0.1"), Decimal("0"), Decimal("24")),
}
OUTAGE_SERIAL = "AC75-1002"  # offline for 20 hours last month: a 5 % service credit


def seed(customers: dict[str, Customer]) -> dict[str, int]:
    now = timezone.now()
    for slug, (code, purchase_order) in CONTRACTS.items():
        customer = customers[slug]
        spec = PLANS[code]
        plan = Plan.objects.filter(code=code).first() or services.plan_create(actor=None, **spec)  # type: ignore[arg-type]
        number = f"{slug.upper()}-2026-01"
        assets = list(Asset.objects.filter(customer=customer).order_by("serial_number"))
        if not Contract.objects.filter(number=number).exists():
            services.contract_create(
                actor=None, customer=customer, plan=plan, number=number, start_date=date(2026, 1, 1),
                assets=assets, uptime_target=Decimal("99.5"), service_credits=CREDITS,
                first_response_minutes=RESPONSE, resolution_minutes=RESOLUTION, purchase_order=purchase_order,
            )  # fmt: skip
        else:  # a demo seeded before purchase orders: brought back to the values above
            Contract.objects.filter(number=number).update(purchase_order=purchase_order)
        contract = Contract.objects.get(number=number)
        if slug in NEGOTIATED and not contract.price_overrides.exists():
            overrides.override_set(actor=None, contract=contract, **NEGOTIATED[slug])  # type: ignore[arg-type]
        history_from = metering.period_containing(now, customer.time_zone).previous().previous().start
        _usage_history(assets, history_from, now)
        _outage(assets, metering.period_containing(now, customer.time_zone).previous())
    _books_of_the_month_before_last(customers, now)
    last_month = metering.period_containing(now, "UTC").previous()
    branches = demo_volume.seed(Plan.objects.get(code="utility-eur"), starts=last_month.first_day)
    return {
        "plans": Plan.objects.count(),
        "contracts": Contract.objects.filter(customer__in=customers.values()).count(),
        **branches,
    }


# How much of its invoice for the month before last each demo customer has paid.
PAID_SHARE = {"acme": Decimal("1"), "borealis": Decimal("0.4"), "calypso": Decimal("0")}


def _books_of_the_month_before_last(customers: dict[str, Customer], now: datetime) -> None:
    last = metering.period_containing(now, "UTC").previous()
    label = last.previous().label
    numbers = [f"{slug.upper()}-2026-01" for slug in CONTRACTS]
    if Invoice.objects.filter(period=label, contract__number__in=numbers).exists():
        return  # billed on an earlier start: leave finance's books alone
    bill_period(label, now=last.start + timedelta(hours=6))
    finalized_at = last.start + timedelta(hours=9)
    for slug, share in PAID_SHARE.items():
        invoice = Invoice.objects.filter(
            period=label, contract__number=f"{slug.upper()}-2026-01", status=InvoiceStatus.DRAFT
        ).first()
        if invoice is None:
            continue
        invoice = services.invoice_finalize(actor=None, invoice=invoice, at=finalized_at)
        amount = (invoice.amount_due * share).quantize(Decimal("0.01"))
        if amount > 0:
            payments.payment_record(
                actor=None, invoice=invoice, amount=amount, method="bank_transfer",
                received_on=(finalized_at + timedelta(days=12)).date(),
                reference=f"SEPA {customers[slug].name[:20]} {invoice.number}",
            )  # fmt: skip


def _usage_history(assets: list[Asset], since: datetime, now: datetime) -> None:
    until = now.replace(minute=0, second=0, microsecond=0)
    rows: list[HourlyUsage] = []
    for asset in assets:
        day_share, night_share, kwh, cycles = PROFILES.get(asset.model.code, PROFILES["aircomp-75"])
        rng = random.Random(asset.serial_number)  # noqa: S311 - demo data, the same on every machine
        zone = ZoneInfo(asset.site.time_zone or asset.customer.time_zone)
        counters = set(asset.model.metrics.filter(kind="counter").values_list("code", flat=True))
        hour = since
        while hour < until:
            local = hour.astimezone(zone)
            working = local.weekday() < 6 and 6 <= local.hour < 22
            share = (day_share if working else night_share) * Decimal(rng.randint(70, 100)) / 100
            run = share.quantize(Decimal("0.001"))
            metered = {"run_hours": run, "energy_kwh": (run * kwh).quantize(Decimal("0.01")),
                       "cycles": (run * cycles).quantize(Decimal("1"))}  # fmt: skip
            for metric, quantity in metered.items():
                if quantity and metric in counters:
                    rows.append(
                        HourlyUsage(
                            customer_id=asset.customer_id,
                            asset=asset,
                            metric=metric,
                            hour=hour,
                            quantity=quantity,
                        )
                    )
            hour += timedelta(hours=1)
    # Hours the ingest pipeline already recorded keep their real figures.
    HourlyUsage.objects.bulk_create(rows, ignore_conflicts=True, batch_size=2000)


def _outage(assets: list[Asset], period: metering.Period) -> None:
    asset = next((a for a in assets if a.serial_number == OUTAGE_SERIAL), None)
    if asset is None:
        return
    went = (period.start + timedelta(days=9, hours=2)).astimezone(UTC)
    came_back = went + timedelta(hours=20)
    for status, previous, at in (("offline", "online", went), ("online", "offline", came_back)):
        AssetStatusChange.objects.get_or_create(
            asset=asset,
            at=at,
            defaults={"customer_id": asset.customer_id, "status": status, "previous": previous},
        )
