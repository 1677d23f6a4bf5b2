"""Billing's tables: plans (and their versions), contracts (and negotiated prices), invoice
runs, invoices, credit notes and payments; one module each, import them from here.

Money is `Decimal` in `DecimalField`s (`billing.models.fields`).
"""

from billing.models.contracts import (
    BILLABLE_CONTRACT_STATUSES,
    Contract,
    ContractAsset,
    ContractPriceOverride,
    ContractStatus,
    validate_sla_terms,
)
from billing.models.fields import money_field, price_field, quantity_field
from billing.models.invoices import (
    ISSUED_NEXT,
    CreditNote,
    Invoice,
    InvoiceLine,
    InvoiceLockedError,
    InvoiceQuerySet,
    InvoiceRun,
    InvoiceRunChunk,
    InvoiceRunStatus,
    InvoiceStatus,
)
from billing.models.payments import InvoiceReminder, Payment, PaymentMethod
from billing.models.plans import (
    Plan,
    PlanQuerySet,
    PlanRevision,
    PriceComponent,
    PriceTerms,
    validate_component,
)
from portal.priority import PRIORITIES

__all__ = [
    "BILLABLE_CONTRACT_STATUSES",
    "ISSUED_NEXT",
    "PRIORITIES",
    "Contract",
    "ContractAsset",
    "ContractPriceOverride",
    "ContractStatus",
    "CreditNote",
    "Invoice",
    "InvoiceLine",
    "InvoiceLockedError",
    "InvoiceQuerySet",
    "InvoiceReminder",
    "InvoiceRun",
    "InvoiceRunChunk",
    "InvoiceRunStatus",
    "InvoiceStatus",
    "Payment",
    "PaymentMethod",
    "Plan",
    "PlanQuerySet",
    "PlanRevision",
    "PriceComponent",
    "PriceTerms",
    "money_field",
    "price_field",
    "quantity_field",
    "validate_component",
    "validate_sla_terms",
]
