"""Dates and times as people read them (portal.formatting, docs/architecture.md "Figures"): in
the current time zone and locale, one style for every page; the browser side is compared string
for string in tests/browser/test_figures.py."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from django.template import Context, Template
from django.utils import timezone

from portal import formatting

MOMENT = datetime(2026, 12, 7, 7, 47, 16, tzinfo=UTC)


def test_a_moment_is_written_in_the_current_zone_and_locale() -> None:
    with timezone.override(ZoneInfo("Europe/Berlin")), formatting.override("de-DE"):
        assert formatting.when(MOMENT) == "7. Dez. 2026, 08:47"
        assert formatting.when_seconds(MOMENT) == "7. Dez. 2026, 08:47:16"
        assert formatting.day(MOMENT) == "7. Dez. 2026"
    with timezone.override(ZoneInfo("America/New_York")):
        assert formatting.when(MOMENT, "en") == "Dec 7, 2026, 02:47"
        assert formatting.when(MOMENT, "fr-FR") == "7 déc. 2026, 02:47"


def test_a_date_is_its_own_day_in_every_zone() -> None:
    with timezone.override(ZoneInfo("Pacific/Kiritimati")):
        assert formatting.day(date(2026, 12, 7)) == "Dec 7, 2026"
        assert formatting.when(date(2026, 12, 7)) == "Dec 7, 2026"  # no time of day to invent
        assert formatting.day("2026-12-07") == "Dec 7, 2026"
        assert formatting.day(datetime(2026, 12, 7, 23, tzinfo=UTC)) == "Dec 8, 2026"


def test_naive_strings_and_empty_values() -> None:
    with timezone.override(ZoneInfo("Europe/Berlin")):
        naive = datetime(2026, 7, 1, 12, 0)  # noqa: DTZ001 - what a naive value means
        assert formatting.when(naive) == "Jul 1, 2026, 14:00"  # UTC, as everything stored
        assert formatting.when_seconds("2026-07-01T12:00:05.5+00:00") == "Jul 1, 2026, 14:00:05"
        assert formatting.when(None) == ""
        assert formatting.day("") == ""


def test_the_filters_write_what_the_functions_write() -> None:
    template = Template(
        "{% load portal_tags %}{{ t|when }} | {{ t|when_seconds }} | {{ d|day }} | {{ n|when }}"
    )
    with timezone.override(ZoneInfo("Europe/Berlin")), formatting.override("en-GB"):
        text = template.render(Context({"t": MOMENT, "d": date(2027, 1, 1), "n": None}))
        spec = formatting.js_spec()
    assert text == "7 Dec 2026, 08:47 | 7 Dec 2026, 08:47:16 | 1 Jan 2027 | "
    assert spec["time_zone"] == "Europe/Berlin"
