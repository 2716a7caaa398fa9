"""What ``snapcap reconstruct`` can read: snapshots, the camera that took them, and the truth.

Every file is read by :func:`snapcap.hardware.load_capture`, which recognises it and states how
its values become model units:

* SCI benchmark .mat files (``meas`` H×W×N with ``mask`` and ``orig``): meas/255, truth orig/255
  for the snapshots it covers;
* snapcap measurement files (``snapcap simulate`` output, .npz/.h5), truth from their frames;
* snapcap dataset files (``snapcap dataset make``), one or more samples (``--samples``);
* real captures in every other layout (Qiao et al. DMD files with their mask file, Bayer
  captures, mid-scale colour benchmark files, raw frames).

This module only chooses: which samples and snapshots (``--samples``, ``--snapshots``), and
builds one flat list of snapshots ``meas (K, H, W)`` with per-snapshot labels, one operator
(per-snapshot masks give a per-sample operator) and optional truth ``(K, B, H, W[, 3])``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from snapcap.cacti.operator import CactiOperator
from snapcap.errors import ConfigError
from snapcap.hardware.captures import Capture, load_capture

__all__ = ["ReconInput", "load_recon_input", "parse_selection"]


@dataclass
class ReconInput:
    meas: np.ndarray
    operator: CactiOperator
    labels: list[str]
    description: str
    truth: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)


def parse_selection(text: str | None, count: int, what: str) -> list[int]:
    """``None``/``all`` -> everything; ``0,2,5`` or ``1:4`` -> those indices (checked)."""
    if text is None or text == "all":
        return list(range(count))
    chosen: list[int] = []
    try:
        for part in text.split(","):
            if ":" in part:
                start, stop = part.split(":")
                chosen.extend(range(int(start or 0), int(stop) if stop else count))
            else:
                chosen.append(int(part))
    except ValueError:
        raise ConfigError(f"--{what} must look like 0,2,5 or 1:4 or all; got {text!r}") from None
    bad = [index for index in chosen if not 0 <= index < count]
    if bad:
        raise ConfigError(f"--{what} {bad} out of range: the input has {count} {what}")
    if not chosen:
        raise ConfigError(f"--{what} {text!r} selects nothing (a range START:STOP needs START < STOP)")
    return chosen


def _snapshot_rows(capture: Capture, chosen: list[int]) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """The chosen snapshots, their masks (per-snapshot masks follow the choice) and truth."""
    meas = np.asarray(capture.meas, dtype=np.float32)[chosen]
    masks = capture.masks
    if masks is not None and masks.ndim == 4:
        masks = masks[chosen]
    truth = None
    if capture.truth is not None and all(index < capture.truth.shape[0] for index in chosen):
        truth = np.asarray(capture.truth, dtype=np.float32)[chosen]
    return meas, masks, truth


def load_recon_input(
    path: str | Path,
    mask: str | Path | None = None,
    mask_key: str | None = None,
    samples: str | None = None,
    snapshots: str | None = None,
    B: int | None = None,
) -> ReconInput:
    """Read snapshots, masks and (when known) truth from any supported file; see the module doc.

    Args:
        path: any file :func:`snapcap.hardware.load_capture` reads.
        mask, mask_key: a mask file (and its variable) replacing or completing the file's masks.
        samples: dataset files: which samples (``0,2``, ``1:4``, ``all``; default ``0``);
            other files hold one sample and ignore it.
        snapshots: which snapshots (of each chosen sample for a dataset; default all).
        B: frames per snapshot of a capture that does not say it (raw camera frames).
    """
    path = Path(path)
    capture = load_capture(path, mask=mask, mask_key=mask_key, B=B)
    meta: dict[str, Any] = {}
    if capture.layout == "snapcap-dataset":
        rows = parse_selection(samples if samples is not None else "0", capture.num_samples, "samples")
        if rows != [0]:
            capture = load_capture(path, mask=mask, mask_key=mask_key, B=B, sample=rows)
        per_sample = capture.num_snapshots // len(rows)
        times = parse_selection(snapshots, per_sample, "snapshots")
        chosen = [row * per_sample + time for row in range(len(rows)) for time in times]
        meta.update(samples=rows, snapshots=times)
        description = f"{path.name} (snapcap dataset, samples {rows}, bayer={capture.bayer})"
    else:
        chosen = parse_selection(snapshots, capture.num_snapshots, "snapshots")
        meta.update(snapshots=chosen)
        description = f"{path.name} ({capture.layout}, {capture.normalisation})"
    meta.update(B=capture.B, capture=capture.describe())
    if capture.record is not None:
        meta["params"] = capture.record
    meas, masks, truth = _snapshot_rows(capture, chosen)
    return ReconInput(
        meas=meas,
        operator=CactiOperator(masks, bayer=capture.bayer),
        labels=[capture.labels[index] for index in chosen],
        description=description,
        truth=truth,
        meta=meta,
    )
