"""Image quality of reconstructed frames: PSNR and SSIM, one value per frame.

Frames are the last two axes ``(..., H, W)``, or ``(..., H, W, C)`` for colour frames with
``channel_axis=-1``. Inputs of any backend are copied to the host and compared in float64; the
results are numpy arrays with one value per frame (shape ``(...)``).

SSIM follows Wang, Bovik, Sheikh and Simoncelli (IEEE TIP 2004): an 11 x 11 Gaussian window
with σ = 1.5, K1 = 0.01, K2 = 0.03, population (co)variances, the mean of the SSIM map over the
pixels at least 5 pixels from the border. It matches scikit-image's
``structural_similarity(x, ref, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
data_range=R)`` (for colour frames, the mean over channels, as with its ``channel_axis``).
"""

from __future__ import annotations

import math
from numbers import Real
from typing import Any

import numpy as np
from scipy.ndimage import gaussian_filter

from snapcap.backend import to_numpy
from snapcap.errors import DTypeError, InvalidValueError, ShapeError

__all__ = ["psnr", "ssim", "mean_psnr", "mean_ssim"]

_SSIM_SIGMA = 1.5
_SSIM_TRUNCATE = 3.5  # radius int(3.5 * 1.5 + 0.5) = 5: the 11-tap window of Wang et al.
_SSIM_RADIUS = int(_SSIM_TRUNCATE * _SSIM_SIGMA + 0.5)
_SSIM_K1 = 0.01
_SSIM_K2 = 0.03


def _check_range(data_range: Any) -> float:
    if (
        isinstance(data_range, bool)
        or not isinstance(data_range, Real)
        or not math.isfinite(float(data_range))
        or data_range <= 0
    ):
        raise InvalidValueError(f"data_range must be a finite number > 0 (the peak-to-peak signal range), got {data_range!r}")
    return float(data_range)


def _prepare(x: Any, reference: Any, channel_axis: int | None) -> tuple[np.ndarray, np.ndarray, tuple[int, ...]]:
    """Both inputs as float64 numpy with any channel axis moved last; return the reduced axes."""
    first = np.asarray(to_numpy(x))
    second = np.asarray(to_numpy(reference))
    for name, array in (("x", first), ("reference", second)):
        if array.dtype.kind not in "biuf":
            raise DTypeError(f"{name} must be a real numeric array, got dtype {array.dtype}")
    if first.shape != second.shape:
        raise ShapeError(f"x and reference must have the same shape, got {first.shape} and {second.shape}")
    if channel_axis is None:
        if first.ndim < 2:
            raise ShapeError(f"frames must have shape (..., H, W), got shape {first.shape}")
        axes: tuple[int, ...] = (-2, -1)
    else:
        if isinstance(channel_axis, bool) or not isinstance(channel_axis, int):
            raise InvalidValueError(f"channel_axis must be None or an integer axis, got {channel_axis!r}")
        if first.ndim < 3 or not -first.ndim <= channel_axis < first.ndim:
            raise ShapeError(
                f"colour frames with channel_axis={channel_axis} need shape (..., H, W, C) with at least 3 axes, "
                f"got shape {first.shape}"
            )
        first = np.moveaxis(first, channel_axis, -1)
        second = np.moveaxis(second, channel_axis, -1)
        axes = (-3, -2, -1)
    return first.astype(np.float64), second.astype(np.float64), axes


def psnr(x: Any, reference: Any, data_range: float = 1.0, channel_axis: int | None = None) -> np.ndarray:
    """Peak signal-to-noise ratio of every frame: 10 log10(R² / MSE).

    MSE is the mean of (x − reference)² over the frame's pixels (and channels); identical
    frames give ``inf``.

    Args:
        x: estimated frames ``(..., H, W)`` (or ``(..., H, W, C)`` with ``channel_axis``), any backend.
        reference: ground truth of the same shape.
        data_range: R, the peak-to-peak range of the signal (1 for [0, 1] frames).
        channel_axis: None for gray frames; the colour axis (e.g. -1) for colour frames.

    Returns:
        numpy float64 array of per-frame PSNR in dB, shape ``x.shape[:-2]`` (``[:-3]`` for colour).

    Raises:
        ShapeError: if the shapes differ or have too few axes.
        InvalidValueError: for a non-positive data_range.
    """
    data_range = _check_range(data_range)
    first, second, axes = _prepare(x, reference, channel_axis)
    difference = first - second
    mse = np.mean(difference * difference, axis=axes)
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(data_range * data_range / mse)


