"""Real CACTI captures: one loader for the public real-data layouts and for raw camera frames.

A real capture file holds snapshots in camera units (8-bit DN, a sum of 8-bit frames, a raw
Bayer frame...) and, sometimes, the coding masks. Reconstruction needs measurements ``y`` in the
units of the forward model ``y = Σ_k C_k ⊙ x_k`` with frames ``x_k`` in [0, 1] and masks
``C_k`` in [0, 1]. How to get there differs per layout and is never guessed: every layout of
:data:`LAYOUTS` states its normalisation, and the loader refuses values that do not fit it
(pass ``normalisation=`` to override, see :func:`parse_normalisation`).

The layouts (detected in this order; ``layout=`` forces one):

==================  ==========================================  ==============================
layout              detected from                               normalisation
==================  ==========================================  ==============================
snapcap-dataset     HDF5 attribute ``format=snapcap-dataset``   as stored (simulated, [0, 1])
snapcap-meas        ``format=snapcap-measurements`` (.npz/.h5)  as stored (simulated, [0, 1])
raw-frame           a raw camera file read by rawpy             (raw − black)/(white − black)
bayer-midscale      ``meas_bayer``, ``mask_bayer``,             meas/255
                    ``orig_bayer`` (MATLAB v7.3)
gray-benchmark      ``orig``, ``mask``, ``meas``                meas/255
bayer-real          ``meas_bayer`` or ``mask_bayer`` (+ the     meas/255·B/2 for 8-bit values,
                    other of ``meas``/``mask``), no ``orig``    else ``normalisation=`` needed
qiao2020-dmd        the single key ``meas`` (512×512[×N])       meas/255·B/2, B = ``cr_NN``
==================  ==========================================  ==============================

MATLAB files (v5 and v7.3) are read through :mod:`snapcap.matfile` in MATLAB axis order and
moved to snapcap's order here: snapshots ``H×W×N → (N, H, W)``, masks ``H×W×B → (B, H, W)``,
frames ``H×W×F → (F, H, W)`` and ``H×W×3×F → (F, H, W, 3)``. ``.npz`` files whose arrays are not
a snapcap measurement file are read like a .mat file (same keys, same MATLAB axis order), and a
bare ``.npy`` array is taken as the variable ``meas``. The container is recognised from the
file's first bytes, not its suffix (:mod:`snapcap.files` sniffs and opens every container); a
mismatch is reported in ``notes``.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from snapcap.cacti.bayer import PATTERNS
from snapcap.cacti.masks import load_masks
from snapcap.cacti.operator import CactiOperator
from snapcap.cacti.store import load_measurements
from snapcap.datasets.h5 import open_dataset
from snapcap.errors import (
    BackendUnavailableError,
    ConfigError,
    DataFileError,
    InvalidValueError,
    MissingKeyError,
    ShapeError,
    SnapcapError,
)
from snapcap.files import RAW_SUFFIXES, VARIABLE_KINDS, Container, open_container

__all__ = [
    "Capture",
    "Layout",
    "LAYOUTS",
    "LAYOUT_NAMES",
    "Normalisation",
    "parse_normalisation",
    "load_capture",
    "MaskRequiredError",
    "UnknownLayoutError",
    "RAW_SUFFIXES",
    "b_from_name",
    "detect_layout",
    "layouts_table",
]


class MaskRequiredError(MissingKeyError):
    """A capture needs coding masks that neither the file nor the ``mask=`` argument gives."""


class UnknownLayoutError(DataFileError):
    """A file's keys and shapes match none of the known capture layouts."""


# --------------------------------------------------------------------------------------------
# The capture
# --------------------------------------------------------------------------------------------


@dataclass
class Capture:
    """Snapshots of a real (or emulated) CACTI camera, normalised for the forward model.

    Attributes:
        meas: ``(N, H, W)`` float32 snapshots in model units, ``y = Σ_k C_k ⊙ x_k``.
        masks: ``(B, H, W)`` float32 transmissions in [0, 1], ``(N, B, H, W)`` when every
            snapshot has its own masks, or None when the masks are not known (then
            :meth:`operator` raises :class:`MaskRequiredError`).
        B: frames per snapshot (None for a raw frame read without ``B=``).
        bayer: the sensor's CFA pattern (``"RGGB"``...) or None for a monochrome sensor.
        layout: the name of the :class:`Layout` that read the file.
        normalisation: the formula that turned stored values into ``meas``.
        source: the file.
        raw_range: (min, max) of the stored snapshot values, before normalisation.
        raw_dtype: dtype of the stored snapshot values.
        notes: facts worth knowing (orientation, what was verified, what is missing).
        truth: ground-truth frames of the first ``truth.shape[0]`` snapshots, ``(K, B, H, W)``
            or ``(K, B, H, W, 3)`` (RGB for a Bayer camera), in [0, 1]; None when unknown.
        truth_mosaic: for Bayer files with mosaic ground truth, ``(K, B, H, W)``.
        mask_source: where the masks came from (the file and key, or the ``mask=`` file).
        variables: what the file holds: name -> (shape in the file's order, class or dtype).
        mask_help: the message :meth:`operator` raises when ``masks`` is None.
        labels: one name per snapshot (``kobe32#0``; ``video0/snapshot1`` for snapcap
            measurement files; ``<video_id>/snapshot1`` for dataset samples).
        num_samples: samples (videos) the file holds; ``sample=`` chooses among them in
            snapcap dataset files, every other file is one sample.
        record: snapcap measurement files: the JSON record of the simulation (``params``).
    """

    meas: np.ndarray
    masks: np.ndarray | None
    B: int | None
    bayer: str | None
    layout: str
    normalisation: str
    source: Path
    raw_range: tuple[float, float]
    raw_dtype: str
    notes: list[str] = field(default_factory=list)
    truth: np.ndarray | None = None
    truth_mosaic: np.ndarray | None = None
    mask_source: str | None = None
    variables: dict[str, tuple[tuple[int, ...], str]] = field(default_factory=dict)
    mask_help: str | None = None
    labels: list[str] = field(default_factory=list)
    num_samples: int = 1
    record: dict[str, Any] | None = None

    @property
    def num_snapshots(self) -> int:
        return int(self.meas.shape[0])

    @property
    def frame_shape(self) -> tuple[int, int]:
        return (int(self.meas.shape[1]), int(self.meas.shape[2]))

    def operator(self) -> CactiOperator:
        """The camera as a :class:`~snapcap.cacti.CactiOperator` (masks and Bayer pattern).

        Raises:
            MaskRequiredError: the capture was read without masks.
        """
        if self.masks is None:
            raise MaskRequiredError(self.mask_help or f"{self.source}: no masks are known for this capture; pass mask=")
        return CactiOperator(self.masks, bayer=self.bayer)

    def describe(self) -> dict[str, Any]:
        """A JSON-serialisable summary (what ``snapcap capture info`` prints)."""
        meas = self.meas
        return {
            "path": str(self.source),
            "layout": self.layout,
            "B": self.B,
            "bayer": self.bayer,
            "snapshots": self.num_snapshots,
            "meas_shape": list(meas.shape),
            "meas_range": [float(meas.min()), float(meas.max())] if meas.size else [0.0, 0.0],
            "raw_range": [float(self.raw_range[0]), float(self.raw_range[1])],
            "raw_dtype": self.raw_dtype,
            "normalisation": self.normalisation,
            "masks_shape": None if self.masks is None else list(self.masks.shape),
            "masks_range": None if self.masks is None else [float(self.masks.min()), float(self.masks.max())],
            "mask_source": self.mask_source,
            "truth_shape": None if self.truth is None else list(self.truth.shape),
            "variables": {name: {"shape": list(shape), "class": cls} for name, (shape, cls) in self.variables.items()},
            "notes": list(self.notes),
        }


