"""Billing pages, one module per page group; urls.py names them from here."""

from billing.views.contracts import contract_detail, contract_list, contract_new
from billing.views.invoice_detail import invoice_action, invoice_detail
from billing.views.invoices import invoice_list
from billing.views.overdue import overdue_list
from billing.views.plans import plan_list
from billing.views.revenue import revenue
from billing.views.runs import run_list, run_retry

__all__ = [
    "contract_detail",
    "contract_list",
    "contract_new",
    "invoice_action",
    "invoice_detail",
    "invoice_list",
    "overdue_list",
    "plan_list",
    "revenue",
    "run_list",
    "run_retry",
]
