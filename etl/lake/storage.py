"""One small storage interface for the lake, with two backends: the local filesystem (file://, the
embedded default) and HDFS through WebHDFS (webhdfs://host:port/path). Paths are relative to the
lake root and use '/'. `rename` is the publish step: atomic per directory on both backends, and it
refuses to overwrite (so a publish never merges two partitions)."""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path
from urllib.parse import urlparse

from etl.config import Settings
from etl.errors import ConfigError, StoreError


def _check_relative(path: str) -> str:
    parts = [p for p in path.split("/") if p]
    if any(p in (".", "..") for p in parts):
        raise StoreError(f"lake path {path!r} leaves the lake root")
    return "/".join(parts)


class Storage:
    """Interface; see LocalStorage and WebHdfsStorage."""

    url: str = ""

    def exists(self, path: str) -> bool: raise NotImplementedError
    def list(self, path: str) -> list[str]: raise NotImplementedError
    def read_bytes(self, path: str) -> bytes: raise NotImplementedError
    def write_bytes(self, path: str, data: bytes) -> None: raise NotImplementedError
    def upload(self, local_file: Path, path: str) -> None: raise NotImplementedError
    def download(self, path: str, local_file: Path) -> None: raise NotImplementedError
    def makedirs(self, path: str) -> None: raise NotImplementedError
    def rename(self, src: str, dst: str) -> None: raise NotImplementedError
    def delete(self, path: str) -> None: raise NotImplementedError
    def size(self, path: str) -> int: raise NotImplementedError

    def open_read(self, path: str):
        """A seekable binary file object that reads only the byte ranges asked for (Parquet
        footers and column chunks, not whole files)."""
        raise NotImplementedError

    def local_path(self, path: str) -> Path | None:
        """A local file path for direct reading, when the backend has one."""
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url})"


