"""Video decoding with OpenCV: any container it reads, as RGB or gray frames."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from snapcap.errors import DataFileError, InvalidValueError

__all__ = ["VIDEO_SUFFIXES", "read_video", "resize_frames"]

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".gif")


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
    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            raise DataFileError(f"{path}: OpenCV cannot open this file as a video")
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
