"""The mask library: how real CACTI systems code their frames.

Every generator returns float32 masks ``(B, H, W)`` on the host, drawn from a
``numpy.random.Generator`` seeded by the ``seed`` argument, so a :class:`MaskSpec` (kind, size,
seed, parameters) recreates the masks bit for bit. Loaders read .mat (v5 and v7.3), .npy/.npz and
.h5 files and always return ``(B, H, W)``: MATLAB files store H x W x B and are transposed.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from snapcap.errors import ConfigError, DataFileError, InvalidValueError, MissingKeyError, ShapeError
from snapcap.files import read_npy
from snapcap.matfile import check_hdf5_layout, list_mat_variables, load_mat

__all__ = [
    "random_binary",
    "shifting",
    "shifting_roll",
    "gray",
    "dmd",
    "long_exposure",
    "single_frame",
    "pixel_overlap",
    "load_masks",
    "MaskSpec",
    "make_masks",
    "MASK_KINDS",
    "MASK_KEYS",
    "MASK_FILE_SUFFIXES",
]

MASK_FILE_SUFFIXES = (".mat", ".npy", ".npz", ".h5", ".hdf5")
"""Suffixes :func:`load_masks` reads."""

MASK_KEYS = ("mask", "masks", "mask_bayer", "Phi", "phi", "C")


def _check_size(B: int, H: int, W: int) -> None:
    for name, value in (("B", B), ("H", H), ("W", W)):
        if int(value) != value or value < 1:
            raise InvalidValueError(f"{name} must be a positive integer, got {value!r}")


def _check_duty(duty: float) -> None:
    if not 0.0 <= duty <= 1.0:
        raise InvalidValueError(f"duty must be in [0, 1] (the fraction of open pixels), got {duty!r}")


def random_binary(B: int, H: int, W: int, duty: float = 0.5, seed: int = 0) -> np.ndarray:
    """I.i.d. binary masks: C_k(i, j) = 1 with probability ``duty``, else 0."""
    _check_size(B, H, W)
    _check_duty(duty)
    rng = np.random.default_rng(seed)
    return (rng.random((B, H, W)) < duty).astype(np.float32)


def shifting(
    B: int,
    H: int,
    W: int,
    duty: float = 0.5,
    seed: int = 0,
    step: int = 1,
    axis: int = -1,
    boundary: str = "enter",
) -> np.ndarray:
    """One random binary pattern translated by a piezo stage, ``step`` pixels per frame.

    Frame k shows the pattern moved by k·step pixels along ``axis`` (-1: columns, -2: rows).

    Args:
        boundary: ``"enter"``: a larger physical mask slides past the sensor, so new
            columns enter at the trailing edge (C_k[:, j] = C_0[:, j − k·step] where defined);
            the public grayscale benchmark files (drop, runner, kobe...) use this with step +1.
            ``"roll"``: a circular shift (C_k = roll(C_0, k·step)); the mask.mat of the deep-net
            repositories (BIRNAT, STFormer...) uses this with step −1.
    """
    _check_size(B, H, W)
    _check_duty(duty)
    if axis not in (-1, -2):
        raise InvalidValueError(f"axis must be -1 (columns) or -2 (rows), got {axis!r}")
    if boundary not in ("enter", "roll"):
        raise ConfigError(f"boundary must be 'enter' or 'roll', got {boundary!r}")
    rng = np.random.default_rng(seed)
    span = abs(int(step)) * (B - 1)
    if boundary == "roll":
        base = (rng.random((H, W)) < duty).astype(np.float32)
        return np.stack([np.roll(base, k * int(step), axis=axis) for k in range(B)])
    size = (H, W + span) if axis == -1 else (H + span, W)
    base = (rng.random(size) < duty).astype(np.float32)
    frames = []
    for k in range(B):
        start = (B - 1 - k) * step if step >= 0 else k * -step
        window = slice(start, start + (W if axis == -1 else H))
        frames.append(base[:, window] if axis == -1 else base[window, :])
    return np.stack(frames)


def gray(
    B: int,
    H: int,
    W: int,
    low: float = 0.0,
    high: float = 1.0,
    levels: int | None = None,
    seed: int = 0,
) -> np.ndarray:
    """Gray-valued masks, uniform in [low, high], optionally quantised to ``levels`` values."""
    _check_size(B, H, W)
    if not 0.0 <= low <= high:
        raise InvalidValueError(f"need 0 <= low <= high, got low={low!r}, high={high!r}")
    rng = np.random.default_rng(seed)
    values = rng.random((B, H, W))
    if levels is not None:
        if int(levels) != levels or levels < 2:
            raise InvalidValueError(f"levels must be an integer >= 2, got {levels!r}")
        values = np.floor(values * levels).clip(0, levels - 1) / (levels - 1)
    return (low + (high - low) * values).astype(np.float32)


def long_exposure(B: int, H: int, W: int, seed: int = 0) -> np.ndarray:
    """The camera control without coding: every mask all ones, so Y = Σ_k X_k (the plain sum of the
    frames, a long exposure). It keeps a motion's streak but not its sense: a video and its
    time-reversal give the same snapshot. ``seed`` is accepted (every kind takes one) and unused."""
    _check_size(B, H, W)
    return np.ones((B, H, W), dtype=np.float32)


def single_frame(B: int, H: int, W: int, frame: int | None = None, seed: int = 0) -> np.ndarray:
    """The camera control of a plain short exposure: one uncoded frame per snapshot time.

    Mask ``frame`` (default the middle one, ``B // 2``) is all ones and every other mask zero, so
    Y = X_frame. ``seed`` is accepted and unused."""
    _check_size(B, H, W)
    frame = B // 2 if frame is None else frame
    if isinstance(frame, bool) or int(frame) != frame or not 0 <= int(frame) < B:
        raise InvalidValueError(f"frame must be an integer in 0..{B - 1}, got {frame!r}")
    masks = np.zeros((B, H, W), dtype=np.float32)
    masks[int(frame)] = 1.0
    return masks


def pixel_overlap(n_pixels: int, pixel_pitch: float, n_cells: int, cell_pitch: float, offset: float = 0.0) -> np.ndarray:
    """Fraction of each sensor pixel covered by each pattern cell, along one axis.

    Pixel i spans [i·p, (i+1)·p); cell j spans [offset + j·c, offset + (j+1)·c) (same units).
    Returns R of shape (n_pixels, n_cells) with R[i, j] = |pixel_i ∩ cell_j| / p, so a pattern P
    seen through the optics gives the sensor mask R_y P R_xᵀ (area-weighted, light conserving).
    """
    if pixel_pitch <= 0 or cell_pitch <= 0:
        raise InvalidValueError(f"pitches must be positive, got pixel_pitch={pixel_pitch!r}, cell_pitch={cell_pitch!r}")
    pix_lo = np.arange(n_pixels)[:, None] * pixel_pitch
    cell_lo = offset + np.arange(n_cells)[None, :] * cell_pitch
    overlap = np.minimum(pix_lo + pixel_pitch, cell_lo + cell_pitch) - np.maximum(pix_lo, cell_lo)
    return np.clip(overlap, 0.0, None) / pixel_pitch


def dmd(
    B: int,
    H: int,
    W: int,
    duty: float = 0.5,
    seed: int = 0,
    patterns: np.ndarray | None = None,
    mirror_pitch: float = 7.56,
    pixel_pitch: float = 3.45,
    binning: int = 1,
    magnification: float = 1.0,
    offset: tuple[float, float] = (0.0, 0.0),
) -> np.ndarray:
    """DMD pattern sequences at the DMD's own resolution, mapped onto the sensor pixels.

    Each pattern cell is a ``binning`` x ``binning`` block of mirrors, imaged onto the sensor
    with ``magnification``: a cell is ``mirror_pitch·binning·magnification`` wide on the sensor
    (µm), a pixel ``pixel_pitch``. Each sensor pixel sees the area-weighted mean of the cells it
    covers (:func:`pixel_overlap`), so the sensor masks are gray wherever cells and pixels do not
    line up, and exactly binary when a cell covers a whole number of pixels with aligned edges.

    Args:
        patterns: ``(B, Hd, Wd)`` binary DMD patterns at cell resolution; drawn i.i.d. with
            ``duty`` from ``seed`` when None, just large enough to cover the sensor.
        offset: (dy, dx) position of the pattern on the sensor, in µm.
    """
    _check_size(B, H, W)
    if int(binning) != binning or binning < 1:
        raise InvalidValueError(f"binning must be a positive integer, got {binning!r}")
    if magnification <= 0:
        raise InvalidValueError(f"magnification must be positive, got {magnification!r}")
    cell = float(mirror_pitch) * int(binning) * float(magnification)
    if patterns is None:
        _check_duty(duty)
        rows = int(np.ceil((H * pixel_pitch - offset[0]) / cell)) + 1
        cols = int(np.ceil((W * pixel_pitch - offset[1]) / cell)) + 1
        rng = np.random.default_rng(seed)
        patterns = (rng.random((B, max(rows, 1), max(cols, 1))) < duty).astype(np.float64)
    else:
        patterns = np.asarray(patterns, dtype=np.float64)
        if patterns.ndim != 3 or patterns.shape[0] != B:
            raise ShapeError(f"patterns must have shape (B={B}, Hd, Wd), got {patterns.shape}")
    ry = pixel_overlap(H, pixel_pitch, patterns.shape[1], cell, offset[0])
    rx = pixel_overlap(W, pixel_pitch, patterns.shape[2], cell, offset[1])
    return np.einsum("ia,bac,jc->bij", ry, patterns, rx).astype(np.float32)


# --- loading --------------------------------------------------------------------------------


def _pick_key(path: Path, available: dict[str, Any], key: str | None) -> str:
    if key is not None:
        if key not in available:
            listing = ", ".join(f"{k} {v}" for k, v in available.items()) or "nothing"
            raise MissingKeyError(f"{path}: no mask variable {key!r}; the file holds {listing}")
        return key
    for candidate in MASK_KEYS:
        if candidate in available:
            return candidate
    listing = ", ".join(f"{k} {v}" for k, v in available.items()) or "nothing"
    raise MissingKeyError(f"{path}: no mask variable (looked for {', '.join(MASK_KEYS)}); the file holds {listing}; pass key=")


def load_masks(path: str | Path, key: str | None = None, B: int | None = None, layout: str | None = None) -> np.ndarray:
    """Read masks from a file and return float32 ``(B, H, W)``.

    Args:
        path: .mat (v5 or v7.3: H x W x B, transposed here), .npy / .npz / .h5 / .hdf5
            (snapcap's B x H x W unless ``layout="HWB"``).
        key: variable or dataset name; by default the first of :data:`MASK_KEYS` found.
        B: keep the first B masks (files often hold more, e.g. real_mask.mat with >= 50);
            fewer than B raises :class:`ShapeError`.
        layout: "BHW" or "HWB" to override the file type's convention.
    """
    path = Path(path)
    if not path.exists():
        raise DataFileError(f"{path}: no such mask file")
    suffix = path.suffix.lower()
    if layout is not None and layout.upper() not in ("BHW", "HWB"):
        raise ConfigError(f"layout must be 'BHW' or 'HWB', got {layout!r}")
    if suffix == ".mat":
        found = list_mat_variables(path)
        name = _pick_key(path, {k: v[0] for k, v in found.items()}, key)
        array = load_mat(path, [name])[name]
        default_layout = "HWB"
    elif suffix == ".npy":
        array = read_npy(path)
        name = "(array)"
        default_layout = "BHW"
    elif suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as data:
                name = _pick_key(path, {k: data[k].shape for k in data.files}, key)
                array = data[name]
        except DataFileError:
            raise
        except Exception as exc:
            raise DataFileError(f"{path}: not a readable .npz file ({exc.__class__.__name__}: {exc})") from exc
        default_layout = "BHW"
    elif suffix in (".h5", ".hdf5"):
        import h5py

        try:
            with h5py.File(path, "r") as handle:
                found = {k: v.shape for k, v in handle.items() if isinstance(v, h5py.Dataset)}
                name = _pick_key(path, found, key)
                check_hdf5_layout(handle[name], f"{path}: mask {name!r}")
                array = handle[name][()]
        except DataFileError:
            raise
        except Exception as exc:
            raise DataFileError(f"{path}: not a readable HDF5 file ({exc.__class__.__name__}: {exc})") from exc
        default_layout = "BHW"
    else:
        raise DataFileError(f"{path}: unknown mask file type {suffix!r}; expected one of {', '.join(MASK_FILE_SUFFIXES)}")
    array = np.asarray(array)
    if array.dtype.kind not in "biuf":
        raise DataFileError(f"{path}: mask {name!r} has dtype {array.dtype}; expected a numeric array")
    if array.ndim == 2:
        array = array[None] if (layout or default_layout).upper() == "BHW" else array[:, :, None]
    if array.ndim != 3:
        raise ShapeError(
            f"{path}: mask {name!r} has shape {array.shape}; expected 3 axes (H x W x B in .mat, B x H x W otherwise)"
        )
    if array.size == 0:
        raise ShapeError(f"{path}: mask {name!r} is empty (shape {array.shape}); expected at least one H x W mask")
    if (layout or default_layout).upper() == "HWB":
        array = np.transpose(array, (2, 0, 1))
    if B is not None:
        if array.shape[0] < B:
            raise ShapeError(f"{path}: mask {name!r} holds {array.shape[0]} frames; B={B} were asked for")
        array = array[:B]
    with np.errstate(over="ignore", invalid="ignore"):  # values too large for float32 become inf, refused next
        masks = np.ascontiguousarray(array, dtype=np.float32)
    if not np.all(np.isfinite(masks)):
        raise InvalidValueError(f"{path}: mask {name!r} holds NaN or infinite values")
    if masks.min() < 0 or masks.max() > 1:
        raise InvalidValueError(
            f"{path}: mask {name!r} has values in [{masks.min():g}, {masks.max():g}]; expected transmissions in [0, 1] "
            "(divide 8-bit masks by 255 before saving)"
        )
    return masks


# --- specifications -------------------------------------------------------------------------


def shifting_roll(B: int, H: int, W: int, duty: float = 0.5, seed: int = 0, step: int = -1) -> np.ndarray:
    """:func:`shifting` with a circular shift (``boundary="roll"``), by default one pixel left per frame."""
    return shifting(B, H, W, duty=duty, seed=seed, step=step, boundary="roll")


MASK_KINDS: dict[str, Callable[..., np.ndarray]] = {
    "random": random_binary,
    "shifting": shifting,
    "shifting-roll": shifting_roll,
    "gray": gray,
    "dmd": dmd,
    "long-exposure": long_exposure,
    "single-frame": single_frame,
}
"""Mask kind -> factory ``(B, H, W, seed=..., **params) -> (B, H, W)``: the one registry of
generated masks (every command's ``--mask`` reads it)."""


@dataclass(frozen=True)
class MaskSpec:
    """Everything needed to recreate a set of masks: kind, size, seed and parameters.

    ``kind`` is one of :data:`MASK_KINDS` or ``"file"`` (then ``params`` holds ``path``, ``key``).
    """

    kind: str
    B: int
    H: int
    W: int
    seed: int = 0
    params: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self)))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MaskSpec:
        try:
            return cls(
                kind=data["kind"],
                B=int(data["B"]),
                H=int(data["H"]),
                W=int(data["W"]),
                seed=int(data.get("seed", 0)),
                params=dict(data.get("params", {})),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"mask spec {data!r} lacks or mistypes {exc}; expected kind, B, H, W, seed, params") from exc


def make_masks(spec: MaskSpec) -> np.ndarray:
    """The masks a :class:`MaskSpec` describes, float32 ``(B, H, W)``."""
    if spec.kind == "file":
        masks = load_masks(spec.params["path"], key=spec.params.get("key"), B=spec.B)
        if masks.shape[1:] != (spec.H, spec.W):
            raise ShapeError(f"{spec.params['path']}: masks are {masks.shape[1]}x{masks.shape[2]}, expected {spec.H}x{spec.W}")
        return masks
    try:
        factory = MASK_KINDS[spec.kind]
    except KeyError:
        raise ConfigError(f"unknown mask kind {spec.kind!r}; expected one of {', '.join(MASK_KINDS)} or 'file'") from None
    try:
        return factory(spec.B, spec.H, spec.W, seed=spec.seed, **spec.params)
    except TypeError as exc:
        raise ConfigError(f"mask kind {spec.kind!r} does not take parameters {spec.params}: {exc}") from exc
