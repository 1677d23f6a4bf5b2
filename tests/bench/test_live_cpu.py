"""bench/live.py's CPU per heartbeat: what S2's JSON says about a rate the machine cannot carry."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from live import cpu_per_heartbeat


def test_cpu_per_heartbeat_counts_our_processes_and_the_cores_at_the_rate() -> None:
    cpu = {
        "web": 23.0, "worker": 20.0, "postgres": 25.0, "redis": 1.0, "clients_this_process": 9.0,
        "beat": 0.2, "outside_benchmark": 150.0, "machine_busy": 230.0, "machine_busy_fraction": 1.0,
    }  # fmt: skip
    result = cpu_per_heartbeat(cpu, 60_000, 2000.0)
    assert result["ms"] == {
        "web": 0.383, "worker": 0.333, "postgres": 0.417, "redis": 0.017, "clients_this_process": 0.15,
    }  # fmt: skip
    assert result["ms_total"] == 1.3  # other work and beat are not the heartbeats' cost
    assert result["cores_at_asked_rate"] == 2.6
