"""Atomic writes: a crash or an error leaves the previous file (or nothing), never half a file.

Everything is written to a temporary file in the destination's own folder (so the final rename stays on one
filesystem, where ``os.replace`` is atomic), flushed to disk, then renamed onto the destination.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from stsbayes.errors import InputError


@contextmanager
def atomic_path(path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it is renamed onto ``path``, on error removed.

    The temporary file does not exist yet, so writers that need a file name (netCDF, figures) create it
    themselves with ordinary permissions.
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise InputError(f"folder {path.parent} does not exist: create it first or choose another output path")
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        yield tmp
        with open(tmp, "rb+") as handle:  # data on disk before the rename makes it visible
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_bytes(path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "xb") as handle:
            handle.write(data)


def atomic_write_text(path, text: str, encoding: str = "utf-8") -> None:
    """Write ``text`` to ``path`` atomically (no newline translation: what you pass is what is written)."""
    atomic_write_bytes(path, text.encode(encoding))
