"""The ingest package's seams (docs/ingest.md, "The code"): the web process loads the doors,
never the worker's code."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent

LOAD_THE_WEB_PROCESS = """
import json, sys
from portal.asgi import application
from django.urls import get_resolver
get_resolver().url_patterns  # the URLconf imports every view module
print(json.dumps(sorted(sys.modules)))
"""


def test_the_web_process_does_not_import_the_ingest_worker() -> None:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "portal.settings.test", "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", LOAD_THE_WEB_PROCESS],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    loaded = set(json.loads(result.stdout.strip().splitlines()[-1]))
    assert {"fleet.ingest.endpoint", "fleet.ingest.view"} <= loaded  # the doors are there
    worker_side = {"fleet.ingest.worker", "fleet.ingest.store", "fleet.ingest.publisher", "fleet.tasks"}
    assert not worker_side & loaded
