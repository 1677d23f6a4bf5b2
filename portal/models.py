"""The core every app may import: the tenant (`Customer`), users with their role, the audit log."""

from __future__ import annotations

import uuid
import zoneinfo
from decimal import Decimal
from typing import Any, ClassVar, Self

from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.auth.models import PermissionsMixin
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models.functions import Now
from django.utils import timezone
from django_countries.fields import CountryField

from portal.formatting import validate_locale
from portal.roles import CUSTOMER_ROLES, Capability, Role, can
from portal.tenancy import TenantQuerySet

TIME_ZONE_CHOICES = [(name, name) for name in sorted(zoneinfo.available_timezones())]
CURRENCY_CHOICES = [("EUR", "EUR"), ("USD", "USD"), ("GBP", "GBP"), ("CHF", "CHF"), ("SEK", "SEK")]


def validate_time_zone(value: str) -> None:
    if value not in zoneinfo.available_timezones():
        raise ValidationError(f"{value!r} is not a known time zone.")


def validate_vat_id(value: str) -> str:
    """`value` in its compact form if it is a valid VAT ID by its country's rules (python-stdnum),
    else a ValidationError that says what is wrong."""
    from stdnum import vatin
    from stdnum.exceptions import InvalidChecksum, InvalidComponent, InvalidFormat, InvalidLength

    try:
        return str(vatin.validate(value))
    except InvalidComponent:
        raise ValidationError("Start the VAT ID with its country code, e.g. DE123456788.") from None
    except InvalidLength:
        raise ValidationError("This VAT ID has the wrong length for its country.") from None
    except InvalidChecksum:
        raise ValidationError("This VAT ID's check digit is wrong; check for a typo.") from None
    except InvalidFormat:
        raise ValidationError("This is not how VAT IDs of that country are written.") from None


class TaxCategory(models.TextChoices):
    """The EN 16931 VAT category (UNCL 5305) a customer's invoices are taxed under."""

    STANDARD = "S", "Standard rate"
    REVERSE_CHARGE = "AE", "Reverse charge"
    INTRA_COMMUNITY = "K", "Intra-community supply"
    EXPORT = "G", "Export outside the EU"
    EXEMPT = "E", "Exempt from VAT"
    ZERO_RATED = "Z", "Zero rated"


class CustomerQuerySet(TenantQuerySet["Customer"]):
    """A customer user sees their own customer; staff see every one."""

    customer_lookup = "pk"


