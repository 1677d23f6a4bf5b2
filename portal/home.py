"""Home-page panels. Apps register providers in `AppConfig.ready()`, so `portal` never
imports them (dependencies flow towards portal, see docs/architecture.md)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from portal.models import User


@dataclass(frozen=True)
class Panel:
    title: str
    template: str
    context: dict[str, Any] = field(default_factory=dict)
    order: int = 100


PanelProvider = Callable[[User], Panel | None]
_providers: list[PanelProvider] = []


def register_panel(provider: PanelProvider) -> PanelProvider:
    if provider not in _providers:
        _providers.append(provider)
    return provider


def panels_for(user: User) -> list[Panel]:
    panels = [panel for provider in _providers if (panel := provider(user)) is not None]
    return sorted(panels, key=lambda p: p.order)
