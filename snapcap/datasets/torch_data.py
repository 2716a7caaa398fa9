"""PyTorch datasets: measurements from dataset files, or simulated on the fly from a corpus.

Both return the same sample dict, so training code does not care where samples come from::

    {"meas": (T, H, W) float32, "masks": (B, H, W) float32, "frames": (T, B, H, W[, 3]) float32
     in [0, 1] (when available), "index": int, "video_id": str, "split": str,
     "captions": list[str], "bayer": pattern or None,
     "tokens": (tokenizer output, when a tokenizer is given)}

Files are opened lazily in each DataLoader worker process (h5py handles must not cross a fork).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from snapcap.datasets.h5 import (
    METADATA_HASH_ATTR,
    DatasetConfig,
    dataset_full_scale,
    dataset_read_errors,
    h5py_with_filters,
    open_dataset,
    read_captions,
    sample_masks,
    simulate_sample,
)
from snapcap.errors import DataFileError, InvalidValueError

__all__ = ["MeasurementDataset", "SimulatedDataset", "collate_samples"]


def collate_samples(samples: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Stack tensors/arrays along a new batch axis; keep strings and caption lists as lists."""
    batch: dict[str, Any] = {}
    for key in samples[0]:
        values = [sample[key] for sample in samples]
        if isinstance(values[0], torch.Tensor):
            batch[key] = torch.stack(values)
        elif isinstance(values[0], np.ndarray):
            batch[key] = torch.from_numpy(np.stack(values))
        elif isinstance(values[0], (int, np.integer)):
            batch[key] = torch.as_tensor(values)
        else:
            batch[key] = values
    return batch


def _checked(values: np.ndarray, path: Path, what: str, low: float | None = None, high: float | None = None) -> np.ndarray:
    """Stored floats, refused when NaN, infinite or outside [low, high] (fletcher32 cannot tell a wrong write)."""
    if not np.all(np.isfinite(values)):
        raise DataFileError(f"{path}: the {what} hold NaN or infinite values; the dataset file is damaged")
    if values.size and ((low is not None and values.min() < low) or (high is not None and values.max() > high)):
        raise DataFileError(f"{path}: the {what} have values in [{values.min():g}, {values.max():g}]; expected [{low}, {high}]")
    return values


