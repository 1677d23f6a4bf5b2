"""The invoice run cut in chunks, each a Celery task of its own (docs/billing.md, "The invoice run").

A chunk is billed and counted once however often its task is delivered — one after the
other, at the same time, or after the run's own task was delivered again — and the run ends
`done` once, with the sums of its chunks, when the last chunk is billed.
"""

from __future__ import annotations

import gc
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

import pytest
from django.db import close_old_connections
from django.db.models import Count

from billing import runs
from billing.invoicing import bill_period
from billing.models import Contract, Invoice, InvoiceRun, InvoiceRunChunk, InvoiceRunStatus, Plan
from fleet.models import AssetModel
from portal.celery import app
from portal.models import Customer, OutboxMessage, User
from tests.billing_fixtures import contract_for, usage
from tests.conftest import client_for
from tests.fleet_fixtures import install
from tests.integration import ARTIFACTS, wait_until

PERIOD = "2026-10"


def some_contracts(
    customers: list[Customer], plan: Plan, compressor: AssetModel, each: int
) -> list[Contract]:
    contracts = []
    for customer in customers:
        for n in range(each):
            installed = install(customer, compressor, f"{customer.slug.upper()}-C{n:03d}")
            usage(installed.asset, datetime(2026, 10, 3, 10, tzinfo=UTC), f"{n + 1}")
            contracts.append(contract_for(customer, plan, installed.asset, date(2026, 1, 1)))
    return contracts


def one_invoice_each(contracts: list[Contract]) -> bool:
    per_contract = dict(Invoice.objects.filter(period=PERIOD).values_list("contract").annotate(n=Count("id")))
    return per_contract == {c.pk: 1 for c in contracts}


def running_run(finance: User) -> InvoiceRun:
    """A run as its task leaves it right after the claim (`running`, its `now` set)."""
    return InvoiceRun.objects.create(
        period=PERIOD,
        started_by=finance,
        status=InvoiceRunStatus.RUNNING,
        started_at=datetime(2026, 11, 5, tzinfo=UTC),
    )


def test_a_small_run_is_cut_so_that_every_worker_gets_chunks() -> None:
    assert [runs.chunk_size(n) for n in (0, 1, 24, 100, 8_000, 8_001, 100_000)] == [5, 5, 5, 7, 500, 500, 500]


def test_a_run_whose_task_is_delivered_again_keeps_its_chunks_and_bills_the_rest(
    customer_a: Customer, plan: Plan, compressor: AssetModel, finance: User
) -> None:
    contracts = some_contracts([customer_a], plan, compressor, 12)
    run = running_run(finance)
    runs._plan(str(run.pk))  # the first delivery recorded the chunks and queued their tasks …
    chunks = list(InvoiceRunChunk.objects.filter(run=run).order_by("index"))
    assert [(c.index, c.size) for c in chunks] == [(0, 5), (1, 5), (2, 2)]
    assert OutboxMessage.objects.filter(task="billing.invoice_run_chunk").count() == 3
    assert runs.invoice_run_chunk_execute(chunks[0].pk, worker="w1") is True  # … one was billed …
    run.refresh_from_db()
    assert (run.status, run.total, run.processed, run.created_count) == ("running", 12, 5, 5)

    # … and the worker died: the run's task comes again.
    again = runs.invoice_run_execute(str(run.pk), worker="w2")

    assert list(InvoiceRunChunk.objects.filter(run=run).order_by("index")) == chunks  # not planned anew
    assert OutboxMessage.objects.filter(task="billing.invoice_run_chunk").count() == 3
    assert (again.status, again.total, again.processed, again.created_count, again.updated_count) == (
        "done",
        12,
        12,
        12,
        0,
    )
    assert dict(InvoiceRunChunk.objects.filter(run=run).values_list("index", "worker")) == {
        0: "w1",
        1: "w2",
        2: "w2",
    }
    assert one_invoice_each(contracts)
    finished = again.finished_at
    # Every chunk task delivered once more (acks_late redelivery): nothing billed, nothing moves.
    assert [runs.invoice_run_chunk_execute(c.pk, worker="w3") for c in chunks] == [False] * 3
    run.refresh_from_db()
    assert (run.status, run.processed, run.created_count, run.finished_at) == ("done", 12, 12, finished)
    assert one_invoice_each(contracts)
    # A chunk of an attempt that a retry replaced is gone: its late task does nothing.
    assert runs.invoice_run_chunk_execute(10**9) is False


def cycles_left_by(work: Callable[[], object]) -> list[str]:
    """The contracts, customers and plans that `work()` left to the cyclic collector (kept by
    DEBUG_SAVEALL instead of freed, to be looked at)."""
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        work()
        gc.collect()
        return [type(o).__name__ for o in gc.garbage if isinstance(o, Contract | Customer | Plan)]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()


