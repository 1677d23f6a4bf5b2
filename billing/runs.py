"""The invoice run: one draft invoice per billable contract and period, idempotently.

    run = invoice_run_start(actor=user, period="2026-10")   # queues billing.invoice_run
    invoice_run_execute(run.pk)                             # what the Celery task does

Contracts are billed in chunks, each chunk in one transaction:

1. meter the chunk (usage sums by the database, availability from the status history —
   docs/availability.md —, grouped by customer time zone);
2. re-meter earlier finalized periods of those contracts for late usage;
3. insert the missing invoices with ON CONFLICT DO NOTHING — the partial unique index
   `one_live_invoice_per_contract_period` lets exactly one live invoice exist per contract and
   period however many runs race — then lock every live invoice of the chunk in a fixed order;
4. replace the lines of the drafts (finalized and paid invoices are left alone).

Re-running changes nothing when nothing changed; a draft picks up usage that arrived since.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, cast

from django.conf import settings
from django.core.exceptions import ValidationError
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
    InvoiceRunStatus,
    InvoiceStatus,
)
from billing.money import ZERO, money_context
from billing.rating import Line, Pricing, billed_quantities, rate_period, totals
from portal import live, outbox
from portal.models import User
from portal.services import audit_record

log = logging.getLogger(__name__)

CHUNK = 500
LIVE_INVOICE = ~Q(status=InvoiceStatus.VOID)
BILLED = Q(status__in=[InvoiceStatus.FINALIZED, InvoiceStatus.PAID])


def invoice_run_start(*, actor: User | None, period: str) -> InvoiceRun:
    """Record a run for `period` (YYYY-MM) and queue it through the outbox: committed with the
    run, so a broker outage delays the run but never leaves it queued for good."""
    from billing.tasks import invoice_run

    metering.parse_period(period)
    with transaction.atomic():
        run = InvoiceRun.objects.create(period=period, started_by=actor)
        audit_record(actor=actor, action="invoice_run.started", target=run, data={"period": period})
        outbox.enqueue(invoice_run, run_id=str(run.pk))
    return run


class InvoiceRunStateError(ValidationError):
    """A retry of a run that has not failed."""


@transaction.atomic
def invoice_run_retry(*, actor: User | None, run: InvoiceRun) -> InvoiceRun:
    """Queue a failed run again, once its cause is fixed: the same run, its counts and error
    cleared, the task through the outbox. Only a `failed` run moves (a conditional UPDATE: two
    finance users pressing retry at once queue it once); anything else is InvoiceRunStateError.
    What the failed attempt committed stays: a run is idempotent, so the retry completes it."""
    from billing.tasks import invoice_run

    moved = InvoiceRun.objects.filter(pk=run.pk, status=InvoiceRunStatus.FAILED).update(
        status=InvoiceRunStatus.QUEUED,
        error="",
        processed=0,
        created_count=0,
        updated_count=0,
        skipped_count=0,
        started_at=None,
        finished_at=None,
    )
    run.refresh_from_db()
    if not moved:
        raise InvoiceRunStateError(f"Only a failed run can be retried; this one is {run.status}.")
    audit_record(actor=actor, action="invoice_run.retried", target=run, data={"period": run.period})
    outbox.enqueue(invoice_run, run_id=str(run.pk))
    transaction.on_commit(lambda: publish_progress(run))
    return run


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


def bill_period(
    period_label: str, *, run: InvoiceRun | None = None, now: datetime | None = None
) -> dict[str, int]:
    """Bill every billable contract for `period_label`; returns counts. Safe to call concurrently."""
    now = now or timezone.now()
    counts = {"processed": 0, "created": 0, "updated": 0, "skipped": 0}
    for chunk in contract_chunks(period_label):
        for attempt in range(5):
            try:
                with transaction.atomic():
                    drafts = compute_chunk(chunk, period_label, now)
                    created, updated, skipped = write_chunk(drafts, run)
                break
            except OperationalError as error:  # a deadlock or serialization failure: retry the chunk
                if attempt == 4 or "deadlock" not in str(error).lower():
                    raise
                time.sleep(0.05 * (attempt + 1))
        counts["processed"] += len(chunk)
        counts["created"] += created
        counts["updated"] += updated
        counts["skipped"] += skipped
        if run is not None:
            _progress(run, counts)
    return counts


def _progress(run: InvoiceRun, counts: dict[str, int]) -> None:
    run.processed = counts["processed"]
    run.created_count, run.updated_count, run.skipped_count = (
        counts["created"],
        counts["updated"],
        counts["skipped"],
    )
    run.save(update_fields=["processed", "created_count", "updated_count", "skipped_count"])
    publish_progress(run)


def publish_progress(run: InvoiceRun) -> None:
    """Tell finance's open pages how far the run got (counts only: no customer data)."""
    try:
        live.publish(
            live.STAFF_GROUP,
            {
                "type": "invoice_run.progress",
                "run": str(run.pk),
                "period": run.period,
                "started": run.created_at.isoformat(),
                "started_by": run.started_by.email if run.started_by else None,
                "status": run.status,
                "processed": run.processed,
                "total": run.total,
                "percent": run.percent,
                "created": run.created_count,
                "updated": run.updated_count,
                "skipped": run.skipped_count,
                "error": run.error,
            },
        )
    except Exception:
        log.warning("invoice run %s: could not publish progress", run.pk, exc_info=True)


def invoice_run_execute(run_id: str) -> InvoiceRun:
    """What the task `billing.invoice_run` does: claim the run, bill its period, and end it
    `done` or `failed` with the error, whatever raised (a run never stays `running` because
    its task raised). A run that is `done` or `failed` already stays so (a second delivery);
    a `running` one is claimed again (the redelivery of a task whose worker died)."""
    claimed = InvoiceRun.objects.filter(
        pk=run_id, status__in=[InvoiceRunStatus.QUEUED, InvoiceRunStatus.RUNNING]
    ).update(status=InvoiceRunStatus.RUNNING, started_at=timezone.now(), error="")
    run = InvoiceRun.objects.select_related("started_by").get(pk=run_id)
    if not claimed:
        return run
    try:
        run.total = billable_contracts(run.period).count()
        run.save(update_fields=["total"])
        publish_progress(run)
        assert run.started_at is not None  # set by the claim
        bill_period(run.period, run=run, now=run.started_at)
    except Exception as error:
        log.exception("invoice run %s failed", run.pk)
        run.status, run.error = InvoiceRunStatus.FAILED, f"{type(error).__name__}: {error}"[:2000]
    else:
        run.status = InvoiceRunStatus.DONE
    run.finished_at = timezone.now()
    run.save(update_fields=["status", "error", "finished_at"])
    publish_progress(run)
    return run