class LocalStorage(Storage):
    def __init__(self, root: Path | str):
        self.root = Path(root)
        self.url = f"file://{self.root}"

    def _p(self, path: str) -> Path:
        return self.root / _check_relative(path)

    def local_path(self, path: str) -> Path:
        return self._p(path)

    def exists(self, path: str) -> bool:
        return self._p(path).exists()

    def list(self, path: str) -> list[str]:
        p = self._p(path)
        return sorted(os.listdir(p)) if p.is_dir() else []

    def read_bytes(self, path: str) -> bytes:
        try:
            return self._p(path).read_bytes()
        except OSError as exc:
            raise StoreError(f"cannot read {path} in lake {self.url}: {exc.strerror}") from exc

    def write_bytes(self, path: str, data: bytes) -> None:
        p = self._p(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)

    def upload(self, local_file: Path, path: str) -> None:
        p = self._p(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        if Path(local_file).resolve() != p.resolve():
            shutil.copyfile(local_file, p)

    def download(self, path: str, local_file: Path) -> None:
        shutil.copyfile(self._p(path), local_file)

    def makedirs(self, path: str) -> None:
        self._p(path).mkdir(parents=True, exist_ok=True)

    def rename(self, src: str, dst: str) -> None:
        s, d = self._p(src), self._p(dst)
        if d.exists():
            raise StoreError(f"cannot move {src} to {dst} in lake {self.url}: the target exists")
        d.parent.mkdir(parents=True, exist_ok=True)
        os.rename(s, d)

    def delete(self, path: str) -> None:
        p = self._p(path)
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        elif p.exists() or p.is_symlink():
            p.unlink()

    def size(self, path: str) -> int:
        return self._p(path).stat().st_size

    def open_read(self, path: str):
        return open(self._p(path), "rb")


class WebHdfsStorage(Storage):
    """HDFS via WebHDFS (python `hdfs` package, InsecureClient as settings.hdfs_user)."""

    def __init__(self, http_url: str, root: str, user: str, timeout: float = 120):
        from hdfs import InsecureClient

        self.root = "/" + root.strip("/") if root.strip("/") else ""
        self.url = f"webhdfs://{urlparse(http_url).netloc}{self.root}"
        # (connect, read): a namenode that does not answer fails the call, never hangs the run.
        self.timeout = (min(10.0, timeout), timeout)
        self.client = InsecureClient(http_url, user=user, timeout=self.timeout)

    def _p(self, path: str) -> str:
        rel = _check_relative(path)
        return f"{self.root}/{rel}" if rel else (self.root or "/")

    def _call(self, what: str, path: str, fn, *args, **kwargs):
        from hdfs.util import HdfsError

        try:
            return fn(*args, **kwargs)
        except HdfsError as exc:
            raise StoreError(f"HDFS {what} {path} in lake {self.url} failed: {exc}") from exc
        except OSError as exc:  # connection refused / reset: the namenode or datanode is away
            raise StoreError(f"HDFS {what} {path} in lake {self.url} failed: {exc}") from exc

    def exists(self, path: str) -> bool:
        return self._call("status", path, self.client.status, self._p(path), strict=False) is not None

    def list(self, path: str) -> list[str]:
        if not self.exists(path):
            return []
        return sorted(self._call("list", path, self.client.list, self._p(path)))

    def read_bytes(self, path: str) -> bytes:
        def read():
            with self.client.read(self._p(path)) as reader:
                return reader.read()
        return self._call("read", path, read)

    def write_bytes(self, path: str, data: bytes) -> None:
        self._call("write", path, self.client.write, self._p(path), data=data, overwrite=True)

    def upload(self, local_file: Path, path: str) -> None:
        def put():
            with open(local_file, "rb") as fh:
                self.client.write(self._p(path), data=fh, overwrite=True)
        self._call("upload", path, put)

    def download(self, path: str, local_file: Path) -> None:
        def get():
            with self.client.read(self._p(path)) as reader, open(local_file, "wb") as out:
                shutil.copyfileobj(reader, out, 1 << 20)
        self._call("download", path, get)

    def makedirs(self, path: str) -> None:
        self._call("mkdirs", path, self.client.makedirs, self._p(path))

    def rename(self, src: str, dst: str) -> None:
        # WebHDFS RENAME moves *into* an existing directory: refuse instead of nesting partitions.
        if self.exists(dst):
            raise StoreError(f"cannot move {src} to {dst} in lake {self.url}: the target exists")
        parent = dst.rsplit("/", 1)[0] if "/" in dst.strip("/") else ""
        if parent:
            self.makedirs(parent)
        self._call("rename", src, self.client.rename, self._p(src), self._p(dst))

    def delete(self, path: str) -> None:
        self._call("delete", path, self.client.delete, self._p(path), recursive=True)

    def size(self, path: str) -> int:
        return int(self._call("status", path, self.client.status, self._p(path))["length"])

    def open_read(self, path: str):
        return io.BufferedReader(_WebHdfsRange(self, path), buffer_size=1 << 20)


class _WebHdfsRange(io.RawIOBase):
    """Ranged reads of one HDFS file through WebHDFS OPEN?offset=&length=."""

    def __init__(self, storage: WebHdfsStorage, path: str):
        self.storage, self.path = storage, path
        self.length = storage.size(path)
        self.position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.position, io.SEEK_END: self.length}[whence]
        self.position = max(0, base + offset)
        return self.position

    def readinto(self, buffer) -> int:
        want = min(len(buffer), self.length - self.position)
        if want <= 0:
            return 0

        def read():
            with self.storage.client.read(self.storage._p(self.path), offset=self.position, length=want) as reader:
                return reader.read()
        data = self.storage._call("read", self.path, read)
        buffer[:len(data)] = data
        self.position += len(data)
        return len(data)


def open_storage(settings: Settings, lake_url: str | None = None) -> Storage:
    url = lake_url or settings.lake_url
    parsed = urlparse(url)
    if parsed.scheme in ("", "file"):
        return LocalStorage(Path(parsed.path if parsed.scheme else url))
    if parsed.scheme == "webhdfs":
        host = parsed.hostname or "127.0.0.1"
        port = parsed.port or settings.hdfs_http_port
        return WebHdfsStorage(f"http://{host}:{port}", parsed.path, settings.hdfs_user, settings.hdfs_timeout_seconds)
    raise ConfigError(f"lake_url {url!r}: use file:///path or webhdfs://host:port/path")
