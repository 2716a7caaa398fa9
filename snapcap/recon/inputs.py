"""What ``snapcap reconstruct`` can read: snapshots, the camera that took them, and the truth.

* SCI benchmark .mat files (``meas`` H×W×N with ``mask`` and, when present, ``orig``): the
  field's protocol divides ``meas`` and ``orig`` by 255;
* snapcap measurement files (``snapcap simulate`` output, .npz/.h5);
* snapcap dataset files (``snapcap dataset make``), one or more samples;
* real captures in every layout of :func:`snapcap.hardware.load_capture` (Qiao et al. DMD
  files with their mask file, Bayer captures, mid-scale colour benchmark files, raw frames).

Everything becomes a flat list of snapshots ``meas (K, H, W)`` with per-snapshot labels, one
operator (per-snapshot masks become a per-sample operator) and optional truth ``(K, B, H, W[, 3])``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from snapcap.cacti.operator import CactiOperator
from snapcap.errors import ConfigError, DataFileError, MissingKeyError, ShapeError

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
    return chosen


def _external_masks(mask: str | Path | None, key: str | None, B: int | None):  # noqa: N803
    if mask is None:
        return None
    from snapcap.cacti.masks import load_masks

    return load_masks(mask, key=key, B=B)


def _from_benchmark(path: Path, mask, mask_key, snapshots: str | None) -> ReconInput:
    from snapcap.matfile import list_mat_variables, load_mat

    found = list_mat_variables(path)
    if "meas" not in found:
        raise MissingKeyError(f"{path}: no 'meas' variable; the file holds {', '.join(found)}")
    data = load_mat(path, [key for key in ("meas", "orig") if key in found])
    meas = data["meas"]
    meas = meas[:, :, None] if meas.ndim == 2 else meas
    meas = np.transpose(meas, (2, 0, 1)).astype(np.float32)
    masks = _external_masks(mask, mask_key, None)
    if masks is None:
        if "mask" not in found:
            raise MissingKeyError(f"{path}: holds no 'mask'; pass the mask file with --mask")
        from snapcap.cacti.masks import load_masks

        masks = load_masks(path, key="mask")
    B = masks.shape[0]  # noqa: N806
    if masks.shape[1:] != meas.shape[1:]:
        raise ShapeError(f"{path}: snapshots are {meas.shape[1:]} but the masks are {masks.shape[1:]}")
    if "orig" not in found:
        raise ConfigError(
            f"{path}: has 'meas' and 'mask' but no 'orig'; for real captures use the capture layouts "
            "(snapcap capture info) so their normalisation is known rather than guessed"
        )
    chosen = parse_selection(snapshots, meas.shape[0], "snapshots")
    truth = None
    orig = data["orig"]
    frames = np.transpose(orig, (2, 0, 1)).astype(np.float32) / 255.0
    covered = frames.shape[0] // B  # e.g. runner8_cacti.mat: 5 snapshots but frames of the first only
    if all(index < covered for index in chosen):
        truth = frames[: B * covered].reshape((covered, B) + frames.shape[1:])[chosen]
    return ReconInput(
        meas=meas[chosen] / 255.0,
        operator=CactiOperator(masks),
        labels=[f"{path.stem}#{index}" for index in chosen],
        description=f"{path.name} (SCI benchmark layout, meas/255)",
        truth=truth,
        meta={"snapshots": chosen, "B": B},
    )


def _from_measurements(path: Path, mask, mask_key, snapshots: str | None) -> ReconInput:
    from snapcap.cacti.store import load_measurements

    data = load_measurements(path)
    params = data["params"]
    meas = np.asarray(data["meas"], dtype=np.float32)  # (N, T, H, W)
    masks = _external_masks(mask, mask_key, params.get("B")) if mask is not None else data["masks"]
    N, T = meas.shape[:2]  # noqa: N806
    flat = meas.reshape((N * T,) + meas.shape[2:])
    chosen = parse_selection(snapshots, N * T, "snapshots")
    bayer = params.get("bayer")
    per_video = masks.ndim == 4
    if per_video:
        masks = np.repeat(masks, T, axis=0)[chosen]
    truth = None
    if "frames" in data:
        B = int(params["B"])  # noqa: N806
        scale = float(params["input"]["scale"]) or 1.0
        frames = np.asarray(data["frames"], dtype=np.float32) / scale
        frames = frames[:, : T * B].reshape((N * T, B) + frames.shape[2:])
        truth = frames[chosen]
    return ReconInput(
        meas=flat[chosen],
        operator=CactiOperator(masks, bayer=bayer),
        labels=[f"video{index // T}/snapshot{index % T}" for index in chosen],
        description=f"{path.name} (snapcap measurements, B={params.get('B')}, bayer={bayer})",
        truth=truth,
        meta={"snapshots": chosen, "params": params},
    )


def _from_dataset(path: Path, mask, mask_key, samples: str | None, snapshots: str | None) -> ReconInput:
    from snapcap.datasets.h5 import open_dataset

    with open_dataset(path) as handle:
        count = int(handle.attrs["num_samples"])
        T = int(handle.attrs["T"])  # noqa: N806
        bayer = handle.attrs.get("bayer", "none")
        bayer = None if bayer in ("none", b"none") else (bayer.decode() if isinstance(bayer, bytes) else bayer)
        rows = parse_selection(samples if samples is not None else "0", count, "samples")
        times = parse_selection(snapshots, T, "snapshots")
        meas = np.stack([handle["meas"][row][times] for row in rows]).astype(np.float32)
        shared = handle["masks"].ndim == 3
        masks = handle["masks"][()] if shared else np.stack([handle["masks"][row] for row in rows])
        truth = None
        if "frames" in handle:
            truth = np.stack([handle["frames"][row][times] for row in rows]).astype(np.float32) / 255.0
        ids = [handle["video_id"][row].decode() for row in rows]
    if mask is not None:
        masks = _external_masks(mask, mask_key, masks.shape[-3])
        shared = True
    flat = meas.reshape((-1,) + meas.shape[2:])
    if not shared:
        masks = np.repeat(masks, len(times), axis=0)
    if truth is not None:
        truth = truth.reshape((-1,) + truth.shape[2:])
    return ReconInput(
        meas=flat,
        operator=CactiOperator(masks, bayer=bayer),
        labels=[f"{video_id}/snapshot{t}" for video_id in ids for t in times],
        description=f"{path.name} (snapcap dataset, samples {rows}, bayer={bayer})",
        truth=truth,
        meta={"samples": rows, "snapshots": times},
    )


def load_recon_input(
    path: str | Path,
    mask: str | Path | None = None,
    mask_key: str | None = None,
    samples: str | None = None,
    snapshots: str | None = None,
    B: int | None = None,  # noqa: N803
) -> ReconInput:
    """Read snapshots, masks and (when known) truth from any supported file; see the module doc.

    ``B``: frames per snapshot of a capture that does not say it (raw camera frames).
    """
    path = Path(path)
    if not path.is_file():
        raise DataFileError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix == ".mat":
        from snapcap.hardware import detect_layout

        if detect_layout(path) == "gray-benchmark":
            return _from_benchmark(path, mask, mask_key, snapshots)
        return _from_capture(path, mask, mask_key, snapshots, B)
    if suffix not in (".npz", ".h5", ".hdf5"):
        from snapcap.hardware import detect_layout

        try:
            layout = detect_layout(path)
        except Exception:  # noqa: BLE001 - reported below as an unknown input type
            layout = None
        if layout == "raw-frame":
            return _from_capture(path, mask, mask_key, snapshots, B)
    if suffix == ".npz":
        return _from_measurements(path, mask, mask_key, snapshots)
    if suffix in (".h5", ".hdf5"):
        from snapcap.datasets.h5 import FORMAT, h5py_with_filters
        from snapcap.cacti.store import FORMAT_NAME

        h5py = h5py_with_filters()
        try:
            with h5py.File(path, "r") as handle:
                kind = handle.attrs.get("format")
        except OSError as exc:
            raise DataFileError(f"{path}: not a readable HDF5 file ({exc})") from exc
        kind = kind.decode() if isinstance(kind, bytes) else kind
        if kind == FORMAT:
            return _from_dataset(path, mask, mask_key, samples, snapshots)
        if kind == FORMAT_NAME:
            return _from_measurements(path, mask, mask_key, snapshots)
        raise DataFileError(f"{path}: HDF5 file of unknown format {kind!r}; expected a snapcap dataset or measurement file")
    raise DataFileError(f"{path}: unknown input type {suffix!r}; expected .mat, .npz, .h5 or a raw camera frame (DNG...)")


def _from_capture(path: Path, mask, mask_key, snapshots: str | None, B: int | None = None) -> ReconInput:  # noqa: N803
    from snapcap.hardware import load_capture

    capture = load_capture(path, mask=mask, mask_key=mask_key, B=B)
    chosen = parse_selection(snapshots, capture.meas.shape[0], "snapshots")
    truth = None
    if capture.truth is not None and all(index < capture.truth.shape[0] for index in chosen):
        truth = np.asarray(capture.truth, dtype=np.float32)[chosen]
    return ReconInput(
        meas=np.asarray(capture.meas, dtype=np.float32)[chosen],
        operator=CactiOperator(capture.masks, bayer=capture.bayer),
        labels=[f"{path.stem}#{index}" for index in chosen],
        description=f"{path.name} ({capture.layout}, {capture.normalisation})",
        truth=truth,
        meta={"snapshots": chosen, "capture": capture.describe()},
    )
