"""The console log: a refused request is one line, a crash keeps its traceback."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from contextlib import contextmanager

from django.test import Client, override_settings

from portal.models import User
from tests.conftest import client_for


@contextmanager
def console() -> Iterator[io.StringIO]:
    """What the settings' "console" handler writes, meanwhile."""
    handler = next(h for h in logging.getLogger().handlers if h.get_name() == "console")
    assert isinstance(handler, logging.StreamHandler)
    output = io.StringIO()
    previous = handler.setStream(output)
    try:
        yield output
    finally:
        handler.setStream(previous)


def test_a_403_logs_one_warning_line_without_a_traceback(viewer_a: User) -> None:
    with console() as output:
        response = client_for(viewer_a).get("/users/")
    assert response.status_code == 403
    lines = output.getvalue().splitlines()
    assert len(lines) == 1, lines
    assert " WARNING django.request Forbidden (Permission denied): /users/" in lines[0]


def test_a_403_of_the_api_logs_one_line(viewer_a: User) -> None:
    with console() as output:
        response = client_for(viewer_a).get("/api/v1/users/")
    assert response.status_code == 403
    lines = output.getvalue().splitlines()
    assert len(lines) == 1, lines
    assert " WARNING django.request Forbidden: /api/v1/users/" in lines[0]


@override_settings(ROOT_URLCONF="tests.portal.test_server_errors")
def test_a_crash_still_logs_its_traceback(db: None) -> None:
    with console() as output:
        response = Client(raise_request_exception=False).get("/crash/")
    assert response.status_code == 500
    assert "Traceback (most recent call last)" in output.getvalue()
    assert "RuntimeError: a bug" in output.getvalue()
