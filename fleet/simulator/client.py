"""The HTTP side of the simulator: one POST of heartbeats with the standard library, and its
answer classified (`Answer`) so that the runner can back off, split, drop or retry."""

from __future__ import annotations

import http.client
import ipaddress
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import Any, Protocol

from fleet.simulator.spec import Heartbeat, utc_now

INGEST_PATH = "/api/v1/ingest/heartbeats"


@dataclass(frozen=True)
class Answer:
    """What came back for one POST; `status` None means no HTTP answer at all."""

    status: int | None
    accepted: int = 0
    retry_after: float | None = None
    bad_indices: tuple[int, ...] = ()
    detail: str = ""


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """urllib would turn a redirected POST into a GET without the body; report the 3xx instead."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _retry_after(value: str | None) -> float | None:
    """Retry-After is either seconds or an HTTP date (RFC 9110)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - utc_now()).total_seconds())


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Sender:
    """Posts heartbeats to the ingest endpoint with the standard library only.

    Never raises for what the network or the server does: every outcome is an `Answer`, so a
    server that is not up yet is just another answer to back off from.
    """

    def __init__(self, base_url: str, *, timeout: float = 15.0) -> None:
        parts = urllib.parse.urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self.url = base_url.rstrip("/") + INGEST_PATH
        self.timeout = timeout
        handlers: list[urllib.request.BaseHandler] = [_NoRedirect()]
        if _is_loopback(parts.hostname):
            handlers.append(urllib.request.ProxyHandler({}))  # a local server is never behind a proxy
        self._opener = urllib.request.build_opener(*handlers)

    def post(self, token: str, heartbeats: Sequence[Heartbeat]) -> Answer:
        # A lone heartbeat goes as an object, a replay as an array: both shapes are the contract.
        body: Any = heartbeats[0] if len(heartbeats) == 1 else list(heartbeats)
        request = urllib.request.Request(  # noqa: S310 - the scheme is checked to be http(s) above
            self.url,
            data=json.dumps(body, allow_nan=False).encode(),
            method="POST",
            headers={"Authorization": f"Device {token}", "Content-Type": "application/json"},
        )
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                return self._answer(response.status, response.headers.get("Retry-After"), response.read())
        except urllib.error.HTTPError as exc:
            try:
                payload = exc.read()
            except (OSError, http.client.HTTPException):
                payload = b""
            return self._answer(exc.code, exc.headers.get("Retry-After") if exc.headers else None, payload)
        except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as exc:
            reason = getattr(exc, "reason", None) or exc
            return Answer(status=None, detail=f"{type(exc).__name__}: {reason}")

    @staticmethod
    def _answer(status: int, retry_after: str | None, payload: bytes) -> Answer:
        try:
            data = json.loads(payload) if payload else {}
        except ValueError:
            data = {}
        if not isinstance(data, dict):
            data = {}
        accepted = data.get("accepted") if status == 202 else 0
        bad: set[int] = set()
        for error in data.get("errors") or []:
            if isinstance(error, dict) and type(error.get("index")) is int:
                bad.add(error["index"])
        return Answer(
            status=status,
            accepted=accepted if type(accepted) is int else 0,
            retry_after=_retry_after(retry_after),
            bad_indices=tuple(sorted(bad)),
            detail=str(data.get("detail", ""))[:200],
        )


class PostClient(Protocol):
    """What a FleetRunner needs from a sender (`Sender`, or a fake in tests)."""

    def post(self, token: str, heartbeats: Sequence[Heartbeat]) -> Answer: ...
