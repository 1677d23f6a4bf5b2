"""Maintenance windows: planning them (validation, audit), telling the right customer's users,
alarms inside a window opening no ticket, SLA clocks standing still, the pages and the API."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.core import mail
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from billing.models import Contract
from fleet import alarms, windows
from fleet.maintenance import in_maintenance
from fleet.models import (
    Alarm,
    AlarmKind,
    AlarmRule,
    Asset,
    AssetModel,
    MaintenanceWindow,
    Severity,
    WindowStatus,
)
from portal.models import AuditEntry, Customer, OutboxMessage, User
from portal.roles import Role
from support import services as support_services
from support.models import Status, Ticket
from tests.billing_fixtures import contract_for
from tests.conftest import client_for
from tests.factories import AssetFactory, SiteFactory, UserFactory
from tests.fleet_fixtures import Installed
from tests.outbox import run_outbox
from tests.support.conftest import raise_alarm

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 10, 5, 8, 0, tzinfo=UTC)


def plan_window(
    customer: Customer, actor: User | None, start: datetime, hours: int = 4, **extra: object
) -> MaintenanceWindow:
    return windows.window_plan(
        actor=actor, customer=customer, title="Compressor service", reason="Yearly overhaul",
        starts_at=start, ends_at=start + timedelta(hours=hours), **{"now": T0, **extra},
    )  # fmt: skip


@pytest.fixture
def hot_rule(compressor: AssetModel) -> AlarmRule:
    return AlarmRule.objects.create(
        asset_model=compressor,
        name="Oil overheating",
        metric="temp_c",
        comparison="gt",
        threshold=Decimal("95"),
        severity="critical",
        ticket_priority="P1",
    )


@pytest.fixture
def covered(customer_a: Customer, plan: object, fleet_a: Installed) -> Contract:
    """P1: first response within 60 min, resolution within 480 min."""
    return contract_for(customer_a, plan, fleet_a.asset, date(2026, 1, 1))


# Planning ---------------------------------------------------------------------------------------


def test_planning_checks_each_field_and_is_audited(
    customer_a: Customer, customer_b: Customer, support: User
) -> None:
    foreign_asset = Asset.objects.get(pk=AssetFactory(site__customer=customer_b).pk)
    foreign_site = SiteFactory(customer=customer_b)
    with pytest.raises(ValidationError) as caught:
        windows.window_plan(
            actor=support,
            customer=customer_a,
            title=" ",
            starts_at=T0 + timedelta(hours=2),
            ends_at=T0 + timedelta(hours=1),
            site=foreign_site,
            assets=[foreign_asset],
            now=T0,
        )
    assert set(caught.value.message_dict) == {"title", "ends_at", "site", "assets"}
    with pytest.raises(ValidationError) as past:
        plan_window(customer_a, support, T0 - timedelta(hours=6))  # over two hours before "now"
    assert "emergency" in past.value.message_dict["ends_at"][0]

    window = plan_window(customer_a, support, T0 + timedelta(days=1))

    assert window.status == WindowStatus.PLANNED
    entry = AuditEntry.objects.get(action="maintenance_window.planned")
    assert (entry.customer_id, entry.actor_id) == (customer_a.pk, support.pk)


def test_customers_may_not_plan(customer_a: Customer, admin_a: User) -> None:
    with pytest.raises(PermissionDenied):
        plan_window(customer_a, admin_a, T0 + timedelta(days=1))
    assert not MaintenanceWindow.objects.exists()


def test_an_emergency_window_starts_now_and_closes_early(fleet_a: Installed, support: User) -> None:
    customer = fleet_a.asset.customer
    with time_machine.travel(T0, tick=False):
        window = windows.window_open_emergency(
            actor=support,
            customer=customer,
            title="Leak",
            ends_at=T0 + timedelta(hours=8),
            assets=[fleet_a.asset],
        )
    assert (window.starts_at, window.is_emergency) == (T0, True)
    assert in_maintenance(fleet_a.asset.pk, T0 + timedelta(hours=1))

    windows.window_close_early(actor=support, window=window, at=T0 + timedelta(hours=2))

    assert in_maintenance(fleet_a.asset.pk, T0 + timedelta(hours=1))
    assert not in_maintenance(fleet_a.asset.pk, T0 + timedelta(hours=3))
    assert AuditEntry.objects.filter(action="maintenance_window.closed_early").count() == 1
    with pytest.raises(ValidationError):  # not running any more
        windows.window_close_early(actor=support, window=window, at=T0 + timedelta(hours=4))


def test_a_proposed_window_has_no_effect_until_confirmed(fleet_a: Installed, support: User) -> None:
    window = plan_window(
        fleet_a.asset.customer, support, T0 + timedelta(hours=1), status=WindowStatus.PROPOSED
    )
    during = T0 + timedelta(hours=2)
    assert not in_maintenance(fleet_a.asset.pk, during)
    assert not OutboxMessage.objects.exists()  # nobody is told about a proposal

    windows.window_confirm(actor=support, window=window)

    assert in_maintenance(fleet_a.asset.pk, during)
    assert list(OutboxMessage.objects.values_list("task", flat=True)) == ["fleet.window_notify"]


# E-mail -------------------------------------------------------------------------------------------


def test_planned_moved_and_cancelled_windows_are_e_mailed_to_that_customers_users_only(
    customer_a: Customer, viewer_a: User, admin_a: User, viewer_b: User, admin_b: User, support: User
) -> None:
    UserFactory(email="gone@alpha.test", role=Role.CUSTOMER_ADMIN, customer=customer_a, is_active=False)
    viewer_a.time_zone, viewer_a.locale = "Asia/Tokyo", "de-DE"
    viewer_a.save()
    mail.outbox.clear()
    window = plan_window(customer_a, support, datetime(2026, 10, 6, 6, 0, tzinfo=UTC))
    assert mail.outbox == []  # nothing before the commit: through the outbox
    run_outbox()

    assert sorted(m.to[0] for m in mail.outbox) == ["admin@alpha.test", "viewer@alpha.test"]
    by = {m.to[0]: m for m in mail.outbox}
    assert by["viewer@alpha.test"].subject == "Maintenance planned: Compressor service"
    assert "15:00" in by["viewer@alpha.test"].body  # 06:00 UTC in Tokyo
    assert "Asia/Tokyo" in by["viewer@alpha.test"].body
    assert "8:00" in by["admin@alpha.test"].body  # the customer's zone, Berlin (summer time)
    assert all("Bravo" not in m.body for m in mail.outbox)

    mail.outbox.clear()
    windows.window_move(
        actor=support,
        window=window,
        starts_at=window.starts_at + timedelta(days=1),
        ends_at=window.ends_at + timedelta(days=1),
        now=T0,
    )
    windows.window_cancel(actor=support, window=window)
    run_outbox()

    subjects = sorted((m.to[0], m.subject.split(":")[0]) for m in mail.outbox)
    # The move was cancelled before the mail went out: only the cancellation is worth telling.
    assert subjects == [
        ("admin@alpha.test", "Maintenance cancelled"),
        ("viewer@alpha.test", "Maintenance cancelled"),
    ]


def test_a_move_mail_gives_the_old_and_the_new_times(
    customer_a: Customer, admin_a: User, support: User
) -> None:
    window = plan_window(customer_a, support, datetime(2026, 10, 6, 6, 0, tzinfo=UTC))
    run_outbox()
    mail.outbox.clear()
    windows.window_move(
        actor=support,
        window=window,
        starts_at=datetime(2026, 10, 7, 10, 0, tzinfo=UTC),
        ends_at=datetime(2026, 10, 7, 12, 0, tzinfo=UTC),
        now=T0,
    )
    run_outbox()
    (message,) = mail.outbox
    assert message.subject == "Maintenance moved: Compressor service"
    assert "Was: " in message.body
    was, now = message.body.split("Was: ")[1].split("\n")[:2]
    assert "8:00" in was  # the old start, 06:00 UTC, in Berlin
    assert "12:00" in now  # the new start, 10:00 UTC, in Berlin


# Alarms and tickets -------------------------------------------------------------------------------


def test_an_alarm_inside_a_window_opens_no_ticket_and_one_outside_does(
    fleet_a: Installed, hot_rule: AlarmRule, support: User
) -> None:
    window = plan_window(fleet_a.asset.customer, support, T0, hours=2, assets=[fleet_a.asset])

    inside = raise_alarm(fleet_a, hot_rule, at=T0 + timedelta(hours=1))
    assert inside is not None
    assert inside.in_maintenance
    support_services.on_alarm_raised(alarm_id=str(inside.pk))
    assert not Ticket.objects.exists()
    assert Alarm.objects.filter(pk=inside.pk).exists()  # recorded all the same

    Alarm.objects.filter(pk=inside.pk).update(state="cleared", cleared_at=T0 + timedelta(hours=1))
    outside = raise_alarm(fleet_a, hot_rule, at=window.ends_at + timedelta(minutes=1))
    assert outside is not None
    assert not outside.in_maintenance
    support_services.on_alarm_raised(alarm_id=str(outside.pk))
    assert Ticket.objects.get().asset_id == fleet_a.asset.pk


def test_an_alarm_of_another_site_is_not_in_the_window(
    fleet_a: Installed, hot_rule: AlarmRule, support: User
) -> None:
    other_site = SiteFactory(customer=fleet_a.asset.customer)
    plan_window(fleet_a.asset.customer, support, T0, hours=2, site=other_site)
    alarm = raise_alarm(fleet_a, hot_rule, at=T0 + timedelta(hours=1))
    assert alarm is not None
    assert not alarm.in_maintenance


def fault(asset: Asset, at: datetime, key: str = alarms.DEVICE_FAULT) -> Alarm:
    """An active alarm of `asset` raised at `at` (a device fault, or the offline one)."""
    kind = AlarmKind.OFFLINE if key == alarms.OFFLINE else AlarmKind.DEVICE_FAULT
    alarm = alarms.alarm_raise(
        asset=asset, key=key, kind=kind, severity=Severity.CRITICAL, message=key, at=at
    )
    assert alarm is not None
    return alarm


def test_alarms_active_when_a_window_is_planned_or_confirmed_over_now_are_marked(
    fleet_a: Installed, fleet_b: Installed, hot_rule: AlarmRule, support: User
) -> None:
    now = timezone.now()
    customer = fleet_a.asset.customer
    elsewhere = AssetFactory(
        customer=customer, site=SiteFactory(customer=customer), model=fleet_a.asset.model
    )
    before = now - timedelta(hours=1)
    mine, other_machine, theirs = (fault(a, before) for a in (fleet_a.asset, elsewhere, fleet_b.asset))
    ticketed = raise_alarm(fleet_a, hot_rule, at=now - timedelta(minutes=30))
    assert ticketed is not None
    support_services.on_alarm_raised(alarm_id=str(ticketed.pk))  # its ticket, before any window

    # Proposed: not in effect, nothing marked; confirmed while running: marked.
    proposed = plan_window(customer, support, now - timedelta(minutes=5), assets=[fleet_a.asset],
                           status=WindowStatus.PROPOSED, now=now)  # fmt: skip
    assert not Alarm.objects.filter(in_maintenance=True).exists()
    windows.window_confirm(actor=support, window=proposed)
    assert set(Alarm.objects.filter(in_maintenance=True)) == {mine, ticketed}  # the listed machine's only
    assert Ticket.objects.get().asset_id == fleet_a.asset.pk  # the ticket it had stays

    # Customer-wide, planned over now (an emergency one): every machine of A, none of B's.
    windows.window_open_emergency(
        actor=support, customer=customer, title="Leak", ends_at=now + timedelta(hours=1)
    )
    assert set(Alarm.objects.filter(in_maintenance=True)) == {mine, ticketed, other_machine}
    theirs.refresh_from_db()
    assert not theirs.in_maintenance


def trips_ticket(customer: Customer, fleet: Installed) -> Ticket:
    """A P1 ticket about the fleet's machine, opened at T0 (8 h to resolve)."""
    return support_services.ticket_open(
        actor=None,
        customer=customer,
        subject="Trips",
        description="Trips hourly.",
        priority="P1",
        asset=fleet.asset,
        at=T0,
    )


