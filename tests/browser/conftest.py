"""Fixtures of the browser tests (the service fixtures are in tests/integration.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser import sweep_data
from tests.integration import at_once, flush_database


@pytest.fixture(scope="module")
def sweep_site(django_db_setup: None, django_db_blocker: Any) -> Iterator[None]:
    """The demo widened for the page checks (tests/browser/sweep_data.py), built once per module:
    a build takes longer than a role's sweep. For modules whose tests only read it (GET pages,
    open menus; no worker or beat runs) and take the plain `django_db` mark: a test's own
    transaction rolls back and leaves these rows, committed outside it for the ASGI server to
    read. The module empties the database afterwards, as a transactional test's end does."""
    try:
        with django_db_blocker.unblock():
            at_once(sweep_data.build, 1)  # a thread of its own: Playwright's event loop may run in this one
        yield
    finally:
        with django_db_blocker.unblock():
            at_once(flush_database, 1)
