"""Thresholds the customer owns: set and cleared by customer admins (audited), never looser than
the model's rule, shown on the asset page, used by the real ingest drain."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from hypothesis import given
from hypothesis import strategies as st

from fleet import thresholds
from fleet.ingest import worker
from fleet.ingest.state import model_rules
from fleet.models import Alarm, AlarmRule, AssetModel, AssetThreshold, IngestInbox
from portal.models import AuditEntry, User
from tests.conftest import client_for
from tests.fleet.conftest import Installed

T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)


@pytest.fixture
def hot_rule(compressor: AssetModel) -> AlarmRule:
    return AlarmRule.objects.create(
        asset_model=compressor, name="Too hot", metric="temp_c", comparison="gt",
        threshold=Decimal("95"), for_seconds=0, severity="critical",
    )  # fmt: skip


@pytest.fixture
def low_pressure(compressor: AssetModel) -> AlarmRule:
    return AlarmRule.objects.create(
        asset_model=compressor, name="Pressure low", metric="pressure_bar", comparison="lte",
        threshold=Decimal("6"), for_seconds=0, severity="warning",
    )  # fmt: skip


def url(installed: Installed, rule: AlarmRule | None = None) -> str:
    base = f"/api/v1/assets/{installed.asset.pk}/thresholds/"
    return base if rule is None else f"{base}{rule.pk}/"


def feed(installed: Installed, *readings: tuple[int, float], metric: str = "temp_c") -> None:
    """(seq, value) readings a second apart, through the real inbox and drain."""
    items = [
        {"seq": seq, "ts": (T0 + timedelta(seconds=seq)).isoformat(), "status": "ok", "fault_code": "",
         "metrics": {metric: value}}
        for seq, value in readings
    ]  # fmt: skip
    IngestInbox.objects.create(device_id=installed.device.pk, count=len(items), items=items)
    worker.drain()


def active(installed: Installed) -> list[Alarm]:
    return list(Alarm.objects.filter(asset=installed.asset, state__in=["raised", "acknowledged"]))


# ---------------------------------------------------------------------------------- the core


@given(
    comparison=st.sampled_from(["gt", "gte", "lt", "lte"]),
    model=st.decimals(min_value=-1000, max_value=1000, places=2),
    customer=st.decimals(min_value=-1000, max_value=1000, places=2),
    value=st.decimals(min_value=-1000, max_value=1000, places=2),
)
def test_the_effective_threshold_never_alarms_later_than_the_model(
    comparison: str, model: Decimal, customer: Decimal, value: Decimal
) -> None:
    limit = thresholds.effective(comparison, model, customer)
    assert thresholds.tighter_or_equal(comparison, model, limit)
    # Whatever the model's rule raises at, the effective threshold raises at too.
    if thresholds.holds(comparison, model, value):
        assert thresholds.holds(comparison, limit, value)
    if thresholds.tighter_or_equal(comparison, model, customer):
        assert limit == customer


@pytest.mark.parametrize(
    ("comparison", "ok", "refused"),
    [("gt", "94.5", "95.01"), ("gte", "95", "96"), ("lt", "95", "94"), ("lte", "100", "94.999")],
)
def test_check_takes_tighter_or_equal_only(comparison: str, ok: str, refused: str) -> None:
    rule = AlarmRule(comparison=comparison, threshold=Decimal("95"))
    assert thresholds.check(rule=rule, threshold=ok) == Decimal(ok)
    with pytest.raises(thresholds.ThresholdError, match="only be tightened"):
        thresholds.check(rule=rule, threshold=refused)


@pytest.mark.parametrize("bad", ["NaN", "Infinity", "-inf", "abc", "", "1.0000001", "1e20"])
def test_check_refuses_what_is_no_storable_number(bad: str) -> None:
    with pytest.raises(thresholds.ThresholdError):
        thresholds.check(rule=AlarmRule(comparison="gt", threshold=Decimal("95")), threshold=bad)


# ---------------------------------------------------------------------------------- the API


def test_a_customer_admin_sets_and_clears_audited(
    admin_a: User, viewer_a: User, fleet_a: Installed, hot_rule: AlarmRule
) -> None:
    client = client_for(admin_a)
    (row,) = client.get(url(fleet_a)).json()
    assert row == {
        "rule": str(hot_rule.pk), "name": "Too hot", "metric": "temp_c", "unit": "°C", "comparison": "gt",
        "severity": "critical", "for_seconds": 0, "model_threshold": "95.000000", "customer_threshold": None,
        "effective_threshold": "95.000000", "set_by": None, "updated_at": None,
    }  # fmt: skip

    answer = client.put(url(fleet_a, hot_rule), {"threshold": "85.5"}, content_type="application/json")
    assert answer.status_code == 200, answer.content
    body = answer.json()
    assert (body["customer_threshold"], body["effective_threshold"], body["set_by"]) == (
        "85.500000", "85.500000", admin_a.email,
    )  # fmt: skip
    client.put(url(fleet_a, hot_rule), {"threshold": "85.5"}, content_type="application/json")  # no change
    client.put(url(fleet_a, hot_rule), {"threshold": "80"}, content_type="application/json")
    assert client.get(url(fleet_a, hot_rule)).json()["customer_threshold"] == "80.000000"

    assert client.delete(url(fleet_a, hot_rule)).status_code == 204
    assert client.delete(url(fleet_a, hot_rule)).status_code == 204  # idempotent, audited once
    assert not AssetThreshold.objects.exists()

    entries = AuditEntry.objects.filter(action__startswith="threshold.").order_by("created_at")
    assert [(e.action, e.data["old"], e.data["new"], e.actor_id) for e in entries] == [
        ("threshold.set", None, "85.5", admin_a.pk),
        ("threshold.set", "85.5", "80", admin_a.pk),
        ("threshold.cleared", "80", None, admin_a.pk),
    ]
    assert {e.customer_id for e in entries} == {fleet_a.asset.customer_id}
    assert entries[0].data["model"] == "95"
    # A viewer sees the thresholds but may not change them.
    viewer = client_for(viewer_a)
    assert viewer.get(url(fleet_a)).status_code == 200
    assert (
        viewer.put(url(fleet_a, hot_rule), {"threshold": "80"}, content_type="application/json").status_code
        == 403
    )
    assert viewer.delete(url(fleet_a, hot_rule)).status_code == 403


def test_a_looser_value_is_a_field_error(
    admin_a: User, fleet_a: Installed, hot_rule: AlarmRule, low_pressure: AlarmRule
) -> None:
    client = client_for(admin_a)
    cases = [
        (hot_rule, {"threshold": "96"}, "The model allows at most 95: a threshold may only be tightened."),
        (
            low_pressure,
            {"threshold": "5.5"},
            "The model allows at least 6: a threshold may only be tightened.",
        ),
    ]
    for rule, body, message in cases:
        answer = client.put(url(fleet_a, rule), body, content_type="application/json")
        assert answer.status_code == 400
        assert answer.json()["errors"] == [{"field": "threshold", "message": message}]
    for body in (
        {"threshold": "NaN"},
        {"threshold": "Infinity"},
        {"threshold": "x"},
        {},
        {"threshold": "1.0000001"},
    ):
        answer = client.put(url(fleet_a, hot_rule), body, content_type="application/json")
        assert answer.status_code == 400, body
        assert answer.json()["errors"][0]["field"] == "threshold"
    assert (
        client.put(
            url(fleet_a, low_pressure), {"threshold": "6.5"}, content_type="application/json"
        ).status_code
        == 200
    )
    assert not AuditEntry.objects.filter(action="threshold.set", data__new="96").exists()


def test_another_customers_asset_or_a_foreign_rule_is_404(
    admin_a: User, admin_b: User, fleet_a: Installed, fleet_b: Installed, hot_rule: AlarmRule
) -> None:
    other_model = AssetModel.objects.create(code="other", name="Other", heartbeat_interval_seconds=60)
    foreign_rule = AlarmRule.objects.create(
        asset_model=other_model, name="x", metric="temp_c", comparison="gt", threshold=Decimal("1")
    )
    inactive = AlarmRule.objects.create(
        asset_model=hot_rule.asset_model, name="off", metric="temp_c", comparison="gt",
        threshold=Decimal("1"), is_active=False,
    )  # fmt: skip
    b = client_for(admin_b)
    put = {"data": {"threshold": "80"}, "content_type": "application/json"}
    assert b.get(url(fleet_a)).status_code == 404
    assert b.get(url(fleet_a, hot_rule)).status_code == 404
    assert b.put(url(fleet_a, hot_rule), **put).status_code == 404
    assert b.delete(url(fleet_a, hot_rule)).status_code == 404
    assert (
        b.post(f"/fleet/assets/{fleet_a.asset.pk}/thresholds/{hot_rule.pk}/", {"threshold": "80"}).status_code
        == 404
    )
    a = client_for(admin_a)
    for rule in (foreign_rule, inactive):
        assert a.put(url(fleet_a, rule), **put).status_code == 404
        assert a.get(f"/fleet/assets/{fleet_a.asset.pk}/thresholds/{rule.pk}/").status_code == 404
    assert not AssetThreshold.objects.exists()
    assert [r["rule"] for r in a.get(url(fleet_a)).json()] == [str(hot_rule.pk)]


def test_an_operator_may_tune_support_may_not(
    operator: User, support: User, fleet_a: Installed, hot_rule: AlarmRule
) -> None:
    put = {"data": {"threshold": "90"}, "content_type": "application/json"}
    assert client_for(support).get(url(fleet_a)).status_code == 200
    assert client_for(support).put(url(fleet_a, hot_rule), **put).status_code == 403
    assert client_for(operator).put(url(fleet_a, hot_rule), **put).status_code == 200
    assert AssetThreshold.objects.get().customer_id == fleet_a.asset.customer_id


# ---------------------------------------------------------------------------------- the pages


def test_the_asset_page_shows_model_and_own_thresholds(
    admin_a: User, viewer_a: User, fleet_a: Installed, hot_rule: AlarmRule
) -> None:
    thresholds.threshold_set(asset=fleet_a.asset, rule=hot_rule, threshold=Decimal("85.25"), actor=admin_a)
    page = client_for(viewer_a).get(f"/fleet/assets/{fleet_a.asset.pk}/").content.decode()
    assert "Alarm thresholds" in page
    assert "Model: 95.0\u00a0°C" in page
    assert "this asset: 85.25\u00a0°C" in page
    assert 'name="threshold"' not in page  # a viewer gets no form
    page = client_for(admin_a).get(f"/fleet/assets/{fleet_a.asset.pk}/").content.decode()
    assert f'action="/fleet/assets/{fleet_a.asset.pk}/thresholds/{hot_rule.pk}/"' in page


def test_the_page_form_sets_refuses_with_a_field_error_and_clears(
    admin_a: User, viewer_a: User, fleet_a: Installed, hot_rule: AlarmRule
) -> None:
    client = client_for(admin_a)
    page = f"/fleet/assets/{fleet_a.asset.pk}/thresholds/{hot_rule.pk}/"
    answer = client.post(page, {"threshold": "99"})
    assert answer.status_code == 400
    html = answer.content.decode()
    assert 'class="field field-invalid"' in html
    assert "The model allows at most 95: a threshold may only be tightened." in html
    assert not AssetThreshold.objects.exists()

    answer = client.post(page, {"threshold": "88"})
    assert answer.status_code == 302
    assert AssetThreshold.objects.get().threshold == Decimal("88")
    assert client.post(page, {"clear": "1"}).status_code == 302
    assert not AssetThreshold.objects.exists()
    assert AuditEntry.objects.filter(action__startswith="threshold.").count() == 2
    assert client_for(viewer_a).post(page, {"threshold": "80"}).status_code == 403
    assert client_for(viewer_a).get(page).status_code == 200


# ---------------------------------------------------------------------------------- ingest


def test_the_drain_raises_at_the_customers_threshold_not_below(
    admin_a: User, fleet_a: Installed, fleet_b: Installed, hot_rule: AlarmRule
) -> None:
    thresholds.threshold_set(asset=fleet_a.asset, rule=hot_rule, threshold=Decimal("85"), actor=admin_a)
    feed(fleet_a, (1, 85.0))
    feed(fleet_b, (1, 85.0), (2, 90.0))
    assert active(fleet_a) == []  # gt 85: 85 is not above it
    assert active(fleet_b) == []  # B has no own threshold: the model's 95 applies
    feed(fleet_a, (2, 85.5))
    (alarm,) = active(fleet_a)
    assert alarm.value == Decimal("85.5")
    assert "(> 85.000000, the asset's own)" in alarm.message
    feed(fleet_b, (3, 95.5))
    assert len(active(fleet_b)) == 1  # the model's rule still applies where none is set
    feed(fleet_a, (3, 84.0))
    assert active(fleet_a) == []  # cleared below the asset's own threshold


def test_a_change_reaches_the_worker_at_once_in_process_and_within_the_ttl_elsewhere(
    admin_a: User, fleet_a: Installed, hot_rule: AlarmRule
) -> None:
    feed(fleet_a, (1, 90.0))
    assert active(fleet_a) == []
    # The service's save clears this process's copy (the signal): the next batch uses it.
    thresholds.threshold_set(asset=fleet_a.asset, rule=hot_rule, threshold=Decimal("88"), actor=admin_a)
    feed(fleet_a, (2, 90.0))
    assert len(active(fleet_a)) == 1
    thresholds.threshold_clear(asset=fleet_a.asset, rule=hot_rule, actor=admin_a)
    feed(fleet_a, (3, 90.0))
    assert active(fleet_a) == []

    # A change no signal announces (another process's, or a queryset write) is seen once the
    # copy is older than its TTL.
    model_rules.read({fleet_a.asset.model_id})
    AssetThreshold.objects.bulk_create(
        [
            AssetThreshold(
                customer=fleet_a.asset.customer, asset=fleet_a.asset, rule=hot_rule, threshold=Decimal("80")
            )
        ]
    )
    feed(fleet_a, (4, 90.0))
    assert active(fleet_a) == []  # the copy is fresh: the old thresholds still apply
    for model_id in list(model_rules._read_at):
        model_rules._read_at[model_id] -= model_rules.TTL + 0.1  # as if 2 s had passed
    feed(fleet_a, (5, 90.0))
    assert len(active(fleet_a)) == 1


def test_thresholds_cost_the_batch_no_query(
    admin_a: User, fleet_a: Installed, fleet_b: Installed, hot_rule: AlarmRule
) -> None:
    thresholds.threshold_set(asset=fleet_a.asset, rule=hot_rule, threshold=Decimal("85"), actor=admin_a)
    feed(fleet_a, (1, 70.0))
    feed(fleet_b, (1, 70.0))

    def queries_of_a_batch(installed: Installed, seq: int) -> int:
        IngestInbox.objects.create(
            device_id=installed.device.pk, count=1,
            items=[{"seq": seq, "ts": (T0 + timedelta(seconds=seq)).isoformat(), "status": "ok",
                    "fault_code": "", "metrics": {"temp_c": 70.0}}],
        )  # fmt: skip
        with CaptureQueriesContext(connection) as queries:
            worker.process_batch()
        return len(queries)

    # An asset with its own thresholds costs its batch what one without does.
    assert queries_of_a_batch(fleet_a, 2) == queries_of_a_batch(fleet_b, 2)


def _rows(installed: Installed) -> Any:
    return thresholds.threshold_rows(asset=installed.asset)


def test_rows_show_a_customer_value_a_later_model_change_made_looser(
    admin_a: User, fleet_a: Installed, hot_rule: AlarmRule
) -> None:
    thresholds.threshold_set(asset=fleet_a.asset, rule=hot_rule, threshold=Decimal("90"), actor=admin_a)
    hot_rule.threshold = Decimal("80")
    hot_rule.save()
    (row,) = _rows(fleet_a)
    assert (row.customer_threshold, row.effective_threshold, row.tightened) == (
        Decimal("90"),
        Decimal("80"),
        False,
    )
    feed(fleet_a, (1, 85.0))
    assert len(active(fleet_a)) == 1  # the model's (now tighter) rule wins
