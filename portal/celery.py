"""The Celery app: Redis broker, JSON only, late acks; settings under CELERY_* in Django."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings.dev")

app = Celery("fleetport")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
