"""Logging in by e-mail, throttling, deactivation, password change and invitations."""

from __future__ import annotations

import re

import pytest
from django.core import mail
from django.test import Client

from portal import services
from portal.models import AuditEntry, Customer, User
from portal.roles import Role
from portal.tasks import user_invite_send
from tests.conftest import client_for
from tests.factories import PASSWORD


def _login(client: Client, email: str, password: str) -> int:
    return client.post("/accounts/login/", {"username": email, "password": password}).status_code


def test_log_in_by_email_lands_on_home(viewer_a: User) -> None:
    client = Client()
    response = client.post("/accounts/login/", {"username": "Viewer@Alpha.test", "password": PASSWORD})
    assert response.status_code == 302
    assert response["Location"] == "/"
    assert client.get("/").status_code == 200


def test_wrong_password_says_so_without_naming_the_account(viewer_a: User) -> None:
    response = Client().post("/accounts/login/", {"username": viewer_a.email, "password": "wrong-password"})
    assert response.status_code == 200
    assert "Please enter a correct e-mail and password" in response.content.decode()


def test_repeated_failures_lock_out_that_email_from_that_address(
    settings, viewer_a: User, admin_a: User
) -> None:
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert _login(client, viewer_a.email, "wrong-password") == 200
    # The limit-th failure locks the pair out...
    assert _login(client, viewer_a.email, "wrong-password") == 429
    # ...so even the right password is refused now,
    response = client.post("/accounts/login/", {"username": viewer_a.email, "password": PASSWORD})
    assert response.status_code == 429
    assert "Too many failed log-ins" in response.content.decode()
    assert "_auth_user_id" not in client.session
    # while another person at the same address is not affected.
    assert _login(Client(), admin_a.email, PASSWORD) == 302


def test_a_success_before_the_limit_resets_the_count(settings, viewer_a: User) -> None:
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        _login(client, viewer_a.email, "wrong-password")
    assert _login(client, viewer_a.email, PASSWORD) == 302
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert _login(Client(), viewer_a.email, "wrong-password") == 200


def test_deactivated_users_cannot_log_in(viewer_a: User) -> None:
    viewer_a.is_active = False
    viewer_a.save()
    assert _login(Client(), viewer_a.email, PASSWORD) == 200  # the form again, not a redirect


def test_deactivation_ends_open_sessions(admin_a: User, viewer_a: User) -> None:
    viewer_client = client_for(viewer_a)
    assert viewer_client.get("/").status_code == 200
    services.user_set_active(actor=admin_a, user=viewer_a, active=False)
    assert viewer_client.get("/").status_code == 302
    assert viewer_client.get("/api/v1/me/").status_code == 401


def test_password_change(viewer_a: User) -> None:
    client = Client()
    client.post("/accounts/login/", {"username": viewer_a.email, "password": PASSWORD})
    response = client.post(
        "/accounts/password/",
        {
            "old_password": PASSWORD,
            "new_password1": "a-much-better-secret",
            "new_password2": "a-much-better-secret",
        },
    )
    assert response.status_code == 302
    assert client.get("/").status_code == 200  # the session survives its own password change
    assert _login(Client(), viewer_a.email, PASSWORD) == 200
    assert _login(Client(), viewer_a.email, "a-much-better-secret") == 302
    assert AuditEntry.objects.filter(action="user.password_changed", target_id=str(viewer_a.pk)).exists()


def test_password_change_needs_the_old_password(viewer_a: User) -> None:
    client = client_for(viewer_a)
    response = client.post(
        "/accounts/password/",
        {
            "old_password": "not-it",
            "new_password1": "a-much-better-secret",
            "new_password2": "a-much-better-secret",
        },
    )
    assert response.status_code == 200
    viewer_a.refresh_from_db()
    assert viewer_a.check_password(PASSWORD)


def test_logout_needs_post_and_ends_the_session(viewer_a: User) -> None:
    client = client_for(viewer_a)
    assert client.get("/accounts/logout/").status_code == 405
    assert client.post("/accounts/logout/").status_code == 302
    assert client.get("/").status_code == 302


