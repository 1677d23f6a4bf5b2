"""API tokens for scripts: obtain, use, revoke; hashed at rest; scoped like everything else."""

from __future__ import annotations

from typing import Any

from django.test import Client

from portal.models import ApiToken, AuditEntry, User
from portal.tokens import api_token_issue
from tests.conftest import client_for
from tests.factories import PASSWORD


def obtain(email: str, password: str, **extra: Any) -> Any:
    return Client().post(
        "/api/v1/auth/token/",
        {"email": email, "password": password, **extra},
        content_type="application/json",
    )


def with_token(token: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Token {token}"}


def test_a_token_for_email_and_password_works_on_the_api(viewer_a: User) -> None:
    response = obtain(viewer_a.email.upper(), PASSWORD, name="my script")
    assert response.status_code == 201
    token = response.json()["token"]
    me = Client().get("/api/v1/me/", **with_token(token))
    assert me.status_code == 200
    assert me.json()["email"] == viewer_a.email
    stored = ApiToken.objects.get(user=viewer_a)
    assert token not in (stored.token_hash, stored.prefix)
    assert stored.name == "my script"
    assert stored.last_used_at is not None


def test_token_writes_need_no_csrf_token(admin_a: User) -> None:
    token = api_token_issue(user=admin_a)
    client = Client(enforce_csrf_checks=True)
    response = client.post(
        "/api/v1/users/", {"email": "script@alpha.test", "role": "customer_viewer"},
        content_type="application/json", **with_token(token),
    )  # fmt: skip
    assert response.status_code == 201


def test_session_writes_still_need_csrf(admin_a: User) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_a)
    response = client.post(
        "/api/v1/users/",
        {"email": "x@alpha.test", "role": "customer_viewer"},
        content_type="application/json",
    )
    assert response.status_code == 403


def test_wrong_password_gets_400_and_repeated_failures_429(viewer_a: User, settings: Any) -> None:
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert obtain(viewer_a.email, "wrong-password").status_code == 400
    assert obtain(viewer_a.email, "wrong-password").status_code in (400, 429)
    assert obtain(viewer_a.email, PASSWORD).status_code == 429
    assert not ApiToken.objects.exists()


def test_unknown_and_revoked_tokens_get_401(viewer_a: User) -> None:
    assert Client().get("/api/v1/me/", **with_token("fpu_00000000_nope")).status_code == 401
    token = obtain(viewer_a.email, PASSWORD).json()["token"]
    assert Client().delete("/api/v1/auth/token/", **with_token(token)).status_code == 204
    response = Client().get("/api/v1/me/", **with_token(token))
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"


def test_deactivating_the_user_ends_their_tokens(viewer_a: User, admin_a: User) -> None:
    from portal.services import user_set_active

    token = api_token_issue(user=viewer_a)
    user_set_active(actor=admin_a, user=viewer_a, active=False)
    assert Client().get("/api/v1/me/", **with_token(token)).status_code == 401


def test_a_customer_admin_sees_and_revokes_their_customers_tokens_only(
    admin_a: User, viewer_a: User, viewer_b: User
) -> None:
    api_token_issue(user=viewer_a, name="alpha script")
    api_token_issue(user=viewer_b, name="bravo script")
    theirs = ApiToken.objects.get(user=viewer_b)
    mine = ApiToken.objects.get(user=viewer_a)
    client = client_for(admin_a)
    listed = client.get("/api/v1/tokens/").json()["results"]
    assert [t["name"] for t in listed] == ["alpha script"]
    assert client.post(f"/api/v1/tokens/{theirs.pk}/revoke/").status_code == 404
    assert client.post(f"/api/v1/tokens/{mine.pk}/revoke/").status_code == 200
    mine.refresh_from_db()
    theirs.refresh_from_db()
    assert mine.revoked_at is not None
    assert theirs.revoked_at is None


def test_a_viewer_sees_only_their_own_tokens(viewer_a: User, admin_a: User) -> None:
    api_token_issue(user=viewer_a, name="mine")
    api_token_issue(user=admin_a, name="the admin's")
    listed = client_for(viewer_a).get("/api/v1/tokens/").json()["results"]
    assert [t["name"] for t in listed] == ["mine"]


