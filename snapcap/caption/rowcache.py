"""Per-row arrays computed once, kept on disk and memory-mapped: RAM does not grow with the corpus.

A cache folder holds one ``.npy`` file per array (first axis: the rows, e.g. training videos) and
``meta.json``, what the arrays were computed for (the rows' keys, the model's stamp). It is
written as ``<folder>.partial/`` chunk by chunk: after each chunk the arrays are flushed and
``done.json`` records how many rows are written, so a killed run resumes there (when the partial
folder's ``meta.json`` is the same). The whole folder is renamed into place at the end, so a
cache folder is either whole or absent. Under torchrun rank 0 alone writes; the others wait and
map its files.

Used for the students' distillation targets (:func:`snapcap.caption.train.teacher_targets`) and
the zoo captioners' frozen-tower features and compressed videos.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch
from tqdm.auto import tqdm

from snapcap.distributed import DistributedContext
from snapcap.errors import DataFileError
from snapcap.fileio import write_text

__all__ = ["cached_rows", "load_rows", "matches", "rows_of", "write_rows", "finish_rows", "partial_folder"]

Compute = Callable[[range], Mapping[str, Any]]
"""``compute(rows)``: the arrays of ``rows`` (a range), each with ``len(rows)`` on its first axis."""


def partial_folder(folder: Path) -> Path:
    """Where ``folder`` is written before it is whole."""
    return folder.with_name(folder.name + ".partial")


def matches(folder: Path, meta: Mapping[str, Any]) -> bool:
    """Whether ``folder`` holds arrays computed for ``meta`` (its ``meta.json`` is the same)."""
    try:
        stored = json.loads((Path(folder) / "meta.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return stored == json.loads(json.dumps(meta))  # compared as JSON sees them (tuples are lists)


def load_rows(folder: Path) -> dict[str, np.memmap]:
    """Every array of a cache folder, memory-mapped read-only."""
    folder = Path(folder)
    return {path.stem: np.load(path, mmap_mode="r") for path in sorted(folder.glob("*.npy"))}


def _done(work: Path, count: int) -> int:
    """Rows already written into a work folder (0 when it holds nothing usable)."""
    try:
        done = json.loads((work / "done.json").read_text(encoding="utf-8"))
        names = list(done["names"])
        if int(done["count"]) != count or not names:
            return 0
        for name in names:
            if np.load(work / f"{name}.npy", mmap_mode="r").shape[0] != count:
                return 0
        return max(0, min(count, int(done["done"])))
    except (OSError, ValueError, KeyError, TypeError):
        return 0


def _host(value: Any) -> np.ndarray:
    array = value.detach().cpu() if isinstance(value, torch.Tensor) else value
    array = array.float().numpy() if isinstance(array, torch.Tensor) and array.is_floating_point() else np.asarray(array)
    return array.astype(np.float32) if array.dtype.kind == "f" else array


def write_rows(work: Path, count: int, compute: Compute, chunk: int, progress: bool = False, desc: str = "cache") -> None:
    """Compute the arrays of ``count`` rows into ``work``, ``chunk`` rows at a time, resuming
    after the rows its ``done.json`` records."""
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    first = _done(work, count)
    arrays: dict[str, Any] = {}
    if first:
        names = json.loads((work / "done.json").read_text(encoding="utf-8"))["names"]
        arrays = {name: np.load(work / f"{name}.npy", mmap_mode="r+") for name in names}
    for start in tqdm(range(first, count, chunk), desc=desc, unit="chunk", disable=not progress, leave=False):
        rows = range(start, min(count, start + chunk))
        values = {name: _host(value) for name, value in compute(rows).items()}
        for name, value in values.items():
            if value.shape[0] != len(rows):
                raise ValueError(f"{desc}: {name} has {value.shape[0]} rows for a chunk of {len(rows)}")
            if name not in arrays:
                arrays[name] = np.lib.format.open_memmap(
                    work / f"{name}.npy", mode="w+", dtype=value.dtype, shape=(count, *value.shape[1:])
                )
            arrays[name][rows.start : rows.stop] = value
        for array in arrays.values():  # what is flushed is done: a killed run resumes after it
            array.flush()
        write_text(work / "done.json", json.dumps({"count": count, "done": rows.stop, "names": sorted(arrays)}))


def finish_rows(work: Path, folder: Path, meta: Mapping[str, Any]) -> None:
    """Publish a whole work folder as ``folder`` (replacing what was there), with ``meta``."""
    work, folder = Path(work), Path(folder)
    (work / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
    (work / "done.json").unlink(missing_ok=True)  # a finished folder is whole: no progress record
    if folder.exists():
        shutil.rmtree(folder)
    os.replace(work, folder)


def _write(folder: Path, meta: Mapping[str, Any], count: int, compute: Compute, chunk: int, progress: bool, desc: str) -> bool:
    """Rank 0's part of :func:`cached_rows`: False when the folder cannot be written."""
    work = partial_folder(folder)
    try:
        if work.exists() and not matches(work, meta):
            shutil.rmtree(work)  # another computation's leftovers
        work.mkdir(parents=True, exist_ok=True)
        write_text(work / "meta.json", json.dumps(meta))
    except (OSError, DataFileError):  # a read-only folder: computed, not cached
        return False
    write_rows(work, count, compute, chunk, progress, desc)
    finish_rows(work, folder, meta)
    return True


def cached_rows(
    folder: Path,
    meta: Mapping[str, Any],
    count: int,
    compute: Compute,
    context: DistributedContext | None = None,
    chunk: int = 32,
    progress: bool = False,
    desc: str = "cache",
) -> dict[str, Any]:
    """The arrays of ``count`` rows from ``folder`` when they were computed for ``meta``; else
    computed (by rank 0 under torchrun, resumably) and stored there first.

    Returns memory-mapped arrays; in a folder that cannot be written, every rank computes them
    into memory instead (torch tensors).
    """
    folder = Path(folder)
    context = context or DistributedContext()
    if matches(folder, meta):
        return load_rows(folder)
    written = _write(folder, meta, count, compute, chunk, progress, desc) if context.main else None
    if context.broadcast(written):  # every rank waits for rank 0 here
        if not matches(folder, meta):
            raise DataFileError(
                f"{folder}: rank 0 wrote this cache but process {context.rank} does not see it; "
                "on several machines the cache folder must be on storage they share"
            )
        return load_rows(folder)
    parts: dict[str, list[torch.Tensor]] = {}
    for start in range(0, count, chunk):
        for name, value in compute(range(start, min(count, start + chunk))).items():
            parts.setdefault(name, []).append(torch.as_tensor(_host(value)))
    return {name: torch.cat(values) for name, values in parts.items()}


def rows_of(array: Any, rows: Any) -> torch.Tensor:
    """Rows of an array (a tensor, or a memory-mapped array: only those rows are read, in order)."""
    index = np.asarray(rows, dtype=np.int64).reshape(-1)
    if isinstance(array, torch.Tensor):
        return array[torch.as_tensor(index)]
    order = np.argsort(index, kind="stable")
    picked = np.asarray(array[index[order]])  # ascending: one sequential read of the file
    out = np.empty_like(picked)
    out[order] = picked
    return torch.from_numpy(out)
