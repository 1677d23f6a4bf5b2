"""Money arithmetic: `Decimal` only, rounded per line to the currency's minor unit, HALF_UP.

Every money path runs inside `money_context()`, a decimal context that traps
`FloatOperation`: a float that reaches a `Decimal` constructor or comparison there raises
instead of silently carrying binary rounding error into an invoice.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from decimal import ROUND_HALF_UP, Context, Decimal, FloatOperation, localcontext

# ISO 4217 minor units of the currencies a customer may be billed in.
MINOR_UNITS = {"EUR": 2, "USD": 2, "GBP": 2, "CHF": 2, "SEK": 2}
ZERO = Decimal("0")


def _context() -> Context:
    context = Context(prec=34, rounding=ROUND_HALF_UP)
    context.traps[FloatOperation] = True
    return context


@contextlib.contextmanager
def money_context() -> Iterator[Context]:
    """A decimal context for money: 34 digits, HALF_UP, floats refused."""
    with localcontext(_context()) as context:
        yield context


def as_decimal(value: Decimal | int | str) -> Decimal:
    """`value` as a Decimal; a float is refused (TypeError), whatever the context."""
    if isinstance(value, (bool, float)):
        raise TypeError(f"money and quantities are Decimal, never float (got {value!r})")
    if isinstance(value, Decimal):
        return value
    if isinstance(value, int | str):
        return Decimal(value)
    raise TypeError(f"not a decimal amount: {value!r}")


def quantum(currency: str) -> Decimal:
    return Decimal(1).scaleb(-MINOR_UNITS.get(currency, 2))


def round_money(amount: Decimal, currency: str) -> Decimal:
    """`amount` rounded to the currency's minor unit, half away from zero."""
    return as_decimal(amount).quantize(quantum(currency), rounding=ROUND_HALF_UP)
