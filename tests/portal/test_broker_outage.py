"""Tasks started from a request survive a broker outage: the outbox holds them until Redis is
back (a real Redis of the test's own, stopped and started again on the same port; a real
uvicorn, Celery worker and beat)."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from billing.models import Contract, InvoiceRun
from portal.models import OutboxMessage, User
from portal.tokens import api_token_issue
from support import services as support_services
from support.models import Ticket
from tests.fleet_fixtures import Installed
from tests.integration import start_asgi, start_beat, start_worker, stop_process, wait_until
from tests.services import RedisServer

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def post(base: str, token: str, path: str, body: dict[str, Any]) -> tuple[int, float]:
    """POST JSON with an API token; returns the status and how long the answer took."""
    request = urllib.request.Request(  # noqa: S310 - the test's own loopback server
        f"{base}{path}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Token {token}"},
        method="POST",
    )
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310 - loopback only
            return int(response.status), time.monotonic() - started
    except urllib.error.HTTPError as error:
        return int(error.code), time.monotonic() - started


def mail_to(mail_dir: Path, recipient: str, containing: str) -> bool:
    return any(
        f"To: {recipient}" in text and containing in text
        for text in (path.read_text(errors="replace") for path in mail_dir.glob("*.log"))
    )


def test_a_run_an_invitation_and_a_ticket_mail_started_while_redis_is_down_happen_once_it_is_back(
    service_env: dict[str, str],
    mail_dir: Path,
    tmp_path: Path,
    finance: User,
    admin_a: User,
    viewer_a: User,
    support: User,
    contract_a: Contract,
    fleet_a: Installed,
) -> None:
    with support_services.silently():
        ticket = support_services.ticket_open(
            actor=viewer_a, customer=viewer_a.customer, subject="Noisy fan", description="It hums."
        )
    tokens = {user: api_token_issue(user=user) for user in (finance, admin_a, support)}
    redis = RedisServer().start()
    env = {**service_env, "REDIS_URL": redis.url}
    processes: list[Any] = []
    try:
        processes.append(start_worker(env, name="outage"))
        processes.append(start_beat(env, name="beat-outage", schedule=tmp_path / "beat-schedule"))
        server, base = start_asgi(env, name="asgi-outage")
        processes.append(server)

        redis.process.terminate()  # type: ignore[union-attr]
        redis.process.wait()  # type: ignore[union-attr]
        run = post(base, tokens[finance], "/api/v1/invoice-runs/", {"period": "2026-10"})
        invite = post(base, tokens[admin_a], "/api/v1/users/", {"email": "late@alpha.test", "role": "customer_viewer"})  # fmt: skip  # noqa: E501
        reply = post(base, tokens[support], f"/api/v1/tickets/{ticket.pk}/comments/", {"body": "On our way."})
        assert (run[0], invite[0], reply[0]) == (202, 201, 201)
        assert max(run[1], invite[1], reply[1]) < 2  # the broker's absence fails fast
        assert InvoiceRun.objects.get().status == "queued"
        # (support.ticket_notify twice: the reply and the status change it made)
        assert set(OutboxMessage.objects.values_list("task", flat=True)) == {
            "billing.invoice_run", "portal.user_invite_send", "support.ticket_notify",
        }  # fmt: skip
        time.sleep(1)
        assert InvoiceRun.objects.get().status == "queued"

        redis = RedisServer.on_port(redis.port).start()  # same address, empty
        wait_until(lambda: InvoiceRun.objects.get().status == "done", "the run to complete")
        wait_until(lambda: mail_to(mail_dir, "late@alpha.test", "invited"), "the invitation")
        wait_until(lambda: mail_to(mail_dir, viewer_a.email, "On our way."), "the reply's e-mail")
        assert not OutboxMessage.objects.exists()
        assert Ticket.objects.get().number == ticket.number
    finally:
        for process in reversed(processes):
            stop_process(process)
        redis.stop()
