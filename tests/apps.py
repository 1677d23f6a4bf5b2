"""The suite as a Django app of the test settings (portal/settings/test.py), for what the
suite's own long-lived server and worker processes need and production never does.

Between transactional tests the suite flushes the database, and Django's flush makes the
content types again under new ids. A uvicorn or Celery worker started once for the session
(tests/integration.py) keeps the ids it cached, so its next audit entry would point at a
content type that no longer exists. Such a process (FLEETPORT_SUITE_SERVER=1) forgets them
before each request and each task.
"""

from __future__ import annotations

import os
from typing import Any

from django.apps import AppConfig


def forget_content_types(**_: Any) -> None:
    from django.contrib.contenttypes.models import ContentType

    ContentType.objects.clear_cache()


class SuiteConfig(AppConfig):
    name = "tests"
    label = "suite"

    def ready(self) -> None:
        if os.environ.get("FLEETPORT_SUITE_SERVER") != "1":
            return
        from celery.signals import task_prerun
        from django.core.signals import request_started

        request_started.connect(forget_content_types, dispatch_uid="suite-forget-content-types")
        task_prerun.connect(forget_content_types, dispatch_uid="suite-forget-content-types")
