"""The live socket (/ws/live/) of a real server, opened as a browser of the portal opens it."""

from __future__ import annotations

import json

from websockets.sync.client import ClientConnection, connect
from websockets.typing import Origin


def open_socket(base: str, cookie: str) -> ClientConnection:
    """/ws/live/ as a browser of the portal opens it: the session cookie, the exact origin; the
    server's hello is read."""
    sock = connect(
        base.replace("http://", "ws://") + "/ws/live/",
        origin=Origin(base),
        additional_headers={"Cookie": f"sessionid={cookie}"},
        open_timeout=10,
        proxy=None,
        legacy=True,  # closed by the test itself, not in a `with` block
    )
    assert json.loads(sock.recv(timeout=10))["type"] == "hello"
    return sock
