"""Video decoding with OpenCV: any container it reads, as RGB or gray frames."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from snapcap.errors import DataFileError, InvalidValueError, ShapeError

__all__ = ["VIDEO_SUFFIXES", "read_video", "resize_frames", "open_capture", "checked_pixels"]

# OpenCV and its FFmpeg backend print their own diagnostics (often not UTF-8) for damaged files;
# snapcap reports a damaged video in one line itself. Read when OpenCV starts, so set them first
# (open_capture silences OpenCV's own log again, for when something imported it before).
os.environ.setdefault("OPENCV_LOG_LEVEL", "SILENT")
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".gif", ".3gp", ".ogv")
"""Suffixes (lower case) of the files read as videos, everywhere: corpora folders, ``snapcap simulate``,
``snapcap caption``. The order is the lookup preference of :mod:`snapcap.datasets.corpora`."""


def open_capture(path: str | Path):
    """An opened ``cv2.VideoCapture`` of ``path`` through the FFmpeg backend (one line of error otherwise).

    Only FFmpeg is tried: OpenCV's fallback readers print their complaints about a damaged file
    straight to the terminal.

    Raises:
        DataFileError: the file cannot be opened as a video.
    """
    import cv2

    if os.environ.get("OPENCV_LOG_LEVEL", "SILENT").upper() == "SILENT":  # unless a user asked for OpenCV's log
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)  # "Could not find decoder..." lines
    capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    if not capture.isOpened():
        capture.release()
        raise DataFileError(f"{path}: OpenCV cannot open this file as a video (damaged, truncated or not a video)")
    return capture


def resize_frames(frames: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize ``(F, H, W[, 3])`` frames to ``size = (H, W)`` with area averaging (cv2.INTER_AREA)."""
    import cv2

    height, width = size
    if height < 1 or width < 1:
        raise InvalidValueError(f"size must be positive (H, W), got {size}")
    if frames.shape[1:3] == (height, width):
        return frames
    return np.stack([cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA) for frame in frames])


def read_video(
    path: str | Path,
    max_frames: int | None = None,
    size: tuple[int, int] | None = None,
    gray: bool = False,
    start: int = 0,
) -> np.ndarray:
    """Decode a video file to uint8 frames ``(F, H, W, 3)`` RGB, or ``(F, H, W)`` with ``gray``.

    Args:
        max_frames: stop after this many frames.
        size: resize every frame to (H, W).
        start: skip this many frames first.
    """
    import cv2

    path = Path(path)
    if not path.is_file():
        raise DataFileError(f"{path}: no such video file")
    capture = open_capture(path)
    try:
        frames = []
        index = 0
        while max_frames is None or len(frames) < max_frames:
            ok, frame = capture.read()
            if not ok:
                break
            if index >= start:
                if gray:
                    frame = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
                else:
                    frame = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
                if size is not None:
                    frame = resize_frames(frame[None], size)[0]
                frames.append(frame)
            index += 1
    finally:
        capture.release()
    if not frames:
        raise DataFileError(f"{path}: no frame could be decoded (empty, corrupt or unsupported codec)")
    return np.stack(frames)


def clip_indices(num_frames: int, T: int, B: int) -> np.ndarray:
    """Which frames make the T snapshots of B consecutive frames: ``(T, B)`` indices.

    The rule (SnapCap samples T = 8 uniform segments of B = 8 frames):

    * F >= T·B: the video is cut into T equal segments and each snapshot takes the B
      consecutive frames at the centre of its segment;
    * B <= F < T·B: the T windows of B consecutive frames start at evenly spaced positions
      between 0 and F − B (they overlap);
    * F < B: every window is the whole video resampled to B frames by nearest neighbour
      (frames repeat, as in slow motion).
    """
    if num_frames < 1:
        raise InvalidValueError(f"a video needs at least one frame, got {num_frames}")
    if T < 1 or B < 1:
        raise InvalidValueError(f"T and B must be >= 1, got T={T}, B={B}")
    if num_frames >= T * B:
        segment = num_frames / T
        starts = np.floor(np.arange(T) * segment + (segment - B) / 2).astype(int)
    elif num_frames >= B:
        starts = np.round(np.linspace(0, num_frames - B, T)).astype(int)
    else:
        window = np.floor(np.arange(B) * num_frames / B).astype(int)
        return np.tile(window, (T, 1))
    return starts[:, None] + np.arange(B)[None, :]


