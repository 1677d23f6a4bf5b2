"""Ticket and alarm priority, P1 (critical) to P4 (low): one vocabulary for every app.

Support gives each ticket a priority, an alarm rule of fleet names the priority of the ticket
its alarm opens, and a contract's SLA terms (billing) give minutes per priority.
"""

from __future__ import annotations

from django.db import models


class Priority(models.TextChoices):
    P1 = "P1", "P1 — critical"
    P2 = "P2", "P2 — high"
    P3 = "P3", "P3 — normal"
    P4 = "P4", "P4 — low"


# In order, most urgent first: the keys of a contract's SLA terms.
PRIORITIES: tuple[str, ...] = tuple(Priority.values)
