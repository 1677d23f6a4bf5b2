"""The supervised process set's files: the supervisord configuration bin/run generates (read
back by supervisord's own parser), production's systemd units (systemd-analyze verify, and
every command they name exists) and bin/readyz's watch. The processes themselves are
restarted for real in tests/test_run_supervised.py."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from supervisor.options import ServerOptions

from portal.supervision import postgres_program, procfile_programs, read_procfile, redis_program, write_config
from tests.services import free_port

ROOT = Path(__file__).resolve().parent.parent.parent
UNITS = ROOT / "deploy" / "systemd"
VENV = Path(sys.executable).parent.parent


def test_the_generated_config_supervises_every_procfile_process_and_the_databases(tmp_path: Path) -> None:
    programs = [
        postgres_program(
            postgres="/usr/bin/postgres", data=tmp_path / "pg", socket_folder=tmp_path, port=5432, user=None
        ),
        redis_program(server="/usr/bin/redis-server", port=6390, folder=tmp_path / "redis"),
        *procfile_programs(ROOT / "Procfile", skip=["simulator"]),
    ]
    written = write_config(programs, var=tmp_path, directory=ROOT)
    options = ServerOptions()
    options.realize(args=["-c", str(written)])

    configs = {c.name: c for group in options.process_group_configs for c in group.process_configs}
    assert set(configs) == {"postgres", "redis", "web", "worker", "beat"}
    for name, command in read_procfile(ROOT / "Procfile").items():
        if name != "simulator":
            assert configs[name].command == f"/bin/sh -c 'exec {command}'"
            assert configs[name].autostart is False  # bin/run starts them once migrated
    for config in configs.values():
        assert config.autorestart.__name__ == "RestartUnconditionally"
        assert config.stdout_logfile == str(tmp_path / "log" / f"{config.name}.log")
    # The databases start first and stop last.
    assert configs["postgres"].priority < min(configs[n].priority for n in ("web", "worker", "beat"))
    assert configs["postgres"].stopsignal == 2  # SIGINT: PostgreSQL's fast shutdown
    # PostgreSQL (run as Debian's postgres user when root starts it) starts in its own socket
    # folder: a checkout under a folder only root may enter made every start fail (exit 127).
    assert configs["postgres"].directory == str(tmp_path)
    assert {configs[n].directory for n in ("redis", "web", "worker", "beat")} == {str(ROOT)}
    # The control socket asks for a password, kept in a file only its owner reads.
    assert options.server_configs[0]["password"]
    assert written.stat().st_mode & 0o077 == 0


def test_a_procfile_line_that_is_not_name_colon_command_is_refused(tmp_path: Path) -> None:
    procfile = tmp_path / "Procfile"
    procfile.write_text("# comment\n\nweb: uvicorn app\nnot a process line\n")

    with pytest.raises(ValueError, match=":4: not a `name: command` line"):
        read_procfile(procfile)


def installed_units(tmp_path: Path) -> list[Path]:
    """The units as installed in /etc/systemd/system, with this checkout and venv in place of
    /opt/fleetport and its .venv."""
    units = []
    for unit in sorted(UNITS.iterdir()):
        text = (
            unit.read_text().replace("/opt/fleetport/.venv", str(VENV)).replace("/opt/fleetport", str(ROOT))
        )
        (tmp_path / unit.name).write_text(text)
        units.append(tmp_path / unit.name)
    return units


def test_every_command_a_unit_names_exists() -> None:
    procfile = read_procfile(ROOT / "Procfile")
    seen = set()
    for unit in UNITS.glob("*.service"):
        for line in re.findall(r"^Exec\w+=(.+)$", unit.read_text(), re.MULTILINE):
            python, script, *args = line.split()
            assert python == "/opt/fleetport/.venv/bin/python"
            assert (ROOT / script.removeprefix("/opt/fleetport/")).is_file(), line
            if script.endswith("bin/procfile"):
                assert args[0] in procfile, line
                seen.add(args[0])
    assert seen == {"web", "worker", "beat"}
    target = (UNITS / "fleetport.target").read_text()
    for name in ("fleetport-web.service", "fleetport-worker.service", "fleetport-beat.service"):
        assert name in target
        assert "Restart=always" in (UNITS / name).read_text()
        assert "EnvironmentFile=/etc/fleetport/fleetport.env" in (UNITS / name).read_text()
        assert "User=fleetport" in (UNITS / name).read_text()


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_the_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    done = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *map(str, installed_units(tmp_path))],
        capture_output=True,
        text=True,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # unknown keys and bad values are only warned about


def readyz(*args: str, port: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "bin" / "readyz"), *args],
        env={**os.environ, "PORT": str(port)},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def test_the_watch_restarts_the_web_unit_after_n_failures_in_a_row(tmp_path: Path) -> None:
    port = free_port()  # nothing answers there
    watch = ["watch", "--failures", "2", "--state", str(tmp_path / "state.json")]
    watch += ["--restart", f"touch {tmp_path}/{{unit}}"]

    readyz(*watch, port=port)
    assert not (tmp_path / "fleetport-web.service").exists()
    readyz(*watch, port=port)
    assert (tmp_path / "fleetport-web.service").exists()
    assert '"count": 0' in (tmp_path / "state.json").read_text()


def test_waiting_for_readyz_fails_when_nothing_answers() -> None:
    done = readyz("wait", "--timeout", "1", port=free_port())

    assert done.returncode == 1
    assert "nothing answers" in done.stderr