def test_a_billed_chunk_frees_its_contracts_without_the_cyclic_collector(
    customer_a: Customer, plan: Plan, compressor: AssetModel, finance: User
) -> None:
    """A chunk's contracts, customers and plans go when the chunk ends: a Celery pool process
    runs a full collection rarely, and chunks' garbage piled up until one did, so a worker's
    peak memory grew with the chunks it billed (docs/performance.md, S4)."""
    some_contracts([customer_a], plan, compressor, 6)
    run = running_run(finance)
    runs._plan(str(run.pk))
    first, second = InvoiceRunChunk.objects.filter(run=run).order_by("index")

    assert cycles_left_by(lambda: runs.invoice_run_chunk_execute(first.pk, worker="w1")) == []
    assert cycles_left_by(lambda: runs.invoice_run_execute(str(run.pk), worker="w2")) == []  # its own loop
    assert cycles_left_by(lambda: bill_period(PERIOD)) == []
    run.refresh_from_db()
    assert (run.status, run.processed, second.size) == ("done", 6, 1)


def test_a_customer_sees_no_run_and_no_chunk(
    customer_a: Customer, plan: Plan, compressor: AssetModel, finance: User, admin_a: User
) -> None:
    some_contracts([customer_a], plan, compressor, 6)
    run = runs.invoice_run_execute(str(runs.invoice_run_start(actor=finance, period=PERIOD).pk))
    assert run.status == "done"
    assert InvoiceRunChunk.objects.filter(run=run).count() == 2
    assert not InvoiceRunChunk.objects.visible_to(admin_a).exists()
    assert InvoiceRunChunk.objects.visible_to(finance).count() == 2
    assert client_for(admin_a).get(f"/api/v1/invoice-runs/{run.pk}/").status_code in (403, 404)


@pytest.mark.django_db(transaction=True)
def test_a_chunk_delivered_to_eight_workers_at_once_is_billed_once(
    customer_a: Customer, customer_b: Customer, plan: Plan, compressor: AssetModel, finance: User
) -> None:
    contracts = some_contracts([customer_a, customer_b], plan, compressor, 5)
    run = running_run(finance)
    runs._plan(str(run.pk))
    chunks = list(InvoiceRunChunk.objects.filter(run=run).order_by("index").values_list("pk", flat=True))
    assert len(chunks) == 2
    # (A worker of this test session may take the chunks' queued tasks as well: it is one more
    # concurrent delivery.)
    billed: list[tuple[int, bool]] = []
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def deliver(chunk_id: int) -> None:
        try:
            start.wait()
            billed.append(
                (chunk_id, runs.invoice_run_chunk_execute(chunk_id, worker=threading.current_thread().name))
            )
        except BaseException as error:  # noqa: BLE001 - reported by the assertion below
            errors.append(error)
        finally:
            close_old_connections()

    threads = [threading.Thread(target=deliver, args=(chunks[n % 2],), name=f"t{n}") for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert all(sum(1 for c, did in billed if c == chunk and did) <= 1 for chunk in chunks)
    wait_until(
        lambda: InvoiceRun.objects.filter(pk=run.pk, status="done").exists(), "the run to end", timeout=30
    )
    run.refresh_from_db()
    assert (run.total, run.processed, run.created_count, run.updated_count) == (10, 10, 10, 0)
    assert one_invoice_each(contracts)
    assert all(chunk.done_at for chunk in InvoiceRunChunk.objects.filter(run=run))


def worker_said(task_id: str, offset: int) -> str | None:
    """What the suite's worker logged as the result of task `task_id` (after `offset`)."""
    log = (ARTIFACTS / "celery-worker.log").read_bytes()[offset:].decode(errors="replace")
    for line in log.splitlines():
        if f"[{task_id}] succeeded" in line:
            return line.rsplit(": ", 1)[-1]
    return None


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_a_run_on_a_real_worker_ends_once_with_its_chunks_sums_and_redeliveries_bill_nothing(
    live_worker: Any,
    customer_a: Customer,
    customer_b: Customer,
    plan: Plan,
    compressor: AssetModel,
    finance: User,
) -> None:
    contracts = some_contracts([customer_a, customer_b], plan, compressor, 12)
    run = runs.invoice_run_start(actor=finance, period=PERIOD)
    wait_until(
        lambda: InvoiceRun.objects.filter(pk=run.pk, status="done").exists(), "the run to end", timeout=60
    )
    run.refresh_from_db()
    chunks = InvoiceRunChunk.objects.filter(run=run).order_by("index")
    assert chunks.count() == 5  # 24 contracts in chunks of 5: spread over the worker's processes
    assert (run.total, run.processed, run.created_count, run.updated_count, run.skipped_count) == (
        24,
        24,
        24,
        0,
        0,
    )
    assert sum(chunks.values_list("processed", flat=True)) == 24
    assert one_invoice_each(contracts)
    assert not OutboxMessage.objects.exists()  # every task was handed to Redis
    finished = run.finished_at

    # Each chunk's task delivered twice more, as Redis redelivers an unacknowledged message.
    offset = (ARTIFACTS / "celery-worker.log").stat().st_size
    sent = [
        app.send_task(
            "billing.invoice_run_chunk", kwargs={"chunk_id": chunk.pk}, task_id=str(uuid.uuid4())
        ).id
        for chunk in chunks
        for _ in range(2)
    ]
    wait_until(lambda: all(worker_said(t, offset) for t in sent), "the worker to run the tasks", timeout=60)
    assert {worker_said(t, offset) for t in sent} == {"False"}  # billed nothing
    run.refresh_from_db()
    assert (run.status, run.processed, run.created_count, run.updated_count, run.finished_at) == (
        "done",
        24,
        24,
        0,
        finished,
    )
    assert one_invoice_each(contracts)
