"""Settings, management commands and the admin: what `make run` and production rely on."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from decimal import Decimal
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.apps import apps
from django.contrib import admin
from django.core.management import call_command
from django.utils import timezone

from billing import demo_volume
from portal.demo import DEMO_PASSWORD
from portal.models import Customer, User
from portal.roles import Role
from tests.conftest import client_for

ROOT = Path(__file__).resolve().parent.parent.parent
PRODUCTION_ENV = {
    "DJANGO_SETTINGS_MODULE": "portal.settings.production",
    "SECRET_KEY": "h7Qp2Xw9Lk4Vb8Nm1Rz6Tc3Yf5Gd0Sj2Ha7Ue9Io4Pl8Kn1Mb6Vc3Xz5Qw0Er2Ty",
    "ALLOWED_HOSTS": "portal.example.com",
    "DATABASE_URL": "postgres://fleetport@db.example.com:5432/fleetport",
    "REDIS_URL": "redis://redis.example.com:6379/0",
}


def _manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DJANGO_SETTINGS_MODULE", "SECRET_KEY", "DEBUG", "DJANGO_ALLOW_ASYNC_UNSAFE"}
    }
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_production_settings_pass_check_deploy_without_warnings() -> None:
    result = _manage("check", "--deploy", "--fail-level", "WARNING", env=PRODUCTION_ENV)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


@pytest.mark.parametrize(
    "secret_key",
    ["", "short", "dev-insecure-key-for-make-run-only-never-in-production-0123456789", "a" * 60],
    ids=["missing", "short", "the-dev-key", "one-letter"],
)
def test_production_refuses_a_missing_or_default_secret_key(secret_key: str) -> None:
    result = _manage("check", env={**PRODUCTION_ENV, "SECRET_KEY": secret_key})
    assert result.returncode != 0
    assert "SECRET_KEY is missing or a default" in result.stderr


def test_production_refuses_demo_data() -> None:
    result = _manage("seed_demo", env=PRODUCTION_ENV)
    assert result.returncode != 0
    assert "Demo data is disabled" in result.stderr


def test_seed_demo_is_idempotent(db: None) -> None:
    call_command("seed_demo", stdout=StringIO())
    first = (Customer.objects.count(), User.objects.count(), apps.get_model("fleet", "Site").objects.count())
    call_command("seed_demo", stdout=StringIO())
    second = (Customer.objects.count(), User.objects.count(), apps.get_model("fleet", "Site").objects.count())
    assert first == second == (3 + demo_volume.CUSTOMERS, 7, 4)  # the wholesalers: billing/demo_volume.py
    assert apps.get_model("fleet", "Asset").objects.count() == 8
    # The month before last is on the books: finalized, one paid, one part-paid, one unpaid.
    books = {
        i.customer.slug: i for i in apps.get_model("billing", "Invoice").objects.select_related("customer")
    }
    assert {slug: i.status for slug, i in books.items()} == {
        "acme": "paid", "borealis": "finalized", "calypso": "finalized",
    }  # fmt: skip
    assert books["acme"].amount_due == 0
    assert 0 < books["borealis"].amount_due < books["borealis"].total
    assert books["calypso"].amount_due == books["calypso"].total > 0
    due = books["calypso"].due_date
    assert due is not None
    assert due < timezone.now().date()  # due by now: the overdue page has work
    assert books["borealis"].bill_to["purchase_order"] == "PO-BCS-2026-117"
    assert apps.get_model("billing", "Payment").objects.count() == 2
    negotiated = books["acme"].lines.get(metric="run_hours")
    assert "Negotiated for 2026" in negotiated.description
    assert negotiated.unit_price == Decimal("1.05")
    assert apps.get_model("billing", "ContractPriceOverride").objects.count() == 1
    # An upcoming planned visit at Acme, once however often the demo is seeded.
    window = apps.get_model("fleet", "MaintenanceWindow").objects.get()
    assert (window.customer.slug, window.status) == ("acme", "planned")
    assert window.starts_at > timezone.now()
    assert {u.role for u in User.objects.all()} == set(Role)
    for user in User.objects.all():
        assert user.check_password(DEMO_PASSWORD)


def test_createsuperuser_noinput_creates_an_operator(db: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", "an-operator-secret")
    call_command("createsuperuser", "--noinput", "--email", "root@provider.test", stdout=StringIO())
    user = User.objects.get(email="root@provider.test")
    assert (user.role, user.customer, user.is_superuser, user.is_staff) == (Role.OPERATOR, None, True, True)
    assert user.check_password("an-operator-secret")


def test_every_model_of_ours_is_in_the_admin() -> None:
    ours = [m for m in apps.get_models() if m._meta.app_label in {"portal", "fleet", "billing", "support"}]
    missing = [m.__name__ for m in ours if m not in admin.site._registry]
    assert not missing


def test_operator_opens_every_admin_changelist(operator: User) -> None:
    client = client_for(operator)
    for model, model_admin in admin.site._registry.items():
        url = f"/admin/{model._meta.app_label}/{model._meta.model_name}/"
        assert client.get(url).status_code == 200, url
        if model_admin.has_add_permission(client_for(operator).get("/").wsgi_request):
            assert client.get(url + "add/").status_code == 200, url + "add/"


def test_error_pages_are_ours(viewer_a: User) -> None:
    client = client_for(viewer_a)
    missing = client.get("/sites/00000000-0000-0000-0000-000000000000/")
    assert missing.status_code == 404
    assert "not yours to see" in missing.content.decode()
    forbidden = client.get("/users/")
    assert forbidden.status_code == 403
    assert "Your role does not include this" in forbidden.content.decode()


def test_times_are_shown_in_the_users_time_zone(admin_a: User, customer_a: Customer) -> None:
    from portal.services import audit_record

    audit_record(actor=admin_a, action="test.noon", target=customer_a)
    admin_a.time_zone = "Asia/Tokyo"
    admin_a.save()
    body = client_for(admin_a).get("/activity/").content.decode()
    assert "Times shown in Asia/Tokyo" in body
    assert "+09:00" in body  # the datetime attribute carries the offset of the zone shown


def test_the_api_schema_generates_without_warnings(tmp_path: Path) -> None:
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yaml"))
    schema = (tmp_path / "schema.yaml").read_text()
    for path in ("/api/v1/auth/token/", "/api/v1/assets/{id}/telemetry/", "/api/v1/alarms/{id}/acknowledge/"):
        assert path in schema


def _run_portal(var: Path, port: int, redis_url: str) -> subprocess.Popen[bytes]:
    """bin/run (what `make run` runs after installing) as a newcomer starts it: no
    DATABASE_URL, so on the project-local PostgreSQL in `var`; the suite's Redis, a database
    of its own."""
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "DJANGO_SETTINGS_MODULE"}}
    env.update(FLEETPORT_VAR_DIR=str(var), PORT=str(port), REDIS_URL=redis_url, SIMULATOR="0")
    log = (var.parent / "run.log").open("ab")
    return subprocess.Popen(
        [sys.executable, "bin/run"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _wait_ready(base: str, process: subprocess.Popen[bytes], timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "bin/run exited before the portal was ready"
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(f"{base}/readyz", timeout=5) as answer,  # noqa: S310 - loopback
        ):
            if answer.status == 200:
                return
        time.sleep(1)
    raise TimeoutError("the portal of bin/run did not become ready")


def _stop_portal(process: subprocess.Popen[bytes]) -> None:
    """Ctrl-C, as a person stops `make run`; then everything it started is gone."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGINT)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        raise


