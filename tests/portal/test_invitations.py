"""Invitations tell a customer admin nothing about accounts outside their customer
(docs/security.md, "Invitations"); operators are told the truth."""

from __future__ import annotations

import difflib
import re
from typing import Any

import pytest
from django.test import Client

from portal.models import AuditEntry, OutboxMessage, User
from tests.conftest import client_for

JSON = "application/json"


def _invite_mails() -> list[dict[str, Any]]:
    return list(OutboxMessage.objects.filter(task="portal.user_invite_send").values_list("kwargs", flat=True))


def _seen_by(admin: User, email: str) -> dict[str, Any]:
    """Everything the admin can observe after inviting `email` through the API and the page,
    with the address itself written as EMAIL (it is the admin's own input)."""
    api, page = client_for(admin), client_for(admin)
    answer = api.post("/api/v1/users/", {"email": email, "role": "customer_viewer"}, content_type=JSON)
    again = api.post("/api/v1/users/", {"email": email, "role": "customer_viewer"}, content_type=JSON)
    form = page.post("/users/invite/", {"email": email, "role": "customer_viewer"}, follow=True)

    def scrub(text: str) -> str:
        text = re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", text)
        text = re.sub(r"<time [^>]*>[^<]*</time>", "<time>", text)  # log-ins and entries: now
        return re.sub(re.escape(email), "EMAIL", text, flags=re.IGNORECASE)

    users = api.get("/api/v1/users/").json()
    return {
        "answer": (answer.status_code, scrub(answer.content.decode())),
        "again": (again.status_code, scrub(again.content.decode())),
        "page": (form.redirect_chain, scrub(form.content.decode())),
        "list": (users["count"], [u["email"] for u in users["results"]]),
        "list page": scrub(page.get("/users/").content.decode()),
        "home": scrub(page.get("/").content.decode()),
        "activity": scrub(page.get("/activity/").content.decode()),
        "audit": [
            (e.action, e.customer_id, e.actor_id, scrub(e.target_repr), e.data)
            for e in AuditEntry.objects.filter(actor=admin).order_by("created_at")
        ],
    }


@pytest.mark.parametrize("owner", ["another customer's viewer", "provider staff", "the same, in capitals"])
def test_an_address_with_an_account_elsewhere_looks_like_a_new_one_to_a_customer_admin(
    admin_a: User, viewer_b: User, support: User, owner: str
) -> None:
    taken = {
        "another customer's viewer": viewer_b.email,
        "provider staff": support.email,
        "the same, in capitals": viewer_b.email.upper(),
    }[owner]
    # The two runs start alike: same fixtures, nothing invited yet.
    elsewhere = _seen_by(admin_a, taken)
    elsewhere_mails = _invite_mails()
    AuditEntry.objects.filter(actor=admin_a).delete()
    OutboxMessage.objects.all().delete()
    new = _seen_by(admin_a, "nobody-yet@nowhere.test")

    for key, seen in new.items():  # each with the lines that differ, if any
        before, after = str(elsewhere[key]).splitlines(), str(seen).splitlines()
        diff = difflib.unified_diff(before, after, lineterm="", n=0)
        assert elsewhere[key] == seen, f"{key}: " + "\n".join(diff)
    assert elsewhere["answer"][0] == 201
    assert '"detail":"If the address can be invited, an invitation is on its way."' in new["answer"][1]
    assert "If the address can be invited, an invitation is on its way." in new["page"][1]
    # No account was touched and nobody outside the customer was e-mailed; the new address
    # was (three invitations: once created, twice again while pending).
    assert elsewhere_mails == []
    invitee = User.objects.get(email="nobody-yet@nowhere.test")
    assert (invitee.customer_id, invitee.has_usable_password()) == (admin_a.customer_id, False)
    assert _invite_mails() == [{"user_id": str(invitee.pk)}] * 3
    viewer_b.refresh_from_db()
    assert viewer_b.customer_id != admin_a.customer_id


def test_an_address_of_the_admins_own_customer_is_a_clear_field_error(admin_a: User, viewer_a: User) -> None:
    client = client_for(admin_a)
    body = {"email": viewer_a.email, "role": "customer_viewer"}
    api = client.post("/api/v1/users/", body, content_type=JSON)
    assert api.status_code == 400
    assert api.json()["errors"] == [
        {"field": "email", "message": "A user of your customer already has this e-mail address."}
    ]
    page = client.post("/users/invite/", {"email": viewer_a.email, "role": "customer_viewer"})
    assert "A user of your customer already has this e-mail address." in page.content.decode()
    assert _invite_mails() == []


def test_an_invitee_who_set_a_password_appears_to_the_admin(admin_a: User) -> None:
    client = client_for(admin_a)
    client.post("/api/v1/users/", {"email": "joins@alpha.test", "role": "customer_viewer"}, content_type=JSON)
    assert "joins@alpha.test" not in client.get("/users/").content.decode()
    invitee = User.objects.get(email="joins@alpha.test")
    invitee.set_password("a-long-new-password")
    invitee.save()
    assert "joins@alpha.test" in client.get("/users/").content.decode()
    assert "joins@alpha.test" in [u["email"] for u in client.get("/api/v1/users/").json()["results"]]


@pytest.mark.parametrize("email", ["viewer@bravo.test", "VIEWER@BRAVO.TEST"])
def test_operators_are_told_that_an_address_exists(operator: User, viewer_b: User, email: str) -> None:
    assert viewer_b.email == "viewer@bravo.test"
    client: Client = client_for(operator)
    response = client.post(
        "/api/v1/users/",
        {"email": email, "role": "customer_viewer", "customer": str(viewer_b.customer_id)},
        content_type=JSON,
    )
    assert response.status_code == 400
    assert response.json()["errors"] == [
        {"field": "email", "message": "A user with this e-mail address already exists."}
    ]
    body = {"email": "staff@provider.test", "role": "support"}
    pending = client.post("/api/v1/users/", body, content_type=JSON)
    assert (pending.status_code, pending.json()["email"]) == (201, "staff@provider.test")
