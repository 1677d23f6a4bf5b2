"""Volume for the demo's invoice run: branch contracts of a few wholesale customers.

With the three demo customers alone, the run for last month finished before finance's page
could show its progress bar. These add `CUSTOMERS` × `CONTRACTS_EACH` contracts (a framework
agreement per branch, the plan's period fee and minimum commitment, no machines yet), starting
on the first of last month: the run for last month bills them in several chunks of
`billing.invoicing.CHUNK`, each reported on the bar, while the month before last (already on the
books, billing/demo.py) does not include them.

Fast to seed: bulk inserts, no services (no audit entries or e-mails for filler data); a
second seed finds them by number and adds nothing. Idempotent like the rest of the demo.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from billing.models import Contract, ContractStatus, Plan
from portal.models import Customer

CUSTOMERS = 8
CONTRACTS_EACH = 250  # 2,000 contracts: four chunks of 500
CITIES = ("Bremen", "Hannover", "Kassel", "Dortmund", "Erfurt", "Rostock", "Münster", "Kiel")
PREFIX = "BR"


def seed(plan: Plan, *, starts: date) -> dict[str, int]:
    """The wholesalers and their branch contracts on `plan` (EUR), from `starts` on."""
    branches = Contract.objects.filter(number__startswith=f"{PREFIX}-")
    if branches.count() >= CUSTOMERS * CONTRACTS_EACH:
        return {"branch contracts": branches.count()}  # seeded before: nothing to send
    Customer.objects.bulk_create(
        [
            Customer(
                slug=f"wholesale-{n:02d}",
                name=f"Nordgross {CITIES[n % len(CITIES)]}",
                legal_name=f"Nordgross {CITIES[n % len(CITIES)]} GmbH",
                currency="EUR",
                time_zone="Europe/Berlin",
                tax_rate=Decimal("0.1900"),
                billing_email=f"rechnung-{n:02d}@nordgross.example",
                address_line1=f"Hafenstraße {n + 1}",
                postal_code=f"{28195 + n * 7:05d}",
                city=CITIES[n % len(CITIES)],
                country="DE",
                locale="de-DE",
            )
            for n in range(CUSTOMERS)
        ],
        ignore_conflicts=True,
    )
    customers = list(
        Customer.objects.filter(slug__in=[f"wholesale-{n:02d}" for n in range(CUSTOMERS)]).order_by("slug")
    )
    Contract.objects.bulk_create(
        [
            Contract(
                customer=customer,
                plan=plan,
                number=f"{PREFIX}-{index:02d}-{branch:04d}",
                start_date=starts,
                status=ContractStatus.ACTIVE,
                purchase_order=f"NG-{index:02d}-{branch:04d}",
            )
            for index, customer in enumerate(customers)
            for branch in range(1, CONTRACTS_EACH + 1)
        ],
        ignore_conflicts=True,
        batch_size=1000,
    )
    return {"branch contracts": branches.count()}
