"""The demo data `manage.py seed_demo` loads: two customers and a user of every role; apps add
theirs (sites, equipment, contracts) through `register_seeder` from their `AppConfig.ready()`.

Idempotent: each row is found by its natural key (slug, e-mail, name) and brought back to
the values below, so running it twice leaves the same rows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from django.db import transaction

from portal.models import Customer, User
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


CUSTOMERS = (
    DemoCustomer(
        slug="acme",
        name="Acme Foods",
        currency="EUR",
        time_zone="Europe/Berlin",
        tax_rate=Decimal("0.1900"),
        billing_email="ap@acme.example",
    ),
    DemoCustomer(
        slug="borealis",
        name="Borealis Cold Storage",
        currency="USD",
        time_zone="America/Chicago",
        tax_rate=Decimal("0.0625"),
        billing_email="payables@borealis.example",
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
        customer, _ = Customer.objects.update_or_create(
            slug=spec.slug,
            defaults={
                "name": spec.name,
                "currency": spec.currency,
                "time_zone": spec.time_zone,
                "tax_rate": spec.tax_rate,
                "billing_email": spec.billing_email,
                "is_active": True,
            },
        )
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
