"""The invoice run: one draft invoice per billable contract and period, idempotently.

    run = invoice_run_start(actor=user, period="2026-10")   # queues billing.invoice_run
    invoice_run_execute(run.pk)                             # what the Celery task does

The run's task cuts the billable contracts into chunks by key (`InvoiceRunChunk` rows, at most
CHUNK contracts each) and queues one task `billing.invoice_run_chunk` per chunk through the
outbox, so every worker takes chunks; the run's own task bills the ones still untaken, from
the last down. Each chunk is billed in one transaction that holds its row's lock: its
invoices are computed and written by `billing.invoicing` (`compute_chunk`, `write_chunk`), and
the chunk's counts are recorded and it is marked billed, so a redelivered task counts nothing
twice.

The run's counts are the sums of its billed chunks'; the task that finds no chunk left ends
the run `done` (docs/billing.md, "The invoice run"). Re-running changes nothing when nothing
changed; a draft picks up usage that arrived since.
"""

from __future__ import annotations

import logging
from uuid import UUID

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F, Sum, Value
from django.db.models.functions import Greatest
from django.utils import timezone

from billing import metering
from billing.invoicing import (
    CHUNK,
    billable_contracts,
    compute_chunk,
    release,
    retrying_deadlocks,
    write_chunk,
)
from billing.models import InvoiceRun, InvoiceRunChunk, InvoiceRunStatus
from portal import live, outbox
from portal.models import User
from portal.services import audit_record

log = logging.getLogger(__name__)

FAN_OUT = 16  # a smaller run is cut in this many chunks (of MIN_CHUNK contracts at least)
MIN_CHUNK = 5


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
        billed = retrying_deadlocks(lambda: _bill_chunk(chunk_id, worker))
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
    release(billed)  # its contracts go with this frame, not at a full collection
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
