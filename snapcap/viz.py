"""Figures people would rather look at than arrays: PNG montages written with matplotlib (Agg)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np

from snapcap.backend import to_numpy
from snapcap.errors import DataFileError
from snapcap.fileio import atomic_path

__all__ = ["IMAGE_SUFFIXES", "save_figure", "simulation_montage", "reconstruction_montage", "snapshot_montage", "save_animation"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".pdf", ".svg")
"""Image formats the figures are written in (matplotlib picks the format from the suffix)."""


def save_figure(fig, path: str | Path, dpi: int = 100) -> Path:
    """Write a matplotlib figure to ``path`` atomically (:func:`snapcap.fileio.atomic_path`) and close it."""
    import matplotlib.pyplot as plt

    path = Path(path)
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        plt.close(fig)
        raise DataFileError(f"{path}: a figure is an image; use one of {', '.join(IMAGE_SUFFIXES)}")
    try:
        with atomic_path(path, suffix=path.suffix) as tmp:
            fig.savefig(tmp, dpi=dpi, bbox_inches="tight")
    finally:
        plt.close(fig)
    return path


def _show(
    ax, image: np.ndarray, title: str | None = None, cmap: str = "gray", vmin: float | None = 0.0, vmax: float | None = 1.0
) -> None:
    if image.ndim == 3:
        ax.imshow(np.clip(image, 0, 1))
    else:
        ax.imshow(image, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=8)


def simulation_montage(
    frames,
    masks,
    meas,
    path: str | Path,
    normalized=None,
    title: str | None = None,
    max_columns: int = 8,
    extra_rows: Sequence[tuple[str, np.ndarray]] = (),
) -> Path:
    """Frames of one snapshot, their masks, the snapshot (and Y ⊘ Σ C_k) in one PNG.

    Args:
        frames: ``(B, H, W)`` or ``(B, H, W, 3)`` in [0, 1].
        masks: ``(B, H, W)``.
        meas: ``(H, W)`` snapshot.
        normalized: optional ``(H, W)`` normalised snapshot.
        extra_rows: more (label, (B, H, W[, 3])) rows, e.g. reconstructions.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    frames = to_numpy(frames)
    masks = to_numpy(masks)
    meas = to_numpy(meas)
    count = frames.shape[0]
    shown = np.unique(np.linspace(0, count - 1, min(count, max_columns)).round().astype(int))
    rows = [("frame", frames), ("mask", masks)] + [(label, to_numpy(stack)) for label, stack in extra_rows]
    columns = max(len(shown), 2)
    fig, axes = plt.subplots(len(rows) + 1, columns, figsize=(1.6 * columns, 1.7 * (len(rows) + 1)), squeeze=False)
    for row, (label, stack) in enumerate(rows):
        for col in range(columns):
            ax = axes[row, col]
            if col < len(shown):
                _show(ax, stack[shown[col]], f"{label} {shown[col] + 1}/{count}")
            else:
                ax.axis("off")
    _show(axes[-1, 0], meas, f"snapshot Y (0..{meas.max():.2f})", vmin=float(meas.min()), vmax=float(meas.max()) or 1.0)
    if normalized is not None:
        normalized = to_numpy(normalized)
        _show(axes[-1, 1], normalized, "Y ⊘ Σ C_k", vmin=0.0, vmax=float(normalized.max()) or 1.0)
    else:
        axes[-1, 1].axis("off")
    for col in range(2, columns):
        axes[-1, col].axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    return save_figure(fig, path)


