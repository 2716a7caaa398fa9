"""Sample dicts for training and captioning, from dataset files, a corpus, a video file or a capture.

Every function returns the sample dict of :mod:`snapcap.datasets.torch_data` (``meas (T, H, W)``,
``masks (B, H, W)``, ``frames (T, B, H, W[, 3])`` in [0, 1], ``video_id``, ``captions``,
``bayer``...), so captioners and training code do not care where a sample came from. The
camera (masks, Bayer pattern, noise) is always passed in explicitly: nothing here guesses it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from snapcap.cacti.simulate import simulate
from snapcap.datasets.h5 import DatasetConfig, dataset_info, dataset_read_errors, open_dataset, read_captions
from snapcap.datasets.torch_data import MeasurementDataset, SimulatedDataset
from snapcap.datasets.video import read_clip
from snapcap.errors import ConfigError, DataFileError, ShapeError

__all__ = [
    "CachedSamples",
    "Limited",
    "TrainingData",
    "training_data",
    "dataset_config_of",
    "sample_identities",
    "captions_of",
    "data_shape",
    "video_samples",
    "capture_samples",
]


class CachedSamples:
    """Samples simulated on the fly, each made once and kept (frames as uint8: lossless)."""

    def __init__(self, dataset: Any):
        self.dataset = dataset
        self._cache: dict[int, dict[str, Any]] = {}

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict[str, Any]:
        count = len(self)
        if index < 0:
            index += count
        if not 0 <= index < count:
            raise IndexError(f"index {index} out of range for {count} samples")
        if index not in self._cache:
            sample = dict(self.dataset[index])
            if isinstance(sample.get("frames"), torch.Tensor) and sample["frames"].is_floating_point():
                sample["frames"] = sample["frames"].mul(255.0).round_().to(torch.uint8)
            self._cache[index] = sample
        sample = dict(self._cache[index])
        if isinstance(sample.get("frames"), torch.Tensor) and sample["frames"].dtype == torch.uint8:
            sample["frames"] = sample["frames"].float().div_(255.0)
        return sample


class Limited:
    """The first ``limit`` samples of a sequence of samples."""

    def __init__(self, samples: Any, limit: int):
        if limit < 1:
            raise ConfigError(f"--limit must be >= 1, got {limit}")
        self.samples = samples
        self.count = min(limit, len(samples))

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            return [self.samples[i] for i in range(*index.indices(self.count))]
        if index < 0:
            index += self.count
        if not 0 <= index < self.count:
            raise IndexError(index)
        return self.samples[index]

    def __iter__(self):
        return (self[i] for i in range(self.count))


def sample_identities(samples: Any) -> list[list[Any]] | None:
    """What identifies each sample's frames without reading them, for samples read from dataset
    files (through :class:`Limited` or a :class:`~snapcap.datasets.feed.BatchFeed` too); None
    for others (their frames must be read to be told apart)."""
    from snapcap.datasets.feed import BatchFeed

    count = None
    while isinstance(samples, (BatchFeed, Limited)):
        if isinstance(samples, Limited):
            count = samples.count if count is None else min(count, samples.count)
        samples = samples.samples
    if not isinstance(samples, MeasurementDataset):
        return None
    identities = samples.sample_identities()
    return identities if identities is None or count is None else identities[:count]


def dataset_config_of(path: str | Path) -> DatasetConfig | None:
    """The :class:`DatasetConfig` a dataset file was made with (None for files without one)."""
    with open_dataset(path) as handle, dataset_read_errors(path, "read its attribute config"):
        text = handle.attrs.get("config")
        if text is None:
            return None
        return DatasetConfig.from_dict(json.loads(text.decode() if isinstance(text, bytes) else text))


def captions_of(dataset: Any) -> list[list[str]]:
    """Every sample's captions, without decoding frames."""
    from snapcap.datasets.feed import BatchFeed

    if isinstance(dataset, BatchFeed):
        return captions_of(dataset.samples)
    while isinstance(dataset, (CachedSamples, Limited)):
        if isinstance(dataset, Limited):
            return captions_of(dataset.samples)[: dataset.count]
        dataset = dataset.dataset
    if isinstance(dataset, SimulatedDataset):
        return [list(dataset.items[p].captions) for p in dataset.positions]
    if isinstance(dataset, MeasurementDataset):
        out: list[list[str]] = []
        handles: dict[int, Any] = {}
        try:
            for file_index, row in dataset.rows:
                if file_index not in handles:
                    handles[file_index] = open_dataset(dataset.paths[file_index])
                out.append(read_captions(handles[file_index], row, dataset.paths[file_index]))
        finally:
            for handle in handles.values():
                handle.close()
        return out
    return [list(dataset[i]["captions"]) for i in range(len(dataset))]


def data_shape(samples: Any) -> tuple[int, int, tuple[int, int]]:
    """``(B, T, (H, W))`` of the first sample."""
    first = samples[0]
    meas, masks = first["meas"], first["masks"]
    return int(masks.shape[-3]), int(meas.shape[-3]), (int(meas.shape[-2]), int(meas.shape[-1]))


@dataclass
class TrainingData:
    """Samples to train on, how they were made (for the checkpoint's record) and their config."""

    samples: Any
    description: dict[str, Any]
    config: DatasetConfig | None