def test_a_window_moves_the_resolution_deadline_by_exactly_its_overlap(
    covered: Contract, fleet_a: Installed, support: User
) -> None:
    customer = covered.customer
    ticket = trips_ticket(customer, fleet_a)
    assert ticket.resolution_due_at(T0) == T0 + timedelta(minutes=480)
    # A window from 2 h to 5 h after opening (3 h) and an unrelated one of another site.
    plan_window(customer, support, T0 + timedelta(hours=2), hours=3, now=T0)
    plan_window(
        customer, support, T0 + timedelta(hours=1), hours=9, site=SiteFactory(customer=customer), now=T0
    )

    support_services.sla_sweep(now=T0 + timedelta(hours=3))  # an hour into the window
    ticket.refresh_from_db()
    assert ticket.maintenance_paused_seconds == 3600
    support_services.sla_sweep(now=T0 + timedelta(hours=7))  # after it
    ticket.refresh_from_db()
    assert ticket.maintenance_paused_seconds == 3 * 3600
    assert ticket.resolution_due_at(T0 + timedelta(hours=7)) == T0 + timedelta(minutes=480, hours=3)
    # Past the original 8 h deadline, yet not breached: the clock stood still for the window.
    support_services.sla_sweep(now=T0 + timedelta(hours=9))
    ticket.refresh_from_db()
    assert not ticket.resolution_breached
    support_services.sla_sweep(now=T0 + timedelta(hours=11, minutes=1))
    assert Ticket.objects.get(pk=ticket.pk).resolution_breached


