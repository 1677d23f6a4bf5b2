"""Two nodes against one PostgreSQL and one Redis (docs/deploy.md#more-than-one-node).

Each node is a uvicorn process and a Celery worker with its own var folder
(FLEETPORT_VAR_DIR) and its own worker hostname; they share the suite's database and Redis,
as nodes share production's. A browser on node A sees heartbeats posted to node B, and an
invoice run started on node A bills every contract exactly once, its chunks spread over both
nodes' workers.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.db.models import Count
from django.utils import timezone

from billing import metering
from billing.models import Contract, Invoice, InvoiceRun, InvoiceRunChunk, InvoiceRunStatus, Plan
from fleet.models import AssetModel
from portal.models import Customer, User
from tests.billing_fixtures import contract_for, usage
from tests.factories import PASSWORD
from tests.fleet_fixtures import install
from tests.integration import (
    ARTIFACTS,
    login,
    post_ingest,
    screenshot,
    start_asgi,
    start_worker,
    stop_process,
    wait_until,
)
from tests.services import RedisServer

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

CONTRACTS_PER_CUSTOMER = 12


@dataclass
class Node:
    """One node: its web server's base URL, its worker's log, its own var folder."""

    name: str
    url: str
    worker_log: Path
    var_dir: Path
    processes: list[subprocess.Popen[bytes]]

    def worker_log_since(self, offset: int) -> str:
        return self.worker_log.read_bytes()[offset:].decode(errors="replace")

    def worker_log_size(self) -> int:
        return self.worker_log.stat().st_size


def start_node(name: str, service_env: dict[str, str], var_root: Path) -> Node:
    var_dir = var_root / name
    var_dir.mkdir()
    env = {**service_env, "FLEETPORT_VAR_DIR": str(var_dir)}
    worker = start_worker(env, name=f"{name}-worker", concurrency=1)
    try:
        web, url = start_asgi(env, name=f"{name}-asgi")
    except BaseException:
        stop_process(worker)
        raise
    return Node(name, url, ARTIFACTS / f"celery-{name}-worker.log", var_dir, [web, worker])


@pytest.fixture(scope="module")
def nodes(
    service_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Node, Node]]:
    var_root = tmp_path_factory.mktemp("nodes")
    # One Redis for the two nodes and for them alone: the suite's own worker (live_worker, started
    # by earlier tests) listens on the suite's Redis and would take the nodes' tasks.
    redis = RedisServer().start()
    env = {**service_env, "REDIS_URL": redis.url}
    started: list[Node] = []
    try:
        for name in ("node-a", "node-b"):
            started.append(start_node(name, env, var_root))
        yield started[0], started[1]
    finally:
        for node in started:
            for process in node.processes:
                stop_process(process)
        redis.stop()


def test_a_socket_on_node_a_receives_heartbeats_posted_to_node_b(
    page: Any,
    nodes: tuple[Node, Node],
    viewer_a: User,
    customer_a: Customer,
    customer_b: Customer,
    compressor: AssetModel,
) -> None:
    node_a, node_b = nodes
    mine = install(customer_a, compressor, "NODE-A1")
    theirs = install(customer_b, compressor, "NODE-B1")
    login(page, node_a.url, viewer_a.email, PASSWORD)
    page.wait_for_url(f"{node_a.url}/")
    page.goto(f"{node_a.url}/fleet/")
    page.wait_for_selector('[data-live-state="live"]')
    row = page.locator(f'tr[data-asset-id="{mine.asset.pk}"]')
    assert row.locator('[data-field="status"]').inner_text() == "Never seen"
    page.evaluate("window.__noReload = 1")  # survives only if the page is not reloaded

    now = datetime.now(UTC).isoformat()
    body = {"seq": 1, "ts": now, "status": "fault", "metrics": {"temp_c": 71.5}}
    assert post_ingest(node_b.url, theirs.token, body) == 202
    assert post_ingest(node_b.url, mine.token, body) == 202

    cell = f"""document.querySelector('tr[data-asset-id="{mine.asset.pk}"] [data-field="status"]')"""
    page.wait_for_function(f"() => {cell}.textContent.trim() === 'Fault'", timeout=20_000)
    assert page.evaluate("window.__noReload") == 1
    assert row.locator('[data-field="values"]').text_content() == "Temperature 71.5\u00a0°C "
    # Customer B's fault, stored through the same node and worker, never reached A's page.
    assert page.locator(f'tr[data-asset-id="{theirs.asset.pk}"]').count() == 0
    assert "NODE-B1" not in page.content()
    # Each node's processes took their own var folder (the settings create its staticfiles).
    assert all((node.var_dir / "staticfiles").is_dir() for node in nodes)
    screenshot(page, "two-nodes-fleet-live")


def many_contracts(customers: list[Customer], plan: Plan, compressor: AssetModel) -> list[Contract]:
    """CONTRACTS_PER_CUSTOMER contracts per customer, each over its own asset, with usage last month."""
    contracts = []
    for customer in customers:
        period = metering.period_containing(timezone.now(), customer.time_zone).previous()
        for n in range(CONTRACTS_PER_CUSTOMER):
            installed = install(customer, compressor, f"{customer.slug.upper()}-{n:03d}")
            usage(installed.asset, period.start + timedelta(days=2, hours=8), f"{n + 1}")
            contracts.append(contract_for(customer, plan, installed.asset, date(2026, 1, 1)))
    return contracts


def run_on_node_a(page: Any, nodes: tuple[Node, Node], finance: User) -> tuple[InvoiceRun, list[list[str]]]:
    """Finance starts last month's run on node A's page and waits until a worker has done it:
    the run, and the invoice-run tasks each node's worker received meanwhile (A's, B's)."""
    node = nodes[0]
    offsets = [each.worker_log_size() for each in nodes]
    period = metering.period_containing(timezone.now(), "UTC").previous().label
    login(page, node.url, finance.email, PASSWORD)
    page.wait_for_url(f"{node.url}/")
    page.goto(f"{node.url}/billing/runs/")
    page.fill("input[name=period]", period)
    page.click('[data-testid="start-run"]')
    page.wait_for_selector(f"text=Invoice run for {period} started")
    run = InvoiceRun.objects.get(period=period)
    wait_until(
        lambda: InvoiceRun.objects.filter(pk=run.pk, status=InvoiceRunStatus.DONE).exists(),
        "the invoice run to finish",
        timeout=60,
    )
    run.refresh_from_db()
    logs = [each.worker_log_since(at) for each, at in zip(nodes, offsets, strict=True)]
    return run, [invoice_run_tasks(text) for text in logs]