def test_the_api_lockout_is_json_with_retry_after(viewer_a: User, settings: Any) -> None:
    for _ in range(settings.AXES_FAILURE_LIMIT):
        obtain(viewer_a.email, "wrong-password")
    response = obtain(viewer_a.email, PASSWORD)
    assert response.status_code == 429
    assert response.json() == {"detail": "Too many failed attempts; try again later."}
    assert int(response["Retry-After"]) == int(settings.AXES_COOLOFF_TIME.total_seconds())


def test_wrong_credentials_say_so_in_one_string(viewer_a: User) -> None:
    response = obtain(viewer_a.email, "wrong-password")
    assert response.status_code == 400
    assert response.json() == {
        "detail": "Unable to log in with these credentials.",
        "errors": [{"field": None, "message": "Unable to log in with these credentials."}],
    }


def test_users_of_a_deactivated_customer_get_no_token(viewer_a: User) -> None:
    customer = viewer_a.customer
    assert customer is not None
    customer.is_active = False
    customer.save()
    assert obtain(viewer_a.email, PASSWORD).status_code == 400
    assert not ApiToken.objects.exists()


def test_api_errors_are_json_even_for_malformed_ids(viewer_a: User) -> None:
    response = client_for(viewer_a).get("/api/v1/assets/not-a-uuid/")
    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}


# A new password revokes the tokens, wherever it is set (issue 13): the web form, the reset
# link, the admin, a command. The revoked tokens stay listed.


def _token_works(token: str) -> bool:
    return Client().get("/api/v1/me/", **with_token(token)).status_code == 200


def test_changing_the_password_revokes_the_users_tokens_which_stay_listed(
    viewer_a: User, admin_a: User
) -> None:
    token = obtain(viewer_a.email, PASSWORD, name="cron job").json()["token"]
    colleagues = api_token_issue(user=admin_a)
    client = client_for(viewer_a)
    new = {"new_password1": "a-much-better-secret", "new_password2": "a-much-better-secret"}
    assert client.post("/accounts/password/", {"old_password": PASSWORD, **new}).status_code == 302
    assert not _token_works(token)
    assert _token_works(colleagues)  # only the user's own tokens
    listed = client.get("/api/v1/tokens/").json()["results"]
    assert [(t["name"], t["revoked_at"] is not None) for t in listed] == [("cron job", True)]
    entry = AuditEntry.objects.get(action="api_token.revoked")
    assert (entry.data, entry.customer) == ({"reason": "password_changed"}, viewer_a.customer)


def test_resetting_the_password_revokes_the_users_tokens(viewer_a: User) -> None:
    from django.contrib.auth.tokens import default_token_generator
    from django.utils.encoding import force_bytes
    from django.utils.http import urlsafe_base64_encode

    token = api_token_issue(user=viewer_a)
    uid = urlsafe_base64_encode(force_bytes(viewer_a.pk))
    client = Client()
    form = client.get(f"/accounts/reset/{uid}/{default_token_generator.make_token(viewer_a)}/", follow=True)
    done = client.post(
        form.redirect_chain[-1][0], {"new_password1": "reset-and-happy", "new_password2": "reset-and-happy"}
    )
    assert done.status_code == 302
    assert not _token_works(token)


def test_an_operator_setting_the_password_in_the_admin_revokes_the_tokens(
    viewer_a: User, operator: User
) -> None:
    token = api_token_issue(user=viewer_a)
    response = client_for(operator).post(
        f"/admin/portal/user/{viewer_a.pk}/password/",
        {"password1": "set-by-the-operator", "password2": "set-by-the-operator"},
    )
    assert response.status_code == 302
    assert not _token_works(token)


def test_a_password_set_by_any_code_revokes_the_tokens(viewer_a: User) -> None:
    token = api_token_issue(user=viewer_a)
    viewer_a.set_password("set-by-a-script")
    viewer_a.save()
    assert not _token_works(token)


def test_a_hash_upgrade_at_log_in_is_not_a_new_password(viewer_a: User, settings: Any) -> None:
    token = api_token_issue(user=viewer_a)
    settings.PASSWORD_HASHERS = [
        "django.contrib.auth.hashers.PBKDF2PasswordHasher",
        "django.contrib.auth.hashers.MD5PasswordHasher",
    ]
    assert (
        Client().post("/accounts/login/", {"username": viewer_a.email, "password": PASSWORD}).status_code
        == 302
    )
    viewer_a.refresh_from_db()
    assert viewer_a.password.startswith("pbkdf2_")  # rehashed with the preferred hasher
    assert _token_works(token)
