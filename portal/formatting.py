"""How figures read: money at its currency's minor unit, quantities at their unit's precision,
percentages, dates and times in the reader's time zone, all in the reader's locale (Babel's
CLDR data). One layer for pages, PDFs, e-mails
and CSVs; `static/js/format.js` does the same in the browser with `Intl` and the unit table
below (docs/architecture.md, "Figures").

    with formatting.override("de-DE"):
        formatting.money(Decimal("11539.38"), "EUR")     # '11.539,38 €'
        formatting.quantity(Decimal("1356.341257"), "h")  # '1.356,34 h'
        formatting.when(datetime(2026, 12, 7, 7, 47, tzinfo=UTC))  # '7. Dez. 2026, 08:47' (Berlin)

The request's locale is the user's (`User.display_locale`), set by
`portal.middleware.UserTimezoneMiddleware`; a task that writes for one reader (an e-mail to a
user, a PDF for a customer) renders inside `reader(locale=…, time_zone=…)`, which sets both
(docs/architecture.md, "Figures": what each document and e-mail uses).
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import re
import unicodedata
import zoneinfo
from collections.abc import Iterator
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from babel import Locale, UnknownLocaleError
from babel.dates import format_datetime, match_skeleton
from babel.numbers import (
    format_currency,
    format_decimal,
    get_currency_precision,
    get_currency_symbol,
    get_decimal_symbol,
    get_group_symbol,
)
from django.core.exceptions import ValidationError
from django.utils import timezone

DEFAULT_LOCALE = "en"

# Decimals a quantity is written (and billed, docs/billing.md) with, per metric unit. A unit not
# listed gets DEFAULT_DECIMALS. The browser receives the same table (`unit_decimals_json`).
UNIT_DECIMALS: dict[str, int] = {
    "h": 2,
    "kWh": 1,
    "MWh": 3,
    "m³": 2,
    "m3": 2,
    "L": 1,
    "l": 1,
    "cycles": 0,
    "starts": 0,
    "pcs": 0,
    "days": 0,
    "%": 1,
    "°C": 1,
    "bar": 2,
    "mm/s": 2,
    "rpm": 0,
    "kW": 1,
    "A": 1,
    "V": 0,
}
DEFAULT_DECIMALS = 2
PERCENT_DECIMALS = 2  # uptime 99.95 %: two decimals tell 21 minutes a month apart

_current: contextvars.ContextVar[str] = contextvars.ContextVar("fleetport_locale", default=DEFAULT_LOCALE)


def validate_locale(value: str) -> None:
    """A locale Babel knows, written as a BCP 47 tag (de-DE) or with an underscore (de_DE)."""
    try:
        Locale.parse(value.replace("-", "_"))
    except (UnknownLocaleError, ValueError):
        raise ValidationError(f"{value!r} is not a known locale (e.g. en, en-GB, de-DE, fr-FR).") from None


@functools.lru_cache(maxsize=64)
def _babel(tag: str | None) -> Locale:
    """The parsed locale, kept: parsing it (and each lookup Babel makes in it) costs more than
    the figure itself on a table of 150 figures (docs/performance.md, S5)."""
    try:
        return Locale.parse((tag or DEFAULT_LOCALE).replace("-", "_"))
    except (UnknownLocaleError, ValueError):
        return Locale.parse(DEFAULT_LOCALE)


@functools.lru_cache(maxsize=64)
def _symbols(tag: str | None) -> tuple[str, str]:
    """The locale's decimal and group symbols (Latin digits, as `format_decimal` by default)."""
    locale = _babel(tag)
    return str(get_decimal_symbol(locale)), str(get_group_symbol(locale))


def current() -> str:
    return _current.get()


@contextlib.contextmanager
def override(tag: str | None) -> Iterator[str]:
    """Format in `tag` inside the block (a task rendering for a customer)."""
    token = _current.set(tag or DEFAULT_LOCALE)
    try:
        yield _current.get()
    finally:
        _current.reset(token)


def zone(name: str | None) -> zoneinfo.ZoneInfo:
    """The zone called `name`; UTC for none or one this tzdata does not know (as the middleware)."""
    try:
        return zoneinfo.ZoneInfo(name or "UTC")
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return zoneinfo.ZoneInfo("UTC")


@contextlib.contextmanager
def reader(*, locale: str | None, time_zone: str | None) -> Iterator[zoneinfo.ZoneInfo]:
    """Write as one reader reads, outside a request: figures in `locale`, moments in
    `time_zone` (`when`, `day` and the template filters alike). Yields the zone. Set per
    reader: an e-mail to several people renders once inside each one's block."""
    tz = zone(time_zone)
    with timezone.override(tz), override(locale):
        yield tz


def minor_digits(currency: str) -> int:
    return int(get_currency_precision(currency))


# Babel and the browser's ICU do not always agree on which no-break space a locale uses
# (fr-FR groups with U+202F in one CLDR version and U+00A0 in another). Every figure is written
# with U+00A0 wherever the locale puts a space; `static/js/format.js` applies the same rule.
_SPACES = str.maketrans({"\u202f": "\u00a0", "\u2009": "\u00a0", " ": "\u00a0"})


