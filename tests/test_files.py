"""Atomic writes (every output of mfql) and checksums."""

from __future__ import annotations

import errno
import hashlib
import os

import pytest

from mfql.errors import RunError
from mfql.files import UMASK, atomic_write, file_sha256, write_json, write_text


def test_a_failed_write_keeps_the_previous_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "out.txt"
    write_text(path, "old\n")

    def fail(tmp):
        with open(tmp, "w") as handle:
            handle.write("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, fail)
    assert path.read_text() == "old\n" and [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_a_full_disk_is_one_line_naming_the_file_and_what_is_kept(tmp_path):
    path = tmp_path / "state.pt"
    write_text(path, "previous")

    def full(tmp):
        with open(tmp, "wb") as handle:
            handle.write(b"x" * 10)
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(RunError, match=r"disk of .* is full: state.pt needs 100 bytes .*previous state.pt is kept"):
        atomic_write(path, full, size=100)
    assert path.read_text() == "previous" and len(list(tmp_path.iterdir())) == 1


def test_files_get_ordinary_permissions_and_their_own_line_endings(tmp_path):
    write_text(tmp_path / "a.csv", "x\r\ny\n")
    assert (tmp_path / "a.csv").read_bytes() == b"x\r\ny\n"
    assert os.stat(tmp_path / "a.csv").st_mode & 0o777 == 0o666 & ~UMASK
    write_json(tmp_path / "sub" / "m.json", {"b": 1, "a": 2})
    assert (tmp_path / "sub" / "m.json").read_text() == '{\n  "a": 2,\n  "b": 1\n}\n'
    assert file_sha256(tmp_path / "a.csv") == hashlib.sha256(b"x\r\ny\n").hexdigest()
