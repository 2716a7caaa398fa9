"""Calibrating a CACTI rig: measured masks, and the misregistration of the nominal pattern.

Two routes to the effective masks ``C_k`` a reconstruction needs (see
:mod:`snapcap.hardware.emulate` for the model):

* :func:`calibrate_masks` measures them directly, the way labs do: a uniform white scene is
  captured once per sub-exposure window, ``R`` times each; the masks are the mean over the
  repeats, minus the dark level, divided by the white level:

  .. math::

      \\hat C_k = \\frac{\\tfrac1R \\sum_r F_{k,r} - D}{L_{white}},

  with standard error ``std_r(F_{k,r}) / (L_{white}\\sqrt R)`` per pixel.

* :func:`estimate_mismatch` fits the physical parameters (shift ``dx, dy``, rotation ``θ``,
  blur ``σ``, and the duty-cycle·gain scale ``ρg`` and clock offset ``δ``) of the nominal pattern
  to one capture of a known moving scene ``X``, by least squares

  .. math::

      \\min_{dx,dy,\\theta,\\sigma,a,b}\\;
      \\Big\\| y - \\sum_k \\big(a\\,\\tilde N_k + b\\,\\tilde N_{k+1}\\big) \\odot X_k \\Big\\|^2,
      \\qquad a = \\rho g (1-\\delta),\\; b = \\rho g\\,\\delta,

  where ``Ñ = Ñ(dx, dy, θ, σ)`` is the warped, blurred nominal pattern. The model is linear in
  ``(a, b)``, which are solved in closed form for each warp (variable projection); the warp is
  found by a trust-region least-squares search (scipy.optimize.least_squares) started from a
  phase-correlation estimate of the shift. ``ρ`` and ``g`` only appear as their product: the
  duty cycle is reported as ``ρg / g`` for the nominal gain ``g``. ``δ`` is identifiable only
  when the scene changes from frame to frame (with a static scene and a looping sequence,
  ``Σ_k C_k`` does not depend on it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from scipy import ndimage
from scipy.optimize import least_squares

from snapcap.cacti.bayer import mosaic
from snapcap.errors import ConfigError, InvalidValueError, ShapeError
from snapcap.hardware.emulate import PatternPlane, Rig

__all__ = [
    "CalibratedMasks",
    "calibrate_masks",
    "MismatchEstimate",
    "estimate_mismatch",
    "phase_correlation",
    "calibration_target",
]


# --------------------------------------------------------------------------------------------
# Direct mask calibration
# --------------------------------------------------------------------------------------------


@dataclass
class CalibratedMasks:
    """Masks measured from a calibration sequence.

    Attributes:
        masks: ``(B, H, W)`` float32 effective transmissions (clipped at 0).
        stderr: ``(B, H, W)`` float32 standard error of each mask value (NaN with one repeat).
        repeats: frames averaged per pattern.
        noise_sigma: median per-frame noise standard deviation (in transmission units).
        dark_level: the mean dark level subtracted.
    """

    masks: np.ndarray
    stderr: np.ndarray
    repeats: int
    noise_sigma: float
    dark_level: float


def _as_float(array: Any, name: str) -> np.ndarray:
    values = np.asarray(array)
    if values.dtype.kind not in "biuf":
        raise InvalidValueError(f"{name} must be a numeric array, got dtype {values.dtype}")
    values = values.astype(np.float64)
    if not np.all(np.isfinite(values)):
        raise InvalidValueError(f"{name} holds {int(np.sum(~np.isfinite(values)))} NaN or infinite value(s)")
    return values


def calibrate_masks(sequence: Any, dark: Any = None, white: Any = 1.0) -> CalibratedMasks:
    """Effective masks from frames of a white scene taken under each pattern.

    Args:
        sequence: ``(B, R, H, W)`` frames (R repeats of each of the B patterns), or ``(B, H, W)``
            for a single repeat, in measurement units.
        dark: dark frames ``(R', H, W)`` or a dark level ``(H, W)`` / scalar, subtracted from
            the mean (default 0).
        white: the level of a fully open pixel: a scalar, an ``(H, W)`` flat field, or frames
            ``(R'', H, W)`` of an all-open pattern (averaged, dark subtracted); default 1
            (the white scene at unit radiance, :meth:`Rig.calibration_sequence`).

    Returns:
        :class:`CalibratedMasks` with ``masks = (mean_r F − D) / L_white``.
    """
    frames = _as_float(sequence, "sequence")
    if frames.ndim == 3:
        frames = frames[:, None]
    if frames.ndim != 4 or min(frames.shape) < 1:
        raise ShapeError(f"sequence must be (B, repeats, H, W) or (B, H, W), got shape {np.shape(sequence)}")
    B, R, H, W = frames.shape
    dark_map = np.zeros((H, W))
    if dark is not None:
        d = _as_float(dark, "dark")
        if d.ndim == 3:
            d = d.mean(axis=0)
        if d.ndim not in (0, 2) or (d.ndim == 2 and d.shape != (H, W)):
            raise ShapeError(f"dark must be a scalar, (H, W) = ({H}, {W}) or (repeats, H, W), got shape {np.shape(dark)}")
        dark_map = np.broadcast_to(d, (H, W)).astype(np.float64)
    w = _as_float(white, "white")
    if w.ndim == 3:
        w = w.mean(axis=0) - dark_map
    if w.ndim not in (0, 2) or (w.ndim == 2 and w.shape != (H, W)):
        raise ShapeError(f"white must be a scalar, (H, W) = ({H}, {W}) or (repeats, H, W), got shape {np.shape(white)}")
    if np.any(w <= 0):
        raise InvalidValueError("white level must be positive everywhere (after dark subtraction)")
    mean = frames.mean(axis=1)
    masks = np.clip((mean - dark_map) / w, 0.0, None)
    if R > 1:
        std = frames.std(axis=1, ddof=1) / w
        stderr = std / math.sqrt(R)
        sigma = float(np.median(std))
    else:
        stderr = np.full((B, H, W), np.nan)
        sigma = float("nan")
    return CalibratedMasks(
        masks=masks.astype(np.float32),
        stderr=stderr.astype(np.float32),
        repeats=R,
        noise_sigma=sigma,
        dark_level=float(np.mean(dark_map)),
    )


# --------------------------------------------------------------------------------------------
# Known scenes and phase correlation
# --------------------------------------------------------------------------------------------


def calibration_target(B: int, H: int, W: int, T: int = 1, seed: int = 0, speed: float = 1.0) -> np.ndarray:
    """A known moving scene for :func:`estimate_mismatch`: ``(T, B, H, W)`` float32 in [0.15, 0.95].

    A smooth random texture (Gaussian-filtered noise, σ = 3 px) translated by ``speed`` pixels
    per frame along a diagonal, like a printed target on a motorised stage: textured enough to
    pin the warp, different in every frame so that the clock offset is identifiable.
    """
    if min(B, H, W, T) < 1:
        raise InvalidValueError(f"B, H, W, T must be >= 1, got {B}, {H}, {W}, {T}")
    frames = T * B
    reach = int(math.ceil(abs(speed) * frames)) + 8
    rng = np.random.default_rng(seed)
    base = ndimage.gaussian_filter(rng.standard_normal((H + 2 * reach, W + 2 * reach)), 3.0, mode="wrap")
    base = (base - base.min()) / max(float(np.ptp(base)), 1e-12)
    out = np.empty((frames, H, W), dtype=np.float32)
    for f in range(frames):
        shift = (speed * f, 0.7 * speed * f)
        moved = ndimage.shift(base, shift, order=1, mode="wrap")
        out[f] = moved[reach : reach + H, reach : reach + W]
    return (0.15 + 0.8 * out).reshape(T, B, H, W)


def phase_correlation(moved: np.ndarray, reference: np.ndarray, highpass: float = 2.0) -> tuple[float, float, float]:
    """Sub-pixel shift ``(dy, dx)`` with ``moved(y) ≈ reference(y − d)``, and the peak height.

    Both images (or stacks ``(T, H, W)``, whose cross-power spectra are summed) are high-passed
    (minus a Gaussian blur of σ = ``highpass`` px) so that the fine mask code dominates; the
    normalised cross-power spectrum's inverse FFT peaks at ``d``, refined to a fraction of a pixel
    from the peak's neighbours (Foroosh et al. 2002). Accurate to about 0.1 px: a start for
    :func:`estimate_mismatch`, which refines it.
    """
    a = np.asarray(moved, dtype=np.float64)
    b = np.asarray(reference, dtype=np.float64)
    if a.shape != b.shape or a.ndim not in (2, 3):
        raise ShapeError(f"phase_correlation needs two images or stacks of equal shape, got {a.shape} and {b.shape}")
    if a.ndim == 2:
        a, b = a[None], b[None]
    cross = np.zeros(a.shape[1:], dtype=np.complex128)
    window = np.outer(np.hanning(a.shape[1]), np.hanning(a.shape[2]))
    for x, y in zip(a, b):
        x = (x - ndimage.gaussian_filter(x, highpass)) * window
        y = (y - ndimage.gaussian_filter(y, highpass)) * window
        cross += np.fft.fft2(x) * np.conj(np.fft.fft2(y))
    cross /= np.maximum(np.abs(cross), 1e-12)
    surface = np.real(np.fft.ifft2(cross))
    peak = np.unravel_index(int(np.argmax(surface)), surface.shape)
    shifts = []
    for axis, index in enumerate(peak):
        n = surface.shape[axis]
        left = list(peak)
        right = list(peak)
        left[axis] = (index - 1) % n
        right[axis] = (index + 1) % n
        c0, cl, cr = surface[peak], surface[tuple(left)], surface[tuple(right)]
        # Foroosh et al. (2002): near a sinc-shaped peak, the offset towards the larger
        # neighbour c1 is c1/(c1 ± c0); take the root that lies in [0, 1]
        c1, sign = (cr, 1.0) if cr >= cl else (cl, -1.0)
        roots = [r for r in (c1 / (c1 + c0) if c1 + c0 else 0.0, c1 / (c1 - c0) if c1 != c0 else 0.0) if 0.0 <= r <= 1.0]
        frac = sign * min(roots) if roots else 0.0
        value = index + float(frac)
        if value > n / 2:
            value -= n
        shifts.append(value)
    return shifts[0], shifts[1], float(surface[peak])


# --------------------------------------------------------------------------------------------
# Mismatch estimation
# --------------------------------------------------------------------------------------------


@dataclass
class MismatchEstimate:
    """The fitted non-idealities of a rig.

    Attributes:
        dx, dy: shift of the mask image in pixels; rotation in degrees; blur: PSF σ in pixels.
        duty_cycle: ρ = (a + b)/g for the nominal gain g (ρ and g are not separable).
        clock_offset: δ = b/(a + b).
        scale: ρg = a + b.
        residual: RMS of y − model over the pixels used; relative_residual: that over RMS(y).
        initial: the phase-correlation start (dx, dy).
        evaluations: model evaluations; success: the optimiser's verdict.
        fitted: which parameters were fitted (the others held at their nominal values).
        notes: what is and is not identifiable here.
    """

    dx: float
    dy: float
    rotation: float
    blur: float
    duty_cycle: float
    clock_offset: float
    scale: float
    residual: float
    relative_residual: float
    initial: tuple[float, float]
    evaluations: int
    success: bool
    fitted: tuple[str, ...]
    notes: list[str] = field(default_factory=list)

    def params(self) -> dict[str, float]:
        """The rig parameters: dx, dy, rotation, blur, duty_cycle, clock_offset."""
        return {k: float(getattr(self, k)) for k in ("dx", "dy", "rotation", "blur", "duty_cycle", "clock_offset")}

    def apply(self, rig):
        """The rig with these parameters (its pattern, sensor and gain unchanged)."""
        return replace(rig, **self.params())

    def masks(self, rig) -> np.ndarray:
        """The effective masks of :meth:`apply`."""
        return self.apply(rig).effective_masks()


def _scene_mosaic(scene: np.ndarray, bayer: str | None) -> np.ndarray:
    if bayer is not None and scene.shape[-1] == 3:
        return np.asarray(mosaic(scene, bayer))
    return scene


def estimate_mismatch(
    nominal: Any,
    capture: Any,
    scene: Any,
    *,
    fit_blur: bool = True,
    fit_duty: bool = True,
    fit_clock: bool = True,
    clock_wrap: str | None = None,
    gain: float | None = None,
    border: int | None = None,
    supersample: int = 4,
    max_evaluations: int = 400,
) -> MismatchEstimate:
    """Fit misregistration, blur, duty cycle and clock offset of the nominal pattern to a capture.

    Args:
        nominal: a :class:`~snapcap.hardware.emulate.Rig` (its nominal pattern plane, margin and
            Bayer pattern are used; its own mismatch parameters are ignored), or nominal masks
            ``(B, H, W)`` (each pixel taken as a uniform square, edges repeated).
        capture: snapshots ``(H, W)`` or ``(T, H, W)`` of the known scene, in model units.
        scene: the known frames ``(B, H, W)`` / ``(T, B, H, W)`` (RGB ``(..., 3)`` is
            mosaicked with the rig's pattern), in [0, 1].
        fit_blur, fit_duty, fit_clock: which of σ, ρg and δ to fit (else held at 0, g·1, 0).
        clock_wrap: ``"wrap"`` or ``"hold"`` (default: the rig's, or ``"wrap"``).
        gain: the nominal gain g used to report ρ = ρg/g (default: the rig's, or 1).
        border: pixels left out of the residual on every side (default: enough for a
            3-pixel shift plus blur).
        supersample: fine samples per pixel when ``nominal`` is an array.
        max_evaluations: a bound on model evaluations.

    Returns:
        :class:`MismatchEstimate`.
    """
    if isinstance(nominal, Rig):
        plane = nominal.plane()
        bayer = nominal.bayer
        wrap = clock_wrap or nominal.clock_wrap
        g = float(nominal.gain if gain is None else gain)
        strict = True
    else:
        masks = _as_float(nominal, "nominal masks")
        if masks.ndim != 3:
            raise ShapeError(f"nominal masks must be (B, H, W), got {masks.shape}")
        plane = PatternPlane.from_masks(masks, supersample)
        bayer = None
        wrap = clock_wrap or "wrap"
        g = 1.0 if gain is None else float(gain)
        strict = False
    if wrap not in ("wrap", "hold"):
        raise ConfigError(f"clock_wrap must be 'wrap' or 'hold', got {wrap!r}")
    B, H, W = plane.B, plane.H, plane.W
    y = _as_float(capture, "capture")
    if y.ndim == 2:
        y = y[None]
    x = _as_float(scene, "scene")
    x = _scene_mosaic(x, bayer)
    if x.ndim == 3:
        x = x[None]
    if y.ndim != 3 or y.shape[1:] != (H, W):
        raise ShapeError(f"capture must be (H, W) or (T, H, W) with H, W = {H}, {W}, got {np.shape(capture)}")
    if x.shape != (y.shape[0], B, H, W):
        raise ShapeError(
            f"scene must be ({y.shape[0]}, {B}, {H}, {W}) to match the capture and the pattern, got {np.shape(scene)}"
        )
    if border is None:
        border = 4
    if not 0 <= border < min(H, W) // 2:
        raise InvalidValueError(f"border must be in [0, {min(H, W) // 2}), got {border}")
    inner = (slice(None), slice(border, H - border), slice(border, W - border))
    target = y[inner].ravel()
    following = (lambda m: np.roll(m, -1, axis=0)) if wrap == "wrap" else (lambda m: np.concatenate([m[1:], m[-1:]], axis=0))
    count = [0]

    def basis(theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        dx, dy, rotation, blur = (float(v) for v in theta)
        count[0] += 1
        warped = plane.masks(dx, dy, rotation, max(blur, 0.0), strict=strict)
        g0 = np.einsum("tkhw,khw->thw", x, warped)[inner].ravel()
        g1 = np.einsum("tkhw,khw->thw", x, following(warped))[inner].ravel()
        return g0, g1

    def linear(g0: np.ndarray, g1: np.ndarray) -> tuple[float, float]:
        if fit_duty and fit_clock:
            gram = np.array([[g0 @ g0, g0 @ g1], [g0 @ g1, g1 @ g1]])
            rhs = np.array([g0 @ target, g1 @ target])
            try:
                a, b = np.linalg.solve(gram, rhs)
            except np.linalg.LinAlgError:
                a, b = float(rhs[0] / max(gram[0, 0], 1e-300)), 0.0
            return float(a), float(b)
        if fit_duty:
            return float((g0 @ target) / max(g0 @ g0, 1e-300)), 0.0
        s0 = g
        if fit_clock:
            d = g1 - g0
            b = float(((target - s0 * g0) @ d) / max(d @ d, 1e-300))
            return s0 - b, b
        return s0, 0.0

    def residual(theta: np.ndarray) -> np.ndarray:
        g0, g1 = basis(theta)
        a, b = linear(g0, g1)
        return a * g0 + b * g1 - target

    # 1. phase correlation of the capture against the nominal model gives the shift
    nominal_masks = plane.masks()
    prediction = np.einsum("tkhw,khw->thw", x, nominal_masks)
    py, px, _ = phase_correlation(y, prediction)
    limit = max(plane.m - 2, 3) if strict else 3.0
    py, px = float(np.clip(py, -limit, limit)), float(np.clip(px, -limit, limit))
    # 2. coarse: the shift alone; 3. fine: everything, from there
    names = ["dx", "dy", "rotation"] + (["blur"] if fit_blur else [])
    theta0 = np.array([px, py, 0.0, 0.5 if fit_blur else 0.0])

    def pack(active: list[int]):
        def fun(sub: np.ndarray) -> np.ndarray:
            theta = theta0.copy()
            theta[active] = sub
            return residual(theta)

        return fun

    lower = np.array([-limit - 1, -limit - 1, -5.0, 0.0])
    upper = np.array([limit + 1, limit + 1, 5.0, 4.0])
    coarse = [0, 1]
    result = least_squares(
        pack(coarse),
        theta0[coarse],
        bounds=(lower[coarse], upper[coarse]),
        diff_step=1e-3,
        x_scale=[0.1, 0.1],
        max_nfev=max_evaluations // 4,
    )
    theta0[coarse] = result.x
    active = [0, 1, 2] + ([3] if fit_blur else [])
    scales = np.array([0.05, 0.05, 0.05, 0.1])[active]
    result = least_squares(
        pack(active),
        theta0[active],
        bounds=(lower[active], upper[active]),
        diff_step=1e-3,
        x_scale=scales,
        max_nfev=max_evaluations,
    )
    theta = theta0.copy()
    theta[active] = result.x
    g0, g1 = basis(theta)
    a, b = linear(g0, g1)
    model = a * g0 + b * g1
    rms = float(np.sqrt(np.mean((model - target) ** 2)))
    scale = a + b
    notes = []
    if fit_clock and scale > 0:
        delta = b / scale
    else:
        delta = 0.0
    if fit_clock and not 0.0 <= delta < 1.0:
        notes.append(f"fitted clock offset {delta:.3f} is outside [0, 1): the scene may not move enough to identify it")
        delta = float(np.clip(delta, 0.0, 0.999))
    notes.append("duty cycle and gain enter only as their product ρg; duty_cycle = ρg / g with the nominal gain g = %g" % g)
    if not fit_clock:
        notes.append("clock offset not fitted (held at 0)")
    return MismatchEstimate(
        dx=float(theta[0]),
        dy=float(theta[1]),
        rotation=float(theta[2]),
        blur=float(max(theta[3], 0.0)),
        duty_cycle=float(scale / g) if fit_duty else 1.0,
        clock_offset=float(delta),
        scale=float(scale),
        residual=rms,
        relative_residual=rms / max(float(np.sqrt(np.mean(target**2))), 1e-300),
        initial=(px, py),
        evaluations=count[0],
        success=bool(result.success),
        fitted=tuple(names + (["duty_cycle"] if fit_duty else []) + (["clock_offset"] if fit_clock else [])),
        notes=notes,
    )
