"""The invoice run: one draft invoice per billable contract and period, idempotently.

    run = invoice_run_start(actor=user, period="2026-10")   # queues billing.invoice_run
    invoice_run_execute(run.pk)                             # what the Celery task does

The run's task cuts the billable contracts into chunks by key (`InvoiceRunChunk` rows, at most
CHUNK contracts each) and queues one task `billing.invoice_run_chunk` per chunk through the
outbox, so every worker takes chunks; the run's own task bills the ones still untaken, from
the last down. Each chunk is billed in one transaction that holds its row's lock:

1. meter the chunk (usage sums by the database, availability from the status history —
   docs/availability.md —, grouped by customer time zone);
2. re-meter earlier finalized periods of those contracts for late usage;
3. insert the missing invoices with ON CONFLICT DO NOTHING — the partial unique index
   `one_live_invoice_per_contract_period` lets exactly one live invoice exist per contract and
   period however many runs race — then lock every live invoice of the chunk in a fixed order;
4. replace the lines of the drafts (finalized and paid invoices are left alone);
5. record the chunk's counts and mark it billed, so a redelivered task counts nothing twice.

The run's counts are the sums of its billed chunks'; the task that finds no chunk left ends
the run `done` (docs/billing.md, "The invoice run"). Re-running changes nothing when nothing
changed; a draft picks up usage that arrived since.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar, cast
from uuid import UUID

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import OperationalError, connection, transaction
from django.db.models import F, Field, Q, Sum, Value
from django.db.models.functions import Greatest
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
    InvoiceRunChunk,
    InvoiceRunStatus,
    InvoiceStatus,
)
from billing.money import ZERO, money_context
from billing.rating import Line, Pricing, billed_quantities, rate_period, totals
from portal import live, outbox
from portal.models import User
from portal.services import audit_record

log = logging.getLogger(__name__)

CHUNK = 500  # contracts per chunk: one transaction, one task
FAN_OUT = 16  # a smaller run is cut in this many chunks (of MIN_CHUNK contracts at least)
MIN_CHUNK = 5
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
    What the failed attempt committed stays: a run is idempotent, so the retry completes it;
    its chunks go (the retry plans anew, and a late task of an old chunk finds nothing)."""
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
    run.chunks.all().delete()
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


def bill_period(period_label: str, *, now: datetime | None = None) -> dict[str, int]:
    """Bill every billable contract for `period_label` in this process, chunk after chunk;
    returns counts. Safe to call concurrently (a run's tasks use the chunks of its plan)."""
    now = now or timezone.now()
    counts = {"processed": 0, "created": 0, "updated": 0, "skipped": 0}
    for chunk in contract_chunks(period_label):
        created, updated, skipped = _retrying_deadlocks(
            lambda chunk=chunk: write_chunk(compute_chunk(chunk, period_label, now), None)  # type: ignore[misc]
        )
        counts["processed"] += len(chunk)
        counts["created"] += created
        counts["updated"] += updated
        counts["skipped"] += skipped
    return counts


T = TypeVar("T")


def _retrying_deadlocks(work: Callable[[], T]) -> T:
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


