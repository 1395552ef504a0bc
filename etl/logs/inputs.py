"""Where log lines come from: a plain file, a gzip/bzip2/xz file (told by its magic bytes, not its
name: rotated `auth.log.2.gz` and a mis-named `.log` both work) or standard input (`-`, itself
possibly compressed). A file named twice (or by two paths) is read once."""

from __future__ import annotations

import bz2
import gzip
import lzma
import os
import sys
from pathlib import Path
from typing import BinaryIO, Iterator

from etl.errors import SourceError

STDIN = "-"
_MAGIC = ((b"\x1f\x8b", "gzip"), (b"BZh", "bzip2"), (b"\xfd7zXZ\x00", "xz"))
HEAD_LINES = 60


def compression_of(head: bytes) -> str | None:
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name
    return None


def _decompressed(raw: BinaryIO, kind: str | None) -> BinaryIO:
    if kind == "gzip":
        return gzip.GzipFile(fileobj=raw)
    if kind == "bzip2":
        return bz2.BZ2File(raw)
    if kind == "xz":
        return lzma.LZMAFile(raw)
    return raw


class LogInput:
    """One input. `name` is what reports and quarantine refs show; `file_name` the base name
    without compression suffix (parsers use it for messages only). Standard input can be read
    once, so its first lines are kept for format sniffing and replayed by `lines()`."""

    def __init__(self, name: str):
        self.name = name
        self.is_stdin = name == STDIN
        self.path = None if self.is_stdin else Path(name)
        base = "stdin" if self.is_stdin else self.path.name
        for suffix in (".gz", ".bz2", ".xz"):
            if base.endswith(suffix):
                base = base[: -len(suffix)]
        self.file_name = base
        self.compression: str | None = None
        self._stream: BinaryIO | None = None
        self._head: list[bytes] | None = None

    def _open(self) -> BinaryIO:
        if self.is_stdin:
            raw = sys.stdin.buffer
        else:
            try:
                raw = open(self.path, "rb")
            except OSError as exc:
                raise SourceError(f"cannot read log file {self.path}: {exc.strerror}") from None
        peek = raw.peek(8)[:8] if hasattr(raw, "peek") else b""
        self.compression = compression_of(peek)
        return _decompressed(raw, self.compression)

    def head(self, n: int = HEAD_LINES) -> list[bytes]:
        """The first n raw lines (line ends removed), for sniffing and binary checks."""
        if self.is_stdin:
            if self._head is None:
                self._stream = self._open()
                self._head = []
                for raw in self._stream:
                    self._head.append(raw)
                    if len(self._head) >= n:
                        break
            return [_strip(r) for r in self._head]
        out = []
        for _, raw in self.lines():
            out.append(raw)
            if len(out) >= n:
                break
        return out

    def lines(self) -> Iterator[tuple[int, bytes]]:
        """(line number from 1, raw bytes without the line end) for every line, bytes untouched."""
        if self.is_stdin:
            self.head()
            stream, head = self._stream, self._head or []
            self._head = []  # standard input is consumed once
            number = 0
            for raw in head:
                number += 1
                yield number, _strip(raw)
            for raw in stream:
                number += 1
                yield number, _strip(raw)
            return
        fh = self._open()
        try:
            for number, raw in enumerate(fh, 1):
                yield number, _strip(raw)
        except (OSError, EOFError, lzma.LZMAError) as exc:
            raise SourceError(f"{self.name}: {self.compression or 'file'} stream is damaged: {exc}") from None
        finally:
            fh.close()


def _strip(raw: bytes) -> bytes:
    if raw.endswith(b"\n"):
        raw = raw[:-1]
    if raw.endswith(b"\r"):
        raw = raw[:-1]
    return raw


def unique_inputs(names) -> list[LogInput]:
    """Inputs in the given order, each file once (same device and inode, whatever the path) and
    standard input at most once. A missing path or a directory is a SourceError naming it."""
    seen: set = set()
    out = []
    for name in names:
        name = str(name)
        if name == STDIN:
            key = STDIN
        else:
            path = Path(name)
            if not path.is_file():
                raise SourceError(f"log file {path} does not exist or is not a file")
            st = os.stat(path)
            key = (st.st_dev, st.st_ino)
        if key in seen:
            continue
        seen.add(key)
        out.append(LogInput(name))
    return out
