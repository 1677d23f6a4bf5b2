"""An invitation through the real pipeline: API → commit → Redis → Celery worker → e-mail."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from django.test import Client

from portal.models import Customer, User
from tests.conftest import client_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def _wait_for_mail(mail_dir: Path, recipient: str, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for path in mail_dir.glob("*.log"):
            text = path.read_text()
            if f"To: {recipient}" in text:
                return text
        time.sleep(0.1)
    raise AssertionError(f"no e-mail to {recipient} within {timeout:.0f}s")


def test_invited_user_gets_mail_from_the_worker_and_logs_in(
    live_worker, mail_dir: Path, admin_a: User, customer_a: Customer
) -> None:
    response = client_for(admin_a).post(
        "/api/v1/users/",
        {"email": "fresh@alpha.test", "role": "customer_viewer"},
        content_type="application/json",
    )
    assert response.status_code == 201

    message = _wait_for_mail(mail_dir, "fresh@alpha.test")
    assert customer_a.name in message
    link = re.search(r"http://\S+?(/accounts/reset/\S+/)", message)
    assert link is not None

    client = Client()
    form = client.get(link.group(1), follow=True)
    assert form.status_code == 200
    client.post(
        form.redirect_chain[-1][0], {"new_password1": "from-the-worker", "new_password2": "from-the-worker"}
    )
    login = Client().post("/accounts/login/", {"username": "fresh@alpha.test", "password": "from-the-worker"})
    assert login.status_code == 302
