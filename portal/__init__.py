"""Fleetport's core: settings, tenancy, users and roles, audit log, UI shell, health."""

from portal.celery import app as celery_app

__all__ = ("celery_app",)
