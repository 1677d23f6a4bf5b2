"""PL1: an asset page's load in Chromium, first visit (cold cache) and repeat (warm cache).

    .venv/bin/python bench/pageload.py [--samples N] [--static hashed,source] [--keep-logs]

Starts its own PostgreSQL and Redis, then does what `make run` does before its processes
start (migrate, seed_demo, collectstatic when STATIC_FILES=hashed) and starts the web process
with the Procfile's own command (uvicorn, `portal.settings.dev`, DEBUG on as `make run` has
it). Worker, beat and simulator are left out: a page load does not wait for them, and they
would only add noise on a shared machine.

Chromium (Playwright, /usr/bin/chromium with the flags of tests/integration.py) logs in as the
demo's customer viewer once; then each sample is a fresh browser context (an empty cache,
the session cookie only) that opens the asset page of the demo's drifting compressor
(AC75-1002) — the first load — and opens it again — the repeat, served from the warm cache.
Figures come from the page's Navigation Timing entry: the load event's end (the target),
DOMContentLoaded, the HTML's arrival, and the bytes the page and its resources transferred;
and when its charts are drawn (each marked with data-points by asset-page.js): the page loads
plotly.js after its load event (static/js/plotly-loader.js).

`--static` runs the same samples per way of serving static files, each on a fresh server:
`hashed` (what `make run` and production serve now) and `source` (the source folders,
uncompressed and revalidated, as `make run` served them before issue 16). The target is
judged on `hashed`, p95 of both loads. Prints one JSON
object on stdout; the load average is read at the start and at the end of the run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import (
    ROOT,
    VENV_BIN,
    Process,
    Stack,
    idle_load_average,
    log,
    machine_info,
    migrate,
    run_main,
    services,
)

TARGETS = {"first_load_ms_max": 1000.0, "repeat_load_ms_max": 300.0}
ASSET_SERIAL = "AC75-1002"
VIEWER = "viewer@acme.example"
DEMO_PASSWORD = "fleetport-demo"  # noqa: S105 - every demo user's (README.md, portal/demo.py)

CHARTS_DRAWN = """() => {
  const charts = [...document.querySelectorAll('[data-usage-chart], [data-chart]')];
  return charts.length > 0 && charts.every(c => c.hasAttribute('data-points'));
}"""

# What the page reports after its load event: Navigation Timing (ms from navigation start)
# and the bytes transferred over the network (0 for what came from the cache).
MEASURE = """() => {
  const nav = performance.getEntriesByType('navigation')[0];
  const resources = performance.getEntriesByType('resource');
  return {
    load_ms: nav.loadEventEnd,
    dom_content_loaded_ms: nav.domContentLoadedEventEnd,
    html_ms: nav.responseEnd,
    transferred_bytes: nav.transferSize + resources.reduce((sum, r) => sum + r.transferSize, 0),
    resources: resources.length,
    from_network: resources.filter(r => r.transferSize > 0).map(r => new URL(r.name).pathname),
    api: resources.filter(r => new URL(r.name).pathname.startsWith('/api/')).map(r => ({
      url: new URL(r.name).pathname, start_ms: Math.round(r.startTime), end_ms: Math.round(r.responseEnd) })),
    plotly: resources.filter(r => r.name.includes('/vendor/plotly.min.')).map(r => ({
      url: new URL(r.name).pathname, transfer_bytes: r.transferSize, decoded_bytes: r.decodedBodySize,
      duration_ms: Math.round(r.duration) })),
  };
}"""


def percentile(values: list[float], share: float) -> float:
    """The nearest-rank percentile (p95 of 10 samples is the largest)."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * share // 1))  # ceil(n × share)
    return ordered[int(rank) - 1]


def summary(values: list[float]) -> dict[str, Any]:
    return {
        "p50": round(statistics.median(values), 1),
        "p95": round(percentile(values, 0.95), 1),
        "min": round(min(values), 1),
        "max": round(max(values), 1),
        "samples": [round(v, 1) for v in values],
    }


