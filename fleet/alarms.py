"""Alarms: raised from heartbeats (thresholds held for a while, device faults) and by the
offline sweep; acknowledged and cleared by people or by the condition going away.

One active alarm per asset and key is enforced by a partial unique constraint, so two
workers that see the same condition at once raise it once. Domain events (`AlarmRaised`,
`AlarmCleared`, `AssetStatusChanged`) are recorded in the change's transaction and handled in
tasks after it commits; live messages go out on commit.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from functools import partial
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from fleet import events
from fleet import live as fleet_live
from fleet import thresholds as asset_thresholds
from fleet.maintenance import Interval, covered, in_maintenance
from fleet.models import (
    ACTIVE_ALARM_STATES,
    Alarm,
    AlarmKind,
    AlarmRule,
    AlarmState,
    Asset,
    AssetModel,
    AssetStatus,
    AssetStatusChange,
    MaintenanceWindow,
    Severity,
)
from fleet.usage import as_decimal
from portal import formatting, live
from portal.models import User
from portal.services import audit_record

log = logging.getLogger(__name__)

DEVICE_FAULT = "device_fault"
OFFLINE = "offline"


class AlarmStateError(Exception):
    """A lifecycle step that does not apply to the alarm's state (a 400 for the API)."""


def rule_key(rule: AlarmRule) -> str:
    return f"rule:{rule.pk}"


def _payload(alarm: Alarm) -> dict[str, Any]:
    return {
        "alarm": str(alarm.pk),
        "asset": str(alarm.asset_id),
        "kind": alarm.kind,
        "severity": alarm.severity,
        "state": alarm.state,
        "message": alarm.message,
        "raised_at": alarm.raised_at.isoformat(),
        "in_maintenance": alarm.in_maintenance,
    }


def _announce(alarm: Alarm, event: str) -> None:
    """Inside the change's transaction: its domain event (handled in tasks after the commit)
    and, after the commit, its live message (the fast path, straight to the channel layer)."""
    payload = _payload(alarm)
    if event == "alarm.raised":
        events.record(events.AlarmRaised(alarm_id=str(alarm.pk)))
    else:
        events.record(events.AlarmCleared(alarm_id=str(alarm.pk)))

    def send() -> None:
        try:
            live.publish_for_customer(alarm.customer_id, {"type": event, **payload})
        except Exception:
            log.warning("live: could not publish %s", event, exc_info=True)

    transaction.on_commit(send)


def alarm_raise(
    *,
    asset: Asset,
    key: str,
    kind: str,
    severity: str,
    message: str,
    at: datetime,
    rule: AlarmRule | None = None,
    value: Decimal | None = None,
) -> Alarm | None:
    """Raise unless one is active for (asset, key). Returns the new alarm, or None."""
    if (
        Alarm.objects.for_customer(asset.customer_id)
        .filter(asset=asset, key=key, state__in=ACTIVE_ALARM_STATES)
        .exists()
    ):
        return None
    try:
        with transaction.atomic():
            alarm = Alarm.objects.create(
                customer_id=asset.customer_id, asset=asset, rule=rule, kind=kind, key=key,
                severity=severity, message=message[:300], value=value, raised_at=at,
                # Recorded all the same; support opens no ticket for it (docs/support.md).
                in_maintenance=in_maintenance(asset.pk, at),
            )  # fmt: skip
            _announce(alarm, "alarm.raised")  # in the savepoint: no event for a refused twin
    except IntegrityError:
        return None  # raised concurrently by another worker: one alarm it is
    return alarm


