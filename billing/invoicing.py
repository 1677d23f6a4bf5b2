"""Computing and writing invoices: one draft per billable contract and period, a chunk at a time.

    drafts = compute_chunk(contracts, "2026-10", now)   # meter, rate: no writes
    write_chunk(drafts, run)                            # insert, lock, replace the drafts' lines
    bill_period("2026-10")                              # every billable contract, in this process

The invoice run (`billing.runs`) calls these for each of its chunks; `bill_period` bills a
whole period in the calling process (the demo data and tests). A chunk is billed in one
transaction:

1. meter the chunk (usage sums by the database, availability from the status history —
   docs/availability.md —, grouped by customer time zone);
2. re-meter earlier finalized periods of those contracts for late usage;
3. insert the missing invoices with ON CONFLICT DO NOTHING — the partial unique index
   `one_live_invoice_per_contract_period` lets exactly one live invoice exist per contract and
   period however many runs race — then lock every live invoice of the chunk in a fixed order;
4. replace the lines of the drafts (finalized and paid invoices are left alone).

Re-billing changes nothing when nothing changed; a draft picks up usage that arrived since
(docs/billing.md, "The invoice run").
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar, cast

from django.conf import settings
from django.db import OperationalError, connection, transaction
from django.db.models import Field, Q
from django.utils import timezone

from billing import availability, metering
from billing.late_usage import late_usage_lines
from billing.metering import Period
from billing.models import (
    BILLABLE_CONTRACT_STATUSES,
    Contract,
    Invoice,
    InvoiceLine,
    InvoiceRun,
    InvoiceStatus,
)
from billing.money import ZERO, money_context
from billing.rating import Line, Pricing, billed_quantities, rate_period, totals

CHUNK = 500  # contracts per chunk: one transaction, one task
LIVE_INVOICE = ~Q(status=InvoiceStatus.VOID)


def billable_contracts(period_label: str) -> Any:
    """Contracts that run on at least one day of the month (dates are the customer's own), and
    those that ended within the late-usage lookback (their late usage still gets billed)."""
    probe = metering.period_of(period_label, "UTC")  # local dates are the same in every zone
    since = metering.period_of(_months_back(period_label, settings.BILLING_LATE_USAGE_MONTHS), "UTC")
    return Contract.objects.filter(
        Q(end_date__isnull=True) | Q(end_date__gte=since.first_day),
        status__in=BILLABLE_CONTRACT_STATUSES,
        start_date__lte=probe.last_day,
    )


def contract_chunks(period_label: str) -> Iterator[list[Contract]]:
    last_pk = None
    base = billable_contracts(period_label).select_related("customer", "plan").order_by("pk")
    while True:
        page = base.filter(pk__gt=last_pk) if last_pk is not None else base
        chunk = list(page.prefetch_related("plan__components", "price_overrides")[:CHUNK])
        if not chunk:
            return
        yield chunk
        last_pk = chunk[-1].pk


@dataclass
class Draft:
    """The computed content of one contract's invoice for the period."""

    contract: Contract
    period: Period
    pricing: Pricing
    lines: list[tuple[str, Line]]  # (the period each line bills, the line)
    billed_quantities: dict[str, dict[str, str]]
    uptime: Decimal | None


def compute_chunk(chunk: list[Contract], period_label: str, now: datetime) -> list[Draft]:
    by_zone: dict[str, list[Contract]] = defaultdict(list)
    for contract in chunk:
        by_zone[contract.customer.time_zone].append(contract)
    ids = [c.pk for c in chunk]
    # Earlier billed invoices (late usage) and what every live invoice billed for each period.
    lookback = settings.BILLING_LATE_USAGE_MONTHS
    earlier: dict[str, list[Invoice]] = defaultdict(list)
    billed_by: dict[str, dict[str, dict[str, Decimal]]] = defaultdict(lambda: defaultdict(dict))
    for invoice in Invoice.objects.filter(LIVE_INVOICE, contract_id__in=ids).only(
        "id", "contract_id", "period", "status", "number", "pricing", "billed_quantities"
    ):
        if invoice.period == period_label:
            continue  # the invoice being computed: its own lines are replaced
        key = str(invoice.contract_id)
        if invoice.period < period_label and invoice.status in (InvoiceStatus.FINALIZED, InvoiceStatus.PAID):
            earlier[key].append(invoice)
        for billed_period, per_metric in (invoice.billed_quantities or {}).items():
            for metric, quantity in per_metric.items():
                billed_by[key][billed_period][metric] = billed_by[key][billed_period].get(
                    metric, ZERO
                ) + Decimal(quantity)

    drafts: list[Draft] = []
    for zone, contracts in by_zone.items():
        period = metering.period_of(period_label, zone)
        zone_ids = [c.pk for c in contracts]
        used = metering.quantities(zone_ids, period)
        uptime = availability.percentages(contracts, period, now=now)  # docs/availability.md
        # Current quantities of earlier periods with a billed invoice, one query per period.
        recheck: dict[str, list[Any]] = defaultdict(list)
        for contract in contracts:
            for old in earlier.get(str(contract.pk), []):
                if old.period >= _months_back(period_label, lookback):
                    recheck[old.period].append(contract.pk)
        current: dict[str, dict[str, dict[str, Decimal]]] = defaultdict(dict)
        for old_label, old_ids in recheck.items():
            for contract_id, per_metric in metering.quantities(
                old_ids, metering.period_of(old_label, zone)
            ).items():
                current[contract_id][old_label] = per_metric
        for contract in contracts:
            key = str(contract.pk)
            days = metering.active_days(contract, period)
            pricing = contract.pricing()
            recent = [o for o in earlier.get(key, []) if o.period >= _months_back(period_label, lookback)]
            late, late_billed = late_usage_lines(contract, period, recent, billed_by[key], current[key])
            if days == 0:  # an ended contract: an invoice only when late usage turned up
                if late:
                    drafts.append(Draft(contract, period, pricing, late, late_billed, None))
                continue
            quantities = used.get(key, {})
            lines = rate_period(
                pricing,
                quantities,
                active_days=days,
                days_in_period=period.days,
                uptime=uptime.get(key),
                uptime_target=contract.uptime_target,
                credit_schedule=contract.credit_schedule(),
            )
            billed = {
                period_label: {m: str(q) for m, q in billed_quantities(pricing, quantities).items()},
                **late_billed,
            }
            drafts.append(
                Draft(
                    contract,
                    period,
                    pricing,
                    [(period_label, line) for line in lines] + late,
                    billed,
                    uptime.get(key),
                )
            )
    return drafts


def _months_back(period_label: str, months: int) -> str:
    year, month = metering.parse_period(period_label)
    index = year * 12 + (month - 1) - months
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def write_chunk(drafts: list[Draft], run: InvoiceRun | None) -> tuple[int, int, int]:
    """Insert missing invoices, lock all, replace the drafts' lines. (created, updated, skipped)."""
    if not drafts:
        return 0, 0, 0
    period_label = drafts[0].period.label
    drafts.sort(key=lambda d: str(d.contract.pk))  # one lock order for every run
    contract_ids = [d.contract.pk for d in drafts]
    # One pricing snapshot per distinct plan price list in the chunk (contracts share plans),
    # not one `to_json()` per invoice; the dicts are only read (serialized) from here on.
    snapshots: dict[Pricing, dict[str, Any]] = {}
    for d in drafts:
        if d.pricing not in snapshots:
            snapshots[d.pricing] = d.pricing.to_json()
    fresh = [
        Invoice(
            customer_id=d.contract.customer_id,
            contract=d.contract,
            run=run,
            period=period_label,
            period_start=d.period.start,
            period_end=d.period.end,
            currency=d.pricing.currency,
            tax_rate=d.contract.customer.tax_rate,
            pricing=snapshots[d.pricing],
        )
        for d in drafts
    ]
    existing_before = set(
        Invoice.objects.filter(LIVE_INVOICE, contract_id__in=contract_ids, period=period_label).values_list(
            "contract_id", flat=True
        )
    )
    Invoice.objects.bulk_create(
        [i for i in fresh if i.contract_id not in existing_before], ignore_conflicts=True
    )
    locked = {
        invoice.contract_id: invoice
        for invoice in Invoice.objects.select_for_update()
        .filter(LIVE_INVOICE, contract_id__in=contract_ids, period=period_label)
        .order_by("contract_id")
    }
    drafts_to_write = [(d, locked[d.contract.pk]) for d in drafts if locked[d.contract.pk].is_draft]
    skipped = len(drafts) - len(drafts_to_write)
    InvoiceLine.objects.filter(invoice__in=[invoice for _, invoice in drafts_to_write]).delete()
    new_lines: list[InvoiceLine] = []
    with money_context():
        for draft, invoice in drafts_to_write:
            amounts = totals(
                [line for _, line in draft.lines], draft.contract.customer.tax_rate, draft.pricing.currency
            )
            for position, (billed_period, line) in enumerate(draft.lines, start=1):
                new_lines.append(
                    InvoiceLine(
                        invoice=invoice,
                        position=position,
                        kind=line.kind,
                        description=line.description[:300],
                        metric=line.metric,
                        period=billed_period,
                        quantity=line.quantity,
                        unit_price=line.unit_price,
                        amount=line.amount,
                        detail=line.detail,
                    )
                )
            invoice.pricing = snapshots[draft.pricing]
            invoice.billed_quantities = draft.billed_quantities
            invoice.tax_rate = draft.contract.customer.tax_rate
            invoice.currency = draft.pricing.currency
            invoice.uptime = draft.uptime
            invoice.subtotal, invoice.tax, invoice.total = amounts.subtotal, amounts.tax, amounts.total
            invoice.amount_due = amounts.total  # a draft owes its total; payments come after finalizing
            invoice.updated_at = timezone.now()
            if run is not None and invoice.run_id is None:
                invoice.run = run
    InvoiceLine.objects.bulk_create(new_lines)
    _update_drafts([invoice for _, invoice in drafts_to_write])
    ours = {invoice.pk for invoice in fresh}
    created = sum(1 for _, invoice in drafts_to_write if invoice.pk in ours)
    return created, len(drafts_to_write) - created, skipped


# What a run rewrites on a draft invoice (everything else was set when it was inserted).
DRAFT_FIELDS = (
    "pricing",
    "billed_quantities",
    "tax_rate",
    "currency",
    "uptime",
    "subtotal",
    "tax",
    "total",
    "amount_due",
    "updated_at",
    "run",
)


def _update_drafts(invoices: list[Invoice]) -> None:
    """Write DRAFT_FIELDS of `invoices`: one UPDATE by primary key each, sent together.

    `bulk_update` would do the same in one statement, but it builds a CASE WHEN expression per
    invoice and field and resolves each through the ORM: ~1.5 s of Python per chunk of 500
    invoices, the largest cost of a run (docs/performance.md, S4). The invoices are drafts
    locked FOR UPDATE by this transaction; `status = 'draft'` in the WHERE clause keeps the
    database itself from touching anything else, as `Invoice.save()` would refuse it.
    """
    if not invoices:
        return
    meta = Invoice._meta
    fields: list[Field[Any, Any]] = [cast("Field[Any, Any]", meta.get_field(name)) for name in DRAFT_FIELDS]
    key: list[Field[Any, Any]] = [cast("Field[Any, Any]", meta.get_field(name)) for name in ("id", "status")]
    quote = connection.ops.quote_name
    assignments = ", ".join(f"{quote(cast(str, field.column))} = %s" for field in fields)
    condition = " AND ".join(f"{quote(cast(str, field.column))} = %s" for field in key)
    sql = f"UPDATE {quote(meta.db_table)} SET {assignments} WHERE {condition}"  # noqa: S608 - our names
    rows = [
        [field.get_db_prep_save(getattr(invoice, field.attname), connection) for field in fields]
        + [
            key[0].get_db_prep_save(invoice.pk, connection),
            key[1].get_db_prep_save(InvoiceStatus.DRAFT, connection),
        ]
        for invoice in invoices
    ]
    with connection.cursor() as cursor:
        cursor.executemany(sql, rows)


def bill_period(period_label: str, *, now: datetime | None = None) -> dict[str, int]:
    """Bill every billable contract for `period_label` in this process, chunk after chunk;
    returns counts. Safe to call concurrently (a run's tasks use the chunks of its plan)."""
    now = now or timezone.now()
    counts = {"processed": 0, "created": 0, "updated": 0, "skipped": 0}
    for chunk in contract_chunks(period_label):
        created, updated, skipped = retrying_deadlocks(
            lambda chunk=chunk: write_chunk(compute_chunk(chunk, period_label, now), None)  # type: ignore[misc]
        )
        release(chunk)
        counts["processed"] += len(chunk)
        counts["created"] += created
        counts["updated"] += updated
        counts["skipped"] += skipped
    return counts


def release(contracts: list[Contract]) -> None:
    """Drop the relations prefetched on a billed chunk's contracts and their plans.

    A prefetched relation is a queryset that refers back to its instance, so every contract of
    a chunk (with its customer and plan) sits in a reference cycle that only Python's cyclic
    collector frees, not the end of the chunk. A Celery pool process runs a full collection
    rarely (portal/runtime.py), and the garbage of 16 chunks (~5 MB each) piled up before one
    did: a worker's peak RSS grew with the number of chunks it billed (docs/performance.md,
    S4). Without the caches, a chunk's objects are freed as soon as its lists are."""
    for contract in contracts:
        vars(contract).pop("_prefetched_objects_cache", None)
        vars(contract.plan).pop("_prefetched_objects_cache", None)


T = TypeVar("T")


def retrying_deadlocks(work: Callable[[], T]) -> T:
    """`work()` in a transaction, again (up to five times) when PostgreSQL broke a deadlock."""
    for attempt in range(5):
        try:
            with transaction.atomic():
                return work()
        except OperationalError as error:  # a deadlock or serialization failure: retry the chunk
            if attempt == 4 or "deadlock" not in str(error).lower():
                raise
            time.sleep(0.05 * (attempt + 1))
    raise AssertionError("unreachable")
