"""The transactional outbox: Celery tasks recorded in the transaction that causes them.

    outbox.enqueue(invoice_run, run_id=str(run.pk))     # inside the service's transaction

`enqueue` writes an `OutboxMessage` row (one INSERT) that commits or rolls back with the
change. After the commit this process tries to publish it at once; whatever is still there
(the broker was down, the process died in between) the relay publishes: the beat task
`portal.outbox_relay`, every 5 s. A row is claimed with `SELECT … FOR UPDATE SKIP LOCKED`,
so relays and on-commit attempts never publish one row at the same time, and deleted in the
transaction that claimed it once the broker took the message. A crash between the publish and
that commit publishes the row again: delivery is at least once, and every task published this
way must be idempotent (docs/architecture.md, "The outbox").

Tasks registered with `coalesce()` are published merged, at most once a second per process:
after a commit that wrote such rows the process publishes all that are pending at once when
its last such publish is a second old, else a timer does it when it is (an ingest batch's
`AssetStatusChanged` becomes about one task a second, not one per batch).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import timedelta
from functools import partial
from typing import Any

from celery.app.task import Task
from django.db import connection, transaction
from django.db.models import Q
from django.db.models.functions import Now
from django.utils import timezone
from kombu import Connection

from portal.celery import app
from portal.models import OutboxMessage

log = logging.getLogger(__name__)

Kwargs = dict[str, Any]
Merge = Callable[[list[Kwargs]], list[Kwargs]]

BATCH = 500  # rows per relay transaction
BACKOFF_MAX_SECONDS = 60
COALESCE_SECONDS = 1.0

_mergers: dict[str, Merge] = {}
_INSERT = f"INSERT INTO {OutboxMessage._meta.db_table} (task, kwargs) VALUES "  # noqa: S608 - constant
_local = threading.local()


def coalesce(task: str, merge: Merge) -> None:
    """Publish `task` from the relay only, its pending rows' kwargs merged by `merge` (which
    returns the kwargs of the messages to send instead)."""
    _mergers[task] = merge


def enqueue(task: Task[Any, Any], /, **kwargs: Any) -> None:
    """Publish `task(**kwargs)` once the current transaction commits (at once in autocommit).
    kwargs must be JSON values; the task must be idempotent."""
    enqueue_many([(task.name, kwargs)])


def enqueue_many(messages: Iterable[tuple[str, Kwargs]]) -> None:
    """Rows for several task names at once: one INSERT, one on-commit attempt.

    Plain SQL, not bulk_create: the ingest batches call this many times a second, and the ORM
    made it ~0.4 ms a call instead of ~0.1 ms (median, one row)."""
    rows = list(messages)
    if not rows:
        return
    params = [value for name, kwargs in rows for value in (name, json.dumps(kwargs))]
    sql = _INSERT + ", ".join(["(%s, %s::jsonb)"] * len(rows))
    with connection.cursor() as cursor:
        if all(name in _mergers for name, _kwargs in rows):
            cursor.execute(sql, params)  # coalesced: published by task, not by id
            transaction.on_commit(_coalescer.poke)
            return
        cursor.execute(sql + " RETURNING id", params)  # in the order of the VALUES
        ids = [row_id for (row_id,), (name, _kwargs) in zip(cursor.fetchall(), rows, strict=True)
               if name not in _mergers]  # fmt: skip
    transaction.on_commit(partial(_publish_after_commit, ids))
    if len(ids) < len(rows):
        transaction.on_commit(_coalescer.poke)


def _publish_after_commit(ids: list[int]) -> None:
    # The caller's commit is done: a broker that is down must not turn its answer into a 500.
    try:
        publish(ids=ids)
    except Exception:
        log.warning("outbox: %d rows left to the relay", len(ids), exc_info=True)


def publish(*, ids: Sequence[int] | None = None, tasks: Sequence[str] = (), limit: int = BATCH) -> int:
    """Publish the due rows (or the rows `ids`, due or not; or the due rows of `tasks`),
    oldest first; returns how many rows went. Rows another transaction holds are skipped, not
    waited for. On the first failure to publish the rest of the round is put off too (the
    broker is most likely down): each row's next attempt backs off, 1, 2, 4 … up to 60 s."""
    with transaction.atomic():
        which = Q(pk__in=ids) if ids is not None else Q(due_at__lte=Now())
        if tasks:
            which &= Q(task__in=tasks)
        claimed = OutboxMessage.objects.select_for_update(skip_locked=True).filter(which).order_by("pk")
        rows = list(claimed.only("pk", "task", "kwargs", "attempts")[:limit])
        if not rows:
            return 0
        sent: list[int] = []
        failed: list[OutboxMessage] = []
        error: Exception | None = None
        for task, group in _messages(rows):
            if error is None:
                try:
                    for kwargs in _merged(task, group):
                        _send(task, kwargs)
                except Exception as exc:  # noqa: BLE001 - kept on the rows, retried later
                    error = exc
            if error is None:
                sent += [row.pk for row in group]
            else:
                failed += group
        OutboxMessage.objects.filter(pk__in=sent).delete()
        now = timezone.now()
        for row in failed:
            row.attempts += 1
            row.due_at = now + timedelta(seconds=min(2 ** (row.attempts - 1), BACKOFF_MAX_SECONDS))
            row.last_error = repr(error)[:500]
        OutboxMessage.objects.bulk_update(failed, ["attempts", "due_at", "last_error"])
    if failed:
        log.warning("outbox: %d rows not published (%r), retried later", len(failed), error)
    return len(sent)


