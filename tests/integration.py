"""Real parts for integration and browser tests: a Celery worker, an ASGI server, Chromium.

Each runs as its own process against the same test database (the one pytest-django made)
and the Redis of bin/with-services. Tests that use them take `transactional_db` so their
rows are committed and visible to the other processes.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from django.db import close_old_connections, connection

from tests.services import free_port, wait_for_port

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
ARTIFACTS = Path(os.environ.get("ARTIFACTS_DIR", ROOT / "var" / "artifacts"))
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]


def wait_for_quiet_database(timeout: float = 15) -> None:
    """Wait until no other session on the test database is inside a statement or transaction.

    The worker and server processes keep working after a test's last assertion (an e-mail
    task, a live message); their queries take table locks in another order than the TRUNCATE
    that flushes the database, which PostgreSQL can resolve by aborting the flush.
    """
    deadline = time.monotonic() + timeout
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
                " AND state IS NOT NULL AND state <> 'idle'"
            )
            if cursor.fetchone()[0] == 0:
                return
            time.sleep(0.05)


T = TypeVar("T")


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 30) -> None:
    """Poll `condition` (every 0.1 s) until it holds; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def at_once(target: Callable[[], T], times: int) -> list[T]:
    """Call `target` from `times` threads released together, as racing workers would; returns
    what the calls returned, raises the first error. Each thread closes its connections."""
    barrier = threading.Barrier(times)
    results: list[T] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            barrier.wait()
            results.append(target())
        except BaseException as error:  # noqa: BLE001 - raised below
            errors.append(error)
        finally:
            close_old_connections()

    threads = [threading.Thread(target=run) for _ in range(times)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return results


def retry_flush(flush: Callable[[], None]) -> None:
    """Run `flush` once the database is quiet, and again when a process that was still working
    made PostgreSQL abort it (a deadlock or a lock timeout). Any other failure is raised as it is."""
    from django.core.management.base import CommandError
    from django.db import OperationalError

    for attempt in range(4):
        wait_for_quiet_database()
        try:
            flush()
            return
        except CommandError as error:
            if attempt == 3 or not isinstance(error.__cause__, OperationalError):
                raise
            time.sleep(0.2)


def flush_with_retry(original: Any) -> Any:
    """Wrap TransactionTestCase._fixture_teardown in `retry_flush`."""

    def _fixture_teardown(self: Any) -> None:
        retry_flush(lambda: original(self))

    return _fixture_teardown


def flush_database() -> None:
    """Empty the test database as a transactional test's end does (for data a module-scoped
    fixture made outside any test's transaction)."""
    from django.core.management import call_command

    from fleet.ingest.publisher import live_publisher

    live_publisher.wait_idle(10)
    retry_flush(lambda: call_command("flush", verbosity=0, interactive=False, reset_sequences=False))


def pytest_configure(config: pytest.Config) -> None:
    from django.test import TransactionTestCase

    TransactionTestCase._fixture_teardown = flush_with_retry(TransactionTestCase._fixture_teardown)


def _test_database_url() -> str:
    s = connection.settings_dict
    return f"postgres://{s['USER']}@{s['HOST']}:{s['PORT']}/{s['NAME']}"


def _process_env(**extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "portal.settings.test",
        "DATABASE_URL": _test_database_url(),
        "PYTHONUNBUFFERED": "1",
        "FLEETPORT_SUITE_SERVER": "1",  # tests/apps.py: content types cached across flushes
        **extra,
    }


def stop_process(process: subprocess.Popen[Any]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def mail_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the worker's and server's e-mails land (Django's file backend: our fake provider)."""
    return tmp_path_factory.mktemp("mail")


def start_worker(
    env: dict[str, str], *, name: str = "worker", concurrency: int = 2, include: str = ""
) -> subprocess.Popen[bytes]:
    """Start `celery worker` (prefork) and wait until it answers a ping on its broker; `include`
    names modules of extra tasks (tests.event_handlers)."""
    log = ARTIFACTS / f"celery-{name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    offset = log.stat().st_size if log.exists() else 0
    hostname = f"{name}-{os.getpid()}@{socket.gethostname()}"
    with log.open("ab") as out:
        process = subprocess.Popen(
            [
                str(VENV_BIN / "celery"), "-A", "portal", "worker", "--loglevel", "INFO",
                "--pool", "prefork", "--concurrency", str(concurrency), "--queues", "default,ingest",
                "--hostname", hostname, "--without-gossip", "--without-mingle",
                *(["--include", include] if include else []),
            ],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    # Wait for the worker's own "ready" line: a control ping would be published through the
    # app's default broker, which is not this worker's when a test gives it a Redis of its own.
    deadline = time.monotonic() + 60
    while f"{hostname} ready." not in log.read_text(errors="replace")[offset:]:
        if process.poll() is not None or time.monotonic() > deadline:
            stop_process(process)
            raise RuntimeError(f"the Celery worker did not come up; see {log}")
        time.sleep(0.1)
    return process


def start_beat(env: dict[str, str], *, name: str = "beat", schedule: Path) -> subprocess.Popen[bytes]:
    """Start `celery beat` (the schedule of portal.celery, e.g. the outbox relay every 5 s)
    and wait until it runs."""
    log = ARTIFACTS / f"celery-{name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    offset = log.stat().st_size if log.exists() else 0
    with log.open("ab") as out:
        process = subprocess.Popen(
            [
                str(VENV_BIN / "celery"), "-A", "portal", "beat", "--loglevel", "INFO",
                "--schedule", str(schedule),
            ],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    deadline = time.monotonic() + 60
    while "beat: Starting..." not in log.read_text(errors="replace")[offset:]:
        if process.poll() is not None or time.monotonic() > deadline:
            stop_process(process)
            raise RuntimeError(f"celery beat did not come up; see {log}")
        time.sleep(0.1)
    return process


def start_asgi(env: dict[str, str], *, name: str = "asgi") -> tuple[subprocess.Popen[bytes], str]:
    """Start uvicorn on portal.asgi on a free port; returns the process and its base URL."""
    port = free_port()
    log = ARTIFACTS / f"{name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        process = subprocess.Popen(
            [str(VENV_BIN / "uvicorn"), "portal.asgi:application", "--host", "127.0.0.1", "--port", f"{port}"],  # noqa: E501
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        wait_for_port(port, timeout=60)
    except TimeoutError:
        stop_process(process)
        raise
    return process, f"http://127.0.0.1:{port}"


@pytest.fixture(scope="session")
def service_env(django_db_setup: None, django_db_blocker: Any, mail_dir: Path) -> dict[str, str]:
    """The environment of the worker and server processes: the test database, files for mail."""
    with django_db_blocker.unblock():
        return _process_env(
            EMAIL_BACKEND="django.core.mail.backends.filebased.EmailBackend", EMAIL_FILE_PATH=str(mail_dir)
        )


def collect_static(root: Path) -> None:
    """Fill `root` as `collectstatic` fills production's and `make run`'s STATIC_ROOT
    (STATIC_FILES=hashed: hashed names, brotli and gzip copies; portal/staticstorage.py).
    Compressing plotly.js takes most of a minute on a busy machine: it is done once a session
    (`collected_static`, tests/conftest.py); the tests that serve hashed files
    (tests/browser/test_static_files.py) use that root, and those that start `bin/run` give its
    var folder a copy (`seed_static`), so its collectstatic compresses nothing again."""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "portal.settings.test", "STATIC_FILES": "hashed"}
    collected = subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--no-input", "-v", "0"],
        cwd=ROOT, env={**env, "STATIC_ROOT": str(root)}, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert collected.returncode == 0, collected.stdout + collected.stderr


def seed_static(collected: Path, var: Path) -> None:
    """Give `bin/run`'s var folder the session's collected static files (hard links where the
    file system allows): its own collectstatic then finds every file and compressed copy in
    place, as on a second `make run`."""

    def link_or_copy(source: str, target: str) -> None:
        try:
            os.link(source, target)
        except OSError:
            shutil.copy2(source, target)

    shutil.copytree(collected, var / "staticfiles", copy_function=link_or_copy)


@pytest.fixture(scope="session")
def live_worker(service_env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    """A real `celery worker` process on the test database and the test Redis."""
    process = start_worker(service_env)
    yield process
    stop_process(process)


@pytest.fixture(scope="session")
def asgi_server(service_env: dict[str, str]) -> Iterator[str]:
    """A real uvicorn serving portal.asgi (HTTP and WebSocket); yields its base URL."""
    process, url = start_asgi(service_env)
    yield url
    stop_process(process)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium driven by Playwright (no browser download).

    Module-scoped: Playwright's sync API keeps an event loop running in this thread while it
    is open, which the in-process async tests (channels' communicator) cannot share.
    """
    from playwright.sync_api import sync_playwright

    # The tests make plain ORM calls (fixtures, database flushes) while Playwright's loop
    # runs; let Django allow them for exactly as long as that loop exists.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            instance = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            yield instance
            instance.close()
    finally:
        os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)


# The Content-Security-Policy (docs/security.md) is checked on every page the browser tests
# open: the browser's `securitypolicyviolation` events and its console reports of refusals.
# Give `page.wait_for_function` a function ("() => …"): Playwright eval()s a bare expression
# in the page, which the policy refuses like any other eval.
_CSP_WATCH = """
document.addEventListener("securitypolicyviolation", function (e) {
  window.__cspViolation(e.effectiveDirective + " refused " + (e.blockedURI || "an inline script or style")
                        + " at " + (e.sourceFile || document.location.href) + ":" + e.lineNumber);
});
"""


def watch_csp(context: Any, violations: list[str] | None = None) -> list[str]:
    """Collect the CSP violations of every page of a Playwright browser context (into
    `violations`, or a new list), and return the list."""
    violations = [] if violations is None else violations
    context.expose_binding("__cspViolation", lambda _source, text: violations.append(str(text)))
    context.add_init_script(_CSP_WATCH)

    def on_console(message: Any) -> None:
        if "Content Security Policy" in message.text:
            violations.append(message.text)

    context.on("console", on_console)
    return violations


def assert_no_csp_violations(page: Any, violations: list[str]) -> None:
    if not page.is_closed():
        page.evaluate("0")  # a round trip: reports still on their way arrive first
    assert not violations, f"Content-Security-Policy violations: {violations}"


@pytest.fixture
def csp_violations() -> list[str]:
    """The CSP violations `page` saw: the fixture fails the test if any are left at its end."""
    return []


@pytest.fixture
def page(browser: Any, csp_violations: list[str]) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    watch_csp(context, csp_violations)
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    try:
        assert_no_csp_violations(page, csp_violations)
    finally:
        context.close()


def post_ingest(base_url: str, token: str, body: Any) -> int:
    """POST heartbeats (one object or a list) to a running server's ingest endpoint as a device
    does; returns the status code."""
    return post_json(f"{base_url}/api/v1/ingest/heartbeats", body, {"Authorization": f"Device {token}"})


def post_json(url: str, body: Any, headers: dict[str, str]) -> int:
    """POST `body` as JSON to a running server with `headers`; returns the status code."""
    request = urllib.request.Request(  # noqa: S310 - the test's own loopback server
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **headers},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - loopback only
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


# The screens every page must fit (issue 16): a laptop and a phone.
LAPTOP = {"width": 1366, "height": 768}
PHONE = {"width": 390, "height": 844}
SCREENS = (LAPTOP, PHONE)


def on_screen(page: Any, screen: dict[str, int]) -> None:
    page.set_viewport_size(screen)


def assert_fits(page: Any, what: object = None) -> None:
    """Nothing on the page scrolls sideways at its viewport's width."""
    width = page.viewport_size["width"]
    scrolled = page.evaluate("() => document.documentElement.scrollWidth")
    assert scrolled <= width, (what or page.url, width, scrolled)


def screenshot(page: Any, name: str, *, jpeg: bool = False) -> Path:
    """Save a full-page screenshot as a test artifact (var/artifacts/screenshots/); a JPEG
    takes a third of the time of a PNG, for tests that take hundreds."""
    path = ARTIFACTS / "screenshots" / f"{name}.{'jpg' if jpeg else 'png'}"
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), full_page=True, **({"type": "jpeg", "quality": 70} if jpeg else {}))
    return path


def login(page: Any, base_url: str, email: str, password: str) -> None:
    page.goto(f"{base_url}/accounts/login/")
    page.fill("input[name=username]", email)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")


# The every-page sweep (issue 16, tests/browser/test_every_page.py): a wide screen besides the
# laptop and the phone, and the checks each page gets on each screen.
WIDE = {"width": 1920, "height": 1080}
SWEEP_SCREENS = (LAPTOP, WIDE, PHONE)

# Whatever a person can act on: each must be on the screen, or reachable by scrolling its own
# scroll container (an ancestor with overflow-x auto or scroll), never cut off.
_UNREACHABLE = """
() => {
  const width = document.documentElement.clientWidth;
  const selector = 'a[href], button, input:not([type=hidden]), select, textarea, summary, [role=button]';
  const name = (el) => (el.getAttribute('aria-label') || el.textContent || el.name || el.value || '')
    .trim().replace(/\\s+/g, ' ').slice(0, 40);
  const classes = (el) => typeof el.className === 'string' && el.className.trim()
    ? '.' + el.className.trim().split(/\\s+/).join('.') : '';
  const where = (el) => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') + classes(el);
  const out = [];
  for (const el of document.querySelectorAll(selector)) {
    const box = el.getBoundingClientRect();
    if (box.width <= 1 || box.height <= 1 || getComputedStyle(el).visibility === 'hidden') continue;
    let left = box.left, right = box.right, cut = null;  // what must fit further up
    for (let up = el.parentElement; up && up !== document.body; up = up.parentElement) {
      const overflow = getComputedStyle(up).overflowX;
      if (overflow === 'visible') continue;
      const frame = up.getBoundingClientRect();
      if (overflow === 'auto' || overflow === 'scroll') {
        // Within the container's scrollable area; from here on, the container is what must fit.
        const from = left - frame.left + up.scrollLeft, to = right - frame.left + up.scrollLeft;
        if (from < -1 || to > up.scrollWidth + 1) { cut = 'outside its scroll container'; break; }
        left = frame.left; right = frame.right;
      } else if (right > frame.right + 1 || left < frame.left - 1) {
        cut = 'clipped by an overflow-' + overflow + ' ancestor'; break;
      }
    }
    if (!cut && (left < -1 || right > width + 1)) {
      cut = 'off-screen (' + Math.round(box.left) + '..' + Math.round(box.right) + ' of ' + width + ')';
    }
    if (cut) out.push(where(el) + ' "' + name(el) + '" ' + cut);
  }
  return out;
}
"""


def track_requests(page: Any) -> dict[str, float]:
    """Count the page's requests in flight (for `settle`); WebSockets are not requests."""
    state = {"busy": 0, "since": time.monotonic()}

    def started(_request: Any) -> None:
        state["busy"] += 1

    def ended(_request: Any) -> None:
        state["busy"] -= 1
        state["since"] = time.monotonic()

    page.on("request", started)
    page.on("requestfinished", ended)
    page.on("requestfailed", ended)
    return state


def settle(page: Any, requests: dict[str, float], quiet: float = 0.15, timeout: float = 15) -> None:
    """Wait until no request of the page (a chart's data, a list's rows) has been in flight
    for `quiet` seconds, then for a frame to be drawn: what Playwright's "networkidle" does in
    half a second less a page."""
    deadline = time.monotonic() + timeout
    while requests["busy"] > 0 or time.monotonic() - requests["since"] < quiet:
        if time.monotonic() > deadline:
            raise AssertionError(f"{page.url}: requests still in flight after {timeout} s")
        page.wait_for_timeout(25)
    page.evaluate("() => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)))")


def layout_problems(page: Any) -> list[str]:
    """What does not fit on the page at its viewport: the page scrolling sideways, or an
    element with an action that cannot be reached (outside the screen or its scroll container)."""
    problems = []
    width = page.viewport_size["width"]
    scrolled = page.evaluate("() => document.documentElement.scrollWidth")
    if scrolled > width:
        problems.append(f"the page is {scrolled} px wide on a {width} px screen")
    problems += page.evaluate(_UNREACHABLE)
    return problems


def watch_console_errors(context: Any, errors: list[str] | None = None) -> list[str]:
    """Collect the console errors and uncaught exceptions of every page of a browser context."""
    errors = [] if errors is None else errors

    def on_console(message: Any) -> None:
        if message.type == "error":
            page = getattr(message, "page", None)
            errors.append(
                f"console on {page.url if page else '?'}: {message.text} ({message.location.get('url', '')})"
            )

    context.on("console", on_console)
    context.on("page", lambda page: page.on("pageerror", lambda error: errors.append(f"uncaught: {error}")))
    return errors


# axe-core from its npm package, installed at test time into var/npm (never a CDN). The version
# is pinned: a new release may bring new rules, which should arrive by a change here.
AXE_CORE = "axe-core@4.14.1"
NPM_PREFIX = ROOT / "var" / "npm"


def axe_script() -> str:
    """The source of axe.min.js, installed with npm into var/npm when missing (on a clean clone:
    tests/conftest.py's `axe_source` starts this as the session begins)."""
    script = NPM_PREFIX / "node_modules" / "axe-core" / "axe.min.js"
    package = json.loads((script.parent / "package.json").read_text()) if script.exists() else {}
    if package.get("version") != AXE_CORE.split("@")[1]:
        subprocess.run(
            ["npm", "install", "--prefix", str(NPM_PREFIX), AXE_CORE, "--no-audit", "--no-fund"],
            check=True,
            capture_output=True,
        )
    return script.read_text()


# Only the rules that can report a serious or critical violation run: a rule's impact is its own
# (axe gives its checks the rule's), else the highest of its checks', so a rule whose impact is
# minor or moderate never adds to what is kept, and skipping it changes no outcome. It saves the
# costliest of those rules (`region` visits every element) on each of the sweep's pages.
_AXE_RUN = """
async () => {
  const rank = {minor: 1, moderate: 2, serious: 3, critical: 4};
  const checks = axe._audit.data.checks;
  const impact = (rule) => rule.impact ? rank[rule.impact] : Math.max(0,
    ...[...rule.any, ...rule.all, ...rule.none]
      .map((check) => rank[(checks[typeof check === 'string' ? check : check.id] || {}).impact] || 4));
  const rules = Object.fromEntries(axe._audit.rules.filter((rule) => impact(rule) < rank.serious)
    .map((rule) => [rule.id, {enabled: false}]));
  const result = await axe.run(document, {resultTypes: ['violations'], rules});
  return result.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical').map((v) =>
    v.impact + ' ' + v.id + ': ' + v.help + ' at '
    + v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(', ')
    + (v.nodes.length > 3 ? ' and ' + (v.nodes.length - 3) + ' more' : ''));
}
"""


def axe_problems(page: Any, source: str) -> list[str]:
    """The serious and critical accessibility violations axe-core finds on the page. Its source
    goes in through the devtools protocol (page.evaluate), which the page's CSP does not govern."""
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.evaluate(source)
    return list(page.evaluate(_AXE_RUN))


_OUT_OF_SIGHT = """
(selector) => [...document.querySelectorAll(selector)].filter((el) => {
  const box = el.getBoundingClientRect();
  if (box.left < 0 || box.right > document.documentElement.clientWidth + 1) return true;
  for (let up = el.parentElement; up && up !== document.body; up = up.parentElement) {
    if (getComputedStyle(up).overflowX === 'visible') continue;
    const frame = up.getBoundingClientRect();
    if (box.left < frame.left - 1 || box.right > frame.right + 1) return true;
  }
  return false;
}).map((el) => (el.textContent || el.getAttribute('aria-label') || el.tagName)
  .trim().replace(/\\s+/g, ' ').slice(0, 60))
"""


def out_of_sight(page: Any, selector: str) -> list[str]:
    """The elements matching `selector` that cannot be seen whole without scrolling sideways
    (the page or any scroll container): their texts. Stricter than `layout_problems`, which
    accepts what a scroll container reaches."""
    return list(page.evaluate(_OUT_OF_SIGHT, selector))
