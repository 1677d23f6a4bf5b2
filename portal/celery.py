"""The Celery app: Redis broker, JSON only, late acks; settings under CELERY_* in Django."""

import os
from typing import Any

from celery import Celery
from celery.signals import task_postrun, task_prerun, worker_process_init

from portal.runtime import settle_heap

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings.dev")

app = Celery("fleetport")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
# The outbox relay (portal.outbox): publishes what a commit's own attempt left (a broker
# outage, a process that stopped before its coalesced publish): a backstop, so every 5 s, as
# the ingest sweep. A relay task that waited longer than its interval is dropped: the next one
# does its work.
app.add_periodic_task(5.0, app.signature("portal.outbox_relay"), name="outbox-relay", expires=5.0)


@task_prerun.connect
@task_postrun.connect
def release_connections(task: Any = None, **_: Any) -> None:
    """Around each task, as Django does around each request: its database connections go back
    to the pool (CELERY_DB_REUSE_MAX keeps Celery from closing the pool itself); a broken
    one is closed. Not for eager tasks: they run inside their caller's transaction."""
    if task is not None and getattr(task.request, "is_eager", False):
        return
    from django.db import close_old_connections

    close_old_connections()


@worker_process_init.connect
def settle_pool_process(**_: Any) -> None:
    """A pool process has forked with everything loaded: out of the collector's walks
    (portal.runtime)."""
    settle_heap()
