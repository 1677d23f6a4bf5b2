"""The fleet overview's table rows, written as one string (fleet/templates/fleet/overview.html).

The rows arrive as `fleet.selectors.overview_row` wrote them, every figure and date already in
the reader's locale and zone. Writing their ~25 cells each through Django's template engine was
a third of the page's CPU (a variable node, its look-ups and `localize` a cell; docs/performance.md,
S5): here each cell is escaped as `{{ … }}` escapes it (`html.escape`, quotes included) and put
in place. The markup is what the template's loop wrote, byte for byte; the live updates
(static/js/fleet-overview.js) and tests/fleet/test_overview_rows.py read it.
"""

from __future__ import annotations

from collections.abc import Iterable
from html import escape
from typing import Any

from django import template
from django.utils.safestring import SafeString, mark_safe

register = template.Library()


@register.simple_tag
def overview_rows(rows: Iterable[dict[str, Any]], staff: bool) -> SafeString:
    """The `<tr>`s of `rows`, with the customer column for staff."""
    return mark_safe("".join(_row(row, staff) for row in rows))  # noqa: S308 (every value escaped)


def _row(row: dict[str, Any], staff: bool) -> str:
    e = escape
    maintenance = _MAINTENANCE if row["in_maintenance"] else ""
    customer = f"<td>{e(row['customer'])}</td>" if staff else ""
    seen = f'<time datetime="{e(row["seen_iso"])}">{e(row["seen"])}</time>' if row["seen"] else "—"
    values = "".join(
        f'<span class="kv" data-metric="{e(v["code"])}"><small class="muted">{e(v["label"])}</small>'
        f" {e(v['text'])}</span> "
        for v in row["values"]
    )
    health = _health(row["health"]) if row["health"] else "—"
    alarms = f'<span class="badge badge-bad">{row["open_alarms"]}</span>' if row["open_alarms"] else "0"
    return (
        f'\n  <tr data-asset-id="{e(row["pk"])}" data-status="{e(row["status"])}"'
        f' data-gauges="{e(row["gauges"])}">'
        f'\n    <td><a href="{e(row["url"])}"><strong>{e(row["name"])}</strong></a>{maintenance}'
        f'<br><small class="muted">{e(row["serial_number"])} · {e(row["model"])}</small></td>'
        f"\n    {customer}"
        f"\n    <td>{e(row['site'])}</td>"
        f'\n    <td><span class="badge {e(row["status_badge"])}" data-field="status">'
        f"{e(row['status_label'])}</span></td>"
        f'\n    <td data-field="last-seen">{seen}</td>'
        f'\n    <td data-field="values">{values or "—"}</td>'
        f'\n    <td data-field="health">{health}</td>'
        f'\n    <td class="num" data-field="alarms">{alarms}</td>'
        "\n  </tr>\n  "
    )


_MAINTENANCE = ' <span class="badge badge-warn" data-maintenance>In maintenance</span>'


def _health(health: dict[str, Any]) -> str:
    score = health["score"]
    return (
        f'<span class="badge {escape(health["badge"])}" data-risk="{escape(health["risk"])}"'
        f' title="Health score {score} / 100">{escape(health["label"])} · {score}</span>'
    )
