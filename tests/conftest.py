"""The fixed cast: two customers, a user of every role, and clients logged in as each.

Service fixtures (a real Celery worker, a real ASGI server, Chromium) live in
tests/integration.py and are loaded here as a plugin.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from django.db.backends.postgresql.operations import DatabaseOperations as PostgresOperations
from django.test import Client

from portal.models import Customer, User
from portal.roles import Role
from tests.factories import CustomerFactory, SiteFactory, UserFactory
from tests.services import PostgresServer, find_program

pytest_plugins = ["tests.integration", "tests.fleet_fixtures", "tests.billing_fixtures"]

if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
    raise pytest.UsageError(
        "The suite runs on PostgreSQL and Redis that bin/with-services starts: "
        "use `make test`, or `.venv/bin/python bin/with-services .venv/bin/pytest ...`."
    )


# Session resources that take a while to make (a minute of one core; an npm install) start in a
# thread as soon as the collection shows that a test needs them, so that the work overlaps the
# tests that run before; their fixture then waits for it. A build no test took is undone when the
# session ends.
class EarlyBuild:
    def __init__(self, build: Callable[[], Any], undo: Callable[[Any], None]) -> None:
        self.build, self.undo = build, undo
        self.future: Future[Any] | None = None
        self.taken = False

    def start(self, pool: ThreadPoolExecutor) -> None:
        self.future = pool.submit(self.build)

    def take(self) -> Any:
        """What was built (waiting for it), or, when it never began, built now."""
        self.taken = True
        return self.future.result() if self.future is not None else self.build()

    def undo_untaken(self) -> None:
        if self.future is not None and not self.taken and self.future.exception() is None:
            self.undo(self.future.result())


ROOT = Path(__file__).resolve().parent.parent


def _migrated_cluster() -> PostgresServer:
    server = PostgresServer().start()
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "portal.settings.test", "DATABASE_URL": server.url}
    migrated = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--no-input", "-v", "0"],
        cwd=ROOT, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    stop = [*server.run_as, find_program("pg_ctl"), "-D", str(server.data), "-m", "fast", "-w", "stop"]
    subprocess.run(stop, check=False, capture_output=True)  # a clean shutdown: a copy starts as is
    if migrated.returncode != 0:
        server.stop()
        raise AssertionError(migrated.stderr[-3000:])
    return server


def _collected_static() -> Path:
    from tests.integration import collect_static  # here: pytest_plugins loads it (asserts rewritten)

    root = Path(tempfile.mkdtemp(prefix="fleetport-static-"))
    try:
        collect_static(root)
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise
    return root


def _axe_script() -> str:
    from tests.integration import axe_script

    return axe_script()


EARLY = {
    "migrated_cluster": EarlyBuild(_migrated_cluster, lambda server: server.stop()),
    "collected_static": EarlyBuild(_collected_static, lambda root: shutil.rmtree(root, ignore_errors=True)),
    "axe_source": EarlyBuild(_axe_script, lambda _source: None),  # an npm install on a clean clone
}
_pool = ThreadPoolExecutor(max_workers=len(EARLY), thread_name_prefix="early-build")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.option.collectonly:
        return
    wanted = {name for item in items for name in getattr(item, "fixturenames", ())}
    for name, early in EARLY.items():
        if name in wanted:
            early.start(_pool)


def pytest_sessionfinish() -> None:
    _pool.shutdown(wait=True)
    for early in EARLY.values():
        early.undo_untaken()


@pytest.fixture(scope="session")
def migrated_cluster() -> Iterator[Callable[[Path], None]]:
    """Copies of a PostgreSQL cluster whose database every migration has made, built once a
    session (early) and stopped cleanly. A test that needs a PostgreSQL of its own (to crash,
    restart or supervise it) calls this with a new `PostgresServer`'s empty data folder, then
    starts that server: it finds a migrated cluster and starts it as it is, instead of half a
    minute of migrations. Making a cluster and migrating it on a first run is still tested, by
    tests/portal/test_setup.py's `make run` from a clean checkout."""
    server = EARLY["migrated_cluster"].take()

    def copy(data: Path) -> None:
        # Owner and modes kept (as root the files stay the `postgres` user's).
        subprocess.run(["cp", "-a", f"{server.data}/.", str(data)], check=True, capture_output=True)

    try:
        yield copy
    finally:
        server.stop()  # removes its folder


@pytest.fixture(scope="session")
def collected_static() -> Iterator[Path]:
    """A STATIC_ROOT that `collectstatic` filled once a session (early), as production's and
    `make run`'s (tests/integration.py `collect_static`)."""
    root = EARLY["collected_static"].take()
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def axe_source() -> str:
    """axe-core's source for the browser tests' accessibility checks (tests/integration.py
    `axe_script`): on a clean clone npm installs it while the first tests run (early)."""
    return str(EARLY["axe_source"].take())


