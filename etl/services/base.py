"""Process plumbing shared by the local services: pid files, log files, health waits.

Every service is a subclass of Service with install/start/stop/healthy. `up` is idempotent:
a healthy instance is reused; `down` leaves nothing running that `up` started."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Callable

from etl.config import Settings
from etl.errors import ServiceError
from etl.locks import exclusive


def port_open(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_until(check: Callable[[], bool], timeout: float, what: str, log_file: Path | None = None,
               interval: float = 0.5) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception:  # a health probe failing is the normal "not yet"
            pass
        time.sleep(interval)
    tail = ""
    if log_file and log_file.exists():
        tail = "\n--- last lines of " + str(log_file) + " ---\n" + "\n".join(
            log_file.read_text(errors="replace").splitlines()[-30:])
    raise ServiceError(f"{what} not healthy after {timeout:.0f}s{tail}")


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Service:
    name: str = ""
    start_timeout: float = 120.0

    def __init__(self, settings: Settings):
        self.settings = settings

    # -- paths -----------------------------------------------------------
    @property
    def log_file(self) -> Path:
        return self.settings.logs_dir / f"{self.name}.log"

    @property
    def pid_file(self) -> Path:
        return self.settings.run_dir / f"{self.name}.pid"

    @property
    def data_dir(self) -> Path:
        return self.settings.run_dir / self.name

    # -- to implement ------------------------------------------------------
    def install(self) -> None:
        """Fetch/build/unpack what the service needs. Idempotent and cheap when already done."""

    def start(self) -> None:
        raise NotImplementedError

    def healthy(self) -> bool:
        raise NotImplementedError

    def endpoint(self) -> str:
        """Human-readable address for `services status`."""
        return ""

    def stop(self) -> None:
        self.stop_pidfile()

    # -- shared behaviour --------------------------------------------------
    def up(self) -> None:
        if self.healthy():
            return
        self.settings.logs_dir.mkdir(parents=True, exist_ok=True)
        self.settings.run_dir.mkdir(parents=True, exist_ok=True)
        self.install()
        self.start()
        wait_until(self.healthy, self.start_timeout, f"service {self.name}", self.log_file)

    def up_locked(self, lock_path: Path, bring_up: Callable[[], None]) -> None:
        """up() for a service parallel processes may start at once: nothing when healthy, else
        bring_up() under the lock, unless another process finished while this one waited for it."""
        if self.healthy():
            return
        self.settings.run_dir.mkdir(parents=True, exist_ok=True)
        # Parallel test sessions call ensure() at the same time; two starters would fight over one
        # port and one data directory (or initdb one directory, or load a schema twice).
        with exclusive(lock_path):
            if self.healthy():  # another process finished while we waited for the lock
                return
            bring_up()

    def spawn(self, argv: list[str], env: dict | None = None, cwd: Path | None = None,
              user: str | None = None) -> int:
        """Start a long-running process in its own session, output to the service log, pid recorded."""
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_file, "ab")
        full_env = {**os.environ, **(env or {})}
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=full_env, cwd=cwd, start_new_session=True, user=user)
        self.pid_file.parent.mkdir(parents=True, exist_ok=True)
        self.pid_file.write_text(str(proc.pid))
        return proc.pid

    def stop_pidfile(self, timeout: float = 30.0) -> None:
        if not self.pid_file.exists():
            return
        try:
            pid = int(self.pid_file.read_text().strip())
        except ValueError:
            self.pid_file.unlink(missing_ok=True)
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(pid, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and pid_alive(pid):
                time.sleep(0.2)
            if not pid_alive(pid):
                break
        self.pid_file.unlink(missing_ok=True)

    def run(self, argv: list[str], what: str, env: dict | None = None, timeout: float = 600,
            user: str | None = None, input: str | None = None) -> str:
        """Run a short command; raise ServiceError with its output when it fails."""
        proc = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, **(env or {})},
                              timeout=timeout, user=user, input=input)
        if proc.returncode != 0:
            raise ServiceError(f"{self.name}: {what} failed (exit {proc.returncode}): "
                               f"{(proc.stderr or proc.stdout)[-2000:]}")
        return proc.stdout
