"""The device contract (docs/ingest.md, "The device contract"): every answer code, with the body
that produces it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from fleet import credentials
from fleet.ingest import admission, auth
from fleet.models import Heartbeat, IngestInbox
from tests.fleet.conftest import Installed

URL = "/api/v1/ingest/heartbeats"


def beat(seq: int = 1, **overrides: Any) -> dict[str, Any]:
    body = {
        "seq": seq,
        "ts": (timezone.now() - timedelta(seconds=10)).isoformat().replace("+00:00", "Z"),
        "status": "ok",
        "metrics": {"run_hours": 1532.25, "pressure_bar": 7.1, "temp_c": 61.0},
        "fault_code": None,
    }
    body.update(overrides)
    return body


def post(
    installed: Installed, body: Any, *, raw: bytes | None = None, content_type: str = "application/json"
) -> Any:
    data = raw if raw is not None else json.dumps(body)
    return Client().post(URL, data=data, content_type=content_type, **installed.auth)


def nothing_stored() -> bool:
    return not IngestInbox.objects.exists() and not Heartbeat.objects.exists()


def test_one_heartbeat_is_accepted(fleet_a: Installed) -> None:
    response = post(fleet_a, beat())
    assert response.status_code == 202
    assert response.json() == {"accepted": 1}
    assert IngestInbox.objects.get().count == 1


def test_an_array_is_accepted_whole(fleet_a: Installed) -> None:
    response = post(fleet_a, [beat(seq) for seq in range(1000)])
    assert response.status_code == 202
    assert response.json() == {"accepted": 1000}


def test_offsets_other_than_utc_are_accepted(fleet_a: Installed) -> None:
    ts = (datetime.now(UTC) - timedelta(minutes=1)).astimezone(timezone.get_fixed_timezone(330)).isoformat()
    assert post(fleet_a, beat(ts=ts)).status_code == 202


def test_late_heartbeats_within_the_window_are_accepted(fleet_a: Installed) -> None:
    ts = (timezone.now() - timedelta(days=89)).isoformat()
    assert post(fleet_a, beat(ts=ts)).status_code == 202


# A day ahead: still in the future however long after collection the test runs.
FUTURE = (timezone.now() + timedelta(days=1)).isoformat()
ANCIENT = (timezone.now() - timedelta(days=91)).isoformat()

BAD_BODIES: list[tuple[str, Any, str]] = [
    ("empty array", [], ""),
    ("not an object", ["hello"], ""),
    ("1,001 items", [beat(seq) for seq in range(1001)], ""),
    ("missing seq", {k: v for k, v in beat().items() if k != "seq"}, "seq"),
    ("negative seq", beat(seq=-1), "seq"),
    ("float seq", beat(seq=1.5), "seq"),
    ("string seq", beat(seq="7"), "seq"),
    ("boolean seq", beat(seq=True), "seq"),
    ("huge seq", beat(seq=2**64), "seq"),
    ("missing ts", {k: v for k, v in beat().items() if k != "ts"}, "ts"),
    ("ts without offset", beat(ts="2026-11-25T10:00:00"), "ts"),
    ("ts not a date", beat(ts="yesterday"), "ts"),
    ("ts a number", beat(ts=1764064800), "ts"),
    ("future ts", beat(ts=FUTURE), "ts"),
    ("ts older than 90 days", beat(ts=ANCIENT), "ts"),
    ("ts at the first moment Python knows, east of UTC", beat(ts="0001-01-01T00:00:00+01:00"), "ts"),
    ("ts at the last moment Python knows, west of UTC", beat(ts="9999-12-31T23:59:59-01:00"), "ts"),
    ("unknown status", beat(status="fine"), "status"),
    ("status an array", beat(status=["ok"]), "status"),
    ("status an object", beat(status={"ok": 1}), "status"),
    ("metric an integer too big for a float", beat(metrics={"temp_c": 10**400}), "metrics.temp_c"),
    ("metric absurdly large", beat(metrics={"temp_c": 1e300}), "metrics.temp_c"),
    ("metrics keyed oddly", beat(metrics={"": 1}), "metrics."),
    ("metrics not an object", beat(metrics=[1, 2]), "metrics"),
    ("unknown metric", beat(metrics={"rpm": 1200}), "metrics.rpm"),
    ("metric a string", beat(metrics={"temp_c": "61"}), "metrics.temp_c"),
    ("metric a boolean", beat(metrics={"temp_c": True}), "metrics.temp_c"),
    ("metric null", beat(metrics={"temp_c": None}), "metrics.temp_c"),
    ("negative counter", beat(metrics={"run_hours": -1}), "metrics.run_hours"),
    ("fault code too long", beat(fault_code="E" * 65), "fault_code"),
    ("fault code a number", beat(fault_code=42), "fault_code"),
    ("unknown field", beat(colour="red"), "colour"),
    ("one bad item spoils the body", [beat(1), beat(2, status="nope")], "status"),
]


@pytest.mark.parametrize(("name", "body", "field"), BAD_BODIES, ids=[b[0] for b in BAD_BODIES])
def test_bad_bodies_get_400_and_store_nothing(fleet_a: Installed, name: str, body: Any, field: str) -> None:
    response = post(fleet_a, body)
    assert response.status_code == 400, response.content
    payload = response.json()
    assert payload["detail"] == "Nothing was accepted from this body."
    if field:
        assert field in {e["field"] for e in payload["errors"]}
    assert nothing_stored()


@pytest.mark.parametrize(
    "raw",
    [b"{not json", b'{"seq": NaN}', b'{"seq": 1, "metrics": {"temp_c": Infinity}}', b"[" * 100_000],
    ids=["malformed", "NaN", "Infinity", "deeply nested"],
)
def test_non_json_and_non_finite_numbers_get_400(fleet_a: Installed, raw: bytes) -> None:
    response = post(fleet_a, None, raw=raw)
    assert response.status_code == 400
    assert nothing_stored()


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml"]
)
def test_other_content_types_get_415(fleet_a: Installed, content_type: str) -> None:
    response = post(fleet_a, None, raw=json.dumps(beat()).encode(), content_type=content_type)
    assert response.status_code == 415
    assert nothing_stored()


def test_a_body_over_the_limit_gets_413(fleet_a: Installed, settings: Any) -> None:
    settings.INGEST_MAX_BODY_BYTES = 2000
    response = post(fleet_a, [beat(seq) for seq in range(30)])
    assert response.status_code == 413
    assert nothing_stored()


@pytest.mark.parametrize(
    "header",
    ["", "Device", "Device fpd_00000000_nope", "Token abc", "Bearer x"],
    ids=["none", "empty", "unknown", "wrong scheme", "bearer"],
)
def test_unknown_tokens_get_401(fleet_a: Installed, header: str) -> None:
    response = Client().post(
        URL, data=json.dumps(beat()), content_type="application/json", HTTP_AUTHORIZATION=header
    )
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Device"
    assert fleet_a.token not in response.content.decode()
    assert nothing_stored()


def test_a_revoked_token_gets_401(fleet_a: Installed) -> None:
    credentials.device_revoke(device=fleet_a.device, actor=None)
    auth.clear_auth_cache()  # other processes: within DEVICE_AUTH_CACHE_SECONDS
    assert post(fleet_a, beat()).status_code == 401
    assert nothing_stored()


def test_a_rotated_out_token_gets_401_after_its_overlap(fleet_a: Installed) -> None:
    new_token = credentials.device_token_issue(device=fleet_a.device, actor=None, overlap=timedelta(0))
    auth.clear_auth_cache()
    assert post(fleet_a, beat()).status_code == 401
    fresh = Installed(fleet_a.asset, fleet_a.device, new_token)
    assert post(fresh, beat()).status_code == 202


def test_rotation_keeps_the_old_token_during_the_overlap(fleet_a: Installed) -> None:
    new_token = credentials.device_token_issue(
        device=fleet_a.device, actor=None, overlap=timedelta(minutes=5)
    )
    auth.clear_auth_cache()
    assert post(fleet_a, beat(1)).status_code == 202
    assert post(Installed(fleet_a.asset, fleet_a.device, new_token), beat(2)).status_code == 202


def test_a_swapped_out_devices_token_gets_401(fleet_a: Installed) -> None:
    from fleet.services import device_install

    device_install(actor=None, asset=fleet_a.asset, serial_number="GW-NEW")
    auth.clear_auth_cache()
    assert post(fleet_a, beat()).status_code == 401


def test_a_device_over_its_rate_gets_429_and_its_neighbour_does_not(
    fleet_a: Installed, fleet_b: Installed, settings: Any
) -> None:
    admission.redis_client().flushdb()
    fleet_a.device.rate_limit_per_minute = 3
    fleet_a.device.save()
    auth.clear_auth_cache()
    codes = [post(fleet_a, beat(seq)).status_code for seq in range(4)]
    assert codes == [202, 202, 202, 429]
    limited = post(fleet_a, beat(9))
    assert 1 <= int(limited["Retry-After"]) <= 60
    assert post(fleet_b, beat(1)).status_code == 202
    assert IngestInbox.objects.filter(device_id=fleet_a.device.pk).count() == 3


def test_a_backlog_past_its_bound_gets_503(fleet_a: Installed, settings: Any) -> None:
    settings.INGEST_BACKLOG_LIMIT = 5
    assert post(fleet_a, [beat(seq) for seq in range(6)]).status_code == 202
    admission._backlog["checked"] = 0.0  # the view re-reads the backlog at most once a second
    response = post(fleet_a, beat(99))
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert IngestInbox.objects.count() == 1


def test_get_is_not_allowed(fleet_a: Installed) -> None:
    assert Client().get(URL, **fleet_a.auth).status_code == 405


def test_tokens_are_stored_only_as_hashes(fleet_a: Installed) -> None:
    from fleet.models import DeviceCredential

    stored = DeviceCredential.objects.get(device=fleet_a.device)
    assert fleet_a.token not in (stored.token_hash, stored.prefix)
    assert stored.token_hash == auth.hash_token(fleet_a.token)
    assert fleet_a.token.startswith(f"fpd_{stored.prefix}_")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
heartbeat_like = st.fixed_dictionaries(
    {},
    optional={
        "seq": json_values | st.integers(),
        "ts": json_values | st.just(beat()["ts"]),
        "status": json_values | st.sampled_from(["ok", "warning", "fault"]),
        "metrics": json_values | st.dictionaries(st.sampled_from(["temp_c", "run_hours", "x"]), json_values),
        "fault_code": json_values,
    },
)


@hypothesis_settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=json_values | heartbeat_like | st.lists(heartbeat_like, max_size=5))
def test_no_body_ever_gets_a_500(fleet_a: Installed, body: Any) -> None:
    if fleet_a.device.rate_limit_per_minute is None:  # many examples, one device: not a rate test
        fleet_a.device.rate_limit_per_minute = 10**6
        fleet_a.device.save()
        auth.clear_auth_cache()
    response = post(fleet_a, body)
    assert response.status_code in (202, 400), response.content
    if response.status_code == 400:
        assert response.json()["detail"]


def test_a_cached_device_is_dropped_when_another_process_revokes(
    fleet_a: Installed, django_assert_num_queries: Any
) -> None:
    assert auth.authenticate_device(fleet_a.token) is not None
    with django_assert_num_queries(0):  # cached: a device reporting once a minute costs no lookup
        assert auth.authenticate_device(fleet_a.token) is not None
    # Another process revokes: the database changes and the shared generation moves on.
    from fleet.models import DeviceCredential

    DeviceCredential.objects.filter(device=fleet_a.device).update(revoked_at=timezone.now())
    admission.redis_client().incr(auth.GENERATION_KEY)
    auth._generation["read_at"] = float("-inf")  # a second later, as far as this process knows
    assert auth.authenticate_device(fleet_a.token) is None


def test_a_rotated_tokens_cache_entry_ends_with_its_overlap(fleet_a: Installed, settings: Any) -> None:
    from fleet.models import DeviceCredential

    DeviceCredential.objects.filter(device=fleet_a.device).update(
        expires_at=timezone.now() + timedelta(seconds=1)
    )
    assert auth.authenticate_device(fleet_a.token) is not None
    entry = auth._cache[auth.hash_token(fleet_a.token)]
    import time as _time

    assert entry[0] - _time.monotonic() <= 1.0  # never cached past the credential's expiry
