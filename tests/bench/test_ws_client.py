"""bench/_ws_client.py, the S2 benchmark's WebSocket client, against the real server."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.test import Client

from portal.models import User

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from _ws_client import HandshakeError, LeanSocket

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def _session_cookie(user: User) -> str:
    client = Client()
    client.force_login(user)
    return f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"


def test_the_benchmark_client_speaks_websocket_with_the_server(asgi_server: str, viewer_a: User) -> None:
    port = urlsplit(asgi_server).port
    assert port is not None
    cookie = _session_cookie(viewer_a)

    async def scenario() -> None:
        sock = await LeanSocket.open(port, "/ws/live/", origin=asgi_server, cookie=cookie, timeout=10)
        assert json.loads(await sock.recv(10))["type"] == "hello"
        sock.send_text(json.dumps({"type": "ping"}))
        assert json.loads(await sock.recv(10)) == {"type": "pong"}
        # A long message (a 16-bit length) from the client, answered with the server's error.
        sock.send_text(json.dumps({"type": "subscribe", "topic": "asset", "id": "x" * 300}))
        answer = json.loads(await sock.recv(10))
        assert answer["type"] == "error"
        assert answer["detail"] == "Not found."
        seen: list[tuple[bytes, float]] = []
        sock.hand_over(lambda raw, at: seen.append((raw, at)))
        sock.send_text(json.dumps({"type": "ping"}))
        for _ in range(100):
            if seen:
                break
            await asyncio.sleep(0.05)
        assert [json.loads(raw) for raw, _ in seen] == [{"type": "pong"}]
        await sock.close()
        assert sock.close_code == 1000
        assert sock.closed.done()

        with pytest.raises(HandshakeError):  # a foreign origin is refused before the upgrade
            await LeanSocket.open(port, "/ws/live/", origin="http://evil.example", cookie=cookie, timeout=10)

    asyncio.run(scenario())
