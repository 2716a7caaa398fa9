"""Training samples read a step ahead: :class:`BatchFeed`.

snapcap's trainers ask for samples by index (``samples[i]``) inside their loss functions. A
:class:`BatchFeed` stands in for the sample sequence: :meth:`BatchFeed.steps` walks the planned
index batches of an epoch and, before each step, holds exactly that step's rows in memory, read
by DataLoader worker processes that load the next batches meanwhile (bounded prefetch). Frames of
dataset files come as the file's uint8 (a quarter of float32's bytes); the trainer stacks a
step's frames into page-locked memory on CUDA, moves the bytes and widens them on the device
(:func:`snapcap.caption.train.stack_rows`). Anything else is read directly from the underlying
sequence. So a lazily read
dataset (:class:`~snapcap.datasets.torch_data.MeasurementDataset` over HDF5) trains with memory
that does not grow with the corpus, each sample of a step is read once however many times the
loss function asks for it, and reading overlaps computing.
"""

from __future__ import annotations

import copy
from typing import Any, Iterator, Sequence

import numpy as np

from snapcap.errors import ConfigError

__all__ = ["BatchFeed", "feed_of"]


class _Rows:
    """The DataLoader's dataset: sample ``i`` of the wrapped sequence.

    Frames of a :class:`~snapcap.datasets.torch_data.MeasurementDataset` stay the file's uint8
    (they cross from the worker as a quarter of float32's bytes); whoever stacks them widens them
    exactly as the dataset would (``x.float().div_(255)``), on the device.
    """

    def __init__(self, samples: Any):
        from snapcap.datasets.torch_data import MeasurementDataset

        if isinstance(samples, MeasurementDataset):
            samples = copy.copy(samples)
            samples.raw_frames = True
        self.samples = samples

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.samples[index]


def _keep(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return rows


class BatchFeed:
    """A sample sequence whose current step's rows are loaded ahead by DataLoader workers.

    The current step's rows hold a dataset file's frames as uint8 (see the module docstring).

    Args:
        samples: any sequence of sample dicts (a list, a lazily read dataset...).
        workers: DataLoader worker processes (0: read in this process, one step at a time).
            Workers get a pickled copy of ``samples``: use them with lazily read datasets, not
            with lists held in memory.
        prefetch: batches each worker loads ahead.
    """

    def __init__(self, samples: Any, workers: int = 0, prefetch: int = 2):
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
            raise ConfigError(f"workers must be an integer >= 0, got {workers!r}")
        if isinstance(prefetch, bool) or not isinstance(prefetch, int) or prefetch < 1:
            raise ConfigError(f"prefetch must be an integer >= 1, got {prefetch!r}")
        self.samples = samples
        self.workers = workers
        self.prefetch = prefetch
        self._rows: dict[int, dict[str, Any]] = {}

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict[str, Any]:
        row = self._rows.get(int(index))
        return row if row is not None else self.samples[int(index)]

    def steps(self, batches: Sequence[Any]) -> Iterator[np.ndarray]:
        """Yield each index batch once its rows are in memory (the previous step's are dropped)."""
        plan = [np.asarray(batch, dtype=np.int64) for batch in batches]
        try:
            if self.workers == 0:
                rows = _Rows(self.samples)
                for batch in plan:
                    self._rows = {int(i): rows[int(i)] for i in batch}
                    yield batch
                return
            import torch
            from torch.utils.data import DataLoader

            loader = DataLoader(
                _Rows(self.samples),
                batch_sampler=[[int(i) for i in batch] for batch in plan],
                num_workers=self.workers,
                prefetch_factor=self.prefetch,
                collate_fn=_keep,
                generator=torch.Generator().manual_seed(0),  # the training's own random stream is left untouched
            )
            for batch, rows in zip(plan, loader):
                self._rows = dict(zip((int(i) for i in batch), rows))
                yield batch
        finally:
            self._rows = {}


def feed_of(samples: Any, workers: int = 0) -> BatchFeed:
    """``samples`` as a :class:`BatchFeed` (itself when it already is one)."""
    return samples if isinstance(samples, BatchFeed) else BatchFeed(samples, workers=workers)
