from __future__ import annotations

from typing import Any, cast

from babel import Locale
from django import forms
from django.contrib.auth.forms import AuthenticationForm

from portal.models import TIME_ZONE_CHOICES, Customer, User
from portal.roles import CUSTOMER_ROLES, Capability, Role, can


class EmailAuthenticationForm(AuthenticationForm):
    """Log in by e-mail. The field keeps Django's name `username` (axes reads it)."""

    error_messages = {
        "invalid_login": "Please enter a correct e-mail and password. The password is case-sensitive.",
        "inactive": "This account is deactivated.",
    }
    username = forms.EmailField(
        label="E-mail", widget=forms.EmailInput(attrs={"autofocus": True, "autocomplete": "email"})
    )

    def clean_username(self) -> str:
        return str(self.cleaned_data["username"]).strip().lower()


def _role_choices_for(actor: User) -> list[tuple[str, str]]:
    if can(actor, Capability.MANAGE_ALL_USERS):
        return list(Role.choices)
    return [(value, label) for value, label in Role.choices if value in CUSTOMER_ROLES]


class UserInviteForm(forms.Form):
    email = forms.EmailField(label="E-mail")
    full_name = forms.CharField(label="Name", max_length=200, required=False)
    role = forms.ChoiceField()
    customer = forms.ModelChoiceField(queryset=Customer.objects.none(), required=False)

    def __init__(self, *args: Any, actor: User, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.actor = actor
        cast(forms.ChoiceField, self.fields["role"]).choices = _role_choices_for(actor)
        self.fields["role"].initial = Role.CUSTOMER_VIEWER
        if can(actor, Capability.MANAGE_ALL_USERS):
            cast(forms.ModelChoiceField, self.fields["customer"]).queryset = Customer.objects.visible_to(
                actor
            ).filter(is_active=True)
            self.fields["customer"].help_text = "Required for customer roles; empty for provider staff."
        else:
            del self.fields["customer"]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if "customer" not in self.fields:
            data["customer"] = self.actor.customer
        role, customer = data.get("role"), data.get("customer")
        if role in CUSTOMER_ROLES and customer is None:
            self.add_error("customer", "Choose the customer this user belongs to.")
        if role and role not in CUSTOMER_ROLES and customer is not None:
            self.add_error("customer", "Provider staff do not belong to a customer.")
        return data


class UserRoleForm(forms.Form):
    role = forms.ChoiceField()

    def __init__(self, *args: Any, actor: User, user: User, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        same_kind = [
            (value, label)
            for value, label in _role_choices_for(actor)
            if (value in CUSTOMER_ROLES) == (user.role in CUSTOMER_ROLES)
        ]
        cast(forms.ChoiceField, self.fields["role"]).choices = same_kind
        self.fields["role"].initial = user.role


# The locales offered in selects: the provider's markets. A stored tag not listed here (set on
# the API, which takes any locale Babel knows) is offered too, so a form never drops it.
LOCALES = (
    "en", "en-GB", "en-US", "en-IE", "de-DE", "de-AT", "de-CH", "fr-FR", "fr-BE", "fr-CH",
    "nl-NL", "nl-BE", "it-IT", "es-ES", "pt-PT", "pl-PL", "cs-CZ", "da-DK", "sv-SE", "nb-NO", "fi-FI",
)  # fmt: skip


def locale_label(tag: str) -> str:
    """The locale's name in its own language and ours: Deutsch (Deutschland) – German (Germany) (de-DE)."""
    locale = Locale.parse(tag.replace("-", "_"))
    own, english = locale.get_display_name() or tag, locale.get_display_name("en") or tag
    label = own if own == english else f"{own[:1].upper()}{own[1:]} – {english}"
    return f"{label} ({tag})"


def locale_choices(current: str = "") -> list[tuple[str, str]]:
    """(tag, label) for each offered locale, and for `current` when it is not one of them."""
    tags = [*LOCALES, *([current] if current and current not in LOCALES else [])]
    return [(tag, locale_label(tag)) for tag in tags]


class ProfileForm(forms.ModelForm[User]):
    time_zone = forms.ChoiceField(
        choices=[("", "My customer's time zone (or UTC)"), *TIME_ZONE_CHOICES], required=False
    )
    locale = forms.ChoiceField(
        label="Numbers and money",
        required=False,
        help_text="How numbers, amounts and dates read for you.",
    )

    class Meta:
        model = User
        fields = ["full_name", "time_zone", "locale"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        user = self.instance
        default = user.customer.locale if user.customer is not None else "en"
        cast(forms.ChoiceField, self.fields["locale"]).choices = [
            ("", f"As my customer's ({default})" if user.customer is not None else "English (en)"),
            *locale_choices(user.locale),
        ]
