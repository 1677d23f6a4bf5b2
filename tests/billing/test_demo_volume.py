"""The demo's invoice run for last month is long enough to watch: several chunks, each one a
step of the progress bar (it used to be three contracts, one chunk, done at once)."""

from __future__ import annotations

from io import StringIO

from django.core.management import call_command
from django.utils import timezone

from billing import demo_volume, metering
from billing.invoicing import CHUNK, billable_contracts, contract_chunks
from billing.models import Contract, Invoice


def test_the_demo_run_for_last_month_has_several_chunks_and_the_books_stay_as_they_were(db: None) -> None:
    # given the demo, seeded twice
    call_command("seed_demo", stdout=StringIO())
    call_command("seed_demo", stdout=StringIO())

    last = metering.period_containing(timezone.now(), "UTC").previous()
    branches = Contract.objects.filter(number__startswith=f"{demo_volume.PREFIX}-")

    # then the branch contracts are there once each, billable last month in at least 4 chunks
    assert branches.count() == demo_volume.CUSTOMERS * demo_volume.CONTRACTS_EACH
    assert billable_contracts(last.label).count() > 3 * CHUNK
    assert len(list(contract_chunks(last.label))) >= 4
    # and the month before last, already on the books, has the three demo customers' invoices only
    assert not Invoice.objects.filter(contract__in=branches).exists()
    assert not billable_contracts(last.previous().label).filter(pk__in=branches).exists()
