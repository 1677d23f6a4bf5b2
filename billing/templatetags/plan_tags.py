"""What the plan and negotiated-price templates ask: may this user, how is a charge model said."""

from __future__ import annotations

from typing import Any

from django import template

from portal.roles import Capability, can

register = template.Library()


@register.filter
def may(user: Any, capability: str) -> bool:
    """{% if user|may:"manage_contracts" %}: the access table (portal.roles), not a role name."""
    return can(user, Capability(capability))


@register.filter
def charge_model_label(value: str) -> str:
    """per_unit → per unit (a plan's component, a contract's override or a snapshot's)."""
    return str(value or "").replace("_", " ")