def test_invitation_mail_sets_a_password(admin_a: User, customer_a: Customer) -> None:
    user = services.user_invite(
        actor=admin_a, email="New.Person@Alpha.test", role=Role.CUSTOMER_VIEWER, customer=customer_a
    )
    assert user is not None  # a new address: the service made a user
    assert user.email == "new.person@alpha.test"
    assert not user.has_usable_password()
    assert _login(Client(), user.email, "") == 200

    assert user_invite_send(user_id=str(user.pk)) is True
    (message,) = mail.outbox
    assert message.to == [user.email]
    assert customer_a.name in message.body
    link = re.search(r"http://\S+/accounts/reset/\S+/", str(message.body))
    assert link is not None

    client = Client()
    form = client.get(link.group(0).replace("http://127.0.0.1:8000", ""), follow=True)
    assert form.status_code == 200
    set_url = form.redirect_chain[-1][0]
    done = client.post(set_url, {"new_password1": "invited-and-happy", "new_password2": "invited-and-happy"})
    assert done.status_code == 302
    assert _login(Client(), user.email, "invited-and-happy") == 302
    # A second send is skipped: the password is set.
    assert user_invite_send(user_id=str(user.pk)) is False


# Inviting an address that exists: tests/portal/test_invitations.py (a customer admin is told
# nothing about other customers' accounts; operators are told it exists).


# The lockout keys on the real client address (docs/security.md, "Log-in throttling").


def _login_from(email: str, password: str, remote: str = "127.0.0.1", forwarded: str = "") -> int:
    extra = {"REMOTE_ADDR": remote, **({"HTTP_X_FORWARDED_FOR": forwarded} if forwarded else {})}
    return Client().post("/accounts/login/", {"username": email, "password": password}, **extra).status_code


def test_a_new_x_forwarded_for_per_attempt_does_not_escape_the_lockout(settings, viewer_a: User) -> None:
    for n in range(settings.AXES_FAILURE_LIMIT):
        _login_from(viewer_a.email, "wrong-password", forwarded=f"198.51.100.{n}")
    assert _login_from(viewer_a.email, PASSWORD, forwarded="198.51.100.200") == 429


def test_behind_a_trusted_proxy_the_client_is_the_hop_before_it(settings, viewer_a: User) -> None:
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    for n in range(settings.AXES_FAILURE_LIMIT):  # the client's own claims vary; the proxy appends
        _login_from(viewer_a.email, "wrong-password", remote="10.0.0.2", forwarded=f"1.1.1.{n}, 203.0.113.7")
    assert _login_from(viewer_a.email, PASSWORD, remote="10.0.0.2", forwarded="203.0.113.7") == 429
    # Another client behind the same proxy is not locked out.
    assert _login_from(viewer_a.email, PASSWORD, remote="10.0.0.2", forwarded="203.0.113.8") == 302


@pytest.mark.parametrize(
    ("remote", "forwarded", "trusted", "client"),
    [
        ("192.0.2.1", "203.0.113.7", (), "192.0.2.1"),  # no trusted proxy: the header is ignored
        ("10.0.0.2", "6.6.6.6, 203.0.113.7", ("10.0.0.0/8",), "203.0.113.7"),
        ("10.0.0.2", "203.0.113.7, 10.0.0.9", ("10.0.0.0/8",), "203.0.113.7"),  # two proxies
        ("10.0.0.2", "", ("10.0.0.0/8",), "10.0.0.2"),
        ("10.0.0.2", "not-an-address", ("10.0.0.0/8",), "10.0.0.2"),
        ("10.0.0.2", "[2001:db8::1]:443", ("10.0.0.0/8",), "2001:db8::1"),
        ("10.0.0.2", "203.0.113.7:5678", ("10.0.0.0/8",), "203.0.113.7"),
        ("::1", "203.0.113.7", ("::1",), "203.0.113.7"),
        ("", "203.0.113.7", (), "0.0.0.0"),  # noqa: S104 - a peer without an address (a Unix socket)
        ("", "203.0.113.7", ("0.0.0.0/32",), "203.0.113.7"),
    ],
)
def test_client_address(remote: str, forwarded: str, trusted: tuple[str, ...], client: str) -> None:
    from portal.accounts import client_address

    assert client_address(remote, forwarded, trusted) == client


def test_one_address_spraying_many_accounts_is_locked_out(settings, customer_a: Customer) -> None:
    settings.LOGIN_ADDRESS_FAILURE_LIMIT = 6
    users = [
        User.objects.create_user(
            f"user{n}@alpha.test", PASSWORD, role=Role.CUSTOMER_VIEWER, customer=customer_a
        )
        for n in range(4)
    ]
    codes = [  # two guesses each, far below the limit per account; the sixth locks the address
        _login_from(user.email, guess, remote="192.0.2.50")
        for user in users[:3]
        for guess in ("Summer2026!", "Password123")
    ]
    assert codes == [200] * 5 + [429]
    # The address is locked out, even for an account it never tried, even with its password,
    assert _login_from(users[3].email, PASSWORD, remote="192.0.2.50") == 429
    # while other addresses log in.
    assert _login_from(users[3].email, PASSWORD, remote="192.0.2.51") == 302