def manage(env: dict[str, str], *args: str) -> float:
    """Run a management command as bin/run does; returns its wall time in seconds."""
    started = time.monotonic()
    done = subprocess.run(  # noqa: S603 - our own argv
        [str(VENV_BIN / "python"), "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return time.monotonic() - started


def start_web_as_make_run(stack: Stack, name: str) -> tuple[Process, str]:
    """The Procfile's `web:` line, run by a shell as honcho runs it, with `stack.env` (its
    PORT); (process, base URL) once the port answers."""
    from tests.services import wait_for_port

    line = next(ln for ln in (ROOT / "Procfile").read_text().splitlines() if ln.startswith("web:"))
    process = stack.start(name, ["/bin/sh", "-c", line.removeprefix("web:").strip()])
    port = int(stack.env["PORT"])
    try:
        wait_for_port(port, timeout=90)
    except TimeoutError as exc:
        raise RuntimeError(f"{name} did not start:\n{process.tail()}") from exc
    return process, f"http://127.0.0.1:{port}"


def measure(base: str, asset_id: str, samples: int) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    from tests.integration import CHROMIUM, CHROMIUM_ARGS

    url = f"{base}/fleet/assets/{asset_id}/"
    first: list[dict[str, Any]] = []
    repeat: list[dict[str, Any]] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        context = browser.new_context(viewport={"width": 1366, "height": 768})
        page = context.new_page()
        page.goto(f"{base}/accounts/login/")
        page.fill("input[name=username]", VIEWER)
        page.fill("input[name=password]", DEMO_PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(f"{base}/")
        session = context.storage_state()
        context.close()
        for number in range(samples + 1):  # the first round warms the server, not counted
            context = browser.new_context(viewport={"width": 1366, "height": 768}, storage_state=session)
            page = context.new_page()
            visits = []
            for _ in ("first", "repeat"):
                response = page.goto(url, wait_until="load")
                if response is None or response.status != 200:
                    raise RuntimeError(f"{url} answered {response and response.status}")
                page.wait_for_function("() => performance.getEntriesByType('navigation')[0].loadEventEnd > 0")
                # The usage charts drawn (asset-page.js marks each with data-points once
                # Plotly drew it or its "nothing yet" note is shown), at the next frame.
                page.wait_for_function(CHARTS_DRAWN, polling="raf")
                drawn = page.evaluate("() => performance.now()")
                visit = page.evaluate(MEASURE)
                visit["charts_ms"] = drawn
                visits.append(visit)
            context.close()
            if number:
                first.append(visits[0])
                repeat.append(visits[1])
            log(
                f"sample {number}: load {visits[0]['load_ms']:.0f} / {visits[1]['load_ms']:.0f} ms, "
                f"charts {visits[0]['charts_ms']:.0f} / {visits[1]['charts_ms']:.0f} ms"
            )
        browser.close()
    return {
        "first_load_ms": summary([v["load_ms"] for v in first]),
        "repeat_load_ms": summary([v["load_ms"] for v in repeat]),
        "first_charts_ms": summary([v["charts_ms"] for v in first]),
        "repeat_charts_ms": summary([v["charts_ms"] for v in repeat]),
        "first_dom_content_loaded_ms": summary([v["dom_content_loaded_ms"] for v in first]),
        "repeat_dom_content_loaded_ms": summary([v["dom_content_loaded_ms"] for v in repeat]),
        "first_transferred_kib": round(statistics.median(v["transferred_bytes"] for v in first) / 1024, 1),
        "repeat_transferred_kib": round(statistics.median(v["transferred_bytes"] for v in repeat) / 1024, 1),
        "first_html_ms": summary([v["html_ms"] for v in first]),
        "repeat_html_ms": summary([v["html_ms"] for v in repeat]),
        "repeat_from_network": repeat[-1]["from_network"],
        "resources": first[-1]["resources"],
        "api_first": first[-1]["api"],
        "plotly_first": first[-1]["plotly"],
        "plotly_repeat": repeat[-1]["plotly"],
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    from tests.services import free_port

    load_average = idle_load_average()
    modes = [m.strip() for m in args.static.split(",") if m.strip()]
    results: dict[str, Any] = {}
    with services("fleetport-pageload-", keep_logs=args.keep_logs) as stack:
        for mode in modes:
            env = {
                **os.environ,
                "DJANGO_SETTINGS_MODULE": "portal.settings.dev",
                "DATABASE_URL": stack.postgres.url,
                "REDIS_URL": stack.redis.url,
                "FLEETPORT_VAR_DIR": str(stack.folder / "var"),
                "STATIC_FILES": mode,
                "PORT": str(free_port()),
                "PYTHONUNBUFFERED": "1",
                "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",  # as bin/run sets it
            }
            env.pop("DEBUG", None)  # make run's default: DEBUG on
            if not results:
                migrate(env)
                log("seed_demo")
                manage(env, "seed_demo")
            collect_seconds = None
            if mode == "hashed":
                log("collectstatic (first run: compresses everything)")
                collect_seconds = round(manage(env, "collectstatic", "--no-input", "-v", "0"), 1)
                log(f"collectstatic took {collect_seconds} s; again:")
                again = round(manage(env, "collectstatic", "--no-input", "-v", "0"), 1)
            stack.env = env
            process, base = start_web_as_make_run(stack, f"web-{mode}")
            with stack.connect() as conn:
                row = conn.execute(
                    "SELECT id FROM fleet_asset WHERE serial_number = %s", [ASSET_SERIAL]
                ).fetchone()
            if row is None:
                raise RuntimeError(f"the demo has no asset {ASSET_SERIAL}")
            log(f"{mode}: {args.samples} samples against {base}")
            results[mode] = measure(base, str(row[0]), args.samples)
            if collect_seconds is not None:
                results[mode]["collectstatic_seconds"] = {"first": collect_seconds, "again": again}
            process.stop()
    main_mode = "hashed" if "hashed" in results else modes[0]
    measured = results[main_mode]
    return {
        "scenario": "PL1 asset page load, first (cold cache) and repeat (warm cache)",
        "page": f"/fleet/assets/<{ASSET_SERIAL}>/ as {VIEWER}",
        "samples": args.samples,
        "static": results,
        "targets": TARGETS,
        "ok": measured["first_load_ms"]["p95"] <= TARGETS["first_load_ms_max"]
        and measured["repeat_load_ms"]["p95"] <= TARGETS["repeat_load_ms_max"],
        "ok_judged_on": f"{main_mode}: p95 of both against the targets",
        "machine": machine_info(
            load_average, load_average_at_end=[round(v, 2) for v in os.getloadavg()], chromium=_chromium()
        ),
    }


def _chromium() -> str:
    from tests.integration import CHROMIUM

    done = subprocess.run([CHROMIUM, "--version"], capture_output=True, text=True, check=False)  # noqa: S603
    return done.stdout.strip()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=10)
    parser.add_argument("--static", default="hashed,source", help="hashed, source or both (comma-separated)")
    parser.add_argument("--keep-logs", action="store_true")
    args = parser.parse_args()
    return run_main(lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
