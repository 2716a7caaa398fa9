"""One entry point for every reconstruction method: ``reconstruct(y, op, method) -> frames``.

Methods are registered by name with a typed parameter dataclass each::

    gap-tv          accelerated GAP with total variation (the classic baseline)
    admm-tv         PnP-ADMM with total variation (noisy and real data)
    pnp-ffdnet      GAP with FFDNet (IPOL or KAIR checkpoints) and a sigma schedule
    pnp-fastdvdnet  GAP with FastDVDnet (official checkpoint layout)
    unfold          the trained deep unfolding network (``snapcap train recon``)
    birnat          BIRNAT (official checkpoints; :mod:`snapcap.recon.nets`)
    stformer        STFormer (official checkpoints)
    efficientsci    EfficientSCI (official checkpoints)

Every method takes measurements ``(..., H, W)`` (leading axes are independent snapshots,
solved together) and the :class:`~snapcap.cacti.CactiOperator`; Bayer operators return RGB
frames ``(..., B, H, W, 3)``, gray ones ``(..., B, H, W)``.
"""

from __future__ import annotations

import functools
import time
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Callable

from snapcap.backend import from_numpy, is_torch, namespace, require_finite, require_float, to_numpy
from snapcap.cacti.bayer import demosaic
from snapcap.cacti.operator import CactiOperator
from snapcap.errors import ConfigError, ShapeError
from snapcap.recon.denoisers.fastdvdnet import FastDVDnetDenoiser, load_fastdvdnet
from snapcap.recon.denoisers.ffdnet import FFDNetDenoiser, load_ffdnet
from snapcap.recon.denoisers.tv import TVDenoiser
from snapcap.recon.nets import NETS
from snapcap.recon.nets.inference import cached_net, tiled
from snapcap.recon.solvers import AdmmParams, GapParams, SolverResult, admm, gap
from snapcap.recon.train import load_reconstructor

__all__ = [
    "GapTVParams",
    "AdmmTVParams",
    "PnPFFDNetParams",
    "PnPFastDVDnetParams",
    "UnfoldParams",
    "NetParams",
    "METHODS",
    "PNP_SCI_GAP_TV",
    "GAP_TV_FAST",
    "PNP_SCI_SCHEDULE",
    "list_methods",
    "make_params",
    "ReconResult",
    "reconstruct",
]


@dataclass(frozen=True)
class GapTVParams:
    """GAP-TV: 40 accelerated GAP iterations, each followed by a TV step.

    The default TV step is isotropic Chambolle with weight 0.25 and 5 iterations (4 dual
    updates), and Bayer measurements are demosaicked bilinearly. Chosen on 28 cases
    (bench/recon_defaults.py: B = 8 to 50, gray and RGGB Bayer, with and without read noise,
    random and shifting masks, procedural scenes and the shared benchmark's real frames, coded at
    their stored B = 8 and again at 16 to 32): it is never more than 0.03 dB below the public
    PnP-SCI reference's step (isotropic, weight 0.3, 5 iterations, bilinear; ``PNP_SCI_GAP_TV``
    reproduces it) and 0.08 dB above it on average, at the same cost. The previous default,
    ``GAP_TV_FAST`` (anisotropic, weight 0.1, 3 iterations, Malvar demosaic), is 1.8x faster and
    wins on the grayscale benchmark's stored snapshots (+0.28 / +0.20 dB on drop40 / runner40) but
    falls up to 0.74 dB behind the reference on noise-free gray scenes at B >= 16 and 0.3 dB on
    Bayer ones: robustness chose the default; the fast setting stays a named option.
    """

    iterations: int = 40
    tv_weight: float = 0.25
    tv_iterations: int = 5
    tv_method: str = "chambolle"
    isotropic: bool = True
    accelerate: bool = True
    demosaic: str = "bilinear"


GAP_TV_FAST = {"tv_weight": 0.1, "tv_iterations": 3, "isotropic": False, "demosaic": "malvar"}
"""``gap-tv`` overrides for the fast TV step (snapcap's earlier default): anisotropic Chambolle,
weight 0.1, 3 iterations, Malvar demosaic; 1.8x faster than the default, best on the grayscale
benchmark's stored snapshots, up to 0.74 dB worse at large B (bench/recon_defaults.py)."""


@dataclass(frozen=True)
class AdmmTVParams:
    """PnP-ADMM with TV; ``gamma`` trades data fidelity for robustness to noise."""

    iterations: int = 40
    tv_weight: float = 0.3
    tv_iterations: int = 5
    tv_method: str = "chambolle"
    isotropic: bool = True
    gamma: float = 0.01
    demosaic: str = "malvar"