# --------------------------------------------------------------------------------------------
# Normalisations
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Normalisation:
    """Stored snapshot values -> model units.

    Kinds (``parse_normalisation`` spellings):

    * ``stored``: ``y = v`` (the file already holds model units);
    * ``scale:S``: ``y = v / S`` (e.g. ``scale:255``, the benchmark convention for a sum of
      8-bit frames coded by masks in [0, 1]);
    * ``fullscale:F``: ``y = v / F · B/2`` (a camera whose exposure puts a white scene seen
      through the average, half-open mask at the ADC's full scale F: Qiao et al.'s
      ``meas/255*cr/2`` is ``fullscale:255``);
    * ``peak``: ``y = v / max(v) · B/2`` (the DMD real-data scripts' ``meas/max(meas)*B/2``:
      the brightest pixel is taken as that white level).
    """

    kind: str
    value: float | None = None

    def formula(self, B: int | None) -> str:
        b = "B" if B is None else str(B)
        if self.kind == "stored":
            return "as stored (y = meas)"
        if self.kind == "scale":
            return f"meas/{self.value:g}"
        if self.kind == "fullscale":
            return f"meas/{self.value:g}·B/2 (B={b})"
        return f"meas/max(meas)·B/2 (B={b})"

    def apply(self, values: np.ndarray, B: int | None, where: str) -> np.ndarray:
        v = values.astype(np.float64)
        if self.kind == "stored":
            out = v
        elif self.kind == "scale":
            out = v / float(self.value)  # type: ignore[arg-type]
        else:
            if B is None:
                raise ConfigError(f"{where}: normalisation {self.formula(B)} needs B; pass B=")
            peak = float(self.value) if self.kind == "fullscale" else float(np.max(v)) if v.size else 0.0  # type: ignore[arg-type]
            if not peak > 0:
                raise InvalidValueError(
                    f"{where}: normalisation {self.formula(B)} divides by {peak:g}; the snapshots are all zero"
                )
            out = v / peak * (B / 2.0)
        return out.astype(np.float32)


def parse_normalisation(text: str | Normalisation | None) -> Normalisation | None:
    """Parse ``stored``, ``scale:S``, ``fullscale:F`` or ``peak`` (see :class:`Normalisation`)."""
    if text is None or isinstance(text, Normalisation):
        return text
    if not isinstance(text, str):
        raise ConfigError(f"normalisation must be a string such as 'scale:255', got {type(text).__name__} {text!r}")
    spec = text.strip().lower()
    if spec in ("stored", "none", "as-stored"):
        return Normalisation("stored")
    if spec == "peak":
        return Normalisation("peak")
    kind, sep, value = spec.partition(":")
    if sep and kind in ("scale", "fullscale"):
        try:
            number = float(value)
        except ValueError:
            number = float("nan")
        if not (math.isfinite(number) and number > 0):
            raise ConfigError(f"normalisation {text!r}: {value!r} must be a positive number")
        return Normalisation(kind, number)
    raise ConfigError(
        f"normalisation {text!r} not understood; expected 'stored', 'scale:S' (y = meas/S), "
        "'fullscale:F' (y = meas/F·B/2) or 'peak' (y = meas/max·B/2)"
    )


# --------------------------------------------------------------------------------------------
# Requests and shared checks
# --------------------------------------------------------------------------------------------


@dataclass
class _Request:
    mask: Any
    mask_key: str | None
    B: int | None
    samples: list[int]
    normalisation: Normalisation | None
    require_mask: bool


def _integer_valued(values: np.ndarray) -> bool:
    if values.dtype.kind in "biu":
        return True
    return bool(np.all(np.mod(values, 1.0) == 0))


def _value_range(values: np.ndarray) -> tuple[float, float]:
    if values.size == 0:
        return (0.0, 0.0)
    return (float(np.min(values)), float(np.max(values)))


def _snapshots(values: np.ndarray, path: Path, key: str) -> np.ndarray:
    """MATLAB H×W[×N] -> (N, H, W)."""
    if values.ndim == 2:
        values = values[:, :, None]
    if values.ndim != 3:
        raise ShapeError(f"{path}: variable {key!r} has shape {values.shape}; expected H×W or H×W×N snapshots")
    if min(values.shape) < 1:
        raise ShapeError(f"{path}: variable {key!r} has shape {values.shape}; expected non-empty H×W×N snapshots")
    return np.ascontiguousarray(np.transpose(values, (2, 0, 1)))


def _file_masks(values: np.ndarray, path: Path, key: str, hw: tuple[int, int], B: int | None) -> np.ndarray:
    """MATLAB H×W×B masks of the capture file itself -> float32 (B, H, W), checked."""
    if values.ndim == 2:
        values = values[:, :, None]
    if values.ndim != 3:
        raise ShapeError(f"{path}: mask {key!r} has shape {values.shape}; expected H×W×B")
    masks = np.ascontiguousarray(np.transpose(values, (2, 0, 1)), dtype=np.float32)
    if masks.shape[1:] != hw:
        raise ShapeError(f"{path}: mask {key!r} is {masks.shape[1]}×{masks.shape[2]} but the snapshots are {hw[0]}×{hw[1]}")
    if B is not None:
        if masks.shape[0] < B:
            raise ShapeError(f"{path}: mask {key!r} holds {masks.shape[0]} frames; B={B} were asked for")
        masks = masks[:B]
    _check_transmission(masks, f"{path}: mask {key!r}")
    return masks


def _check_transmission(masks: np.ndarray, where: str) -> None:
    if masks.size == 0:
        raise ShapeError(f"{where} is empty")
    if not np.all(np.isfinite(masks)):
        raise InvalidValueError(
            f"{where} holds {int(np.sum(~np.isfinite(masks)))} NaN or infinite value(s); expected transmissions in [0, 1]"
        )
    low, high = float(masks.min()), float(masks.max())
    if low < 0 or high > 1:
        raise InvalidValueError(
            f"{where} has values in [{low:g}, {high:g}]; expected transmissions in [0, 1] "
            "(rescale 8-bit or calibration-count masks to [0, 1] first)"
        )


