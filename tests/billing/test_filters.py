"""The invoice filters: one FilterSet (billing.selectors) for the API list and the page."""

from __future__ import annotations

from portal.models import User
from tests.conftest import client_for


def test_a_bad_invoice_filter_is_a_400_in_the_api_and_a_message_on_the_page(finance: User) -> None:
    client = client_for(finance)

    api = client.get("/api/v1/invoices/", {"status": "lost", "contract": "7"})
    page = client.get("/billing/invoices/", {"status": "lost", "period": "10/2026"})

    assert api.status_code == 400
    assert sorted(e["field"] for e in api.json()["errors"]) == ["contract", "status"]
    assert page.status_code == 200
    text = page.content.decode()
    assert "lost is not one of the available choices" in text
    assert "A month as YYYY-MM, e.g. 2026-10." in text


def test_a_good_invoice_filter_answers_200_in_both(finance: User) -> None:
    client = client_for(finance)
    query = {"status": "finalized", "period": "2026-10"}

    assert client.get("/api/v1/invoices/", query).json()["count"] == 0
    assert client.get("/billing/invoices/", query).status_code == 200
