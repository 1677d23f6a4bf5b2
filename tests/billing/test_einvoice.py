"""E-invoices: the EN 16931 CII XML of invoices and credit notes, and the Factur-X PDFs carrying it."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import facturx
import pytest
from lxml import etree
from pypdf import PdfReader

from billing import einvoice, services
from billing.einvoice import NS
from billing.models import Contract, Invoice
from billing.runs import bill_period
from portal.models import Customer
from tests.billing_fixtures import usage
from tests.fleet_fixtures import Installed

AFTER_OCTOBER = datetime(2026, 11, 5, tzinfo=UTC)
BUYER_VAT = "FR40303265045"


def identify(customer: Customer, **changes: object) -> None:
    """Give `customer` a full billing identity (as the customer form would)."""
    values = {
        "legal_name": "Alpha Dairy SAS",
        "address_line1": "12 rue du Lait",
        "address_line2": "Bâtiment B",
        "postal_code": "69003",
        "city": "Lyon",
        "country": "FR",
        "vat_id": BUYER_VAT,
        "billing_email": "ap@alpha.example",
        **changes,
    }
    Customer.objects.filter(pk=customer.pk).update(**values)
    customer.refresh_from_db()


def bill_october(contract: Contract, fleet: Installed) -> Invoice:
    usage(fleet.asset, datetime(2026, 10, 3, 10, tzinfo=UTC), "10")
    usage(fleet.asset, datetime(2026, 10, 4, 10, tzinfo=UTC), "2.5")
    usage(fleet.asset, datetime(2026, 10, 4, 11, tzinfo=UTC), "1200", metric="energy_kwh")
    bill_period("2026-10", now=AFTER_OCTOBER)
    return Invoice.objects.get(contract=contract)


@pytest.fixture
def draft(customer_a: Customer, contract_a: Contract, fleet_a: Installed) -> Invoice:
    identify(customer_a)
    Contract.objects.filter(pk=contract_a.pk).update(purchase_order="PO-4711")
    return bill_october(contract_a, fleet_a)


@pytest.fixture
def issued(draft: Invoice) -> Invoice:
    return services.invoice_finalize(actor=None, invoice=draft)


def xpath(xml: bytes, path: str) -> list[str]:
    found = etree.fromstring(xml).xpath(path, namespaces=NS)
    return [str(v if isinstance(v, str) else v.text).strip() for v in found]


def one(xml: bytes, path: str) -> str:
    (value,) = xpath(xml, path)
    return value


SETTLEMENT = "//ram:ApplicableHeaderTradeSettlement"
TOTALS = f"{SETTLEMENT}/ram:SpecifiedTradeSettlementHeaderMonetarySummation"
BUYER = "//ram:BuyerTradeParty"
SELLER = "//ram:SellerTradeParty"


def test_the_invoice_xml_is_valid_en16931_and_says_what_the_invoice_says(issued: Invoice) -> None:
    xml = einvoice.invoice_xml(issued)

    assert facturx.xml_check_xsd(xml, flavor="factur-x", level="en16931")
    assert facturx.get_level(etree.fromstring(xml)) == "en16931"
    assert one(xml, "//ram:GuidelineSpecifiedDocumentContextParameter/ram:ID") == "urn:cen.eu:en16931:2017"
    assert one(xml, "//rsm:ExchangedDocument/ram:ID") == issued.number
    assert one(xml, "//rsm:ExchangedDocument/ram:TypeCode") == "380"
    assert one(xml, f"{SELLER}/ram:SpecifiedTaxRegistration/ram:ID") == issued.seller["vat_id"]
    assert one(xml, f"{BUYER}/ram:SpecifiedTaxRegistration/ram:ID") == BUYER_VAT
    assert one(xml, f"{BUYER}/ram:Name") == "Alpha Dairy SAS"
    assert xpath(xml, f"{BUYER}/ram:PostalTradeAddress/*/text()") == [
        "69003", "12 rue du Lait", "Bâtiment B", "Lyon", "FR"
    ]  # fmt: skip
    assert one(xml, "//ram:BuyerOrderReferencedDocument/ram:IssuerAssignedID") == "PO-4711"
    assert one(xml, "//ram:SpecifiedTradeSettlementPaymentMeans/ram:TypeCode") == "58"
    assert one(xml, "//ram:PayeePartyCreditorFinancialAccount/ram:IBANID") == issued.seller["iban"]
    assert issued.due_date is not None
    assert one(xml, "//ram:DueDateDateTime/udt:DateTimeString") == issued.due_date.strftime("%Y%m%d")
    lines = list(issued.lines.order_by("position"))
    assert xpath(xml, "//ram:SpecifiedTradeSettlementLineMonetarySummation/ram:LineTotalAmount/text()") == [
        str(line.amount) for line in lines
    ]
    assert one(xml, f"{TOTALS}/ram:LineTotalAmount") == str(issued.subtotal)
    assert one(xml, f"{TOTALS}/ram:TaxBasisTotalAmount") == str(issued.subtotal)
    assert one(xml, f"{TOTALS}/ram:TaxTotalAmount") == str(issued.tax)
    assert one(xml, f"{TOTALS}/ram:GrandTotalAmount") == str(issued.total)
    assert one(xml, f"{TOTALS}/ram:DuePayableAmount") == str(issued.total)
    assert one(xml, f"{SETTLEMENT}/ram:ApplicableTradeTax/ram:CategoryCode") == "S"
    assert one(xml, f"{SETTLEMENT}/ram:ApplicableTradeTax/ram:RateApplicablePercent") == "19.00"


def test_every_line_states_quantity_times_price_as_its_amount(issued: Invoice) -> None:
    xml = einvoice.invoice_xml(issued)
    root = etree.fromstring(xml)
    for item in root.xpath("//ram:IncludedSupplyChainTradeLineItem", namespaces=NS):
        price = Decimal(item.xpath(".//ram:ChargeAmount/text()", namespaces=NS)[0])
        basis = item.xpath(".//ram:BasisQuantity/text()", namespaces=NS)
        billed = Decimal(item.xpath(".//ram:BilledQuantity/text()", namespaces=NS)[0])
        total = Decimal(item.xpath(".//ram:LineTotalAmount/text()", namespaces=NS)[0])
        assert billed * price / (Decimal(basis[0]) if basis else 1) == total


def test_the_credit_note_xml_is_valid_and_references_the_invoice(issued: Invoice) -> None:
    note = services.credit_note_create(actor=None, invoice=issued, amount=Decimal("10.00"), reason="Downtime")

    xml = einvoice.credit_note_xml(note)

    assert facturx.xml_check_xsd(xml, flavor="factur-x", level="en16931")
    assert one(xml, "//rsm:ExchangedDocument/ram:ID") == note.number
    assert one(xml, "//rsm:ExchangedDocument/ram:TypeCode") == "381"
    assert one(xml, "//ram:InvoiceReferencedDocument/ram:IssuerAssignedID") == issued.number
    assert issued.finalized_at is not None
    issued_on = issued.finalized_at.astimezone(ZoneInfo(issued.customer.time_zone)).date()
    assert one(xml, "//ram:InvoiceReferencedDocument//qdt:DateTimeString") == issued_on.strftime("%Y%m%d")
    assert one(xml, f"{TOTALS}/ram:TaxBasisTotalAmount") == "10.00"
    assert one(xml, f"{TOTALS}/ram:TaxTotalAmount") == "1.90"
    assert one(xml, f"{TOTALS}/ram:GrandTotalAmount") == "11.90"
    assert one(xml, f"{BUYER}/ram:SpecifiedTaxRegistration/ram:ID") == BUYER_VAT


def test_the_pdf_is_factur_x_carrying_the_same_xml(issued: Invoice) -> None:
    pdf = einvoice.invoice_pdf(issued)

    filename, embedded = facturx.get_xml_from_pdf(pdf, check_xsd=True)
    assert filename == "factur-x.xml"
    assert embedded == einvoice.invoice_xml(issued)
    reader = PdfReader(io.BytesIO(pdf))
    xmp = reader.xmp_metadata
    assert xmp is not None
    raw = xmp.stream.get_data().decode()
    assert 'pdfaid:part="3"' in raw or "<pdfaid:part>3</pdfaid:part>" in raw
    assert "fx:ConformanceLevel" in raw
    assert "EN 16931" in raw
    assert "/OutputIntents" in reader.root_object  # the colour profile PDF/A asks for
    text = "\n".join(page.extract_text() for page in reader.pages)
    assert "Alpha Dairy SAS" in text
    assert BUYER_VAT in text


def test_a_draft_has_no_xml_and_its_pdf_says_draft(draft: Invoice) -> None:
    with pytest.raises(einvoice.DocumentNotIssued):
        einvoice.invoice_xml(draft)
    pdf = einvoice.invoice_pdf(draft)
    assert facturx.get_xml_from_pdf(pdf, check_xsd=False) == (False, False)
    assert "DRAFT" in "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)
