"""Factories for the whole suite, in one place."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import factory

from fleet.models import Site
from portal.models import AuditEntry, Customer, User
from portal.roles import CUSTOMER_ROLES, Role

PASSWORD = "correct-horse-battery"


class CustomerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Customer
        django_get_or_create = ("slug",)

    name = factory.Sequence(lambda n: f"Customer {n}")
    slug = factory.Sequence(lambda n: f"customer-{n}")
    currency = "EUR"
    time_zone = "Europe/Berlin"
    tax_rate = Decimal("0.1900")
    billing_email = factory.LazyAttribute(lambda c: f"billing@{c.slug}.example")


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    email = factory.Sequence(lambda n: f"user{n}@example.test")
    full_name = factory.Sequence(lambda n: f"User {n}")
    role = Role.CUSTOMER_VIEWER
    customer = factory.Maybe(
        factory.LazyAttribute(lambda u: u.role in CUSTOMER_ROLES),
        yes_declaration=factory.SubFactory(CustomerFactory),
        no_declaration=None,
    )

    @factory.post_generation
    def password(self, create: bool, extracted: Any, **kwargs: Any) -> None:
        self.set_password(extracted or PASSWORD)
        if create:
            self.save(update_fields=["password"])


class SiteFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Site

    customer = factory.SubFactory(CustomerFactory)
    name = factory.Sequence(lambda n: f"Site {n}")
    address = "1 Example Street"


class AuditEntryFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = AuditEntry

    customer = factory.SubFactory(CustomerFactory)
    actor_label = "someone@example.test"
    action = "test.happened"
    target_repr = factory.LazyAttribute(lambda e: f"something of {e.customer.name}")
