"""Create the benchmark's fleet through the project's own services; print the tokens as JSON.

    DJANGO_SETTINGS_MODULE=portal.settings.dev DATABASE_URL=... python bench/_setup_fleet.py 1000

One customer, one site, one asset model (run_hours and energy_kwh counters, pressure_bar and
temp_c gauges) and N assets with one device each. bench/ingest.py runs this in a subprocess
against the throwaway database; stdout is one JSON object, progress goes to stderr.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import django

django.setup()

from _common import bench_asset_model, bench_device  # noqa: E402

from fleet.services import site_create  # noqa: E402
from portal.models import Customer  # noqa: E402


def main(count: int) -> None:
    started = time.monotonic()
    customer = Customer.objects.create(name="Bench Industries", slug="bench-industries")
    site = site_create(actor=None, customer=customer, name="Bench plant")
    model = bench_asset_model()
    devices = [
        bench_device(
            site=site,
            model=model,
            serial=f"BENCH-A{number:06d}",
            name=f"Compressor {number}",
            device_serial=f"BENCH-D{number:06d}",
        )
        for number in range(count)
    ]
    print(
        f"setup: {count} assets and devices in {time.monotonic() - started:.1f}s", file=sys.stderr, flush=True
    )
    json.dump({"customer": str(customer.pk), "devices": devices}, sys.stdout)


if __name__ == "__main__":
    main(int(sys.argv[1]))
