"""An emulated CACTI camera with the non-idealities of real rigs, and writers of real file layouts.

A real rig never codes with the nominal masks ``N_k`` its designers drew. What the sensor sees in
sub-exposure k is the *effective* mask

.. math::

    C_k = \\rho \\, g \\, \\big[(1-\\delta)\\, \\tilde N_k + \\delta\\, \\tilde N_{k+1}\\big],
    \\qquad \\tilde N_k = \\mathcal{A}\\big(G_\\sigma * \\mathcal{W}_{dx,dy,\\theta}\\, P_k\\big),

where ``P_k`` is the pattern (DMD mirror cells, or a lithography mask translated by a piezo) in
the sensor plane at a finer grid, ``W`` the misregistration (rotation ``θ`` about the sensor
centre, then a shift ``(dx, dy)`` in pixels), ``G_σ`` the optical blur of the mask image
(Gaussian PSF, σ in pixels), ``A`` the area average over each sensor pixel, ``δ`` the clock
offset between the pattern sequence and the exposure (a fraction of a pattern period: the
window of sub-exposure k overlaps pattern k+1 by δ), ``ρ`` the shutter duty cycle (the fraction
of each sub-exposure actually integrated) and ``g`` the gain. Pattern ``B`` (after the last) is
``P_0`` when the sequence loops (``clock_wrap="wrap"``, a DMD cycling its sequence) or ``P_{B-1}``
when the last pattern stays up (``"hold"``).

:class:`Rig` computes these masks (:meth:`Rig.effective_masks`), captures videos through them
with snapcap's sensor noise models and an ADC (:meth:`Rig.capture`), and records the
calibration sequence a lab would take (:meth:`Rig.calibration_sequence`). :func:`write_capture`
writes what it captures in the real file layouts of :mod:`snapcap.hardware.captures`, so the
driver and the emulator meet in round trips.
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import scipy.io
from scipy import ndimage

from snapcap.cacti import masks as masklib
from snapcap.cacti.bayer import mosaic, normalize_pattern
from snapcap.cacti.noise import ADC, Compose, NoNoise, parse_noise
from snapcap.cacti.operator import CactiOperator
from snapcap.errors import BackendUnavailableError, ConfigError, DTypeError, InvalidValueError, ShapeError
from snapcap.fileio import atomic_write
from snapcap.hardware.captures import b_from_name

__all__ = [
    "Rig",
    "PatternPlane",
    "mix_clock",
    "WrittenCapture",
    "WRITE_LAYOUTS",
    "write_capture",
    "write_mask_file",
    "write_mat_v5",
    "write_mat_v73",
    "write_dng",
]

PATTERN_SOURCES = ("dmd", "piezo")
CLOCK_MODES = ("wrap", "hold")


# --------------------------------------------------------------------------------------------
# The pattern plane and its warp
# --------------------------------------------------------------------------------------------


class PatternPlane:
    """The pattern as imaged onto the sensor plane, sampled ``s`` times finer than the pixels.

    Fine sample ``p`` (along an axis) sits at ``(p + 0.5)/s`` pixels from the plane's origin; the
    plane extends ``margin`` pixels beyond the sensor on each side, so a misregistered pattern
    still covers the sensor with real pattern content.

    Args:
        fine: ``(B, s·(H + 2m), s·(W + 2m))`` pattern samples in [0, 1].
        H, W: the sensor size in pixels; s: supersampling; margin: m.
    """

    def __init__(self, fine: np.ndarray, H: int, W: int, supersample: int, margin: int):
        fine = np.asarray(fine, dtype=np.float32)
        s, m = int(supersample), int(margin)
        if fine.ndim != 3 or fine.shape[1:] != (s * (H + 2 * m), s * (W + 2 * m)):
            raise ShapeError(f"fine pattern must be (B, {s * (H + 2 * m)}, {s * (W + 2 * m)}), got {fine.shape}")
        self.fine = fine
        self.H, self.W, self.s, self.m = int(H), int(W), s, m

    @classmethod
    def from_masks(cls, masks: np.ndarray, supersample: int = 4) -> PatternPlane:
        """A plane from pixel masks ``(B, H, W)`` (each pixel a uniform square; no margin)."""
        masks = np.asarray(masks, dtype=np.float32)
        if masks.ndim != 3:
            raise ShapeError(f"masks must be (B, H, W), got {masks.shape}")
        s = int(supersample)
        fine = np.repeat(np.repeat(masks, s, axis=1), s, axis=2)
        return cls(fine, masks.shape[1], masks.shape[2], s, 0)

    @property
    def B(self) -> int:
        return int(self.fine.shape[0])

    def reach(self, dx: float, dy: float, rotation: float, blur: float) -> float:
        """How far (pixels) outside the sensor the warp samples the plane."""
        half_diag = math.hypot(self.H / 2.0, self.W / 2.0)
        return abs(dx) + abs(dy) + abs(math.sin(math.radians(rotation))) * half_diag + 4.0 * max(blur, 0.0) + 1.0

    def masks(
        self, dx: float = 0.0, dy: float = 0.0, rotation: float = 0.0, blur: float = 0.0, strict: bool = True
    ) -> np.ndarray:
        """Sensor masks ``(B, H, W)`` float64 of the pattern blurred, rotated and shifted.

        The mask image on the sensor is ``M(y) = (G_σ * P)(R_θ⁻¹ (y − c − d) + c)`` with ``c`` the
        sensor centre and ``d = (dy, dx)``; each pixel averages ``M`` over its area (s×s fine
        samples, bilinear interpolation between fine samples, so the masks vary continuously
        with the parameters).

        Args:
            dx, dy: shift of the mask image in pixels (+x right, +y down).
            rotation: degrees, positive counter-clockwise as displayed (rows down).
            blur: Gaussian PSF σ in pixels (0: none).
            strict: raise when the warp reaches beyond the plane's margin (otherwise edge
                values are repeated there).
        """

        if not all(math.isfinite(v) for v in (dx, dy, rotation, blur)) or blur < 0:
            raise InvalidValueError(
                f"warp parameters must be finite with blur >= 0, got dx={dx}, dy={dy}, rotation={rotation}, blur={blur}"
            )
        if strict and self.m > 0 and self.reach(dx, dy, rotation, blur) > self.m:
            raise InvalidValueError(
                f"the misregistration (dx={dx:g}, dy={dy:g}, rotation={rotation:g}°, blur={blur:g}) reaches "
                f"{self.reach(dx, dy, rotation, blur):.1f} px beyond the sensor; "
                f"the pattern plane's margin is {self.m} px (raise Rig.margin)"
            )
        s, m = self.s, self.m
        fine = self.fine
        if blur > 0:
            fine = ndimage.gaussian_filter(fine, sigma=(0.0, blur * s, blur * s), mode="nearest", truncate=4.0)
        theta = math.radians(rotation)
        cos, sin = math.cos(theta), math.sin(theta)
        inverse = np.array([[cos, sin], [-sin, cos]])  # R_θ⁻¹ on (row, col)
        centre = np.array([m + self.H / 2.0, m + self.W / 2.0])
        shift = np.array([dy, dx], dtype=np.float64)
        offset = inverse @ (0.5 + s * (m - centre - shift)) + s * centre - 0.5
        out = np.empty((self.B, s * self.H, s * self.W), dtype=np.float32)
        identity = rotation == 0.0 and dx == 0.0 and dy == 0.0
        for k in range(self.B):
            if identity:
                out[k] = fine[k, s * m : s * (m + self.H), s * m : s * (m + self.W)]
            else:
                ndimage.affine_transform(
                    fine[k], inverse, offset=offset, output_shape=out.shape[1:], order=1, mode="nearest", output=out[k]
                )
        return out.reshape(self.B, self.H, s, self.W, s).mean(axis=(2, 4), dtype=np.float64)


def mix_clock(masks: np.ndarray, offset: float, mode: str = "wrap") -> np.ndarray:
    """Clock offset between the pattern sequence and the exposure windows.

    ``C'_k = (1 − δ) C_k + δ C_{k+1}`` with ``C_B = C_0`` (``mode="wrap"``: the sequence loops)
    or ``C_B = C_{B−1}`` (``"hold"``: the last pattern stays displayed).
    """
    if mode not in CLOCK_MODES:
        raise ConfigError(f"clock mode must be one of {', '.join(CLOCK_MODES)}, got {mode!r}")
    if not 0.0 <= offset < 1.0:
        raise InvalidValueError(f"clock offset must be in [0, 1) (a fraction of a pattern period), got {offset!r}")
    if offset == 0:
        return np.asarray(masks, dtype=np.float64)
    masks = np.asarray(masks, dtype=np.float64)
    following = np.roll(masks, -1, axis=0) if mode == "wrap" else np.concatenate([masks[1:], masks[-1:]], axis=0)
    return (1.0 - offset) * masks + offset * following


@functools.lru_cache(maxsize=8)
def _plane_cached(key: tuple) -> PatternPlane:
    (source, B, H, W, fill, seed, mirror_pitch, pixel_pitch, binning, magnification, step, axis, s, m) = key

    Hp, Wp = H + 2 * m, W + 2 * m
    if source == "dmd":
        cell = mirror_pitch * binning * magnification
        rows = int(math.ceil(Hp * pixel_pitch / cell)) + 1
        cols = int(math.ceil(Wp * pixel_pitch / cell)) + 1
        rng = np.random.default_rng(seed)
        cells = (rng.random((B, rows, cols)) < fill).astype(np.float64)
        # masks.dmd's area-weighted cell-to-pixel overlap, here on the fine grid (pixel pitch / s),
        # contracted with two matrix products instead of one three-operand einsum
        ry = masklib.pixel_overlap(s * Hp, pixel_pitch / s, rows, cell)
        rx = masklib.pixel_overlap(s * Wp, pixel_pitch / s, cols, cell)
        fine = np.matmul(np.matmul(ry, cells), rx.T)
    else:
        base = masklib.shifting(B, Hp, Wp, duty=fill, seed=seed, step=step, axis=axis, boundary="enter")
        fine = np.repeat(np.repeat(base, s, axis=1), s, axis=2)
    plane = PatternPlane(fine, H, W, s, m)
    plane.fine.setflags(write=False)
    return plane


# --------------------------------------------------------------------------------------------
# The rig
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rig:
    """A real CACTI camera: pattern source, misregistration, optics, timing and sensor.

    Attributes:
        H, W, B: sensor size in pixels and patterns per exposure.
        source: ``"dmd"`` (a DMD pattern sequence relayed onto the sensor: cells of
            ``mirror_pitch·binning·magnification`` µm on pixels of ``pixel_pitch`` µm, via
            :func:`snapcap.cacti.masks.dmd`) or ``"piezo"`` (a lithography mask with pixel-sized
            features translated ``piezo_step`` pixels per pattern, :func:`snapcap.cacti.masks.shifting`).
        fill: fraction of open mirrors / mask features; seed: the pattern's seed.
        pattern_rate: patterns per second; the exposure lasts ``B / pattern_rate`` (recorded only).
        dx, dy: misregistration of the mask image on the sensor in pixels; rotation in degrees.
        blur: Gaussian PSF σ of the mask image, in pixels.
        duty_cycle: ρ, the fraction of each sub-exposure actually integrated (shutter), (0, 1].
        clock_offset: δ ∈ [0, 1), pattern-sequence vs exposure offset in pattern periods;
            clock_wrap: ``"wrap"`` or ``"hold"`` (what follows the last pattern, see :func:`mix_clock`).
        gain: g, the sensor's gain relative to nominal.
        bayer: the sensor's CFA pattern (RGB video is mosaicked) or None (gray sensor).
        noise: a noise spec for :func:`snapcap.cacti.noise.parse_noise` (e.g.
            ``"poisson:photons=4000+gaussian:sigma=0.002"``); adc_bits: the ADC's resolution
            (None: no quantisation).
        full_scale: measurement value at the sensor's full scale (default: the brightest
            possible snapshot, max Σ_k C_k).
        supersample: fine samples per pixel for the warp; margin: pixels of pattern beyond the
            sensor on each side.
    """

    H: int = 128
    W: int = 128
    B: int = 8
    source: str = "dmd"
    fill: float = 0.5
    seed: int = 0
    mirror_pitch: float = 7.56
    pixel_pitch: float = 3.45
    binning: int = 1
    magnification: float = 1.0
    pattern_rate: float = 2000.0
    piezo_step: int = 1
    piezo_axis: int = -1
    dx: float = 0.0
    dy: float = 0.0
    rotation: float = 0.0
    blur: float = 0.0
    duty_cycle: float = 1.0
    clock_offset: float = 0.0
    clock_wrap: str = "wrap"
    gain: float = 1.0
    bayer: str | None = None
    noise: str = "none"
    adc_bits: int | None = None
    full_scale: float | None = None
    supersample: int = 4
    margin: int = 8

    def __post_init__(self) -> None:

        for name in ("H", "W", "B", "supersample", "binning"):
            value = getattr(self, name)
            if isinstance(value, bool) or int(value) != value or value < 1:
                raise InvalidValueError(f"Rig.{name} must be a positive integer, got {value!r}")
        if isinstance(self.margin, bool) or int(self.margin) != self.margin or self.margin < 0:
            raise InvalidValueError(f"Rig.margin must be a non-negative integer, got {self.margin!r}")
        if self.source not in PATTERN_SOURCES:
            raise ConfigError(f"Rig.source must be one of {', '.join(PATTERN_SOURCES)}, got {self.source!r}")
        if not 0.0 <= self.fill <= 1.0:
            raise InvalidValueError(f"Rig.fill must be in [0, 1], got {self.fill!r}")
        if not 0.0 < self.duty_cycle <= 1.0:
            raise InvalidValueError(f"Rig.duty_cycle must be in (0, 1], got {self.duty_cycle!r}")
        if not 0.0 <= self.clock_offset < 1.0:
            raise InvalidValueError(f"Rig.clock_offset must be in [0, 1), got {self.clock_offset!r}")
        if self.clock_wrap not in CLOCK_MODES:
            raise ConfigError(f"Rig.clock_wrap must be one of {', '.join(CLOCK_MODES)}, got {self.clock_wrap!r}")
        for name in ("gain", "mirror_pitch", "pixel_pitch", "magnification", "pattern_rate"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise InvalidValueError(f"Rig.{name} must be a positive number, got {value!r}")
        if not self.blur >= 0 or not all(math.isfinite(v) for v in (self.dx, self.dy, self.rotation, self.blur)):
            raise InvalidValueError(
                "Rig misregistration must be finite with blur >= 0, "
                f"got dx={self.dx}, dy={self.dy}, rotation={self.rotation}, blur={self.blur}"
            )
        if self.adc_bits is not None and (int(self.adc_bits) != self.adc_bits or not 1 <= self.adc_bits <= 24):
            raise InvalidValueError(f"Rig.adc_bits must be None or an integer in 1..24, got {self.adc_bits!r}")
        if self.full_scale is not None and not (math.isfinite(self.full_scale) and self.full_scale > 0):
            raise InvalidValueError(f"Rig.full_scale must be None or a positive number, got {self.full_scale!r}")
        object.__setattr__(self, "bayer", normalize_pattern(self.bayer, "Rig.bayer"))
        if self.bayer is not None and (self.H % 2 or self.W % 2):
            raise ShapeError(f"a Bayer rig needs even H and W, got {self.H}x{self.W}")
        parse_noise(self.noise)

    # --- the patterns -------------------------------------------------------------------
    def plane(self) -> PatternPlane:
        """The pattern plane (cached per pattern geometry; read-only)."""
        key = (
            self.source,
            int(self.B),
            int(self.H),
            int(self.W),
            float(self.fill),
            int(self.seed),
            float(self.mirror_pitch),
            float(self.pixel_pitch),
            int(self.binning),
            float(self.magnification),
            int(self.piezo_step),
            int(self.piezo_axis),
            int(self.supersample),
            int(self.margin),
        )
        return _plane_cached(key)

    def nominal(self) -> Rig:
        """The rig as designed: no misregistration, blur, clock offset; duty cycle and gain 1."""
        return replace(self, dx=0.0, dy=0.0, rotation=0.0, blur=0.0, duty_cycle=1.0, clock_offset=0.0, gain=1.0)

    def with_mismatch(self, **params: float) -> Rig:
        """A copy with other non-ideality parameters (dx, dy, rotation, blur, duty_cycle, clock_offset, gain)."""
        allowed = {"dx", "dy", "rotation", "blur", "duty_cycle", "clock_offset", "gain", "clock_wrap"}
        unknown = sorted(set(params) - allowed)
        if unknown:
            raise ConfigError(f"unknown mismatch parameter(s) {unknown}; expected {', '.join(sorted(allowed))}")
        return replace(self, **params)

    def nominal_masks(self) -> np.ndarray:
        """The masks the designers assume: the pattern on the pixel grid, float32 ``(B, H, W)``."""
        return self.plane().masks().astype(np.float32)

    def effective_masks(self) -> np.ndarray:
        """The masks the sensor really integrates, float32 ``(B, H, W)`` (see the module doc):
        ``C_k = ρ g [(1 − δ) Ñ_k + δ Ñ_{k+1}]``, ``Ñ`` the blurred, warped, pixel-averaged pattern."""
        warped = self.plane().masks(self.dx, self.dy, self.rotation, self.blur)
        mixed = mix_clock(warped, self.clock_offset, self.clock_wrap)
        return (mixed * (self.duty_cycle * self.gain)).astype(np.float32)

    def operator(self, masks: np.ndarray | None = None) -> CactiOperator:
        """The camera's operator with the effective masks (or the given ones)."""
        return CactiOperator(self.effective_masks() if masks is None else masks, bayer=self.bayer)

    # --- the sensor ---------------------------------------------------------------------
    def noise_model(self):
        """The sensor: the noise spec followed by the ADC (when ``adc_bits`` is set)."""

        model = parse_noise(self.noise)
        if self.adc_bits is not None:
            adc = ADC(bits=int(self.adc_bits))
            model = adc if isinstance(model, NoNoise) else Compose((model, adc))
        return model

    def capture_full_scale(self, masks: np.ndarray | None = None) -> float:
        """The measurement value at the sensor's full scale."""
        if self.full_scale is not None:
            return float(self.full_scale)
        masks = self.effective_masks() if masks is None else masks
        peak = float(np.max(np.sum(masks, axis=0)))
        return peak if peak > 0 else 1.0

    def _video(self, video: Any) -> tuple[np.ndarray, bool]:
        array = np.asarray(video)
        if array.dtype == np.uint8:
            array = array.astype(np.float32) / 255.0
        elif array.dtype.kind != "f":
            raise DTypeError(f"video must be float in [0, 1] or uint8, got dtype {array.dtype}")
        if not np.all(np.isfinite(array)):
            raise InvalidValueError("video holds NaN or infinite values")
        rgb = self.bayer is not None
        frame_ndim = 4 if rgb else 3  # (F, H, W[, 3])
        single = array.ndim == frame_ndim
        if single:
            array = array[None]
        if array.ndim != frame_ndim + 1:
            layout = "(F, H, W, 3) or (N, F, H, W, 3) RGB" if rgb else "(F, H, W) or (N, F, H, W) gray"
            raise ShapeError(f"video must be {layout} for this rig (bayer={self.bayer}), got shape {np.asarray(video).shape}")
        expected = (self.H, self.W) + ((3,) if rgb else ())
        if tuple(array.shape[2:]) != expected:
            raise ShapeError(f"video frames must be {expected} for this rig, got {tuple(array.shape[2:])}")
        if array.shape[1] < self.B or array.shape[1] % self.B:
            raise ShapeError(f"the number of frames ({array.shape[1]}) must be a positive multiple of B={self.B}")
        return array, single

    def capture(self, video: Any, seed: int = 0, masks: np.ndarray | None = None) -> np.ndarray:
        """Snapshots of a video through the effective masks, with the sensor's noise and ADC.

        ``y_{n,t} = noise(Σ_k C_k ⊙ M x_{n, tB+k})`` (``M`` the Bayer mosaic for a colour
        sensor), noise drawn from ``default_rng([seed, n, t])`` relative to the full scale.

        Args:
            video: gray ``(F, H, W)`` / ``(N, F, H, W)``, or RGB ``(..., F, H, W, 3)`` for a
                Bayer rig; float in [0, 1] (uint8 is divided by 255); F a multiple of B.
            seed: the noise seed.
            masks: code with these masks instead of the effective ones.

        Returns:
            float32 ``(T, H, W)`` for one video, ``(N, T, H, W)`` for several.
        """
        frames, single = self._video(video)
        masks = self.effective_masks() if masks is None else np.asarray(masks, dtype=np.float32)
        op = CactiOperator(masks, bayer=self.bayer)
        N, F = frames.shape[:2]
        T = F // self.B
        blocks = frames.reshape((N, T, self.B) + frames.shape[2:]).astype(np.float32)
        clean = np.asarray(op.A(blocks), dtype=np.float32)
        model = self.noise_model()
        fs = self.capture_full_scale(masks)
        out = np.empty_like(clean)
        for n in range(N):
            for t in range(T):
                out[n, t] = model.apply(clean[n, t], np.random.default_rng([int(seed), n, t]), full_scale=fs)
        return out[0] if single else out

    def calibration_sequence(self, repeats: int = 8, seed: int = 0, white: float = 1.0) -> np.ndarray:
        """Frames of a uniform white scene under each pattern, as labs measure masks.

        Frame ``(k, r)`` integrates the white scene (radiance ``white``) over sub-exposure window
        k only, with the rig's timing (so it sees ``C_k`` including duty cycle, clock offset,
        blur and misregistration), plus the sensor's noise and ADC; the calibration exposure
        puts an open pixel at the sensor's full scale, ``max(1, ρ g)·white``. Noise is drawn
        from ``default_rng([seed, 1_000_003, k, r])``.

        Returns:
            float32 ``(B, repeats, H, W)``.
        """
        if isinstance(repeats, bool) or int(repeats) != repeats or repeats < 1:
            raise InvalidValueError(f"repeats must be a positive integer, got {repeats!r}")
        if not (math.isfinite(white) and white > 0):
            raise InvalidValueError(f"white must be a positive radiance, got {white!r}")
        masks = self.effective_masks().astype(np.float64) * white
        model = self.noise_model()
        fs = max(1.0, self.duty_cycle * self.gain) * white
        out = np.empty((self.B, int(repeats), self.H, self.W), dtype=np.float32)
        for k in range(self.B):
            clean = masks[k].astype(np.float32)
            for r in range(int(repeats)):
                out[k, r] = model.apply(clean, np.random.default_rng([int(seed), 1_000_003, k, r]), full_scale=fs)
        return out

    def dark_frames(self, repeats: int = 8, seed: int = 0, white: float = 1.0) -> np.ndarray:
        """Frames with the light blocked (same exposure as :meth:`calibration_sequence`), ``(repeats, H, W)``."""
        model = self.noise_model()
        fs = max(1.0, self.duty_cycle * self.gain) * white
        zero = np.zeros((self.H, self.W), dtype=np.float32)
        return np.stack(
            [model.apply(zero, np.random.default_rng([int(seed), 2_000_003, r]), full_scale=fs) for r in range(int(repeats))]
        )

    def describe(self) -> dict[str, Any]:
        """All parameters (JSON-serialisable), with the exposure time."""
        data = asdict(self)
        data["exposure_s"] = self.B / self.pattern_rate
        return data