def _external_masks(req: _Request, path: Path, hw: tuple[int, int], B: int | None) -> tuple[np.ndarray, str]:
    """Masks from the ``mask=`` argument (a file or an array) -> float32 (B, H, W), checked."""
    mask = req.mask
    if isinstance(mask, (str, Path)):
        masks = load_masks(mask, key=req.mask_key, B=B)
        where = f"mask file {mask}"
        source = f"{mask}" + (f" (key {req.mask_key!r})" if req.mask_key else "")
    else:
        try:
            masks = np.asarray(mask)
        except Exception as exc:
            raise ConfigError(f"mask= must be a mask file path or a (B, H, W) array, got {type(mask).__name__}") from exc
        if masks.dtype.kind not in "biuf":
            raise ConfigError(f"mask= must be a mask file path or a numeric (B, H, W) array, got dtype {masks.dtype}")
        if masks.ndim == 2:
            masks = masks[None]
        if masks.ndim != 3:
            raise ShapeError(f"mask= array has shape {masks.shape}; expected (B, H, W)")
        if B is not None:
            if masks.shape[0] < B:
                raise ShapeError(f"mask= array holds {masks.shape[0]} frames; B={B} were asked for")
            masks = masks[:B]
        masks = np.ascontiguousarray(masks, dtype=np.float32)
        where = "mask= array"
        source = f"array {tuple(masks.shape)}"
        _check_transmission(masks, where)
    if tuple(masks.shape[1:]) != hw:
        raise ShapeError(f"{path}: the snapshots are {hw[0]}×{hw[1]} but the {where} masks are {masks.shape[1]}×{masks.shape[2]}")
    return masks, source


def _bayer_even(path: Path, hw: tuple[int, int], layout: str) -> None:
    if hw[0] % 2 or hw[1] % 2:
        raise ShapeError(f"{path}: layout {layout} is a Bayer mosaic and needs even H and W, got {hw[0]}×{hw[1]}")


def _consistency(raw_meas: np.ndarray, masks: np.ndarray, frames: np.ndarray, path: Path, what: str, override: bool) -> str:
    """Check ``meas = Σ_k mask_k · frame_k`` (all in stored units) on the covered snapshots.

    Returns a note. Raises :class:`InvalidValueError` when the stored snapshots are clearly on
    another scale than the layout's normalisation assumes (unless it was overridden).
    """
    count = frames.shape[0]
    pred = np.einsum("nkhw,khw->nhw", frames.astype(np.float64), masks.astype(np.float64))
    meas = raw_meas[:count].astype(np.float64)
    denominator = float(np.sum(pred * pred))
    if denominator == 0:
        return f"cannot check meas against {what}: the coded frames are all zero"
    scale = float(np.sum(meas * pred)) / denominator
    residual = float(np.linalg.norm(meas - pred) / max(np.linalg.norm(meas), 1e-12))
    label = "snapshot 0" if count == 1 else f"snapshots 0..{count - 1}"
    if 0.9 <= scale <= 1.1:
        exact = " exactly" if residual == 0 else f" (relative residual {residual:.2g})"
        return f"verified on {label}: meas = Σ_k mask_k·{what}_k{exact}"
    if override:
        return f"meas on {label} is {scale:.4g}× Σ_k mask_k·{what}_k; the given normalisation is used as asked"
    raise InvalidValueError(
        f"{path}: meas on {label} is {scale:.4g}× Σ_k mask_k·{what}_k, not 1×; the layout's normalisation assumes "
        f"meas is that sum in 8-bit units. Pass normalisation= (e.g. 'scale:{255 * scale:.4g}') if the file is scaled differently"
    )


