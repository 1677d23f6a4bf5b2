"""Create the live benchmark's tenants, fleet, users and logged-in sessions; print them as JSON.

    DJANGO_SETTINGS_MODULE=portal.settings.dev DATABASE_URL=... \
        python bench/_live_setup.py --customers 100 --assets-per-customer 10 \
            --customer-users 2000 --staff-users 10

C customers, each with one site and A assets of one shared asset model (run_hours and
energy_kwh counters, pressure_bar and temp_c gauges; no alarm rules), one device and token
per asset, created through the project's services like bench/_setup_fleet.py. Then U
customer viewers (round-robin over the customers) and S support agents, each with one
database session, exactly what `django.contrib.auth.login` stores (user id, backend, session
auth hash): a WebSocket handshake with `Cookie: sessionid=<key>` is that user's socket.
Users and sessions are bulk-inserted (no password hashing: the users have unusable
passwords, nobody logs in with one). bench/live.py runs this in a subprocess against its
throwaway database; stdout is one JSON object, progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import django

django.setup()

from _common import bench_asset_model, bench_device  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY  # noqa: E402
from django.contrib.auth.hashers import make_password  # noqa: E402
from django.contrib.sessions.backends.db import SessionStore  # noqa: E402
from django.contrib.sessions.models import Session  # noqa: E402
from django.utils import timezone  # noqa: E402
from django.utils.crypto import get_random_string  # noqa: E402

from fleet.services import site_create  # noqa: E402
from portal.models import Customer, User  # noqa: E402
from portal.roles import Role  # noqa: E402

SESSION_BACKEND = "django.contrib.auth.backends.ModelBackend"


def log(message: str) -> None:
    print(f"setup: {message}", file=sys.stderr, flush=True)


def create_fleet(customers: int, assets_per_customer: int) -> list[dict[str, object]]:
    model = bench_asset_model()
    fleet: list[dict[str, object]] = []
    for c in range(customers):
        customer = Customer.objects.create(name=f"Bench customer {c}", slug=f"bench-{c}")
        site = site_create(actor=None, customer=customer, name=f"Bench plant {c}")
        assets = [
            bench_device(
                site=site,
                model=model,
                serial=f"BENCH-C{c:04d}-A{a:04d}",
                name=f"Compressor {c}/{a}",
                device_serial=f"BENCH-C{c:04d}-D{a:04d}",
            )
            for a in range(assets_per_customer)
        ]
        fleet.append({"customer": str(customer.pk), "assets": assets})
    return fleet


def create_users(customer_ids: list[str], customer_users: int, staff_users: int) -> list[dict[str, object]]:
    unusable = make_password(None)
    users = [
        User(
            email=f"viewer{n}@bench.example",
            role=Role.CUSTOMER_VIEWER,
            customer_id=customer_ids[n % len(customer_ids)],
            password=unusable,
        )
        for n in range(customer_users)
    ] + [
        User(email=f"agent{n}@bench.example", role=Role.SUPPORT, password=unusable)
        for n in range(staff_users)
    ]
    User.objects.bulk_create(users, batch_size=1000)
    expires = timezone.now() + timedelta(seconds=settings.SESSION_COOKIE_AGE)
    store = SessionStore()
    sessions: list[Session] = []
    result: list[dict[str, object]] = []
    for n, user in enumerate(users):
        key = get_random_string(32, "abcdefghijklmnopqrstuvwxyz0123456789")
        data = {
            SESSION_KEY: str(user.pk),
            BACKEND_SESSION_KEY: SESSION_BACKEND,
            HASH_SESSION_KEY: user.get_session_auth_hash(),
        }
        sessions.append(Session(session_key=key, session_data=store.encode(data), expire_date=expires))
        result.append(
            {
                "user": str(user.pk),
                "session": key,
                "customer": None if user.customer_id is None else n % len(customer_ids),
            }
        )
    Session.objects.bulk_create(sessions, batch_size=1000)
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, required=True)
    parser.add_argument("--assets-per-customer", type=int, required=True)
    parser.add_argument("--customer-users", type=int, required=True)
    parser.add_argument("--staff-users", type=int, required=True)
    args = parser.parse_args()
    started = time.monotonic()
    fleet = create_fleet(args.customers, args.assets_per_customer)
    log(
        f"{args.customers} customers × {args.assets_per_customer} assets in {time.monotonic() - started:.1f}s"
    )
    started = time.monotonic()
    users = create_users([str(c["customer"]) for c in fleet], args.customer_users, args.staff_users)
    log(f"{len(users)} users with a session each in {time.monotonic() - started:.1f}s")
    json.dump(
        {"customers": fleet, "users": users, "session_cookie": settings.SESSION_COOKIE_NAME}, sys.stdout
    )


if __name__ == "__main__":
    main()
