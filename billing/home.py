"""Home-page panels of billing: usage this month for customers, the billing desk for finance."""

from __future__ import annotations

from django.db.models import Count
from django.utils import timezone

from billing import metering, selectors
from billing.models import ContractStatus, Invoice, InvoiceRun, InvoiceStatus
from portal.home import Panel
from portal.models import User
from portal.roles import Capability, can


def usage_panel(user: User) -> Panel | None:
    """Usage so far and the projected bill of the user's active contracts (a few)."""
    if not can(user, Capability.VIEW_USAGE) or user.customer_id is None:
        return None
    now = timezone.now()
    contracts = selectors.contracts_visible_to(user).filter(status=ContractStatus.ACTIVE).order_by("number")
    rows = [
        selectors.contract_usage(c, metering.period_containing(now, c.customer.time_zone).label, now=now)
        for c in contracts[:5]
    ]
    return Panel(
        title="Usage this month", template="billing/panels/usage.html", context={"rows": rows}, order=20
    )


def billing_desk_panel(user: User) -> Panel | None:
    if not can(user, Capability.RUN_INVOICES):
        return None
    drafts = dict(
        Invoice.objects.filter(status=InvoiceStatus.DRAFT)
        .values_list("period")
        .annotate(n=Count("id"))
        .values_list("period", "n")
    )
    return Panel(
        title="Billing",
        template="billing/panels/desk.html",
        context={
            "drafts": sorted(drafts.items(), reverse=True),
            "last_run": InvoiceRun.objects.order_by("-created_at").first(),
            "unpaid": Invoice.objects.filter(status=InvoiceStatus.FINALIZED).count(),
        },
        order=3,
    )