class Customer(models.Model):
    """The tenant: a company that rents equipment from the provider."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=60, unique=True)
    currency = models.CharField(max_length=3, choices=CURRENCY_CHOICES, default="EUR")
    time_zone = models.CharField(max_length=64, default="UTC", validators=[validate_time_zone])
    tax_rate = models.DecimalField(
        max_digits=5,
        decimal_places=4,
        default=Decimal("0"),
        validators=[MinValueValidator(Decimal("0")), MaxValueValidator(Decimal("1"))],
        help_text="A fraction: 0.1900 is 19 %.",
    )
    billing_email = models.EmailField(blank=True)
    # Billing identity (docs/billing.md, "Billing identity"): what invoices, credit notes and
    # e-invoices print for the buyer. VAT Directive art. 226 asks for name, address and VAT ID.
    legal_name = models.CharField(max_length=200, blank=True, help_text="Empty: the name above.")
    address_line1 = models.CharField("street and number", max_length=200, blank=True)
    address_line2 = models.CharField("address line 2", max_length=200, blank=True)
    postal_code = models.CharField(max_length=20, blank=True)
    city = models.CharField(max_length=100, blank=True)
    country = CountryField(blank=True)
    vat_id = models.CharField(
        "VAT ID", max_length=20, blank=True, help_text="With its country prefix, e.g. DE123456788."
    )
    tax_category = models.CharField(max_length=2, choices=TaxCategory.choices, default=TaxCategory.STANDARD)
    tax_exemption_reason = models.CharField(
        max_length=200, blank=True, help_text="Printed on invoices where no VAT is charged."
    )
    locale = models.CharField(
        max_length=16,
        default="en",
        validators=[validate_locale],
        help_text="How numbers, money and dates are written for its users, e.g. de-DE.",
    )
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    objects = CustomerQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(tax_rate__gte=0) & models.Q(tax_rate__lte=1),
                name="customer_tax_rate_fraction",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        super().clean()
        errors: dict[str, str] = {}
        if self.vat_id:
            try:
                self.vat_id = validate_vat_id(self.vat_id)
            except ValidationError as exc:
                errors["vat_id"] = exc.messages[0]
        if self.tax_category != TaxCategory.STANDARD:
            if self.tax_rate:
                errors["tax_rate"] = f"{self.get_tax_category_display()} invoices charge no VAT: set 0 %."
            if not self.tax_exemption_reason.strip():
                errors["tax_exemption_reason"] = "Say why no VAT is charged; invoices print it."
        if self.tax_category == TaxCategory.REVERSE_CHARGE and not self.vat_id:
            errors["vat_id"] = "Reverse charge needs the customer's VAT ID."
        if self.tax_category == TaxCategory.INTRA_COMMUNITY and not self.vat_id:
            # EN 16931 BR-IC-02: an intra-community supply names the buyer's VAT ID.
            errors["vat_id"] = "An intra-community supply needs the customer's VAT ID."
        if errors:
            raise ValidationError(errors)

    @property
    def billing_name(self) -> str:
        return self.legal_name or self.name

    def billing_identity(self) -> dict[str, str]:
        """The buyer as invoices print it (and keep, once finalized)."""
        return {
            "name": self.billing_name,
            "address_line1": self.address_line1,
            "address_line2": self.address_line2,
            "postal_code": self.postal_code,
            "city": self.city,
            "country": str(self.country.code) if self.country else "",  # type: ignore[attr-defined]
            "country_name": str(self.country.name) if self.country else "",  # type: ignore[attr-defined]
            "vat_id": self.vat_id,
            "email": self.billing_email,
            "tax_category": self.tax_category,
            "tax_exemption_reason": self.tax_exemption_reason,
        }


class UserQuerySet(TenantQuerySet["User"]):
    """Scoped like tenant rows by the user's `customer` (null for staff, whom only staff see):
    customer users see the users of their own customer; staff see everyone."""


class UserManager(BaseUserManager["User"]):
    use_in_migrations = True

    def get_queryset(self) -> UserQuerySet:
        return UserQuerySet(self.model, using=self._db)

    def for_customer(self, customer: Customer | Any) -> UserQuerySet:
        return self.get_queryset().for_customer(customer)

    def visible_to(self, user: Any) -> UserQuerySet:
        return self.get_queryset().visible_to(user)

    def create_user(self, email: str, password: str | None = None, **fields: Any) -> User:
        if not email:
            raise ValueError("An e-mail address is required.")
        user = self.model(email=self.normalize_email(email).lower(), **fields)
        user.set_password(password)  # None gives an unusable password (invited users)
        user.full_clean(exclude=["password"])
        user.save(using=self._db)
        return user

    def create_superuser(self, email: str, password: str | None = None, **fields: Any) -> User:
        """`manage.py createsuperuser` makes an operator, the provider's administrator."""
        fields.update(role=Role.OPERATOR, customer=None, is_superuser=True)
        return self.create_user(email, password, **fields)


