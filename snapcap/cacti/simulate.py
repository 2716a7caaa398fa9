"""Video in, CACTI measurements out: streamed in chunks, every random draw seeded and recorded.

A video of F frames becomes T = F // B snapshots of B consecutive frames (trailing frames that
do not fill a snapshot are dropped and counted in the record). RGB video is Bayer-mosaicked
first. Noise for snapshot t of video n is drawn from ``numpy.random.default_rng([noise_seed,
n, t])``, so any single snapshot can be re-simulated bit for bit, whatever the chunking.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np
from tqdm.auto import tqdm

from snapcap import __version__
from snapcap.backend import (
    backend_name,
    is_array_object,
    is_numpy,
    is_torch,
    namespace,
    require_data,
    require_finite,
    to_numpy,
    torch_device,
)
from snapcap.cacti.bayer import mosaic, normalize_pattern
from snapcap.cacti.masks import MaskSpec, make_masks
from snapcap.cacti.noise import NoiseModel, NoNoise, noise_from_dict, parse_noise
from snapcap.cacti.operator import CactiOperator
from snapcap.errors import ConfigError, DTypeError, InvalidValueError, ShapeError

__all__ = ["SimulationResult", "SimulatedChunk", "plan_simulation", "simulate", "simulate_iter", "snapshot_rng"]

_INTEGER_SCALE = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}


def snapshot_rng(noise_seed: int, video: int, snapshot: int) -> np.random.Generator:
    """The generator of the noise of snapshot ``snapshot`` of video ``video``."""
    return np.random.default_rng([int(noise_seed), int(video), int(snapshot)])


@dataclass(frozen=True)
class SimulatedChunk:
    """Snapshots ``start .. start + len(meas)`` of video ``video``: ``meas`` is ``(n, H, W)``."""

    video: int
    start: int
    meas: Any


@dataclass
class SimulationPlan:
    """What a simulation will do, fixed before any frame is read (see :func:`plan_simulation`)."""

    operator: CactiOperator
    noise: NoiseModel
    params: dict[str, Any]
    rgb: bool
    scale: float
    per_video_masks: bool
    N: int
    T: int


@dataclass
class SimulationResult:
    """Measurements ``meas (N, T, H, W)``, the masks, the operator and the full record."""

    meas: Any
    masks: np.ndarray
    operator: CactiOperator
    params: dict[str, Any] = field(default_factory=dict)


def check_seed(value: Any, name: str = "seed") -> int:
    """A seed: an integer >= 0 (numpy integers too; not a bool)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 0:
        raise InvalidValueError(f"{name} must be an integer >= 0, got {value!r}")
    return int(value)


def _require_video(video: Any) -> Any:
    if video is None or not hasattr(video, "shape") or not hasattr(video, "dtype"):
        raise DTypeError(
            f"video must be an array (numpy, torch, cupy, or an h5py dataset) of shape (N, F, H, W[, 3]); "
            f"got {type(video).__name__} (wrap lists with numpy.asarray)"
        )
    return require_data(video, "video")


def _video_layout(video: Any) -> tuple[int, int, int, int, bool]:
    _require_video(video)
    shape = tuple(int(s) for s in video.shape)
    if len(shape) == 4:
        n, f, h, w = shape
        return n, f, h, w, False
    if len(shape) == 5 and shape[-1] == 3:
        n, f, h, w, _ = shape
        return n, f, h, w, True
    raise ShapeError(
        f"video must have shape (N, F, H, W) for gray or (N, F, H, W, 3) for RGB, got {shape}; "
        "add a leading axis for a single video"
    )


def _resolve_noise(noise: Any) -> NoiseModel:
    if noise is None:
        return NoNoise()
    if isinstance(noise, NoiseModel):
        return noise
    if isinstance(noise, str):
        return parse_noise(noise)
    if isinstance(noise, dict):
        return noise_from_dict(noise)
    raise ConfigError(
        f"noise must be a NoiseModel, a spec string like 'gaussian:sigma=0.01', a dict or None; got {type(noise).__name__}"
    )