def _spaces(text: str) -> str:
    return text.translate(_SPACES)


def _half_up(value: Decimal | int | float | str, decimals: int) -> Decimal:
    """`value` at `decimals` decimals, half away from zero (Babel alone would round half-even,
    the browser's Intl half away from zero: rounding first makes both write the same). A float
    (a reading from JSON) is taken as its shortest repr, the digits JavaScript's String() gives
    the browser: 1.005 rounds to 1.01 on both sides, not to 1.00 as its binary value would."""
    exact = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    return exact.quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP)


def _empty(value: object) -> bool:
    return value is None or value == ""


def money(amount: Decimal | int | str | None, currency: str, tag: str | None = None) -> str:
    """`amount` at the currency's minor unit with its symbol, in the locale's way."""
    if _empty(amount):
        return ""
    assert amount is not None
    exact = _half_up(amount, minor_digits(currency))
    locale = _babel(tag or current())
    text = _spaces(str(format_currency(exact, currency, locale=locale)))
    return _currency_spacing(text, str(get_currency_symbol(currency, locale=locale)))


def _currency_spacing(text: str, symbol: str) -> str:
    """CLDR's currency spacing, which ICU (the browser) applies and Babel does not: a symbol
    that does not end (or start) with a symbol character is kept apart from the digits by a
    no-break space: CHF\u00a01,234.00, not CHF1,234.00 (while €1,234.00 stays as it is)."""
    at = text.find(symbol)
    if not symbol or at < 0:
        return text
    before, after = text[:at], text[at + len(symbol) :]
    if after[:1].isdigit() and unicodedata.category(symbol[-1])[0] != "S":
        after = "\u00a0" + after
    if before[-1:].isdigit() and unicodedata.category(symbol[0])[0] != "S":
        before = before + "\u00a0"
    return before + symbol + after


def money_plain(amount: Decimal | int | str | None, currency: str, tag: str | None = None) -> str:
    """`amount` at the currency's minor unit without the symbol (table columns headed by it)."""
    if _empty(amount):
        return ""
    return number(amount, minor_digits(currency), tag)


def price_decimals(value: Decimal | int | str, currency: str) -> int:
    """A unit price's decimals: the currency's minor unit, more when the price has more
    (0.185 EUR/kWh stays 0.185, 4.5 reads 4.50), at most MAX_PRICE_DECIMALS."""
    exponent = Decimal(value).normalize().as_tuple().exponent
    own = -exponent if isinstance(exponent, int) and exponent < 0 else 0
    return min(max(minor_digits(currency), own), MAX_PRICE_DECIMALS)


MAX_PRICE_DECIMALS = 6  # the precision prices are stored with (billing.models.fields)


def price(value: Decimal | int | str | None, currency: str, tag: str | None = None) -> str:
    """A unit price or an exact (unrounded) tier amount, without the symbol: every decimal it
    has, and at least the currency's: 0.185, 4.50, 1,200.00."""
    if _empty(value):
        return ""
    assert value is not None
    return number(value, price_decimals(value, currency), tag)


def decimals_for(unit: str | None) -> int:
    return UNIT_DECIMALS.get((unit or "").strip(), DEFAULT_DECIMALS)


def round_quantity(value: Decimal, unit: str | None) -> Decimal:
    """`value` at its unit's precision, half up: the quantity an invoice bills and shows."""
    return value.quantize(Decimal(1).scaleb(-decimals_for(unit)), rounding=ROUND_HALF_UP)


def number(value: Decimal | int | float | str | None, decimals: int, tag: str | None = None) -> str:
    """`value` with exactly `decimals` decimals (half up) and the locale's grouping."""
    if _empty(value):
        return ""
    assert value is not None
    return _spaces(_fixed(_half_up(value, decimals), decimals, tag or current()))


def _fixed(exact: Decimal, decimals: int, tag: str) -> str:
    """What Babel's `format_decimal(exact, format="#,##0.00…", decimal_quantization=True)` writes
    (tests/portal/test_formatting_fast.py holds the two equal for every locale), without its
    per-call lookups of the locale's symbols: a figure in 2 µs rather than 40."""
    decimal_symbol, group_symbol = _symbols(tag)
    digits = f"{abs(exact):,.{decimals}f}"  # grouped by three, as the pattern's #,##0
    integer, _, fraction = digits.partition(".")
    text = integer.replace(",", group_symbol) + (decimal_symbol + fraction if decimals > 0 else "")
    if exact.is_signed():
        text = "-" + text
    return re.sub(r"'([^']*)'", lambda m: m.group(1) or "'", text) if "'" in text else text


def quantity(value: Decimal | int | float | str | None, unit: str | None = "", tag: str | None = None) -> str:
    """`value` at its unit's precision, followed by the unit: 1,356.34 h."""
    if _empty(value):
        return ""
    text = reading(value, unit, tag)
    return f"{text}\u00a0{unit}" if unit else text


