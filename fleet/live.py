"""Live topics of the fleet: what a socket may subscribe to, checked like the pages check."""

from __future__ import annotations

import uuid
from typing import Any

from fleet.models import Asset
from portal import live
from portal.roles import Capability, can
from portal.validation import is_uuid


def resolve_asset_topic(user: Any, object_id: str) -> str | None:
    if (
        not is_uuid(object_id)
        or not can(user, Capability.VIEW_FLEET)
        or not Asset.objects.visible_to(user).filter(pk=object_id).exists()
    ):
        return None
    return live.asset_topic(uuid.UUID(object_id))  # one spelling: the publisher's
