"""A believable demo fleet: devices that run and idle, drift, fault, drop off the network and replay.

`manage.py simulate_fleet` drives the active devices through the real ingest API (the device
contract of docs/ingest.md) so that every part downstream — usage, alarms, live status, the
store-and-forward path, resets in usage billing — has something realistic to chew on.

Time: a heartbeat's `ts` is always the real clock (the server refuses anything more than 5
minutes ahead), never simulated time. `speed` only scales what happens *between* two
heartbeats: at speed 60 a tick half a real second after the previous one adds 30 simulated
seconds of run hours, energy and drift.

The pieces, so the behaviour is testable without HTTP:

    spec.py      what the machines are like (profiles, event rates) and what a device knows
                 about itself (`DeviceSpec`, read from the database by `device_spec`)
    machine.py   `DeviceSim`, one machine and its gateway: pure, no I/O; `tick(now)` makes the
                 next heartbeat and keeps it in the outbox until `delivered()` (store-and-forward)
    client.py    `Sender`, one POST with urllib; classifies the answer, never raises on network errors
    runner.py    `DeviceLink` (a DeviceSim, its token and its retry state); `FleetRunner`, the
                 schedule: ticks each device on its interval, delivers, prints a line a minute;
                 `fleet_load`, the database side: active devices → DeviceSims with fresh tokens
"""
