"""Helpers shared by the local services: one starter at a time, Maven downloads, zip unpacking, a
non-root account for servers that refuse root (Elasticsearch, HDFS), and files only root may read."""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import subprocess
import zipfile
from pathlib import Path

from etl.errors import ServiceError
from etl.locks import exclusive
from etl.services.base import Service, pid_alive, wait_until

SERVICE_USER = "monetl"


def write_private(path: Path, text: str) -> None:
    """Replace `path` with `text`, readable by its owner only from the first byte (created 0600, not
    chmod-ed after the write), and whole or not at all."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # an older tmp file keeps its mode through O_CREAT
        os.write(fd, text.encode())
    finally:
        os.close(fd)
    os.replace(tmp, path)


def maven_fetch(artifact: str, dest_dir: Path, timeout: float = 900) -> Path:
    """Resolve group:artifact:version:packaging from Maven Central (via ~/.m2) into dest_dir."""
    if not shutil.which("mvn"):
        raise ServiceError(f"mvn not found; needed to fetch {artifact} (scripts/setup.sh installs maven)")
    dest_dir.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(["mvn", "-q", "-B", "dependency:copy", f"-Dartifact={artifact}",
                           f"-DoutputDirectory={dest_dir}", "-Dmdep.overWriteReleases=true"],
                          capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise ServiceError(f"maven could not fetch {artifact}: {(proc.stdout + proc.stderr)[-2000:]}")
    group, name, version, packaging = artifact.split(":")[:4]
    path = dest_dir / f"{name}-{version}.{packaging}"
    if not path.exists():
        raise ServiceError(f"maven reported success for {artifact} but {path} is missing")
    return path


def unzip_keep_modes(archive: Path, dest: Path) -> None:
    """zipfile drops the Unix mode bits; launch scripts need their executable bit back."""
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            target = zf.extract(info, dest)
            mode = (info.external_attr >> 16) & 0o7777
            if mode and not info.is_dir():
                os.chmod(target, mode)


def service_user() -> str | None:
    """The account a root-refusing server runs as: None when we are not root (run as ourselves),
    otherwise the system user `monetl`, created on first use."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(SERVICE_USER)
    except KeyError:
        proc = subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                               SERVICE_USER], capture_output=True, text=True)
        if proc.returncode != 0 and "already exists" not in proc.stderr:
            raise ServiceError(f"cannot create system user {SERVICE_USER}: {proc.stderr.strip()}")
    return SERVICE_USER


def give_to(user: str | None, *paths: Path) -> None:
    """Make `user` own `paths` (recursively) and able to reach them: the monetl home usually lives
    under /root (mode 700), so each ancestor gets the search bit for others (no read: listing stays
    private)."""
    if user is None:
        return
    pw = pwd.getpwnam(user)
    for path in paths:
        path.mkdir(parents=True, exist_ok=True)
        for root, dirs, files in os.walk(path):
            os.chown(root, pw.pw_uid, pw.pw_gid)
            for name in dirs + files:
                os.lchown(os.path.join(root, name), pw.pw_uid, pw.pw_gid)
        for parent in path.resolve().parents:
            mode = parent.stat().st_mode
            if not mode & stat.S_IXOTH:
                os.chmod(parent, mode | stat.S_IXOTH)


def let_read(user: str | None, path: Path) -> None:
    """A read-only tree (an unpacked distribution) readable by `user`: others get r and x."""
    if user is None:
        return
    for parent in path.resolve().parents:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            os.chmod(parent, mode | stat.S_IXOTH)
    for root, dirs, files in os.walk(path):
        os.chmod(root, os.stat(root).st_mode | stat.S_IROTH | stat.S_IXOTH)
        for name in files:
            p = os.path.join(root, name)
            mode = os.stat(p).st_mode
            os.chmod(p, mode | stat.S_IROTH | (stat.S_IXOTH if mode & stat.S_IXUSR else 0))


def as_user(user: str | None, argv: list[str]) -> list[str]:
    """argv run as `user` with that user's own groups. Popen(user=...) alone keeps root's group,
    and the group bits of /root (---) then deny the search that the other bits allow."""
    if user is None:
        return argv
    return ["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups", "--", *argv]


def recorded_pid_alive(pid_file: Path) -> bool:
    try:
        return pid_alive(int(pid_file.read_text().strip()))
    except (OSError, ValueError):
        return False


def up_once(service: Service) -> None:
    """Service.up() for a service shared by parallel sessions: one starter at a time (file lock), and
    a process of ours that is alive but not answering yet (starting, or slow under load) is given
    its start timeout before it is restarted: a slow health probe must not kill a node in use."""
    with exclusive(service.settings.run_dir / f"{service.name}.lock"):
        if service.healthy():
            return
        if recorded_pid_alive(service.pid_file):
            try:
                wait_until(service.healthy, service.start_timeout, f"service {service.name}")
                return
            except ServiceError:
                pass  # stuck: start() replaces it
        Service.up(service)
