"""Plug-and-play GAP and ADMM for CACTI, written once over the operator's data step.

Both solvers alternate the closed-form data step of :meth:`CactiOperator.prox_l2`, exact
because A Aᵀ = diag(D) with D = Σ_k C_k², with any denoiser ``denoise(x, sigma)``
(:mod:`snapcap.recon.denoisers.base`), following the public PnP-SCI reference code
(Yuan 2016; Liu, Yuan, Suo, Brady and Dai 2019; Yuan, Liu, Suo and Dai 2020).

GAP (generalized alternating projection, Liao, Li and Carin 2014), per iteration::

    accelerated:  y_acc ← y_acc + (y − A x)          (y_acc starts at 0)
                  x ← x + λ·Aᵀ((y_acc − A x) ⊘ D)   = prox_l2(x, y_acc, γ = ∞) when λ = 1
    plain:        x ← x + λ·Aᵀ((y − A x) ⊘ D)
                  x ← denoise(x, σ)

ADMM, per iteration::

    x ← (θ + b) + λ·Aᵀ((y − A(θ + b)) ⊘ (D + γ))      = prox_l2(θ + b, y, 1/γ) when λ = 1
    θ ← denoise(x − b, σ)
    b ← b − (x − θ)

and the estimate is θ. A relaxation λ ≠ 1 is applied as z + λ·(prox_l2(z, ·) − z).

The noise level follows a schedule: stage s runs ``iterations[s]`` iterations with
``sigmas[s]`` (on the [0, 1] intensity scale). The initial estimate is Aᵀy (the reference's) or
A⁺y = Aᵀ(y ⊘ D).

Colour (Bayer) cameras: the unknown is the mosaic video; the data step runs on the mosaic
operator and the denoiser sees each of the four Bayer planes (R, G1, G2, B, half resolution)
as a gray video: planes ``(..., B, 4, H/2, W/2)`` are passed as ``(..., 4, B, H/2, W/2)``, the
plane axis folded into the leading axes. The final mosaic is demosaicked to RGB frames
``(..., B, H, W, 3)`` (Malvar-He-Cutler by default).

Measurements ``y`` may carry leading batch axes ``(..., H, W)``: all snapshots are solved in
one call, each as if alone.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from numbers import Integral, Real
from typing import Any, Callable

import numpy as np

from snapcap.backend import backend_name, from_numpy, is_numpy, namespace, require_finite, require_float, to_numpy
from snapcap.cacti import functional as F
from snapcap.cacti.bayer import DEMOSAIC_METHODS, demosaic, from_planes, mosaic, to_planes
from snapcap.cacti.operator import CactiOperator
from snapcap.errors import ConfigError, InvalidValueError, ShapeError
from snapcap.recon.metrics import psnr

__all__ = ["INIT_METHODS", "ACC_STARTS", "GapParams", "AdmmParams", "SolverResult", "gap", "admm"]

INIT_METHODS: tuple[str, ...] = ("adjoint", "dagger")
"""Initial estimates: ``"adjoint"`` x0 = Aᵀy (the reference's), ``"dagger"`` x0 = A⁺y = Aᵀ(y ⊘ D)."""

ACC_STARTS: tuple[str, ...] = ("zero", "measurement")
"""Starts of accelerated GAP's target y_acc: ``"zero"`` (the reference's) or ``"measurement"`` (y_acc = y)."""

Callback = Callable[[int, Any], Any]


# --------------------------------------------------------------------------------------------
# Parameters
# --------------------------------------------------------------------------------------------


def _as_tuple(value: Any, name: str) -> tuple:
    if isinstance(value, (str, bytes)):
        raise ConfigError(f"{name} must be a number or a sequence of numbers, one per stage, got {value!r}")
    if isinstance(value, (Real, np.generic)):
        return (value,)
    try:
        return tuple(value)
    except TypeError:
        raise ConfigError(f"{name} must be a number or a sequence of numbers, one per stage, got {value!r}") from None


def _finite(value: Any, name: str, minimum: float, strict: bool = False) -> float:
    """``value`` as a float, checked finite and >= minimum (> minimum when strict)."""
    if isinstance(value, bool) or not isinstance(value, (Real, np.floating, np.integer)):
        raise ConfigError(f"{name} must be a real number, got {value!r}")
    number = float(value)
    if not math.isfinite(number) or number < minimum or (strict and number == minimum):
        bound = f"> {minimum:g}" if strict else f">= {minimum:g}"
        raise InvalidValueError(f"{name} must be finite and {bound}, got {value!r}")
    return number


def _check_schedule(params: Any) -> None:
    """Validate and normalise the fields shared by :class:`GapParams` and :class:`AdmmParams` in place."""
    iterations = _as_tuple(params.iterations, "iterations")
    sigmas = _as_tuple(params.sigmas, "sigmas")
    if not iterations:
        raise ConfigError("iterations must list at least one stage, e.g. (40,)")
    checked_iterations = []
    for index, count in enumerate(iterations):
        if isinstance(count, bool) or not isinstance(count, (Integral, np.integer)) or count < 0:
            raise InvalidValueError(f"iterations[{index}] must be an integer >= 0, got {count!r}")
        checked_iterations.append(int(count))
    if len(sigmas) != len(iterations):
        raise ConfigError(
            f"sigmas has {len(sigmas)} entries and iterations {len(iterations)}; give one sigma per stage "
            f"(iterations={tuple(iterations)}, sigmas={tuple(sigmas)})"
        )
    checked_sigmas = tuple(_finite(sigma, f"sigmas[{index}]", 0.0) for index, sigma in enumerate(sigmas))
    object.__setattr__(params, "iterations", tuple(checked_iterations))
    object.__setattr__(params, "sigmas", checked_sigmas)
    object.__setattr__(params, "step", _finite(params.step, "step", 0.0, strict=True))
    if not isinstance(params.init, str) or params.init.strip().lower() not in INIT_METHODS:
        raise ConfigError(f"init must be one of {', '.join(INIT_METHODS)}, got {params.init!r}")
    object.__setattr__(params, "init", params.init.strip().lower())
    if not isinstance(params.demosaic, str) or params.demosaic.strip().lower() not in DEMOSAIC_METHODS:
        raise ConfigError(f"demosaic must be one of {', '.join(DEMOSAIC_METHODS)}, got {params.demosaic!r}")
    object.__setattr__(params, "demosaic", params.demosaic.strip().lower())


@dataclass(frozen=True)
class GapParams:
    """Parameters of :func:`gap`.

    Attributes:
        iterations: iterations of each stage of the schedule, e.g. ``(10, 10, 10, 10)``.
        sigmas: the denoiser's noise level of each stage, on the [0, 1] scale (same length).
        accelerate: accelerated GAP (y_acc ← y_acc + (y − A x), project onto A x = y_acc).
        step: the relaxation λ > 0 of the data step (the reference's ``_lambda``).
        init: ``"adjoint"`` (x0 = Aᵀy, default, as the reference) or ``"dagger"`` (x0 = A⁺y).
        demosaic: demosaicking of the result for Bayer operators, ``"malvar"`` or ``"bilinear"``.
        acc_start: the accelerated target's start, ``"zero"`` (y_acc = 0, the reference's, made
            for a start at Aᵀy) or ``"measurement"`` (y_acc = y). From a warm start x0 with
            A x0 ≈ y, ``"zero"`` makes the first data step project x0 onto A x ≈ 0 and throws
            the warm start away; ``"measurement"`` continues from it (PnP-FFDNet's default
            schedule, which starts from GAP-TV, uses it: +0.2 to +0.4 dB at 12 passes).
    """

    iterations: tuple[int, ...] = (40,)
    sigmas: tuple[float, ...] = (0.0,)
    accelerate: bool = True
    step: float = 1.0
    init: str = "adjoint"
    demosaic: str = "malvar"
    acc_start: str = "zero"

    def __post_init__(self) -> None:
        _check_schedule(self)
        if not isinstance(self.accelerate, (bool, np.bool_)):
            raise ConfigError(f"accelerate must be True or False, got {self.accelerate!r}")
        object.__setattr__(self, "accelerate", bool(self.accelerate))
        if self.acc_start not in ACC_STARTS:
            raise ConfigError(f"acc_start must be one of {', '.join(ACC_STARTS)}, got {self.acc_start!r}")

    @property
    def total_iterations(self) -> int:
        """Σ_s iterations[s]."""
        return sum(self.iterations)


@dataclass(frozen=True)
class AdmmParams:
    """Parameters of :func:`admm`: the fields of :class:`GapParams` except ``accelerate``, plus ``gamma``.

    Attributes:
        iterations: iterations of each stage of the schedule.
        sigmas: the denoiser's noise level of each stage, on the [0, 1] scale (same length).
        step: the relaxation λ > 0 of the data step.
        gamma: γ >= 0 in the data step x = z + Aᵀ((y − A z) ⊘ (D + γ)); larger values trust
            noisy measurements less. γ = 0 is the exact projection of GAP.
        init: ``"adjoint"`` (θ0 = Aᵀy, default) or ``"dagger"`` (θ0 = A⁺y).
        demosaic: demosaicking of the result for Bayer operators, ``"malvar"`` or ``"bilinear"``.
    """

    iterations: tuple[int, ...] = (40,)
    sigmas: tuple[float, ...] = (0.0,)
    step: float = 1.0
    gamma: float = 0.01
    init: str = "adjoint"
    demosaic: str = "malvar"

    def __post_init__(self) -> None:
        _check_schedule(self)
        object.__setattr__(self, "gamma", _finite(self.gamma, "gamma", 0.0))

    @property
    def total_iterations(self) -> int:
        """Σ_s iterations[s]."""
        return sum(self.iterations)


@dataclass
class SolverResult:
    """What :func:`gap` and :func:`admm` return.

    Attributes:
        frames: the estimate, ``(..., B, H, W)``, or RGB ``(..., B, H, W, 3)`` for a Bayer
            operator; in the measurement's backend, device and dtype.
        history: one dict per iteration: ``iteration`` (1-based), ``stage``, ``sigma``,
            ``seconds`` (wall time of that iteration), and ``psnr`` (mean over frames, dB)
            when reference frames were given.
        iterations: how many iterations ran (fewer than scheduled if the callback stopped).
        mosaic: for a Bayer operator, the estimated mosaic frames ``(..., B, H, W)`` before
            demosaicking; None otherwise.
    """

    frames: Any
    history: list[dict[str, Any]] = field(default_factory=list)
    iterations: int = 0
    mosaic: Any = None


# --------------------------------------------------------------------------------------------
# Data step and Bayer planes
# --------------------------------------------------------------------------------------------


def _data_step(op: CactiOperator, z: Any, target: Any, gamma: float, step: float) -> Any:
    """z + λ·(prox_l2(z, target, γ) − z); exactly prox_l2 when λ = 1."""
    projected = op.prox_l2(z, target, gamma)
    if step == 1.0:
        return projected
    return z + step * (projected - z)


class _PlaneDenoiser:
    """Denoise mosaic frames ``(..., B, H, W)`` as four gray plane videos ``(..., 4, B, H/2, W/2)``."""

    def __init__(self, denoiser: Callable[[Any, float], Any], pattern: str):
        self.denoiser = denoiser
        self.pattern = pattern

    def __call__(self, x: Any, sigma: float) -> Any:
        xp = namespace(x)
        planes = to_planes(x, self.pattern)  # (..., B, 4, h, w)
        lead = planes.ndim - 4
        swap = tuple(range(lead)) + (lead + 1, lead, lead + 2, lead + 3)  # its own inverse
        denoised = self.denoiser(xp.permute_dims(planes, swap), sigma)
        return from_planes(xp.permute_dims(denoised, swap), self.pattern)


# --------------------------------------------------------------------------------------------
# The two iterations
# --------------------------------------------------------------------------------------------


class _GapIteration:
    """State of (accelerated) GAP: the estimate x and the accumulated measurement y_acc.

    On numpy, accelerated GAP with λ = 1 computes A x once per iteration and reuses it in the
    projection: the same operations as ``y_acc += y − op.A(x); x = op.prox_l2(x, y_acc)``,
    hence the same result bit for bit (the tests check it), one forward pass cheaper. The
    guarded division by D (zero where D = 0) uses a D whose zeros are replaced once, and the
    back-projection is accumulated in its own buffer.
    """

    def __init__(self, op: CactiOperator, y: Any, x0: Any, params: GapParams, denoise: Callable[[Any, float], Any]):
        self.op, self.y, self.x, self.params, self.denoise = op, y, x0, params, denoise
        if not params.accelerate:
            self.y_acc = None
        elif params.acc_start == "measurement":
            self.y_acc = y * 1
        else:
            self.y_acc = namespace(y).zeros_like(y)
        self.fused = params.accelerate and params.step == 1.0 and is_numpy(y) and op.bayer is None
        self._constants: dict[Any, tuple[np.ndarray, np.ndarray, np.ndarray | None]] = {}

    def _constants_like(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """(masks, D with its zeros set to 1, where D = 0 or None) in ``x``'s dtype, as op.prox_l2 uses them."""
        constants = self._constants.get(x.dtype)
        if constants is None:
            masks = np.asarray(self.op.masks, dtype=x.dtype)
            diag = np.asarray(self.op.AAt_diag(x))
            unseen = diag == 0
            safe = np.where(unseen, np.ones_like(diag), diag)
            constants = self._constants[x.dtype] = (masks, safe, unseen if unseen.any() else None)
        return constants

    def __call__(self, sigma: float) -> None:
        if self.fused and is_numpy(self.x):
            masks, safe_diag, unseen = self._constants_like(self.x)
            forward = F.forward(self.x, masks)
            self.y_acc = self.y_acc + (self.y - forward)
            # x + Aᵀ((y_acc − A x) ⊘ D), zero where D = 0: the operations of F.prox_l2
            ratio = np.divide(self.y_acc - forward, safe_diag)
            if unseen is not None:
                ratio = np.where(unseen, np.zeros_like(ratio), ratio)
            update = np.multiply(ratio[..., None, :, :], masks)
            reuse = update.shape == self.x.shape and update.dtype == np.result_type(self.x, update)
            self.x = np.add(self.x, update, out=update if reuse else None)
        else:
            if self.y_acc is not None:
                self.y_acc = self.y_acc + (self.y - self.op.A(self.x))
                target = self.y_acc
            else:
                target = self.y
            self.x = _data_step(self.op, self.x, target, math.inf, self.params.step)
        self.x = self.denoise(self.x, sigma)

    @property
    def estimate(self) -> Any:
        return self.x


class _AdmmIteration:
    """State of PnP-ADMM: θ (the estimate) and the scaled dual b."""

    def __init__(self, op: CactiOperator, y: Any, x0: Any, params: AdmmParams, denoise: Callable[[Any, float], Any]):
        self.op, self.y, self.theta, self.params, self.denoise = op, y, x0, params, denoise
        self.b = namespace(x0).zeros_like(x0)
        self.prox_gamma = math.inf if params.gamma == 0 else 1.0 / params.gamma

    def __call__(self, sigma: float) -> None:
        x = _data_step(self.op, self.theta + self.b, self.y, self.prox_gamma, self.params.step)
        self.theta = self.denoise(x - self.b, sigma)
        self.b = self.b - (x - self.theta)

    @property
    def estimate(self) -> Any:
        return self.theta


# --------------------------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------------------------


def _lead_shape(y: Any, op: CactiOperator) -> tuple[int, ...]:
    lead = tuple(int(size) for size in y.shape[:-2])
    try:
        return tuple(np.broadcast_shapes(lead, op.batch_shape))
    except ValueError:
        raise ShapeError(
            f"y has leading axes {lead}, which do not broadcast with the per-sample masks' leading axes "
            f"{op.batch_shape} (masks {op.masks.shape})"
        ) from None


def _check_inputs(y: Any, op: Any, denoiser: Any, params: Any, expected: type, callback: Any) -> tuple[int, ...]:
    if not isinstance(op, CactiOperator):
        raise ConfigError(f"op must be a snapcap.cacti.CactiOperator, got {type(op).__name__}")
    if not callable(denoiser):
        raise ConfigError(f"denoiser must be callable as denoiser(x, sigma), got {type(denoiser).__name__}")
    if not isinstance(params, expected):
        raise ConfigError(f"params must be a {expected.__name__}, got {type(params).__name__}")
    if callback is not None and not callable(callback):
        raise ConfigError(f"callback must be callable as callback(iteration, x) or None, got {type(callback).__name__}")
    require_float(y, "y")
    if y.ndim < 2 or tuple(y.shape[-2:]) != op.meas_shape:
        raise ShapeError(
            f"y must have shape (..., H, W) = (..., {op.meas_shape[0]}, {op.meas_shape[1]}) to match the masks "
            f"{op.masks.shape} (B, H, W), got {tuple(y.shape)}"
        )
    require_finite(y, "y")
    return _lead_shape(y, op)


def _solve(
    kind: str,
    y: Any,
    op: Any,
    denoiser: Any,
    params: GapParams | AdmmParams,
    x0: Any,
    callback: Callback | None,
    reference: Any,
) -> SolverResult:
    expected = GapParams if kind == "gap" else AdmmParams
    lead = _check_inputs(y, op, denoiser, params, expected, callback)
    pattern = op.bayer
    data_op = op.mosaic_operator()
    mosaic_shape = lead + tuple(data_op.frame_shape)
    rgb_shape = mosaic_shape + (3,)

    # Initial estimate, in the mosaic domain for Bayer operators.
    if x0 is not None and pattern is not None and tuple(x0.shape) == rgb_shape:
        require_float(x0, "x0")
        require_finite(x0, "x0")
        x0 = mosaic(x0, pattern)
    if x0 is None:
        start = data_op.A_adjoint(y) if params.init == "adjoint" else data_op.A_dagger(y)
    else:
        require_float(x0, "x0")
        if backend_name(x0) != backend_name(y):
            x0 = from_numpy(np.asarray(to_numpy(x0)), y)
        if tuple(x0.shape) != mosaic_shape:
            allowed = f"{mosaic_shape} or the RGB {rgb_shape}" if pattern else f"{mosaic_shape}"
            raise ShapeError(f"x0 must have shape {allowed}, got {tuple(x0.shape)}")
        require_finite(x0, "x0")
        start = x0

    # Reference frames for the PSNR history: RGB (Bayer), or frames in the working layout.
    reference_host = None
    reference_rgb = False
    if reference is not None:
        reference_host = np.asarray(to_numpy(reference), dtype=np.float64)
        if pattern is not None and reference_host.shape == rgb_shape:
            reference_rgb = True
        elif reference_host.shape != mosaic_shape:
            allowed = f"the RGB {rgb_shape} or the mosaic {mosaic_shape}" if pattern else f"{mosaic_shape}"
            raise ShapeError(f"reference must have shape {allowed}, got {reference_host.shape}")

    denoise = denoiser if pattern is None else _PlaneDenoiser(denoiser, pattern)
    state_type = _GapIteration if kind == "gap" else _AdmmIteration
    state = state_type(data_op, y, start, params, denoise)

    history: list[dict[str, Any]] = []
    done = 0
    stop = False
    for stage, (count, sigma) in enumerate(zip(params.iterations, params.sigmas)):
        for _ in range(count):
            began = time.perf_counter()
            state(sigma)
            if tuple(state.estimate.shape) != mosaic_shape:
                raise ShapeError(
                    f"the denoiser returned frames of shape {tuple(state.estimate.shape)}; expected the shape of its input "
                    f"{mosaic_shape}" + (" (Bayer planes are passed as (..., 4, B, H/2, W/2))" if pattern else "")
                )
            entry: dict[str, Any] = {
                "iteration": done + 1,
                "stage": stage,
                "sigma": sigma,
                "seconds": time.perf_counter() - began,
            }
            done += 1
            if reference_host is not None:
                estimate = state.estimate
                if reference_rgb:
                    entry["psnr"] = float(
                        np.mean(psnr(demosaic(estimate, pattern, params.demosaic), reference_host, channel_axis=-1))
                    )
                else:
                    entry["psnr"] = float(np.mean(psnr(estimate, reference_host)))
            history.append(entry)
            if callback is not None:
                answer = callback(done, state.estimate)
                if answer is True or (isinstance(answer, np.bool_) and bool(answer)):
                    stop = True
                    break
        if stop:
            break

    estimate = state.estimate
    if pattern is None:
        return SolverResult(frames=estimate, history=history, iterations=done)
    return SolverResult(frames=demosaic(estimate, pattern, params.demosaic), history=history, iterations=done, mosaic=estimate)


def gap(
    y: Any,
    op: CactiOperator,
    denoiser: Callable[[Any, float], Any],
    params: GapParams | None = None,
    x0: Any = None,
    callback: Callback | None = None,
    reference: Any = None,
) -> SolverResult:
    """Plug-and-play GAP: data step onto {A x = y} (accelerated by default), then denoise.

    Per iteration (λ = ``params.step``, D = Σ_k C_k²)::

        accelerated:  y_acc ← y_acc + (y − A x);  x ← x + λ·Aᵀ((y_acc − A x) ⊘ D)
        plain:        x ← x + λ·Aᵀ((y − A x) ⊘ D)
        then          x ← denoiser(x, σ_s)

    with y_acc = 0 and x = Aᵀy (or A⁺y, or ``x0``) at the start, and σ_s the sigma of the
    current stage of the schedule. With λ = 1 the data step is ``op.prox_l2(x, target)``.

    Args:
        y: measurements ``(..., H, W)``, real floating, any backend; leading axes are
            independent snapshots, solved together.
        op: the camera. With a Bayer pattern the mosaic is reconstructed through its four
            planes and demosaicked at the end.
        denoiser: ``denoiser(x, sigma)`` on gray videos ``(..., B, H, W)``, e.g.
            :class:`~snapcap.recon.denoisers.tv.TVDenoiser`.
        params: :class:`GapParams` (default ``GapParams()``: 40 accelerated iterations, σ = 0).
        x0: initial frames ``(..., B, H, W)`` (or RGB ``(..., B, H, W, 3)`` for Bayer),
            overriding ``params.init``.
        callback: ``callback(iteration, x)`` after every iteration, with the 1-based iteration
            number and the current estimate in the working layout (mosaic frames for Bayer);
            returning True stops the solver.
        reference: ground-truth frames (the output's shape, or the mosaic for Bayer) to record
            the PSNR of every iteration in the history.

    Returns:
        :class:`SolverResult`.

    Raises:
        ShapeError: if y does not match the masks, or x0 / reference have the wrong shape.
        InvalidValueError: if y (or x0) holds NaN or infinity.
        DTypeError: if y is not real floating.
        ConfigError: for a wrong operator, denoiser, params or callback type.
    """
    return _solve("gap", y, op, denoiser, GapParams() if params is None else params, x0, callback, reference)


def admm(
    y: Any,
    op: CactiOperator,
    denoiser: Callable[[Any, float], Any],
    params: AdmmParams | None = None,
    x0: Any = None,
    callback: Callback | None = None,
    reference: Any = None,
) -> SolverResult:
    """Plug-and-play ADMM with the closed-form data step; returns the denoised iterate θ.

    Per iteration (λ = ``params.step``, γ = ``params.gamma``, D = Σ_k C_k²)::

        x ← (θ + b) + λ·Aᵀ((y − A(θ + b)) ⊘ (D + γ))    (op.prox_l2(θ + b, y, 1/γ) when λ = 1)
        θ ← denoiser(x − b, σ_s)
        b ← b − (x − θ)

    with θ = Aᵀy (or A⁺y, or ``x0``) and b = 0 at the start. The arguments, result and errors
    are those of :func:`gap`.
    """
    return _solve("admm", y, op, denoiser, AdmmParams() if params is None else params, x0, callback, reference)