PNP_SCI_GAP_TV = {"tv_weight": 0.3, "tv_iterations": 5, "isotropic": True}
"""The public PnP-SCI reference's TV step (``gap-tv`` overrides): isotropic Chambolle, weight 0.3, 5 iterations."""

PNP_SCI_SCHEDULE = {"warm_start": 0, "sigmas": (50 / 255, 25 / 255, 12 / 255, 6 / 255), "iterations": (10, 10, 10, 10)}
"""The public PnP-SCI protocol: σ = 50, 25, 12, 6 (/255), 10 GAP iterations each, from Aᵀy."""


@dataclass(frozen=True)
class PnPFFDNetParams:
    """GAP with FFDNet. ``weights`` is a checkpoint path (net_gray.pth, net_rgb.pth...).

    Default schedule: 40 GAP-TV iterations (``warm_start``, with the reference's TV step
    ``PNP_SCI_GAP_TV``), then FFDNet at σ = 18, 8, 3 (/255) with 4 iterations each,
    continuing GAP's accelerated target from the warm start (``acc_start="measurement"``,
    see :class:`~snapcap.recon.solvers.GapParams`): 12 network passes instead of PnP-SCI's
    40, for a higher PSNR on the grayscale benchmark (39.87 / 32.69 dB against the reference's
    39.68 / 32.44 on the first snapshot of drop40 / runner40; bench/recon.py).
    ``PNP_SCI_SCHEDULE`` reproduces the public protocol exactly (from Aᵀy, y_acc = 0).
    """

    weights: str = ""
    sigmas: tuple[float, ...] = (18 / 255, 8 / 255, 3 / 255)
    iterations: tuple[int, ...] = (4, 4, 4)
    accelerate: bool = True
    warm_start: int = 40
    batch_size: int | None = None
    device: str = "cpu"
    demosaic: str = "malvar"


@dataclass(frozen=True)
class PnPFastDVDnetParams:
    """GAP with FastDVDnet (video denoiser: uses neighbouring frames); the default schedule is
    PnP-SCI's (σ = 50, 25, 12, 6 /255, 10 iterations each, from Aᵀy)."""

    weights: str = ""
    sigmas: tuple[float, ...] = (50 / 255, 25 / 255, 12 / 255, 6 / 255)
    iterations: tuple[int, ...] = (10, 10, 10, 10)
    accelerate: bool = True
    warm_start: int = 0
    batch_size: int | None = None
    device: str = "cpu"
    demosaic: str = "malvar"


@dataclass(frozen=True)
class UnfoldParams:
    """The trained unfolding network: ``checkpoint`` is its ``model.pt``."""

    checkpoint: str = ""
    device: str = "cpu"
    demosaic: str = "malvar"


@dataclass(frozen=True)
class NetParams:
    """A published network (BIRNAT, STFormer, EfficientSCI) with its official checkpoint.

    ``weights`` is the checkpoint file as the official code saved it; ``preset`` names its
    sizes (``efficientsci-small``...); left empty it is read from the checkpoint's shapes
    (:func:`snapcap.recon.nets.infer_config`); ``config`` (``"units=2,dim=16"``) gives the
    constructor arguments of a checkpoint of other sizes. Memory savers: ``half`` runs the network under
    float16 autocast (CUDA only), ``tile`` > 0 reconstructs ``tile`` x ``tile`` windows that
    overlap by ``overlap`` pixels and blends them (for captures larger than fit at once; the
    nets see less context at the seams), ``batch_size`` snapshots at a time.
    """

    weights: str = ""
    preset: str = ""
    config: str = ""
    device: str = "cpu"
    half: bool = False
    tile: int = 0
    overlap: int = 32
    batch_size: int = 1
    demosaic: str = "malvar"


@dataclass
class ReconResult:
    """Frames, per-iteration history (iterative methods), wall time and what produced them."""

    frames: Any
    method: str
    params: Any
    seconds: float
    history: list[dict[str, Any]] = field(default_factory=list)


def _tv(params) -> Any:

    return TVDenoiser(weight=params.tv_weight, n_iter=params.tv_iterations, method=params.tv_method, isotropic=params.isotropic)


def _run_gap_tv(y, op, params: GapTVParams, reference, callback):

    solver = GapParams(iterations=(params.iterations,), sigmas=(0.0,), accelerate=params.accelerate, demosaic=params.demosaic)
    return gap(y, op, _tv(params), solver, callback=callback, reference=reference)


def _run_admm_tv(y, op, params: AdmmTVParams, reference, callback):

    solver = AdmmParams(iterations=(params.iterations,), sigmas=(0.0,), gamma=params.gamma, demosaic=params.demosaic)
    return admm(y, op, _tv(params), solver, callback=callback, reference=reference)


@functools.lru_cache(maxsize=4)
def _cached_ffdnet(weights: str, device: str):

    return load_ffdnet(weights, device=device)


