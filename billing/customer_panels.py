"""Billing's panel of the customer overview (portal/customer_overview.py): the customer's
contracts and its recent invoices with the amount due, for the staff whose role shows them."""

from __future__ import annotations

from billing.selectors import contracts_visible_to, invoices_visible_to
from portal.home import Panel
from portal.models import Customer, User
from portal.roles import Capability, can

CONTRACTS = 20
INVOICES = 10  # the newest; the invoice list filtered to the customer has the rest


def billing_panel(actor: User, customer: Customer) -> Panel | None:
    show_contracts, show_invoices = (
        can(actor, Capability.VIEW_CONTRACTS),
        can(actor, Capability.VIEW_INVOICES),
    )
    if not show_contracts and not show_invoices:
        return None
    contracts = contracts_visible_to(actor).filter(customer=customer)
    invoices = invoices_visible_to(actor).filter(customer=customer)
    context = {"customer": customer, "show_contracts": show_contracts, "show_invoices": show_invoices}
    if show_contracts:
        context["contracts"] = list(contracts.order_by("-start_date", "number")[:CONTRACTS])
        context["contract_count"] = contracts.count()
        context["contract_limit"] = CONTRACTS
    if show_invoices:
        context["invoices"] = list(invoices.order_by("-period", "-created_at")[:INVOICES])
    return Panel(
        title="Contracts and invoices",
        template="billing/panels/customer_billing.html",
        order=20,
        context=context,
    )
