"""Files written whole or not at all (atomic writes, with the permissions of an ordinary ``open()``), and their
checksums. Every output of mfql goes through ``atomic_write``."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from mfql.errors import RunError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


UMASK = _umask()  # read once: os.umask can only be read by setting it


def atomic_write(path: str | Path, write, size: int | None = None) -> None:
    """Call ``write(tmp_path)`` then rename over ``path``: readers never see a half-written file.

    The file gets the permissions of an ordinary ``open()`` (0666 less the umask), so group members on a
    cluster can read checkpoints and data; ``mkstemp`` alone would leave them 0600.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~UMASK)
        os.replace(tmp, path)
    except BaseException as exc:
        written = os.path.getsize(tmp) if os.path.exists(tmp) else 0
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise disk_full(path, written, size) from None
        raise


def disk_full(path: Path, written: int, size: int | None):
    """The one-line error of a write that filled the disk (``size``: the file's bytes, if known); the file it
    would have replaced is untouched."""
    free = shutil.disk_usage(path.parent).free
    needs = f"needs {size} bytes" if size is not None else f"needs more than the {written} bytes written"
    kept = f"the previous {path.name} is kept; " if path.exists() else ""
    return RunError(f"the disk of {path.parent} is full: {path.name} {needs} ({free} bytes free); {kept}free some "
                    "space and run the same command again (a run resumes from its last resume state)")


def write_text(path: str | Path, text: str) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text(text, newline=""))  # the text's own line endings


def write_json(path: str | Path, obj) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
