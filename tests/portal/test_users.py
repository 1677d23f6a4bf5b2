"""A customer admin manages the users of their own customer; operators manage everyone."""

from __future__ import annotations

from django.core import mail

from portal.models import AuditEntry, Customer, User
from portal.roles import Role
from tests.conftest import client_for


def test_customer_admin_invites_a_colleague_from_the_page(
    admin_a: User, customer_a: Customer, django_capture_on_commit_callbacks
) -> None:
    client = client_for(admin_a)
    with django_capture_on_commit_callbacks() as callbacks:
        response = client.post(
            "/users/invite/",
            {"email": "colleague@alpha.test", "full_name": "Col League", "role": "customer_admin"},
        )
    assert response.status_code == 302
    user = User.objects.get(email="colleague@alpha.test")
    assert (user.customer, user.role) == (customer_a, Role.CUSTOMER_ADMIN)
    assert len(callbacks) == 1  # the invitation e-mail is queued after commit
    entry = AuditEntry.objects.get(action="user.invited")
    assert (entry.actor, entry.customer, entry.target_id) == (admin_a, customer_a, str(user.pk))


def test_customer_admin_is_offered_customer_roles_only(admin_a: User) -> None:
    body = client_for(admin_a).get("/users/invite/").content.decode()
    assert 'value="customer_viewer"' in body
    assert 'value="operator"' not in body
    assert 'name="customer"' not in body


def test_customer_admin_cannot_invite_staff(admin_a: User) -> None:
    response = client_for(admin_a).post("/users/invite/", {"email": "evil@alpha.test", "role": "operator"})
    assert response.status_code == 200
    assert "Select a valid choice" in response.content.decode()
    api = client_for(admin_a).post(
        "/api/v1/users/", {"email": "evil@alpha.test", "role": "operator"}, content_type="application/json"
    )
    assert api.status_code == 403
    assert not User.objects.filter(email="evil@alpha.test").exists()


def test_customer_admin_changes_a_role_and_deactivates(admin_a: User, viewer_a: User) -> None:
    client = client_for(admin_a)
    assert client.post(f"/users/{viewer_a.pk}/role/", {"role": "customer_admin"}).status_code == 302
    viewer_a.refresh_from_db()
    assert viewer_a.role == Role.CUSTOMER_ADMIN
    assert client.post(f"/users/{viewer_a.pk}/active/", {"active": "0"}).status_code == 302
    viewer_a.refresh_from_db()
    assert not viewer_a.is_active
    assert client.post(f"/users/{viewer_a.pk}/active/", {"active": "1"}).status_code == 302
    viewer_a.refresh_from_db()
    assert viewer_a.is_active
    actions = list(AuditEntry.objects.filter(target_id=str(viewer_a.pk)).values_list("action", flat=True))
    assert sorted(actions) == ["user.activated", "user.deactivated", "user.role_changed"]


def test_customer_admin_cannot_touch_another_customers_users(admin_a: User, viewer_b: User) -> None:
    client = client_for(admin_a)
    assert client.post(f"/users/{viewer_b.pk}/active/", {"active": "0"}).status_code == 404
    assert client.post(f"/users/{viewer_b.pk}/role/", {"role": "customer_admin"}).status_code == 404
    response = client.patch(
        f"/api/v1/users/{viewer_b.pk}/", {"is_active": False}, content_type="application/json"
    )
    assert response.status_code == 404
    viewer_b.refresh_from_db()
    assert viewer_b.is_active
    assert viewer_b.role == Role.CUSTOMER_VIEWER


def test_nobody_deactivates_or_demotes_themselves(admin_a: User) -> None:
    client = client_for(admin_a)
    response = client.patch(
        f"/api/v1/users/{admin_a.pk}/", {"is_active": False}, content_type="application/json"
    )
    assert response.status_code == 400
    response = client.patch(
        f"/api/v1/users/{admin_a.pk}/", {"role": "customer_viewer"}, content_type="application/json"
    )
    assert response.status_code == 400
    admin_a.refresh_from_db()
    assert (admin_a.is_active, admin_a.role) == (True, Role.CUSTOMER_ADMIN)


def test_a_customer_user_cannot_become_staff(operator: User, viewer_a: User) -> None:
    response = client_for(operator).patch(
        f"/api/v1/users/{viewer_a.pk}/", {"role": "operator"}, content_type="application/json"
    )
    assert response.status_code == 400
    (error,) = response.json()["errors"]
    assert error["field"] == "role"
    assert "provider staff" in error["message"]


def test_operator_invites_staff_and_customer_users(operator: User, customer_b: Customer) -> None:
    client = client_for(operator)
    staff = client.post(
        "/api/v1/users/", {"email": "agent@provider.test", "role": "support"}, content_type="application/json"
    )
    assert staff.status_code == 201, staff.content
    assert staff.json()["customer"] is None
    member = client.post(
        "/api/v1/users/",
        {"email": "new@bravo.test", "role": "customer_viewer", "customer": str(customer_b.pk)},
        content_type="application/json",
    )
    assert member.status_code == 201
    assert member.json()["customer"] == str(customer_b.pk)
    missing_customer = client.post(
        "/api/v1/users/",
        {"email": "lost@bravo.test", "role": "customer_viewer"},
        content_type="application/json",
    )
    assert missing_customer.status_code == 400


def test_user_list_searches_within_the_customer(admin_a: User, viewer_a: User, viewer_b: User) -> None:
    body = client_for(admin_a).get("/users/?q=viewer").content.decode()
    assert viewer_a.email in body
    assert viewer_b.email not in body


def test_invitation_email_goes_only_to_the_invitee(admin_a: User, customer_a: Customer) -> None:
    from portal import services
    from portal.tasks import user_invite_send

    user = services.user_invite(
        actor=admin_a, email="only@alpha.test", role="customer_viewer", customer=customer_a
    )
    assert user is not None
    user_invite_send(user_id=str(user.pk))
    assert [m.to for m in mail.outbox] == [["only@alpha.test"]]
