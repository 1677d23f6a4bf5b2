"""The supervised process set of `make run` (bin/run): supervisord's configuration, generated
from the Procfile, and a small client of the running supervisord.

The Procfile stays the one list of a node's commands; bin/run adds the project-local
PostgreSQL and Redis as programs of their own, started first (lower priority) and stopped last.
Every program restarts when it exits, whatever the exit; each writes its output to
var/log/<name>.log, and supervisord's own lines (spawned, exited, entered RUNNING) go to the
terminal and var/log/supervisord.log. docs/deploy.md, "Processes and supervision", says why
supervisord and what production runs instead (systemd units in deploy/systemd/).

Nothing here imports Django: bin/run uses it before the database exists.
"""

from __future__ import annotations

import configparser
import os
import re
import secrets
import shlex
import xmlrpc.client
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

PROCFILE_LINE = re.compile(r"^([A-Za-z0-9_-]+):\s*(.+)$")
# Programs the supervisor starts first and stops last (supervisord stops in reverse priority).
SERVICE_PRIORITY = 10
APP_PRIORITY = 100
CONTROL_USER = "fleetport"


def read_procfile(path: Path) -> dict[str, str]:
    """The Procfile's `name: command` lines, in order; comments and blank lines are skipped."""
    processes: dict[str, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = PROCFILE_LINE.match(line)
        if match is None:
            raise ValueError(f"{path}:{number}: not a `name: command` line: {line!r}")
        processes[match[1]] = match[2].strip()
    return processes


@dataclass(frozen=True)
class Program:
    """One supervised program. `command` is an argument list; `shell` is a Procfile command,
    run as `sh -c 'exec …'` so its ${VAR:-default} expand and the program itself (not a
    shell) gets the supervisor's signals."""

    name: str
    command: Sequence[str] = ()
    shell: str = ""
    priority: int = APP_PRIORITY
    autostart: bool = False
    user: str | None = None
    # Where it starts; None: the checkout. A program run as another user starts in a folder
    # that user can enter (supervisord cannot start it in a checkout that user cannot reach).
    directory: Path | None = None
    stopsignal: str = "TERM"
    stopwaitsecs: int = 10
    as_group: bool = True  # signals go to the program's process group (Celery's pool children too)

    def argv(self) -> list[str]:
        if self.shell:
            return ["/bin/sh", "-c", f"exec {self.shell}"]
        return list(self.command)


def procfile_programs(procfile: Path, *, skip: Iterable[str] = ()) -> list[Program]:
    """The app programs: every Procfile entry but those in `skip`, started by bin/run once
    the database is migrated."""
    skipped = set(skip)
    return [
        Program(name=name, shell=command)
        for name, command in read_procfile(procfile).items()
        if name not in skipped
    ]


def redis_program(*, server: str, port: int, folder: Path) -> Program:
    """The project-local Redis: append-only file in `folder` (the broker's queued tasks and
    the rate counters survive a restart; the heartbeats themselves are in PostgreSQL)."""
    return Program(
        name="redis",
        command=[
            server,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(folder),
            "--appendonly",
            "yes",
            "--save",
            "",
        ],
        priority=SERVICE_PRIORITY,
        autostart=True,
        as_group=False,
    )


def postgres_program(
    *, postgres: str, data: Path, socket_folder: Path, port: int, user: str | None
) -> Program:
    """The project-local PostgreSQL in the foreground, as tests.services.PostgresServer.kept
    configures it: a Unix socket in `socket_folder` and no port. SIGINT is its fast shutdown
    (SIGTERM would wait for every client to leave); its backends are left to the postmaster."""
    return Program(
        name="postgres",
        command=[
            postgres,
            "-D",
            str(data),
            "-p",
            str(port),  # names the socket file only
            "-c",
            f"unix_socket_directories={socket_folder}",
            "-c",
            "listen_addresses=",
            "-c",
            "max_connections=200",
        ],
        priority=SERVICE_PRIORITY,
        autostart=True,
        user=user,
        directory=socket_folder,
        stopsignal="INT",
        stopwaitsecs=30,
        as_group=False,
    )


def _value(text: str) -> str:
    # supervisord expands %(name)s in its values: a literal percent sign is written %%.
    return text.replace("%", "%%")


def render(programs: Sequence[Program], *, var: Path, directory: Path, password: str) -> str:
    """supervisord.conf for `programs`: in the foreground, its socket and logs under `var`;
    the control socket asks for `password` (this file, mode 0600, is where clients read it)."""
    state, logs = var / "supervisor", var / "log"
    credentials = [f"username={CONTROL_USER}", f"password={_value(password)}"]
    lines = [
        "; Generated by bin/run from the Procfile (portal/supervision.py); edits are overwritten.",
        "[supervisord]",
        "nodaemon=true",
        *(["user=root"] if os.geteuid() == 0 else []),  # says so, rather than warn about it
        f"logfile={logs / 'supervisord.log'}",
        "logfile_maxbytes=10MB",
        "logfile_backups=2",
        f"pidfile={state / 'supervisord.pid'}",
        f"directory={directory}",
        f"childlogdir={logs}",
        "",
        "[unix_http_server]",
        f"file={state / 'supervisor.sock'}",
        "chmod=0700",
        *credentials,
        "",
        "[supervisorctl]",
        f"serverurl=unix://{state / 'supervisor.sock'}",
        *credentials,
        "",
        "[rpcinterface:supervisor]",
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
    ]
    for program in programs:
        settings = {
            "command": shlex.join(program.argv()),
            "directory": str(program.directory or directory),
            "priority": str(program.priority),
            "autostart": str(program.autostart).lower(),
            # Restart whatever the exit; a program that dies within startsecs of its start is
            # retried after 1, 2, 3 … seconds, up to startretries times.
            "autorestart": "true",
            "startsecs": "1",
            "startretries": "20",
            "stopsignal": program.stopsignal,
            "stopwaitsecs": str(program.stopwaitsecs),
            "stopasgroup": str(program.as_group).lower(),
            "killasgroup": str(program.as_group).lower(),
            "redirect_stderr": "true",
            "stdout_logfile": str(logs / f"{program.name}.log"),
            "stdout_logfile_maxbytes": "20MB",
            "stdout_logfile_backups": "2",
            **({"user": program.user} if program.user else {}),
        }
        lines += ["", f"[program:{program.name}]"]
        lines += [f"{key}={_value(value)}" for key, value in settings.items()]
    return "\n".join(lines) + "\n"


def write_config(programs: Sequence[Program], *, var: Path, directory: Path) -> Path:
    """Write var/supervisor/supervisord.conf (and make its folders); return its path."""
    (var / "supervisor").mkdir(parents=True, exist_ok=True)
    (var / "log").mkdir(parents=True, exist_ok=True)
    path = var / "supervisor" / "supervisord.conf"
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text(render(programs, var=var, directory=directory, password=secrets.token_urlsafe(24)))
    return path


class Supervisor:
    """The running supervisord of a var folder, through its XML-RPC socket."""

    def __init__(self, var: Path) -> None:
        self.config = var / "supervisor" / "supervisord.conf"
        self.socket = var / "supervisor" / "supervisor.sock"

    @property
    def rpc(self) -> Any:
        """A proxy with the password of the configuration on disk now (each run makes one)."""
        from supervisor.xmlrpc import SupervisorTransport

        config = configparser.RawConfigParser()
        config.read(self.config)
        password = config.get("supervisorctl", "password", fallback="").replace("%%", "%")
        transport = SupervisorTransport(CONTROL_USER, password, f"unix://{self.socket}")
        return xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport)

    def answers(self) -> bool:
        try:
            return cast(str, self.rpc.supervisor.getState()["statename"]) == "RUNNING"
        except (OSError, xmlrpc.client.Error):
            return False

    def start(self, name: str) -> None:
        self.rpc.supervisor.startProcess(name, True)

    def info(self, name: str) -> dict[str, Any]:
        return cast(dict[str, Any], self.rpc.supervisor.getProcessInfo(name))

    def pid(self, name: str) -> int:
        """The program's pid while it runs, else 0."""
        return int(self.info(name)["pid"])

    def state(self, name: str) -> str:
        return cast(str, self.info(name)["statename"])
