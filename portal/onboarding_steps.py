"""The steps of onboarding a customer after the customer itself (portal/onboarding.py has the
flow): which there are, in which order, which are done, and the step indicator.

The core registers the last step (the admin's invitation); fleet registers its own (site,
asset, device) from `FleetConfig.ready()`, so `portal` never imports fleet.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.urls import reverse

from portal.models import Customer, User
from portal.roles import Capability, Role, can


@dataclass(frozen=True)
class Step:
    key: str
    label: str  # in the step indicator: "Site"
    action: str  # on the customer overview: "Add site"
    url_name: str  # takes the customer's pk
    capability: Capability
    order: int
    done: Callable[[Customer], bool]  # one query at most


def _has_users(customer: Customer) -> bool:
    return User.objects.for_customer(customer).filter(role=Role.CUSTOMER_ADMIN).exists()


_steps: dict[str, Step] = {}


def register_step(step: Step) -> None:
    _steps[step.key] = step


register_step(
    Step("invite", "Admin", "Invite admin", "onboard_invite", Capability.MANAGE_ALL_USERS, 90, _has_users)
)


def step(key: str) -> Step:
    return _steps[key]


def steps() -> list[Step]:
    return sorted(_steps.values(), key=lambda s: s.order)


def step_actions(actor: User, customer: Customer) -> list[dict[str, str]]:
    """The steps the actor may take for `customer`, as buttons for its overview."""
    return [
        {"label": s.action, "url": reverse(s.url_name, args=[customer.pk]), "key": s.key}
        for s in steps()
        if can(actor, s.capability)
    ]


def step_context(customer: Customer | None, current: str) -> dict[str, Any]:
    """The step indicator: each step done, current or to do, linked once the customer exists."""
    indicator = [{"number": 1, "label": "Customer", "state": "done" if customer else "current", "url": ""}]
    for number, s in enumerate(steps(), start=2):
        state = "current" if s.key == current else "todo"
        if customer is not None and state == "todo" and s.done(customer):
            state = "done"
        url = reverse(s.url_name, args=[customer.pk]) if customer is not None else ""
        indicator.append({"number": number, "label": s.label, "state": state, "url": url})
    following = [s for s in steps() if s.order > _steps[current].order] if current in _steps else steps()
    return {
        "customer": customer,
        "steps": indicator,
        "next_step": following[0] if following else None,
        "next_url": reverse(following[0].url_name, args=[customer.pk]) if following and customer else "",
    }
