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
customer's; built once for the five roles (`sweep_site`). Two roles are swept at once, each in
a Chromium of its own (`sweeps`). docs/frontend.md, "The every-page sweep".
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import pytest

from portal.roles import Role
from tests.browser import sweep_data
from tests.integration import (
    CHROMIUM,
    CHROMIUM_ARGS,
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
        """A page (not a download, a redirect or a refusal), asked without the browser. On a new
        connection: one kept alive from the last question may be closed by the server (uvicorn's
        keep-alive timeout) just as this one is sent, and the answer is then a reset socket."""
        response = self.page.context.request.get(
            f"{self.base}{path}", max_redirects=0, headers={"Connection": "close"}
        )
        return response.status == 200 and response.headers.get("content-type", "").startswith("text/html")


def sweep(base: str, axe_source: str, role: Role) -> tuple[dict[str, str], list[str]]:
    """One role's sweep, laptop then phone: its pages by kind, and every problem found. In a
    Chromium (and a Playwright) of its own, so that it can run in a thread beside another's."""
    from playwright.sync_api import sync_playwright

    problems: list[str] = []
    pages: dict[str, str] = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            for screen, mobile in ((LAPTOP, False), (PHONE, True)):
                context = browser.new_context(viewport=screen, is_mobile=mobile, has_touch=mobile)
                csp = watch_csp(context)
                errors = watch_console_errors(context)
                page = context.new_page()
                try:
                    login(page, base, sweep_data.ROLE_LOGINS[role], sweep_data.PASSWORD)
                    page.wait_for_url(f"{base}/")
                    role_sweep = Sweep(page, base, role, axe_source)
                    if not pages:
                        pages = role_sweep.discover(screen)  # each page on the laptop, then widened
                    else:
                        for kind, path in pages.items():
                            role_sweep.check(kind, path, screen)
                    problems += role_sweep.problems
                    assert_no_csp_violations(page, csp)
                finally:
                    context.close()
                problems += errors
        finally:
            browser.close()
    return pages, problems


# The roles with the most pages first: two sweeps run at once, the last starts as one ends.
ROLES_LONGEST_FIRST = [Role.OPERATOR, Role.FINANCE, Role.SUPPORT, Role.CUSTOMER_ADMIN, Role.CUSTOMER_VIEWER]


@pytest.fixture(scope="module")
def sweeps(sweep_site: None, asgi_server: str, axe_source: str) -> Iterator[dict[Role, Future[Any]]]:
    """Every role's sweep, two at a time in threads: a sweep mostly waits, on the server or on
    Chromium, and two keep both of a 2-core machine's cores busy (the sweeps only read, each in
    its own browser; the checks are the same as one at a time). Each test takes its role's."""
    assert set(ROLES_LONGEST_FIRST) == set(sweep_data.ROLE_LOGINS)
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="sweep") as pool:
        futures = {role: pool.submit(sweep, asgi_server, axe_source, role) for role in ROLES_LONGEST_FIRST}
        try:
            yield futures
        finally:
            for future in futures.values():
                future.cancel()  # those not begun, when the module stops early


@pytest.mark.timeout(900)  # a role's sweep may wait for two others to end first
@pytest.mark.parametrize("role", list(sweep_data.ROLE_LOGINS), ids=str)
def test_every_page_fits_every_screen_and_passes_axe(sweeps: dict[Role, Future[Any]], role: Role) -> None:
    pages, problems = sweeps[role].result()
    print(f"{role}: {len(pages)} pages: {', '.join(pages)}")  # noqa: T201 - the sweep's coverage, in -s runs
    assert pages, "the sweep found no page"
    assert not problems, f"{len(problems)} problems on {len(pages)} pages:\n" + "\n".join(problems)