def plan_simulation(
    video_shape: tuple[int, ...],
    video_dtype: Any,
    B: int | None = None,
    masks: Any = None,
    bayer: str | None = None,
    noise: Any = None,
    seed: int = 0,
    noise_seed: int | None = None,
    normalize: bool = True,
    full_scale: float | None = None,
) -> SimulationPlan:
    """Resolve masks, operator, noise and the record for a video of the given shape and dtype."""

    class _Shape:
        shape = video_shape
        dtype = video_dtype

    n_videos, n_frames, height, width, rgb = _video_layout(_Shape)
    if B is not None and (isinstance(B, (bool, np.bool_)) or not isinstance(B, (int, np.integer)) or B < 1):
        raise InvalidValueError(f"B (frames per snapshot) must be an integer >= 1, got {B!r}")
    seed = check_seed(seed, "seed")
    if noise_seed is not None:
        noise_seed = check_seed(noise_seed, "noise_seed")
    dtype = np.dtype(str(video_dtype).rsplit(".", 1)[-1])
    if dtype.kind not in "uif":
        raise DTypeError(f"video must be uint8, uint16 or floating, got dtype {video_dtype}")
    if dtype.kind in "ui" and dtype not in _INTEGER_SCALE:
        raise DTypeError(f"integer video must be uint8 or uint16 (scaled by 255 or 65535), got {dtype}")
    scale = _INTEGER_SCALE.get(dtype, 1.0) if normalize else 1.0

    mask_record: dict[str, Any]
    per_video = False
    if masks is None or isinstance(masks, (str, MaskSpec)):
        spec = (
            masks
            if isinstance(masks, MaskSpec)
            else MaskSpec(kind=masks or "random", B=int(B or 8), H=height, W=width, seed=int(seed))
        )
        host_masks = make_masks(spec)
        mask_record = spec.to_dict()
    else:
        host_masks = np.asarray(to_numpy(masks))
        if host_masks.ndim == 4:
            if host_masks.shape[0] != n_videos:
                raise ShapeError(f"per-video masks must have shape (N={n_videos}, B, H, W), got {host_masks.shape}")
            per_video = True
        elif host_masks.ndim != 3:
            raise ShapeError(f"masks must have shape (B, H, W) or (N, B, H, W), got {host_masks.shape}")
        mask_record = {"kind": "array", "shape": list(host_masks.shape)}
    b_masks = int(host_masks.shape[-3])
    if B is not None and int(B) != b_masks:
        raise ShapeError(f"B={B} but the masks hold {b_masks} frames (shape {host_masks.shape})")
    if tuple(host_masks.shape[-2:]) != (height, width):
        raise ShapeError(f"masks are {host_masks.shape[-2]}x{host_masks.shape[-1]} but the video frames are {height}x{width}")
    if n_frames < b_masks:
        raise ShapeError(f"video has {n_frames} frames, fewer than B={b_masks}: no snapshot can be formed")
    pattern = normalize_pattern(bayer)
    if rgb and pattern is None:
        pattern = "RGGB"
    operator = CactiOperator(host_masks)
    if pattern is not None and (height % 2 or width % 2):
        raise ShapeError(f"Bayer mosaicking needs even H and W, got {height}x{width}")
    noise_model = _resolve_noise(noise)
    mask_sum_max = float(np.max(operator.mask_sum()))
    value_max = 1.0 if scale != 1.0 or dtype.kind == "f" else float(np.iinfo(dtype).max)
    if full_scale is None:
        full_scale = value_max * mask_sum_max if mask_sum_max > 0 else value_max
    if not (math.isfinite(full_scale) and full_scale > 0):
        raise InvalidValueError(f"full_scale must be a positive number, got {full_scale!r}")
    n_snapshots = n_frames // b_masks

    params = {
        "B": b_masks,
        "T": n_snapshots,
        "N": n_videos,
        "H": height,
        "W": width,
        "input": {"shape": list(video_shape), "dtype": str(dtype), "rgb": rgb, "scale": scale, "normalize": bool(normalize)},
        "frames_used": n_snapshots * b_masks,
        "frames_dropped": n_frames - n_snapshots * b_masks,
        "bayer": pattern,
        "masks": mask_record,
        "per_video_masks": per_video,
        "noise": noise_model.to_dict(),
        "noise_seed": int(seed if noise_seed is None else noise_seed),
        "noise_rng": "numpy.random.default_rng([noise_seed, video, snapshot])",
        "full_scale": float(full_scale),
        "snapcap_version": __version__,
    }
    return SimulationPlan(operator, noise_model, params, rgb, scale, per_video, n_videos, n_snapshots)