def frame_count(path: str | Path) -> int:
    """Number of frames OpenCV reports for a video (may be approximate for some containers)."""
    import cv2

    capture = open_capture(path)
    try:
        return int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    finally:
        capture.release()


def resize_crop(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize so the frame covers ``size = (H, W)`` keeping its aspect ratio, then centre-crop."""
    import cv2

    height, width = size
    src_h, src_w = frame.shape[:2]
    scale = max(height / src_h, width / src_w)
    new_h, new_w = max(height, int(round(src_h * scale))), max(width, int(round(src_w * scale)))
    if (new_h, new_w) != (src_h, src_w):
        interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        frame = cv2.resize(frame, (new_w, new_h), interpolation=interp)
    top, left = (new_h - height) // 2, (new_w - width) // 2
    return np.ascontiguousarray(frame[top : top + height, left : left + width])


def read_clip(path: str | Path, T: int, B: int, size: tuple[int, int], gray: bool = False) -> np.ndarray:
    """Decode the T·B frames :func:`clip_indices` picks, resized and centre-cropped to ``size``.

    Decoding is sequential and stops after the last needed frame; only the needed frames are
    kept, so memory is bounded by the clip. Returns uint8 ``(T, B, H, W[, 3])`` (RGB order).
    """
    import cv2

    path = Path(path)
    if not path.is_file():
        raise DataFileError(f"{path}: no such video file")
    total = frame_count(path)
    capture = open_capture(path)
    try:
        if total <= 0:  # containers without a frame count: decode everything once
            decoded = []
            while True:
                ok, frame = capture.read()
                if not ok:
                    break
                decoded.append(frame)
            total = len(decoded)
            source = iter(decoded)
        else:
            source = None
        if total == 0:
            raise DataFileError(f"{path}: no frame could be decoded (empty, corrupt or unsupported codec)")
        wanted = clip_indices(total, T, B)
        needed = sorted(set(int(i) for i in wanted.ravel()))
        kept: dict[int, np.ndarray] = {}
        index = 0
        last = needed[-1]
        pointer = 0
        while index <= last:
            if source is None:
                ok, frame = capture.read()
            else:
                frame = next(source, None)
                ok = frame is not None
            if not ok:
                break
            if pointer < len(needed) and index == needed[pointer]:
                frame = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY if gray else cv2.COLOR_BGR2RGB)
                kept[index] = resize_crop(frame, size)
                pointer += 1
            index += 1
    finally:
        capture.release()
    if not kept:
        raise DataFileError(f"{path}: no frame could be decoded (empty, corrupt or unsupported codec)")
    if len(kept) < len(needed):
        # The container over-reported its length: sample again from what was decoded.
        available = sorted(kept)
        wanted = clip_indices(len(available), T, B)
        return np.stack([np.stack([kept[available[i]] for i in row]) for row in wanted])
    return np.stack([np.stack([kept[int(i)] for i in row]) for row in wanted])


def checked_pixels(array: np.ndarray, where: str) -> np.ndarray:
    """Real numbers, at least one frame, finite: what every video source must hold."""
    if array.dtype.kind not in "biuf":
        raise DataFileError(f"{where} has dtype {array.dtype}; expected real pixel values (uint8, uint16 or float)")
    if array.size == 0:
        raise ShapeError(f"{where} is empty (shape {array.shape}); expected at least one frame")
    if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
        bad = int(np.sum(~np.isfinite(array)))
        raise InvalidValueError(f"{where} holds {bad} NaN or infinite value(s); expected finite pixel values")
    return array