def ssim(x: Any, reference: Any, data_range: float = 1.0, channel_axis: int | None = None) -> np.ndarray:
    """Structural similarity of every frame (Wang et al. 2004, Gaussian window).

    .. math::

        \\mathrm{SSIM}(a, b) = \\frac{(2 \\mu_a \\mu_b + C_1)(2 \\sigma_{ab} + C_2)}
        {(\\mu_a^2 + \\mu_b^2 + C_1)(\\sigma_a^2 + \\sigma_b^2 + C_2)},
        \\quad C_1 = (K_1 R)^2, \\; C_2 = (K_2 R)^2,

    with local means and (population) (co)variances from an 11 x 11 Gaussian window (σ = 1.5,
    reflect boundary), averaged over the pixels at least 5 pixels from the border (and over
    channels for colour frames).

    Args:
        x: estimated frames ``(..., H, W)`` (or ``(..., H, W, C)`` with ``channel_axis``), any
            backend; H and W at least 11.
        reference: ground truth of the same shape.
        data_range: R, the peak-to-peak range of the signal.
        channel_axis: None for gray frames; the colour axis (e.g. -1) for colour frames.

    Returns:
        numpy float64 array of per-frame SSIM, shape ``x.shape[:-2]`` (``[:-3]`` for colour).

    Raises:
        ShapeError: if the shapes differ or a frame is smaller than the 11 x 11 window.
        InvalidValueError: for a non-positive data_range.
    """
    data_range = _check_range(data_range)
    first, second, axes = _prepare(x, reference, channel_axis)
    spatial = (-2, -1) if channel_axis is None else (-3, -2)
    window = 2 * _SSIM_RADIUS + 1
    height, width = first.shape[spatial[0]], first.shape[spatial[1]]
    if height < window or width < window:
        raise ShapeError(
            f"ssim needs frames of at least {window} x {window} pixels (its Gaussian window), got {height} x {width}"
        )

    def smooth(image: np.ndarray) -> np.ndarray:
        return gaussian_filter(image, sigma=_SSIM_SIGMA, mode="reflect", truncate=_SSIM_TRUNCATE, axes=spatial)

    mean_a = smooth(first)
    mean_b = smooth(second)
    var_a = smooth(first * first) - mean_a * mean_a
    var_b = smooth(second * second) - mean_b * mean_b
    cov_ab = smooth(first * second) - mean_a * mean_b
    c1 = (_SSIM_K1 * data_range) ** 2
    c2 = (_SSIM_K2 * data_range) ** 2
    numerator = (2.0 * mean_a * mean_b + c1) * (2.0 * cov_ab + c2)
    denominator = (mean_a * mean_a + mean_b * mean_b + c1) * (var_a + var_b + c2)
    ssim_map = numerator / denominator
    crop = slice(_SSIM_RADIUS, -_SSIM_RADIUS)
    if channel_axis is None:
        ssim_map = ssim_map[..., crop, crop]
    else:
        ssim_map = ssim_map[..., crop, crop, :]
    return np.mean(ssim_map, axis=axes)


def mean_psnr(x: Any, reference: Any, data_range: float = 1.0, channel_axis: int | None = None) -> float:
    """The mean of :func:`psnr` over all frames (the usual figure of a reconstruction)."""
    return float(np.mean(psnr(x, reference, data_range, channel_axis)))


def mean_ssim(x: Any, reference: Any, data_range: float = 1.0, channel_axis: int | None = None) -> float:
    """The mean of :func:`ssim` over all frames."""
    return float(np.mean(ssim(x, reference, data_range, channel_axis)))