def chunk_size(total: int) -> int:
    """Contracts per chunk: CHUNK, or less for a run of fewer than FAN_OUT chunks, so that a
    small run too is spread over the workers (never below MIN_CHUNK)."""
    return max(MIN_CHUNK, min(CHUNK, -(-total // FAN_OUT)))


def invoice_run_execute(run_id: str, *, worker: str = "") -> InvoiceRun:
    """What the task `billing.invoice_run` does: claim the run, cut its contracts into chunks
    and queue one `billing.invoice_run_chunk` task per chunk (through the outbox, in the
    transaction that records the chunks), then bill whatever chunks no worker has taken yet,
    from the last one down, while the workers take them from the first one up.

    A run that is `done` or `failed` already stays so (a second delivery); a `running` one is
    claimed again (the redelivery of a task whose worker died): its chunks, if they were
    recorded, are kept and only the unbilled ones are billed. The run ends when its last chunk
    is billed, by whichever task billed it (`_settle`); a chunk that raises ends it `failed`."""
    claimed = InvoiceRun.objects.filter(
        pk=run_id, status__in=[InvoiceRunStatus.QUEUED, InvoiceRunStatus.RUNNING]
    ).update(status=InvoiceRunStatus.RUNNING, started_at=timezone.now(), error="")
    if claimed:
        try:
            _plan(run_id)
        except Exception as error:
            log.exception("invoice run %s failed", run_id)
            _fail(run_id, error)
        else:
            _settle(run_id)  # a run of no contracts ends here
            pending = InvoiceRunChunk.objects.filter(run_id=UUID(str(run_id)), done_at__isnull=True)
            for chunk_id in pending.order_by("-index").values_list("pk", flat=True):
                invoice_run_chunk_execute(chunk_id, worker=worker)
    return InvoiceRun.objects.select_related("started_by").get(pk=run_id)


def _plan(run_id: str) -> None:
    """Record the run's chunks (by contract key: each ends at the key of its last contract) and
    queue a task for each, in one transaction; nothing when they are recorded already."""
    with transaction.atomic():
        run = InvoiceRun.objects.select_for_update().get(pk=run_id)  # one plan at a time
        if run.chunks.exists():
            return
        contracts = billable_contracts(run.period).order_by("pk").values_list("pk", flat=True)
        size = chunk_size(contracts.count())
        chunks: list[InvoiceRunChunk] = []
        after: UUID | None = None
        last: UUID | None = None
        for n, last in enumerate(contracts.iterator(chunk_size=5000), start=1):
            if n % size == 0:
                chunks.append(InvoiceRunChunk(run=run, index=len(chunks), after=after, last=last, size=size))
                after = last
        if last is not None and last != after:
            tail = n - size * len(chunks)
            chunks.append(InvoiceRunChunk(run=run, index=len(chunks), after=after, last=last, size=tail))
        InvoiceRunChunk.objects.bulk_create(chunks)
        run.total = sum(chunk.size for chunk in chunks)
        run.save(update_fields=["total"])
        outbox.enqueue_many(("billing.invoice_run_chunk", {"chunk_id": chunk.pk}) for chunk in chunks)
    publish_progress(InvoiceRun.objects.select_related("started_by").get(pk=run_id))


def invoice_run_chunk_execute(chunk_id: int, *, worker: str = "") -> bool:
    """What the task `billing.invoice_run_chunk` does: bill one chunk, unless it is billed, or
    being billed by another task (whose own delivery is acknowledged late, so it is done
    again if that worker dies), or its run is no longer running (failed, or retried since:
    a retry records new chunks). Whether this call billed it."""
    run_id = InvoiceRunChunk.objects.filter(pk=chunk_id).values_list("run_id", flat=True).first()
    if run_id is None:
        return False  # a chunk of an attempt that was retried since
    try:
        billed = _retrying_deadlocks(lambda: _bill_chunk(chunk_id, worker))
    except Exception as error:
        log.exception("invoice run %s failed in chunk %s", run_id, chunk_id)
        _fail(str(run_id), error)
        return False
    if billed:
        _settle(str(run_id))
    return billed


def _bill_chunk(chunk_id: int, worker: str) -> bool:
    """In the caller's transaction: lock the chunk (skipping it when another holds it), bill its
    contracts and record its counts, so that the chunk is billed and counted exactly once."""
    chunk = (
        InvoiceRunChunk.objects.select_for_update(skip_locked=True, of=("self",))
        .select_related("run")
        .filter(pk=chunk_id, done_at__isnull=True, run__status=InvoiceRunStatus.RUNNING)
        .first()
    )
    if chunk is None:
        return False
    run = chunk.run
    assert run.started_at is not None  # set by the claim
    contracts = billable_contracts(run.period).filter(pk__lte=chunk.last)
    if chunk.after is not None:
        contracts = contracts.filter(pk__gt=chunk.after)
    contracts = contracts.select_related("customer", "plan").prefetch_related(
        "plan__components", "price_overrides"
    )
    billed = list(contracts.order_by("pk"))
    created, updated, skipped = write_chunk(compute_chunk(billed, run.period, run.started_at), run)
    chunk.processed, chunk.worker, chunk.done_at = len(billed), worker[:200], timezone.now()
    chunk.created_count, chunk.updated_count, chunk.skipped_count = created, updated, skipped
    chunk.save(update_fields=[*COUNTS, "worker", "done_at"])
    return True


COUNTS = ["processed", "created_count", "updated_count", "skipped_count"]


def _settle(run_id: str) -> None:
    """After a chunk is billed: the run's counts are the sum of its billed chunks'; when no
    chunk is left the run is `done` — a conditional UPDATE, so it ends once whichever of the
    last chunks' tasks get here. Chunks are looked at after their transactions committed, so
    the last one to commit always sees all of them billed."""
    chunks = InvoiceRunChunk.objects.filter(run_id=UUID(str(run_id)))
    finished = not chunks.filter(done_at__isnull=True).exists()  # before the sums: they count all
    sums = {name: value or 0 for name, value in chunks.aggregate(*(Sum(name) for name in COUNTS)).items()}
    counts = {name: sums[f"{name}__sum"] for name in COUNTS}
    running = InvoiceRun.objects.filter(pk=run_id, status=InvoiceRunStatus.RUNNING)
    if finished:
        moved = running.update(**counts, status=InvoiceRunStatus.DONE, finished_at=timezone.now())
    else:  # chunks finish in any order: a count never goes back
        moved = running.update(**{name: Greatest(F(name), Value(value)) for name, value in counts.items()})
    if moved:
        publish_progress(InvoiceRun.objects.select_related("started_by").get(pk=run_id))


def _fail(run_id: str, error: Exception) -> None:
    """End a running run `failed` with the error (a chunk or the plan raised): once."""
    moved = InvoiceRun.objects.filter(pk=run_id, status=InvoiceRunStatus.RUNNING).update(
        status=InvoiceRunStatus.FAILED,
        error=f"{type(error).__name__}: {error}"[:2000],
        finished_at=timezone.now(),
    )
    if moved:
        publish_progress(InvoiceRun.objects.select_related("started_by").get(pk=run_id))
