"""Writes of the fleet: onboarding sites, asset models, assets and devices."""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.utils import timezone

from fleet.credentials import device_token_issue
from fleet.ingest import admission
from fleet.ingest.counters import Folding, Usage, add_usage, flags_settled, refold
from fleet.models import (
    AlarmRule,
    Asset,
    AssetModel,
    AssetStatus,
    Device,
    FailedBatch,
    Heartbeat,
    ImplausibleReading,
    IngestInbox,
    MetricDefinition,
    Site,
)
from fleet.usage import Judgement, Reading, as_decimal
from portal.models import Customer, User
from portal.services import audit_record


@transaction.atomic
def site_create(
    *, actor: User | None, customer: Customer, name: str, address: str = "", time_zone: str = ""
) -> Site:
    site = Site(customer=customer, name=name, address=address, time_zone=time_zone)
    site.full_clean()
    site.save()
    audit_record(actor=actor, action="site.created", target=site)
    return site


@transaction.atomic
def asset_model_create(
    *,
    actor: User | None,
    code: str,
    name: str,
    manufacturer: str = "",
    heartbeat_interval_seconds: int = 60,
    description: str = "",
    metrics: list[dict[str, Any]] | None = None,
    alarm_rules: list[dict[str, Any]] | None = None,
) -> AssetModel:
    model = AssetModel(
        code=code,
        name=name,
        manufacturer=manufacturer,
        heartbeat_interval_seconds=heartbeat_interval_seconds,
        description=description,
    )
    model.full_clean()
    model.save()
    for spec in metrics or []:
        metric = MetricDefinition(asset_model=model, **spec)
        metric.full_clean()
        metric.save()
    for spec in alarm_rules or []:
        rule = AlarmRule(asset_model=model, **spec)
        rule.full_clean()
        rule.save()
    audit_record(actor=actor, action="asset_model.created", target=model)
    return model


@transaction.atomic
def asset_create(
    *,
    actor: User | None,
    site: Site,
    model: AssetModel,
    serial_number: str,
    name: str,
    commissioned_on: date | None = None,
) -> Asset:
    asset = Asset(
        customer_id=site.customer_id,
        site=site,
        model=model,
        serial_number=serial_number,
        name=name,
        commissioned_on=commissioned_on,
    )
    asset.full_clean()
    asset.save()
    audit_record(actor=actor, action="asset.created", target=asset)
    return asset


@transaction.atomic
def device_install(
    *, actor: User | None, asset: Asset, serial_number: str, firmware: str = ""
) -> tuple[Device, str]:
    """Install a device on `asset` (retiring the one there, a swap) and issue its first token.

    Returns the device and its token, which is shown once and never stored.
    """
    now = timezone.now()
    for old in (
        Device.objects.for_customer(asset.customer_id).select_for_update().filter(asset=asset, is_active=True)
    ):
        old.is_active = False
        old.removed_at = now
        old.save(update_fields=["is_active", "removed_at"])
        audit_record(actor=actor, action="device.removed", target=old)
    device = Device(
        customer_id=asset.customer_id, asset=asset, serial_number=serial_number, firmware=firmware
    )
    device.full_clean()
    device.save()
    audit_record(actor=actor, action="device.installed", target=device)
    return device, device_token_issue(device=device, actor=actor)


def metric(
    code: str, label: str, unit: str, kind: str, low: str | None = None, high: str | None = None
) -> dict[str, Any]:
    """A metric definition spec for `asset_model_create`."""
    return {
        "code": code,
        "label": label,
        "unit": unit,
        "kind": kind,
        "normal_min": Decimal(low) if low is not None else None,
        "normal_max": Decimal(high) if high is not None else None,
    }


@transaction.atomic
def site_update(*, actor: User | None, site: Site, **changes: Any) -> Site:
    for field, value in changes.items():
        setattr(site, field, value)
    site.full_clean()
    site.save()
    audit_record(
        actor=actor, action="site.updated", target=site, data={k: str(v) for k, v in changes.items()}
    )
    return site


