"""Celery tasks of the fleet: ids in, one service out; idempotent and safe to retry."""

from __future__ import annotations

from celery import shared_task
from django.utils import timezone

from fleet import alarms, partitions
from fleet.health import tasks as health_tasks
from fleet.ingest import worker
from fleet.models import IngestInbox

__all__ = ["health_tasks"]  # fleet.health_sweep and fleet.health_evaluate, found by autodiscovery


@shared_task(name="fleet.ingest_drain")
def ingest_drain() -> dict[str, int]:
    """Store what the ingest view accepted. Idempotent: rows are claimed and deleted atomically."""
    result = worker.drain()
    if result.rows and IngestInbox.objects.exists():
        ingest_drain.delay()  # the time budget ran out with work left: hand over, don't hog
    return {
        "rows": result.rows,
        "stored": result.stored,
        "duplicates": result.duplicates,
        "failed": result.failed_rows,
    }


@shared_task(name="fleet.ingest_sweep")
def ingest_sweep() -> bool:
    """Beat, every few seconds: drain what no nudge reached (e.g. while Redis restarted)."""
    if IngestInbox.objects.exists():
        ingest_drain.delay()
        return True
    return False


@shared_task(name="fleet.offline_sweep")
def offline_sweep() -> int:
    """Beat: mark silent assets offline and raise their alarms (idempotent: claims by UPDATE)."""
    return len(alarms.offline_sweep())


@shared_task(name="fleet.telemetry_partitions")
def telemetry_partitions() -> list[str]:
    """Beat, hourly: make the raw heartbeat and minute rollup partitions due ahead, and drop
    those past RAW_RETENTION_DAYS and MINUTE_ROLLUP_RETENTION_DAYS (a contract's longer-kept
    rows are copied aside first); hour and day rollups and usage stay for good. Returns the
    dropped partitions."""
    partitions.maintain()
    now = timezone.now()
    return partitions.prune(partitions.RAW, now=now) + partitions.prune(partitions.MINUTE, now=now)


@shared_task(name="fleet.maintenance_boundaries")
def maintenance_boundaries() -> int:
    """Beat, every 30 s: tell live pages about windows that began or ended on their own
    (fleet.window_sweep.window_boundaries_announce; each boundary once)."""
    from fleet.window_sweep import window_boundaries_announce

    return window_boundaries_announce()
