"""Tickets, SLA timers and disputes arrive with the Support issue."""
