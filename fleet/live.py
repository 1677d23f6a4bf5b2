"""Live topics of the fleet: what a socket may subscribe to, checked like the pages check."""

from __future__ import annotations

import uuid
from typing import Any

from fleet.models import Asset
from portal import live
from portal.roles import Capability, can


def asset_topic(user: Any, object_id: str) -> str | None:
    try:
        uuid.UUID(object_id)
    except ValueError:
        return None
    if (
        not can(user, Capability.VIEW_FLEET)
        or not Asset.objects.visible_to(user).filter(pk=object_id).exists()
    ):
        return None
    return live.asset_group(object_id)