# --------------------------------------------------------------------------------------------
# Writers of the real layouts
# --------------------------------------------------------------------------------------------

WRITE_LAYOUTS: tuple[str, ...] = ("qiao2020-dmd", "bayer-real", "bayer-midscale", "gray-benchmark", "raw-frame")

_MATLAB_CLASS = {
    "uint8": "uint8",
    "int8": "int8",
    "uint16": "uint16",
    "int16": "int16",
    "uint32": "uint32",
    "int32": "int32",
    "uint64": "uint64",
    "int64": "int64",
    "float32": "single",
    "float64": "double",
    "bool": "logical",
}


def write_mat_v5(path: str | Path, **variables: np.ndarray) -> Path:
    """Write variables (MATLAB axis order) to a compressed MATLAB v5 file."""

    path = Path(path)
    return atomic_write(
        path, lambda tmp: scipy.io.savemat(tmp, {k: np.asarray(v) for k, v in variables.items()}, do_compression=True)
    )


def write_mat_v73(path: str | Path, **variables: np.ndarray) -> Path:
    """Write variables the way MATLAB's ``-v7.3`` does.

    An HDF5 file with a 512-byte user block holding MATLAB's text header, each array stored with
    its axes reversed (MATLAB is column-major) and a ``MATLAB_class`` attribute.
    """

    path = Path(path)

    def write(tmp: str) -> None:
        with h5py.File(tmp, "w", userblock_size=512) as handle:
            for name, value in variables.items():
                value = np.asarray(value)
                dataset = handle.create_dataset(name, data=value.transpose(), compression="gzip")
                dataset.attrs["MATLAB_class"] = np.bytes_(_MATLAB_CLASS.get(value.dtype.name, "double"))
        header = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Thu Jan  1 00:00:00 2025 HDF5 schema 1.00 ."
        with open(tmp, "r+b") as handle:
            handle.write(header.ljust(116, b" ") + b"\x00" * 8 + b"\x00\x02IM")

    return atomic_write(path, write)


