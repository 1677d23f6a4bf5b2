"""Live usage: recorded usage of a covered asset reaches its customer's sockets, nobody else's."""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client

from billing.models import Contract
from fleet import events
from portal.asgi import application
from portal.models import User
from tests.fleet_fixtures import Installed
from tests.outbox import hold_outbox, run_outbox

pytestmark = pytest.mark.django_db(transaction=True)


def _headers(user: User) -> list[tuple[bytes, bytes]]:
    client = Client()
    client.force_login(user)
    return [(b"origin", b"http://testserver"), (b"host", b"testserver"),
            (b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode())]  # fmt: skip


def reported(asset_ids: list[str]) -> None:
    """What an ingest batch records, then what the relay and a worker do with it."""
    events.record(events.AssetStatusChanged(asset_ids=asset_ids))
    assert run_outbox() == ["billing.assets_reported"]


def test_usage_updates_go_to_the_covered_assets_customer_only(
    viewer_a: User,
    viewer_b: User,
    contract_a: Contract,
    contract_b: Contract,
    fleet_a: Installed,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hold_outbox(monkeypatch)  # no worker here: this process runs the task
    # billing subscribed its task at start-up
    assert events.subscribers(events.AssetStatusChanged) == ["billing.assets_reported"]
    a_headers, b_headers = _headers(viewer_a), _headers(viewer_b)

    async def scenario() -> None:
        mine = WebsocketCommunicator(application, "/ws/live/", headers=a_headers)
        theirs = WebsocketCommunicator(application, "/ws/live/", headers=b_headers)
        assert (await mine.connect(timeout=5))[0]
        assert (await theirs.connect(timeout=5))[0]
        for socket in (mine, theirs):
            while not await socket.receive_nothing(timeout=0.3):
                await socket.receive_json_from()
        await sync_to_async(reported)([str(fleet_a.asset.pk)])
        message = await mine.receive_json_from(timeout=5)
        assert message == {
            "type": "usage.updated",
            "asset": str(fleet_a.asset.pk),
            "contract": str(contract_a.pk),
        }
        assert await theirs.receive_nothing(timeout=1)
        await mine.disconnect()
        await theirs.disconnect()

    async_to_sync(scenario)()
