"""Per-row arrays cached on disk: whole or absent, resumable after a kill, one writer."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from snapcap.caption.rowcache import cached_rows, matches, partial_folder, rows_of
from snapcap.distributed import DistributedContext
from snapcap.errors import DataFileError


def squares(calls: list[int]):
    def compute(rows: range) -> dict[str, torch.Tensor]:
        calls.extend(rows)
        values = torch.arange(rows.start, rows.stop, dtype=torch.float64)
        return {"value": values[:, None] * torch.ones(3), "square": (values * values).to(torch.int64)}

    return compute


def test_computed_once_then_mapped_from_disk(tmp_path):
    calls: list[int] = []
    arrays = cached_rows(tmp_path / "cache", {"keys": [1, 2]}, 7, squares(calls), chunk=3)
    assert calls == list(range(7)) and isinstance(arrays["value"], np.memmap)
    assert arrays["value"].dtype == np.float32 and arrays["square"].dtype == np.int64  # floats stored as float32
    np.testing.assert_array_equal(arrays["square"], np.arange(7) ** 2)
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["meta.json", "square.npy", "value.npy"]
    assert not partial_folder(tmp_path / "cache").exists()
    calls.clear()
    again = cached_rows(tmp_path / "cache", {"keys": [1, 2]}, 7, squares(calls), chunk=3)
    assert calls == [] and np.array_equal(again["square"], arrays["square"])
    other = cached_rows(tmp_path / "cache", {"keys": [1, 3]}, 7, squares(calls), chunk=3)  # other rows: recomputed
    assert calls == list(range(7)) and matches(tmp_path / "cache", {"keys": [1, 3]})
    assert np.array_equal(other["square"], np.arange(7) ** 2)


def test_a_killed_run_resumes_after_the_last_flushed_chunk(tmp_path):
    calls: list[int] = []
    inner = squares(calls)

    def dies(rows: range):
        if rows.start >= 4:
            raise KeyboardInterrupt
        return inner(rows)

    with pytest.raises(KeyboardInterrupt):
        cached_rows(tmp_path / "cache", {"k": 1}, 9, dies, chunk=2)
    work = partial_folder(tmp_path / "cache")
    assert json.loads((work / "done.json").read_text())["done"] == 4 and not (tmp_path / "cache").exists()
    calls.clear()
    arrays = cached_rows(tmp_path / "cache", {"k": 1}, 9, squares(calls), chunk=2)
    assert calls == [4, 5, 6, 7, 8]  # nothing computed twice
    np.testing.assert_array_equal(arrays["square"], np.arange(9) ** 2)
    np.testing.assert_array_equal(arrays["value"], np.repeat(np.arange(9, dtype=np.float32)[:, None], 3, axis=1))
    # a partial folder left by another computation is not resumed
    with pytest.raises(KeyboardInterrupt):
        cached_rows(tmp_path / "other", {"k": 2}, 9, dies, chunk=2)
    calls.clear()
    cached_rows(tmp_path / "other", {"k": 3}, 9, squares(calls), chunk=2)
    assert calls == list(range(9))


def test_a_folder_that_cannot_be_written_computes_into_memory(tmp_path, monkeypatch):
    def refuse(path, text):
        raise DataFileError(f"{path}: read-only file system")

    monkeypatch.setattr("snapcap.caption.rowcache.write_text", refuse)
    calls: list[int] = []
    arrays = cached_rows(tmp_path / "cache", {"k": 1}, 5, squares(calls), chunk=2)
    assert isinstance(arrays["square"], torch.Tensor) and arrays["square"].tolist() == [0, 1, 4, 9, 16]
    assert calls == list(range(5)) and not (tmp_path / "cache").exists()


def test_only_rank_zero_writes(tmp_path, monkeypatch):
    calls: list[int] = []
    other = DistributedContext(rank=1, world=2, active=True)
    monkeypatch.setattr(DistributedContext, "broadcast", lambda self, value: True)  # rank 0 wrote it
    cached_rows(tmp_path / "first", {"k": 1}, 4, squares(calls), DistributedContext(), chunk=2)
    calls.clear()
    arrays = cached_rows(tmp_path / "first", {"k": 1}, 4, squares(calls), other, chunk=2)
    assert calls == [] and arrays["square"].tolist() == [0, 1, 4, 9]
    with pytest.raises(DataFileError, match="storage they share"):  # rank 1 never computes: it reads rank 0's files
        cached_rows(tmp_path / "absent", {"k": 1}, 4, squares(calls), other, chunk=2)
    assert calls == []


def test_rows_of_a_mapped_array_keep_the_order_asked(tmp_path):
    np.save(tmp_path / "a.npy", np.arange(20).reshape(10, 2))
    mapped = np.load(tmp_path / "a.npy", mmap_mode="r")
    got = rows_of(mapped, [7, 2, 7, 0])
    assert got.tolist() == [[14, 15], [4, 5], [14, 15], [0, 1]]
    assert rows_of(torch.arange(20).reshape(10, 2), [7, 2]).tolist() == [[14, 15], [4, 5]]
