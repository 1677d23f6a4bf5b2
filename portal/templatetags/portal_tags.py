from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from django import template

from portal import formatting

register = template.Library()


@register.filter
def minutes(value: int | None) -> str:
    """SLA minutes as people say them: 45 min, 4 h, 1 d 6 h."""
    if value in (None, ""):
        return "—"
    total = int(value)
    days, rest = divmod(total, 24 * 60)
    hours, mins = divmod(rest, 60)
    parts = [f"{days} d" if days else "", f"{hours} h" if hours else "", f"{mins} min" if mins else ""]
    return " ".join(p for p in parts if p) or "0 min"


# Figures in the request's locale (portal.formatting); the same in static/js/format.js.


@register.filter
def money(value: Decimal | str | None, currency: str) -> str:
    """{{ invoice.total|money:invoice.currency }} → €11,539.38 (de-DE: 11.539,38 €)."""
    return formatting.money(value, currency)


@register.filter
def money_plain(value: Decimal | str | None, currency: str) -> str:
    """The amount at the currency's minor unit without its symbol (a column headed by it)."""
    return formatting.money_plain(value, currency)


@register.filter
def price(value: Decimal | str | None, currency: str) -> str:
    """A unit price or an exact tier amount: every decimal it has, at least the currency's."""
    return formatting.price(value, currency)


@register.filter
def number(value: Decimal | str | int | None, decimals: int = 0) -> str:
    """A plain count or figure with the locale's grouping: {{ packages|number }} → 1,200."""
    return formatting.number(value, int(decimals))


@register.filter
def quantity(value: Decimal | float | str | None, unit: str = "") -> str:
    """{{ line.quantity|quantity:"h" }} → 1,356.34 h."""
    return formatting.quantity(value, unit)


@register.filter
def reading(value: Decimal | float | str | None, unit: str = "") -> str:
    """A reading at its unit's precision, the unit shown apart: {{ 7.4|reading:"bar" }} → 7.40."""
    return formatting.reading(value, unit)


@register.filter
def percent(value: Decimal | str | None, decimals: int = formatting.PERCENT_DECIMALS) -> str:
    """A value in percent: {{ 99.5|percent }} → 99.5 %; {{ tax_rate_fraction|percent }} needs ×100 first."""
    return formatting.percent(value, int(decimals))


@register.filter
def rate_percent(value: Decimal | str | None) -> str:
    """A rate stored as a fraction, in percent: {{ invoice.tax_rate|rate_percent }} → 6.25 %."""
    if value is None or value == "":
        return ""
    return formatting.percent(Decimal(value) * 100)


@register.simple_tag
def format_spec() -> dict[str, object]:
    """The locale and unit table for static/js/format.js (put in the page with json_script)."""
    return formatting.js_spec()


# Dates and times in the request's time zone and locale (portal.formatting); the same in
# static/js/format.js (Fleetport.format.when / whenSeconds / day / dayWeekday).


@register.filter
def when(value: datetime | date | str | None) -> str:
    """{{ alarm.raised_at|when }} → Dec 7, 2026, 08:47 (de-DE: 7. Dez. 2026, 08:47)."""
    return formatting.when(value)


@register.filter
def when_seconds(value: datetime | date | str | None) -> str:
    """{{ asset.last_seen_at|when_seconds }} → Dec 7, 2026, 08:47:16."""
    return formatting.when_seconds(value)


@register.filter
def day(value: datetime | date | str | None) -> str:
    """{{ invoice.due_date|day }} → Dec 7, 2026 (de-DE: 7. Dez. 2026)."""
    return formatting.day(value)


@register.filter
def day_weekday(value: datetime | date | str | None) -> str:
    """{{ day|day_weekday }} → Mon, Dec 7, 2026 (de-DE: Mo., 7. Dez. 2026)."""
    return formatting.day_weekday(value)