class MeasurementDataset:
    """Samples of one dataset file or several (e.g. a merged set, or shards).

    Args:
        paths: dataset file(s) written by :func:`snapcap.datasets.h5.make_dataset`.
        split: keep only this split (``train``, ``val``, ``test``); all when None.
        frames: also return the frames (when the files store them).
        tokenizer: optional callable captions -> anything, stored under ``tokens``.
    """

    def __init__(
        self,
        paths: str | Path | Sequence[str | Path],
        split: str | None = None,
        frames: bool = True,
        tokenizer: Callable | None = None,
    ):

        self.paths = [Path(p) for p in ([paths] if isinstance(paths, (str, Path)) else paths)]
        if not self.paths:
            raise InvalidValueError("MeasurementDataset needs at least one file")
        self.want_frames = frames
        self.tokenizer = tokenizer
        self.rows: list[tuple[int, int]] = []
        self.info: list[dict[str, Any]] = []
        for file_index, path in enumerate(self.paths):
            with open_dataset(path) as handle, dataset_read_errors(path, "list its samples"):
                splits = [s.decode() if isinstance(s, bytes) else s for s in handle["split"][()]]
                bayer = handle.attrs.get("bayer", "none")
                bayer = bayer.decode() if isinstance(bayer, bytes) else str(bayer)
                self.info.append(
                    {
                        "B": int(handle.attrs["B"]),
                        "T": int(handle.attrs["T"]),
                        "has_frames": "frames" in handle,
                        "shared_masks": handle["masks"].ndim == 3,
                        "bayer": None if bayer == "none" else bayer,
                    }
                )
                self.rows.extend((file_index, row) for row, name in enumerate(splits) if split is None or name == split)
        shapes = {(info["B"], info["T"]) for info in self.info}
        if len(shapes) > 1:
            raise InvalidValueError(f"files disagree on (B, T): {sorted(shapes)}")
        self._handles: dict[int, Any] = {}
        self._pid: int | None = None
        self._shared_masks: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.rows)

    def _handle(self, file_index: int):

        h5py = h5py_with_filters()

        if self._pid != os.getpid():  # a new worker process: never reuse the parent's handles
            self._handles, self._pid, self._shared_masks = {}, os.getpid(), {}
        if file_index not in self._handles:
            self._handles[file_index] = h5py.File(self.paths[file_index], "r")
        return self._handles[file_index]

    def __getitem__(self, position: int) -> dict[str, Any]:
        if not -len(self) <= position < len(self):
            raise IndexError(f"index {position} out of range for a dataset of {len(self)} samples")
        file_index, row = self.rows[position]
        path = self.paths[file_index]
        with dataset_read_errors(path, f"read sample {row}"):
            handle = self._handle(file_index)
            if self.info[file_index]["shared_masks"]:
                if file_index not in self._shared_masks:
                    self._shared_masks[file_index] = _checked(handle["masks"][()], path, "masks", 0.0, 1.0)
                masks = self._shared_masks[file_index]
            else:
                masks = _checked(handle["masks"][row], path, f"masks of sample {row}", 0.0, 1.0)
            sample: dict[str, Any] = {
                "meas": torch.from_numpy(_checked(handle["meas"][row], path, f"meas of sample {row}")),
                "masks": torch.from_numpy(np.ascontiguousarray(masks)),
                "index": int(handle["index"][row]),
                "video_id": handle["video_id"][row].decode(),
                "split": handle["split"][row].decode(),
                "captions": read_captions(handle, row, path),
                "bayer": self.info[file_index]["bayer"],
            }
            if self.want_frames and self.info[file_index]["has_frames"]:
                frames = torch.from_numpy(handle["frames"][row])
                sample["frames"] = frames if getattr(self, "raw_frames", False) else frames.float().div_(255.0)
        captions = sample["captions"]
        if self.tokenizer is not None:
            sample["tokens"] = self.tokenizer(captions)
        return sample

    def sample_identities(self) -> list[list[Any]] | None:
        """What identifies each sample's frames without reading them: ``[video_id, index, file
        checksum, row]``, the checksum being the file's ``metadata_sha256`` (which changes when the
        file is remade); None when a file has none (an unfinished shard)."""
        identities: list[list[Any]] = []
        files: dict[int, tuple[str, Any, Any]] = {}
        for file_index, row in self.rows:
            if file_index not in files:
                path = self.paths[file_index]
                with open_dataset(path) as handle, dataset_read_errors(path, "read its sample ids"):
                    stamp = handle.attrs.get(METADATA_HASH_ATTR)
                    if stamp is None:
                        return None
                    files[file_index] = (
                        stamp.decode() if isinstance(stamp, bytes) else str(stamp),
                        handle["video_id"][()],
                        handle["index"][()],
                    )
            stamp, video_ids, indices = files[file_index]
            video_id = video_ids[row]
            identities.append(
                [video_id.decode() if isinstance(video_id, bytes) else str(video_id), int(indices[row]), stamp, int(row)]
            )
        return identities

    def close(self) -> None:
        for handle in self._handles.values():
            handle.close()
        self._handles = {}

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_handles"], state["_pid"], state["_shared_masks"] = {}, None, {}
        return state


class SimulatedDataset:
    """Samples simulated on the fly from a corpus: no dataset file needed.

    Each access decodes/renders the clip and simulates it with the same rules (and seeds) as
    :func:`snapcap.datasets.h5.make_dataset`, so sample ``i`` equals row ``i`` of a file made
    from the same corpus and configuration.
    """

    def __init__(
        self, corpus, config=None, items: Sequence | None = None, split: str | None = None, tokenizer: Callable | None = None
    ):

        self.corpus = corpus
        self.config = config or DatasetConfig()
        self.items = list(corpus.items if items is None else items)
        self.positions = [i for i, item in enumerate(self.items) if split is None or item.split == split]
        self.tokenizer = tokenizer
        self.shared_masks = None if self.config.per_sample_masks else sample_masks(self.config, None)
        self.full_scale = dataset_full_scale(self.config, self.shared_masks)

    def __len__(self) -> int:
        return len(self.positions)

    def __getitem__(self, position: int) -> dict[str, Any]:

        index = self.positions[position]
        item = self.items[index]
        config = self.config
        clip = self.corpus.clip(item, config.T, config.B, config.size, gray=config.gray)
        masks = sample_masks(config, index) if config.per_sample_masks else self.shared_masks
        sample: dict[str, Any] = {
            "meas": torch.from_numpy(simulate_sample(clip, config, masks, index, self.full_scale)),
            "masks": torch.from_numpy(np.ascontiguousarray(masks)),
            "frames": torch.from_numpy(clip).float().div_(255.0),
            "index": index,
            "video_id": item.video_id,
            "split": item.split,
            "captions": list(item.captions),
            "bayer": config.bayer,
        }
        if self.tokenizer is not None:
            sample["tokens"] = self.tokenizer(sample["captions"])
        return sample
