"""Pure array functions of the CACTI forward model.

Frames are ``(..., B, H, W)``, masks ``(B, H, W)`` (shared) or ``(..., B, H, W)`` (per sample,
broadcasting against the frames' leading axes), measurements ``(..., H, W)``. Masks must
already be in the frames' backend, device and dtype; :class:`snapcap.cacti.CactiOperator`
takes care of that and of shape checks.
"""

from __future__ import annotations

import math
from typing import Any

from snapcap.backend import namespace, sum_of_products
from snapcap.errors import InvalidValueError

__all__ = ["forward", "adjoint", "aat_diag", "safe_divide", "dagger", "prox_l2"]


def forward(frames: Any, masks: Any):
    """Y = Σ_k C_k ⊙ X_k, summing over the frame axis -3."""
    return sum_of_products(frames, masks)


def adjoint(meas: Any, masks: Any):
    """Aᵀ y: X_k = C_k ⊙ Y for every k, frames ``(..., B, H, W)``."""
    return meas[..., None, :, :] * masks


def aat_diag(masks: Any):
    """The diagonal of A Aᵀ: D = Σ_k C_k², shape ``(..., H, W)``."""
    xp = namespace(masks)
    return xp.sum(masks * masks, axis=-3)


def safe_divide(numerator: Any, denominator: Any):
    """numerator / denominator where the denominator is non-zero, 0 where it is zero.

    Pixels with D = 0 are seen by no mask: nothing can be said about them, and the minimum
    norm answer is zero.
    """
    xp = namespace(numerator, denominator)
    zero = denominator == 0
    return xp.where(zero, xp.zeros_like(numerator), numerator / xp.where(zero, xp.ones_like(denominator), denominator))


def dagger(meas: Any, masks: Any, diag: Any):
    """Minimum-norm pseudo-inverse A⁺y = Aᵀ (A Aᵀ)⁻¹ y = Aᵀ(y ⊘ D), guarding D = 0."""
    return adjoint(safe_divide(meas, diag), masks)


def prox_l2(z: Any, meas: Any, masks: Any, diag: Any, gamma: float):
    """The data step: argmin_x ½‖A x − y‖² + 1/(2γ)‖x − z‖².

    x = z + γ·Aᵀ((y − A z) ⊘ (1 + γ D)), by the matrix inversion lemma with A Aᵀ = diag(D).
    With γ = ∞ it is GAP's Euclidean projection onto {x : A x = y}:
    x = z + Aᵀ((y − A z) ⊘ D), guarding D = 0.
    """
    residual = meas - forward(z, masks)
    if math.isinf(gamma):
        return z + adjoint(safe_divide(residual, diag), masks)
    if not gamma >= 0:
        raise InvalidValueError(f"gamma must be >= 0 or inf, got {gamma}")
    if gamma == 0:
        return namespace(z).asarray(z, copy=True)
    return z + adjoint(residual / (1.0 / gamma + diag), masks)
