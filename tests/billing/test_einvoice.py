"""E-invoices: the EN 16931 CII XML of invoices and credit notes, and the Factur-X PDFs carrying it."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import facturx
import pytest
from drf_spectacular.generators import SchemaGenerator
from lxml import etree
from pypdf import PdfReader

from billing import einvoice, services
from billing import pdf as billing_pdf
from billing.einvoice import NS
from billing.invoicing import bill_period
from billing.models import Contract, Invoice, InvoiceLine
from portal.models import Customer, User
from tests.billing_fixtures import status_change, usage
from tests.conftest import client_for
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


def test_quantities_and_prices_are_written_as_plain_decimals(draft: Invoice) -> None:
    # drafthorse writes str(value), and str(Decimal) may use an exponent ("1E+7"), which
    # xs:decimal refuses; the line detail keeps billable units as str() too.
    line = draft.lines.get(description="Run hours")
    InvoiceLine.objects.filter(pk=line.pk).update(
        quantity=Decimal("10000000"),
        unit_price=Decimal("0.000001"),
        amount=Decimal("10.00"),
        detail={**line.detail, "billable": str(Decimal("1E+7"))},
    )
    issued = services.invoice_finalize(actor=None, invoice=draft)

    xml = einvoice.invoice_xml(issued)

    assert facturx.xml_check_xsd(xml, flavor="factur-x", level="en16931")
    item = "//ram:IncludedSupplyChainTradeLineItem[.//ram:Name='Run hours']"
    assert one(xml, f"{item}//ram:BilledQuantity") == "10000000"
    assert one(xml, f"{item}//ram:NetPriceProductTradePrice/ram:ChargeAmount") == "0.000001"
    assert one(xml, f"{item}//ram:LineTotalAmount") == "10.00"
    numbers = xpath(xml, "//ram:*[contains(local-name(), 'Amount') or contains(local-name(), 'Quantity')]")
    assert numbers
    assert not [n for n in numbers if "E" in n.upper()]


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
    pdf = billing_pdf.invoice_pdf(issued)

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
    pdf = billing_pdf.invoice_pdf(draft)
    assert facturx.get_xml_from_pdf(pdf, check_xsd=False) == (False, False)
    assert "DRAFT" in "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)


def test_a_service_credit_is_a_document_level_allowance(
    customer_a: Customer, contract_a: Contract, fleet_a: Installed
) -> None:
    identify(customer_a)
    status_change(fleet_a.asset, "offline", datetime(2026, 10, 10, 8, tzinfo=UTC))
    status_change(fleet_a.asset, "online", datetime(2026, 10, 10, 20, tzinfo=UTC), previous="offline")
    invoice = services.invoice_finalize(actor=None, invoice=bill_october(contract_a, fleet_a))
    credit = invoice.lines.get(kind="service_credit")
    assert credit.amount < 0

    xml = einvoice.invoice_xml(invoice)

    assert facturx.xml_check_xsd(xml, flavor="factur-x", level="en16931")
    allowance = f"{SETTLEMENT}/ram:SpecifiedTradeAllowanceCharge"
    assert one(xml, f"{allowance}/ram:ChargeIndicator/udt:Indicator") == "false"
    assert one(xml, f"{allowance}/ram:ActualAmount") == str(-credit.amount)
    assert one(xml, f"{allowance}/ram:Reason") == credit.description
    assert one(xml, f"{allowance}/ram:CategoryTradeTax/ram:CategoryCode") == "S"
    line_amounts = xpath(xml, "//ram:SpecifiedTradeSettlementLineMonetarySummation/ram:LineTotalAmount")
    assert all(Decimal(a) >= 0 for a in line_amounts)
    assert one(xml, f"{TOTALS}/ram:LineTotalAmount") == str(invoice.subtotal - credit.amount)
    assert one(xml, f"{TOTALS}/ram:AllowanceTotalAmount") == str(-credit.amount)
    assert one(xml, f"{TOTALS}/ram:TaxBasisTotalAmount") == str(invoice.subtotal)
    assert one(xml, f"{TOTALS}/ram:GrandTotalAmount") == str(invoice.total)


def test_a_reverse_charge_customer_gets_category_ae_with_its_reason(
    customer_a: Customer, contract_a: Contract, fleet_a: Installed
) -> None:
    reason = "Reverse charge: the recipient accounts for the VAT"
    identify(customer_a, tax_category="AE", tax_rate=Decimal("0"), tax_exemption_reason=reason)
    invoice = services.invoice_finalize(actor=None, invoice=bill_october(contract_a, fleet_a))
    assert invoice.tax == 0

    xml = einvoice.invoice_xml(invoice)

    assert facturx.xml_check_xsd(xml, flavor="factur-x", level="en16931")
    breakdown = f"{SETTLEMENT}/ram:ApplicableTradeTax"
    assert one(xml, f"{breakdown}/ram:CategoryCode") == "AE"
    assert one(xml, f"{breakdown}/ram:RateApplicablePercent") == "0.00"
    assert one(xml, f"{breakdown}/ram:ExemptionReason") == reason
    assert one(xml, f"{breakdown}/ram:ExemptionReasonCode") == "VATEX-EU-AE"
    assert one(xml, f"{breakdown}/ram:CalculatedAmount") == "0.00"
    assert set(xpath(xml, "//ram:SpecifiedLineTradeSettlement/ram:ApplicableTradeTax/ram:CategoryCode")) == {
        "AE"
    }
    assert one(xml, f"{BUYER}/ram:SpecifiedTaxRegistration/ram:ID") == BUYER_VAT
    text = pdf_text(billing_pdf.invoice_pdf(invoice))
    assert "Reverse charge" in text
    assert reason in text


@pytest.mark.parametrize(
    ("bill_to", "rate", "expected"),
    [
        ({"tax_category": "S"}, Decimal("0.19"), ("S", "19.00", "", "")),
        ({"tax_category": "S"}, Decimal("0.0625"), ("S", "6.25", "", "")),
        # A standard customer billed at 0 % cannot be S (BR-S-05): exempt when it says why …
        (
            {"tax_category": "S", "tax_exemption_reason": "Medical"},
            Decimal("0"),
            ("E", "0.00", "Medical", ""),
        ),
        # … zero-rated (no reason allowed, BR-Z-10) when it does not.
        ({"tax_category": "S"}, Decimal("0"), ("Z", "0.00", "", "")),
        ({"tax_category": "Z", "tax_exemption_reason": "ignored"}, Decimal("0"), ("Z", "0.00", "", "")),
        ({"tax_category": "K"}, Decimal("0"), ("K", "0.00", "Intra-community supply", "VATEX-EU-IC")),
        (
            {"tax_category": "G", "tax_exemption_reason": "Export"},
            Decimal("0"),
            ("G", "0.00", "Export", "VATEX-EU-G"),
        ),
        ({"tax_category": "E"}, Decimal("0"), ("E", "0.00", "Exempt from VAT", "")),
        ({"tax_category": "AE"}, Decimal("0"), ("AE", "0.00", "Reverse charge", "VATEX-EU-AE")),
        # Tax charged is standard-rated, whatever the record says.
        ({"tax_category": "AE"}, Decimal("0.19"), ("S", "19.00", "", "")),
    ],
)
def test_the_vat_category_follows_en16931(
    bill_to: dict[str, str], rate: Decimal, expected: tuple[str, ...]
) -> None:
    category = einvoice.vat_category(bill_to, rate)
    assert (category.code, str(category.percent), category.reason, category.reason_code) == expected


@pytest.mark.parametrize("category", ["K", "G", "E", "Z"])
def test_every_zero_rated_category_validates(
    customer_a: Customer, contract_a: Contract, fleet_a: Installed, category: str
) -> None:
    identify(customer_a, tax_category=category, tax_rate=Decimal("0"), tax_exemption_reason="")
    invoice = services.invoice_finalize(actor=None, invoice=bill_october(contract_a, fleet_a))

    xml = einvoice.invoice_xml(invoice)

    assert facturx.xml_check_xsd(xml, flavor="factur-x", level="en16931")
    assert one(xml, f"{SETTLEMENT}/ram:ApplicableTradeTax/ram:CategoryCode") == category
    if category == "K":  # BR-IC-12: where an intra-community supply went
        assert one(xml, "//ram:ShipToTradeParty/ram:PostalTradeAddress/ram:CountryID") == "FR"


def test_the_pdf_prints_the_bill_to_block_and_amounts_in_the_customers_locale(
    customer_a: Customer, issued: Invoice
) -> None:
    Customer.objects.filter(pk=customer_a.pk).update(locale="de-DE")
    issued.refresh_from_db()
    services.credit_note_create(actor=None, invoice=issued, amount=Decimal("10.00"), reason="Downtime")
    issued.refresh_from_db()

    text = pdf_text(billing_pdf.invoice_pdf(issued))

    seller = ("Fleetport Equipment Services GmbH", "Germany")
    for printed in ("Alpha Dairy SAS", "12 rue du Lait", "Bâtiment B", "69003 Lyon", "France",
                    f"VAT ID {BUYER_VAT}", "PO-4711", *seller):  # fmt: skip
        assert printed in text, printed
    total = f"{issued.total:,.2f}".replace(",", "X").replace(".", ",").replace("X", ".")
    assert f"{total} €" in text  # de-DE: 1.234,56 € (the no-break space reads as a space)
    due = f"{issued.amount_due:,.2f}".replace(",", "X").replace(".", ",").replace("X", ".")
    assert "Amount still due" in text
    assert due in text
    assert "CN-" in text


def test_the_credit_note_pdf_is_factur_x_and_names_the_invoice(issued: Invoice) -> None:
    note = services.credit_note_create(actor=None, invoice=issued, amount=Decimal("10.00"), reason="Downtime")

    pdf = billing_pdf.credit_note_pdf(note)

    filename, embedded = facturx.get_xml_from_pdf(pdf, check_xsd=True)
    assert filename == "factur-x.xml"
    assert embedded == einvoice.credit_note_xml(note)
    text = pdf_text(pdf)
    for printed in (f"Credit note {note.number}", f"Corrects invoice {issued.number}", "Downtime",
                    "Alpha Dairy SAS", f"VAT ID {BUYER_VAT}", "10.00", "1.90", "€11.90"):  # fmt: skip
        assert printed in text, printed


def test_an_invoice_without_a_buyer_country_has_a_pdf_but_no_xml(
    customer_a: Customer, contract_a: Contract, fleet_a: Installed
) -> None:
    identify(customer_a, country="")
    invoice = services.invoice_finalize(actor=None, invoice=bill_october(contract_a, fleet_a))

    with pytest.raises(einvoice.IncompleteParty):
        einvoice.invoice_xml(invoice)
    pdf = billing_pdf.invoice_pdf(invoice)
    assert facturx.get_xml_from_pdf(pdf, check_xsd=False) == (False, False)
    assert "Alpha Dairy SAS" in pdf_text(pdf)


def pdf_text(pdf: bytes) -> str:
    """The PDF's words, one space between each (lines wrap where the layout says)."""
    return " ".join(" ".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages).split())


