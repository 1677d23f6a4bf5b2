"""The asset page's custom chart range: `?from=&to=` in the user's time zone, checked here.

The range buttons (hour, day, week, month) are the page script's; a custom range is a GET
form, so a bad one answers 400 with the error next to its field (a reversed range used to be
ignored without a word, leaving the charts as they were) and a good one is a link.
The telemetry API checks the same rule on its own `from`/`to` (fleet.api.views._series_query).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django import forms
from django.http import QueryDict

LOCAL = forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M")
FORMATS = ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"]
REVERSED = "Must be before “to”."


class ChartRangeForm(forms.Form):
    """Both ends, aware in the current (the user's) time zone, `from` before `to`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # `from` is a Python keyword: the fields are added by name, as the query says them.
        self.fields["from"] = forms.DateTimeField(label="from", widget=LOCAL, input_formats=FORMATS)
        self.fields["to"] = forms.DateTimeField(label="to", widget=LOCAL, input_formats=FORMATS)

    def clean(self) -> dict[str, Any]:
        cleaned: dict[str, Any] = super().clean() or {}
        start, end = cleaned.get("from"), cleaned.get("to")
        if start is not None and end is not None and start >= end:
            self.add_error("from", REVERSED)
        return cleaned


def chart_range(query: QueryDict) -> tuple[ChartRangeForm, dict[str, datetime] | None]:
    """The form for the page (unbound without `from` and `to` in the query) and the range it
    asks for (None: the page's default, the last hour)."""
    if "from" not in query and "to" not in query:
        return ChartRangeForm(), None
    form = ChartRangeForm(query)
    if not form.is_valid():
        return form, None
    return form, {"from": form.cleaned_data["from"], "to": form.cleaned_data["to"]}
