"""Form filling that more than one browser test does the same way."""

from __future__ import annotations

from typing import Any


def fill_identity(
    page: Any,
    *,
    legal_name: str,
    address_line1: str,
    postal_code: str,
    city: str,
    country: str,
    tax_rate: str,
    locale: str,
    vat_id: str | None = None,
) -> None:
    """Fill the billing identity fields, which the customer's billing page and the first
    onboarding step both show; the VAT ID only when given."""
    page.fill("input[name=legal_name]", legal_name)
    page.fill("input[name=address_line1]", address_line1)
    page.fill("input[name=postal_code]", postal_code)
    page.fill("input[name=city]", city)
    page.select_option("select[name=country]", country)
    if vat_id is not None:
        page.fill("input[name=vat_id]", vat_id)
    page.fill("input[name=tax_rate]", tax_rate)
    page.select_option("select[name=locale]", locale)
