"""Writes of the core: audit records, customers (tenants) and their users."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import models, transaction
from django.utils import timezone

from portal import live
from portal.models import AuditEntry, Customer, User
from portal.roles import CUSTOMER_ROLES, Capability, Role, can


def audit_record(
    *,
    actor: User | None,
    action: str,
    target: models.Model | None = None,
    customer: Customer | None = None,
    data: dict[str, Any] | None = None,
    ip_address: str | None = None,
) -> AuditEntry:
    """Append one audit entry. The customer defaults to the target's own (`target.customer`)."""
    if customer is None and target is not None:
        customer = target if isinstance(target, Customer) else getattr(target, "customer", None)
    return AuditEntry.objects.create(
        actor=actor,
        actor_label=actor.email if actor is not None else "system",
        customer=customer,
        action=action,
        target_type=ContentType.objects.get_for_model(target) if target is not None else None,
        target_id=str(target.pk) if target is not None else "",
        target_repr=str(target)[:200] if target is not None else "",
        data=data or {},
        ip_address=ip_address,
    )


def audit_prune(*, older_than_days: int) -> int:
    cutoff = timezone.now() - timedelta(days=older_than_days)
    deleted, _ = AuditEntry.objects.filter(created_at__lt=cutoff).delete()
    return deleted


def _check_may_manage(*, actor: User, customer: Customer | None, role: str) -> None:
    """Operators manage everyone; a customer admin manages customer roles of their own customer."""
    if can(actor, Capability.MANAGE_ALL_USERS):
        return
    if (
        can(actor, Capability.MANAGE_CUSTOMER_USERS)
        and customer is not None
        and customer.pk == actor.customer_id
        and role in CUSTOMER_ROLES
    ):
        return
    raise PermissionDenied("You may not manage this user.")


# What a customer admin is told for every invitation that is not an error, whether or not the
# address has an account somewhere else (docs/security.md, "Invitations").
INVITATION_SENT = "If the address can be invited, an invitation is on its way."


@transaction.atomic
def user_invite(
    *,
    actor: User,
    email: str,
    role: str,
    customer: Customer | None,
    full_name: str = "",
) -> User | None:
    """Invite `email`: a user without a password, e-mailed a link to set one (after commit).

    Operators are told the truth: an address that has an account anywhere is a ValidationError.
    A customer admin learns nothing about accounts outside their customer: an address of
    another customer or of staff gets no user and no e-mail, yet the same audit entry and the
    same answer (None, INVITATION_SENT) as a new address, whose user this returns only to the
    caller (the API and pages show the admin neither). An invitee of their own customer who
    has not set a password yet is e-mailed again; a member who has is a ValidationError.
    """
    _check_may_manage(actor=actor, customer=customer, role=role)
    email = User.objects.normalize_email(email).lower()
    existing = User.objects.filter(email__iexact=email).first()
    truthful = can(actor, Capability.MANAGE_ALL_USERS)
    if existing is not None and truthful:
        raise ValidationError({"email": "A user with this e-mail address already exists."})
    ours = existing is not None and existing.customer_id == actor.customer_id
    if existing is not None and ours and existing.has_usable_password():
        raise ValidationError({"email": "A user of your customer already has this e-mail address."})
    # The entry a customer admin reads at /activity/ is the same in every case.
    label = (full_name or email)[:200]

    from portal import outbox
    from portal.tasks import user_invite_send

    if existing is None:
        user = User.objects.create_user(email, None, role=role, customer=customer, full_name=full_name)
        entry = audit_record(
            actor=actor, action="user.invited", target=user, customer=customer, data={"role": role}
        )
        # Through the outbox: committed with the user, so a broker outage delays the e-mail but
        # never loses it (nor turns the answer into a 500).
        outbox.enqueue(user_invite_send, user_id=str(user.pk))
    else:
        entry = audit_record(actor=actor, action="user.invited", customer=customer, data={"role": role})
        if ours:  # their own invitee, who has not set a password yet: e-mailed again
            outbox.enqueue(user_invite_send, user_id=str(existing.pk))
        user = None
    if entry.target_repr != label:
        AuditEntry.objects.filter(pk=entry.pk).update(target_repr=label)
    return user


