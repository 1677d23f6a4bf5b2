"""Device ingest and telemetry settings, imported by base.py (every environment). The device
contract and what each setting does are in docs/ingest.md."""

from __future__ import annotations

import os

from .env import env_bool

INGEST_MAX_ITEMS = 1000
INGEST_MAX_BODY_BYTES = int(os.environ.get("INGEST_MAX_BODY_BYTES", str(1024 * 1024)))
INGEST_MAX_FUTURE_SECONDS = 300
INGEST_MAX_AGE_DAYS = int(os.environ.get("INGEST_MAX_AGE_DAYS", "90"))
INGEST_DEVICE_RATE_PER_MINUTE = int(os.environ.get("INGEST_DEVICE_RATE_PER_MINUTE", "120"))
# Accepted heartbeats not yet stored by a worker; past this the endpoint answers 503.
INGEST_BACKLOG_LIMIT = int(os.environ.get("INGEST_BACKLOG_LIMIT", "200000"))
# Raw heartbeats are kept this long (never shorter than the late-arrival window).
RAW_RETENTION_DAYS = max(int(os.environ.get("RAW_RETENTION_DAYS", "180")), INGEST_MAX_AGE_DAYS)
# Minute rollups likewise (charts of longer ranges read hour and day rollups, kept for good).
# Both go by whole partitions (days, months): docs/ingest.md, "Partitioned telemetry".
MINUTE_ROLLUP_RETENTION_DAYS = max(
    int(os.environ.get("MINUTE_ROLLUP_RETENTION_DAYS", "180")), INGEST_MAX_AGE_DAYS
)
DEVICE_TOKEN_ROTATION_OVERLAP_SECONDS = int(os.environ.get("DEVICE_TOKEN_ROTATION_OVERLAP_SECONDS", "3600"))
# Device identities are cached per process for up to DEVICE_AUTH_CACHE_MAX_SECONDS and dropped
# within about a second of any revocation, rotation or swap (a generation counter in Redis);
# without Redis, for DEVICE_AUTH_CACHE_SECONDS.
DEVICE_AUTH_CACHE_SECONDS = float(os.environ.get("DEVICE_AUTH_CACHE_SECONDS", "5"))
DEVICE_AUTH_CACHE_MAX_SECONDS = float(os.environ.get("DEVICE_AUTH_CACHE_MAX_SECONDS", "300"))
# The lean ASGI path for the ingest endpoint (fleet.ingest.endpoint.IngestEndpoint):
# off, every ingest request goes through Django's middleware and view. Its own psycopg pool
# per server process holds up to INGEST_DATABASE_POOL_SIZE connections.
INGEST_LEAN_PATH = env_bool("INGEST_LEAN_PATH", default=True)
INGEST_DATABASE_POOL_SIZE = int(os.environ.get("INGEST_DATABASE_POOL_SIZE", "4"))
# How long an ingest request waits for one of those connections before its 503. The writer
# holds one for a commit (milliseconds), so a longer wait means PostgreSQL is away: the device
# hears "retry later" within this, not after Django's 10 s (docs/ingest.md, "Outages").
INGEST_DATABASE_POOL_TIMEOUT = float(os.environ.get("INGEST_DATABASE_POOL_TIMEOUT", "1.5"))
# One worker batch (one transaction): at most this many inbox rows, or heartbeats.
INGEST_BATCH_MAX_ROWS = int(os.environ.get("INGEST_BATCH_MAX_ROWS", "5000"))
INGEST_BATCH_MAX_ITEMS = int(os.environ.get("INGEST_BATCH_MAX_ITEMS", "10000"))
# Under load, the share of a worker process's time its live publishing may take (the rest of
# the time it pauses and coalesces; see fleet.ingest.publisher.LivePublisher).
INGEST_LIVE_PUBLISH_SHARE = float(os.environ.get("INGEST_LIVE_PUBLISH_SHARE", "0.1"))
# A drain task is only a trigger: what it drains is durable in the inbox, a killed drain's rows
# are claimed again by the next one (a nudge, or beat's sweep within 5 s). So it is acked when
# it starts, not late: a broker connection lost while a drain runs then leaves no unacked
# message to restore, the path on which Celery's worker crashes (kombu's restore_unacked
# after a Redis restart: "'NoneType' object has no attribute 'hostname'").
CELERY_TASK_ANNOTATIONS = {"fleet.ingest_drain": {"acks_late": False}}
# The drains run on their own queue (docs/architecture.md).
CELERY_TASK_ROUTES = {"fleet.ingest_drain": {"queue": "ingest"}}
