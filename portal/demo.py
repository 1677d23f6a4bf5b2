"""The demo data `manage.py seed_demo` loads: three customers and a user of every role; apps add
theirs (sites, equipment, contracts) through `register_seeder` from their `AppConfig.ready()`.

Idempotent: each row is found by its natural key (slug, e-mail, name) and brought back to
the values below, so running it twice leaves the same rows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from django.db import transaction

from portal.models import Customer, TaxCategory, User
from portal.roles import Role

DEMO_PASSWORD = "fleetport-demo"  # noqa: S105 - documented in README.md; refused in production settings


@dataclass(frozen=True)
class DemoCustomer:
    slug: str
    name: str
    currency: str
    time_zone: str
    tax_rate: Decimal
    billing_email: str
    # The billing identity (docs/billing.md, "Billing identity"): real-looking, valid VAT IDs.
    legal_name: str = ""
    address_line1: str = ""
    postal_code: str = ""
    city: str = ""
    country: str = ""
    vat_id: str = ""
    tax_category: str = TaxCategory.STANDARD
    tax_exemption_reason: str = ""
    locale: str = "en"

    def identity(self) -> dict[str, object]:
        return {
            "name": self.name, "currency": self.currency, "time_zone": self.time_zone,
            "tax_rate": self.tax_rate, "billing_email": self.billing_email, "legal_name": self.legal_name,
            "address_line1": self.address_line1, "address_line2": "", "postal_code": self.postal_code,
            "city": self.city, "country": self.country, "vat_id": self.vat_id,
            "tax_category": self.tax_category, "tax_exemption_reason": self.tax_exemption_reason,
            "locale": self.locale, "is_active": True,
        }  # fmt: skip


CUSTOMERS = (
    DemoCustomer(
        slug="acme",
        name="Acme Foods",
        currency="EUR",
        time_zone="Europe/Berlin",
        tax_rate=Decimal("0.1900"),
        billing_email="ap@acme.example",
        legal_name="Acme Foods GmbH",
        address_line1="Großmarkt 12",
        postal_code="20097",
        city="Hamburg",
        country="DE",
        vat_id="DE136695976",
        locale="de-DE",
    ),
    # The provider's one customer billed in dollars, with US sales tax: no VAT ID to print (the
    # United States have no VAT); the e-invoice names it by its legal name and address.
    DemoCustomer(
        slug="borealis",
        name="Borealis Cold Storage",
        currency="USD",
        time_zone="America/Chicago",
        tax_rate=Decimal("0.0625"),
        billing_email="payables@borealis.example",
        legal_name="Borealis Cold Storage, Inc.",
        address_line1="2200 S Halsted St",
        postal_code="60608",
        city="Chicago, IL",
        country="US",
        locale="en-US",
    ),
    # A business customer in another EU country: reverse charge, no VAT on its invoices.
    DemoCustomer(
        slug="calypso",
        name="Calypso Dairy",
        currency="EUR",
        time_zone="Europe/Amsterdam",
        tax_rate=Decimal("0"),
        billing_email="crediteuren@calypso.example",
        legal_name="Calypso Dairy B.V.",
        address_line1="Wilhelminakade 91",
        postal_code="3072 AP",
        city="Rotterdam",
        country="NL",
        vat_id="NL004495445B01",
        tax_category=TaxCategory.REVERSE_CHARGE,
        tax_exemption_reason="Reverse charge: VAT to be accounted for by the recipient "
        "(Art. 196 Council Directive 2006/112/EC).",
        locale="nl-NL",
    ),
)

# (e-mail, name, role, customer slug or None)
USERS = (
    ("viewer@acme.example", "Vera Viewer", Role.CUSTOMER_VIEWER, "acme"),
    ("admin@acme.example", "Anton Admin", Role.CUSTOMER_ADMIN, "acme"),
    ("viewer@borealis.example", "Bo Viewer", Role.CUSTOMER_VIEWER, "borealis"),
    ("admin@borealis.example", "Bea Admin", Role.CUSTOMER_ADMIN, "borealis"),
    ("support@fleetport.example", "Sam Support", Role.SUPPORT, None),
    ("finance@fleetport.example", "Fiona Finance", Role.FINANCE, None),
    ("operator@fleetport.example", "Otto Operator", Role.OPERATOR, None),
)


@transaction.atomic
def seed_demo() -> dict[str, int]:
    customers: dict[str, Customer] = {}
    for spec in CUSTOMERS:
        customer, _ = Customer.objects.update_or_create(slug=spec.slug, defaults=spec.identity())
        customer.full_clean()  # the demo's identities pass the checks the portal's forms make
        customers[spec.slug] = customer
    for email, full_name, role, slug in USERS:
        user, _ = User.objects.update_or_create(
            email=email,
            defaults={
                "full_name": full_name,
                "role": role,
                "customer": customers[slug] if slug else None,
                "is_active": True,
                "is_superuser": role == Role.OPERATOR,
            },
        )
        # Set again only if changed: a new password revokes the user's API tokens (docs/security.md).
        if not user.check_password(DEMO_PASSWORD):
            user.set_password(DEMO_PASSWORD)
            user.save(update_fields=["password"])
    counts = {
        "customers": Customer.objects.filter(slug__in=customers).count(),
        "users": User.objects.filter(email__in=[u[0] for u in USERS]).count(),
    }
    for seeder in _seeders:
        counts.update(seeder(customers))
    return counts


Seeder = Callable[[dict[str, Customer]], dict[str, int]]
_seeders: list[Seeder] = []


def register_seeder(seeder: Seeder) -> None:
    """Apps add their demo rows; a seeder gets the demo customers by slug, returns counts."""
    if seeder not in _seeders:
        _seeders.append(seeder)
