"""A page's list filters: the app's FilterSet (from its selectors, the same one its API list
uses) bound to the query string. Bad input is a message on the page, never a 500: the filters
that are valid still apply, the bad one is left out and said so."""

from __future__ import annotations

from typing import Any, TypeVar

import django_filters
from django.contrib import messages
from django.db.models import QuerySet
from django.http import HttpRequest

_F = TypeVar("_F", bound=django_filters.FilterSet)


def page_filters(
    request: HttpRequest,
    filterset_class: type[_F],
    queryset: QuerySet[Any],
    *,
    defaults: dict[str, str] | None = None,
    report: bool = True,
) -> _F:
    """`filterset_class` over `queryset` with the page's ?parameters (`defaults` for absent ones).

    `report=False` for a fragment a page reloads by itself (its page reported the error already).
    """
    data = request.GET.copy()
    for name, value in (defaults or {}).items():
        data.setdefault(name, value)
    filters = filterset_class(data, queryset=queryset, request=request)
    if not filters.is_valid() and report:
        for name, errors in filters.errors.items():
            label = filters.filters[name].label or name if name in filters.filters else name
            messages.error(request, f"{str(label).capitalize()}: {' '.join(errors)}")
    return filters


def chosen(filters: django_filters.FilterSet) -> dict[str, str]:
    """Each filter's value as the page's form shows it: as given, or "" when absent or refused."""
    errors = filters.errors
    return {name: "" if name in errors else str(filters.data.get(name, "")) for name in filters.filters}