@functools.lru_cache(maxsize=4)
def _cached_fastdvdnet(weights: str, device: str):

    return load_fastdvdnet(weights, device=device)


def _need(value: str, name: str, method: str) -> str:
    if not value:
        raise ConfigError(f"method {method!r} needs {name}= (a checkpoint path); snapcap downloads nothing")
    return value


def _pnp(y, op, params, denoiser, reference, callback):

    x0 = None
    history: list[dict[str, Any]] = []
    if params.warm_start:
        # the reference's TV step: the FFDNet schedule below was tuned from its output
        warm_params = GapTVParams(iterations=params.warm_start, demosaic=params.demosaic, **PNP_SCI_GAP_TV)
        warm = _run_gap_tv(y, op, warm_params, reference, None)
        x0 = warm.frames  # gap takes RGB initial frames for a Bayer operator
        history = warm.history
    solver = GapParams(
        iterations=tuple(params.iterations),
        sigmas=tuple(params.sigmas),
        accelerate=params.accelerate,
        demosaic=params.demosaic,
        acc_start="zero" if x0 is None else "measurement",
    )
    result = gap(y, op, denoiser, solver, x0=x0, callback=callback, reference=reference)
    result.history = history + result.history
    return result


def _run_ffdnet(y, op, params: PnPFFDNetParams, reference, callback):

    model = _cached_ffdnet(_need(params.weights, "weights", "pnp-ffdnet"), params.device)
    # PnP-SCI's frame denoiser returns x - noise without clamping; so does this one.
    return _pnp(
        y, op, params, FFDNetDenoiser(model, batch_size=params.batch_size, device=params.device, clip=False), reference, callback
    )


def _run_fastdvdnet(y, op, params: PnPFastDVDnetParams, reference, callback):

    model = _cached_fastdvdnet(_need(params.weights, "weights", "pnp-fastdvdnet"), params.device)
    return _pnp(y, op, params, FastDVDnetDenoiser(model, batch_size=params.batch_size, device=params.device), reference, callback)


@functools.lru_cache(maxsize=4)
def _cached_unfold(checkpoint: str, device: str):

    return load_reconstructor(checkpoint, device=device)


def _net_inputs(y, op, device):
    """The measurement ``(N, H, W)`` and masks as float32 tensors on ``device``: a torch ``y``
    stays a tensor (no round trip through numpy), and the masks move there once per device."""
    import numpy as np
    import torch

    meas = y if is_torch(y) else torch.from_numpy(np.ascontiguousarray(to_numpy(y)))
    meas = meas.to(device, torch.float32).reshape((-1,) + tuple(y.shape[-2:]))
    return meas, op.masks_like(meas, torch.float32)


def _run_unfold(y, op, params: UnfoldParams, reference, callback):
    import torch

    model = _cached_unfold(_need(params.checkpoint, "checkpoint", "unfold"), params.device)
    if model.config.B != op.B:
        raise ShapeError(f"{params.checkpoint}: the network was trained for B={model.config.B}; the masks have B={op.B}")
    lead = tuple(y.shape[:-2])
    meas, masks = _net_inputs(y, op, params.device)
    if masks.ndim > 3:
        masks = masks.expand(lead + tuple(masks.shape[-3:])).reshape((-1,) + tuple(masks.shape[-3:]))
    with torch.inference_mode():
        frames = model(meas, masks).reshape(lead + (op.B,) + tuple(y.shape[-2:]))
    frames = frames.clone()
    result = frames if is_torch(y) and frames.device == y.device else from_numpy(frames.cpu().numpy(), y)
    mosaic_frames = None
    if op.bayer:
        mosaic_frames = result
        result = demosaic(result, op.bayer, params.demosaic)
    return SolverResult(frames=result, history=[], iterations=1, mosaic=mosaic_frames)


