"""E-mailed links point at PORTAL_BASE_URL, which `make run` sets from its HOST and PORT: the
invitation link used to point at port 8000 whatever port the portal ran on."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import re
from pathlib import Path
from types import ModuleType

import pytest
from django.core import mail
from django.test import Client, override_settings

from portal.models import Customer, User
from portal.services import user_invite
from portal.tasks import user_invite_send

ROOT = Path(__file__).resolve().parents[2]
BASE = "http://127.0.0.1:8123"


def bin_run() -> ModuleType:
    loader = importlib.machinery.SourceFileLoader("bin_run", str(ROOT / "bin" / "run"))
    spec = importlib.util.spec_from_loader("bin_run", loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ({"PORT": "8123"}, BASE),
        ({"PORT": "8123", "HOST": "0.0.0.0"}, BASE),  # noqa: S104 - all interfaces: links on loopback
        ({"PORT": "8123", "HOST": "192.0.2.7"}, "http://192.0.2.7:8123"),
        ({"PORT": "8123", "PORTAL_BASE_URL": "https://portal.example.com"}, "https://portal.example.com"),
    ],
)
def test_make_run_sets_portal_base_url_from_its_host_and_port(given: dict[str, str], expected: str) -> None:
    env = dict(given)
    bin_run().demo_defaults(env)
    assert env["PORTAL_BASE_URL"] == expected


@override_settings(PORTAL_BASE_URL=BASE + "/")
def test_the_invitation_link_starts_with_portal_base_url_and_works(
    admin_a: User, customer_a: Customer
) -> None:
    # given an invitation sent while the portal runs on port 8123
    user = user_invite(
        actor=admin_a, customer=customer_a, email="new.person@alpha.test", role="customer_viewer"
    )
    assert user is not None
    mail.outbox.clear()
    assert user_invite_send(user_id=str(user.pk)) is True

    # then its link is on that port, and following it sets a password
    (message,) = mail.outbox
    link = re.search(r"https?://\S+/accounts/reset/\S+/", str(message.body))
    assert link is not None
    assert link.group(0).startswith(BASE + "/accounts/reset/")
    client = Client()
    form = client.get(link.group(0).removeprefix(BASE), follow=True)
    assert form.status_code == 200
    done = client.post(
        form.redirect_chain[-1][0],
        {"new_password1": "invited-and-happy", "new_password2": "invited-and-happy"},
    )
    assert done.status_code == 302
    user.refresh_from_db()
    assert user.check_password("invited-and-happy")


@override_settings(PORTAL_BASE_URL=BASE)
def test_the_password_reset_link_is_on_portal_base_url_not_the_requests_host(viewer_a: User) -> None:
    mail.outbox.clear()
    answer = Client().post("/accounts/password/reset/", {"email": viewer_a.email}, HTTP_HOST="localhost")
    assert answer.status_code == 302

    (message,) = mail.outbox
    link = re.search(r"https?://\S+/accounts/reset/\S+/", str(message.body))
    assert link is not None
    assert link.group(0).startswith(BASE + "/accounts/reset/")


def test_every_emailed_link_is_built_on_portal_base_url() -> None:
    """One place builds links for e-mails (portal.links); no template takes a request's host."""
    builders = [
        path.relative_to(ROOT).as_posix()
        for app in ("portal", "fleet", "billing", "support")
        for path in (ROOT / app).rglob("*.py")
        if "settings.PORTAL_BASE_URL" in path.read_text()
    ]
    assert builders == ["portal/links.py"]
    for app in ("portal", "fleet", "billing", "support"):
        for template in (ROOT / app / "templates").rglob("*.txt"):
            assert "{{ domain }}" not in template.read_text(), template