@transaction.atomic
def asset_update(*, actor: User | None, asset: Asset, **changes: Any) -> Asset:
    """Rename, move to another site of the same customer, (de)commission."""
    decommissioning = (
        "decommissioned_at" in changes and changes["decommissioned_at"] and not asset.decommissioned_at
    )
    for field, value in changes.items():
        setattr(asset, field, value)
    asset.full_clean()
    if decommissioning:
        previous = asset.status
        asset.status = AssetStatus.DECOMMISSIONED
        asset.status_changed_at = timezone.now()
        from fleet.alarms import record_status_change

        record_status_change(asset=asset, previous=previous, status=asset.status, at=asset.status_changed_at)
    asset.save()
    audit_record(
        actor=actor, action="asset.updated", target=asset, data={k: str(v) for k, v in changes.items()}
    )
    return asset


@transaction.atomic
def failed_batch_retry(*, batch: FailedBatch) -> IngestInbox:
    """Put a set-aside batch back into the inbox (after the bug that failed it is fixed)."""
    row = IngestInbox.objects.create(
        device_id=batch.device_id, received_at=batch.received_at, count=len(batch.items), items=batch.items
    )
    batch.retried_at = timezone.now()
    batch.save(update_fields=["retried_at"])
    transaction.on_commit(admission.nudge)
    return row


class ReadingDecisionError(Exception):
    """A decision on a reading that was decided otherwise already (a 400 for the API)."""


@transaction.atomic
def implausible_reading_decide(
    *, reading: ImplausibleReading, accept: bool, actor: User
) -> ImplausibleReading:
    """Accept a flagged counter reading (its increment is added to its hour's usage, once,
    and it becomes a baseline like any reading) or reject it (it stays out). Idempotent:
    the same decision twice changes nothing; the other one is refused.

    Under the device's row lock, the lock the ingest worker folds under: a batch of the
    same device never sees half a decision. Accepting re-folds the readings after it up to
    the first that counted and still counts (fleet/usage.py), so those measured from an
    older baseline while it was pending are measured from it now.
    """
    device = (
        Device.objects.for_customer(reading.customer_id)
        .select_for_update()
        .select_related("asset")
        .get(pk=reading.device_id)
    )
    reading = (
        ImplausibleReading.objects.for_customer(device.customer_id).select_for_update().get(pk=reading.pk)
    )
    status = ImplausibleReading.Status.ACCEPTED if accept else ImplausibleReading.Status.REJECTED
    if reading.status == status:
        return reading
    if reading.status != ImplausibleReading.Status.PENDING:
        raise ReadingDecisionError(f"This reading is {reading.status} already.")
    heartbeat = (
        Heartbeat.objects.for_customer(device.customer_id).filter(device=device, seq=reading.seq).first()
    )
    if heartbeat is None and accept:
        # Raw retention (RAW_RETENTION_DAYS) pruned it: nothing left to fold from.
        raise ReadingDecisionError("This reading is past raw retention; it can only be rejected.")
    reading.status = status
    reading.decided_at = timezone.now()
    reading.decided_by = actor
    reading.save(update_fields=["status", "decided_at", "decided_by"])
    if heartbeat is not None and accept:
        bound = (
            MetricDefinition.objects.filter(asset_model_id=device.asset.model_id, code=reading.metric)
            .values_list("max_rate_per_hour", flat=True)
            .first()
        )
        usage: Usage = defaultdict(Decimal)
        folding = Folding()
        refold(
            device,
            reading.metric,
            bound,
            [
                Reading(
                    seq=reading.seq,
                    value=as_decimal(heartbeat.metrics[reading.metric]),
                    ts=heartbeat.ts,
                    stored_increment=Decimal(heartbeat.increments.get(reading.metric, "0")),
                    stored=Judgement.ACCEPTED,
                )
            ],
            usage,
            folding,
        )  # writes the stored rows' new increments (this one's, and those it is the baseline of)
        if reading.metric in folding.baselines:
            device.counter_state = {**device.counter_state, **folding.baselines}
            device.save(update_fields=["counter_state"])
        add_usage(usage)
    audit_record(
        actor=actor,
        action=f"counter_reading.{status}",
        target=reading,
        data={"metric": reading.metric, "seq": reading.seq, "increment": str(reading.increment)},
    )
    flags_settled(asset=device.asset, code=reading.metric, reason=f"reading {status} by staff", actor=actor)
    return reading
