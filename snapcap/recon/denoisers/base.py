"""The denoiser protocol every plug-and-play prior follows.

A denoiser is any callable ``denoise(x, sigma) -> x_hat`` taking gray frames ``(..., B, H, W)``
(a video: axis -3 is time; any leading batch axes) as a floating array of any backend (numpy,
torch, cupy), with ``sigma`` the noise standard deviation on the [0, 1] intensity scale, and
returning an array of the same shape, backend, device and dtype. Solvers never look inside it.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

__all__ = ["Denoiser", "Identity"]


@runtime_checkable
class Denoiser(Protocol):
    """``denoise(x, sigma)``: frames ``(..., B, H, W)`` -> denoised frames, same shape/backend/dtype."""

    def __call__(self, x: Any, sigma: float) -> Any: ...


class Identity:
    """The identity denoiser: PnP with it is plain (accelerated) GAP / ADMM least squares."""

    def __call__(self, x: Any, sigma: float) -> Any:
        return x * 1

    def __repr__(self) -> str:
        return "Identity()"
