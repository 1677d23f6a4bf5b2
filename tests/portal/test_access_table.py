"""The roles table of docs/architecture.md ("Who uses it"), role by role: what each may see and
do, pages and API."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from portal.models import Customer, User
from portal.roles import Capability, Role, can
from tests.conftest import client_for

VIEWER, ADMIN, SUPPORT, FINANCE, OPERATOR = (
    Role.CUSTOMER_VIEWER,
    Role.CUSTOMER_ADMIN,
    Role.SUPPORT,
    Role.FINANCE,
    Role.OPERATOR,
)
ROLES = [VIEWER, ADMIN, SUPPORT, FINANCE, OPERATOR]


# What that table says in words, one capability at a time.
ROLES_TABLE: dict[Capability, set[Role]] = {
    Capability.VIEW_FLEET: {VIEWER, ADMIN, SUPPORT, OPERATOR},
    Capability.VIEW_USAGE: {VIEWER, ADMIN, FINANCE, OPERATOR},
    Capability.VIEW_CONTRACTS: {VIEWER, ADMIN, SUPPORT, FINANCE, OPERATOR},
    Capability.OPEN_TICKETS: {VIEWER, ADMIN, SUPPORT, OPERATOR},
    Capability.MANAGE_CUSTOMER_USERS: {ADMIN, OPERATOR},
    Capability.MANAGE_API_TOKENS: {ADMIN, OPERATOR},
    Capability.VIEW_INVOICES: {ADMIN, FINANCE, OPERATOR},
    Capability.DISPUTE_INVOICES: {ADMIN, OPERATOR},
    Capability.TUNE_THRESHOLDS: {ADMIN, OPERATOR},
    Capability.VIEW_ALL_CUSTOMERS: {SUPPORT, FINANCE, OPERATOR},
    Capability.WORK_TICKETS: {SUPPORT, OPERATOR},
    Capability.INTERNAL_NOTES: {SUPPORT, OPERATOR},
    Capability.MANAGE_PLANS: {FINANCE, OPERATOR},
    Capability.RUN_INVOICES: {FINANCE, OPERATOR},
    Capability.MANAGE_CUSTOMERS: {OPERATOR},
    Capability.MANAGE_FLEET: {OPERATOR},
    Capability.MANAGE_ALL_USERS: {OPERATOR},
    Capability.USE_ADMIN: {OPERATOR},
}


@pytest.mark.parametrize("capability", list(ROLES_TABLE), ids=str)
def test_capabilities_follow_the_roles_table(cast: dict[str, User], capability: Capability) -> None:
    granted = {role for role in ROLES if can(cast[role], capability)}
    assert granted == ROLES_TABLE[capability]


def test_a_deactivated_user_can_do_nothing(operator: User) -> None:
    operator.is_active = False
    assert not any(can(operator, capability) for capability in Capability)


def _a(customer_a: Customer, customer_b: Customer) -> str:
    return str(customer_a.pk)


def _b(customer_a: Customer, customer_b: Customer) -> str:
    return str(customer_b.pk)


OK, FORBIDDEN, NOT_FOUND, REDIRECT, CREATED = 200, 403, 404, 302, 201
UrlFor = Callable[[Customer, Customer], str]

# (url, expected status per role). Customer roles belong to customer A.
PAGES: list[tuple[str | UrlFor, dict[Role, int]]] = [
    ("/", dict.fromkeys(ROLES, OK)),
    ("/customers/", {VIEWER: FORBIDDEN, ADMIN: FORBIDDEN, SUPPORT: OK, FINANCE: OK, OPERATOR: OK}),
    # The customer overview is staff's (issue 16); a customer user reads its own on its profile.
    (
        lambda a, b: f"/customers/{_a(a, b)}/",
        {VIEWER: FORBIDDEN, ADMIN: FORBIDDEN, SUPPORT: OK, FINANCE: OK, OPERATOR: OK},
    ),
    (
        lambda a, b: f"/customers/{_b(a, b)}/",
        {VIEWER: FORBIDDEN, ADMIN: FORBIDDEN, SUPPORT: OK, FINANCE: OK, OPERATOR: OK},
    ),
    (
        "/customers/onboard/",
        {VIEWER: FORBIDDEN, ADMIN: FORBIDDEN, SUPPORT: FORBIDDEN, FINANCE: FORBIDDEN, OPERATOR: OK},
    ),
    (
        lambda a, b: f"/customers/{_a(a, b)}/billing/",
        {VIEWER: FORBIDDEN, ADMIN: FORBIDDEN, SUPPORT: FORBIDDEN, FINANCE: OK, OPERATOR: OK},
    ),
    (
        lambda a, b: f"/customers/{_b(a, b)}/billing/",
        {VIEWER: FORBIDDEN, ADMIN: FORBIDDEN, SUPPORT: FORBIDDEN, FINANCE: OK, OPERATOR: OK},
    ),
    ("/users/", {VIEWER: FORBIDDEN, ADMIN: OK, SUPPORT: FORBIDDEN, FINANCE: FORBIDDEN, OPERATOR: OK}),
    ("/users/invite/", {VIEWER: FORBIDDEN, ADMIN: OK, SUPPORT: FORBIDDEN, FINANCE: FORBIDDEN, OPERATOR: OK}),
    ("/activity/", {VIEWER: FORBIDDEN, ADMIN: OK, SUPPORT: FORBIDDEN, FINANCE: FORBIDDEN, OPERATOR: OK}),
    ("/sites/", {VIEWER: OK, ADMIN: OK, SUPPORT: OK, FINANCE: FORBIDDEN, OPERATOR: OK}),
    ("/fleet/", {VIEWER: OK, ADMIN: OK, SUPPORT: OK, FINANCE: FORBIDDEN, OPERATOR: OK}),
    ("/alarms/", {VIEWER: OK, ADMIN: OK, SUPPORT: OK, FINANCE: FORBIDDEN, OPERATOR: OK}),
    ("/accounts/profile/", dict.fromkeys(ROLES, OK)),
    ("/accounts/password/", dict.fromkeys(ROLES, OK)),
    ("/admin/", {VIEWER: REDIRECT, ADMIN: REDIRECT, SUPPORT: REDIRECT, FINANCE: REDIRECT, OPERATOR: OK}),
    (
        "/admin/portal/customer/",
        {VIEWER: REDIRECT, ADMIN: REDIRECT, SUPPORT: REDIRECT, FINANCE: REDIRECT, OPERATOR: OK},
    ),
    ("/api/v1/docs/", dict.fromkeys(ROLES, OK)),
    ("/api/v1/me/", dict.fromkeys(ROLES, OK)),
    ("/api/v1/customers/", dict.fromkeys(ROLES, OK)),
    (
        lambda a, b: f"/api/v1/customers/{_b(a, b)}/",
        {VIEWER: NOT_FOUND, ADMIN: NOT_FOUND, SUPPORT: OK, FINANCE: OK, OPERATOR: OK},
    ),
    ("/api/v1/users/", {VIEWER: FORBIDDEN, ADMIN: OK, SUPPORT: FORBIDDEN, FINANCE: FORBIDDEN, OPERATOR: OK}),
    ("/api/v1/sites/", {VIEWER: OK, ADMIN: OK, SUPPORT: OK, FINANCE: FORBIDDEN, OPERATOR: OK}),
    ("/api/v1/asset-models/", dict.fromkeys(ROLES, OK)),
    ("/api/v1/assets/", dict.fromkeys(ROLES, OK)),
    ("/api/v1/devices/", {VIEWER: OK, ADMIN: OK, SUPPORT: OK, FINANCE: FORBIDDEN, OPERATOR: OK}),
    ("/api/v1/tokens/", dict.fromkeys(ROLES, OK)),
]


def _url(spec: str | UrlFor, a: Customer, b: Customer) -> str:
    return spec if isinstance(spec, str) else spec(a, b)


@pytest.mark.parametrize("role", ROLES, ids=str)
@pytest.mark.parametrize(
    ("spec", "expected"),
    PAGES,
    ids=[p[0] if isinstance(p[0], str) else f"page{i}" for i, p in enumerate(PAGES)],
)
def test_get_by_role(
    cast: dict[str, User],
    customer_a: Customer,
    customer_b: Customer,
    role: Role,
    spec: Any,
    expected: dict[Role, int],
) -> None:
    response = client_for(cast[role]).get(_url(spec, customer_a, customer_b))
    assert response.status_code == expected[role]


def _post_customer(a: Customer) -> tuple[str, dict[str, Any]]:
    return "/api/v1/customers/", {
        "name": "Charlie Chillers",
        "slug": "charlie",
        "currency": "USD",
        "time_zone": "UTC",
    }


def _post_user(a: Customer) -> tuple[str, dict[str, Any]]:
    return "/api/v1/users/", {"email": "new@alpha.test", "role": "customer_viewer", "customer": str(a.pk)}


def _post_site(a: Customer) -> tuple[str, dict[str, Any]]:
    return "/api/v1/sites/", {"customer": str(a.pk), "name": "Alpha annex"}


def _post_model(a: Customer) -> tuple[str, dict[str, Any]]:
    return "/api/v1/asset-models/", {"code": "m1", "name": "M1", "metrics": [{"code": "x", "label": "X"}]}


ACTIONS = [
    (
        _post_customer,
        {VIEWER: FORBIDDEN, ADMIN: FORBIDDEN, SUPPORT: FORBIDDEN, FINANCE: FORBIDDEN, OPERATOR: CREATED},
    ),
    (
        _post_user,
        {VIEWER: FORBIDDEN, ADMIN: CREATED, SUPPORT: FORBIDDEN, FINANCE: FORBIDDEN, OPERATOR: CREATED},
    ),
    (
        _post_site,
        {VIEWER: FORBIDDEN, ADMIN: FORBIDDEN, SUPPORT: FORBIDDEN, FINANCE: FORBIDDEN, OPERATOR: CREATED},
    ),
    (
        _post_model,
        {VIEWER: FORBIDDEN, ADMIN: FORBIDDEN, SUPPORT: FORBIDDEN, FINANCE: FORBIDDEN, OPERATOR: CREATED},
    ),
]


@pytest.mark.parametrize("role", ROLES, ids=str)
@pytest.mark.parametrize(
    ("action", "expected"),
    ACTIONS,
    ids=["create-customer", "invite-user", "create-site", "create-asset-model"],
)
def test_api_writes_by_role(
    cast: dict[str, User], customer_a: Customer, role: Role, action: Any, expected: dict[Role, int]
) -> None:
    url, body = action(customer_a)
    response = client_for(cast[role]).post(url, body, content_type="application/json")
    assert response.status_code == expected[role], response.content


@pytest.mark.parametrize("role", ROLES, ids=str)
def test_home_page_is_the_roles_own(cast: dict[str, User], customer_a: Customer, role: Role) -> None:
    headings = {
        VIEWER: customer_a.name,
        ADMIN: customer_a.name,
        SUPPORT: "Support desk",
        FINANCE: "Finance",
        OPERATOR: "Operations",
    }
    body = client_for(cast[role]).get("/").content.decode()
    assert f'data-testid="home-heading">{headings[role]}</h1>' in body


def test_navigation_shows_only_what_the_role_may_open(cast: dict[str, User]) -> None:
    viewer_page = client_for(cast[VIEWER]).get("/").content.decode()
    operator_page = client_for(cast[OPERATOR]).get("/").content.decode()
    assert 'href="/users/"' not in viewer_page
    assert 'href="/admin/"' not in viewer_page
    assert 'href="/users/"' in operator_page
    assert 'href="/admin/"' in operator_page


def test_anonymous_visitors_are_sent_to_log_in(db: None) -> None:
    from django.test import Client

    client = Client()
    assert client.get("/").status_code == REDIRECT
    assert client.get("/users/")["Location"].startswith("/accounts/login/")
    assert client.get("/api/v1/customers/").status_code == 401
