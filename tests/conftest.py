"""The fixed cast: two customers, a user of every role, and clients logged in as each.

Service fixtures (a real Celery worker, a real ASGI server, Chromium) live in
tests/integration.py and are loaded here as a plugin.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
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


@pytest.fixture(scope="session")
def migrated_cluster() -> Iterator[Callable[[Path], None]]:
    """Copies of a PostgreSQL cluster whose database every migration has made, built once a
    session and stopped cleanly. A test that needs a PostgreSQL of its own (to crash, restart
    or supervise it) calls this with a new `PostgresServer`'s empty data folder, then starts
    that server: it finds a migrated cluster and starts it as it is, instead of half a minute
    of migrations. Making a cluster and migrating it on a first run is still tested, by
    tests/portal/test_setup.py's `make run` from a clean checkout."""
    server = PostgresServer().start()
    try:
        env = {**os.environ, "DJANGO_SETTINGS_MODULE": "portal.settings.test", "DATABASE_URL": server.url}
        migrated = subprocess.run(
            [sys.executable, "manage.py", "migrate", "--no-input", "-v", "0"],
            cwd=Path(__file__).resolve().parent.parent, env=env, capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert migrated.returncode == 0, migrated.stderr[-3000:]
        stop = [*server.run_as, find_program("pg_ctl"), "-D", str(server.data), "-m", "fast", "-w", "stop"]
        subprocess.run(stop, check=True, capture_output=True)

        def copy(data: Path) -> None:
            # Owner and modes kept (as root the files stay the `postgres` user's).
            subprocess.run(["cp", "-a", f"{server.data}/.", str(data)], check=True, capture_output=True)

        yield copy
    finally:
        server.stop()  # removes its folder


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


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """Before a test's database is flushed, let this process's live-publisher thread finish its
    round: its queries (joins over several tables) could otherwise deadlock with the TRUNCATE."""
    from fleet.ingest.publisher import live_publisher

    live_publisher.wait_idle(10)


def client_for(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client