@pytest.fixture
def customer_a(db: None) -> Customer:
    customer = CustomerFactory(name="Alpha Dairy", slug="alpha", time_zone="Europe/Berlin")
    SiteFactory(customer=customer, name="Alpha plant")
    return customer


@pytest.fixture
def customer_b(db: None) -> Customer:
    customer = CustomerFactory(name="Bravo Breweries", slug="bravo", time_zone="America/Chicago")
    SiteFactory(customer=customer, name="Bravo brewhouse")
    return customer


@pytest.fixture
def viewer_a(customer_a: Customer) -> User:
    return UserFactory(email="viewer@alpha.test", role=Role.CUSTOMER_VIEWER, customer=customer_a)


@pytest.fixture
def admin_a(customer_a: Customer) -> User:
    return UserFactory(email="admin@alpha.test", role=Role.CUSTOMER_ADMIN, customer=customer_a)


@pytest.fixture
def viewer_b(customer_b: Customer) -> User:
    return UserFactory(email="viewer@bravo.test", role=Role.CUSTOMER_VIEWER, customer=customer_b)


@pytest.fixture
def admin_b(customer_b: Customer) -> User:
    return UserFactory(email="admin@bravo.test", role=Role.CUSTOMER_ADMIN, customer=customer_b)


@pytest.fixture
def support(db: None) -> User:
    return UserFactory(email="support@provider.test", role=Role.SUPPORT)


@pytest.fixture
def finance(db: None) -> User:
    return UserFactory(email="finance@provider.test", role=Role.FINANCE)


@pytest.fixture
def operator(db: None) -> User:
    return UserFactory(email="operator@provider.test", role=Role.OPERATOR, is_superuser=True)


@pytest.fixture
def cast(
    viewer_a: User, admin_a: User, viewer_b: User, admin_b: User, support: User, finance: User, operator: User
) -> dict[str, User]:
    """One user of each role (customer roles from customer A), plus B's users, by name."""
    return {
        Role.CUSTOMER_VIEWER: viewer_a,
        Role.CUSTOMER_ADMIN: admin_a,
        Role.SUPPORT: support,
        Role.FINANCE: finance,
        Role.OPERATOR: operator,
        "viewer_b": viewer_b,
        "admin_b": admin_b,
    }


# Tables a flush leaves as they are: what `post_migrate` would make again, row for row.
KEPT_BY_FLUSH = frozenset({"django_content_type", "auth_permission"})


def _emptying_sql(
    ops: Any, style: Any, tables: list[str], *, reset_sequences: bool, allow_cascade: bool
) -> list[str]:
    """What a flush runs (the end of every transactional test): `DELETE` from the tables that hold
    rows, instead of Django's one `TRUNCATE` of all of them. The telemetry tables have hundreds of
    partitions (pg_partman): truncating every one (new files for each partition and index) and
    then making the content types and permissions again took ~1 s a test; this takes ~0.1 s.
    As TRUNCATE does, it first locks every table (a late write of a worker waits for the flush,
    and the check for rows cannot race with it); the foreign keys are deferred to the commit, so
    the order does not matter; the schema has no triggers a `DELETE` would fire. Content types and
    permissions stay (a flush would delete and make them again under new ids; `post_migrate` then
    finds them all). A flush that resets sequences is still Django's."""
    if reset_sequences or not tables:
        return TRUNCATING_SQL_FLUSH(
            ops, style, tables, reset_sequences=reset_sequences, allow_cascade=allow_cascade
        )
    names = [ops.quote_name(table) for table in tables if table not in KEPT_BY_FLUSH]
    holding = " UNION ALL ".join(f"SELECT '{name}' WHERE EXISTS (SELECT 1 FROM {name})" for name in names)  # noqa: S608
    return [
        "SET CONSTRAINTS ALL DEFERRED",
        f"LOCK TABLE {', '.join(names)} IN ACCESS EXCLUSIVE MODE",
        f"DO $$ DECLARE t text; BEGIN FOR t IN {holding} LOOP EXECUTE 'DELETE FROM ' || t; END LOOP; END $$",  # noqa: S608 - table names from the models
    ]


TRUNCATING_SQL_FLUSH = PostgresOperations.sql_flush


def pytest_configure() -> None:
    PostgresOperations.sql_flush = _emptying_sql  # type: ignore[assignment,method-assign]


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """Before a test's database is flushed, let this process's live-publisher thread finish its
    round: its queries (joins over several tables) could otherwise deadlock with the flush."""
    from fleet.ingest.publisher import live_publisher

    live_publisher.wait_idle(10)


def client_for(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client