def reading(value: Decimal | int | float | str | None, unit: str | None = "", tag: str | None = None) -> str:
    """`value` at its unit's precision without the unit (a tile that shows the unit apart):
    a pressure of 7.4 bar reads 7.40, the same before and after a live update."""
    return number(value, decimals_for(unit), tag)


def percent(
    value: Decimal | int | str | None, decimals: int = PERCENT_DECIMALS, tag: str | None = None
) -> str:
    """A value already in percent (99.5 means 99.5 %), trailing zeros dropped: 99.5 %, 100 %."""
    if _empty(value):
        return ""
    assert value is not None
    exact = _half_up(value, decimals)
    pattern = "#,##0" + ("." + "#" * decimals if decimals > 0 else "")
    text = format_decimal(exact, format=pattern, locale=_babel(tag or current()), decimal_quantization=True)
    return f"{_spaces(str(text))}\u00a0%"


# Dates and times: CLDR skeletons, which the browser's Intl.DateTimeFormat resolves to the same
# patterns (its options {year: "numeric", month: "short", day: "numeric"} are the skeleton yMMMd,
# {hour: "2-digit", minute: "2-digit", hourCycle: "h23"} is Hm). A date with a time joins the two
# with the locale's medium date-time pattern, as ICU does for an abbreviated month:
# en "Dec 7, 2026, 08:47", de-DE "7. Dez. 2026, 08:47", fr-FR "7 déc. 2026, 08:47".
DAY_SKELETON = "yMMMd"
WEEKDAY_SKELETON = "yMMMEd"  # {weekday: "short", ...}: Mon, Dec 7, 2026 (a calendar's days)
TIME_SKELETONS = {"minutes": "Hm", "seconds": "Hms"}


def _moment(value: datetime | date | str) -> datetime | date:
    """A datetime (made aware, in the current time zone) or a date; an ISO string is parsed."""
    if isinstance(value, str):
        text = value.strip()
        value = date.fromisoformat(text) if len(text) == 10 else datetime.fromisoformat(text)
    if isinstance(value, datetime):
        if timezone.is_naive(value):  # a naive datetime is UTC, as every stored one is
            value = value.replace(tzinfo=timezone.get_fixed_timezone(0))
        return timezone.localtime(value)
    return value


# The locale's narrow and thin spaces become U+00A0 (as in figures: Babel and ICU disagree on
# them); ordinary spaces stay, so a date may wrap between its day and its time.
_DATE_SPACES = str.maketrans({"\u202f": "\u00a0", "\u2009": "\u00a0"})


def _when(
    value: datetime | date | str | None, precision: str | None, tag: str | None, skeleton: str = DAY_SKELETON
) -> str:
    if _empty(value):
        return ""
    assert value is not None
    moment = _moment(value)
    tag = tag or current()
    locale = _babel(tag)
    text = str(format_datetime(moment, _skeleton_pattern(tag, skeleton), locale=locale))
    if precision and isinstance(moment, datetime):  # a date has no time of day to show
        time_text = str(
            format_datetime(moment, _skeleton_pattern(tag, TIME_SKELETONS[precision]), locale=locale)
        )
        text = str(locale.datetime_formats["medium"]).replace("{1}", text).replace("{0}", time_text)
    return text.translate(_DATE_SPACES)


@functools.lru_cache(maxsize=256)
def _skeleton_pattern(tag: str, skeleton: str) -> str:
    """The locale's pattern for `skeleton`, matched once rather than per moment (Babel's
    `format_skeleton` matches it on every call)."""
    skeletons = _babel(tag).datetime_skeletons
    if skeleton not in skeletons:
        skeleton = match_skeleton(skeleton, skeletons) or skeleton
    return str(skeletons[skeleton])


def when(value: datetime | date | str | None, tag: str | None = None) -> str:
    """A moment to the minute in the current time zone: Dec 7, 2026, 08:47."""
    return _when(value, "minutes", tag)


def when_seconds(value: datetime | date | str | None, tag: str | None = None) -> str:
    """A moment to the second (a last heartbeat, an event): Dec 7, 2026, 08:47:16."""
    return _when(value, "seconds", tag)


def day(value: datetime | date | str | None, tag: str | None = None) -> str:
    """A date, or a moment's date in the current time zone: Dec 7, 2026."""
    return _when(value, None, tag)


def day_weekday(value: datetime | date | str | None, tag: str | None = None) -> str:
    """A date with its weekday (a calendar's day): Mon, Dec 7, 2026 (de-DE: Mo., 7. Dez. 2026)."""
    return _when(value, None, tag, WEEKDAY_SKELETON)


def js_spec() -> dict[str, Any]:
    """What `static/js/format.js` needs to write figures and dates as this module does."""
    return {
        "locale": current(),
        "time_zone": timezone.get_current_timezone_name(),
        "unit_decimals": UNIT_DECIMALS,
        "default_decimals": DEFAULT_DECIMALS,
        "percent_decimals": PERCENT_DECIMALS,
        "max_price_decimals": MAX_PRICE_DECIMALS,
    }
