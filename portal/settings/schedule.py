"""The Celery beat schedule (the periodic tasks every deployment runs), imported by base.py.
The outbox relay is not here: portal/celery.py adds it, as it runs under every settings module."""

from __future__ import annotations

import os
from datetime import timedelta

from celery.schedules import crontab

HEALTH_EVAL_INTERVAL_SECONDS = int(os.environ.get("HEALTH_EVAL_INTERVAL_SECONDS", "900"))
HEALTH_BATCH_SIZE = int(os.environ.get("HEALTH_BATCH_SIZE", "500"))
CELERY_BEAT_SCHEDULE: dict[str, dict[str, object]] = {
    "audit-prune": {"task": "portal.audit_prune", "schedule": timedelta(hours=24).total_seconds()},
    "ingest-sweep": {"task": "fleet.ingest_sweep", "schedule": 5.0},
    "offline-sweep": {"task": "fleet.offline_sweep", "schedule": 15.0},
    "telemetry-partitions": {"task": "fleet.telemetry_partitions", "schedule": 3600.0},
    # Drafts for last month, early on the 2nd (every customer's month has ended by then).
    "invoice-run-last-month": {
        "task": "billing.invoice_run_last_month",
        "schedule": crontab(minute=0, hour=6, day_of_month=2),
    },
    # Dunning (billing.payments): hourly, so each customer's day turns over within the hour of
    # its own midnight; idempotent, an invoice is marked and each reminder sent once.
    "billing-overdue-sweep": {"task": "billing.overdue_sweep", "schedule": crontab(minute=15)},
    "ticket-sla-sweep": {"task": "support.sla_sweep", "schedule": 60.0},
    "ticket-auto-close": {"task": "support.auto_close", "schedule": 3600.0},
    # Health rules (docs/health.md): batches of HEALTH_BATCH_SIZE assets, one task each.
    "health-sweep": {"task": "fleet.health_sweep", "schedule": float(HEALTH_EVAL_INTERVAL_SECONDS)},
    # Windows that begin or end on their own, told to live pages (docs/maintenance.md).
    "maintenance-boundaries": {
        "task": "fleet.maintenance_boundaries",
        "schedule": float(os.environ.get("MAINTENANCE_SWEEP_SECONDS", "30")),
    },
}
