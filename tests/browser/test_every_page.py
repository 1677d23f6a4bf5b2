"""Every page of every role, on a laptop, a wide screen and a phone (issue 16, "Done when").

For each role, the sweep logs in as the demo's user, collects the pages its navigation reaches
and, one per kind, the pages those link to (an asset, a site, a ticket, an invoice, a contract,
a customer, a plan, a maintenance window, their forms ...), two links deep. On each page and
screen: the page never scrolls sideways, nothing with an action is cut off (outside the screen,
or outside the scroll container it lives in), no console error, no CSP violation, and on the
laptop and the phone no serious or critical axe-core violation. The wide screen is the laptop's
page widened in place (`Sweep.widen`); the phone loads each page afresh. Screenshots of the
laptop's and the phone's go to var/artifacts/screenshots/every-page/. The data is the demo plus
many long-named rows (tests/browser/sweep_data.py), so tables are wide and long as a real
customer's; built once for the five roles (`sweep_site`). docs/frontend.md, "The every-page sweep".
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from portal.roles import Role
from tests.browser import sweep_data
from tests.integration import (
    LAPTOP,
    PHONE,
    WIDE,
    assert_no_csp_violations,
    axe_problems,
    layout_problems,
    login,
    screenshot,
    settle,
    track_requests,
    watch_console_errors,
    watch_csp,
)

# The rows come from `sweep_site` (tests/browser/conftest.py), built once for the five roles.
pytestmark = [pytest.mark.browser, pytest.mark.django_db]

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# Links the sweep does not follow: other programs' pages (the Django admin beyond its index,
# the API), documents (PDF, CSV, XML downloads), and leaving.
NOT_PAGES = re.compile(
    r"^/(admin/.+|api/(?!v1/docs/$)|accounts/logout)|/(pdf|csv|xml|export|download)\b|\.\w+$"
)
DEPTH = 2  # the navigation's pages, what they link to, and what those link to


def page_kind(path: str) -> str:
    """A page's kind: its path with ids and object slugs taken out (one page of each kind)."""
    kind = UUID.sub("{id}", path)
    return re.sub(r"/price-overrides/[^/]+/", "/price-overrides/{metric}/", kind)


def links(page: Any, scope: str) -> list[str]:
    return list(
        page.evaluate(
            """(scope) => [...document.querySelectorAll(scope + ' a[href]')]
                .filter((a) => a.origin === location.origin && !a.hasAttribute('download'))
                .map((a) => a.pathname)""",
            scope,
        )
    )


class Sweep:
    """One role's sweep in one browser context: each page it checks, on the screen the context
    has, is loaded afresh, checked (`layout_problems` and axe) and photographed, and on the laptop
    widened (`widen`); the problems pile up in `problems`."""

    def __init__(self, page: Any, base: str, role: Role, axe_source: str) -> None:
        self.page, self.base, self.role, self.axe_source = page, base, role, axe_source
        self.requests = track_requests(page)
        self.problems: list[str] = []

    def check(self, kind: str, path: str, screen: dict[str, int]) -> None:
        self.page.set_viewport_size(screen)
        self.page.goto(f"{self.base}{path}")
        settle(self.page, self.requests)
        size = f"{screen['width']}x{screen['height']}"
        found = layout_problems(self.page)
        found += axe_problems(self.page, self.axe_source)
        self.problems += [f"{kind} at {size}: {problem}" for problem in found]
        name = kind.strip("/").replace("/", "_").replace("{id}", "id") or "home"
        screenshot(self.page, f"every-page/{self.role}/{name}-{size}", jpeg=True)
        if screen is LAPTOP:
            self.widen(kind)

    def widen(self, kind: str) -> None:
        """The page just checked on the laptop, on the wide screen: the window widened in place
        (layout.js and the charts follow a resize), then the layout checks again. The stylesheet
        has no rule above 1000 px, so 1920 px lays out what 1366 px does with more room: a
        second load, axe and a photograph would find what the laptop's found."""
        self.page.set_viewport_size(WIDE)
        self.page.evaluate(
            "() => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)))"
        )
        size = f"{WIDE['width']}x{WIDE['height']}"
        self.problems += [f"{kind} at {size}: {problem}" for problem in layout_problems(self.page)]

    def discover(self, screen: dict[str, int]) -> dict[str, str]:
        """The role's pages, by kind: its navigation's, then those they link to, DEPTH links
        deep; each checked on `screen` as it is found (the first pass, without a second load)."""
        self.page.goto(f"{self.base}/")
        found: dict[str, str] = {}
        frontier = links(self.page, "header")
        for depth in range(DEPTH + 1):
            next_frontier: list[str] = []
            for path in frontier:
                kind = page_kind(path)
                if kind in found or NOT_PAGES.search(path) or not self.is_html(path):
                    continue
                found[kind] = path
                self.check(kind, path, screen)
                if depth < DEPTH and not path.startswith(("/admin/", "/api/")):
                    next_frontier += links(self.page, "main")
            frontier = next_frontier
        return found

    def is_html(self, path: str) -> bool:
        """A page (not a download, a redirect or a refusal), asked without the browser."""
        response = self.page.context.request.get(f"{self.base}{path}", max_redirects=0)
        return response.status == 200 and response.headers.get("content-type", "").startswith("text/html")


@pytest.mark.parametrize("role", list(sweep_data.ROLE_LOGINS), ids=str)
def test_every_page_fits_every_screen_and_passes_axe(
    sweep_site: None, browser: Any, asgi_server: str, axe_source: str, role: Role
) -> None:
    problems: list[str] = []
    pages: dict[str, str] = {}
    for screen, mobile in ((LAPTOP, False), (PHONE, True)):
        context = browser.new_context(viewport=screen, is_mobile=mobile, has_touch=mobile)
        csp = watch_csp(context)
        errors = watch_console_errors(context)
        page = context.new_page()
        try:
            login(page, asgi_server, sweep_data.ROLE_LOGINS[role], sweep_data.PASSWORD)
            page.wait_for_url(f"{asgi_server}/")
            sweep = Sweep(page, asgi_server, role, axe_source)
            if not pages:
                pages = sweep.discover(screen)  # each page on the laptop, then widened
            else:
                for kind, path in pages.items():
                    sweep.check(kind, path, screen)
            problems += sweep.problems
            assert_no_csp_violations(page, csp)
        finally:
            context.close()
        problems += errors
    print(f"{role}: {len(pages)} pages: {', '.join(pages)}")  # noqa: T201 - the sweep's coverage, in -s runs
    assert not problems, f"{len(problems)} problems on {len(pages)} pages:\n" + "\n".join(problems)