def _frames_chunk(video: Any, n: int, t0: int, t1: int, B: int, plan: SimulationPlan, device: Any = None):
    """Frames of snapshots t0..t1 of video n as float ``(t1 - t0, B, H, W)`` (mosaicked if RGB).

    With a torch ``device`` the raw chunk (integers before the conversion: fewer bytes to move)
    goes there first, and the arithmetic runs on it.
    """
    raw = video[n, t0 * B : t1 * B, ...]
    if not is_array_object(raw) or is_numpy(raw):
        raw = np.asarray(raw)
    if device is not None:
        import torch

        raw = (torch.from_numpy(np.ascontiguousarray(raw)) if is_numpy(raw) else raw).to(device)
    xp = namespace(raw)
    raw = xp.reshape(raw, (t1 - t0, B) + tuple(raw.shape[1:]))
    if plan.rgb:  # a selection: cheaper before the conversion to float, and exact either way
        raw = mosaic(raw, plan.params["bayer"])
    if xp.isdtype(raw.dtype, "real floating"):
        frames = raw
        where = f"video {n}, frames {t0 * B}..{t1 * B - 1}"
        require_finite(frames, where)
        if plan.params["input"].get("normalize", True):
            low, high = float(xp.min(frames)), float(xp.max(frames))
            if low < 0 or high > 1:
                raise InvalidValueError(
                    f"{where}: float video must be in [0, 1], got values in [{low:g}, {high:g}]; scale it, or pass "
                    "normalize=False (--raw) to simulate the values as they are"
                )
    else:  # integers cannot hold NaN
        frames = xp.astype(raw, xp.float32)
    if plan.scale != 1.0:
        frames = frames / plan.scale
    return frames


def simulate_iter(
    video: Any,
    B: int | None = None,
    masks: Any = None,
    bayer: str | None = None,
    noise: Any = None,
    seed: int = 0,
    noise_seed: int | None = None,
    normalize: bool = True,
    full_scale: float | None = None,
    chunk_size: int = 16,
    plan: SimulationPlan | None = None,
    videos: range | None = None,
    index_offset: int = 0,
    device: Any = None,
) -> Iterator[SimulatedChunk]:
    """Yield measurements chunk by chunk (at most ``chunk_size`` snapshots of one video each).

    ``video`` may be any sliceable array: numpy (or a memmap), an h5py dataset, torch or cupy
    tensors. Only one chunk of frames is in memory at a time. See :func:`simulate` for the
    arguments; ``videos`` restricts the run to some video indices. ``index_offset`` is added to
    the video index in the noise generator's seed, so a video simulated alone reproduces its
    noise as item ``index_offset`` of a larger collection (dataset files use the global index).
    ``device`` (a torch device) moves each chunk there and yields torch tensors on it.
    """
    if chunk_size < 1:
        raise InvalidValueError(f"chunk_size must be >= 1, got {chunk_size}")
    _require_video(video)
    if device is not None:
        device = torch_device(device)
        if is_array_object(video) and not (is_numpy(video) or is_torch(video)):
            raise ConfigError(f"device={str(device)!r} takes numpy, h5py or torch video, not {backend_name(video)} arrays")
    if plan is None:
        plan = plan_simulation(tuple(video.shape), video.dtype, B, masks, bayer, noise, seed, noise_seed, normalize, full_scale)
    b = plan.params["B"]
    fs = plan.params["full_scale"]
    nseed = plan.params["noise_seed"]
    for n in videos if videos is not None else range(plan.N):
        op = plan.operator.with_masks(plan.operator.masks[n]) if plan.per_video_masks else plan.operator
        for t0 in range(0, plan.T, chunk_size):
            t1 = min(t0 + chunk_size, plan.T)
            frames = _frames_chunk(video, n, t0, t1, b, plan, device)
            meas = op.A(frames)
            if not isinstance(plan.noise, NoNoise):
                xp = namespace(meas)
                noisy = [
                    plan.noise.apply(meas[i, ...], snapshot_rng(nseed, index_offset + n, t0 + i), full_scale=fs)
                    for i in range(t1 - t0)
                ]
                meas = xp.stack(noisy)
            yield SimulatedChunk(video=n, start=t0, meas=meas)