# The endpoints and the invoice page ---------------------------------------------------------


def test_a_customer_admin_downloads_the_invoice_xml_and_pdf(admin_a: User, issued: Invoice) -> None:
    client = client_for(admin_a)

    xml = client.get(f"/api/v1/invoices/{issued.pk}/xml/")
    pdf = client.get(f"/api/v1/invoices/{issued.pk}/pdf/")

    assert xml.status_code == 200
    assert xml["Content-Type"] == "application/xml"
    assert f'filename="{issued.number}.xml"' in xml["Content-Disposition"]
    assert xml.content == einvoice.invoice_xml(issued)
    assert pdf.status_code == 200
    assert pdf["Content-Type"] == "application/pdf"
    assert facturx.get_xml_from_pdf(pdf.content, check_xsd=True)[1] == xml.content


def test_a_draft_has_no_xml_endpoint_answer_but_409(finance: User, draft: Invoice) -> None:
    response = client_for(finance).get(f"/api/v1/invoices/{draft.pk}/xml/")

    assert response.status_code == 409
    assert response.json() == {"detail": "A draft invoice has no e-invoice; finalize it first."}
    assert client_for(finance).get(f"/api/v1/invoices/{draft.pk}/pdf/").status_code == 200


def test_credit_note_documents_are_served_to_who_may_see_the_invoice(
    admin_a: User, admin_b: User, viewer_a: User, finance: User, issued: Invoice
) -> None:
    note = services.credit_note_create(actor=None, invoice=issued, amount=Decimal("5.00"), reason="Goodwill")
    urls = [f"/api/v1/credit-notes/{note.pk}/pdf/", f"/api/v1/credit-notes/{note.pk}/xml/"]

    for user in (admin_a, finance):
        pdf, xml = (client_for(user).get(url) for url in urls)
        assert (pdf.status_code, pdf["Content-Type"]) == (200, "application/pdf")
        assert (xml.status_code, xml["Content-Type"]) == (200, "application/xml")
        assert xml.content == einvoice.credit_note_xml(note)
        assert f'filename="{note.number}.pdf"' in pdf["Content-Disposition"]
    for url in [*urls, f"/api/v1/invoices/{issued.pk}/xml/"]:
        assert client_for(admin_b).get(url).status_code == 404
        assert client_for(viewer_a).get(url).status_code == 403  # viewers never see invoices


