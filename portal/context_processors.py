from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse

from portal.roles import Capability, can

# (label, url name, capabilities: any one of them shows the entry; empty = every user, order).
# Apps append their entries here from AppConfig.ready() via `add_nav_item`.
NAV_ITEMS: list[tuple[str, str, tuple[Capability, ...], int]] = [
    ("Home", "home", (), 0),
    ("Customers", "customer_list", (Capability.VIEW_ALL_CUSTOMERS,), 50),
    ("Users", "user_list", (Capability.MANAGE_CUSTOMER_USERS, Capability.MANAGE_ALL_USERS), 80),
    ("Activity", "activity", (Capability.VIEW_AUDIT_LOG,), 90),
    ("API", "swagger-ui", (), 95),
]

# The navigation's menus: an entry belongs to the last group whose first order it reaches
# (Fleet 5–11, Support 12–19, Billing 20–49, Admin 50 on). Home (0) stands alone.
NAV_GROUPS: list[tuple[int, str]] = [(5, "Fleet"), (12, "Support"), (20, "Billing"), (50, "Admin")]
# Up to this many entries the bar shows them all; a role with more sees them in the menus
# above (the operator's 17 entries pushed "Log out" off a 1366 px screen; docs/frontend.md).
FLAT_NAV_MAX = 8


def add_nav_item(label: str, url_name: str, capabilities: tuple[Capability, ...], order: int) -> None:
    """Add an entry to the navigation; its `order` places it, and its menu (NAV_GROUPS)."""
    if all(item[1] != url_name for item in NAV_ITEMS):
        NAV_ITEMS.append((label, url_name, capabilities, order))


def _group_of(order: int) -> str:
    return next((label for start, label in reversed(NAV_GROUPS) if order >= start), "")


def group_entries(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The entries as the bar shows them: flat for a short navigation, else each group of two
    or more as a menu (`links`, `active` when it holds the current page) and the rest as links."""
    if len(items) <= FLAT_NAV_MAX:
        return items
    entries: list[dict[str, Any]] = []
    menus: dict[str, dict[str, Any]] = {}
    for item in items:
        group = item["group"]
        if not group or sum(1 for other in items if other["group"] == group) < 2:
            entries.append(item)
        elif group in menus:
            menus[group]["links"].append(item)
            menus[group]["active"] |= item["active"]
        else:
            menus[group] = {"label": group, "links": [item], "active": item["active"]}
            entries.append(menus[group])
    return entries


def navigation(request: HttpRequest) -> dict[str, Any]:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"nav_items": [], "nav_entries": []}
    items = []
    current = request.resolver_match.url_name if request.resolver_match else None
    for label, url_name, capabilities, order in sorted(NAV_ITEMS, key=lambda i: i[3]):
        if capabilities and not any(can(user, c) for c in capabilities):
            continue
        try:
            url = reverse(url_name)
        except NoReverseMatch:
            continue
        items.append({"label": label, "url": url, "active": url_name == current, "group": _group_of(order)})
    if can(user, Capability.USE_ADMIN):
        items.append(
            {"label": "Django admin", "url": reverse("admin:index"), "active": False, "group": "Admin"}
        )
    return {"nav_items": items, "nav_entries": group_entries(items)}
