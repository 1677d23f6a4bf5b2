"""Celery tasks of the health rules: the beat sweep fans out bounded batches (docs/health.md)."""

from __future__ import annotations

from typing import Any

from celery import shared_task
from django.conf import settings
from django.db.models import Q
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from fleet.health.evaluation import KEY_PREFIX, evaluate
from fleet.models import ACTIVE_ALARM_STATES, Alarm, Asset, HealthRule


def assets_with_rules() -> list[str]:
    """Ids of the assets in service whose model has an active health rule, and of any asset
    with an active health alarm (its rule may be gone: evaluation clears it), in a fixed order."""
    models = HealthRule.objects.filter(is_active=True).values("asset_model_id")
    alarmed = Alarm.objects.filter(key__startswith=KEY_PREFIX, state__in=ACTIVE_ALARM_STATES)
    return [
        str(pk)
        for pk in Asset.objects.filter(
            Q(model_id__in=models, decommissioned_at__isnull=True) | Q(pk__in=alarmed.values("asset_id"))
        )
        .order_by("pk")
        .values_list("pk", flat=True)
    ]


@shared_task(name="fleet.health_sweep")
def health_sweep() -> int:
    """Beat, every HEALTH_EVAL_INTERVAL_SECONDS: one `fleet.health_evaluate` per
    HEALTH_BATCH_SIZE assets, all at the same `now`. Returns the number of batches."""
    ids = assets_with_rules()
    now = timezone.now().isoformat()
    size = max(int(settings.HEALTH_BATCH_SIZE), 1)
    batches = [ids[i : i + size] for i in range(0, len(ids), size)]
    for batch in batches:
        health_evaluate.delay(asset_ids=batch, now=now)
    return len(batches)


@shared_task(name="fleet.health_evaluate")
def health_evaluate(*, asset_ids: list[str], now: str | None = None) -> dict[str, Any]:
    """Evaluate the health rules of these assets at `now` (ISO time; default: the present).
    Idempotent: a second run over the same rollups raises nothing new."""
    at = parse_datetime(now) if now else None
    return evaluate(asset_ids, at or timezone.now()).as_dict()
