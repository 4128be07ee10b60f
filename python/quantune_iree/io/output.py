"""Atomic output files: written to a temporary file beside the target, then renamed over it.

A reader (a mobile app loading the vmfb) therefore sees the old file or the whole new one, never a
partial write; on any failure the temporary file is removed.
"""

from __future__ import annotations

import hashlib
import os
import tempfile

from ..errors import QuantuneError


def check_writable(path: str) -> None:
    """Fails early, before any work, when `path` cannot be written."""
    if os.path.isdir(path):
        raise QuantuneError(f"{path}: is a directory, expected an output file path")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise QuantuneError(f"{path}: output folder {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise QuantuneError(f"{path}: output folder {parent} is not writable")
    if os.path.exists(path) and not os.access(path, os.W_OK):
        raise QuantuneError(f"{path}: exists and is not writable")


def write_atomic(path: str, data: bytes | str) -> None:
    write_all_atomic({path: data})


def write_all_atomic(files: dict[str, bytes | str]) -> None:
    """Writes several files as one: all go to temporary files first and are renamed into place
    only once every one is written, so a failure leaves none of them behind."""
    for path in files:
        check_writable(path)
    temps: list[tuple[str, str]] = []
    try:
        for path, data in files.items():
            payload = data.encode() if isinstance(data, str) else data
            parent = os.path.dirname(os.path.abspath(path))
            fd, tmp = tempfile.mkstemp(
                prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=parent
            )
            temps.append((tmp, path))
            with os.fdopen(fd, "wb") as f:
                f.write(payload)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o644)
        for tmp, path in temps:
            os.replace(tmp, path)
        temps = []
    except OSError as exc:
        raise QuantuneError(f"cannot write {exc.filename or 'output'} ({exc.strerror})") from None
    finally:
        for tmp, _ in temps:
            if os.path.exists(tmp):
                os.unlink(tmp)


def file_sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