def test_the_invoice_page_links_its_documents(admin_a: User, finance: User, issued: Invoice) -> None:
    note = services.credit_note_create(actor=None, invoice=issued, amount=Decimal("5.00"), reason="Goodwill")

    page = client_for(admin_a).get(f"/billing/invoices/{issued.pk}/").content.decode()

    for link in (f"/api/v1/invoices/{issued.pk}/pdf/", f"/api/v1/invoices/{issued.pk}/xml/",
                 f"/api/v1/credit-notes/{note.pk}/pdf/", f"/api/v1/credit-notes/{note.pk}/xml/"):  # fmt: skip
        assert link in page, link


def test_a_draft_page_offers_the_draft_pdf_only(finance: User, draft: Invoice) -> None:
    page = client_for(finance).get(f"/billing/invoices/{draft.pk}/").content.decode()

    assert "Draft PDF" in page
    assert f"/api/v1/invoices/{draft.pk}/xml/" not in page


def test_the_schema_declares_the_documents_as_the_files_they_are() -> None:
    paths = SchemaGenerator().get_schema(request=None, public=True)["paths"]

    for path in ("/api/v1/invoices/{id}/pdf/", "/api/v1/credit-notes/{id}/pdf/"):
        assert list(paths[path]["get"]["responses"]["200"]["content"]) == ["application/pdf"], path
    for path in ("/api/v1/invoices/{id}/xml/", "/api/v1/credit-notes/{id}/xml/"):
        responses = paths[path]["get"]["responses"]
        assert list(responses["200"]["content"]) == ["application/xml"], path
        conflict = responses["409"]["content"]["application/json"]["schema"]
        assert conflict == {"$ref": "#/components/schemas/Error"}, path


