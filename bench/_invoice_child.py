"""One timed invoice run in its own process: `billing.runs.invoice_run_execute(run_id)`.

    DJANGO_SETTINGS_MODULE=portal.settings.production DATABASE_URL=... \\
        python bench/_invoice_child.py <run id> [--via-workers]

With `--via-workers` the run is not executed here: the child queues the task
`billing.invoice_run` through the outbox, as `invoice_run_start` does, and polls the run
until it is done or failed; Celery workers that bench/invoice_run.py started bill its
chunks. Wall time is from the commit of the queued task to the poll that saw the run end
(polled every 0.1 s); the peak RSS and CPU are then the workers' (measured by the caller).
The child reports which worker billed how many chunks (`InvoiceRunChunk.worker`).

bench/invoice_run.py starts this (under flock) once per measured run, so that the peak
resident set reported here (`ru_maxrss` of this process) is the run's own. It sets Django
up and opens the database connection before the clock starts, then times the call and
prints one JSON object: wall and CPU seconds, resident set before the run and at its peak,
the run's counts, and where the wall time went — the time inside the run's phases
(metering sums, uptime, computing and writing each chunk), measured by wrapping those
functions, and the SQL statements and their time, measured by a database execute wrapper.
Both wrappers cost a few microseconds per call (tens of calls per chunk).
"""

from __future__ import annotations

import json
import resource
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import django

django.setup()

from django.db import connection  # noqa: E402

from billing import availability, metering, runs  # noqa: E402

PHASES: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])  # name: [calls, seconds]
SQL: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])  # statement kind: [count, seconds]


def timed(module: Any, name: str, label: str) -> None:
    """Replace module.name by a wrapper that adds its calls and seconds to PHASES[label]."""
    original: Callable[..., Any] = getattr(module, name)

    @wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            PHASES[label][0] += 1
            PHASES[label][1] += time.perf_counter() - started

    setattr(module, name, wrapper)


def sql_kind(sql: str) -> str:
    """A short name for a statement: its verb and first table."""
    words = sql.split()
    verb = words[0].upper() if words else "?"
    table = next(
        (w.strip('"') for w in words if w.strip('"').startswith(("billing_", "fleet_", "portal_"))), ""
    )
    return f"{verb} {table}".strip()


def count_sql(execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any) -> Any:
    started = time.perf_counter()
    try:
        return execute(sql, params, many, context)
    finally:
        entry = SQL[sql_kind(sql)]
        entry[0] += 1
        entry[1] += time.perf_counter() - started


def rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def run_figures(run: Any, wall: float) -> dict[str, Any]:
    """The run's outcome and counts, and the wall time measured here."""
    return {
        "run": str(run.pk),
        "status": run.status,
        "error": run.error,
        "total": run.total,
        "processed": run.processed,
        "created": run.created_count,
        "updated": run.updated_count,
        "skipped": run.skipped_count,
        "wall_seconds": round(wall, 2),
    }


def via_workers(run_id: str) -> None:
    from django.db import transaction
    from django.db.models import Count, Sum

    from billing.models import InvoiceRun, InvoiceRunChunk, InvoiceRunStatus
    from billing.tasks import invoice_run
    from portal import outbox

    with transaction.atomic():
        outbox.enqueue(invoice_run, run_id=run_id)
    started = time.perf_counter()  # the task is published on the commit above
    ended = (InvoiceRunStatus.DONE, InvoiceRunStatus.FAILED)
    while not InvoiceRun.objects.filter(pk=run_id, status__in=ended).exists():
        time.sleep(0.1)
    wall = time.perf_counter() - started
    run = InvoiceRun.objects.get(pk=run_id)
    chunks = InvoiceRunChunk.objects.filter(run=run)
    by_worker = chunks.values("worker").annotate(chunks=Count("id"), contracts=Sum("processed"))
    result = {
        **run_figures(run, wall),
        "run_seconds_by_its_timestamps": round((run.finished_at - run.started_at).total_seconds(), 2)
        if run.finished_at and run.started_at
        else None,
        "chunks": chunks.count(),
        "chunks_by_worker": {
            row["worker"] or "?": {"chunks": row["chunks"], "contracts": row["contracts"]}
            for row in by_worker.order_by("worker")
        },
    }
    json.dump(result, sys.stdout)


def main(run_id: str) -> None:
    timed(metering, "quantities", "metering.quantities (usage sums)")
    timed(availability, "percentages", "availability.percentages (uptime)")
    timed(runs, "compute_chunk", "invoicing.compute_chunk (meter + rate)")
    timed(runs, "write_chunk", "invoicing.write_chunk (insert, lock, lines, update)")
    connection.ensure_connection()
    rss_before = rss_kib("VmRSS")
    usage_before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    with connection.execute_wrapper(count_sql):
        run = runs.invoice_run_execute(run_id)
    wall = time.perf_counter() - started
    usage_after = resource.getrusage(resource.RUSAGE_SELF)
    sql_seconds = sum(seconds for _, seconds in SQL.values())
    result = {
        **run_figures(run, wall),
        "cpu_seconds": round(
            usage_after.ru_utime + usage_after.ru_stime - usage_before.ru_utime - usage_before.ru_stime, 2
        ),
        "rss_before_run_mb": round(rss_before / 1024, 1),
        "peak_rss_mb": round(usage_after.ru_maxrss / 1024, 1),  # Linux: KiB
        "rss_after_run_mb": round(rss_kib("VmRSS") / 1024, 1),
        "phases": {
            name: {"calls": int(calls), "seconds": round(seconds, 2)}
            for name, (calls, seconds) in sorted(PHASES.items(), key=lambda item: -item[1][1])
        },
        "sql": {
            "statements": int(sum(count for count, _ in SQL.values())),
            "seconds": round(sql_seconds, 2),
            "python_seconds": round(wall - sql_seconds, 2),
            "by_kind": {
                kind: {"count": int(count), "seconds": round(seconds, 2)}
                for kind, (count, seconds) in sorted(SQL.items(), key=lambda item: -item[1][1])[:10]
            },
        },
    }
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    if "--via-workers" in sys.argv[2:]:
        via_workers(sys.argv[1])
    else:
        main(sys.argv[1])