def write_mask_file(path: str | Path, masks: np.ndarray, key: str = "mask", version: str = "v5") -> Path:
    """Write masks ``(B, H, W)`` as MATLAB ``H×W×B`` float32 under ``key`` (real_mask.mat style)."""
    masks = np.asarray(masks, dtype=np.float32)
    if masks.ndim != 3:
        raise ShapeError(f"masks must be (B, H, W), got {masks.shape}")
    data = {key: np.transpose(masks, (1, 2, 0))}
    if version == "v5":
        return write_mat_v5(path, **data)
    if version == "v7.3":
        return write_mat_v73(path, **data)
    raise ConfigError(f"version must be 'v5' or 'v7.3', got {version!r}")


def write_dng(
    path: str | Path,
    raw: np.ndarray,
    bayer: str | None = "RGGB",
    black_level: int = 0,
    white_level: int | None = None,
    bits: int = 16,
) -> Path:
    """Write a raw sensor frame ``(H, W)`` (integer DN) as an uncompressed DNG (needs pidng).

    Args:
        raw: the digital numbers, 0..2**bits − 1.
        bayer: the CFA pattern (RGGB, BGGR, GRBG, GBRG).
        black_level, white_level: the levels recorded in the file (white defaults to 2**bits − 1).
        bits: 8, 10, 12 or 16 bits per sample (pidng's 14-bit packing is broken for most
            widths, so 14-bit data goes in a 16-bit file).

    LibRaw reads no image smaller than 22×22 pixels, and pidng packs 10-bit rows in groups of
    4 pixels, so those sizes are refused here rather than written unreadable.
    """

    try:
        from pidng.core import RAW2DNG, DNGTags, Tag
        from pidng.defs import CalibrationIlluminant, CFAPattern, DNGVersion, Orientation, PhotometricInterpretation
    except ImportError as exc:
        raise BackendUnavailableError(f"writing DNG files needs pidng ({exc}); pip install pidng") from exc
    pattern = normalize_pattern(bayer)
    if pattern is None:
        raise ConfigError("write_dng writes colour-filter-array DNGs; give a Bayer pattern")
    if bits not in (8, 10, 12, 16):
        raise InvalidValueError(f"bits must be 8, 10, 12 or 16, got {bits!r}")
    raw = np.asarray(raw)
    if raw.ndim != 2 or raw.shape[0] % 2 or raw.shape[1] % 2:
        raise ShapeError(f"raw must be (H, W) with even H and W, got {raw.shape}")
    if min(raw.shape) < 22:
        raise ShapeError(f"raw is {raw.shape[0]}×{raw.shape[1]}; LibRaw reads no DNG smaller than 22×22")
    if bits == 10 and raw.shape[1] % 4:
        raise ShapeError(f"10-bit DNG rows are packed 4 pixels at a time; the width {raw.shape[1]} is not a multiple of 4")
    if raw.dtype.kind not in "iu" or (raw.size and (raw.min() < 0 or raw.max() > 2**bits - 1)):
        raise InvalidValueError(f"raw must hold integers in 0..{2**bits - 1}")
    white = 2**bits - 1 if white_level is None else int(white_level)
    if not 0 <= black_level < white <= 2**bits - 1:
        raise InvalidValueError(f"need 0 <= black_level < white_level <= {2**bits - 1}, got {black_level}, {white}")
    height, width = raw.shape
    tags = DNGTags()
    tags.set(Tag.ImageWidth, width)
    tags.set(Tag.ImageLength, height)
    tags.set(Tag.TileWidth, width)
    tags.set(Tag.TileLength, height)
    tags.set(Tag.Orientation, Orientation.Horizontal)
    tags.set(Tag.PhotometricInterpretation, PhotometricInterpretation.Color_Filter_Array)
    tags.set(Tag.SamplesPerPixel, 1)
    tags.set(Tag.BitsPerSample, bits)
    tags.set(Tag.CFARepeatPatternDim, [2, 2])
    tags.set(Tag.CFAPattern, getattr(CFAPattern, pattern))
    tags.set(Tag.BlackLevel, [int(black_level)])
    tags.set(Tag.WhiteLevel, [white])
    tags.set(Tag.ColorMatrix1, [[1, 1], [0, 1], [0, 1], [0, 1], [1, 1], [0, 1], [0, 1], [0, 1], [1, 1]])
    tags.set(Tag.CalibrationIlluminant1, CalibrationIlluminant.D65)
    tags.set(Tag.AsShotNeutral, [[1, 1], [1, 1], [1, 1]])
    tags.set(Tag.Make, "snapcap")
    tags.set(Tag.Model, "emulated CACTI rig")
    tags.set(Tag.DNGVersion, DNGVersion.V1_4)
    writer = RAW2DNG()
    writer.options(tags, path="", compress=False)
    buffer = writer.convert(np.ascontiguousarray(raw, dtype=np.uint16))
    path = Path(path)

    def write(tmp: str) -> None:
        with open(tmp, "wb") as handle:
            handle.write(bytes(buffer))

    return atomic_write(path, write)


