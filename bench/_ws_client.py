"""A lean WebSocket client for bench/live.py's S2: a thousand sockets in one process.

The S2 client shares the machine's two cores with the server it measures, so what it spends
per frame is taken from the server. The `websockets` client runs its parser, a message queue
and a reader task's wake-up for every frame (~60 µs of the client's CPU per frame under S2's
load, ~0.35 of a core at 500 heartbeats/s). This one is an asyncio protocol that parses the
frames where the bytes arrive and hands each text message to a callback, stamped with the
moment its bytes came in (no task hop between arrival and stamp).

What it speaks of RFC 6455: the opening handshake (checks 101 and Sec-WebSocket-Accept),
text messages (fragmented ones too), masked client frames, pong for ping, the closing
handshake. No extension is offered: S2's server (the Procfile's uvicorn flags) declines
permessage-deflate anyway. S3's comparison with stock uvicorn keeps the `websockets` client,
which offers it as browsers do.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import time
from collections.abc import Callable
from typing import Any, cast

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
TEXT, CONTINUATION, CLOSE, PING, PONG = 0x1, 0x0, 0x8, 0x9, 0xA

OnMessage = Callable[[bytes, float], None]


class HandshakeError(ConnectionError):
    pass


class LeanSocket(asyncio.Protocol):
    """One client WebSocket. Until `on_message` is set, messages queue for `recv()`."""

    def __init__(self, request: bytes, key: bytes) -> None:
        loop = asyncio.get_running_loop()
        self._request = request
        self._accept = base64.b64encode(hashlib.sha1(key + GUID).digest())  # noqa: S324 - RFC 6455
        self._buffer = bytearray()
        self._fragments: list[bytes] = []
        self._queue: asyncio.Queue[tuple[bytes, float]] = asyncio.Queue()
        self.opened: asyncio.Future[None] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()
        self.transport: asyncio.Transport | None = None
        self.on_message: OnMessage | None = None
        self.close_code: int | None = None
        self._close_sent = False

    @classmethod
    async def open(
        cls, port: int, path: str, *, origin: str, cookie: str, timeout: float = 60.0
    ) -> LeanSocket:
        key = base64.b64encode(os.urandom(16))
        request = (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key.decode()}\r\nSec-WebSocket-Version: 13\r\n"
            f"Origin: {origin}\r\nCookie: {cookie}\r\n\r\n"
        ).encode()
        loop = asyncio.get_running_loop()
        _, sock = await asyncio.wait_for(
            loop.create_connection(lambda: cls(request, key), "127.0.0.1", port), timeout
        )
        try:
            await asyncio.wait_for(asyncio.shield(sock.opened), timeout)
        except BaseException:
            sock.abort()
            raise
        return sock

    # ------------------------------------------------------------------ asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass of it
        self.transport.write(self._request)

    def data_received(self, data: bytes) -> None:
        at = time.time()
        buffer = self._buffer
        buffer += data
        if not self.opened.done():
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(buffer[:end]).split(b"\r\n")
            del buffer[: end + 4]
            headers = dict(line.split(b":", 1) for line in head[1:] if b":" in line)
            accept = {k.strip().lower(): v.strip() for k, v in headers.items()}.get(b"sec-websocket-accept")
            if not head[0].startswith(b"HTTP/1.1 101") or accept != self._accept:
                self.opened.set_exception(HandshakeError(head[0].decode(errors="replace")))
                self.abort()
                return
            self.opened.set_result(None)
        while len(buffer) >= 2:
            first, second = buffer[0], buffer[1]
            length, start = second & 0x7F, 2
            if length == 126:
                if len(buffer) < 4:
                    return
                length, start = int.from_bytes(buffer[2:4], "big"), 4
            elif length == 127:
                if len(buffer) < 10:
                    return
                length, start = int.from_bytes(buffer[2:10], "big"), 10
            if second & 0x80:  # a server never masks
                self._fail(1002)
                return
            if len(buffer) < start + length:
                return
            payload = bytes(buffer[start : start + length])
            del buffer[: start + length]
            self._frame(first & 0x80 != 0, first & 0x0F, payload, at)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.close_code is None:
            self.close_code = 1006
        if not self.opened.done():
            self.opened.set_exception(exc or ConnectionError("closed during the handshake"))
        if not self.closed.done():
            self.closed.set_result(None)

    # ------------------------------------------------------------------ frames

    def _frame(self, fin: bool, opcode: int, payload: bytes, at: float) -> None:
        if opcode in (TEXT, CONTINUATION):
            if not fin:
                self._fragments.append(payload)
                return
            if self._fragments:
                payload = b"".join([*self._fragments, payload])
                self._fragments.clear()
            if self.on_message is not None:
                self.on_message(payload, at)
            else:
                self._queue.put_nowait((payload, at))
        elif opcode == PING:
            self._send(PONG, payload)
        elif opcode == CLOSE:
            self.close_code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
            if not self._close_sent:
                self._send(CLOSE, payload[:2])
            if self.transport is not None:
                self.transport.close()

    def _send(self, opcode: int, payload: bytes) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        if opcode == CLOSE:
            self._close_sent = True
        size = len(payload)
        if size < 126:
            head = bytes((0x80 | opcode, 0x80 | size))
        elif size < 1 << 16:
            head = bytes((0x80 | opcode, 0x80 | 126)) + size.to_bytes(2, "big")
        else:
            head = bytes((0x80 | opcode, 0x80 | 127)) + size.to_bytes(8, "big")
        mask = os.urandom(4)
        repeated = (mask * (size // 4 + 1))[:size]
        masked = (int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")).to_bytes(size, "big")
        self.transport.write(head + mask + masked)

    def _fail(self, code: int) -> None:
        self.close_code = code
        self._send(CLOSE, code.to_bytes(2, "big"))
        self.abort()

    # ------------------------------------------------------------------ the caller's side

    def hand_over(self, on_message: OnMessage) -> None:
        """From now on every message goes to `on_message`, those queued so far first."""
        while not self._queue.empty():
            on_message(*self._queue.get_nowait())
        self.on_message = on_message

    def send_text(self, text: str) -> None:
        self._send(TEXT, text.encode())

    async def recv(self, timeout: float) -> bytes:
        """The next message (only before `on_message` is set)."""
        getting = asyncio.ensure_future(self._queue.get())
        either: set[asyncio.Future[Any]] = {getting, self.closed}
        done, _ = await asyncio.wait(either, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        if getting in done:
            return getting.result()[0]
        getting.cancel()
        if self.closed.done():
            raise ConnectionError(f"closed ({self.close_code})")
        raise TimeoutError

    async def close(self, timeout: float = 2.0) -> None:
        """The closing handshake: 1000, then the server's answer (or the timeout)."""
        self._send(CLOSE, (1000).to_bytes(2, "big"))
        try:
            await asyncio.wait_for(asyncio.shield(self.closed), timeout)
        except TimeoutError:
            self.abort()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()
