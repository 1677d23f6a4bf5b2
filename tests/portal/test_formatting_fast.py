"""`formatting.number` writes figures itself rather than through Babel's `format_decimal` (whose
per-call symbol lookups were most of the fleet overview's rendering, docs/performance.md S5):
it must write exactly what Babel writes, in every locale Babel knows. Dates likewise use the
pattern Babel's `format_skeleton` matches, matched once per locale and skeleton."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from babel import localedata
from babel.dates import format_datetime, format_skeleton
from babel.numbers import format_decimal

from portal import formatting

VALUES = [
    "0",
    "-0.001",
    "0.5",
    "-7.4",
    "1.005",
    "12.345",
    "999.995",
    "1234.5",
    "-1234567.891",
    "1E+3",
    "100000000",
]


def test_number_writes_what_babel_writes_in_every_locale() -> None:
    for name in localedata.locale_identifiers():
        tag = name.replace("_", "-")
        locale = formatting._babel(tag)
        for decimals in (0, 1, 2, 3):
            pattern = "#,##0" + ("." + "0" * decimals if decimals else "")
            for raw in VALUES:
                exact = formatting._half_up(raw, decimals)
                expected = formatting._spaces(str(format_decimal(exact, format=pattern, locale=locale)))
                assert formatting.number(raw, decimals, tag) == expected, (tag, decimals, raw)


def test_a_float_reading_rounds_as_the_browser_does() -> None:
    assert formatting.reading(1.005, "bar") == "1.01"
    assert formatting.quantity(Decimal("1356.341257"), "h", "de-DE") == "1.356,34\u00a0h"


def test_dates_use_the_pattern_babel_matches_for_each_skeleton_in_every_locale() -> None:
    moment = datetime(2026, 12, 7, 7, 47, 16, tzinfo=UTC)
    for name in localedata.locale_identifiers():
        tag = name.replace("_", "-")
        locale = formatting._babel(tag)
        for skeleton in (
            formatting.DAY_SKELETON,
            formatting.WEEKDAY_SKELETON,
            *formatting.TIME_SKELETONS.values(),
        ):
            pattern = formatting._skeleton_pattern(tag, skeleton)
            assert format_datetime(moment, pattern, locale=locale) == format_skeleton(
                skeleton, moment, locale=locale
            )
