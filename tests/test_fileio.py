"""snapcap.fileio: a file appears whole under its final name, or not at all."""

from __future__ import annotations

import errno
import json
import os
import re
import stat

import numpy as np
import pytest

from snapcap.errors import DataFileError
from snapcap.fileio import TEMP_PREFIX, atomic_path, atomic_write, output_error, write_bytes, write_json, write_text


def write_plain(path: str, text: str) -> None:
    with open(path, "w") as handle:
        handle.write(text)


def _leftovers(folder) -> list[str]:
    return sorted(entry.name for entry in folder.iterdir() if entry.name.startswith(TEMP_PREFIX))


def test_success_publishes_the_file(tmp_path):
    target = tmp_path / "deep" / "er" / "frames.npy"
    with atomic_path(target) as tmp:
        assert os.path.dirname(tmp) == str(target.parent) and tmp.endswith(".npy") and not target.exists()
        np.save(tmp, np.arange(5))
    np.testing.assert_array_equal(np.load(target), np.arange(5))
    assert _leftovers(target.parent) == []
    assert write_text(tmp_path / "a.txt", "héllo\n").read_text(encoding="utf-8") == "héllo\n"
    assert write_bytes(tmp_path / "b.bin", b"\x00\x01").read_bytes() == b"\x00\x01"
    assert json.loads(write_json(tmp_path / "c.json", {"x": [1, 2], "p": tmp_path}).read_text()) == {
        "x": [1, 2],
        "p": str(tmp_path),
    }
    assert atomic_write(tmp_path / "d.txt", lambda tmp: write_plain(tmp, "d")).read_text() == "d"
    assert _leftovers(tmp_path) == []


def test_replaces_an_existing_file_and_keeps_its_mode(tmp_path):
    target = tmp_path / "report.md"
    target.write_text("old")
    target.chmod(0o640)
    write_text(target, "new")
    assert target.read_text() == "new" and stat.S_IMODE(target.stat().st_mode) == 0o640
    umask = os.umask(0o022)
    os.umask(umask)
    fresh = write_text(tmp_path / "fresh.md", "x")
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o666 & ~umask  # what open() would give, not mkstemp's 0o600


def test_an_exception_inside_leaves_neither_target_nor_temporary(tmp_path):
    target = tmp_path / "out.h5"
    with pytest.raises(RuntimeError, match="writer failed"):
        with atomic_path(target) as tmp:
            with open(tmp, "wb") as handle:
                handle.write(b"half a file")
            raise RuntimeError("writer failed")
    assert not target.exists() and _leftovers(tmp_path) == []

    def broken(tmp: str) -> None:
        raise ValueError("no")

    with pytest.raises(ValueError):
        atomic_write(target, broken)
    assert list(tmp_path.iterdir()) == []


def test_an_exception_keeps_the_previous_file(tmp_path):
    target = tmp_path / "results.json"
    write_json(target, {"run": 1})
    with pytest.raises(KeyError):
        with atomic_path(target) as tmp:
            write_plain(tmp, "{broken")
            raise KeyError("interrupted")
    assert json.loads(target.read_text()) == {"run": 1} and _leftovers(tmp_path) == []


def test_target_is_an_existing_folder(tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    with pytest.raises(DataFileError, match=rf"{re.escape(str(folder))}: .*folder"):
        write_text(folder, "x")
    assert folder.is_dir() and list(folder.iterdir()) == [] and _leftovers(tmp_path) == []


def test_parent_is_a_file(tmp_path):
    blocker = tmp_path / "file.txt"
    blocker.write_text("I am a file")
    for target in (blocker / "out.json", blocker / "sub" / "out.json"):
        with pytest.raises(DataFileError, match=rf"{re.escape(str(target))}: cannot write"):
            write_json(target, {})
    assert blocker.read_text() == "I am a file" and _leftovers(tmp_path) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders: permissions are not enforced")
def test_read_only_folder(tmp_path):
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(DataFileError, match=rf"{re.escape(str(folder / 'x.txt'))}: cannot write \(permission denied\)"):
            write_text(folder / "x.txt", "x")
        with pytest.raises(DataFileError, match="permission denied"):
            with atomic_path(folder / "y.npy") as tmp:
                np.save(tmp, np.zeros(3))
    finally:
        folder.chmod(0o700)
    assert list(folder.iterdir()) == []


def test_output_error_names_the_path_and_the_cause(tmp_path):
    error = output_error(tmp_path / "a.h5", OSError(errno.ENOSPC, "No space left on device"))
    assert isinstance(error, DataFileError) and str(error) == f"{tmp_path / 'a.h5'}: cannot write (no space left on device)"
    assert "Weird" in str(output_error("b", OSError(12345, "Weird")))