def _frame_psnr(estimate: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """PSNR of every frame of ``(B, H, W[, 3])`` in [0, 1]: 10 log10(1 / MSE) over its pixels (and channels).

    The figure's own annotation (:func:`snapcap.recon.metrics.psnr` is the metric that is
    reported; this module sits below the reconstruction layer and does not import it).
    """
    difference = estimate.astype(np.float64) - truth.astype(np.float64)
    mse = np.mean(difference * difference, axis=tuple(range(1, difference.ndim)))
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(1.0 / mse)


def reconstruction_montage(recon, meas, path: str | Path, truth=None, title: str | None = None, max_columns: int = 8) -> Path:
    """One snapshot's reconstruction (and truth and error when known) as a PNG.

    Args:
        recon: ``(B, H, W)`` or ``(B, H, W, 3)`` frames.
        meas: ``(H, W)`` snapshot.
        truth: optional ground-truth frames of the same shape; adds a truth row and an
            absolute-error row with per-frame PSNR.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    recon = np.clip(to_numpy(recon).astype(np.float32), 0, 1)
    meas = to_numpy(meas)
    count = recon.shape[0]
    shown = np.unique(np.linspace(0, count - 1, min(count, max_columns)).round().astype(int))
    rows: list[tuple[str, np.ndarray]] = [("recon", recon)]
    scores = None
    if truth is not None:
        truth = to_numpy(truth).astype(np.float32)
        scores = _frame_psnr(recon, truth)
        error = np.abs(recon - truth)
        rows = [("truth", truth), ("recon", recon), ("|error|", error.mean(-1) if error.ndim == 4 else error)]
    columns = max(len(shown), 2)
    fig, axes = plt.subplots(len(rows) + 1, columns, figsize=(1.6 * columns, 1.75 * (len(rows) + 1)), squeeze=False)
    for row, (label, stack) in enumerate(rows):
        for col in range(columns):
            ax = axes[row, col]
            if col >= len(shown):
                ax.axis("off")
                continue
            frame = shown[col]
            caption = f"{label} {frame + 1}/{count}"
            if label == "recon" and scores is not None:
                caption += f"\n{scores[frame]:.2f} dB"
            if label == "|error|":
                _show(ax, stack[frame], caption, cmap="magma", vmin=0.0, vmax=0.25)
            else:
                _show(ax, stack[frame], caption)
    _show(axes[-1, 0], meas, "snapshot Y", vmin=float(meas.min()), vmax=float(meas.max()) or 1.0)
    for col in range(1, columns):
        axes[-1, col].axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    return save_figure(fig, path)


def snapshot_montage(meas, path: str | Path, title: str | None = None, max_panels: int = 64) -> Path:
    """All snapshots ``(N, H, W)`` in one image, each scaled to its own range (``snapcap capture preview``)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    meas = np.asarray(to_numpy(meas), dtype=np.float32)
    count = min(meas.shape[0], max_panels)
    columns = min(count, 4)
    rows = int(math.ceil(count / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(3.0 * columns, 3.1 * rows), squeeze=False)
    for index, ax in enumerate(axes.ravel()):
        ax.set_xticks([])
        ax.set_yticks([])
        if index >= count:
            ax.axis("off")
            continue
        image = meas[index]
        ax.imshow(image, cmap="gray", vmin=float(image.min()), vmax=float(image.max()) or 1.0, interpolation="nearest")
        ax.set_title(f"snapshot {index + 1}/{meas.shape[0]}  [{image.min():.3g}, {image.max():.3g}]", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    return save_figure(fig, path)


def save_animation(frames, path: str | Path, fps: int = 8) -> Path:
    """Write frames ``(F, H, W)`` or ``(F, H, W, 3)`` in [0, 1] as a GIF (Pillow) or MP4 (OpenCV)."""
    frames = (np.clip(to_numpy(frames), 0, 1) * 255).round().astype(np.uint8)
    path = Path(path)
    with atomic_path(path) as tmp:
        if path.suffix.lower() == ".gif":
            from PIL import Image

            images = [Image.fromarray(frame) for frame in frames]
            images[0].save(tmp, save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0)
        else:
            import cv2

            height, width = frames.shape[1:3]
            writer = cv2.VideoWriter(tmp, cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height), isColor=frames.ndim == 4)
            for frame in frames:
                writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR) if frame.ndim == 3 else frame)
            writer.release()
    return path