def training_data(
    files: Sequence[str | Path] | None,
    split: str | None,
    corpus: Any = None,
    config: DatasetConfig | None = None,
    limit: int | None = None,
) -> TrainingData:
    """Training samples from dataset ``files`` (with frames), or simulated from ``corpus`` with ``config``.

    Args:
        files: snapcap dataset files; when given, ``corpus`` and ``config`` are not used.
        split: the split to train on (None: all).
        corpus / config: the corpus and camera to simulate on the fly (each sample made once).
        limit: at most this many videos.
    """
    split_name = split or "all"
    if files:
        dataset = MeasurementDataset(list(files), split=split)
        if not all(entry["has_frames"] for entry in dataset.info):
            raise DataFileError(
                f"{files[0]}: training needs the video frames and this dataset holds none (made with --no-frames)"
            )
        if len(dataset) == 0:
            counts = dataset_info(files[0])["split_counts"]
            raise ConfigError(f"{files[0]}: no {split_name!r} videos (splits: {counts}); pass --split all or another split")
        info = dataset.info[0]
        data_config = dataset_config_of(files[0])
        description = {
            "source": "files",
            "files": [str(p) for p in files],
            "split": split_name,
            "B": info["B"],
            "T": info["T"],
            "bayer": info["bayer"],
        }
        samples: Any = dataset
    else:
        if corpus is None or config is None:
            raise ConfigError("training data: give dataset files, or a corpus and a DatasetConfig to simulate")
        dataset = SimulatedDataset(corpus, config, split=split)
        if len(dataset) == 0:
            raise ConfigError(f"corpus {corpus.name}: no {split_name!r} videos; pass --split all or a larger --num-videos")
        description = {"source": "simulated", "corpus": corpus.describe(), "split": split_name}
        samples = CachedSamples(dataset)
        data_config = config
    if limit is not None:
        samples = Limited(samples, limit)
    return TrainingData(samples, description, data_config)


def video_samples(
    path: str | Path,
    T: int,
    B: int,
    size: tuple[int, int],
    masks: Any = None,
    bayer: str | None = "RGGB",
    noise: str | None = None,
    gray: bool = False,
) -> list[dict[str, Any]]:
    """One sample of a video file: T·B frames decoded at ``size`` and, with ``masks``, simulated.

    Args:
        path: the video file.
        T / B / size: snapshots, frames per snapshot and frame size (H, W).
        masks: ``(B, H, W)`` masks to simulate with; None returns the frames only.
        bayer: Bayer pattern of the simulated snapshots (None: gray).
        noise: noise spec of the simulation (None or ``"none"``: noiseless).
        gray: decode the video as gray.
    """
    path = Path(path)
    clip = read_clip(path, T, B, tuple(size), gray=gray)
    frames = torch.from_numpy(clip).float().div_(255.0)
    sample: dict[str, Any] = {
        "frames": frames,
        "video_id": path.stem,
        "captions": [],
        "bayer": bayer,
        "index": 0,
        "split": "none",
    }
    if masks is None:
        return [sample]
    masks = np.asarray(masks, dtype=np.float32)
    if masks.shape[-3] != B:
        raise ShapeError(f"the masks hold {masks.shape[-3]} frames per snapshot, expected B={B}")
    if tuple(masks.shape[-2:]) != tuple(size):
        raise ShapeError(f"the masks are {masks.shape[-2]}x{masks.shape[-1]} but the frames are {size[0]}x{size[1]}")
    video = clip.reshape((1, T * B) + clip.shape[2:])
    result = simulate(video, masks=masks, bayer=bayer, noise=None if noise in (None, "none") else noise, seed=0)
    sample["meas"] = torch.as_tensor(np.asarray(result.meas[0], dtype=np.float32))
    sample["masks"] = torch.from_numpy(masks)
    return [sample]


def capture_samples(meas: Any, masks: Any, T: int, bayer: str | None, name: str) -> tuple[list[dict[str, Any]], list[str]]:
    """Group a capture's snapshots ``(N, H, W)`` into videos of ``T`` snapshots.

    A capture with fewer than T snapshots is repeated cyclically; trailing snapshots that do not
    fill a video are left out. Per-snapshot masks ``(N, B, H, W)`` must agree within a video.

    Returns:
        (samples, notes): the sample dicts (``video_id`` ``NAME:K``, no captions) and what was done.
    """
    meas = np.asarray(meas, dtype=np.float32)
    masks = np.asarray(masks, dtype=np.float32)
    notes: list[str] = []
    count = meas.shape[0]
    if count < T:
        order = np.arange(T) % count
        notes.append(f"the capture has {count} snapshot(s) and the captioner takes T={T} per video: repeated cyclically")
    else:
        order = np.arange((count // T) * T)
        if count % T:
            notes.append(f"{count % T} trailing snapshot(s) do not fill a video of T={T} and are left out")
    samples = []
    for video, start in enumerate(range(0, len(order), T)):
        rows = order[start : start + T]
        if masks.ndim == 4:
            chosen = masks[rows]
            if not np.all(chosen == chosen[:1]):
                raise ShapeError(
                    f"{name}: snapshots {rows.tolist()} have different masks; a video of T={T} snapshots must share its masks"
                )
            video_masks = chosen[0]
        else:
            video_masks = masks
        samples.append(
            {
                "meas": torch.from_numpy(meas[rows].copy()),
                "masks": torch.from_numpy(np.ascontiguousarray(video_masks)),
                "video_id": f"{name}:{video}",
                "captions": [],
                "bayer": bayer,
            }
        )
    return samples, notes
