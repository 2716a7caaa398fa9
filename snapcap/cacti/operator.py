"""The CACTI camera as a linear operator.

``A`` codes B frames with B masks and sums them: Y = Σ_k C_k ⊙ X_k. With a Bayer pattern the
frames are RGB ``(..., B, H, W, 3)`` and are mosaicked first (A = Φ ∘ M). Either way
A Aᵀ = diag(D) with D = Σ_k C_k², because M Mᵀ = I; every solver uses the closed-form data step
:meth:`CactiOperator.prox_l2` built on that.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from snapcap.backend import LazyArray, require_float, to_numpy
from snapcap.cacti import functional as F
from snapcap.cacti.bayer import mosaic, mosaic_adjoint, normalize_pattern
from snapcap.errors import DTypeError, InvalidValueError, ShapeError

__all__ = ["CactiOperator"]


def _host_masks(masks: Any) -> np.ndarray:
    """Validate masks and return a float numpy copy ``(..., B, H, W)``."""
    host = np.asarray(to_numpy(masks))
    if host.dtype.kind not in "biuf":
        raise DTypeError(f"masks must be a real numeric or boolean array, got dtype {host.dtype}")
    if host.ndim < 3:
        raise ShapeError(f"masks must have shape (B, H, W) or (..., B, H, W), got shape {host.shape}")
    if min(host.shape[-3:]) < 1:
        raise ShapeError(f"masks must have B, H, W >= 1, got shape {host.shape}")
    dtype = np.float64 if host.dtype == np.float64 else np.float32
    host = host.astype(dtype, copy=True)
    if not np.all(np.isfinite(host)):
        raise InvalidValueError(
            f"masks hold {int(np.sum(~np.isfinite(host)))} NaN or infinite value(s); expected finite transmissions"
        )
    if np.any(host < 0):
        raise InvalidValueError(f"masks hold negative values (min {host.min():g}); expected transmissions >= 0")
    if not np.any(host):
        raise InvalidValueError(
            f"masks {host.shape} are zero everywhere: no light reaches the sensor; expected transmissions > 0"
        )
    return host


class CactiOperator:
    """Coded-aperture compressive temporal imaging: Y = Σ_k C_k ⊙ X_k.

    Args:
        masks: ``(B, H, W)`` shared by every sample, or ``(..., B, H, W)`` per sample
            (leading axes broadcast against the frames'). Any backend; stored once on the host
            and moved lazily (cached) to each caller's backend, device and dtype.
        bayer: None for gray/mosaic frames ``(..., B, H, W)``; a pattern (RGGB, BGGR, GRBG,
            GBRG) for RGB frames ``(..., B, H, W, 3)`` mosaicked before coding.

    The operator is immutable: :meth:`with_masks` returns a new one.
    """

    __slots__ = ("_masks", "_diag", "_mask_sum", "_bayer", "_frozen")

    def __init__(self, masks: Any, bayer: str | None = None):
        host = _host_masks(masks)
        pattern = normalize_pattern(bayer)
        if pattern is not None and (host.shape[-1] % 2 or host.shape[-2] % 2):
            raise ShapeError(f"a Bayer operator needs even H and W, got masks of shape {host.shape}")
        object.__setattr__(self, "_masks", LazyArray(host))
        wide = host.astype(np.float64)  # D and Σ C_k in float64, rounded once to the caller's dtype
        object.__setattr__(self, "_diag", LazyArray(np.sum(wide * wide, axis=-3)))
        object.__setattr__(self, "_mask_sum", LazyArray(np.sum(wide, axis=-3)))
        object.__setattr__(self, "_bayer", pattern)
        object.__setattr__(self, "_frozen", True)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"CactiOperator is immutable; use with_masks() for new masks (tried to set {name!r})")

    # --- description -------------------------------------------------------------------
    @property
    def masks(self) -> np.ndarray:
        """The masks as a read-only numpy array ``(..., B, H, W)``."""
        return self._masks.host

    def masks_like(self, like: Any, dtype: Any = None):
        """The masks in ``like``'s backend and device (``dtype``: default ``like``'s), moved once
        per device and cached, like every array the operator applies."""
        return self._masks.like(like, dtype)

    @property
    def B(self) -> int:
        """Compression ratio: frames per snapshot."""
        return int(self._masks.host.shape[-3])

    @property
    def compression_ratio(self) -> int:
        return self.B

    @property
    def bayer(self) -> str | None:
        return self._bayer

    @property
    def meas_shape(self) -> tuple[int, int]:
        return tuple(self._masks.host.shape[-2:])  # type: ignore[return-value]

    @property
    def frame_shape(self) -> tuple[int, ...]:
        """Shape of one sample's frames: (B, H, W), or (B, H, W, 3) with Bayer."""
        base = tuple(self._masks.host.shape[-3:])
        return base + (3,) if self._bayer else base

    @property
    def batch_shape(self) -> tuple[int, ...]:
        """Leading axes of per-sample masks (empty for shared masks)."""
        return tuple(self._masks.host.shape[:-3])

    def __repr__(self) -> str:
        kind = f", bayer={self._bayer!r}" if self._bayer else ""
        return f"CactiOperator(masks={self._masks.host.shape}{kind})"

    def with_masks(self, masks: Any) -> CactiOperator:
        """A new operator with other masks and the same Bayer pattern."""
        return CactiOperator(masks, bayer=self._bayer)

    def mosaic_operator(self) -> CactiOperator:
        """The same camera acting on mosaic (gray) frames, without the Bayer step."""
        return self if self._bayer is None else CactiOperator(self._masks.host)

    # --- checks ------------------------------------------------------------------------
    def _check_frames(self, frames: Any, name: str = "frames") -> None:
        require_float(frames, name)
        expected = self.frame_shape
        if tuple(frames.shape[-len(expected) :]) != expected or frames.ndim < len(expected):
            layout = "(..., B, H, W, 3)" if self._bayer else "(..., B, H, W)"
            raise ShapeError(
                f"{name} must have shape {layout} = (..., {', '.join(map(str, expected))}), got {tuple(frames.shape)}"
            )
        self._check_batch(tuple(frames.shape[: frames.ndim - len(expected)]), name)

    def _check_meas(self, meas: Any, name: str = "meas") -> None:
        require_float(meas, name)
        if meas.ndim < 2 or tuple(meas.shape[-2:]) != self.meas_shape:
            raise ShapeError(
                f"{name} must have shape (..., H, W) = (..., {self.meas_shape[0]}, {self.meas_shape[1]}), got {tuple(meas.shape)}"
            )
        self._check_batch(tuple(meas.shape[:-2]), name)

    def _check_batch(self, lead: tuple[int, ...], name: str) -> None:
        if not self.batch_shape:
            return
        try:
            np.broadcast_shapes(lead, self.batch_shape)
        except ValueError:
            raise ShapeError(
                f"{name} has leading axes {lead}, which do not broadcast with the per-sample masks' {self.batch_shape}"
            ) from None

    def _m(self, like: Any):
        return self._masks.like(like)

    # --- the operator ------------------------------------------------------------------
    def A(self, frames: Any):
        """Forward model: frames ``(..., B, H, W[, 3])`` -> measurement ``(..., H, W)``.

        Y = Σ_k C_k ⊙ X_k (after the Bayer mosaic M when the operator has a pattern).
        """
        self._check_frames(frames)
        if self._bayer:
            frames = mosaic(frames, self._bayer)
        return F.forward(frames, self._m(frames))

    def __call__(self, frames: Any):
        return self.A(frames)

    def A_adjoint(self, meas: Any):
        """Adjoint: X_k = C_k ⊙ Y (then Mᵀ with a Bayer pattern)."""
        self._check_meas(meas)
        frames = F.adjoint(meas, self._m(meas))
        return mosaic_adjoint(frames, self._bayer) if self._bayer else frames

    def AAt_diag(self, like: Any = None):
        """D = Σ_k C_k², the diagonal of A Aᵀ, ``(..., H, W)``; in ``like``'s backend if given."""
        return self._diag.host if like is None else self._diag.like(like)

    def mask_sum(self, like: Any = None):
        """Σ_k C_k, ``(..., H, W)``; in ``like``'s backend if given."""
        return self._mask_sum.host if like is None else self._mask_sum.like(like)

    def A_dagger(self, meas: Any):
        """Minimum-norm inverse A⁺y = Aᵀ(y ⊘ D), zero where D = 0."""
        self._check_meas(meas)
        frames = F.dagger(meas, self._m(meas), self._diag.like(meas))
        return mosaic_adjoint(frames, self._bayer) if self._bayer else frames

    def normalized_measurement(self, meas: Any):
        """Ȳ = Y ⊘ Σ_k C_k (zero where no mask is open)."""
        self._check_meas(meas)
        return F.safe_divide(meas, self._mask_sum.like(meas))

    def prox_l2(self, z: Any, meas: Any, gamma: float = math.inf):
        """Data step x = z + γ·Aᵀ((y − A z) ⊘ (1 + γ D)); γ = ∞ (default) is GAP's projection.

        It solves argmin_x ½‖A x − y‖² + 1/(2γ)‖x − z‖² exactly, since A Aᵀ is diagonal.
        """
        self._check_frames(z, "z")
        self._check_meas(meas)
        try:
            gamma = float(gamma)
        except (TypeError, ValueError):
            raise InvalidValueError(f"gamma must be a number >= 0 or inf, got {gamma!r}") from None
        if not gamma >= 0:
            raise InvalidValueError(f"gamma must be >= 0 or inf, got {gamma}")
        if self._bayer:
            # Mᵀ M is a projection, so the data step on RGB acts through the mosaic only:
            # x = z + Mᵀ(w − M z) where w is the data step on the mosaic frames.
            zm = mosaic(z, self._bayer)
            wm = F.prox_l2(zm, meas, self._m(zm), self._diag.like(zm), gamma)
            return z + mosaic_adjoint(wm - zm, self._bayer)
        return F.prox_l2(z, meas, self._m(z), self._diag.like(z), gamma)
