"""The real server, started as the Procfile starts it, keys the log-in lockout on the peer's
address: a client that sends a new X-Forwarded-For with each attempt is still locked out
(docs/security.md, "Log-in throttling")."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator

import pytest
from django.conf import settings

from portal.models import User
from tests.factories import PASSWORD
from tests.integration import ARTIFACTS, ROOT, VENV_BIN, post_json, stop_process
from tests.services import free_port, wait_for_port

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def procfile_web_options() -> list[str]:
    """The options of the Procfile's `web:` uvicorn, less --host and --port."""
    line = next(x for x in (ROOT / "Procfile").read_text().splitlines() if x.startswith("web:"))
    words = re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", line).split()[3:]
    options: list[str] = []
    while words:
        word = words.pop(0)
        if word in ("--host", "--port"):
            words.pop(0)
        else:
            options.append(word)
    return options


@pytest.fixture
def procfile_server(service_env: dict[str, str]) -> Iterator[str]:
    port = free_port()
    with (ARTIFACTS / "asgi-procfile.log").open("ab") as out:
        process = subprocess.Popen(
            [str(VENV_BIN / "uvicorn"), "portal.asgi:application", "--host", "127.0.0.1", "--port", str(port),
             *procfile_web_options()],
            cwd=ROOT, env=service_env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        wait_for_port(port, timeout=60)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process(process)


def _obtain_token(base_url: str, email: str, password: str, forwarded_for: str) -> int:
    body = {"email": email, "password": password}
    return post_json(f"{base_url}/api/v1/auth/token/", body, {"X-Forwarded-For": forwarded_for})


def test_the_procfiles_server_ignores_x_forwarded_for_for_the_lockout(
    procfile_server: str, viewer_a: User
) -> None:
    codes = [
        _obtain_token(procfile_server, viewer_a.email, "wrong-password", f"198.51.100.{n}")
        for n in range(settings.AXES_FAILURE_LIMIT)
    ]
    assert codes[:-1] == [400] * (settings.AXES_FAILURE_LIMIT - 1)
    assert _obtain_token(procfile_server, viewer_a.email, PASSWORD, "198.51.100.250") == 429