def test_resolving_settles_the_pause_and_a_cancelled_window_pauses_nothing(
    covered: Contract, fleet_a: Installed, support: User
) -> None:
    customer = covered.customer
    ticket = trips_ticket(customer, fleet_a)
    cancelled = plan_window(customer, support, T0 + timedelta(hours=1), hours=2, now=T0)
    windows.window_cancel(actor=support, window=cancelled)
    plan_window(customer, support, T0 + timedelta(hours=3), hours=1, assets=[fleet_a.asset], now=T0)
    with time_machine.travel(T0 + timedelta(hours=6), tick=False):
        support_services.ticket_transition(actor=support, ticket=ticket, to=Status.OPEN)
        ticket = support_services.ticket_transition(actor=support, ticket=ticket, to=Status.RESOLVED)
    assert ticket.maintenance_paused_seconds == 3600


# Pages and API ------------------------------------------------------------------------------------


def test_the_calendar_lists_current_and_upcoming_windows_by_day_in_the_readers_zone(
    customer_a: Customer, customer_b: Customer, viewer_a: User, support: User
) -> None:
    now = timezone.now()
    soon = plan_window(customer_a, support, now + timedelta(days=2), now=now)
    running = plan_window(customer_a, support, now - timedelta(hours=1), hours=3, now=now)
    over = MaintenanceWindow.objects.create(
        customer=customer_a,
        title="Last week's visit",
        starts_at=now - timedelta(days=7),
        ends_at=now - timedelta(days=7) + timedelta(hours=2),
    )
    theirs = plan_window(customer_b, support, now + timedelta(days=2), now=now)
    MaintenanceWindow.objects.filter(pk=theirs.pk).update(title="Bravo secret visit")

    body = client_for(viewer_a).get("/fleet/maintenance/").content.decode()

    assert str(soon.pk) in body
    assert str(running.pk) in body
    assert "In progress" in body
    assert over.title not in body
    assert "Bravo secret visit" not in body
    berlin_day = soon.starts_at.astimezone(ZoneInfo("Europe/Berlin")).date()
    assert f'data-day="{berlin_day:%Y-%m-%d}"' in body


