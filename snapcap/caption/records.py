"""The training record beside a captioner checkpoint: how its training snapshots were made.

``snapcap train NAME -o OUT`` writes, next to ``OUT/<stem>.pt``:

``<stem>.data.json``
    the data description (dataset files or the simulated corpus, split), ``B``, ``T``, ``size``,
    ``bayer``, the :class:`~snapcap.datasets.h5.DatasetConfig` (``dataset_config``; null for
    files made without one) and whether the masks were shared;
``<stem>.masks.npy``
    the training masks ``(B, H, W)`` float32, when all videos shared them.

Captioning a new video (:func:`camera_for_video`) simulates it as the training data was made:
the masks given, else the stored training masks, else the masks the recorded configuration
regenerates, else :class:`DatasetConfig`'s defaults — and the Bayer pattern and noise of the
record.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from snapcap.cacti.masks import MaskSpec, load_masks, make_masks
from snapcap.datasets.h5 import DatasetConfig
from snapcap.datasets.samples import data_shape
from snapcap.errors import ShapeError
from snapcap.fileio import atomic_path, write_json

__all__ = ["write_training_record", "read_training_record", "VideoCamera", "camera_for_video"]


def write_training_record(
    out: str | Path, stem: str, samples: Any, description: dict[str, Any], config: DatasetConfig | None
) -> Path:
    """Write ``OUT/<stem>.data.json`` (and ``<stem>.masks.npy`` when the masks are shared)."""
    out = Path(out)
    B, T, size = data_shape(samples)
    first = samples[0]
    record = dict(description, B=B, T=T, size=list(size), bayer=first.get("bayer"))
    record["dataset_config"] = None if config is None else config.to_dict()
    shared = config is None or not config.per_sample_masks
    record["shared_masks"] = bool(shared)
    if shared:
        masks = first["masks"]
        array = (masks.numpy() if isinstance(masks, torch.Tensor) else np.asarray(masks)).astype(np.float32)
        with atomic_path(out / f"{stem}.masks.npy") as tmp:
            with open(tmp, "wb") as handle:
                np.save(handle, array)
        record["masks_file"] = f"{stem}.masks.npy"
    return write_json(out / f"{stem}.data.json", record)


def read_training_record(checkpoint: str | Path | None) -> tuple[dict[str, Any] | None, np.ndarray | None]:
    """``(record, masks)`` written beside ``checkpoint`` (each None when absent)."""
    if checkpoint is None:
        return None, None
    path = Path(checkpoint)
    meta_path = path.with_name(f"{path.stem}.data.json")
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else None
    masks_path = path.with_name(f"{path.stem}.masks.npy")
    masks = np.load(masks_path) if masks_path.is_file() else None
    return meta, masks


@dataclass
class VideoCamera:
    """The camera a video is simulated with to caption it: masks, Bayer pattern, noise, and why."""

    masks: np.ndarray | None
    bayer: str | None
    noise: str
    gray: bool
    notes: list[str]


def camera_for_video(
    checkpoint: str | Path | None,
    B: int,
    T: int,
    size: int,
    needs_masks: bool = True,
    mask_file: str | Path | None = None,
    mask_key: str | None = None,
) -> VideoCamera:
    """The camera of a captioner's training data, for simulating a new video as it was trained.

    Args:
        checkpoint: the captioner checkpoint (its record is read from beside it).
        B / T / size: the captioner's frames per snapshot, snapshots per video and image size.
        needs_masks: False for captioners of true frames (no masks are made).
        mask_file / mask_key: masks to use instead of the recorded ones.
    """
    meta, stored = read_training_record(checkpoint)
    config_data = (meta or {}).get("dataset_config")
    gray = bool(config_data and config_data.get("gray"))
    bayer = None if gray else ((meta or {}).get("bayer") or (config_data or {}).get("bayer") or "RGGB")
    noise = (config_data or {}).get("noise", "none") or "none"
    notes: list[str] = []
    masks = None
    if needs_masks:
        if mask_file is not None:
            masks = load_masks(mask_file, key=mask_key, B=B)
            notes.append(f"masks from {mask_file}")
        elif stored is not None and stored.shape[-3] == B:
            masks = stored
            notes.append(f"the training masks stored beside {checkpoint}")
        else:
            base = DatasetConfig.from_dict(config_data) if config_data else DatasetConfig(B=B, T=T, size=(size, size))
            masks = make_masks(MaskSpec(base.mask, B, size, size, seed=base.mask_seed, params=dict(base.mask_params)))
            notes.append(
                f"masks regenerated: {base.mask}, seed {base.mask_seed}"
                + ("" if config_data else " (DatasetConfig defaults; no training record beside the checkpoint)")
            )
        masks = np.asarray(masks, dtype=np.float32)
        if tuple(masks.shape[-2:]) != (size, size):
            raise ShapeError(f"the masks are {masks.shape[-2]}x{masks.shape[-1]} but the captioner works at {size}x{size}")
    return VideoCamera(masks=masks, bayer=bayer, noise=noise, gray=gray, notes=notes)
