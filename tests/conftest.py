"""The fixed cast: two customers, a user of every role, and clients logged in as each.

Service fixtures (a real Celery worker, a real ASGI server, Chromium) live in
tests/integration.py and are loaded here as a plugin.
"""

from __future__ import annotations

import os

import pytest
from django.test import Client

from portal.models import Customer, User
from portal.roles import Role
from tests.factories import CustomerFactory, SiteFactory, UserFactory

pytest_plugins = ["tests.integration", "tests.fleet_fixtures", "tests.billing_fixtures"]

if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
    raise pytest.UsageError(
        "The suite runs on PostgreSQL and Redis that bin/with-services starts: "
        "use `make test`, or `.venv/bin/python bin/with-services .venv/bin/pytest ...`."
    )


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
