"""The Celery worker, with timestamps of the live path for bench/live.py.

    LIVE_TRACE_DIR=/tmp/x python bench/_live_worker.py --queues default,ingest --concurrency 2 ...

Runs the project's Celery app (`portal.celery.app`, what `celery -A portal worker` runs) after
wrapping three functions, by module attribute, so their callers reach the wrappers:

- `fleet.worker.process_batch`: when a batch was claimed (start) and finished, which assets
  it changed;
- `fleet.live.publish_asset_states`: called by the batch's on-commit hook, i.e. just after
  the commit (its time goes into the next publish record);
- `portal.live.publish_many`: the channel-layer sends of a batch (start, end, assets).

Each pool process appends one JSON line per call to `$LIVE_TRACE_DIR/worker-<pid>.jsonl`
(time.time(), the same clock the benchmark's clients stamp with). The cost is one small
write per batch; the code paths are otherwise the project's own.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings.dev")

import django

django.setup()

from fleet import live as fleet_live  # noqa: E402
from fleet.ingest import worker  # noqa: E402
from portal import live  # noqa: E402
from portal.celery import app  # noqa: E402

TRACE_DIR = Path(os.environ["LIVE_TRACE_DIR"])
_files: dict[int, TextIO] = {}
_last_commit = {"at": 0.0}


def trace(record: dict[str, Any]) -> None:
    pid = os.getpid()  # pool processes fork from this one: one file each
    handle = _files.get(pid)
    if handle is None:
        handle = _files[pid] = (TRACE_DIR / f"worker-{pid}.jsonl").open("a", buffering=1)
    handle.write(json.dumps(record) + "\n")


def traced_batch(original: Callable[..., worker.BatchResult]) -> Callable[..., worker.BatchResult]:
    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> worker.BatchResult:
        started = time.time()
        result = original(*args, **kwargs)
        if result.rows:
            trace(
                {
                    "kind": "batch",
                    "start": started,
                    "end": time.time(),
                    "rows": result.rows,
                    "stored": result.stored,
                    "assets": result.changed_assets,
                }
            )
        return result

    return wrapper


def traced_commit(original: Callable[..., None]) -> Callable[..., None]:
    @functools.wraps(original)
    def wrapper(*, asset_ids: list[str]) -> None:
        _last_commit["at"] = time.time()
        original(asset_ids=asset_ids)

    return wrapper


def traced_publish(original: Callable[..., None]) -> Callable[..., None]:
    @functools.wraps(original)
    def wrapper(messages: list[live.Message]) -> None:
        started = time.time()
        original(messages)
        assets = sorted({str(p["asset"]) for _, p, _ in messages if "asset" in p})
        trace(
            {
                "kind": "publish",
                "commit": _last_commit["at"],
                "start": started,
                "end": time.time(),
                "messages": len(messages),
                "assets": assets,
            }
        )

    return wrapper


worker.process_batch = traced_batch(worker.process_batch)
fleet_live.publish_asset_states = traced_commit(fleet_live.publish_asset_states)
live.publish_many = traced_publish(live.publish_many)

if __name__ == "__main__":
    app.worker_main(["worker", *sys.argv[1:]])
