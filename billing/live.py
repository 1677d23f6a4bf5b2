"""Live usage: when covered assets report (fleet's `AssetStatusChanged`, handled by the task
`billing.assets_reported` after the ingest batches commit, coalesced to about one task a
second — their hourly usage may have grown), tell their customer's pages.

The message carries the asset (sockets coalesce per asset and second) and the contract; a
contract page refetches its usage and projection at most every few seconds.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db.models import Q
from django.utils import timezone

from billing.models import ContractAsset
from portal import live

log = logging.getLogger(__name__)


def assets_reported(*, asset_ids: list[str], **_: Any) -> None:
    covered = (
        ContractAsset.objects.filter(asset_id__in=asset_ids)
        .filter(Q(covered_until__isnull=True) | Q(covered_until__gt=timezone.now()))
        .order_by()  # the default ordering joins and sorts the contracts (once per ingest batch)
        .values_list("asset_id", "contract_id", "contract__customer_id")
    )
    messages: list[live.Message] = []
    for asset_id, contract_id, customer_id in covered:
        payload = {"type": "usage.updated", "asset": str(asset_id), "contract": str(contract_id)}
        messages += live.for_customer(customer_id, payload)
    if messages:
        live.publish_many(messages)
