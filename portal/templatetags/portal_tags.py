from __future__ import annotations

from django import template

register = template.Library()


@register.filter
def minutes(value: int | None) -> str:
    """SLA minutes as people say them: 45 min, 4 h, 1 d 6 h."""
    if value in (None, ""):
        return "—"
    total = int(value)
    days, rest = divmod(total, 24 * 60)
    hours, mins = divmod(rest, 60)
    parts = [f"{days} d" if days else "", f"{hours} h" if hours else "", f"{mins} min" if mins else ""]
    return " ".join(p for p in parts if p) or "0 min"
