"""Home-page panel of support: the customer's open tickets, or the desk's queue at a glance."""

from __future__ import annotations

from django.db.models import Count, Q

from portal.home import Panel
from portal.models import User
from portal.roles import Capability, can
from support.access import tickets_visible_to
from support.models import UNRESOLVED, SlaState


def tickets_panel(user: User) -> Panel | None:
    if not (can(user, Capability.VIEW_TICKETS) or can(user, Capability.RUN_INVOICES)):
        return None
    counts = tickets_visible_to(user).aggregate(
        unresolved=Count("id", filter=Q(status__in=UNRESOLVED)),
        unassigned=Count("id", filter=Q(status__in=UNRESOLVED, assignee__isnull=True)),
        mine=Count("id", filter=Q(status__in=UNRESOLVED, assignee=user)),
        breached=Count("id", filter=Q(status__in=UNRESOLVED, sla_state=SlaState.BREACHED)),
        at_risk=Count("id", filter=Q(status__in=UNRESOLVED, sla_state=SlaState.AT_RISK)),
    )
    recent = tickets_visible_to(user).filter(status__in=UNRESOLVED).order_by("due_at")[:5]
    title = "Billing disputes" if not can(user, Capability.VIEW_TICKETS) else "Support tickets"
    return Panel(
        title=title,
        template="support/panels/tickets.html",
        context={"counts": counts, "recent": recent, "staff": user.customer_id is None},
        order=4,
    )