def relay(*, rounds: int = 20) -> int:
    """What the beat task does: publish due rows until none are left or `rounds` batches went."""
    total = 0
    for _round in range(rounds):
        went = publish()
        total += went
        if went < BATCH:
            break
    return total


def messages_of(rows: list[OutboxMessage]) -> list[tuple[str, Kwargs]]:
    """The (task, kwargs) messages that publishing `rows` sends, coalesced ones merged."""
    return [(task, kwargs) for task, group in _messages(rows) for kwargs in _merged(task, group)]


class _Coalescer:
    """Publishes the coalesced tasks' pending rows at most once every COALESCE_SECONDS in this
    process: at once (in the thread whose commit asked) when the last time is that old, else
    from a one-shot timer thread when it will be. The beat relay publishes whatever a process
    that stopped left behind."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.last = float("-inf")
        self.timer: threading.Timer | None = None
        self.pid = os.getpid()

    def poke(self) -> None:
        with self.lock:
            if self.pid != os.getpid():  # a forked child: the parent's timer is not ours
                self.pid, self.timer, self.last = os.getpid(), None, float("-inf")
            if self.timer is not None:
                return  # a publish is due already; it takes this commit's rows too
            wait = self.last + COALESCE_SECONDS - time.monotonic()
            if wait > 0:
                self.timer = threading.Timer(wait, self._from_timer)
                self.timer.daemon = True
                self.timer.start()
                return
            self.last = time.monotonic()
        self._publish()

    def _from_timer(self) -> None:
        with self.lock:
            self.timer, self.last = None, time.monotonic()
        try:
            self._publish()
        finally:
            connection.close()  # this thread's own connection: the thread ends here

    def _publish(self) -> None:
        try:
            publish(tasks=list(_mergers))
        except Exception:
            log.warning("outbox: coalesced rows left to the relay", exc_info=True)


_coalescer = _Coalescer()


def _send(task: str, kwargs: Kwargs) -> None:
    """Publish on this thread's connection; a connection that failed (say Redis restarted
    since) is made again once before the error counts."""
    for fresh in (False, True):
        connection = _connection(fresh=fresh)
        try:
            app.send_task(task, kwargs=kwargs, connection=connection, retry=False)
            return
        except Exception:
            if fresh:
                raise


def _connection(*, fresh: bool) -> Connection:
    """This thread's broker connection for publishing (kept: ~0.35 ms a message instead of
    ~6.5 ms on a new one). One try and 1 s to connect: Celery's pooled connection retries for
    ~6 s when the broker is down, which a request would wait; here the relay retries the row.
    Made again after a failure and in a forked child."""
    connection: Connection | None = getattr(_local, "connection", None)
    if connection is not None and not fresh and _local.pid == os.getpid():
        return connection
    if connection is not None and _local.pid == os.getpid():
        with contextlib.suppress(Exception):
            connection.release()
    options = {**app.conf.broker_transport_options, "max_retries": 0}
    _local.connection = app.connection_for_write(connect_timeout=1, transport_options=options)
    _local.pid = os.getpid()
    return _local.connection


def _messages(rows: list[OutboxMessage]) -> list[tuple[str, list[OutboxMessage]]]:
    """Each row on its own, in order; the rows of a coalesced task together, where its first was."""
    out: list[tuple[str, list[OutboxMessage]]] = []
    groups: dict[str, list[OutboxMessage]] = {}
    for row in rows:
        if row.task not in _mergers:
            out.append((row.task, [row]))
        elif row.task in groups:
            groups[row.task].append(row)
        else:
            groups[row.task] = [row]
            out.append((row.task, groups[row.task]))
    return out


def _merged(task: str, rows: list[OutboxMessage]) -> list[Kwargs]:
    if task in _mergers:
        return _mergers[task]([row.kwargs for row in rows])
    return [row.kwargs for row in rows]
