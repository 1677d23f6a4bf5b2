"""Publish asset state messages as the ingest worker would, at a fixed rate, for bench/live.py.

    DJANGO_SETTINGS_MODULE=portal.settings.dev REDIS_URL=... \\
        python bench/_live_publish.py PLAN.json SENT.jsonl

`bench/live.py --publish-only` measures the live path alone (publisher → channel layer → web
process → sockets) at rates the machine's ingest path cannot carry next to it. The plan is a
JSON object: `rate` (heartbeats/s), `round_ms` (how often a publish round goes out, like the
worker's batches) and `items` ([marker, asset id, customer id], in order). Each item is due at
start + n ÷ rate; every `round_ms` the items due by then go out as one round through the
project's own code: `fleet.live.asset_state_messages` (the messages `publish_asset_states`
makes of the stored state: `temp_c` carries the marker) and `portal.live.publish_many`.
Before each round, the moment (time.time(), the clock of the benchmark's clients) is written
for its markers to SENT.jsonl; the last line is this process's CPU-seconds.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings.dev")

import django

django.setup()

from fleet.live import asset_state_messages  # noqa: E402
from portal import live  # noqa: E402


def main() -> int:
    plan = json.loads(Path(sys.argv[1]).read_text())
    rate, round_seconds, items = float(plan["rate"]), plan["round_ms"] / 1000, plan["items"]
    live.publish("bench.warm-up", {"type": "bench.warm-up"})  # the layer's connection, before the clock
    with Path(sys.argv[2]).open("w") as out:
        start = time.time() + 0.05
        next_round, done = start, 0
        while done < len(items):
            time.sleep(max(0.0, next_round - time.time()))
            due = min(len(items), int((time.time() - start) * rate) + 1)
            next_round = max(next_round + round_seconds, time.time())  # behind: at once
            if due <= done:
                continue
            batch, done = items[done:due], due
            seen = datetime.now(UTC)
            rows = [
                (
                    asset,
                    customer,
                    "ok",
                    seen,
                    {"run_hours": 1.0, "energy_kwh": 3.5, "pressure_bar": 7.1, "temp_c": marker},
                    None,
                )
                for marker, asset, customer in batch
            ]
            sent = time.time()
            live.publish_many(asset_state_messages(rows))
            out.write(json.dumps({"sent": sent, "markers": [m for m, _, _ in batch]}) + "\n")
        usage = resource.getrusage(resource.RUSAGE_SELF)
        out.write(json.dumps({"cpu_seconds": round(usage.ru_utime + usage.ru_stime, 2)}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
