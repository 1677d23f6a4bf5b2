"""Finalized invoices and credit notes are e-mailed to the customer's billing address with their
PDF and XML, in the customer's locale, once; a customer never gets another's documents."""

from __future__ import annotations

import email
import email.policy
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from django.core import mail

from billing import services
from billing.invoicing import bill_period
from billing.models import Contract, CreditNote, Invoice
from portal.models import Customer, OutboxMessage, User
from tests.billing_fixtures import usage
from tests.conftest import client_for
from tests.fleet_fixtures import Installed
from tests.outbox import run_outbox

AFTER_OCTOBER = datetime(2026, 11, 5, tzinfo=UTC)


@pytest.fixture
def drafts(
    contract_a: Contract, contract_b: Contract, fleet_a: Installed, fleet_b: Installed
) -> list[Invoice]:
    # A billing identity complete enough for an e-invoice (a buyer's country).
    Customer.objects.filter(pk__in=[contract_a.customer_id, contract_b.customer_id]).update(country="DE")
    usage(fleet_a.asset, datetime(2026, 10, 3, 10, tzinfo=UTC), "10")
    usage(fleet_b.asset, datetime(2026, 10, 3, 10, tzinfo=UTC), "20")
    bill_period("2026-10", now=AFTER_OCTOBER)
    return list(Invoice.objects.order_by("customer__name"))


def _attachments(message: mail.EmailMessage) -> list[tuple[str, str]]:
    return [(name, mimetype) for name, _content, mimetype in message.attachments]


def test_finalizing_e_mails_the_invoice_with_its_pdf_and_xml(
    drafts: list[Invoice], customer_a: Customer, customer_b: Customer
) -> None:
    mail.outbox.clear()
    a = services.invoice_finalize(actor=None, invoice=drafts[0])
    b = services.invoice_finalize(actor=None, invoice=drafts[1])
    assert list(OutboxMessage.objects.values_list("task", flat=True)) == ["billing.invoice_email"] * 2
    assert mail.outbox == []  # nothing before the commit (and the worker)
    run_outbox()

    by_recipient = {tuple(m.to): m for m in mail.outbox}
    assert set(by_recipient) == {(customer_a.billing_email,), (customer_b.billing_email,)}
    to_a, to_b = by_recipient[(customer_a.billing_email,)], by_recipient[(customer_b.billing_email,)]
    a_number, b_number = str(a.number), str(b.number)
    text_a, text_b = f"{to_a.subject}\n{to_a.body}", f"{to_b.subject}\n{to_b.body}"
    assert _attachments(to_a) == [
        (f"{a.number}.pdf", "application/pdf"),
        (f"{a.number}.xml", "application/xml"),
    ]
    assert _attachments(to_b) == [
        (f"{b.number}.pdf", "application/pdf"),
        (f"{b.number}.xml", "application/xml"),
    ]
    assert to_a.attachments[0][1][:5] == b"%PDF-"
    assert a_number.encode() in to_a.attachments[1][1]
    # Never the other customer's documents, numbers or name.
    assert b_number not in text_a
    assert "Bravo" not in text_a
    assert a_number not in text_b
    assert "Alpha" not in text_b
    assert all(b_number.encode() not in content for _n, content, _t in to_a.attachments)
    assert Invoice.objects.get(pk=a.pk).emailed_at is not None

    # Idempotent: a redelivered task sends nothing more.
    from billing.tasks import invoice_email

    assert invoice_email.apply(kwargs={"invoice_id": str(a.pk)}).get() is False
    assert len(mail.outbox) == 2


def test_the_e_mail_reads_in_the_customers_locale(drafts: list[Invoice], customer_a: Customer) -> None:
    Customer.objects.filter(pk=customer_a.pk).update(locale="de-DE")
    mail.outbox.clear()
    invoice = services.invoice_finalize(actor=None, invoice=Invoice.objects.get(pk=drafts[0].pk))
    run_outbox()
    (message,) = mail.outbox
    assert "Total: 124,95\xa0€" in message.body
    assert invoice.due_date is not None
    assert str(invoice.due_date.year) in message.body


def test_issuing_a_credit_note_e_mails_it(drafts: list[Invoice], customer_a: Customer, finance: User) -> None:
    invoice = services.invoice_finalize(actor=None, invoice=drafts[0])
    run_outbox()
    mail.outbox.clear()
    response = client_for(finance).post(
        f"/billing/invoices/{invoice.pk}/credit-note/", {"amount": "10", "reason": "Goodwill"}, follow=True
    )
    assert "Credit note CN-" in response.content.decode()
    note = CreditNote.objects.get()
    assert list(OutboxMessage.objects.values_list("task", flat=True)) == ["billing.credit_note_email"]
    run_outbox()
    (message,) = mail.outbox
    assert message.to == [customer_a.billing_email]
    assert _attachments(message) == [
        (f"{note.number}.pdf", "application/pdf"),
        (f"{note.number}.xml", "application/xml"),
    ]
    assert "Credited: €11.90" in message.body
    assert "Amount still due on" in message.body
    assert "€113.05" in message.body
    assert CreditNote.objects.get().emailed_at is not None
    assert Invoice.objects.get(pk=invoice.pk).amount_due == Decimal("113.05")


def _mail_files(mail_dir: Path, recipient: str) -> list[email.message.EmailMessage]:
    found = []
    for path in mail_dir.glob("*.log"):
        # The file backend writes each message followed by a line of dashes.
        for chunk in path.read_text(errors="replace").split("\n" + "-" * 79 + "\n"):
            message = email.message_from_string(chunk.strip(), policy=email.policy.default)
            if recipient in str(message.get("To", "")):
                found.append(message)
    return found


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_finalizing_through_the_api_mails_the_documents_from_a_real_worker(
    live_worker: object, mail_dir: Path, drafts: list[Invoice], finance: User, customer_a: Customer
) -> None:
    invoice = drafts[0]
    response = client_for(finance).post(f"/api/v1/invoices/{invoice.pk}/finalize/")
    assert response.status_code == 200
    number = response.json()["number"]
    deadline = time.monotonic() + 60
    while not (
        found := [m for m in _mail_files(mail_dir, customer_a.billing_email) if number in m["Subject"]]
    ):
        assert time.monotonic() < deadline, "no e-mail from the worker within 60 s"
        time.sleep(0.2)
    (message,) = found
    parts = [(p.get_filename(), p.get_content_type()) for p in message.iter_attachments()]
    assert parts == [(f"{number}.pdf", "application/pdf"), (f"{number}.xml", "application/xml")]
    assert not _mail_files(mail_dir, "billing@bravo.example")  # B's draft was not finalized
    deadline = time.monotonic() + 30
    while Invoice.objects.get(pk=invoice.pk).emailed_at is None:
        assert time.monotonic() < deadline
        time.sleep(0.1)


def test_a_buyer_without_a_country_gets_the_pdf_alone(drafts: list[Invoice], customer_a: Customer) -> None:
    Customer.objects.filter(pk=customer_a.pk).update(country="")
    invoice = services.invoice_finalize(actor=None, invoice=Invoice.objects.get(pk=drafts[0].pk))
    mail.outbox.clear()
    run_outbox()
    (message,) = mail.outbox
    assert _attachments(message) == [(f"{invoice.number}.pdf", "application/pdf")]
