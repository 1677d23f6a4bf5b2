"""Rich demo data for the every-page sweep (tests/browser/test_every_page.py).

The demo (`seed_demo`) plus what makes widths honest: dozens of machines with long names on a
site with a long name, live values, faults and active alarms from heartbeats through the real
ingest worker, a full ticket queue with long subjects, a second month of invoices and an
invoice run, more customers and users with long names. Built through the services, as the
portal would build them.
"""

from __future__ import annotations

from datetime import UTC, timedelta
from decimal import Decimal
from io import StringIO

from django.core.management import call_command
from django.utils import timezone

from billing import metering
from billing.runs import invoice_run_execute, invoice_run_start
from fleet import services as fleet_services
from fleet.ingest import worker
from fleet.models import Asset, AssetModel, Device, IngestInbox
from portal.demo import DEMO_PASSWORD
from portal.models import Customer, User
from portal.roles import Role
from support import services as support_services
from support.models import Status

LONG_SITE = "Hamburg-Wilhelmsburg central refrigeration and compressed-air plant, building 7"
MACHINES = 36  # extra machines for Acme: the fleet table gets many rows
TICKETS = 28  # extra tickets for Acme: the queue gets many rows
CUSTOMERS = 14  # extra customers: the staff's customer list gets many rows

# The demo users the sweep logs in as, one per role (portal/demo.py).
ROLE_LOGINS = {
    Role.CUSTOMER_VIEWER: "viewer@acme.example",
    Role.CUSTOMER_ADMIN: "admin@acme.example",
    Role.SUPPORT: "support@fleetport.example",
    Role.FINANCE: "finance@fleetport.example",
    Role.OPERATOR: "operator@fleetport.example",
}
PASSWORD = DEMO_PASSWORD


def build() -> None:
    """Load the demo, then widen it (see the module's docstring)."""
    call_command("seed_demo", stdout=StringIO())
    acme = Customer.objects.get(slug="acme")
    with support_services.silently():
        _machines(acme)
        _tickets(acme)
    _customers_and_users(acme)
    _last_month_billed()


def _machines(acme: Customer) -> None:
    """Machines with long names, reporting through the ingest worker: some running, some in
    fault, some overheating long enough to raise the rule's alarm."""
    site = fleet_services.site_create(
        actor=None, customer=acme, name=LONG_SITE, address="Ernst-August-Kanal 7"
    )
    model = AssetModel.objects.get(code="aircomp-75")
    now = timezone.now()
    for n in range(MACHINES):
        asset = fleet_services.asset_create(
            actor=None,
            site=site,
            model=model,
            serial_number=f"AC75-9{n:03d}",
            name=f"Compressor {n + 1} for the north mixing hall and the proofing room conveyor",
        )
        device, _token = fleet_services.device_install(
            actor=None, asset=asset, serial_number=f"GW-AC75-9{n:03d}"
        )
        status, fault = ("fault", "E-OIL-PRESSURE-LOW") if n % 9 == 4 else ("ok", "")
        temp = 99.5 if n % 6 == 1 else 71.25 + n / 10  # over 95 °C for 90 s: "Oil overheating"
        items = [
            {
                "seq": seq,
                "ts": (now - timedelta(seconds=90 - 45 * seq)).astimezone(UTC).isoformat(),
                "status": status,
                "fault_code": fault,
                "metrics": {
                    "run_hours": 1234.5 + n + seq / 100,
                    "energy_kwh": 81234.75 + n * 10 + seq,
                    "pressure_bar": 7.4,
                    "temp_c": temp,
                },
            }
            for seq in range(3)
        ]
        IngestInbox.objects.create(device_id=device.pk, count=len(items), items=items)
    # The demo's own machines report too (values on the asset page, a fault on its site).
    for device in Device.objects.filter(customer=acme, asset__site__name="Hamburg bakery", is_active=True):
        IngestInbox.objects.create(
            device_id=device.pk,
            count=1,
            items=[
                {
                    "seq": 1,
                    "ts": now.isoformat(),
                    "status": "ok",
                    "fault_code": "",
                    "metrics": {"temp_c": 80.5},
                }
            ],
        )
    worker.drain()


def _tickets(acme: Customer) -> None:
    agent = User.objects.get(email=ROLE_LOGINS[Role.SUPPORT])
    author = User.objects.get(email=ROLE_LOGINS[Role.CUSTOMER_ADMIN])
    assets = list(Asset.objects.filter(customer=acme).order_by("serial_number")[:TICKETS])
    now = timezone.now()
    for n in range(TICKETS):
        ticket = support_services.ticket_open(
            actor=author,
            customer=acme,
            subject=f"Machine {n + 1} stops every night around two and restarts only after a manual reset",
            description="The night shift restarts it by hand; the oil looks fine and the filters are new.",
            category="breakdown" if n % 2 else "question",
            priority=f"P{n % 4 + 1}",
            asset=assets[n % len(assets)],
            at=now - timedelta(hours=n * 5),
        )
        if n % 3:
            support_services.ticket_assign(actor=agent, ticket=ticket, assignee=agent)
        if n % 4 == 1:
            support_services.ticket_transition(actor=agent, ticket=ticket, to=Status.OPEN)


def _customers_and_users(acme: Customer) -> None:
    for n in range(CUSTOMERS):
        Customer.objects.create(
            slug=f"sweep-{n}",
            name=f"Nordsee Tiefkühllogistik und Lebensmittelverarbeitung Betriebsgesellschaft {n + 1}",
            currency="EUR",
            time_zone="Europe/Berlin",
            tax_rate=Decimal("0.1900"),
            billing_email=f"rechnungseingang.kreditorenbuchhaltung@nordsee-logistik-{n}.example",
        )
    for n in range(6):
        user = User.objects.create(
            email=f"schichtleitung.kaeltetechnik.nord.{n}@acme.example",
            full_name=f"Maximiliane Schmidt-Oberhausen-Wilhelmsburg {n + 1}",
            role=Role.CUSTOMER_VIEWER,
            customer=acme,
        )
        user.set_password(PASSWORD)
        user.save(update_fields=["password"])


def _last_month_billed() -> None:
    """Last month's run, done in this process (as the worker would): the runs page has a run and
    the invoice list drafts beside the demo's finalized invoices."""
    run = invoice_run_start(
        actor=None, period=metering.period_containing(timezone.now(), "UTC").previous().label
    )
    invoice_run_execute(str(run.pk))
