"""Stops the customer caused: support and operators mark an interval of an asset's status
history as the customer's doing, with the reason (docs/availability.md, "Customer-caused stops").

    exclusion_mark(actor=user, asset=asset, starts_at=..., ends_at=..., reason="...")
    exclusion_remove(actor=user, exclusion=row)
    exclusions_visible_to(user)            # scoped: a customer reads its own assets' marks
    exclusions_for_asset(user, asset)

A contract with `exclude_customer_stops` leaves these intervals out of its availability
(billing.availability); the asset page and the availability statement show them with the reason.
Every write is audited.
"""

from __future__ import annotations

from datetime import datetime

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import QuerySet

from fleet.models import Asset, StatusExclusion, StopCause
from portal.models import User
from portal.roles import Capability, can
from portal.services import audit_record

MARKERS = (Capability.WORK_TICKETS, Capability.MANAGE_FLEET)


def may_mark(user: User) -> bool:
    """Support and operators mark and remove customer-caused stops."""
    return any(can(user, capability) for capability in MARKERS)


def exclusions_visible_to(user: User) -> QuerySet[StatusExclusion]:
    return StatusExclusion.objects.visible_to(user).select_related("asset", "created_by")


def exclusions_for_asset(user: User, asset: Asset) -> QuerySet[StatusExclusion]:
    """The asset's marked stops, newest first, scoped by the user and the asset's customer."""
    return (
        exclusions_visible_to(user).filter(customer_id=asset.customer_id, asset=asset).order_by("-starts_at")
    )


@transaction.atomic
def exclusion_mark(
    *, actor: User | None, asset: Asset, starts_at: datetime, ends_at: datetime, reason: str
) -> StatusExclusion:
    """Mark [starts_at, ends_at) of the asset's history as caused by the customer."""
    reason = (reason or "").strip()
    errors: dict[str, str] = {}
    if not reason:
        errors["reason"] = "Say why the stop was the customer's doing; the customer reads it."
    if ends_at <= starts_at:
        errors["ends_at"] = "The end must be after the start."
    if errors:
        raise ValidationError(errors)
    exclusion = StatusExclusion.objects.create(
        customer_id=asset.customer_id,
        asset=asset,
        starts_at=starts_at,
        ends_at=ends_at,
        cause=StopCause.CUSTOMER,
        reason=reason,
        created_by=actor,
    )
    audit_record(
        actor=actor,
        action="status_exclusion.marked",
        target=exclusion,
        data={
            "asset": str(asset.pk),
            "starts_at": starts_at.isoformat(),
            "ends_at": ends_at.isoformat(),
            "reason": reason,
        },
    )
    return exclusion


@transaction.atomic
def exclusion_remove(*, actor: User | None, exclusion: StatusExclusion) -> None:
    """Remove a mark; the audit entry keeps what it said."""
    audit_record(
        actor=actor,
        action="status_exclusion.removed",
        target=exclusion.asset,
        data={
            "exclusion": str(exclusion.pk),
            "starts_at": exclusion.starts_at.isoformat(),
            "ends_at": exclusion.ends_at.isoformat(),
            "reason": exclusion.reason,
        },
    )
    exclusion.delete()