def _api(base: str, path: str, *, token: str | None = None, body: dict[str, str] | None = None) -> Any:
    request = urllib.request.Request(  # noqa: S310 - loopback
        base + path,
        data=json.dumps(body).encode() if body is not None else None,
        headers={
            "Content-Type": "application/json",
            **({"Authorization": f"Token {token}"} if token else {}),
        },
    )
    with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310 - loopback
        return json.loads(answer.read())


@pytest.mark.integration
def test_make_run_serves_the_demo_on_its_own_postgresql_and_keeps_its_data(collected_static: Path) -> None:
    from django.conf import settings

    from tests.integration import seed_static

    # A folder Debian's postgres user can reach (pytest's tmp_path is root's alone), so the
    # data stays in var/postgres as in a checkout, and goes with the folder afterwards.
    folder = Path(tempfile.mkdtemp(prefix="fleetport-make-run-"))
    folder.chmod(0o755)
    # The session's compressed static files: bin/run's collectstatic still runs, but does not
    # compress plotly.js again (tests/browser/test_static_files.py checks what it serves).
    seed_static(collected_static, folder / "var")
    try:
        _run_twice(folder / "var", settings.REDIS_URL.rsplit("/", 1)[0] + "/7")
        assert not (folder / "var" / "postgres").is_symlink()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _run_twice(var: Path, redis_url: str) -> None:
    from tests.services import PostgresServer, free_port

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    process = _run_portal(var, port, redis_url)
    try:
        _wait_ready(base, process)
        token = _api(
            base, "/api/v1/auth/token/", body={"email": "admin@acme.example", "password": DEMO_PASSWORD}
        )
        assets = _api(base, "/api/v1/assets/", token=token["token"])
        assert assets["count"] > 0
    finally:
        _stop_portal(process)
    server = PostgresServer.kept(var / "postgres")
    assert (server.data / "PG_VERSION").exists()
    assert not server.running(), "Ctrl-C left the project-local PostgreSQL running"

    process = _run_portal(var, port, redis_url)  # a second `make run`: the same data, demo not doubled
    try:
        _wait_ready(base, process)
        again = _api(base, "/api/v1/assets/", token=token["token"])  # the token row survived
        assert again["count"] == assets["count"]
    finally:
        _stop_portal(process)