def alarms_enter_maintenance(*, window: MaintenanceWindow, spans: Iterable[Interval]) -> int:
    """A window began (`spans`: the occurrences that began): the active alarms of the assets it
    covers, raised before such a span ended, are marked `in_maintenance`, as `alarm_raise`
    marks one raised inside it. Only the window's own customer's alarms. Returns how many
    changed; safe to call twice (marked ones are left alone). Nothing is unmarked when the
    window ends, as for an alarm raised inside it; a ticket it opened before stays
    (docs/maintenance.md, "During a window").

    After the commit each changed alarm gets an `alarm.maintenance` live message, to the
    window's customer's sockets and staff (an open alarm centre marks its row). The rows are
    locked before they are marked, and PostgreSQL checks `in_maintenance = false` again on a
    row another call marked meanwhile, so two calls at once (two sweeps, a sweep and a plan)
    announce each alarm once."""
    ends = [ended for _, ended in spans]
    if not ends:
        return 0
    with transaction.atomic():
        entering = list(
            Alarm.objects.for_customer(window.customer_id)
            .select_for_update()
            .filter(state__in=ACTIVE_ALARM_STATES, in_maintenance=False, raised_at__lt=max(ends))
            .filter(asset__in=Asset.objects.filter(covered(window)))
        )
        if not entering:
            return 0
        Alarm.objects.for_customer(window.customer_id).filter(pk__in=[a.pk for a in entering]).update(
            in_maintenance=True
        )
    messages: list[live.Message] = []
    for alarm in entering:
        alarm.in_maintenance = True
        messages += live.for_customer(alarm.customer_id, {"type": "alarm.maintenance", **_payload(alarm)})
    fleet_live.publish_after_commit(messages)
    return len(entering)


def alarm_clear_key(*, asset: Asset, key: str, reason: str, actor: User | None = None) -> Alarm | None:
    alarm = (
        Alarm.objects.for_customer(asset.customer_id)
        .select_for_update()
        .filter(asset=asset, key=key, state__in=ACTIVE_ALARM_STATES)
        .first()
    )
    if alarm is None:
        return None
    return _clear(alarm, reason=reason, actor=actor)


def _clear(alarm: Alarm, *, reason: str, actor: User | None) -> Alarm:
    alarm.state = AlarmState.CLEARED
    alarm.cleared_at = timezone.now()
    alarm.cleared_by = actor
    alarm.cleared_reason = reason[:200]
    alarm.save(update_fields=["state", "cleared_at", "cleared_by", "cleared_reason"])
    _announce(alarm, "alarm.cleared")
    return alarm


@transaction.atomic
def alarm_acknowledge(*, alarm: Alarm, actor: User) -> Alarm:
    """raised → acknowledged (idempotent); a cleared alarm cannot be acknowledged."""
    alarm = Alarm.objects.select_for_update().get(pk=alarm.pk)
    if alarm.state == AlarmState.ACKNOWLEDGED:
        return alarm
    if alarm.state != AlarmState.RAISED:
        raise AlarmStateError("This alarm is cleared already.")
    alarm.state = AlarmState.ACKNOWLEDGED
    alarm.acknowledged_at = timezone.now()
    alarm.acknowledged_by = actor
    alarm.save(update_fields=["state", "acknowledged_at", "acknowledged_by"])
    audit_record(actor=actor, action="alarm.acknowledged", target=alarm)
    return alarm


@transaction.atomic
def alarm_clear(*, alarm: Alarm, actor: User, reason: str = "cleared by hand") -> Alarm:
    alarm = Alarm.objects.select_for_update().get(pk=alarm.pk)
    if alarm.state == AlarmState.CLEARED:
        return alarm
    audit_record(actor=actor, action="alarm.cleared", target=alarm)
    return _clear(alarm, reason=reason, actor=actor)


