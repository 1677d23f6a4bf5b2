"""Money in and money owed: payments, the amount due, credit notes, overdue invoices and their
reminders, the payment API and the invoice export (docs/billing.md, "Payments")."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.core import mail
from django.core.exceptions import ValidationError
from django.utils import timezone

from billing import payments, services
from billing.invoicing import bill_period
from billing.models import Contract, Invoice, InvoiceReminder, InvoiceStatus, Payment
from portal.models import AuditEntry, Customer, OutboxMessage, User
from tests.billing_fixtures import usage
from tests.conftest import client_for
from tests.fleet_fixtures import Installed
from tests.outbox import run_outbox

JSON = "application/json"
AFTER_OCTOBER = datetime(2026, 11, 5, tzinfo=UTC)


@pytest.fixture
def issued(contract_a: Contract, contract_b: Contract, fleet_a: Installed, fleet_b: Installed) -> Invoice:
    """A's October invoice, finalized (B's too): 100.00 fee + 10 h × 0.50 = 105.00 + 19 % = 124.95."""
    usage(fleet_a.asset, datetime(2026, 10, 3, 10, tzinfo=UTC), "10")
    usage(fleet_b.asset, datetime(2026, 10, 3, 10, tzinfo=UTC), "20")
    bill_period("2026-10", now=AFTER_OCTOBER)
    for invoice in Invoice.objects.order_by("customer__name"):
        services.invoice_finalize(actor=None, invoice=invoice)
    OutboxMessage.objects.all().delete()  # the finalize e-mails: tested on their own below
    return Invoice.objects.get(contract=contract_a)


def _pay(invoice: Invoice, amount: str, *, actor: User | None = None, on: date | None = None) -> Payment:
    return payments.payment_record(
        actor=actor, invoice=invoice, amount=Decimal(amount), received_on=on or timezone.now().date(),
        method="bank_transfer", reference="TRX",
    )  # fmt: skip


def _fresh(invoice: Invoice) -> Invoice:
    return Invoice.objects.get(pk=invoice.pk)


# Payments and the amount due ---------------------------------------------------------------


def test_a_partial_then_a_full_payment_settles_the_invoice(issued: Invoice, finance: User) -> None:
    assert (issued.total, issued.amount_due) == (Decimal("124.95"), Decimal("124.95"))

    _pay(issued, "100.00", actor=finance)
    partly = _fresh(issued)
    assert (partly.status, partly.amount_due, partly.paid_at) == (
        InvoiceStatus.FINALIZED,
        Decimal("24.95"),
        None,
    )

    _pay(issued, "24.95", actor=finance)
    paid = _fresh(issued)
    assert (paid.status, paid.amount_due) == (InvoiceStatus.PAID, Decimal("0.00"))
    assert paid.paid_at is not None
    actions = list(
        AuditEntry.objects.filter(actor=finance).order_by("created_at").values_list("action", flat=True)
    )
    assert actions == ["payment.recorded", "payment.recorded", "invoice.paid"]


@pytest.mark.parametrize(
    ("amount", "field", "message"),
    [
        ("124.96", "amount", "At most the amount due: 124.95 EUR."),
        ("0", "amount", "The amount must be above zero."),
        ("-5", "amount", "The amount must be above zero."),
        ("10.005", "amount", "Give the amount in whole EUR cents (e.g. 10.01)."),
        ("ten", "amount", "Give the amount as a number, e.g. 25.00."),
        ("NaN", "amount", "Give the amount as a number, e.g. 25.00."),
    ],
)
def test_payment_amounts_are_checked_against_what_is_due(
    issued: Invoice, amount: str, field: str, message: str
) -> None:
    with pytest.raises(ValidationError) as error:
        payments.payment_record(
            actor=None, invoice=issued, amount=amount, received_on=timezone.now().date(), method="cash"
        )
    assert error.value.message_dict == {field: [message]}
    assert not Payment.objects.exists()


def test_a_payment_cannot_be_received_in_the_future_nor_by_an_unknown_method(issued: Invoice) -> None:
    tomorrow = timezone.now().date() + timedelta(days=2)
    with pytest.raises(ValidationError) as error:
        payments.payment_record(actor=None, invoice=issued, amount="1", received_on=tomorrow, method="barter")
    assert set(error.value.message_dict) == {"received_on", "method"}


def test_only_finalized_invoices_with_something_due_take_payments(
    issued: Invoice, contract_a: Contract, finance: User, viewer_a: User
) -> None:
    _pay(issued, "124.95")
    with pytest.raises(ValidationError, match="this one is paid"):
        _pay(issued, "1.00")
    with pytest.raises(ValidationError, match="record payments"):
        _pay(_fresh(issued), "1.00", actor=viewer_a)


def test_a_voided_invoice_or_a_draft_takes_no_payment(contract_a: Contract, fleet_a: Installed) -> None:
    bill_period("2026-10", now=AFTER_OCTOBER)
    draft = Invoice.objects.get(contract=contract_a)
    with pytest.raises(ValidationError, match="this one is draft"):
        _pay(draft, "1.00")


def test_an_invoice_with_payments_cannot_be_voided(issued: Invoice) -> None:
    _pay(issued, "10.00")
    with pytest.raises(ValidationError, match="Payments were recorded"):
        services.invoice_void(actor=None, invoice=_fresh(issued), reason="wrong plan")


def test_a_credit_note_lowers_the_amount_due_and_can_settle_the_invoice(issued: Invoice) -> None:
    _pay(issued, "100.00")
    services.credit_note_create(
        actor=None, invoice=_fresh(issued), amount=Decimal("10.00"), reason="Goodwill"
    )
    assert _fresh(issued).amount_due == Decimal("13.05")  # 24.95 − 11.90
    services.credit_note_create(actor=None, invoice=_fresh(issued), amount=Decimal("10.97"), reason="Rest")
    settled = _fresh(issued)
    assert (settled.status, settled.amount_due) == (InvoiceStatus.PAID, Decimal("0.00"))  # 13.05 − 13.05


def test_a_credit_note_on_a_paid_invoice_is_a_credit_owed_back(issued: Invoice) -> None:
    _pay(issued, "124.95")
    services.credit_note_create(actor=None, invoice=_fresh(issued), amount=Decimal("20.00"), reason="Refund")
    owed = _fresh(issued)
    assert (owed.status, owed.amount_due) == (InvoiceStatus.PAID, Decimal("-23.80"))


def test_concurrent_payments_never_exceed_the_amount_due(issued: Invoice) -> None:
    # The row lock serializes them: the second sees what the first left (here: nothing).
    _pay(issued, "124.95")
    with pytest.raises(ValidationError):
        payments.payment_record(
            actor=None, invoice=issued, amount="124.95", received_on=timezone.now().date(), method="cash"
        )
    assert Payment.objects.count() == 1


# Overdue and reminders ---------------------------------------------------------------------


def _at(invoice: Invoice, days_after_due: int, hour: int = 12) -> datetime:
    assert invoice.due_date is not None
    day = invoice.due_date + timedelta(days=days_after_due)
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


def test_an_invoice_is_overdue_the_day_after_its_due_date_in_the_customers_zone(issued: Invoice) -> None:
    assert issued.due_date is not None
    # 23:30 UTC on the due date is already the next day in Berlin (customer A) ...
    late_evening = _at(issued, 0, 23) + timedelta(minutes=30)
    assert payments.overdue_sweep(now=late_evening).overdue == 1
    assert _fresh(issued).overdue_since == issued.due_date + timedelta(days=1)
    # ... but not yet in Chicago (customer B).
    b = Invoice.objects.exclude(pk=issued.pk).get()
    assert b.overdue_since is None
    assert payments.overdue_sweep(now=late_evening).overdue == 0  # idempotent


def test_reminders_go_once_per_step_to_the_billing_address(issued: Invoice, customer_a: Customer) -> None:
    mail.outbox.clear()
    for days in (1, 7, 7, 8, 14, 30, 31):
        payments.overdue_sweep(now=_at(issued, days))
        run_outbox()
    steps = list(InvoiceReminder.objects.filter(invoice=issued).values_list("days_overdue", "sent_to"))
    assert steps == [
        (7, customer_a.billing_email),
        (14, customer_a.billing_email),
        (30, customer_a.billing_email),
    ]
    to_a = [m for m in mail.outbox if customer_a.billing_email in m.to]
    assert [m.subject.split(" is ")[1].split(" days")[0] for m in to_a] == ["7", "14", "30"]
    # Customer B's invoice had its own reminders, to B's address only.
    assert all(m.to in ([customer_a.billing_email], ["billing@bravo.example"]) for m in mail.outbox)
    for message in mail.outbox:
        other = "Bravo" if customer_a.billing_email in message.to else "Alpha"
        assert other not in message.body


def test_a_late_first_sweep_sends_only_the_step_reached(issued: Invoice) -> None:
    payments.overdue_sweep(now=_at(issued, 20))
    assert list(InvoiceReminder.objects.filter(invoice=issued).values_list("days_overdue", flat=True)) == [14]


def test_reminders_fall_back_to_the_customer_admins(
    issued: Invoice, customer_a: Customer, admin_a: User, viewer_a: User, admin_b: User
) -> None:
    Customer.objects.filter(pk=customer_a.pk).update(billing_email="")
    assert payments.reminder_recipients(_fresh(issued)) == [admin_a.email]


def test_a_paid_invoice_is_no_longer_overdue_and_gets_no_reminder(issued: Invoice) -> None:
    payments.overdue_sweep(now=_at(issued, 3))
    assert _fresh(issued).overdue_since is not None
    _pay(issued, "124.95")
    assert _fresh(issued).overdue_since is None
    payments.overdue_sweep(now=_at(issued, 8))
    assert not InvoiceReminder.objects.filter(invoice=issued).exists()


def test_a_reminder_queued_before_a_payment_is_not_sent(issued: Invoice) -> None:
    mail.outbox.clear()
    payments.overdue_sweep(now=_at(issued, 7))
    _pay(issued, "124.95")
    run_outbox()
    assert not [m for m in mail.outbox if "Reminder" in m.subject and issued.number in m.subject]


def test_overdue_filter_and_page(issued: Invoice, finance: User, admin_a: User, viewer_a: User) -> None:
    payments.overdue_sweep(now=_at(issued, 9))
    client = client_for(finance)
    overdue = client.get("/api/v1/invoices/?overdue=true").json()
    assert {row["number"] for row in overdue["results"]} == set(
        Invoice.objects.values_list("number", flat=True)
    )
    _pay(issued, "124.95", actor=finance)
    assert [r["number"] for r in client.get("/api/v1/invoices/?overdue=true").json()["results"]] == [
        Invoice.objects.exclude(pk=issued.pk).get().number
    ]
    assert [r["number"] for r in client.get("/api/v1/invoices/?overdue=false").json()["results"]] == [
        issued.number
    ]
    assert client.get("/api/v1/invoices/?overdue=maybe").status_code == 400
    page = client.get("/billing/overdue/")
    assert page.status_code == 200
    assert "Bravo Breweries" in page.content.decode()
    assert 'href="/billing/overdue/"' in page.content.decode()  # the nav entry
    assert client_for(admin_a).get("/billing/overdue/").status_code == 403
    assert client_for(viewer_a).get("/billing/overdue/").status_code == 403


# The invoice page --------------------------------------------------------------------------


def test_finance_records_a_payment_on_the_page(issued: Invoice, finance: User) -> None:
    client = client_for(finance)
    page = client.get(f"/billing/invoices/{issued.pk}/").content.decode()
    assert 'data-confirm="Record this payment' in page
    assert 'value="124.95"' in page  # the amount due by default
    assert f'value="{timezone.localdate():%Y-%m-%d}"' in page  # today in finance's zone (UTC)
    response = client.post(
        f"/billing/invoices/{issued.pk}/payment/",
        {
            "received_on": timezone.now().date().isoformat(),
            "amount": "24,95",
            "method": "card",
            "reference": "R1",
        },
        follow=True,
    )
    body = response.content.decode()
    assert "Payment of €24.95 recorded. €100.00 still due." in body
    assert "€100.00" in body
    bad = client.post(
        f"/billing/invoices/{issued.pk}/payment/",
        {"received_on": timezone.now().date().isoformat(), "amount": "500", "method": "card"},
        follow=True,
    )
    assert "At most the amount due: 100.00 EUR." in bad.content.decode()


def test_a_draft_is_titled_by_customer_and_period(
    contract_a: Contract, fleet_a: Installed, finance: User
) -> None:
    bill_period("2026-10", now=AFTER_OCTOBER)
    draft = Invoice.objects.get(contract=contract_a)
    page = client_for(finance).get(f"/billing/invoices/{draft.pk}/").content.decode()
    assert "<title>Draft · Alpha Dairy · 2026-10" in page
    assert 'data-confirm="Finalize this invoice?' in page
    assert 'data-confirm="Discard this draft?' in page


def test_only_who_records_payments_may_post_one(issued: Invoice, admin_a: User, support: User) -> None:
    for user in (admin_a, support):
        response = client_for(user).post(
            f"/billing/invoices/{issued.pk}/payment/",
            {"received_on": timezone.now().date().isoformat(), "amount": "1", "method": "card"},
        )
        assert response.status_code == 403
    assert not Payment.objects.exists()


# The API -----------------------------------------------------------------------------------


def test_payments_through_the_api(issued: Invoice, finance: User, admin_a: User, admin_b: User) -> None:
    client = client_for(finance)
    url = f"/api/v1/invoices/{issued.pk}/payments/"
    first = client.post(
        url, {"amount": "24.95", "method": "bank_transfer", "reference": "A-1"}, content_type=JSON
    )
    assert first.status_code == 201, first.content
    body = first.json()
    assert (body["amount"], body["currency"], body["invoice_number"]) == ("24.95", "EUR", issued.number)
    assert body["received_on"] == payments.local_today("Europe/Berlin").isoformat()

    too_much = client.post(url, {"amount": "100.01", "method": "card"}, content_type=JSON)
    assert too_much.status_code == 400
    assert too_much.json() == {
        "detail": "amount: At most the amount due: 100.00 EUR.",
        "errors": [{"field": "amount", "message": "At most the amount due: 100.00 EUR."}],
    }
    future = client.post(
        url, {"amount": "1", "method": "card", "received_on": "2999-01-01"}, content_type=JSON
    )
    assert future.json()["errors"] == [
        {"field": "received_on", "message": "The date the money was received cannot be in the future."}
    ]

    invoice = client.get(f"/api/v1/invoices/{issued.pk}/").json()
    assert (invoice["amount_due"], invoice["overdue_since"], invoice["emailed_at"]) == ("100.00", None, None)
    assert [p["amount"] for p in client_for(admin_a).get(url).json()] == ["24.95"]
    assert (
        client_for(admin_a).post(url, {"amount": "1", "method": "card"}, content_type=JSON).status_code == 403
    )
    assert client_for(admin_b).get(url).status_code == 404

    listed = client.get("/api/v1/payments/").json()
    assert listed["count"] == 1
    assert (
        client.get(f"/api/v1/payments/?customer={issued.customer_id}&method=bank_transfer").json()["count"]
        == 1
    )
    assert client.get("/api/v1/payments/?method=card").json()["count"] == 0
    today = timezone.now().date()
    window = f"received_from={today - timedelta(days=1)}&received_to={today + timedelta(days=1)}"
    assert client.get(f"/api/v1/payments/?{window}&invoice={issued.pk}").json()["count"] == 1
    assert client.get("/api/v1/payments/?received_from=yesterday").status_code == 400
    assert client_for(admin_b).get("/api/v1/payments/").json()["count"] == 0
    assert client_for(admin_a).get(f"/api/v1/payments/{body['id']}/").status_code == 200
    assert client_for(admin_b).get(f"/api/v1/payments/{body['id']}/").status_code == 404


def test_mark_paid_records_the_whole_amount_due(issued: Invoice, finance: User, support: User) -> None:
    _pay(issued, "24.95")
    url = f"/api/v1/invoices/{issued.pk}/mark-paid/"
    assert client_for(support).post(url, {}, content_type=JSON).status_code == 403
    paid = client_for(finance).post(url, {"method": "cash"}, content_type=JSON).json()
    assert (paid["status"], paid["amount_due"]) == ("paid", "0.00")
    assert list(Payment.objects.order_by("created_at").values_list("amount", "method")) == [
        (Decimal("24.95"), "bank_transfer"),
        (Decimal("100.00"), "cash"),
    ]
    again = client_for(finance).post(url, {}, content_type=JSON)
    assert again.status_code == 400


def test_viewers_never_see_invoices_or_payments(issued: Invoice, viewer_a: User) -> None:
    _pay(issued, "1.00")
    client = client_for(viewer_a)
    for url in ("/api/v1/payments/", f"/api/v1/invoices/{issued.pk}/payments/", "/api/v1/invoices/"):
        assert client.get(url).status_code == 403, url


# The CSV export ----------------------------------------------------------------------------


def _export(user: User, query: str = "") -> list[dict[str, str]]:
    response = client_for(user).get(f"/api/v1/invoices/export.csv{query}")
    assert response.status_code == 200
    text = b"".join(response.streaming_content).decode()
    return list(csv.DictReader(io.StringIO(text)))


def test_the_export_holds_lines_credit_notes_and_payments(
    issued: Invoice, finance: User, admin_a: User, contract_a: Contract
) -> None:
    services.credit_note_create(actor=None, invoice=issued, amount=Decimal("10"), reason="Goodwill")
    _pay(issued, "50.00")
    rows = [r for r in _export(finance, "?period=2026-10") if r["invoice"] == issued.number]
    records = [r["record"] for r in rows]
    assert records[-2:] == ["credit_note", "payment"]
    assert set(records[:-2]) == {"invoice_line"}
    line, note, payment = rows[0], rows[-2], rows[-1]
    assert (line["amount"], line["invoice_total"], line["amount_due"]) == ("100.00", "124.95", "63.05")
    assert (note["amount"], note["tax"], note["total"], note["description"]) == (
        "10.00",
        "1.90",
        "11.90",
        "Goodwill",
    )
    assert (payment["total"], payment["method"], payment["reference"]) == ("50.00", "bank_transfer", "TRX")
    assert note["document"].startswith("CN-")
    # A customer's export holds its own rows only.
    assert {r["customer"] for r in _export(admin_a)} == {"Alpha Dairy"}


def test_drafts_are_named_by_customer_and_period_in_the_export(
    contract_a: Contract, fleet_a: Installed, finance: User
) -> None:
    bill_period("2026-10", now=AFTER_OCTOBER)
    rows = _export(finance)
    assert {r["invoice"] for r in rows} == {"Draft · Alpha Dairy · 2026-10"}
    assert not any("draft-" in value for r in rows for value in r.values())


def test_an_invoice_with_nothing_to_pay_is_paid_as_it_is_finalized(
    contract_a: Contract, fleet_a: Installed
) -> None:
    bill_period("2026-10", now=AFTER_OCTOBER)
    draft = Invoice.objects.get(contract=contract_a)
    # A run that billed nothing (say every line was credited): the run's own totals, zeroed.
    Invoice.objects.filter(pk=draft.pk).update(subtotal=0, tax=0, total=0, amount_due=0)
    invoice = services.invoice_finalize(actor=None, invoice=Invoice.objects.get(pk=draft.pk))
    assert (invoice.status, invoice.amount_due) == (InvoiceStatus.PAID, Decimal("0"))
    assert invoice.paid_at is not None
