"""Money in: payments against finalized invoices, and the reminders sent for overdue ones."""

from __future__ import annotations

import uuid
from decimal import Decimal

from django.core.validators import MinValueValidator
from django.db import models

from billing.models.fields import money_field
from billing.models.invoices import Invoice
from portal.tenancy import TenantOwned


class PaymentMethod(models.TextChoices):
    BANK_TRANSFER = "bank_transfer", "Bank transfer"
    DIRECT_DEBIT = "direct_debit", "Direct debit"
    CARD = "card", "Card"
    CHEQUE = "cheque", "Cheque"
    CASH = "cash", "Cash"
    OTHER = "other", "Other"


class Payment(TenantOwned):
    """Money received for one invoice, partial or whole: recorded once (audited), never edited."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="payments")
    received_on = models.DateField()
    amount = money_field(validators=[MinValueValidator(Decimal("0.01"))])
    currency = models.CharField(max_length=3)
    method = models.CharField(max_length=20, choices=PaymentMethod.choices)
    reference = models.CharField(max_length=140, blank=True, help_text="Bank reference, card receipt…")
    note = models.TextField(blank=True)
    created_by = models.ForeignKey(
        "portal.User", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["invoice", "received_on", "created_at"]
        indexes = [models.Index(fields=["customer", "received_on"], name="payment_customer_received")]

    def __str__(self) -> str:
        return f"{self.amount} {self.currency} on {self.received_on}"


class InvoiceReminder(models.Model):
    """One dunning e-mail: sent once per invoice and reminder step (days after the due date)."""

    invoice = models.ForeignKey(Invoice, on_delete=models.CASCADE, related_name="reminders")
    days_overdue = models.PositiveIntegerField()
    sent_to = models.EmailField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["invoice", "days_overdue"]
        constraints = [
            models.UniqueConstraint(fields=["invoice", "days_overdue"], name="one_reminder_per_step")
        ]

    def __str__(self) -> str:
        return f"{self.invoice_id} +{self.days_overdue} d"