def _check_stored_scale(
    source: Container,
    req: _Request,
    key: str,
    masks: np.ndarray,
    meas_raw: np.ndarray,
    frames: np.ndarray,
    what: str,
    override: bool,
) -> str | None:
    """Check the stored ``meas`` against ``Σ mask·frames`` with the masks that made it (:func:`_consistency`).

    Those are the file's own masks (``key``), also when ``mask=`` replaces them for the operator:
    the given masks may differ on purpose (a calibration, a mismatch study). Returns the note,
    or None when ``frames`` cover no snapshot.
    """
    path = source.path
    hw = (int(meas_raw.shape[1]), int(meas_raw.shape[2]))
    reference = masks
    if req.mask is not None:
        try:
            reference = _file_masks(source.get(key), path, key, hw, None)
        except SnapcapError as exc:
            return f"meas not checked against {what}: the file's own {key!r} is unusable ({exc})"
    count = min(meas_raw.shape[0], frames.shape[0] // reference.shape[0])
    if not count:
        return None
    blocks = frames[: count * reference.shape[0]].reshape((count, reference.shape[0]) + hw)
    note = _consistency(meas_raw, reference, blocks, path, what, override)
    if req.mask is not None:
        note += f" (with the file's own {key!r}; the given masks are used for the operator)"
    return note


def _truth_8bit(values: np.ndarray, path: Path, key: str) -> np.ndarray:
    if not _integer_valued(values) or (values.size and (values.min() < 0 or values.max() > 255)):
        low, high = _value_range(values)
        raise InvalidValueError(
            f"{path}: {key!r} holds values in [{low:g}, {high:g}]; expected 8-bit integers 0..255 (the layout divides by 255)"
        )
    return values


# --------------------------------------------------------------------------------------------
# The layouts
# --------------------------------------------------------------------------------------------

_CR_PATTERN = re.compile(r"(?:^|[_\-.])cr[_\-]?(\d+)(?=$|[_\-.])", re.IGNORECASE)


def b_from_name(path: str | Path) -> int | None:
    """B from a ``cr_NN`` part of a file name (``meas_duomino_cr_10.mat`` -> 10), or None."""
    match = _CR_PATTERN.search(Path(path).stem)
    return int(match.group(1)) if match else None


def _qiao_mask_help(path: Path, B: int | None) -> str:
    frames = f"the first B={B} are used" if B else "the first B are used"
    return (
        f"{path}: layout qiao2020-dmd (Qiao et al. 2020 DMD capture: the single key 'meas') holds no masks. "
        f"It needs real_mask.mat (key 'mask', 512×512×≥B frames, {frames}), from the authors' repositories "
        "(test_datasets/mask/real_mask.mat of STFormer / EfficientSCI / cacti; about 23 MB, not shipped with snapcap). "
        "Pass it with --mask real_mask.mat on the command line or mask='real_mask.mat' in Python"
    )


def _read_qiao(source: Container, req: _Request) -> Capture:
    path = source.path
    stored = source.get("meas")
    meas_raw = _snapshots(stored, path, "meas")
    hw = (int(meas_raw.shape[1]), int(meas_raw.shape[2]))
    named = b_from_name(path)
    B = req.B
    notes = list(source.notes)
    if named is not None and B is not None and named != B:
        raise ConfigError(f"{path}: the file name says cr_{named} (B={named}) but B={B} was given")
    if B is None:
        B = named
    if B is None:
        raise ConfigError(
            f"{path}: layout qiao2020-dmd takes B from '_cr_NN' in the file name, and this name has none; pass B= (--B)"
        )
    if B < 1:
        raise ConfigError(f"{path}: B must be >= 1, got {B}")
    notes.append(f"B={B} from " + ("the file name (cr_%d)" % named if req.B is None else "the B= argument"))
    declared = source.variables.get("meas", ((), ""))[1]
    if declared != stored.dtype.name and declared in ("double", "single"):
        notes.append(f"'meas' is MATLAB class {declared} stored compactly as {stored.dtype} values (as in the published files)")
    raw_range = _value_range(meas_raw)
    if req.normalisation is None:
        if not _integer_valued(meas_raw) or raw_range[0] < 0 or raw_range[1] > 255:
            raise InvalidValueError(
                f"{path}: layout qiao2020-dmd stores 8-bit snapshots (integers 0..255) but 'meas' holds values in "
                f"[{raw_range[0]:g}, {raw_range[1]:g}]{'' if _integer_valued(meas_raw) else ' (not integers)'}; "
                "pass normalisation= (e.g. 'fullscale:4095' for a 12-bit camera) if the file is scaled differently"
            )
        norm = Normalisation("fullscale", 255.0)
    else:
        norm = req.normalisation
    meas = norm.apply(meas_raw, B, str(path))
    if hw != (512, 512):
        notes.append(f"the Qiao et al. DMD system records 512×512 snapshots; this file is {hw[0]}×{hw[1]}")
    notes.append("the scene is rotated about 45° in the frame (DMD geometry); it is not rotated back")
    notes.append("MATLAB H×W×N 'meas' moved to (N, H, W)")
    masks = None
    mask_source = None
    help_text = _qiao_mask_help(path, B)
    if req.mask is not None:
        masks, mask_source = _external_masks(req, path, hw, B)
    elif req.require_mask:
        raise MaskRequiredError(help_text)
    else:
        notes.append("no masks: " + help_text.split(": ", 1)[1])
    return Capture(
        meas=meas,
        masks=masks,
        B=B,
        bayer=None,
        layout="qiao2020-dmd",
        normalisation=norm.formula(B) + (" (Qiao et al. loaders: meas/255*cr/2)" if req.normalisation is None else " (given)"),
        source=path,
        raw_range=raw_range,
        raw_dtype=str(stored.dtype),
        notes=notes,
        mask_source=mask_source,
        variables=dict(source.variables),
        mask_help=None if masks is not None else help_text,
    )


def _read_bayer_real(source: Container, req: _Request) -> Capture:
    path = source.path
    meas_key = source.first(("meas_bayer", "meas"))
    mask_key = source.first(("mask_bayer", "mask"))
    if meas_key is None:
        raise MissingKeyError(f"{path}: layout bayer-real needs 'meas_bayer' (or 'meas'); the file holds {source.listing()}")
    stored = source.get(meas_key)
    meas_raw = _snapshots(stored, path, meas_key)
    hw = (int(meas_raw.shape[1]), int(meas_raw.shape[2]))
    _bayer_even(path, hw, "bayer-real")
    notes = list(source.notes)
    notes.append(f"MATLAB H×W×N {meas_key!r} moved to (N, H, W); Bayer RGGB mosaic")
    masks = None
    mask_source = None
    B = req.B
    if req.mask is not None:
        masks, mask_source = _external_masks(req, path, hw, B)
    elif mask_key is not None:
        masks = _file_masks(source.get(mask_key), path, mask_key, hw, B)
        mask_source = f"{path.name} (key {mask_key!r})"
    help_text = f"{path}: layout bayer-real holds no 'mask_bayer' or 'mask'; pass the mask file with --mask / mask="
    if masks is None and req.require_mask:
        raise MaskRequiredError(help_text)
    if masks is not None:
        B = int(masks.shape[0])
    raw_range = _value_range(meas_raw)
    if req.normalisation is not None:
        norm = req.normalisation
        why = " (given)"
    elif _integer_valued(meas_raw) and raw_range[0] >= 0 and raw_range[1] <= 255:
        norm = Normalisation("fullscale", 255.0)
        why = " (8-bit snapshot values: the DMD real-data convention, a white scene behind the half-open mask at full scale)"
    else:
        raise InvalidValueError(
            f"{path}: layout bayer-real: {meas_key!r} holds values in [{raw_range[0]:g}, {raw_range[1]:g}] "
            f"({'integers' if _integer_valued(meas_raw) else 'not integers'}, dtype {stored.dtype}), which do not identify "
            "the camera's scale (only 8-bit integer snapshots do: meas/255·B/2). Pass normalisation=: 'fullscale:F' "
            "(y = meas/F·B/2 for an ADC full scale F), 'peak' (meas/max·B/2, the DMD scripts), 'scale:S' or 'stored'"
        )
    if B is None:
        raise ConfigError(f"{path}: layout bayer-real: B is unknown without masks; pass B=")
    meas = norm.apply(meas_raw, B, str(path))
    return Capture(
        meas=meas,
        masks=masks,
        B=B,
        bayer="RGGB",
        layout="bayer-real",
        normalisation=norm.formula(B) + why,
        source=path,
        raw_range=raw_range,
        raw_dtype=str(stored.dtype),
        notes=notes,
        mask_source=mask_source,
        variables=dict(source.variables),
        mask_help=None if masks is not None else help_text,
    )


def _read_midscale(source: Container, req: _Request) -> Capture:
    path = source.path
    stored = source.get("meas_bayer")
    meas_raw = _snapshots(stored, path, "meas_bayer")
    hw = (int(meas_raw.shape[1]), int(meas_raw.shape[2]))
    _bayer_even(path, hw, "bayer-midscale")
    notes = list(source.notes)
    notes.append("MATLAB H×W×N 'meas_bayer' moved to (N, H, W); Bayer RGGB mosaic")
    if req.mask is not None:
        masks, mask_source = _external_masks(req, path, hw, req.B)
    else:
        masks = _file_masks(source.get("mask_bayer"), path, "mask_bayer", hw, req.B)
        mask_source = f"{path.name} (key 'mask_bayer')"
    B = int(masks.shape[0])
    n = meas_raw.shape[0]
    truth = truth_mosaic = None
    override = req.normalisation is not None
    if "orig_bayer" in source.variables:
        orig_bayer = _truth_8bit(source.get("orig_bayer"), path, "orig_bayer")
        frames = _snapshots(orig_bayer, path, "orig_bayer")  # (F, H, W)
        if frames.shape[1:] != meas_raw.shape[1:]:
            raise ShapeError(f"{path}: 'orig_bayer' frames are {frames.shape[1:]} but the snapshots are {meas_raw.shape[1:]}")
        check = _check_stored_scale(source, req, "mask_bayer", masks, meas_raw, frames, "orig_bayer", override)
        if check:
            notes.append(check)
        covered = min(n, frames.shape[0] // B)
        if covered:
            truth_mosaic = (frames[: covered * B].reshape((covered, B) + hw) / 255.0).astype(np.float32)
    if "orig" in source.variables:
        orig = _truth_8bit(source.get("orig"), path, "orig")
        if orig.ndim == 4 and orig.shape[2] == 3 and orig.shape[:2] == hw:
            rgb = np.transpose(orig, (3, 0, 1, 2))  # H×W×3×F -> (F, H, W, 3)
            covered = min(n, rgb.shape[0] // B)
            if covered:
                truth = (rgb[: covered * B].reshape((covered, B) + hw + (3,)) / 255.0).astype(np.float32)
                notes.append(f"truth: RGB 'orig' H×W×3×F moved to (N, B, H, W, 3)/255 for {covered} snapshot(s)")
        else:
            notes.append(f"'orig' has shape {orig.shape}, not H×W×3×F; no RGB truth")
    norm = req.normalisation or Normalisation("scale", 255.0)
    meas = norm.apply(meas_raw, B, str(path))
    return Capture(
        meas=meas,
        masks=masks,
        B=B,
        bayer="RGGB",
        layout="bayer-midscale",
        normalisation=norm.formula(B) + (" (given)" if override else " (PnP-SCI mid-scale loader: meas_bayer/255)"),
        source=path,
        raw_range=_value_range(meas_raw),
        raw_dtype=str(stored.dtype),
        notes=notes,
        truth=truth,
        truth_mosaic=truth_mosaic,
        mask_source=mask_source,
        variables=dict(source.variables),
    )


def _read_gray_benchmark(source: Container, req: _Request) -> Capture:
    path = source.path
    stored = source.get("meas")
    meas_raw = _snapshots(stored, path, "meas")
    hw = (int(meas_raw.shape[1]), int(meas_raw.shape[2]))
    notes = list(source.notes)
    notes.append("MATLAB H×W×N 'meas', H×W×B 'mask' and H×W×F 'orig' moved to (N, H, W), (B, H, W), (F, H, W)")
    if req.mask is not None:
        masks, mask_source = _external_masks(req, path, hw, req.B)
    else:
        masks = _file_masks(source.get("mask"), path, "mask", hw, req.B)
        mask_source = f"{path.name} (key 'mask')"
    B = int(masks.shape[0])
    override = req.normalisation is not None
    orig = _truth_8bit(source.get("orig"), path, "orig")
    frames = _snapshots(orig, path, "orig")
    if frames.shape[1:] != meas_raw.shape[1:]:
        raise ShapeError(f"{path}: 'orig' frames are {frames.shape[1]}×{frames.shape[2]} but the snapshots are {hw[0]}×{hw[1]}")
    n = meas_raw.shape[0]
    check = _check_stored_scale(source, req, "mask", masks, meas_raw, frames, "orig", override)
    if check:
        notes.append(check)
    covered = min(n, frames.shape[0] // B)
    truth = None
    if covered:
        truth = (frames[: covered * B].reshape((covered, B) + hw) / 255.0).astype(np.float32)
        if covered < n:
            notes.append(f"'orig' holds {frames.shape[0]} frames: truth covers the first {covered} of {n} snapshots")
    else:
        notes.append(f"'orig' holds {frames.shape[0]} frames, fewer than B={B}: no truth")
    norm = req.normalisation or Normalisation("scale", 255.0)
    meas = norm.apply(meas_raw, B, str(path))
    return Capture(
        meas=meas,
        masks=masks,
        B=B,
        bayer=None,
        layout="gray-benchmark",
        normalisation=norm.formula(B) + (" (given)" if override else " (SCI benchmark: meas = Σ mask·orig in 8-bit units)"),
        source=path,
        raw_range=_value_range(meas_raw),
        raw_dtype=str(stored.dtype),
        notes=notes,
        truth=truth,
        mask_source=mask_source,
        variables=dict(source.variables),
    )


def _read_snapcap_meas(source: Container, req: _Request) -> Capture:
    path = source.path
    if req.normalisation is not None:
        raise ConfigError(f"{path}: snapcap measurement files hold model units; normalisation= does not apply")
    data = load_measurements(path)
    params = data.get("params") or {}
    try:
        meas4 = np.asarray(data["meas"], dtype=np.float32)
        masks_stored = np.asarray(data["masks"], dtype=np.float32)
        if meas4.ndim != 4:
            raise ShapeError(f"{path}: 'meas' has shape {meas4.shape}; expected (N, T, H, W)")
        N, T, H, W = meas4.shape
        bayer = params.get("bayer")
    except KeyError as exc:
        raise MissingKeyError(f"{path}: snapcap measurement file lacks {exc}") from exc
    if not np.all(np.isfinite(meas4)):
        raise InvalidValueError(f"{path}: 'meas' holds NaN or infinite values")
    meas = meas4.reshape((N * T, H, W))
    notes = list(source.notes) + [f"snapcap measurements (N={N} videos × T={T} snapshots) flattened to {N * T} snapshots"]
    if req.mask is not None:
        masks, mask_source = _external_masks(req, path, (H, W), params.get("B"))
    else:
        masks = masks_stored
        mask_source = f"{path.name} (key 'masks')"
        if masks.ndim == 4:
            masks = np.repeat(masks, T, axis=0)
            notes.append("per-video masks repeated for each snapshot: masks (N·T, B, H, W)")
        if masks.ndim not in (3, 4) or tuple(masks.shape[-2:]) != (H, W):
            raise ShapeError(f"{path}: 'masks' has shape {masks_stored.shape}; expected (B, {H}, {W}) or (N, B, {H}, {W})")
        _check_transmission(masks, f"{path}: 'masks'")
    B = int(masks.shape[-3])
    truth = None
    frame_scale = float((params.get("input") or {}).get("scale") or 1.0)
    if "frames" in data:
        frames = np.asarray(data["frames"], dtype=np.float32) / (frame_scale or 1.0)
        if frames.shape[1] >= T * B:
            truth = frames[:, : T * B].reshape((N * T, B) + frames.shape[2:])
    return Capture(
        meas=meas,
        masks=masks,
        B=B,
        bayer=bayer,
        layout="snapcap-meas",
        normalisation=f"as stored (snapcap simulate output, y = Σ_k C_k·x_k, frames divided by {frame_scale:g})",
        source=path,
        raw_range=_value_range(meas),
        raw_dtype=str(meas4.dtype),
        notes=notes,
        truth=truth,
        mask_source=mask_source,
        variables={
            name: (tuple(np.shape(value)), str(getattr(value, "dtype", type(value).__name__)))
            for name, value in data.items()
            if name != "params"
        },
        labels=[f"video{index // T}/snapshot{index % T}" for index in range(N * T)],
        record=params,
    )


def _read_snapcap_dataset(source: Container, req: _Request) -> Capture:
    path = source.path
    if req.normalisation is not None:
        raise ConfigError(f"{path}: snapcap dataset files hold model units; normalisation= does not apply")
    rows = req.samples
    try:
        with open_dataset(path) as handle:
            count = int(handle.attrs["num_samples"])
            for row in rows:
                if not 0 <= row < count:
                    raise ConfigError(f"{path}: sample={row} out of range; the dataset holds {count} samples")
            bayer = handle.attrs.get("bayer", "none")
            bayer = bayer.decode() if isinstance(bayer, bytes) else str(bayer)
            bayer = None if bayer.lower() == "none" else bayer
            meas = np.stack([np.asarray(handle["meas"][row], dtype=np.float32) for row in rows])  # (K, T, H, W)
            masks_ds = handle["masks"]
            shared = masks_ds.ndim == 3 or len(rows) == 1
            if masks_ds.ndim == 3:
                masks = np.asarray(masks_ds[()], dtype=np.float32)
            else:
                masks = np.stack([np.asarray(masks_ds[row], dtype=np.float32) for row in rows])  # (K, B, H, W)
            truth = None
            if "frames" in handle:
                truth = np.stack([np.asarray(handle["frames"][row], dtype=np.float32) for row in rows]) / 255.0
            video_ids = [handle["video_id"][row] for row in rows]
            video_ids = [value.decode() if isinstance(value, bytes) else str(value) for value in video_ids]
            variables = {name: (tuple(handle[name].shape), str(handle[name].dtype)) for name in handle}
    except SnapcapError:
        raise
    except Exception as exc:
        raise DataFileError(f"{path}: cannot read the dataset ({exc.__class__.__name__}: {exc}); it may be truncated") from exc
    K, T, H, W = meas.shape
    if len(rows) == 1:
        notes = list(source.notes) + [f"sample {rows[0]} ({video_ids[0]}) of {count}: its T={T} snapshots"]
        if masks.ndim == 4:
            masks = masks[0]
    else:
        notes = list(source.notes) + [
            f"samples {rows} of {count}: K={K} samples × T={T} snapshots flattened to {K * T} snapshots"
        ]
    mask_source = f"{path.name} (key 'masks')"
    if req.mask is not None:
        masks, mask_source = _external_masks(req, path, (H, W), masks.shape[-3])
    else:
        _check_transmission(masks, f"{path}: 'masks'")
        if not shared:
            masks = np.repeat(masks, T, axis=0)
            notes.append("per-sample masks repeated for each snapshot: masks (K·T, B, H, W)")
    if truth is not None:
        truth = truth.reshape((K * T,) + truth.shape[2:])
    return Capture(
        meas=meas.reshape((K * T, H, W)),
        masks=masks,
        B=int(masks.shape[-3]),
        bayer=bayer,
        layout="snapcap-dataset",
        normalisation="as stored (snapcap dataset, y = Σ_k C_k·x_k with frames/255)",
        source=path,
        raw_range=_value_range(meas),
        raw_dtype="float32",
        notes=notes,
        truth=truth,
        mask_source=mask_source,
        variables=variables,
        labels=[f"{video_id}/snapshot{t}" for video_id in video_ids for t in range(T)],
        num_samples=count,
    )


def _cfa_pattern(raw_pattern: Any, color_desc: bytes, num_colors: int, path: Path) -> str | None:
    if raw_pattern is None or num_colors == 1:
        return None
    pattern = np.asarray(raw_pattern)
    desc = color_desc.decode("ascii", errors="replace") if isinstance(color_desc, bytes) else str(color_desc)
    if pattern.shape != (2, 2):
        raise DataFileError(
            f"{path}: the sensor's colour filter repeats every {pattern.shape[0]}×{pattern.shape[1]} pixels (X-Trans?); "
            "only 2×2 Bayer patterns are supported"
        )
    try:
        letters = "".join(desc[int(index)] for index in pattern.reshape(-1))
    except IndexError:
        raise DataFileError(f"{path}: raw pattern {pattern.tolist()} does not index the colour description {desc!r}") from None
    if letters not in PATTERNS:
        raise DataFileError(
            f"{path}: colour filter pattern {letters!r} (colours {desc!r}) is not a Bayer RGGB/BGGR/GRBG/GBRG pattern"
        )
    return letters


@contextlib.contextmanager
def _c_stderr_kept(lines: list[str]) -> Iterator[None]:
    """Keep what C code (LibRaw) writes to the process's stderr meanwhile in ``lines`` instead of the terminal.

    LibRaw prints its data errors ("Unexpected end of file") there itself; snapcap reports them in
    its one error line. Without a usable descriptor 2 nothing is kept.
    """
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):
        yield
        return
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            lines.extend(line for line in sink.read().decode(errors="replace").splitlines() if line.strip())


def _read_raw(source: Container, req: _Request) -> Capture:
    path = source.path
    if req.normalisation is not None:
        raise ConfigError(f"{path}: raw frames are normalised by their black and white levels; normalisation= does not apply")
    try:
        import rawpy
    except ImportError as exc:  # pragma: no cover - rawpy is a dependency
        raise BackendUnavailableError(f"reading raw camera files needs rawpy ({exc}); pip install rawpy") from exc
    messages: list[str] = []
    try:
        with _c_stderr_kept(messages), rawpy.imread(str(path)) as raw:
            image = np.array(raw.raw_image_visible, copy=True)
            raw_pattern = None if raw.raw_pattern is None else np.array(raw.raw_pattern, copy=True)
            colors = np.array(raw.raw_colors_visible, copy=True)
            color_desc = bytes(raw.color_desc)
            num_colors = int(raw.num_colors)
            black = [float(v) for v in raw.black_level_per_channel]
            white = float(raw.white_level)
    except Exception as exc:
        raise DataFileError(
            f"{path}: not a readable raw camera file ({exc.__class__.__name__}: {exc}); it may be truncated or unsupported"
        ) from exc
    if messages:  # LibRaw reports a short or corrupt image on stderr and goes on with what it could read
        said = "; ".join(dict.fromkeys(line.replace(f"{path}: ", "").strip() for line in messages))
        raise DataFileError(f"{path}: damaged raw camera file (LibRaw: {said}); it may be truncated")
    if image.ndim != 2 or min(image.shape) < 1:
        raise DataFileError(f"{path}: raw image has shape {image.shape}; expected a 2-D sensor frame")
    bayer = _cfa_pattern(raw_pattern, color_desc, num_colors, path)
    if len(black) >= 4 and colors.shape == image.shape and int(colors.max(initial=0)) < len(black):
        black_map = np.asarray(black, dtype=np.float64)[colors]
    else:
        black_map = np.full(image.shape, black[0] if black else 0.0)
    black_high = float(black_map.max()) if black_map.size else 0.0
    if not white > black_high:
        raise DataFileError(f"{path}: white level {white:g} is not above the black level {black_high:g}")
    meas = ((image.astype(np.float64) - black_map) / (white - black_map)).astype(np.float32)[None]
    hw = (int(image.shape[0]), int(image.shape[1]))
    notes = list(source.notes)
    notes.append(f"one raw frame = one snapshot; black levels {black[:4]} per CFA channel, white level {white:g}")
    notes.append("values are relative to the sensor's full scale: y = 1 is a saturated pixel")
    B = req.B
    help_text = f"{path}: a raw frame is one snapshot of B coded frames; pass B= (--B) and the mask file (--mask / mask=)"
    masks = None
    mask_source = None
    if req.mask is not None:
        if B is None:
            raise ConfigError(f"{path}: a raw frame does not record how many patterns it integrated; pass B= (--B) with the mask")
        masks, mask_source = _external_masks(req, path, hw, B)
    elif req.require_mask:
        raise MaskRequiredError(help_text)
    if bayer is not None:
        _bayer_even(path, hw, "raw-frame")
    return Capture(
        meas=meas,
        masks=masks,
        B=B,
        bayer=bayer,
        layout="raw-frame",
        normalisation=f"(raw − black)/(white − black), black per CFA channel {black[:4]}, white {white:g}",
        source=path,
        raw_range=_value_range(image),
        raw_dtype=str(image.dtype),
        notes=notes,
        mask_source=mask_source,
        variables={"raw_image_visible": (tuple(image.shape), str(image.dtype))},
        mask_help=None if masks is not None else help_text,
    )


# --- detection predicates ------------------------------------------------------------------------


def _is_dataset(s: Container) -> bool:
    return s.is_snapcap_dataset


def _is_snapcap_meas(s: Container) -> bool:
    return s.is_snapcap_measurements


def _is_raw(s: Container) -> bool:
    return s.kind == "raw"


def _is_midscale(s: Container) -> bool:
    return s.kind in VARIABLE_KINDS and {"meas_bayer", "mask_bayer", "orig_bayer"} <= s.keys


def _is_gray_benchmark(s: Container) -> bool:
    return s.kind in VARIABLE_KINDS and {"orig", "mask", "meas"} <= s.keys and not any(k.endswith("_bayer") for k in s.keys)


def _is_bayer_real(s: Container) -> bool:
    if s.kind not in VARIABLE_KINDS or "orig" in s.keys or "orig_bayer" in s.keys:
        return False
    has_meas = bool({"meas_bayer", "meas"} & s.keys)
    has_bayer_name = bool({"meas_bayer", "mask_bayer"} & s.keys)
    return has_meas and has_bayer_name


def _is_qiao(s: Container) -> bool:
    if s.kind not in VARIABLE_KINDS or s.keys != {"meas"}:
        return False
    return len(s.variables["meas"][0]) in (2, 3)


@dataclass(frozen=True)
class Layout:
    """One capture layout: how it is recognised, oriented, normalised, and where its masks are.

    Attributes:
        name: the layout's name (``layout=`` and ``Capture.layout``).
        description: what produces such files.
        detect: the detection rule, in words (``matches`` implements it).
        orientation: how the stored axes map to snapcap's ``(N, H, W)`` / ``(B, H, W)``.
        normalisation: the formula from stored values to model units.
        mask: where the coding masks come from.
        bayer: the CFA pattern of the sensor, when the layout fixes one.
        matches: the detection predicate on the file's container and variables.
        read: the reader.
    """

    name: str
    description: str
    detect: str
    orientation: str
    normalisation: str
    mask: str
    bayer: str | None
    matches: Callable[[Container], bool]
    read: Callable[[Container, _Request], Capture]

    def summary(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("name", "description", "detect", "orientation", "normalisation", "mask", "bayer")}


LAYOUTS: tuple[Layout, ...] = (
    Layout(
        name="snapcap-dataset",
        description="snapcap's own measurement datasets (snapcap dataset make)",
        detect="HDF5 with attribute format='snapcap-dataset'",
        orientation="meas (N, T, H, W): one sample's T snapshots (sample=, default 0)",
        normalisation="as stored: simulated y = Σ_k C_k·x_k with frames/255",
        mask="the file's 'masks' (shared (B, H, W) or the sample's row)",
        bayer="the file's 'bayer' attribute",
        matches=_is_dataset,
        read=_read_snapcap_dataset,
    ),
    Layout(
        name="snapcap-meas",
        description="snapcap's own measurement files (snapcap simulate)",
        detect="format='snapcap-measurements' (.npz array or HDF5 attribute)",
        orientation="meas (N, T, H, W) flattened to (N·T, H, W)",
        normalisation="as stored: simulated y = Σ_k C_k·x_k",
        mask="the file's 'masks' ((B, H, W), or per video repeated per snapshot)",
        bayer="the record's 'bayer'",
        matches=_is_snapcap_meas,
        read=_read_snapcap_meas,
    ),
    Layout(
        name="raw-frame",
        description="one raw camera frame (.dng, .cr2, .nef, .arw... read with rawpy/LibRaw)",
        detect="TIFF/DNG content or a raw-camera suffix",
        orientation="raw_image_visible (H, W) -> one snapshot (1, H, W)",
        normalisation="(raw − black)/(white − black), black per CFA channel (black_level_per_channel), white_level",
        mask="mask= with B= (a raw frame records neither)",
        bayer="from raw_pattern / color_desc (None for a monochrome sensor)",
        matches=_is_raw,
        read=_read_raw,
    ),
    Layout(
        name="bayer-midscale",
        description="mid-scale colour benchmark of PnP-SCI (Beauty, Bosphorus, Jockey, Runner, ShakeNDry, Traffic), MATLAB v7.3",
        detect="keys meas_bayer (512×512[×N]), mask_bayer (512×512×8), orig_bayer (512×512×8N) [+ orig 512×512×3×8N]",
        orientation="H×W×N -> (N, H, W); mask H×W×B -> (B, H, W); orig H×W×3×F -> (N, B, H, W, 3)",
        normalisation="meas_bayer/255 (the loader's MAXB = 255), checked against Σ mask_bayer·orig_bayer",
        mask="the file's 'mask_bayer'",
        bayer="RGGB",
        matches=_is_midscale,
        read=_read_midscale,
    ),
    Layout(
        name="gray-benchmark",
        description="grayscale SCI simulation benchmark (kobe, traffic, runner, drop, crash, aerial *_cacti.mat)",
        detect="keys orig (H×W×F), mask (H×W×B), meas (H×W×N), no *_bayer keys",
        orientation="H×W×N -> (N, H, W); mask -> (B, H, W); orig -> truth (K, B, H, W)/255 for the covered snapshots",
        normalisation="meas/255 (meas = Σ mask·orig in 8-bit units; checked)",
        mask="the file's 'mask'",
        bayer=None,
        matches=_is_gray_benchmark,
        read=_read_gray_benchmark,
    ),
    Layout(
        name="bayer-real",
        description="real colour Bayer captures (Hammer, Ball Rotate style: meas_bayer + mask, 512×512, RGGB)",
        detect="meas_bayer or mask_bayer present, with meas_bayer/meas and mask_bayer/mask, and no orig/orig_bayer",
        orientation="H×W×N -> (N, H, W); mask H×W×B -> (B, H, W)",
        normalisation="meas/255·B/2 when the snapshots are 8-bit integers (0..255); any other range needs normalisation=",
        mask="the file's 'mask_bayer' or 'mask' (B from its frames), or mask=",
        bayer="RGGB",
        matches=_is_bayer_real,
        read=_read_bayer_real,
    ),
    Layout(
        name="qiao2020-dmd",
        description="real grayscale DMD captures of Qiao, Meng, Ma & Yuan, APL Photonics 2020 (meas_<scene>_cr_<B>.mat)",
        detect=(
            "the single key meas, H×W×N or H×W (512×512 in the published files; other sizes get a note); "
            "its values must be 8-bit integers"
        ),
        orientation="H×W×N -> (N, H, W); the scene stays rotated ~45° (DMD geometry)",
        normalisation="meas/255·B/2 with B = cr from the file name (the reference loaders' meas/255*cr/2)",
        mask="a separate real_mask.mat (key 'mask', 512×512×≥B, first B frames) given as mask=",
        bayer=None,
        matches=_is_qiao,
        read=_read_qiao,
    ),
)
"""The capture layouts, in detection order (the first whose ``matches`` holds reads the file)."""

LAYOUT_NAMES: tuple[str, ...] = tuple(layout.name for layout in LAYOUTS)


def _layout_by_name(name: str) -> Layout:
    for layout in LAYOUTS:
        if layout.name == name:
            return layout
    raise ConfigError(f"unknown capture layout {name!r}; expected one of {', '.join(LAYOUT_NAMES)}")


def _unknown(source: Container) -> UnknownLayoutError:
    hint = ""
    keys = source.keys
    if {"meas", "mask"} <= keys and "orig" not in keys:
        hint = (
            "; 'meas' + 'mask' without 'orig' or *_bayer keys could be a grayscale or a colour capture whose "
            "normalisation is not recorded: pass layout='bayer-real' with normalisation= for a colour capture"
        )
    elif keys and keys <= {"mask", "masks", "mask_bayer", "Phi", "phi", "C"}:
        hint = "; it holds only masks: pass it as the mask file (mask= / --mask) of a capture"
    elif source.kind == "hdf5":
        hint = f"; the HDF5 attribute format={source.h5_format!r} is not a snapcap format and the file has no MATLAB header"
    return UnknownLayoutError(
        f"{source.path}: no known capture layout matches this {source.format_name} file, which holds {source.listing()}{hint}. "
        f"Known layouts: {', '.join(LAYOUT_NAMES)} (snapcap.hardware.LAYOUTS describes them); force one with layout="
    )


def detect_layout(path: str | Path) -> str:
    """The name of the layout :func:`load_capture` would use for ``path``."""
    path = _check_path(path)
    source = open_container(path)
    for layout in LAYOUTS:
        if layout.matches(source):
            return layout.name
    raise _unknown(source)


def _check_path(path: str | Path) -> Path:
    if not isinstance(path, (str, Path)):
        raise ConfigError(f"path must be a file path, got {type(path).__name__}")
    path = Path(path)
    if not path.exists():
        raise DataFileError(f"{path}: no such file")
    if not path.is_file():
        raise DataFileError(f"{path}: not a regular file")
    return path


def _sample_rows(sample: Any) -> list[int]:
    values = list(sample) if isinstance(sample, (list, tuple, range, np.ndarray)) else [sample]
    if not values:
        raise ConfigError("sample= selects no samples")
    rows = []
    for value in values:
        try:
            whole = not isinstance(value, bool) and int(value) == value and value >= 0
        except (TypeError, ValueError):
            whole = False
        if not whole:
            raise ConfigError(f"sample must be a non-negative integer or a sequence of them, got {sample!r}")
        rows.append(int(value))
    return rows


def load_capture(
    path: str | Path,
    mask: str | Path | np.ndarray | None = None,
    mask_key: str | None = None,
    layout: str | None = None,
    B: int | None = None,
    sample: int | Sequence[int] = 0,
    normalisation: str | Normalisation | None = None,
    require_mask: bool = True,
) -> Capture:
    """Read a real (or emulated) CACTI capture and normalise it for the forward model.

    The layout is detected from the container, keys, shapes and file name (see :data:`LAYOUTS`
    and the module doc); every layout states how stored values become model units
    ``y = Σ_k C_k ⊙ x_k`` (frames and masks in [0, 1]) and refuses values that do not fit.

    Args:
        path: .mat (v5 / v7.3), .npz / .npy, snapcap .npz / .h5 files, or a raw camera frame.
        mask: coding masks for captures that do not hold them (Qiao et al.: real_mask.mat; raw
            frames), or to replace the file's own: a mask file (.mat H×W×B, .npy/.npz/.h5
            B×H×W; see :func:`snapcap.cacti.masks.load_masks`) or a ``(B, H, W)`` array.
        mask_key: the variable of the mask file (default: the first of mask, masks, mask_bayer...).
        layout: force a layout by name instead of detecting it.
        B: frames per snapshot, when the file does not say it (raw frames, Qiao files renamed
            without ``_cr_NN``); the first B masks of a larger mask file are used.
        sample: the sample of a snapcap dataset file, or a sequence of samples: their
            snapshots are then flattened in order, ``(K·T, H, W)``, with per-sample masks
            repeated per snapshot (other files hold one sample and ignore it).
        normalisation: override the layout's normalisation (:func:`parse_normalisation`).
        require_mask: with False, a capture whose masks are missing is still returned (masks
            None, the reason in ``notes`` and ``mask_help``), as ``snapcap capture info`` does.

    Returns:
        :class:`Capture`.

    Raises:
        DataFileError: missing, unreadable or truncated files (MissingKeyError for a missing
            variable, UnknownLayoutError when no layout matches, MaskRequiredError when the
            masks are needed and missing).
        ShapeError, InvalidValueError, ConfigError: masks of the wrong B or size, NaN, values
            that do not fit the layout, bad arguments.
    """
    path = _check_path(path)
    if B is not None and (isinstance(B, bool) or int(B) != B or B < 1):
        raise ConfigError(f"B must be a positive integer, got {B!r}")
    request = _Request(
        mask=mask,
        mask_key=mask_key,
        B=None if B is None else int(B),
        samples=_sample_rows(sample),
        normalisation=parse_normalisation(normalisation),
        require_mask=bool(require_mask),
    )
    try:
        source = open_container(path)
        if layout is not None:
            chosen = _layout_by_name(layout)
            if chosen.name in ("snapcap-dataset", "snapcap-meas", "raw-frame") and not chosen.matches(source):
                raise DataFileError(
                    f"{path}: layout {chosen.name} was asked for but this is a {source.format_name} file "
                    f"holding {source.listing()}"
                )
            if chosen.name not in ("snapcap-dataset", "snapcap-meas", "raw-frame") and source.kind not in VARIABLE_KINDS:
                raise DataFileError(
                    f"{path}: layout {chosen.name} reads MATLAB/numpy variables but this is a {source.format_name} file"
                )
        else:
            chosen = next((entry for entry in LAYOUTS if entry.matches(source)), None)
            if chosen is None:
                raise _unknown(source)
        with np.errstate(over="ignore", invalid="ignore"):  # values too large for float32 become inf, refused next
            capture = chosen.read(source, request)
        if not np.all(np.isfinite(capture.meas)):
            raise InvalidValueError(
                f"{path}: the snapshots hold values that are not finite in float32 after {capture.normalisation}; "
                "the file is damaged or not in the units its layout states"
            )
        if not capture.labels:
            capture.labels = [f"{path.stem}#{index}" for index in range(capture.num_snapshots)]
        return capture
    except SnapcapError:
        raise
    except MemoryError as exc:
        raise DataFileError(f"{path}: the arrays it announces do not fit in memory; the file is probably damaged") from exc
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        # A damaged file can fail inside numpy/scipy/h5py where no reader wraps it.
        raise DataFileError(
            f"{path}: cannot be read as a capture ({exc.__class__.__name__}: {exc}); it may be truncated or damaged"
        ) from exc


def layouts_table() -> str:
    """The layout table as text (name, detection, normalisation, masks)."""
    lines = []
    for entry in LAYOUTS:
        lines.append(f"{entry.name}: {entry.description}")
        lines.append(f"    detect:        {entry.detect}")
        lines.append(f"    orientation:   {entry.orientation}")
        lines.append(f"    normalisation: {entry.normalisation}")
        lines.append(f"    masks:         {entry.mask}")
        lines.append(f"    bayer:         {entry.bayer}")
    return "\n".join(lines)
