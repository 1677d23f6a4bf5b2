"""Revenue per currency: billed revenue by customer, net of credit notes, and billed usage by
meter, per billing period (docs/billing.md, "Revenue"). Never a sum across currencies."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.contrib.auth.decorators import login_required
from django.db.models import QuerySet, Sum
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from billing.models import CreditNote, Invoice, InvoiceLine, InvoiceStatus
from billing.rating import LineKind
from fleet.models import MetricDefinition
from portal.roles import Capability
from portal.views import require_capability

ZERO = Decimal("0")


@dataclass
class CustomerMonth:
    period: str
    customer: str
    billed: Decimal = ZERO
    credited: Decimal = ZERO

    @property
    def net(self) -> Decimal:
        return self.billed - self.credited


@dataclass
class CurrencyRevenue:
    """One currency's figures: they are only ever added to figures of the same currency."""

    currency: str
    rows: dict[tuple[str, str], CustomerMonth] = field(default_factory=dict)
    meters: dict[str, dict[str, Any]] = field(default_factory=dict)

    def row(self, period: str, customer: str) -> CustomerMonth:
        return self.rows.setdefault((period, customer), CustomerMonth(period, customer))

    @property
    def billed(self) -> Decimal:
        return sum((r.billed for r in self.rows.values()), ZERO)

    @property
    def credited(self) -> Decimal:
        return sum((r.credited for r in self.rows.values()), ZERO)

    @property
    def net(self) -> Decimal:
        return self.billed - self.credited

    def table(self) -> list[CustomerMonth]:
        return sorted(self.rows.values(), key=lambda r: (-int(r.period.replace("-", "")), r.customer))

    def chart(self) -> dict[str, Any]:
        customers: dict[str, dict[str, str]] = defaultdict(dict)
        for r in self.rows.values():
            customers[r.customer][r.period] = str(r.net)
        return {"currency": self.currency, "net": customers, "meters": list(self.meters.values())}


def meter_names(billed: QuerySet[Invoice]) -> dict[str, tuple[str, str]]:
    """{metric code: (name, unit)}: the component's label in the invoices' pricing snapshots,
    else the metric's label on an asset model, else the code."""
    names: dict[str, tuple[str, str]] = {}
    for pricing in billed.order_by().values_list("pricing", flat=True).distinct():
        for component in (pricing or {}).get("components") or []:
            if component.get("label") and component["metric"] not in names:
                names[component["metric"]] = (component["label"], component.get("unit", ""))
    for code, label, unit in MetricDefinition.objects.order_by("code").values_list("code", "label", "unit"):
        if code not in names and label:
            names[code] = (label, unit)
    return names


def revenue_by_currency(billed: QuerySet[Invoice]) -> list[CurrencyRevenue]:
    """Billed subtotals (before tax) by currency, billing period and customer; credit notes
    subtracted in the period of the invoice they credit; usage by meter and the period it
    was used in (late usage counts in its own month)."""
    by_currency: dict[str, CurrencyRevenue] = {}

    def of(currency: str) -> CurrencyRevenue:
        return by_currency.setdefault(currency, CurrencyRevenue(currency))

    invoiced = billed.values("period", "customer__name", "currency").annotate(total=Sum("subtotal"))
    for row in invoiced.order_by():
        of(row["currency"]).row(row["period"], row["customer__name"]).billed += row["total"]
    credited = (
        CreditNote.objects.filter(invoice__in=billed)
        .values("invoice__period", "invoice__customer__name", "invoice__currency")
        .annotate(amount=Sum("amount"))
        .order_by()
    )
    for note in credited:
        month = of(note["invoice__currency"]).row(note["invoice__period"], note["invoice__customer__name"])
        month.credited += note["amount"]
    names = meter_names(billed)
    usage = (
        InvoiceLine.objects.filter(invoice__in=billed, kind__in=[LineKind.USAGE, LineKind.LATE_USAGE])
        .values("invoice__currency", "period", "metric")
        .annotate(quantity=Sum("quantity"), amount=Sum("amount"))
        .order_by("metric", "period")
    )
    for line in usage:
        metric = line["metric"]
        name, unit = names.get(metric, (metric, ""))
        meter = of(line["invoice__currency"]).meters.setdefault(
            metric, {"metric": metric, "name": name, "unit": unit, "quantity": {}, "amount": {}}
        )
        meter["quantity"][line["period"]] = str(line["quantity"] or ZERO)
        meter["amount"][line["period"]] = str(line["amount"])
    return [by_currency[c] for c in sorted(by_currency)]


@login_required
def revenue(request: HttpRequest) -> HttpResponse:
    """Revenue per currency from finalized and paid invoices, net of their credit notes."""
    require_capability(request, Capability.RUN_INVOICES)
    billed = Invoice.objects.visible_to(request.user).filter(
        status__in=[InvoiceStatus.FINALIZED, InvoiceStatus.PAID]
    )
    currencies = revenue_by_currency(billed)
    return render(
        request,
        "billing/revenue.html",
        {
            "currencies": currencies,
            "chart_data": {"currencies": [c.chart() for c in currencies]},
        },
    )