def test_support_plans_a_window_from_the_form_with_errors_next_to_fields(
    fleet_a: Installed, support: User, admin_a: User
) -> None:
    client = client_for(support)
    url = f"/fleet/maintenance/new/?asset={fleet_a.asset.pk}"
    day = (timezone.now() + timedelta(days=2)).date().isoformat()

    def form(ends_at: str) -> dict[str, object]:
        """The new-window form for a service from 10:00 on `day` to `ends_at`."""
        return {
            "title": "Service",
            "starts_at": f"{day}T10:00",
            "ends_at": f"{day}T{ends_at}",
            "assets": [str(fleet_a.asset.pk)],
        }

    page = client.get(url)
    assert page.status_code == 200
    bad = client.post(url, form("09:00"))
    assert bad.status_code == 200
    assert "must end after it starts" in bad.content.decode()
    good = client.post(url, form("12:00"))
    assert good.status_code == 302
    window = MaintenanceWindow.objects.get()
    # Support's zone is the default UTC: 10:00 entered is 10:00 UTC.
    assert window.starts_at == datetime.fromisoformat(f"{day}T10:00+00:00")
    assert list(window.assets.all()) == [fleet_a.asset]
    # Customers read; they may not plan.
    assert client_for(admin_a).get(url).status_code == 403
    asset_page = client_for(admin_a).get(f"/fleet/assets/{fleet_a.asset.pk}/").content.decode()
    assert "Service" in asset_page
    assert str(window.pk) in asset_page


