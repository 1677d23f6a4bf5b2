"""The heartbeat path, door to database (docs/ingest.md; the map in docs/architecture.md).

Web side (the web process imports only these):
    contract.py   the device contract: a body's checks and every answer, shared by both doors
    auth.py       device tokens authenticated, cached per process (blocking and async)
    admission.py  the Redis clients, device rate limit, backlog bound, nudge (blocking and async)
    view.py       the Django door: the test client and what the lean door hands on
    endpoint.py   the lean ASGI door in front of Django (portal/asgi.py)

Worker side (Celery `fleet.ingest_drain`, fleet/tasks.py):
    worker.py     claim inbox rows, one transaction per batch, row-by-row retry, set-aside rows
    store.py      lock the devices, keep new heartbeats once per (device, seq), COPY them
    counters.py   fold counters into usage, refold late readings, flag implausible ones
    state.py      device and asset state, status changes, alarms; rules per model
    publisher.py  the live messages of committed batches, coalesced under load
"""
