"""The desk's live messages carry the ticket's state (what its pages show), go to its own
customer and staff only, and the sweep says when a maintenance window moves a due time."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.testing import WebsocketCommunicator
from django.utils import timezone

from portal.asgi import application
from portal.models import Customer, User
from support import services
from support.models import Status, Ticket
from tests.fleet_fixtures import Installed
from tests.support.conftest import opened_before, socket_headers, window_before

pytestmark = pytest.mark.django_db(transaction=True)


async def _connect(user: User) -> WebsocketCommunicator:
    socket = WebsocketCommunicator(
        application, "/ws/live/", headers=await sync_to_async(socket_headers)(user)
    )
    assert (await socket.connect(timeout=5))[0]
    while not await socket.receive_nothing(timeout=0.3):  # whatever a socket says on connect
        await socket.receive_json_from()
    return socket


async def _messages(socket: WebsocketCommunicator) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    while not await socket.receive_nothing(timeout=0.5):
        frame = await socket.receive_json_from()
        got.extend(frame if isinstance(frame, list) else [frame])
    return got


def test_ticket_messages_carry_the_state_to_its_customer_and_staff_only(
    customer_a: Customer, viewer_a: User, viewer_b: User, support: User
) -> None:
    ticket = services.ticket_open(actor=viewer_a, customer=customer_a, subject="Leak", description="Oil")

    async def scenario() -> None:
        mine, theirs, staff = await _connect(viewer_a), await _connect(viewer_b), await _connect(support)
        await sync_to_async(services.ticket_assign)(actor=support, ticket=ticket, assignee=support)
        await sync_to_async(services.ticket_set_priority)(actor=support, ticket=ticket, priority="P1")
        # Overdue: the sweep (the worker's beat task) flags it and says so.
        await sync_to_async(Ticket.objects.filter(pk=ticket.pk).update)(
            first_response_due=timezone.now() - timedelta(minutes=1)
        )
        await sync_to_async(services.sla_sweep)()
        got = await _messages(mine)
        assert [m["type"] for m in got] == ["ticket.updated", "ticket.updated", "ticket.sla"]
        assigned, prioritised, swept = got
        assert assigned["assignee"] == (support.full_name or support.email)
        assert (prioritised["priority"], prioritised["status_label"]) == ("P1", "New")
        assert prioritised["terms"] == "4 h to respond, 1 d to resolve"
        p1_due = ticket.created_at + timedelta(minutes=240)  # the default P1 terms
        assert prioritised["first_response_due"] == p1_due.isoformat()
        assert (swept["sla_state"], swept["first_response_breached"], swept["assignee"]) == (
            "breached", True, support.full_name or support.email,
        )  # fmt: skip
        assert [m["type"] for m in await _messages(staff)] == [
            "ticket.updated",
            "ticket.updated",
            "ticket.sla",
        ]
        assert await _messages(theirs) == []  # customer B's socket hears nothing of A's ticket
        for socket in (mine, theirs, staff):
            await socket.disconnect()

    async_to_sync(scenario)()


def test_a_maintenance_window_moves_the_stored_due_time_and_goes_out_live(
    customer_a: Customer, viewer_a: User, support: User, fleet_a: Installed
) -> None:
    now = timezone.now()
    ticket = opened_before(customer_a, fleet_a, viewer_a, now)
    services.ticket_comment(actor=support, ticket=ticket, body="Looking")  # now due: the resolution
    ticket.refresh_from_db()
    before = ticket.due_at
    assert before is not None
    assert ticket.status == Status.OPEN
    window_before(customer_a, fleet_a, now)

    async def scenario() -> None:
        mine = await _connect(viewer_a)
        await sync_to_async(services.sla_sweep)(now=now)
        (swept,) = await _messages(mine)
        stored = await sync_to_async(Ticket.objects.get)(pk=ticket.pk)
        assert stored.due_at == before + timedelta(hours=1)  # the queue sorts and shows due_at
        assert swept["type"] == "ticket.sla"
        assert swept["due_at"] == stored.due_at.isoformat()
        assert swept["resolution_due"] == stored.due_at.isoformat()
        await mine.disconnect()

    async_to_sync(scenario)()