def simulate(
    video: Any,
    B: int | None = None,
    masks: Any = None,
    bayer: str | None = None,
    noise: Any = None,
    seed: int = 0,
    noise_seed: int | None = None,
    normalize: bool = True,
    full_scale: float | None = None,
    chunk_size: int = 16,
    out: Any = None,
    progress: bool = False,
    device: Any = None,
) -> SimulationResult:
    """Simulate CACTI measurements of a batch of videos.

    Args:
        video: ``(N, F, H, W)`` gray (or mosaic) or ``(N, F, H, W, 3)`` RGB; uint8/uint16
            (divided by 255/65535 when ``normalize``) or floating in [0, 1].
        B: frames per snapshot (default: the masks' B, or 8 for generated masks).
        masks: None (i.i.d. random binary from ``seed``), a kind name of
            :data:`snapcap.cacti.masks.MASK_KINDS`, a :class:`MaskSpec`, or an array
            ``(B, H, W)`` (shared) or ``(N, B, H, W)`` (one set per video).
        bayer: CFA pattern for RGB video (default RGGB); for gray input it only records that
            the frames already are mosaics.
        noise: a :class:`NoiseModel`, a spec string (``"poisson:photons=1000+gaussian:sigma=0.01"``)
            or None.
        seed: seed of generated masks, and of the noise unless ``noise_seed`` is given.
        normalize: scale integer video to [0, 1]; False keeps raw values (e.g. 0..255).
        full_scale: measurement value of the sensor's full scale (default: the brightest
            possible measurement, max Σ_k C_k times the largest input value).
        chunk_size: snapshots per chunk; memory is bounded by one chunk of frames.
        out: optional preallocated ``(N, T, H, W)`` array-like (numpy, memmap, h5py dataset) to
            write into; by default a new array of the input's backend.
        progress: show a tqdm progress bar.
        device: a torch device (``"cpu"``, ``"cuda"``, ``"cuda:1"``) to run the arithmetic on,
            chunk by chunk; numpy input still gives numpy measurements (moved back per chunk),
            torch input gives tensors on ``device``. Default: the input's own backend. The
            noise is drawn on the host from the same seeds either way, so every device gives
            the same measurements up to float32 rounding (recorded as ``params["device"]``).

    Returns:
        :class:`SimulationResult` with ``meas (N, T, H, W)``, ``masks``, ``operator`` (on gray or
        mosaic frames) and ``params``: everything needed to re-simulate, JSON-serialisable.
    """
    _require_video(video)
    plan = plan_simulation(tuple(video.shape), video.dtype, B, masks, bayer, noise, seed, noise_seed, normalize, full_scale)
    device = None if device is None else torch_device(device)
    height, width = plan.params["H"], plan.params["W"]
    target = out
    device_chunks: list[Any] | None = None
    if target is None:
        if is_numpy(video) or not is_array_object(video):  # numpy, memmap, h5py dataset...
            dtype = np.float64 if np.dtype(str(video.dtype).rsplit(".", 1)[-1]) == np.float64 else np.float32
            target = np.empty((plan.N, plan.T, height, width), dtype=dtype)
        else:
            device_chunks = []
    elif tuple(target.shape) != (plan.N, plan.T, height, width):
        raise ShapeError(f"out must have shape (N, T, H, W) = {(plan.N, plan.T, height, width)}, got {tuple(target.shape)}")
    elif np.dtype(str(target.dtype).rsplit(".", 1)[-1]).kind != "f":
        raise DTypeError(f"out must be a floating array (measurements are not integers), got dtype {target.dtype}")
    elif isinstance(target, np.ndarray) and not target.flags.writeable:
        raise InvalidValueError("out is a read-only array; pass a writable one")
    total = plan.N * plan.T

    with tqdm(total=total, desc="simulate", unit="snapshot", disable=not progress) as bar:
        for chunk in simulate_iter(video, chunk_size=chunk_size, plan=plan, device=device):
            stop = chunk.start + chunk.meas.shape[0]
            if device_chunks is not None:
                device_chunks.append(chunk.meas)
            else:
                values = to_numpy(chunk.meas)
                target[chunk.video, chunk.start : stop] = values
            bar.update(stop - chunk.start)
    if device_chunks is not None:
        xp = namespace(device_chunks[0])
        meas = xp.reshape(xp.concat(device_chunks, axis=0), (plan.N, plan.T, height, width))
    else:
        meas = target
    params = dict(plan.params)
    params["backend"] = backend_name(meas) if is_array_object(meas) else "array-like"
    if device is not None:
        params["device"] = str(device)
    return SimulationResult(meas=meas, masks=np.array(plan.operator.masks), operator=plan.operator, params=params)
