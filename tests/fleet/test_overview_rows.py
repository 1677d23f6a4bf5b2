"""What the overview's table shows for each asset, read back from the page as a structure and
compared with one built from the database here, cell by cell: the rows are read by one SQL
query and written once in `fleet.selectors.overview_row`, their markup by
`fleet.templatetags.overview_tags` (docs/performance.md, S5), and they must read as the template's
filters wrote them (`|when_seconds`, `|quantity`, `|date:'c'`, the badges), in the reader's
locale and zone, the staff's customer column included, and nothing of another customer."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from django.utils import timezone
from lxml import html

from fleet import windows
from fleet.models import (
    Alarm,
    AlarmState,
    Asset,
    AssetHealth,
    AssetModel,
    AssetStatus,
    MetricDefinition,
    RiskLevel,
)
from portal import formatting
from portal.models import Customer, User
from tests.conftest import client_for
from tests.factories import AssetFactory, SiteFactory

BADGES = {"online": "badge-ok", "warning": "badge-warn", "fault": "badge-bad", "never_seen": "badge-muted"}
RISKS = {"watch": "badge-warn", "critical": "badge-bad"}


def _model() -> AssetModel:
    """Four gauges (by code: a, b, c, d) and a counter: the values column shows the first three
    that have a value, `data-gauges` the first three whatever the values."""
    model = AssetModel.objects.create(code="overview-rows", name="Rows & Co", heartbeat_interval_seconds=60)
    for code, label, unit, kind in (
        ("a_flow", "Flow", "m³", "gauge"),
        ("b_pressure", "Pressure", "bar", "gauge"),
        ("c_temp", "Temperature", "°C", "gauge"),
        ("d_speed", "Speed", "rpm", "gauge"),
        ("run_hours", "Run hours", "h", "counter"),
    ):
        MetricDefinition.objects.create(asset_model=model, code=code, label=label, unit=unit, kind=kind)
    return model


def _fleet(customer: Customer, other: Customer, support: User) -> list[Asset]:
    model = _model()
    site = SiteFactory(customer=customer, name="Hall <1>")
    now = timezone.now().replace(microsecond=250_000)
    assets: list[Any] = [  # AssetFactory gives Assets
        AssetFactory(
            site=site, model=model, name="Pump <&> one", serial_number="R-1", status=AssetStatus.ONLINE,
            last_seen_at=now - timedelta(minutes=3),
            last_values={"b_pressure": 7.4, "c_temp": 1234.55, "d_speed": 1500.5, "run_hours": 12.5},
        ),
        AssetFactory(
            site=site, model=model, name="Fan two", serial_number="R-2", status=AssetStatus.NEVER_SEEN
        ),
        AssetFactory(
            site=site, model=model, name="Mixer three", serial_number="R-3", status=AssetStatus.FAULT,
            last_seen_at=now - timedelta(days=40), last_values={"a_flow": 0.005},
        ),
        AssetFactory(
            site=site, model=model, name="Press four", serial_number="R-4", status=AssetStatus.WARNING,
            last_seen_at=now, last_values={"run_hours": 3},
        ),
    ]  # fmt: skip
    AssetHealth.objects.create(
        customer=customer, asset=assets[0], score=61, risk=RiskLevel.WATCH, evaluated_at=now
    )
    AssetHealth.objects.create(
        customer=customer, asset=assets[2], score=7, risk=RiskLevel.CRITICAL, evaluated_at=now
    )
    for n, state in enumerate((AlarmState.RAISED, AlarmState.ACKNOWLEDGED, AlarmState.CLEARED)):
        Alarm.objects.create(
            customer=customer, asset=assets[2], kind="threshold", key=f"k{n}", severity="warning",
            message="hot", state=state, raised_at=now,
        )  # fmt: skip
    windows.window_open_emergency(
        actor=support, customer=customer, title="Leak", ends_at=now + timedelta(hours=2), assets=[assets[3]]
    )
    # Another customer's asset with the same model: never on this customer's page.
    AssetFactory(site=SiteFactory(customer=other), model=model, name="Foreign", serial_number="R-9")
    return assets


def _expected(asset: Asset, *, staff: bool, in_maintenance: bool) -> dict[str, Any]:
    """The row as the overview's template and filters wrote it before the rows were precomputed,
    from the database and `portal.formatting`."""
    gauges = list(asset.model.metrics.filter(kind="gauge").order_by("code"))
    seen = timezone.localtime(asset.last_seen_at) if asset.last_seen_at else None
    health = AssetHealth.objects.filter(asset=asset).first()
    alarms = Alarm.objects.filter(asset=asset, state__in=(AlarmState.RAISED, AlarmState.ACKNOWLEDGED)).count()
    cells: list[Any] = [
        {
            "href": f"/fleet/assets/{asset.pk}/",
            "name": asset.name,
            "maintenance": in_maintenance,
            "small": f"{asset.serial_number} · {asset.model.name}",
        }
    ]
    if staff:
        cells.append(asset.customer.name)
    cells += [
        asset.site.name,
        (BADGES[asset.status], asset.get_status_display()),
        (seen.isoformat(), formatting.when_seconds(seen)) if seen else "—",
        [
            (m.code, m.label, formatting.quantity(asset.last_values[m.code], m.unit))
            for m in gauges
            if m.code in asset.last_values
        ][:3]
        or "—",
        (
            RISKS[health.risk], health.risk, f"Health score {health.score} / 100",
            f"{health.get_risk_display()} · {health.score}",
        )
        if health
        else "—",
        str(alarms) if alarms else "0",
    ]  # fmt: skip
    return {
        "id": str(asset.pk),
        "status": asset.status,
        "gauges": json.loads(json.dumps([[m.code, m.label, m.unit] for m in gauges[:3]])),
        "cells": cells,
    }


def _shown(row: Any) -> dict[str, Any]:
    """A table row of the page as the same structure."""
    tds = row.findall("td")
    first = tds[0]
    link = first.find("a")
    cells: list[Any] = [
        {
            "href": link.get("href"),
            "name": link.findtext("strong"),
            "maintenance": first.find("span[@data-maintenance]") is not None,
            "small": first.findtext("small"),
        }
    ]
    for td in tds[1:]:
        field = td.get("data-field")
        badge = td.find("span[@data-field='status']")
        if badge is not None:
            cells.append((badge.get("class").removeprefix("badge "), badge.text))
        elif field == "last-seen":
            time = td.find("time")
            cells.append((time.get("datetime"), time.text) if time is not None else td.text_content())
        elif field == "values":
            values = [
                (
                    span.get("data-metric"),
                    label := span.findtext("small"),
                    span.text_content()[len(label) + 1 :],
                )
                for span in td.findall("span")
            ]
            cells.append(values or td.text_content())
        elif field == "health":
            badge = td.find("span")
            cells.append(
                (
                    badge.get("class").removeprefix("badge "),
                    badge.get("data-risk"),
                    badge.get("title"),
                    badge.text,
                )
                if badge is not None
                else td.text_content()
            )
        else:
            cells.append(td.text_content())
    return {
        "id": row.get("data-asset-id"),
        "status": row.get("data-status"),
        "gauges": json.loads(row.get("data-gauges")),
        "cells": cells,
    }


def _same(shown: list[dict[str, Any]], expected: list[dict[str, Any]]) -> None:
    """Row by row and cell by cell, so that a failure names the cell."""
    assert [row["id"] for row in shown] == [row["id"] for row in expected]
    for mine, theirs in zip(shown, expected, strict=True):
        assert {k: v for k, v in mine.items() if k != "cells"} == {
            k: v for k, v in theirs.items() if k != "cells"
        }
        for n, (cell, want) in enumerate(zip(mine["cells"], theirs["cells"], strict=True)):
            assert cell == want, (mine["id"], n)


def _table(user: User, query: str = "") -> list[dict[str, Any]]:
    response = client_for(user).get(f"/fleet/{query}")
    assert response.status_code == 200
    return [_shown(tr) for tr in html.fromstring(response.content).xpath("//tr[@data-asset-id]")]


def test_each_row_reads_as_the_filters_wrote_it_in_the_readers_locale_and_zone(
    customer_a: Customer, customer_b: Customer, viewer_a: User, support: User
) -> None:
    viewer_a.locale = "de-DE"
    viewer_a.save(update_fields=["locale"])
    assets = _fleet(customer_a, customer_b, support)
    shown = _table(viewer_a)

    with formatting.reader(locale="de-DE", time_zone=customer_a.time_zone):
        expected = [_expected(a, staff=False, in_maintenance=a is assets[3]) for a in assets]
    by_name = sorted(expected, key=lambda row: Asset.objects.get(pk=row["id"]).name)
    _same(shown, by_name)
    # The fixture reaches each branch: a value in another locale's digits, a never seen asset,
    # a row in maintenance, health and alarms, the first gauge missing from the values.
    assert any(cell == "—" for row in shown for cell in row["cells"])
    assert [row["cells"][0]["name"] for row in shown if row["cells"][0]["maintenance"]] == ["Press four"]
    pump = next(row for row in shown if row["id"] == str(assets[0].pk))
    assert pump["cells"][4] == [  # the first gauge has no value; German digits
        ("b_pressure", "Pressure", "7,40\u00a0bar"),
        ("c_temp", "Temperature", "1.234,6\u00a0°C"),
        ("d_speed", "Speed", "1.501\u00a0rpm"),
    ]


def test_staff_see_the_customer_column_and_every_customers_rows(
    customer_a: Customer, customer_b: Customer, support: User
) -> None:
    assets = _fleet(customer_a, customer_b, support)
    shown = {row["id"]: row for row in _table(support)}

    mine = shown[str(assets[0].pk)]
    with formatting.reader(locale=support.display_locale, time_zone=support.display_time_zone):
        _same([mine], [_expected(assets[0], staff=True, in_maintenance=False)])
    assert mine["cells"][1] == customer_a.name
    assert {row["cells"][0]["name"] for row in shown.values()} >= {"Foreign", "Pump <&> one"}


def test_a_customer_never_sees_another_customers_row_or_window(
    customer_a: Customer, customer_b: Customer, viewer_b: User, support: User
) -> None:
    _fleet(customer_a, customer_b, support)
    shown = _table(viewer_b)
    assert [row["cells"][0]["name"] for row in shown] == ["Foreign"]
    assert shown[0]["cells"][0]["maintenance"] is False  # A's window covers none of B's assets


def test_the_rows_come_in_the_order_asked_for_and_a_search_is_only_data(
    customer_a: Customer, customer_b: Customer, viewer_a: User, support: User
) -> None:
    """The page's rows are read by the ids of the filtered, ordered slice (fleet.selectors):
    they keep its order, and a search's characters never reach the SQL's text."""
    assets = _fleet(customer_a, customer_b, support)
    # Worst health first, never evaluated as 100, then by name: not the order of the names.
    shown = _table(viewer_a, "?sort=risk")
    with formatting.reader(locale=viewer_a.display_locale, time_zone=customer_a.time_zone):
        expected = [_expected(a, staff=False, in_maintenance=a is assets[3]) for a in assets]
    by_risk = [expected[n] for n in (2, 0, 1, 3)]  # Mixer 7, Pump 61, Fan and Press unevaluated
    _same(shown, by_risk)

    def names(query: str) -> list[str]:
        return [row["cells"][0]["name"] for row in _table(viewer_a, query)]

    assert names("?q=%3C%26%3E") == ["Pump <&> one"]  # q=<&>
    for text in ("%25", "%25s", "%7Bids%7D", "'", "R-%25"):  # %, %s, {ids}, a quote, R-%
        assert names(f"?q={text}") == [], text
    assert names("?q=R-&sort=risk&page=9") == ["Mixer three", "Pump <&> one", "Fan two", "Press four"]