def evaluate_reading(
    *,
    asset: Asset,
    rules: list[AlarmRule],
    item: dict[str, Any],
    ts: datetime,
    rule_state: dict[str, str],
    active: set[str],
    thresholds: Mapping[Any, Decimal] | None = None,
) -> None:
    """Apply one (newest-so-far) reading to the asset's alarms.

    `rule_state` (when each rule's condition began) and `active` (the active alarm keys,
    read once per batch) are updated in place, so a batch of readings costs queries only
    when an alarm actually changes. `thresholds`: the asset's own thresholds by rule id
    (fleet/thresholds.py); a rule applies the tighter of its own and the asset's.
    """
    if item["status"] == "fault":
        if DEVICE_FAULT not in active:
            code = item.get("fault_code") or "no code"
            alarm_raise(
                asset=asset, key=DEVICE_FAULT, kind=AlarmKind.DEVICE_FAULT, severity=Severity.CRITICAL,
                message=f"{asset.name} reports a fault ({code})", at=ts,
            )  # fmt: skip
            active.add(DEVICE_FAULT)
    elif DEVICE_FAULT in active:
        alarm_clear_key(asset=asset, key=DEVICE_FAULT, reason="the device reports no fault")
        active.discard(DEVICE_FAULT)
    for rule in rules:
        if rule.metric not in item["metrics"]:
            continue
        value = as_decimal(item["metrics"][rule.metric])
        state_key, key = str(rule.pk), rule_key(rule)
        own = thresholds.get(rule.pk) if thresholds else None
        limit = (
            rule.threshold
            if own is None
            else asset_thresholds.effective(rule.comparison, rule.threshold, own)
        )
        if not (rule.holds(value) if own is None else asset_thresholds.holds(rule.comparison, limit, value)):
            rule_state.pop(state_key, None)
            if key in active:
                alarm_clear_key(asset=asset, key=key, reason=f"{rule.metric} back to {value}")
                active.discard(key)
            continue
        since = parse_datetime(rule_state[state_key]) if state_key in rule_state else None
        if since is None:
            since = ts
            rule_state[state_key] = ts.isoformat()
        if key not in active and ts - since >= timedelta(seconds=rule.for_seconds):
            condition = f"{rule.get_comparison_display()} {limit}" + (
                "" if own is None else ", the asset's own"
            )
            alarm_raise(
                asset=asset, key=key, kind=AlarmKind.THRESHOLD, severity=rule.severity, rule=rule,
                message=f"{rule.name}: {rule.metric} is {value} ({condition})", at=ts, value=value,
            )  # fmt: skip
            active.add(key)


def record_status_change(*, asset: Asset, previous: str, status: str, at: datetime) -> None:
    if previous != status:
        AssetStatusChange.objects.create(
            customer_id=asset.customer_id, asset=asset, previous=previous, status=status, at=at
        )


LIVE_STATUSES = (AssetStatus.ONLINE, AssetStatus.WARNING, AssetStatus.FAULT)


def offline_sweep(*, now: datetime | None = None) -> list[str]:
    """Mark assets offline after 3× their model's interval without a heartbeat; raise alarms.

    Claims each asset with a conditional UPDATE (status still live, still silent), so two
    sweeps at once mark and alarm it once.
    """
    now = now or timezone.now()
    marked: list[str] = []
    for model in AssetModel.objects.all():
        cutoff = now - timedelta(seconds=3 * model.heartbeat_interval_seconds)
        candidates = Asset.objects.filter(
            model=model, status__in=LIVE_STATUSES, last_seen_at__lt=cutoff, decommissioned_at__isnull=True
        ).values_list("pk", "status", "last_seen_at")
        for pk, previous, last_seen in candidates:
            if last_seen is None:
                continue
            with transaction.atomic():
                claimed = Asset.objects.filter(pk=pk, status=previous, last_seen_at=last_seen).update(
                    status=AssetStatus.OFFLINE, status_changed_at=now
                )
                if not claimed:
                    continue
                asset = Asset.objects.select_related("customer").get(pk=pk)
                # Offline from when the next heartbeat was due: what uptime is measured against.
                offline_since = last_seen + timedelta(seconds=model.heartbeat_interval_seconds)
                record_status_change(
                    asset=asset, previous=previous, status=AssetStatus.OFFLINE, at=offline_since
                )
                # Stored text that the customer and staff read alike (the alarm centre, the
                # ticket it opens): the customer's zone, named, as the desk writes its notes
                # (docs/support.md, "Alarm tickets").
                since = last_seen.astimezone(formatting.zone(asset.customer.time_zone))
                alarm_raise(
                    asset=asset, key=OFFLINE, kind=AlarmKind.OFFLINE, severity=Severity.CRITICAL,
                    message=f"{asset.name} has sent nothing since {since:%Y-%m-%d %H:%M %Z}", at=now,
                )  # fmt: skip
                events.record(events.AssetStatusChanged(asset_ids=[str(pk)]))
                transaction.on_commit(partial(fleet_live.publish_asset_states, asset_ids=[str(pk)]))
            marked.append(str(pk))
    return marked
