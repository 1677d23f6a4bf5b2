"""Factories for the whole suite, in one place."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import factory
from django.utils import timezone

from fleet.models import (
    Asset,
    AssetModel,
    Device,
    DeviceCredential,
    Heartbeat,
    HourlyUsage,
    MetricDefinition,
    Site,
)
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


class AssetModelFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = AssetModel
        django_get_or_create = ("code",)
        skip_postgeneration_save = True

    code = "factory-compressor"
    name = "Factory compressor"
    heartbeat_interval_seconds = 60

    @factory.post_generation
    def metrics(self, create: bool, extracted: Any, **kwargs: Any) -> None:
        if create:
            for code, kind in (("run_hours", "counter"), ("temp_c", "gauge")):
                MetricDefinition.objects.get_or_create(
                    asset_model=self, code=code, defaults={"label": code, "kind": kind}
                )


class AssetFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Asset

    site = factory.SubFactory(SiteFactory)
    customer = factory.SelfAttribute("site.customer")
    model = factory.SubFactory(AssetModelFactory)
    serial_number = factory.Sequence(lambda n: f"SN-{n:05d}")
    name = factory.Sequence(lambda n: f"Machine {n}")


class DeviceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Device

    asset = factory.SubFactory(AssetFactory)
    customer = factory.SelfAttribute("asset.customer")
    serial_number = factory.Sequence(lambda n: f"GW-{n:05d}")


class DeviceCredentialFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = DeviceCredential

    device = factory.SubFactory(DeviceFactory)
    customer = factory.SelfAttribute("device.customer")
    prefix = factory.Sequence(lambda n: f"{n:08x}")
    token_hash = "0" * 64


class HeartbeatFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Heartbeat

    device = factory.SubFactory(DeviceFactory)
    asset = factory.SelfAttribute("device.asset")
    customer = factory.SelfAttribute("device.customer")
    seq = factory.Sequence(lambda n: n)
    ts = factory.LazyFunction(timezone.now)
    status = "ok"
    metrics = factory.LazyFunction(lambda: {"run_hours": 10.5, "temp_c": 60.0})


class HourlyUsageFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = HourlyUsage

    asset = factory.SubFactory(AssetFactory)
    customer = factory.SelfAttribute("asset.customer")
    metric = "run_hours"
    hour = factory.LazyFunction(lambda: timezone.now().replace(minute=0, second=0, microsecond=0))
    quantity = Decimal("1.500000")
