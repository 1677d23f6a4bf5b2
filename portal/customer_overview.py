"""The customer overview's panels (staff: one customer's sites, machines, contracts, invoices,
tickets on one page). Apps register providers in `AppConfig.ready()`, as for the home page
(`portal.home`), so `portal` never imports them (docs/architecture.md).

A provider answers None when the actor's role may not see its part (finance sees no fleet), and
reads through the actor's scoped querysets, filtered to the customer, with a fixed number of
queries whatever the customer's size (tests/portal/test_customer_overview.py counts them).
"""

from __future__ import annotations

from collections.abc import Callable

from portal.home import Panel
from portal.models import Customer, User

CustomerPanelProvider = Callable[[User, Customer], Panel | None]
_providers: list[CustomerPanelProvider] = []


def register_customer_panel(provider: CustomerPanelProvider) -> CustomerPanelProvider:
    if provider not in _providers:
        _providers.append(provider)
    return provider


def customer_panels_for(actor: User, customer: Customer) -> list[Panel]:
    panels = [panel for provider in _providers if (panel := provider(actor, customer)) is not None]
    return sorted(panels, key=lambda p: p.order)