@dataclass
class WrittenCapture:
    """What :func:`write_capture` wrote: the capture file, its mask file, and clipping."""

    path: Path
    mask_path: Path | None
    layout: str
    B: int
    clipped: int
    normalisation: str


def _snapshots_arg(meas: Any) -> np.ndarray:
    meas = np.asarray(meas, dtype=np.float64)
    if meas.ndim == 2:
        meas = meas[None]
    if meas.ndim != 3:
        raise ShapeError(f"meas must be one video's snapshots (T, H, W) or one (H, W), got shape {meas.shape}")
    if not np.all(np.isfinite(meas)):
        raise InvalidValueError("meas holds NaN or infinite values")
    return meas


def _hwn(stack: np.ndarray) -> np.ndarray:
    """(N, H, W) -> MATLAB H×W×N (H×W when N = 1)."""
    out = np.transpose(stack, (1, 2, 0))
    return out[:, :, 0] if out.shape[2] == 1 else out


def _eight_bit(values: np.ndarray) -> tuple[np.ndarray, int]:
    scaled = np.round(values)
    clipped = int(np.sum((scaled < 0) | (scaled > 255)))
    return np.clip(scaled, 0, 255).astype(np.uint8), clipped


def write_capture(
    path: str | Path,
    rig: Rig,
    meas: Any,
    layout: str,
    masks: np.ndarray | None = None,
    truth: np.ndarray | None = None,
    mask_path: str | Path | None = None,
    version: str | None = None,
    black_level: int | None = None,
) -> WrittenCapture:
    """Write one video's snapshots in a real capture layout (see :mod:`snapcap.hardware.captures`).

    Args:
        path: the capture file. For ``qiao2020-dmd`` the name gets ``_cr_{B}`` when it has none.
        rig: the rig that took ``meas`` (B, Bayer pattern, full scale).
        meas: ``(T, H, W)`` (or ``(H, W)``) snapshots in model units, as :meth:`Rig.capture` gives.
        layout: one of :data:`WRITE_LAYOUTS`:

            * ``qiao2020-dmd``: key ``meas`` uint8 ``H×W×T`` (``H×W`` for T = 1) holding
              ``round(y·255/(B/2))`` clipped to 0..255 (undoing the loaders' ``meas/255·B/2``),
              MATLAB v5; masks in a separate file (key ``mask``, ``H×W×B`` float32, default
              ``real_mask.mat`` beside it).
            * ``bayer-real``: ``meas_bayer`` uint8 as above and ``mask`` ``H×W×B`` (Hammer
              style) in one file; needs an RGGB rig.
            * ``bayer-midscale``: MATLAB v7.3: ``meas_bayer = 255·y`` (double), ``mask_bayer``,
              ``orig_bayer`` uint8 ``H×W×BT`` and ``orig`` uint8 ``H×W×3×BT`` from ``truth``
              (RGB ``(T, B, H, W, 3)`` in [0, 1]); needs an RGGB rig.
            * ``gray-benchmark``: ``orig`` uint8 ``H×W×BT`` from ``truth`` ``(T, B, H, W)``,
              ``mask`` ``H×W×B`` double, ``meas = 255·y`` double.
            * ``raw-frame``: one snapshot as a DNG: ``DN = black + clip(y / full_scale, 0, 1)·(white − black)``
              with ``2**bits − 1`` as white (bits: the ADC's, rounded up to 8, 10, 12 or 16; 12
              without an ADC), so the driver reads
              back ``y / full_scale``; masks in a separate file (default ``<stem>_mask.mat``).
        masks: the masks to store (default: the rig's effective masks, as a perfect calibration
            would give).
        truth: the frames, for the layouts that store them.
        mask_path: where the separate mask file goes (qiao2020-dmd, raw-frame).
        version: ``"v5"`` or ``"v7.3"`` for the MATLAB layouts (default per layout).
        black_level: the DNG black level (default ``2**(bits − 6)``).

    Returns:
        :class:`WrittenCapture`.
    """
    if layout not in WRITE_LAYOUTS:
        raise ConfigError(f"write_capture: unknown layout {layout!r}; expected one of {', '.join(WRITE_LAYOUTS)}")
    if not isinstance(rig, Rig):
        raise ConfigError(f"rig must be a Rig, got {type(rig).__name__}")
    path = Path(path)
    stack = _snapshots_arg(meas)
    T, H, W = stack.shape
    if (H, W) != (rig.H, rig.W):
        raise ShapeError(f"meas is {H}×{W} but the rig is {rig.H}×{rig.W}")
    B = rig.B
    masks = rig.effective_masks() if masks is None else np.asarray(masks, dtype=np.float32)
    if masks.shape != (B, H, W):
        raise ShapeError(f"masks must be (B, H, W) = ({B}, {H}, {W}), got {masks.shape}")
    if version is not None and version not in ("v5", "v7.3"):
        raise ConfigError(f"version must be 'v5' or 'v7.3', got {version!r}")

    def mat(target: Path, default: str, **variables: np.ndarray) -> Path:
        return (write_mat_v73 if (version or default) == "v7.3" else write_mat_v5)(target, **variables)

    if layout == "qiao2020-dmd":
        named = b_from_name(path)
        if named is None:
            path = path.with_name(f"{path.stem}_cr_{B}{path.suffix or '.mat'}")
        elif named != B:
            raise ConfigError(f"{path}: the name says cr_{named} but the rig has B={B}")
        dn, clipped = _eight_bit(stack * 255.0 / (B / 2.0))
        mat(path, "v5", meas=_hwn(dn))
        target = Path(mask_path) if mask_path is not None else path.parent / "real_mask.mat"
        write_mask_file(target, masks, version=version or "v5")
        return WrittenCapture(path, target, layout, B, clipped, "meas/255·B/2")
    if layout == "bayer-real":
        if rig.bayer != "RGGB":
            raise ConfigError(f"layout bayer-real is RGGB; the rig's sensor is {rig.bayer}")
        dn, clipped = _eight_bit(stack * 255.0 / (B / 2.0))
        mat(path, "v5", meas_bayer=_hwn(dn), mask=np.transpose(masks, (1, 2, 0)))
        return WrittenCapture(path, None, layout, B, clipped, "meas/255·B/2")
    if layout in ("bayer-midscale", "gray-benchmark"):
        rgb = layout == "bayer-midscale"
        if rgb and rig.bayer != "RGGB":
            raise ConfigError(f"layout bayer-midscale is RGGB; the rig's sensor is {rig.bayer}")
        if truth is None:
            raise ConfigError(
                f"layout {layout} stores the ground truth: "
                f"pass truth= ({'(T, B, H, W, 3) RGB' if rgb else '(T, B, H, W)'} in [0, 1])"
            )
        frames = np.asarray(truth, dtype=np.float64)
        expected = (T, B, H, W) + ((3,) if rgb else ())
        if frames.shape != expected:
            raise ShapeError(f"truth must have shape {expected}, got {frames.shape}")
        orig = np.clip(np.round(frames * 255.0), 0, 255).astype(np.uint8).reshape((T * B,) + frames.shape[2:])
        if rgb:
            orig_bayer = mosaic(orig, "RGGB")  # (F, H, W) uint8
            mat(
                path,
                "v7.3",
                meas_bayer=np.transpose(stack * 255.0, (1, 2, 0)),
                mask_bayer=np.transpose(masks.astype(np.float64), (1, 2, 0)),
                orig_bayer=np.transpose(orig_bayer, (1, 2, 0)),
                orig=np.transpose(orig, (1, 2, 3, 0)),
            )
        else:
            mat(
                path,
                "v5",
                orig=np.transpose(orig, (1, 2, 0)),
                mask=np.transpose(masks.astype(np.float64), (1, 2, 0)),
                meas=np.transpose(stack * 255.0, (1, 2, 0)),
            )
        return WrittenCapture(path, None, layout, B, 0, "meas/255")
    # raw-frame
    if T != 1:
        raise ShapeError(f"a raw frame holds one snapshot; got {T}")
    if rig.bayer is None:
        raise ConfigError("the raw-frame writer writes Bayer DNGs; the rig has no Bayer pattern")
    if rig.adc_bits is None:
        bits = 12
    else:
        bits = next((b for b in (8, 10, 12, 16) if b >= rig.adc_bits), 16)
        if bits == 10 and W % 4:
            bits = 12
    black = 2 ** (bits - 6) if black_level is None else int(black_level)
    white = 2**bits - 1
    fs = rig.capture_full_scale(masks)
    relative = stack[0] / fs
    clipped = int(np.sum((relative < 0) | (relative > 1)))
    dn = np.round(black + np.clip(relative, 0.0, 1.0) * (white - black)).astype(np.uint16)
    write_dng(path, dn, bayer=rig.bayer, black_level=black, white_level=white, bits=bits)
    target = Path(mask_path) if mask_path is not None else path.with_name(f"{path.stem}_mask.mat")
    write_mask_file(target, masks, version=version or "v5")
    return WrittenCapture(path, target, layout, B, clipped, f"(raw − {black})/({white} − {black}) = y/{fs:g}")
