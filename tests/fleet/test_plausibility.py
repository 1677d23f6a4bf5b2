"""Counter plausibility (docs/billing.md, "Implausible counter readings"): a reading beyond its
metric's bound is stored, flagged, raises a data-quality alarm and adds nothing until staff
accept it; usage stays a function of the set of readings (and decisions), whatever the order."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.utils import timezone
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from fleet import services
from fleet.ingest import worker
from fleet.models import (
    ACTIVE_ALARM_STATES,
    Alarm,
    AlarmKind,
    AssetModel,
    Heartbeat,
    HourlyUsage,
    ImplausibleReading,
    IngestInbox,
    MetricDefinition,
)
from fleet.usage import Judgement, Reading, as_decimal, fold, usage_truth
from portal.models import AuditEntry, Customer, User
from tests.conftest import client_for
from tests.fleet_fixtures import Installed, deliver_shuffled, install

HOUR = timedelta(hours=1)
T0 = timezone.now().replace(minute=0, second=0, microsecond=0) - timedelta(days=2)
BOUND = Decimal("1.5")  # run hours: at most 1.5 an hour (one an hour, and slack for clocks)


def item(seq: int, ts: datetime, **metrics: float) -> dict[str, Any]:
    return {
        "seq": seq,
        "ts": ts.astimezone(UTC).isoformat(),
        "status": "ok",
        "fault_code": "",
        "metrics": metrics,
    }


def deliver(installed: Installed, items: list[dict[str, Any]]) -> None:
    IngestInbox.objects.create(device_id=installed.device.pk, count=len(items), items=items)
    worker.drain()


def glitch() -> list[dict[str, Any]]:
    """A run-hours counter at 100 that reports 9e14 once, then 100.9 an hour after 100."""
    return [
        item(0, T0, run_hours=100.0),
        item(1, T0 + HOUR / 2, run_hours=9e14),
        item(2, T0 + HOUR, run_hours=100.9),
    ]


def usage_of(installed: Installed) -> dict[datetime, Decimal]:
    rows = HourlyUsage.objects.filter(asset=installed.asset, metric="run_hours")
    return {u.hour: u.quantity for u in rows if u.quantity}


def total(installed: Installed) -> Decimal:
    return sum(usage_of(installed).values(), Decimal(0))


@pytest.fixture
def bounded(compressor: AssetModel) -> AssetModel:
    MetricDefinition.objects.filter(asset_model=compressor, code="run_hours").update(max_rate_per_hour=BOUND)
    from fleet.ingest.state import model_rules

    model_rules.clear()
    return compressor


@pytest.fixture
def meter(customer_a: Customer, bounded: AssetModel) -> Installed:
    return install(customer_a, bounded, f"P-{uuid.uuid4().hex[:10]}")


def data_quality_alarm(installed: Installed) -> Alarm | None:
    return Alarm.objects.filter(
        asset=installed.asset, kind=AlarmKind.DATA_QUALITY, state__in=ACTIVE_ALARM_STATES
    ).first()


# --- the pure core -----------------------------------------------------------------------------


def test_a_glitch_between_two_good_readings_adds_only_their_difference() -> None:
    history = [(0, 100, T0), (1, 9e14, T0 + HOUR / 2), (2, 100.9, T0 + HOUR)]
    assert usage_truth(history) == {T0: Decimal("899999999999900"), T0 + HOUR: Decimal("100.9")}  # a "reset"
    assert usage_truth(history, BOUND) == {T0: Decimal(0), T0 + HOUR: Decimal("0.9")}
    # Accepted, it counts as a reading like any other and is the next one's baseline: the drop
    # to 100.9 is then a reset of 100.9 in half an hour, beyond the bound in its turn.
    assert usage_truth(history, BOUND, {1: Judgement.ACCEPTED}) == {T0: Decimal("899999999999900")}
    both = {1: Judgement.ACCEPTED, 2: Judgement.ACCEPTED}
    assert usage_truth(history, BOUND, both) == usage_truth(history)


def test_the_bound_allows_at_least_a_minutes_worth() -> None:
    # Two readings a second apart may differ by a minute's worth of the bound: 1.5/60 = 0.025.
    near = [(0, 10, T0), (1, "10.025", T0 + timedelta(seconds=1)), (2, "10.060", T0 + timedelta(seconds=2))]
    assert usage_truth(near, BOUND) == {T0: Decimal("0.025")}


steps = st.lists(
    st.tuples(
        st.sampled_from(["up", "up", "up", "reset", "spike"]),
        st.decimals(min_value=0, max_value=3, places=3, allow_nan=False, allow_infinity=False),
        st.integers(min_value=1, max_value=180),  # minutes to the next reading
    ),
    min_size=1,
    max_size=30,
)


def history_of(plan: list[tuple[str, Decimal, int]]) -> list[tuple[int, Decimal, datetime]]:
    """A counter that rises, resets now and then, and sometimes reports a wild value once."""
    history: list[tuple[int, Decimal, datetime]] = []
    value, ts = Decimal("1000"), T0
    for seq, (kind, amount, minutes) in enumerate(plan):
        if kind == "spike":
            history.append((seq, Decimal("9e14") + amount, ts))
        else:
            value = amount if kind == "reset" else value + amount
            history.append((seq, value, ts))
        ts += timedelta(minutes=minutes)
    return history


def by_hour(folded: list[Any]) -> dict[datetime, Decimal]:
    totals: dict[datetime, Decimal] = {}
    for f in folded:
        totals[f.reading.hour] = totals.get(f.reading.hour, Decimal(0)) + f.usage
    return {h: q for h, q in totals.items() if q}


@settings(max_examples=200, deadline=None)
@given(plan=steps, bound=st.sampled_from([None, Decimal("0.5"), Decimal("1.5"), Decimal("4")]))
def test_fold_in_seq_order_is_the_truth(plan: list[tuple[str, Decimal, int]], bound: Decimal | None) -> None:
    history = history_of(plan)
    readings = [Reading(seq, value, ts, None) for seq, value, ts in reversed(history)]
    truth = {h: q for h, q in usage_truth(history, bound).items() if q}
    assert by_hour(fold(None, readings, bound)) == truth


@settings(max_examples=200, deadline=None)
@given(plan=steps, bound=st.sampled_from([Decimal("0.5"), Decimal("1.5")]))
def test_accepting_every_flag_bills_what_no_bound_bills_and_rejecting_what_pending_bills(
    plan: list[tuple[str, Decimal, int]], bound: Decimal
) -> None:
    history = history_of(plan)
    everything = {seq: Judgement.ACCEPTED for seq, _, _ in history}
    assert usage_truth(history, bound, everything) == usage_truth(history)
    flagged = pending_in_seq_order(history, bound)
    rejected = dict.fromkeys(flagged, Judgement.REJECTED)
    assert usage_truth(history, bound, rejected) == usage_truth(history, bound)


def pending_in_seq_order(history: list[tuple[int, Decimal, datetime]], bound: Decimal) -> set[int]:
    readings = [Reading(seq, value, ts, None) for seq, value, ts in history]
    return {f.reading.seq for f in fold(None, readings, bound) if f.judgement == Judgement.PENDING}


def test_a_spike_is_no_ones_baseline_in_the_fold() -> None:
    readings = [
        Reading(0, Decimal("100"), T0, None),
        Reading(1, Decimal("900000000000000"), T0 + HOUR / 2, None),
        Reading(2, Decimal("100.9"), T0 + HOUR, None),
    ]
    folded = fold(None, readings, BOUND)
    assert [f.judgement for f in folded] == [Judgement.PLAIN, Judgement.PENDING, Judgement.PLAIN]
    assert [f.usage for f in folded] == [Decimal(0), Decimal(0), Decimal("0.9")]
    assert folded[1].increment == Decimal("899999999999900")


# --- the worker ----------------------------------------------------------------------------------


def test_a_glitching_counter_is_flagged_alarmed_and_not_billed(meter: Installed) -> None:
    deliver(meter, glitch())
    assert total(meter) == Decimal("0.9")
    flag = ImplausibleReading.objects.get()
    assert (flag.seq, flag.metric, flag.status) == (1, "run_hours", ImplausibleReading.Status.PENDING)
    assert flag.increment == Decimal("899999999999900")
    assert flag.allowed == Decimal("0.75")
    assert flag.customer_id == meter.asset.customer_id
    assert Heartbeat.objects.get(device=meter.device, seq=1).increments == {"run_hours": "0.000000"}
    alarm = data_quality_alarm(meter)
    assert alarm is not None
    assert "run_hours" in alarm.message
    meter.device.refresh_from_db()
    assert meter.device.counter_state["run_hours"][:2] == [2, 100.9]


def test_the_next_batch_is_measured_from_the_last_good_reading(meter: Installed) -> None:
    deliver(meter, [item(0, T0, run_hours=100.0), item(1, T0 + HOUR / 2, run_hours=9e14)])
    assert total(meter) == 0
    deliver(meter, [item(2, T0 + HOUR, run_hours=1.0)])  # a reset after the good reading
    assert total(meter) == Decimal("1.0")
    deliver(meter, [item(3, T0 + 2 * HOUR, run_hours=2.0)])
    assert total(meter) == Decimal("2.0")


@pytest.mark.parametrize("order", [[2, 1, 0], [1, 2, 0], [0, 2, 1], [2, 0, 1]])
def test_a_glitch_bills_the_same_in_any_delivery_order(meter: Installed, order: list[int]) -> None:
    readings = dict(enumerate(glitch()))
    for seq in order:
        deliver(meter, [readings[seq], readings[seq]])
    assert usage_of(meter) == {T0 + HOUR: Decimal("0.9")}
    assert list(ImplausibleReading.objects.values_list("seq", "status")) == [(1, "pending")]
    assert data_quality_alarm(meter) is not None


def test_a_flag_the_late_readings_explain_away_is_dropped_and_its_alarm_cleared(meter: Installed) -> None:
    # 0.04 in a minute is beyond 1.5 an hour (0.025 a minute); with a reading half-way, each
    # half is within the minute's worth that any two readings are allowed.
    deliver(meter, [item(0, T0, run_hours=100.0), item(2, T0 + timedelta(seconds=60), run_hours=100.04)])
    assert ImplausibleReading.objects.filter(status="pending").count() == 1
    assert data_quality_alarm(meter) is not None
    assert total(meter) == 0
    deliver(meter, [item(1, T0 + timedelta(seconds=30), run_hours=100.02)])
    assert not ImplausibleReading.objects.exists()
    assert data_quality_alarm(meter) is None
    assert total(meter) == Decimal("0.04")
    assert Heartbeat.objects.get(device=meter.device, seq=2).increments == {"run_hours": "0.020000"}


def test_accepting_adds_the_increment_once_and_rejudges_what_came_after(
    meter: Installed, support: User
) -> None:
    # A real jump (a meter swapped for a used one): everything after it looks wrong until it is accepted.
    deliver(
        meter,
        [
            item(0, T0, run_hours=100.0),
            item(1, T0 + HOUR, run_hours=1000.0),
            item(2, T0 + 2 * HOUR, run_hours=1001.0),
            item(3, T0 + 3 * HOUR, run_hours=1002.0),
        ],
    )
    assert total(meter) == 0
    assert ImplausibleReading.objects.filter(status="pending").count() == 3
    jump = ImplausibleReading.objects.get(seq=1)
    services.implausible_reading_decide(reading=jump, accept=True, actor=support)
    assert usage_of(meter) == {
        T0 + HOUR: Decimal("900"),
        T0 + 2 * HOUR: Decimal("1"),
        T0 + 3 * HOUR: Decimal("1"),
    }
    assert list(ImplausibleReading.objects.values_list("seq", "status")) == [(1, "accepted")]
    assert data_quality_alarm(meter) is None
    # Once: accepting again changes nothing, and rejecting it now is refused.
    services.implausible_reading_decide(reading=jump, accept=True, actor=support)
    assert total(meter) == Decimal("902")
    with pytest.raises(services.ReadingDecisionError):
        services.implausible_reading_decide(reading=jump, accept=False, actor=support)
    assert AuditEntry.objects.filter(action="counter_reading.accepted").count() == 1
    # The next reading is measured from the accepted one's successors, as any other.
    deliver(meter, [item(4, T0 + 4 * HOUR, run_hours=1003.0)])
    assert total(meter) == Decimal("903")


def test_rejecting_keeps_it_out_and_clears_the_alarm(meter: Installed, support: User) -> None:
    deliver(meter, glitch())
    flag = ImplausibleReading.objects.get()
    services.implausible_reading_decide(reading=flag, accept=False, actor=support)
    flag.refresh_from_db()
    assert flag.status == "rejected"
    assert flag.decided_by == support
    assert total(meter) == Decimal("0.9")
    assert data_quality_alarm(meter) is None
    # A late reading around it re-folds it: rejected stays rejected.
    deliver(meter, [item(3, T0 + 2 * HOUR, run_hours=101.5)])
    assert total(meter) == Decimal("1.5")
    assert ImplausibleReading.objects.get().status == "rejected"


def test_a_model_without_a_bound_bills_a_glitch_as_before(fleet_a: Installed) -> None:
    deliver(fleet_a, glitch())
    assert total(fleet_a) == Decimal("900000000000000") - Decimal("100") + Decimal("100.9")
    assert not ImplausibleReading.objects.exists()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(plan=steps, seed=st.integers(0, 2**32 - 1))
def test_bounded_usage_equals_the_truth_under_any_delivery(
    customer_a: Customer, bounded: AssetModel, plan: list[tuple[str, Decimal, int]], seed: int
) -> None:
    rng = random.Random(seed)
    installed = install(customer_a, bounded, f"P-{uuid.uuid4().hex[:12]}")
    # The values as the JSON numbers a device sends (9e14 + 0.001 is 9e14 as a float).
    history = [(seq, as_decimal(float(value)), ts) for seq, value, ts in history_of(plan)]
    deliver_shuffled(installed, history, rng, "run_hours")
    worker.drain()
    truth = {hour: q for hour, q in usage_truth(history, BOUND).items() if q}
    assert usage_of(installed) == truth
    flagged = set(
        ImplausibleReading.objects.filter(device=installed.device, status="pending").values_list(
            "seq", flat=True
        )
    )
    counted = {
        seq
        for seq, _, _ in history
        if usage_truth([h for h in history if h[0] <= seq], BOUND, {seq: Judgement.REJECTED})
        != usage_truth([h for h in history if h[0] <= seq], BOUND)
        or False
    }
    assert flagged.isdisjoint(counted) or not counted
    assert (data_quality_alarm(installed) is not None) == bool(flagged)


# --- the API --------------------------------------------------------------------------------------


def test_everyone_who_sees_the_asset_sees_the_flag_only_staff_decide(
    meter: Installed, viewer_a: User, admin_a: User, finance: User, support: User
) -> None:
    deliver(meter, glitch())
    flag = ImplausibleReading.objects.get()
    listed = client_for(viewer_a).get("/api/v1/implausible-readings/?status=pending").json()
    assert [r["seq"] for r in listed["results"]] == [1]
    assert listed["results"][0]["increment"] == "899999999999900.000000"
    for user in (viewer_a, admin_a, finance):
        refused = client_for(user).post(f"/api/v1/implausible-readings/{flag.pk}/accept/")
        assert refused.status_code == 403, refused.content
    answer = client_for(support).post(f"/api/v1/implausible-readings/{flag.pk}/reject/")
    assert answer.status_code == 200
    assert answer.json()["status"] == "rejected"
    assert answer.json()["decided_by"] == support.email
    again = client_for(support).post(f"/api/v1/implausible-readings/{flag.pk}/accept/")
    assert again.status_code == 400
    assert total(meter) == Decimal("0.9")


def test_the_bound_is_set_with_the_models_metrics_and_only_on_counters(operator: User) -> None:
    body = {
        "code": "chiller-x",
        "name": "Chiller X",
        "metrics": [
            {
                "code": "run_hours",
                "label": "Run hours",
                "unit": "h",
                "kind": "counter",
                "max_rate_per_hour": "1.1",
            },
            {"code": "temp_c", "label": "Temperature", "unit": "C", "kind": "gauge"},
        ],
    }
    answer = client_for(operator).post("/api/v1/asset-models/", body, content_type="application/json")
    assert answer.status_code == 201, answer.content
    metrics = {m["code"]: m for m in answer.json()["metrics"]}
    assert metrics["run_hours"]["max_rate_per_hour"] == "1.100000"
    assert metrics["temp_c"]["max_rate_per_hour"] is None
    body["code"] = "chiller-y"
    body["metrics"][1]["max_rate_per_hour"] = "5"  # type: ignore[index]
    refused = client_for(operator).post("/api/v1/asset-models/", body, content_type="application/json")
    assert refused.status_code == 400
    assert "max_rate_per_hour" in refused.content.decode()


def test_the_asset_page_shows_flags_to_all_and_buttons_to_support(
    meter: Installed, viewer_a: User, support: User
) -> None:
    deliver(meter, glitch())
    flag = ImplausibleReading.objects.get()
    page = client_for(viewer_a).get(f"/fleet/assets/{meter.asset.pk}/").content.decode()
    assert "Implausible counter readings" in page
    assert f"/fleet/readings/{flag.pk}/accept/" not in page
    assert client_for(viewer_a).post(f"/fleet/readings/{flag.pk}/accept/").status_code == 403
    staff = client_for(support)
    assert f"/fleet/assets/{meter.asset.pk}/#flags-h" in staff.get("/alarms/").content.decode()
    assert (
        f"/fleet/readings/{flag.pk}/accept/" in staff.get(f"/fleet/assets/{meter.asset.pk}/").content.decode()
    )
    answer = staff.post(f"/fleet/readings/{flag.pk}/accept/")
    assert answer.status_code == 302
    flag.refresh_from_db()
    assert flag.status == "accepted"
    assert total(meter) == Decimal("899999999999900")  # 100.9 after 9e14 is a reset beyond the bound


def test_a_reading_past_raw_retention_can_be_rejected_not_accepted(meter: Installed, support: User) -> None:
    deliver(meter, glitch())
    flag = ImplausibleReading.objects.get()
    Heartbeat.objects.filter(device=meter.device, seq=1).delete()
    with pytest.raises(services.ReadingDecisionError):
        services.implausible_reading_decide(reading=flag, accept=True, actor=support)
    services.implausible_reading_decide(reading=flag, accept=False, actor=support)
    assert total(meter) == Decimal("0.9")


def test_a_bound_costs_an_in_order_batch_no_query(customer_a: Customer, compressor: AssetModel) -> None:
    """The hot path: plausible in-order readings of a bounded counter cost what unbounded ones do."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from fleet.ingest.state import model_rules

    fleet = [install(customer_a, compressor, f"B-{n:04d}") for n in range(4)]
    for installed in fleet:
        deliver(installed, [item(1, T0, run_hours=100.0)])

    def batch_queries(seq: int) -> int:
        for installed in fleet:
            IngestInbox.objects.create(
                device_id=installed.device.pk,
                count=1,
                items=[item(seq, T0 + seq * HOUR, run_hours=100.0 + seq)],
            )
        model_rules.read({compressor.pk})  # the rules as a running worker holds them
        with CaptureQueriesContext(connection) as queries:
            assert worker.process_batch().stored == len(fleet)
        return len(queries)

    unbounded = batch_queries(2)
    MetricDefinition.objects.filter(asset_model=compressor, code="run_hours").update(max_rate_per_hour=BOUND)
    model_rules.clear()
    assert batch_queries(3) == unbounded
    assert not ImplausibleReading.objects.exists()
    assert total(fleet[0]) == Decimal("3")  # +2 in two hours, +1 in one: within 1.5 an hour


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(plan=steps, seed=st.integers(0, 2**32 - 1))
def test_usage_with_decisions_taken_midway_equals_the_truth(
    customer_a: Customer, bounded: AssetModel, support: User, plan: list[tuple[str, Decimal, int]], seed: int
) -> None:
    """Staff decide on whatever is pending while readings still arrive out of order: the result
    is the truth of the whole history with those decisions, each increment counted once."""
    rng = random.Random(seed)
    installed = install(customer_a, bounded, f"P-{uuid.uuid4().hex[:12]}")
    history = [(seq, as_decimal(float(value)), ts) for seq, value, ts in history_of(plan)]
    shuffled = list(history)
    rng.shuffle(shuffled)
    half = len(shuffled) // 2
    decisions: dict[int, Judgement] = {}
    for part in (shuffled[:half], shuffled[half:]):
        deliver_shuffled(installed, part, rng, "run_hours")
        for flag in ImplausibleReading.objects.filter(device=installed.device, status="pending"):
            if rng.random() < 0.6:
                accept = rng.random() < 0.5
                services.implausible_reading_decide(reading=flag, accept=accept, actor=support)
                decisions[flag.seq] = Judgement.ACCEPTED if accept else Judgement.REJECTED
    decided = set(decisions.values())
    event(f"accepted: {Judgement.ACCEPTED in decided}, rejected: {Judgement.REJECTED in decided}")
    truth = {hour: q for hour, q in usage_truth(history, BOUND, decisions).items() if q}
    assert usage_of(installed) == truth