def test_an_xml_the_schema_rejects_is_reported_never_served(
    finance: User, customer_a: Customer, contract_a: Contract, fleet_a: Installed
) -> None:
    """An XML the schema rejects (here: a character no XML may carry; else a mapping bug) never
    reaches a customer, nor becomes a 500: the check drafthorse runs while writing turns into a
    409, and the PDF goes without the XML."""
    identify(customer_a, legal_name="Alpha\x0bDairy")  # a control character no XML may carry
    invoice = services.invoice_finalize(actor=None, invoice=bill_october(contract_a, fleet_a))

    with pytest.raises(einvoice.SchemaRejected):
        einvoice.invoice_xml(invoice)
    response = client_for(finance).get(f"/api/v1/invoices/{invoice.pk}/xml/")
    assert response.status_code == 409
    assert "does not validate" in response.json()["detail"]
    pdf = client_for(finance).get(f"/api/v1/invoices/{invoice.pk}/pdf/")
    assert pdf.status_code == 200
    assert facturx.get_xml_from_pdf(pdf.content, check_xsd=False) == (False, False)


def test_a_voided_draft_is_a_pdf_without_xml_never_a_500(
    finance: User, contract_a: Contract, fleet_a: Installed
) -> None:
    """The fuzz run voided a draft and asked for its PDF: it has no number, so no e-invoice."""
    draft = bill_october(contract_a, fleet_a)
    services.invoice_void(actor=finance, invoice=draft, reason="Discarded draft")

    response = client_for(finance).get(f"/api/v1/invoices/{draft.pk}/pdf/")

    assert response.status_code == 200
    assert facturx.get_xml_from_pdf(response.content, check_xsd=False) == (False, False)
