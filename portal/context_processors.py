from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse

from portal.roles import Capability, can

# (label, url name, capabilities: any one of them shows the entry; empty = every user).
# Apps append their entries here from AppConfig.ready() via `add_nav_item`.
NAV_ITEMS: list[tuple[str, str, tuple[Capability, ...], int]] = [
    ("Home", "home", (), 0),
    ("Customers", "customer_list", (Capability.VIEW_ALL_CUSTOMERS,), 50),
    ("Users", "user_list", (Capability.MANAGE_CUSTOMER_USERS, Capability.MANAGE_ALL_USERS), 80),
    ("Activity", "activity", (Capability.VIEW_AUDIT_LOG,), 90),
    ("API", "swagger-ui", (), 95),
]


def add_nav_item(label: str, url_name: str, capabilities: tuple[Capability, ...], order: int) -> None:
    if all(item[1] != url_name for item in NAV_ITEMS):
        NAV_ITEMS.append((label, url_name, capabilities, order))


def navigation(request: HttpRequest) -> dict[str, Any]:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"nav_items": []}
    items = []
    current = request.resolver_match.url_name if request.resolver_match else None
    for label, url_name, capabilities, _order in sorted(NAV_ITEMS, key=lambda i: i[3]):
        if capabilities and not any(can(user, c) for c in capabilities):
            continue
        try:
            url = reverse(url_name)
        except NoReverseMatch:
            continue
        items.append({"label": label, "url": url, "active": url_name == current})
    if can(user, Capability.USE_ADMIN):
        items.append({"label": "Admin", "url": reverse("admin:index"), "active": False})
    return {"nav_items": items}
