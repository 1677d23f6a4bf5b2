"""The decimal fields billing stores money, prices and quantities in."""

from __future__ import annotations

from typing import Any

from django.db import models


def money_field(**options: Any) -> Any:
    """An amount in a currency: two decimals (every supported currency has a minor unit of 2)."""
    return models.DecimalField(max_digits=16, decimal_places=2, **options)


def price_field(**options: Any) -> Any:
    return models.DecimalField(max_digits=18, decimal_places=6, **options)


def quantity_field(**options: Any) -> Any:
    return models.DecimalField(max_digits=24, decimal_places=6, **options)
