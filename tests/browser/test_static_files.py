"""Static files as production and `make run` serve them (STATIC_FILES=hashed, docs/deploy.md):
hashed names, brotli/gzip, cached for good; plotly.js only on the pages that draw charts.

The rest of the suite serves static files from their source folders (portal/settings/test.py):
collecting and compressing them takes a minute, once per session (`collected_static`, which the
`make run` tests reuse).
"""

from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from fleet.models import AssetModel
from portal.models import Customer, User
from tests.factories import PASSWORD
from tests.fleet.conftest import install_with_readings
from tests.integration import login, start_asgi, stop_process

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

HASHED = re.compile(r"^/static/.+\.[0-9a-f]{12}\.(js|css|svg)$")
ONE_YEAR = 365 * 24 * 3600


class Served(NamedTuple):
    url: str  # the server's base URL
    root: Path  # its STATIC_ROOT


@pytest.fixture(scope="module")
def hashed_server(service_env: dict[str, str], collected_static: Path) -> Iterator[Served]:
    """uvicorn with STATIC_FILES=hashed on the session's collectstatic output (a temporary
    STATIC_ROOT, tests/conftest.py `collected_static`)."""
    env = {**service_env, "STATIC_FILES": "hashed", "STATIC_ROOT": str(collected_static)}
    process, url = start_asgi(env, name="asgi-hashed-static")
    yield Served(url, collected_static)
    stop_process(process)


def static_urls(page: Any) -> list[str]:
    return list(
        page.evaluate(
            """() => [...document.querySelectorAll('script[src], link[href], img[src]')]
                     .map(e => new URL(e.src || e.href).pathname)
                     .filter(p => p.startsWith('/static/'))"""
        )
    )


def fetch(url: str, encoding: str) -> tuple[int, dict[str, str], int]:
    request = urllib.request.Request(url, headers={"Accept-Encoding": encoding})  # noqa: S310 - loopback
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - loopback
        return int(response.status), {k.lower(): v for k, v in response.headers.items()}, len(response.read())


def test_pages_name_hashed_files_and_only_chart_pages_load_plotly(
    page: Any, hashed_server: Served, viewer_a: User, customer_a: Customer, compressor: AssetModel
) -> None:
    base = hashed_server.url
    mine = install_with_readings(customer_a, compressor, "STATIC-A1")
    login(page, base, viewer_a.email, PASSWORD)
    page.wait_for_url(f"{base}/")

    page.goto(f"{base}/fleet/")
    overview = static_urls(page)
    assert overview, "the fleet page names no static file"
    assert all(HASHED.match(url) for url in overview), overview
    assert not [url for url in overview if "plotly" in url], overview
    assert page.evaluate("() => typeof window.Plotly") == "undefined"

    page.goto(f"{base}/fleet/assets/{mine.asset.pk}/")
    page.wait_for_selector('[data-chart="temp_c"] .main-svg')
    on_asset_page = static_urls(page)
    assert all(HASHED.match(url) for url in on_asset_page), on_asset_page
    plotly = [url for url in on_asset_page if "/vendor/plotly.min." in url]
    assert len(plotly) == 1, on_asset_page

    # A second visit takes plotly.js from the browser's cache: not fetched, not revalidated.
    page.goto(f"{base}/fleet/assets/{mine.asset.pk}/")
    page.wait_for_selector('[data-chart="temp_c"] .main-svg')
    transferred = page.evaluate(
        """(name) => performance.getEntriesByType('resource')
                      .filter(e => new URL(e.name).pathname === name).map(e => e.transferSize)""",
        plotly[0],
    )
    assert transferred == [0], transferred


def test_plotly_is_served_compressed_and_cached_for_good(hashed_server: Served) -> None:
    manifest = json.loads((hashed_server.root / "staticfiles.json").read_text())
    hashed = manifest["paths"]["vendor/plotly.min.js"]
    url = f"{hashed_server.url}/static/{hashed}"
    plain_size = (hashed_server.root / hashed).stat().st_size

    for accepted, expected in (("br, gzip", "br"), ("gzip", "gzip")):
        status, headers, size = fetch(url, accepted)
        assert status == 200
        assert headers.get("content-encoding") == expected, headers
        assert size < plain_size / 3, (expected, size, plain_size)
        assert "immutable" in headers["cache-control"], headers
        max_age = int(re.search(r"max-age=(\d+)", headers["cache-control"]).group(1))  # type: ignore[union-attr]
        assert max_age >= ONE_YEAR, headers
    status, headers, size = fetch(url, "identity")
    assert (status, headers.get("content-encoding"), size) == (200, None, plain_size)