@transaction.atomic
def user_change_role(*, actor: User, user: User, role: str) -> User:
    if role not in Role.values:
        raise ValidationError({"role": f"Unknown role {role!r}."})
    _check_may_manage(actor=actor, customer=user.customer, role=user.role)
    _check_may_manage(actor=actor, customer=user.customer, role=role)
    if user.pk == actor.pk:
        raise ValidationError({"role": "You cannot change your own role."})
    if (role in CUSTOMER_ROLES) != (user.role in CUSTOMER_ROLES):
        raise ValidationError({"role": "A customer user cannot become provider staff or back."})
    old = user.role
    if old == role:
        return user
    user.role = role
    user.save(update_fields=["role"])
    audit_record(actor=actor, action="user.role_changed", target=user, data={"from": old, "to": role})
    return user


@transaction.atomic
def user_set_active(*, actor: User, user: User, active: bool) -> User:
    """Deactivate (sessions and sockets end at once) or reactivate a user."""
    _check_may_manage(actor=actor, customer=user.customer, role=user.role)
    if user.pk == actor.pk and not active:
        raise ValidationError({"is_active": "You cannot deactivate yourself."})
    if user.is_active == active:
        return user
    user.is_active = active
    user.save(update_fields=["is_active"])
    audit_record(actor=actor, action="user.activated" if active else "user.deactivated", target=user)
    if not active:
        user_id = user.pk
        transaction.on_commit(lambda: live.close_user_sockets(user_id))
    return user


def _check_may_manage_customers(actor: User) -> None:
    if not can(actor, Capability.MANAGE_CUSTOMERS):
        raise PermissionDenied("You may not manage customers.")


# What the API, the admin and the billing identity page may set on a customer. Operators set
# any of CUSTOMER_FIELDS; finance (Capability.EDIT_BILLING_IDENTITY) the FINANCE_FIELDS only: how
# invoices name, address, tax and write for the customer (docs/billing.md, "Billing identity").
BILLING_IDENTITY_FIELDS = (
    "legal_name", "address_line1", "address_line2", "postal_code", "city", "country", "vat_id",
    "tax_category", "tax_exemption_reason", "billing_email", "locale",
)  # fmt: skip
FINANCE_FIELDS = (*BILLING_IDENTITY_FIELDS, "tax_rate")
CUSTOMER_FIELDS = ("name", "slug", "currency", "time_zone", "is_active", *FINANCE_FIELDS)


def _check_fields(values: dict[str, Any], allowed: tuple[str, ...]) -> None:
    unknown = set(values) - set(allowed)
    if unknown:
        raise TypeError(f"not a customer field one may set here: {', '.join(sorted(unknown))}")


@transaction.atomic
def customer_create(*, actor: User, name: str, slug: str, **fields: Any) -> Customer:
    """Onboard a customer (a tenant), from the API or the admin alike; audited. `fields` are
    any of CUSTOMER_FIELDS; the model's defaults fill the rest."""
    _check_may_manage_customers(actor)
    _check_fields(fields, CUSTOMER_FIELDS)
    customer = Customer(name=name, slug=slug, **fields)
    customer.full_clean()
    customer.save()
    audit_record(actor=actor, action="customer.created", target=customer)
    return customer


def _audit_value(value: Any) -> Any:
    return value if value is None or isinstance(value, bool | int | str) else str(value)


@transaction.atomic
def customer_update(*, actor: User, customer: Customer, **changes: Any) -> Customer:
    """Change a customer's fields (`None`: leave as is); audited with the changed values.
    Nothing changed, nothing written: safe to call twice. Operators may change any of
    CUSTOMER_FIELDS; finance the FINANCE_FIELDS (a value given unchanged is no change, so a
    full PUT of the rest as it stands is fine). Validated as a whole (`Customer.clean`: the VAT
    ID, the tax category's rules) before anything is written: on a ValidationError nothing is."""
    if not can(actor, Capability.MANAGE_CUSTOMERS) and not can(actor, Capability.EDIT_BILLING_IDENTITY):
        raise PermissionDenied("You may not change customers.")
    given = {f: v for f, v in changes.items() if v is not None}
    _check_fields(given, CUSTOMER_FIELDS)
    changed = {f: v for f, v in given.items() if getattr(customer, f) != v}
    refused = sorted(set(changed) - set(FINANCE_FIELDS))
    if refused and not can(actor, Capability.MANAGE_CUSTOMERS):
        raise PermissionDenied(
            f"Finance may change a customer's billing identity and tax rate, not {', '.join(refused)}."
        )
    if not changed:
        return customer
    for field, value in changed.items():
        setattr(customer, field, value)
    customer.full_clean()
    # full_clean may normalize (a VAT ID to its compact form): write what it left.
    customer.save(update_fields=list(changed))
    audit_record(
        actor=actor,
        action="customer.updated",
        target=customer,
        data={f: _audit_value(getattr(customer, f)) for f in changed},
    )
    return customer