def test_the_overview_badges_assets_in_maintenance_now(
    fleet_a: Installed, viewer_a: User, support: User
) -> None:
    now = timezone.now()
    client = client_for(viewer_a)
    assert "data-maintenance" not in client.get("/fleet/").content.decode()
    windows.window_open_emergency(
        actor=support, customer=fleet_a.asset.customer, title="Leak", ends_at=now + timedelta(hours=2)
    )
    assert "data-maintenance" in client.get("/fleet/").content.decode()


def test_the_api_plans_moves_and_cancels_for_staff_and_lists_for_customers(
    fleet_a: Installed, fleet_b: Installed, support: User, viewer_a: User, viewer_b: User
) -> None:
    staff = client_for(support)
    start = timezone.now() + timedelta(days=3)
    body = {
        "customer": str(fleet_a.asset.customer_id),
        "title": "Overhaul",
        "assets": [str(fleet_a.asset.pk)],
        "starts_at": start.isoformat(),
        "ends_at": (start + timedelta(hours=2)).isoformat(),
    }
    created = staff.post("/api/v1/maintenance-windows/", body, content_type="application/json")
    assert created.status_code == 201, created.content
    pk = created.json()["id"]
    # Another customer's asset in A's window: a field error, like a missing one.
    foreign = {**body, "assets": [str(fleet_b.asset.pk)]}
    refused = staff.post("/api/v1/maintenance-windows/", foreign, content_type="application/json")
    assert refused.status_code == 400
    assert refused.json()["errors"][0]["field"] == "assets"
    backwards = {**body, "ends_at": (start - timedelta(hours=1)).isoformat()}
    refused = staff.post("/api/v1/maintenance-windows/", backwards, content_type="application/json")
    assert refused.status_code == 400
    assert refused.json()["errors"][0]["field"] == "ends_at"

    moved = staff.patch(
        f"/api/v1/maintenance-windows/{pk}/",
        {
            "starts_at": (start + timedelta(days=1)).isoformat(),
            "ends_at": (start + timedelta(days=1, hours=3)).isoformat(),
        },
        content_type="application/json",
    )
    assert moved.status_code == 200, moved.content

    mine = client_for(viewer_a).get("/api/v1/maintenance-windows/").json()
    assert [w["id"] for w in mine["results"]] == [pk]
    assert client_for(viewer_b).get("/api/v1/maintenance-windows/").json()["results"] == []
    assert client_for(viewer_b).get(f"/api/v1/maintenance-windows/{pk}/").status_code == 404
    assert client_for(viewer_a).post(f"/api/v1/maintenance-windows/{pk}/cancel/").status_code == 403

    cancelled = staff.post(f"/api/v1/maintenance-windows/{pk}/cancel/")
    assert cancelled.json()["status"] == "cancelled"
    not_running = staff.post(
        f"/api/v1/maintenance-windows/{pk}/close-early/", {}, content_type="application/json"
    )
    assert not_running.status_code == 400