class User(AbstractBaseUser, PermissionsMixin):
    """A person who logs in by e-mail. Customer roles belong to one customer; staff to none."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    email = models.EmailField(unique=True)
    full_name = models.CharField(max_length=200, blank=True)
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.CUSTOMER_VIEWER)
    customer = models.ForeignKey(
        Customer, null=True, blank=True, on_delete=models.PROTECT, related_name="users"
    )
    time_zone = models.CharField(
        max_length=64,
        blank=True,
        validators=[validate_time_zone],
        help_text="Empty: the customer's time zone (UTC for staff).",
    )
    locale = models.CharField(
        max_length=16,
        blank=True,
        validators=[validate_locale],
        help_text="Empty: the customer's (English for staff). How numbers, money and dates read.",
    )
    is_active = models.BooleanField(default=True)
    date_joined = models.DateTimeField(default=timezone.now)

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: ClassVar[list[str]] = []

    class Meta:
        ordering = ["email"]
        constraints = [
            # Customer roles need a customer; staff roles must not have one.
            models.CheckConstraint(
                condition=(
                    models.Q(role__in=sorted(r.value for r in CUSTOMER_ROLES), customer__isnull=False)
                    | (
                        ~models.Q(role__in=sorted(r.value for r in CUSTOMER_ROLES))
                        & models.Q(customer__isnull=True)
                    )
                ),
                name="user_role_matches_customer",
            ),
        ]

    def __str__(self) -> str:
        return self.full_name or self.email

    def clean(self) -> None:
        super().clean()
        self.email = self.email.lower()
        if self.role in CUSTOMER_ROLES and self.customer_id is None:
            raise ValidationError({"customer": "A customer user needs a customer."})
        if self.role not in CUSTOMER_ROLES and self.customer_id is not None:
            raise ValidationError({"customer": "Provider staff do not belong to a customer."})

    @property
    def is_staff(self) -> bool:
        """Django admin access: operators only."""
        return self.is_active and self.role == Role.OPERATOR

    @property
    def is_customer_user(self) -> bool:
        return self.role in CUSTOMER_ROLES

    def can(self, capability: Capability) -> bool:
        return can(self, capability)

    def has_perm(self, perm: str, obj: Any = None) -> bool:
        # Model permissions exist for the Django admin, which only operators reach.
        return self.is_staff or super().has_perm(perm, obj)

    def has_module_perms(self, app_label: str) -> bool:
        return self.is_staff or super().has_module_perms(app_label)

    @property
    def display_locale(self) -> str:
        if self.locale:
            return self.locale
        if self.customer is not None:
            return self.customer.locale
        return "en"

    @property
    def display_time_zone(self) -> str:
        if self.time_zone:
            return self.time_zone
        if self.customer_id is not None and self.customer is not None:
            return self.customer.time_zone
        return "UTC"


class AuditEntry(models.Model):
    """Who did what, when, on which object. Written by services, never edited."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    actor = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.SET_NULL, related_name="audit_entries"
    )
    actor_label = models.CharField(max_length=254, help_text="The actor's e-mail when it acted.")
    # Null for provider-wide events; set when the object belongs to a customer, so the
    # customer's admins can read their own trail.
    customer = models.ForeignKey(
        Customer, null=True, blank=True, on_delete=models.PROTECT, related_name="audit_entries"
    )
    action = models.CharField(max_length=80)
    target_type = models.ForeignKey(ContentType, null=True, blank=True, on_delete=models.SET_NULL)
    target_id = models.CharField(max_length=64, blank=True)
    target_repr = models.CharField(max_length=200, blank=True)
    data = models.JSONField(default=dict, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)

    objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "audit entries"
        indexes = [models.Index(fields=["customer", "-created_at"], name="audit_customer_time")]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.actor_label} {self.action} {self.target_repr}"


class ApiTokenQuerySet(models.QuerySet["ApiToken"]):
    def for_customer(self, customer: Customer | Any) -> Self:
        return self.filter(customer_id=getattr(customer, "pk", customer))

    def visible_to(self, user: Any) -> Self:
        """Operators see all tokens; a customer admin their customer's; everyone else their own."""
        if not getattr(user, "is_authenticated", False) or not user.is_active:
            return self.none()
        if can(user, Capability.MANAGE_ALL_USERS):
            return self.all()
        if can(user, Capability.MANAGE_API_TOKENS) and user.customer_id is not None:
            return self.filter(customer_id=user.customer_id)
        return self.filter(user=user)


class ApiToken(models.Model):
    """A user's API token for scripts: `Authorization: Token <token>`.

    Stored as SHA-256 with a short public prefix for lookup (the token is 256 random bits,
    shown once). Revoking it, deactivating its user or the user's customer, or a new password
    for its user (portal.tokens.PasswordChangeRevokesTokens) ends it at once.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="api_tokens")
    # The user's customer at creation (null for staff): lets a customer admin list and revoke
    # their customer's tokens through the same scoping as everything else.
    customer = models.ForeignKey(Customer, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=100, blank=True)
    prefix = models.CharField(max_length=16, unique=True)
    token_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ApiTokenQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.user})"


class DocumentSequence(models.Model):
    """Gap-free numbering: the last number used per series and year, taken under a row lock
    (`portal.numbering.next_number`). Shared by billing (invoices, credit notes, contracts) and
    support (tickets)."""

    series = models.CharField(max_length=10)
    year = models.PositiveSmallIntegerField()
    last_number = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["series", "year"], name="one_sequence_per_series_year")
        ]

    def __str__(self) -> str:
        return f"{self.series}-{self.year}: {self.last_number}"


class OutboxMessage(models.Model):
    """A Celery task to publish once the transaction that wrote this row commits
    (`portal.outbox`): it is committed with the change, so a broker outage delays the task but
    never loses it. Deleted once the broker took it."""

    task = models.CharField(max_length=200)
    kwargs = models.JSONField(default=dict)
    created_at = models.DateTimeField(db_default=Now())
    # The next attempt: now for a new row, later after a failed one (capped backoff).
    due_at = models.DateTimeField(db_default=Now())
    attempts = models.PositiveIntegerField(db_default=0)
    last_error = models.TextField(db_default="", blank=True)

    class Meta:
        indexes = [models.Index(fields=["due_at", "id"], name="outbox_due")]

    def __str__(self) -> str:
        return f"{self.task} #{self.pk}"