def _run_net(name: str, y, op, params: NetParams, reference, callback):
    import torch

    net, preset, colour = cached_net(name, _need(params.weights, "weights", name), params.preset, params.config, params.device)
    if colour and not op.bayer:
        raise ConfigError(f"{params.weights}: a colour {preset} (Bayer mosaic in, RGB out) needs a Bayer camera, not gray masks")
    if params.half and not str(params.device).startswith("cuda"):
        raise ConfigError("half=True: float16 inference is for CUDA devices; on the CPU use float32 (half=False)")
    if params.tile < 0 or params.batch_size < 1 or params.overlap < 0 or (params.tile and params.overlap >= params.tile):
        raise ConfigError(f"{name}: tile >= 0, 0 <= overlap < tile and batch_size >= 1 expected, got {params}")
    lead = tuple(y.shape[:-2])
    meas, masks = _net_inputs(y, op, torch.device(params.device))
    if masks.ndim > 3:
        masks = masks.expand(lead + tuple(masks.shape[-3:])).reshape((-1,) + tuple(masks.shape[-3:]))
    outputs = []
    with torch.inference_mode(), torch.autocast("cuda", dtype=torch.float16, enabled=params.half):
        for start in range(0, meas.shape[0], params.batch_size):
            part = meas[start : start + params.batch_size]
            these = masks if masks.ndim == 3 else masks[start : start + params.batch_size]
            outputs.append(tiled(net, part, these, params.tile, params.overlap).float())
    frames = torch.cat(outputs).reshape(lead + tuple(outputs[0].shape[1:]))
    result = frames if is_torch(y) and frames.device == y.device else from_numpy(frames.cpu().numpy(), y)
    mosaic_frames = None
    if op.bayer and not colour:  # a gray network reconstructs the mosaic; demosaic it
        mosaic_frames = result
        result = demosaic(result, op.bayer, params.demosaic)
    return SolverResult(frames=result, history=[], iterations=1, mosaic=mosaic_frames)


@dataclass(frozen=True)
class Method:
    params: type
    run: Callable[..., Any]
    summary: str


METHODS: dict[str, Method] = {
    "gap-tv": Method(GapTVParams, _run_gap_tv, "accelerated GAP with total variation"),
    "admm-tv": Method(AdmmTVParams, _run_admm_tv, "PnP-ADMM with total variation"),
    "pnp-ffdnet": Method(PnPFFDNetParams, _run_ffdnet, "GAP with the FFDNet denoiser (checkpoint: weights=)"),
    "pnp-fastdvdnet": Method(
        PnPFastDVDnetParams, _run_fastdvdnet, "GAP with the FastDVDnet video denoiser (checkpoint: weights=)"
    ),
    "unfold": Method(UnfoldParams, _run_unfold, "trained deep unfolding network (checkpoint=)"),
    **{
        name: Method(NetParams, functools.partial(_run_net, name), f"{entry.paper} (official checkpoint: weights=)")
        for name, entry in NETS.items()
    },
}


def list_methods() -> dict[str, str]:
    """Method name -> one-line description."""
    return {name: method.summary for name, method in METHODS.items()}


def make_params(method: str, **overrides: Any):
    """The parameter dataclass of ``method`` with ``overrides`` (unknown names are an error)."""
    if method not in METHODS:
        raise ConfigError(f"unknown reconstruction method {method!r}; expected one of {', '.join(METHODS)}")
    cls = METHODS[method].params
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ConfigError(f"method {method!r} has no parameter(s) {', '.join(unknown)}; it takes {', '.join(sorted(known))}")
    return cls(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in overrides.items()})


def reconstruct(
    y: Any,
    op: CactiOperator,
    method: str = "gap-tv",
    params: Any = None,
    reference: Any = None,
    callback: Callable[[int, Any], bool | None] | None = None,
    **overrides: Any,
) -> ReconResult:
    """Reconstruct frames from CACTI measurements.

    Args:
        y: measurements ``(..., H, W)``, real floating, any backend.
        op: the camera (:class:`CactiOperator`, gray or Bayer).
        method: a name of :data:`METHODS`.
        params: the method's parameter dataclass (default: its defaults with ``overrides``).
        reference: ground-truth frames (the output's shape; the mosaic for Bayer) to record
            the PSNR per iteration in ``history``.
        callback: ``callback(iteration, x)`` for iterative methods; True stops early.

    Returns:
        :class:`ReconResult` with ``frames`` in ``y``'s backend and dtype.
    """
    if not isinstance(op, CactiOperator):
        raise ConfigError(f"op must be a CactiOperator, got {type(op).__name__}")
    require_float(y, "y")
    require_finite(y, "y")
    if tuple(y.shape[-2:]) != op.meas_shape:
        raise ShapeError(f"measurement is {tuple(y.shape[-2:])} but the masks are {op.meas_shape} (masks {op.masks.shape})")
    if method not in METHODS:
        raise ConfigError(f"unknown reconstruction method {method!r}; expected one of {', '.join(METHODS)}")
    entry = METHODS[method]
    if params is None:
        params = make_params(method, **overrides)
    elif overrides:
        params = replace(params, **overrides)
    if not isinstance(params, entry.params):
        raise ConfigError(f"method {method!r} takes {entry.params.__name__}, got {type(params).__name__}")
    namespace(y)
    start = time.perf_counter()
    result = entry.run(y, op, params, reference, callback)
    return ReconResult(
        frames=result.frames, method=method, params=params, seconds=time.perf_counter() - start, history=result.history
    )


def params_to_dict(params: Any) -> dict[str, Any]:
    return asdict(params)
