"""Frames from whatever a user points at: a built-in scene, a video file, an .npy array or a
benchmark .mat file. Always returned as a batch ``(N, F, H, W)`` gray or ``(N, F, H, W, 3)`` RGB.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from snapcap.cacti.masks import MASK_KEYS, load_masks
from snapcap.datasets.synthetic import demo_video, random_scene, render
from snapcap.datasets.video import VIDEO_SUFFIXES, checked_pixels, read_video, resize_frames
from snapcap.errors import ConfigError, DataFileError, MissingKeyError, ShapeError
from snapcap.files import MATLAB_KINDS, Container, open_container, read_npy, sniff

__all__ = ["FrameSource", "load_frames", "VIDEO_KEYS"]

VIDEO_KEYS = ("orig", "orig_bayer", "frames", "video", "X")


@dataclass
class FrameSource:
    """Loaded frames plus what came with them (a stored mask, the key read, a description)."""

    frames: np.ndarray
    description: str
    stored_masks: np.ndarray | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def rgb(self) -> bool:
        return self.frames.ndim == 5


def _as_batch(array: np.ndarray, origin: str) -> np.ndarray:
    """(F,H,W) / (F,H,W,3) / (N,F,H,W) / (N,F,H,W,3) -> a batch."""
    if array.ndim == 3:
        return array[None]
    if array.ndim == 4:
        return array[None] if array.shape[-1] == 3 else array
    if array.ndim == 5 and array.shape[-1] == 3:
        return array
    raise ShapeError(f"{origin}: array of shape {array.shape}; expected (F, H, W), (F, H, W, 3), (N, F, H, W) or (N, F, H, W, 3)")


def _from_mat(container: Container, key: str | None) -> FrameSource:
    path = container.path
    name = key
    if name is None:
        name = container.first(VIDEO_KEYS)
        if name is None:
            raise MissingKeyError(
                f"{path}: no video variable (looked for {', '.join(VIDEO_KEYS)}); "
                f"the file holds {container.listing()}; pass --key"
            )
    array = container.get(name)
    # MATLAB stores H x W x F (gray) or H x W x 3 x F (RGB).
    if array.ndim == 2:
        video = array[None, None]
    elif array.ndim == 3:
        video = np.transpose(array, (2, 0, 1))[None]
    elif array.ndim == 4 and array.shape[2] == 3:
        video = np.transpose(array, (3, 0, 1, 2))[None]
    else:
        raise ShapeError(f"{path}: variable {name!r} has shape {array.shape}; expected H x W x F or H x W x 3 x F")
    checked_pixels(video, f"{path}: variable {name!r}")
    mask_key = container.first(MASK_KEYS)
    stored = None if mask_key is None else load_masks(path, key=mask_key)
    return FrameSource(np.ascontiguousarray(video), f"{path.name}:{name}", stored, {"key": name, "mask_key": mask_key})


def load_frames(
    source: str | Path,
    key: str | None = None,
    size: tuple[int, int] | None = None,
    max_frames: int | None = None,
    gray: bool = False,
) -> FrameSource:
    """Load frames from ``source``.

    Args:
        source: ``builtin:demo`` (the procedural demo scene), ``builtin:scene:SEED`` (a random
            procedural scene), a video file (a suffix of
            :data:`~snapcap.datasets.video.VIDEO_SUFFIXES`, decoded by OpenCV), ``.npy`` (see
            :func:`_as_batch` for the shapes accepted) or a ``.mat`` benchmark file
            (``orig`` H x W x F, its ``mask`` kept as ``stored_masks``). Arrays and MATLAB
            files are recognised from their content (:func:`snapcap.files.sniff`).
        key: variable of a .mat file.
        size: resize frames to (H, W) (video files and built-in scenes).
        max_frames: keep at most this many frames per video.
        gray: convert RGB to gray (ITU-R BT.601 luma).
    """
    text = str(source)
    if text.startswith("builtin:"):
        height, width = size or (128, 128)
        frames = max_frames or 16
        parts = text.split(":")
        if parts[1:] == ["demo"]:
            video = demo_video(frames, height, width, rgb=not gray)
        elif len(parts) == 3 and parts[1] == "scene" and parts[2].isdigit():
            video = render(random_scene(int(parts[2])), frames, height, width, rgb=not gray)
        else:
            raise ConfigError(f"unknown built-in source {text!r}; expected builtin:demo or builtin:scene:SEED")
        return FrameSource(video[None], text)
    path = Path(text)
    if not path.exists():
        raise DataFileError(f"{path}: no such file")
    if not path.is_file():
        raise DataFileError(f"{path}: not a regular file")
    suffix = path.suffix.lower()
    kind = None if suffix in VIDEO_SUFFIXES else sniff(path)
    matlab = kind in MATLAB_KINDS
    if matlab:
        if size is not None:
            raise ConfigError(
                f"{path}: benchmark .mat files are used at their own size (their masks match it); drop the size option"
            )
        loaded = _from_mat(open_container(path), key)
    elif kind == "npy":
        loaded = FrameSource(_as_batch(checked_pixels(read_npy(path), str(path)), str(path)), path.name)
    elif suffix in VIDEO_SUFFIXES:
        loaded = FrameSource(read_video(path, max_frames=max_frames, size=size, gray=gray)[None], path.name)
    else:
        raise DataFileError(f"{path}: unknown input type {suffix!r}; expected a video file, .npy, .mat or builtin:demo")
    frames = loaded.frames
    if max_frames is not None:
        frames = frames[:, :max_frames]
    if size is not None and not matlab and tuple(frames.shape[2:4]) != tuple(size):
        frames = np.stack([resize_frames(np.asarray(v), size) for v in frames])
    if gray and frames.ndim == 5:
        weights = np.asarray([0.299, 0.587, 0.114], dtype=np.float32)
        luma = frames.astype(np.float32) @ weights
        frames = np.clip(np.rint(luma), 0, 255).astype(np.uint8) if loaded.frames.dtype == np.uint8 else luma
    loaded.frames = frames
    return loaded
