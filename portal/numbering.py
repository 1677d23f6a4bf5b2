"""Gap-free document numbers (invoices, credit notes, contracts, tickets): one row per series
and year in `DocumentSequence`, taken under a row lock."""

from __future__ import annotations

from django.db import IntegrityError, transaction

from portal.models import DocumentSequence


def next_number(series: str, year: int) -> str:
    """The next number of a gap-free yearly series, e.g. INV-2026-000042.

    Call inside the transaction that uses the number: the sequence row stays locked until it
    commits, and a rollback gives the number back, so numbers never skip.
    """
    try:
        with transaction.atomic():
            DocumentSequence.objects.get_or_create(series=series, year=year)
    except IntegrityError:
        pass  # a concurrent transaction created the row; lock it below
    sequence = DocumentSequence.objects.select_for_update().get(series=series, year=year)
    sequence.last_number += 1
    sequence.save(update_fields=["last_number"])
    return f"{series}-{year}-{sequence.last_number:06d}"