def test_a_weekly_window_shows_each_coming_week_and_the_page_costs_the_same_for_more_windows(
    customer_a: Customer, viewer_a: User, support: User
) -> None:
    now = timezone.now()
    client = client_for(viewer_a)
    plan_window(customer_a, support, now + timedelta(days=1), now=now, recurrence="weekly")

    def count_queries() -> tuple[int, str]:
        with CaptureQueriesContext(connection) as ctx:
            body = client.get("/fleet/maintenance/").content.decode()
        return len(ctx.captured_queries), body

    few, body = count_queries()
    assert body.count("every week") == 9  # days 1, 8, …, 57 of the next 60
    for offset in range(2, 7):
        site = SiteFactory(customer=customer_a)
        plan_window(customer_a, support, now + timedelta(days=offset), now=now, site=site,
                    assets=[AssetFactory(site=site)])  # fmt: skip
    many, _ = count_queries()
    assert many == few


def test_a_proposal_is_audited_and_shown_to_staff_only(
    customer_a: Customer, viewer_a: User, support: User
) -> None:
    now = timezone.now()
    window = plan_window(customer_a, None, now + timedelta(days=1), now=now, status=WindowStatus.PROPOSED)
    assert AuditEntry.objects.filter(action="maintenance_window.proposed", customer=customer_a).exists()
    assert str(window.pk) in client_for(support).get("/fleet/maintenance/").content.decode()
    assert str(window.pk) not in client_for(viewer_a).get("/fleet/maintenance/").content.decode()
    assert client_for(viewer_a).get(f"/fleet/maintenance/{window.pk}/").status_code == 404


@pytest.mark.parametrize(
    ("locale", "zone", "expected"),
    [
        ("de-DE", "Europe/Berlin", "6. Okt. 2026, 08:00 – 6. Okt. 2026, 12:00 (Europe/Berlin)\n"
                                   "Repeats: every week until 3. Nov. 2026"),
        ("en-US", "America/New_York", "Oct 6, 2026, 02:00 – Oct 6, 2026, 06:00 (America/New_York)\n"
                                      "Repeats: every week until Nov 3, 2026"),
    ],
)  # fmt: skip
def test_a_window_mail_writes_its_times_and_dates_as_each_recipient_reads_them(
    customer_a: Customer, admin_a: User, viewer_a: User, support: User, locale: str, zone: str, expected: str
) -> None:
    """Each recipient in their own locale and zone, written as their pages write them (|when, |day)."""
    viewer_a.locale, viewer_a.time_zone = locale, zone
    viewer_a.save()
    admin_a.locale, admin_a.time_zone = "fr-FR", "Asia/Tokyo"
    admin_a.save()
    mail.outbox.clear()

    plan_window(
        customer_a, support, datetime(2026, 10, 6, 6, 0, tzinfo=UTC), recurrence="weekly",
        recurs_until=date(2026, 11, 3),
    )  # fmt: skip
    run_outbox()

    by = {m.to[0]: m.body for m in mail.outbox}
    assert expected in by["viewer@alpha.test"]
    assert "6 oct. 2026, 15:00 – 6 oct. 2026, 19:00 (Asia/Tokyo)" in by["admin@alpha.test"]
    assert zone not in by["admin@alpha.test"]