TASK_RECEIVED = re.compile(r"Task (billing\.invoice_run[a-z_]*)\[([0-9a-f-]+)\] received")


def invoice_run_tasks(log_text: str) -> list[str]:
    """The invoice-run tasks a worker's log says it received (name[id])."""
    return [f"{name}[{task_id}]" for name, task_id in TASK_RECEIVED.findall(log_text)]


def test_an_invoice_run_started_on_node_a_bills_every_contract_exactly_once(
    page: Any,
    nodes: tuple[Node, Node],
    finance: User,
    customer_a: Customer,
    customer_b: Customer,
    plan: Plan,
    compressor: AssetModel,
) -> None:
    contracts = many_contracts([customer_a, customer_b], plan, compressor)
    run, taken = run_on_node_a(page, nodes, finance)

    assert (run.total, run.processed, run.created_count) == (len(contracts), len(contracts), len(contracts))
    per_contract = dict(
        Invoice.objects.filter(period=run.period).values_list("contract").annotate(n=Count("id"))
    )
    assert per_contract == {c.pk: 1 for c in contracts}
    # The run's task was taken by exactly one worker, once, whichever node's it was.
    runs_taken = [task for tasks in taken for task in tasks if task.startswith("billing.invoice_run[")]
    assert len(runs_taken) == 1, taken


def test_an_invoice_run_spreads_over_both_workers(
    page: Any,
    nodes: tuple[Node, Node],
    finance: User,
    customer_a: Customer,
    customer_b: Customer,
    plan: Plan,
    compressor: AssetModel,
) -> None:
    contracts = many_contracts([customer_a, customer_b], plan, compressor)
    run, taken = run_on_node_a(page, nodes, finance)
    assert all(taken), f"invoice-run tasks per worker (node A, node B): {taken}"
    # Both nodes' workers billed chunks of it (each chunk records the worker that billed it),
    # and every contract was billed once: the run's counts are the sums of its chunks'.
    chunks = InvoiceRunChunk.objects.filter(run=run)
    billed_by = {worker.split("-worker-")[0] for worker in chunks.values_list("worker", flat=True)}
    assert billed_by == {"node-a", "node-b"}, list(chunks.values_list("index", "worker"))
    assert sum(chunks.values_list("processed", flat=True)) == run.processed == run.total == len(contracts)
    assert run.created_count == len(contracts)
