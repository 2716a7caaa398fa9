"""Groups of pictures: the software-compression counterpart of a coded snapshot.

A video codec keeps every ``gop_size``-th frame whole (the I-frame) and codes the frames between
as P-frames: each block of a P-frame is predicted from the previous frame displaced by a motion
vector, and only the residual = frame − prediction is stored. VCCV (captioning in compressed
video) captions from the I-frames and the residuals; this module makes both from a video, in two
ways:

* :func:`encode_gops` / :func:`decode_gops`: a P-frame encoder emulation in numpy. Motion
  estimation by exhaustive full-pixel block matching (:func:`block_motion`, sum of absolute
  differences over a ``±search_range`` window), motion-compensated prediction
  (:func:`motion_compensate`, edge pixels replicated outside the frame), residual = frame −
  prediction stored in a wider dtype, an I-frame every ``gop_size`` frames. Nothing is
  quantised, so ``decode_gops(encode_gops(video))`` equals ``video`` exactly, and residuals are
  exactly zero wherever motion compensation is perfect (e.g. a frame translated by whole pixels
  within the search range).
* :func:`codec_side_data`: a real codec (FFmpeg through PyAV, ``pip install av``) encodes the
  video with the same GOP structure; its decoder exports the motion vectors (``flags2
  +export_mvs``) and frame types; the residuals are the decoded P-frames minus their
  motion-compensated prediction from the previous decoded frame with the codec's own vectors
  (FFmpeg's decoder does not export the transform-coded residual itself, so this is CoViAR's
  "accumulated"-style residual for one step, not the bitstream's coefficients).

:func:`gop_inputs` reduces either to what VCCV consumes: one I-frame and one residual frame per
GOP. Arrays are numpy; videos are ``(F, H, W)`` gray or ``(F, H, W, C)`` colour (channels last),
``uint8``/integer or float. Inputs are never mutated.
"""

from __future__ import annotations

import io
import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from snapcap.errors import BackendUnavailableError, ConfigError, DTypeError, InvalidValueError, ShapeError

__all__ = [
    "GopStream",
    "GopInputs",
    "CodecSideData",
    "RESIDUAL_REDUCTIONS",
    "block_motion",
    "motion_compensate",
    "encode_gops",
    "decode_gops",
    "codec_side_data",
    "gop_inputs",
    "codec_available",
]

RESIDUAL_REDUCTIONS = ("mean-abs", "mean", "last")
"""How :func:`gop_inputs` folds the residuals of a GOP's P-frames into one residual frame."""


# --- checks -----------------------------------------------------------------------------------


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or int(value) < minimum:
        raise InvalidValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_video(video: Any, name: str = "video") -> np.ndarray:
    """A video as a numpy array ``(F, H, W)`` or ``(F, H, W, C)``, integer or float, finite."""
    if hasattr(video, "detach"):  # a torch tensor
        video = video.detach().cpu().numpy()
    video = np.asarray(video)
    if video.ndim not in (3, 4) or min(video.shape[:3], default=0) < 1 or (video.ndim == 4 and video.shape[3] < 1):
        raise ShapeError(
            f"{name} must have shape (F, H, W) (gray) or (F, H, W, C) (channels last) with F, H, W >= 1, got {video.shape}"
        )
    if video.dtype == np.bool_ or not (np.issubdtype(video.dtype, np.integer) or np.issubdtype(video.dtype, np.floating)):
        raise DTypeError(f"{name} must hold integers (e.g. uint8) or floats, got dtype {video.dtype}")
    if np.issubdtype(video.dtype, np.floating) and not np.isfinite(video).all():
        raise InvalidValueError(f"{name} holds NaN or infinite values")
    return video


def _residual_dtype(dtype: np.dtype) -> np.dtype:
    """A dtype that holds frame − prediction of ``dtype`` values without loss (floats: see intra blocks)."""
    if np.issubdtype(dtype, np.floating):
        return np.dtype(np.float64)
    info = np.iinfo(dtype)
    for candidate in (np.int16, np.int32, np.int64):
        wide = np.iinfo(candidate)
        if wide.min <= info.min - info.max and info.max - info.min <= wide.max:
            return np.dtype(candidate)
    return np.dtype(np.int64)  # uint64 / int64 extremes: numpy wraps, intra blocks catch it


def _grid(height: int, width: int, block_size: int) -> tuple[int, int]:
    return math.ceil(height / block_size), math.ceil(width / block_size)


def _as_channels(frames: np.ndarray, color: bool) -> np.ndarray:
    return frames if color else frames[..., None]


# --- motion estimation and compensation -------------------------------------------------------


def _candidates(search_range: int) -> list[tuple[int, int]]:
    """Displacements ordered by L1 length, then raster order: ties go to the shortest vector."""
    span = range(-search_range, search_range + 1)
    return sorted(((dy, dx) for dy in span for dx in span), key=lambda v: (abs(v[0]) + abs(v[1]), v[0], v[1]))


def block_motion(
    reference: Any, target: Any, block_size: int = 8, search_range: int = 4, color: bool | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Motion estimation by exhaustive full-pixel block matching.

    For every ``block_size`` × ``block_size`` block of ``target`` (the last row and column of
    blocks may be partial) finds the displacement v = (dy, dx), ``|dy|, |dx| <= search_range``,
    minimising the sum of absolute differences over the block's pixels and channels

        SAD(v) = Σ_{p ∈ block} |target[p] − reference[p + v]|,

    with ``reference`` extended by replicating its edge pixels. Ties go to the shortest vector
    (L1), then to the first in raster order, so a static block always gets (0, 0).

    Args:
        reference: previous frame(s) ``(..., H, W)`` or ``(..., H, W, C)``.
        target: frame(s) to predict, the same shape.
        block_size: block side in pixels (>= 1).
        search_range: largest displacement searched along each axis (>= 0).
        color: whether the last axis is channels. None: when the inputs have 3+ axes and the
            last has at most 4 entries; pass it for batches of gray frames ``(L, H, W)``.

    Returns:
        ``(motion, sad)``: ``(..., nby, nbx, 2)`` int64 displacements (dy, dx) (the prediction
        of a block is the reference at the block's pixels + v) and ``(..., nby, nbx)`` float64 costs.

    Raises:
        ShapeError: the frames' shapes differ or are too small.
        InvalidValueError: bad ``block_size`` / ``search_range``; NaN in the frames.
    """
    block_size = _check_int("block_size", block_size, 1)
    search_range = _check_int("search_range", search_range, 0)
    reference = np.asarray(reference)
    target = np.asarray(target)
    if reference.shape != target.shape:
        raise ShapeError(f"reference and target must have the same shape, got {reference.shape} and {target.shape}")
    if color is None:
        color = reference.ndim >= 3 and reference.shape[-1] <= 4
    if reference.ndim < (3 if color else 2):
        raise ShapeError(f"frames must have shape (..., H, W{', C' if color else ''}), got {reference.shape}")
    for name, array in (("reference", reference), ("target", target)):
        if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
            raise InvalidValueError(f"{name} holds NaN or infinite values")
    if np.issubdtype(reference.dtype, np.floating) or np.issubdtype(target.dtype, np.floating):
        work = np.float64
    elif reference.dtype in (np.uint8, np.int8) and target.dtype in (np.uint8, np.int8):
        work = np.int16  # |difference| <= 255: half the memory traffic of wider integers
    else:
        work = np.int64
    ref = _as_channels(reference, color).astype(work, copy=False)
    tgt = _as_channels(target, color).astype(work, copy=False)
    lead = ref.shape[:-3]
    height, width, channels = ref.shape[-3:]
    ref = ref.reshape((-1, height, width, channels))
    tgt = tgt.reshape((-1, height, width, channels))
    rows, cols = _grid(height, width, block_size)
    pad_h, pad_w = rows * block_size - height, cols * block_size - width
    s = search_range
    ref_pad = np.pad(ref, ((0, 0), (s, s + pad_h), (s, s + pad_w), (0, 0)), mode="edge")
    tgt_pad = np.pad(tgt, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    # int16 holds |difference| summed over <= 128 uint8 channels; a block's sum needs int64 at worst.
    accumulate = work if work != np.int16 or channels <= 128 else np.int64
    block_sum = (
        np.float64
        if work == np.float64
        else (np.int32 if work == np.int16 and block_size**2 * channels * 255 < 2**31 else np.int64)
    )
    valid = None
    if pad_h or pad_w:  # replicated pixels of partial blocks do not count
        valid = np.zeros((rows * block_size, cols * block_size), dtype=accumulate)
        valid[:height, :width] = 1
    count = ref.shape[0]
    best = np.full((count, rows, cols), np.inf)
    motion = np.zeros((count, rows, cols, 2), dtype=np.int64)
    for dy, dx in _candidates(s):
        shifted = ref_pad[:, s + dy : s + dy + rows * block_size, s + dx : s + dx + cols * block_size]
        per_channel = np.abs(tgt_pad - shifted)
        diff = per_channel[..., 0].astype(accumulate)
        for channel in range(1, channels):  # explicit adds: far faster than sum(axis=-1, dtype=...)
            diff += per_channel[..., channel]
        if valid is not None:
            diff *= valid
        sad = diff.reshape(count, rows, block_size, cols, block_size).sum(axis=4, dtype=block_sum).sum(axis=2).astype(np.float64)
        better = sad < best
        best = np.where(better, sad, best)
        motion[better] = (dy, dx)
    return motion.reshape(lead + (rows, cols, 2)), best.reshape(lead + (rows, cols))


def _source_index(motion: np.ndarray, height: int, width: int, block_size: int) -> np.ndarray:
    """Flat source pixel index ``(L, H·W)`` of each target pixel under block motion ``(L, nby, nbx, 2)``."""
    ys = np.arange(height)
    xs = np.arange(width)
    per_pixel = motion[:, ys // block_size][:, :, xs // block_size]  # (L, H, W, 2)
    sy = np.clip(ys[None, :, None] + per_pixel[..., 0], 0, height - 1)
    sx = np.clip(xs[None, None, :] + per_pixel[..., 1], 0, width - 1)
    return (sy * width + sx).reshape(motion.shape[0], height * width)


def motion_compensate(reference: Any, motion: Any, block_size: int = 8, color: bool | None = None) -> np.ndarray:
    """Motion-compensated prediction: each block copied from ``reference`` displaced by its vector.

    ``prediction[p] = reference[clip(p + v(block of p))]`` (edge pixels replicated outside the
    frame), full-pixel, no interpolation: every predicted value is a value of ``reference``.

    Args:
        reference: frame(s) ``(..., H, W)`` or ``(..., H, W, C)``.
        motion: ``(..., nby, nbx, 2)`` integer displacements (dy, dx), as :func:`block_motion` gives.
        block_size: block side in pixels.
        color: whether the last axis of ``reference`` is channels (see :func:`block_motion`).

    Returns:
        The prediction, the shape and dtype of ``reference``.

    Raises:
        ShapeError: ``motion`` does not fit the frames' block grid.
        DTypeError: ``motion`` is not integer.
    """
    block_size = _check_int("block_size", block_size, 1)
    reference = np.asarray(reference)
    motion = np.asarray(motion)
    if color is None:
        color = reference.ndim >= 3 and reference.shape[-1] <= 4
    ref = _as_channels(reference, color)
    if ref.ndim < 3:
        raise ShapeError(f"reference must have shape (..., H, W{', C' if color else ''}), got {reference.shape}")
    height, width, channels = ref.shape[-3:]
    lead = ref.shape[:-3]
    rows, cols = _grid(height, width, block_size)
    if motion.shape != lead + (rows, cols, 2):
        raise ShapeError(
            f"motion must have shape {lead + (rows, cols, 2)} for frames {reference.shape} "
            f"and block_size {block_size}, got {motion.shape}"
        )
    if not np.issubdtype(motion.dtype, np.integer):
        raise DTypeError(f"motion must hold integer displacements, got dtype {motion.dtype}")
    flat = ref.reshape((-1, height * width, channels))
    index = _source_index(motion.reshape((-1, rows, cols, 2)).astype(np.int64), height, width, block_size)
    out = np.take_along_axis(flat, index[..., None], axis=1)
    return out.reshape(reference.shape)


# --- the emulated encoder ---------------------------------------------------------------------


@dataclass(frozen=True)
class GopStream:
    """A video coded as groups of pictures by :func:`encode_gops` (lossless).

    Attributes:
        iframes: ``(G, H, W[, C])`` the I-frames, one per GOP, as stored (dtype of the video).
        frame_types: one letter per frame, ``"I"`` or ``"P"`` (``"IPPPIPPP"`` for gop_size 4).
        motion: ``(F, nby, nbx, 2)`` int16 block displacements (dy, dx) of each frame (zero on I-frames).
        intra: ``(F, nby, nbx)`` bool: blocks stored as they are (prediction 0). Only float videos
            have them, where frame − prediction would not add back exactly.
        residuals: ``(F, H, W[, C])`` frame − prediction in :attr:`residual_dtype` (zero on I-frames).
        gop_size, block_size, search_range: the coding parameters.
        dtype: the video's dtype (decoding returns it).
    """

    iframes: np.ndarray
    frame_types: str
    motion: np.ndarray
    intra: np.ndarray
    residuals: np.ndarray
    gop_size: int
    block_size: int
    search_range: int
    dtype: str

    @property
    def num_frames(self) -> int:
        return len(self.frame_types)

    @property
    def num_gops(self) -> int:
        return int(self.iframes.shape[0])

    @property
    def color(self) -> bool:
        return self.iframes.ndim == 4

    @property
    def residual_dtype(self) -> np.dtype:
        return self.residuals.dtype

    def gop_slices(self) -> list[slice]:
        """The frames of each GOP: ``slice(start, stop)`` per I-frame."""
        starts = [index for index, kind in enumerate(self.frame_types) if kind == "I"]
        return [slice(start, stop) for start, stop in zip(starts, starts[1:] + [self.num_frames])]


def encode_gops(video: Any, gop_size: int, block_size: int = 8, search_range: int = 4) -> GopStream:
    """Code a video as I-frames and P-frame residuals (block-matching P-frame encoder emulation).

    Frame ``f`` is an I-frame when ``f % gop_size == 0``; every other frame is a P-frame
    predicted from frame ``f − 1`` (the previous decoded frame, which is the original since
    nothing is quantised): motion by :func:`block_motion`, prediction by
    :func:`motion_compensate`, residual = frame − prediction in a dtype that holds it exactly
    (``uint8`` -> ``int16``, ``uint16`` -> ``int32``, floats -> ``float64``). A float block
    whose prediction + residual would not round back to the frame bit for bit is stored intra
    (prediction 0, residual = the block), so decoding is exact for every input. For float32 (and
    float16) frames that happens only between values more than 2^29 apart in magnitude; float64
    frames have no wider type to subtract in, and many of their blocks end up intra: quantise
    such video to uint8 or float32 first.

    Args:
        video: ``(F, H, W)`` gray or ``(F, H, W, C)`` frames, integer or float.
        gop_size: frames per group of pictures (I-frame period), >= 1.
        block_size: block side of motion estimation, >= 1.
        search_range: the largest displacement searched along each axis, >= 0.

    Returns:
        The :class:`GopStream`.

    Raises:
        ShapeError, DTypeError, InvalidValueError: bad video or parameters (the message names it).
    """
    video = _check_video(video)
    gop_size = _check_int("gop_size", gop_size, 1)
    block_size = _check_int("block_size", block_size, 1)
    search_range = _check_int("search_range", search_range, 0)
    frames, height, width = video.shape[:3]
    color = video.ndim == 4
    rows, cols = _grid(height, width, block_size)
    residual_dtype = _residual_dtype(video.dtype)
    types = "".join("I" if index % gop_size == 0 else "P" for index in range(frames))
    motion = np.zeros((frames, rows, cols, 2), dtype=np.int16)
    intra = np.zeros((frames, rows, cols), dtype=bool)
    residuals = np.zeros(video.shape, dtype=residual_dtype)
    p_index = np.array([index for index, kind in enumerate(types) if kind == "P"], dtype=np.int64)
    if p_index.size:
        targets, references = video[p_index], video[p_index - 1]
        vectors, _ = block_motion(references, targets, block_size, search_range, color=color)
        prediction = motion_compensate(references, vectors, block_size, color=color)
        predicted = prediction.astype(residual_dtype)
        residual = targets.astype(residual_dtype) - predicted
        exact = (predicted + residual).astype(video.dtype) == targets
        if not exact.all():
            bad = _as_channels(~exact, color).any(axis=-1)
            pad = ((0, 0), (0, rows * block_size - height), (0, cols * block_size - width))
            bad_blocks = np.pad(bad, pad).reshape(len(p_index), rows, block_size, cols, block_size).any(axis=(2, 4))
            intra[p_index] = bad_blocks
            pixel_intra = bad_blocks[:, np.arange(height) // block_size][:, :, np.arange(width) // block_size]
            pixel_intra = pixel_intra[..., None] if color else pixel_intra
            residual = np.where(pixel_intra, targets.astype(residual_dtype), residual)
        motion[p_index] = vectors.astype(np.int16)
        residuals[p_index] = residual
    iframes = video[[index for index, kind in enumerate(types) if kind == "I"]].copy()
    return GopStream(iframes, types, motion, intra, residuals, gop_size, block_size, search_range, str(video.dtype))


def decode_gops(stream: GopStream) -> np.ndarray:
    """The video of a :class:`GopStream`: I-frames as stored, P-frames = prediction + residual.

    Returns:
        ``(F, H, W[, C])`` frames in the original dtype (equal to the encoded video).

    Raises:
        ShapeError: the stream's arrays disagree with each other.
    """
    if not isinstance(stream, GopStream):
        raise InvalidValueError(f"stream must be a GopStream (from encode_gops), got {type(stream).__name__}")
    frames = stream.num_frames
    if (
        stream.residuals.shape[0] != frames
        or stream.motion.shape[0] != frames
        or stream.frame_types.count("I") != stream.num_gops
    ):
        raise ShapeError(
            f"stream arrays disagree: {frames} frame types, {stream.num_gops} I-frames, "
            f"residuals {stream.residuals.shape}, motion {stream.motion.shape}"
        )
    dtype = np.dtype(stream.dtype)
    color = stream.color
    out = np.empty(stream.residuals.shape, dtype=dtype)
    gop = -1
    for index, kind in enumerate(stream.frame_types):
        if kind == "I":
            gop += 1
            out[index] = stream.iframes[gop]
            continue
        if index == 0:
            raise ShapeError("a stream cannot start with a P-frame")
        prediction = motion_compensate(out[index - 1], stream.motion[index], stream.block_size, color=color).astype(
            stream.residual_dtype
        )
        if stream.intra[index].any():
            height, width = out.shape[1:3]
            mask = stream.intra[index][np.arange(height) // stream.block_size][:, np.arange(width) // stream.block_size]
            prediction = np.where(mask[..., None] if color else mask, 0, prediction).astype(stream.residual_dtype)
        out[index] = (prediction + stream.residuals[index]).astype(dtype)
    return out


# --- a real codec's side data -----------------------------------------------------------------


def codec_available() -> bool:
    """Whether PyAV (``import av``) can be imported here."""
    try:
        import av  # noqa: F401
    except Exception:  # noqa: BLE001 - missing or broken install
        return False
    return True


@dataclass(frozen=True)
class CodecSideData:
    """What a real codec's decoder exposes about a video (:func:`codec_side_data`).

    Attributes:
        decoded: ``(F, H, W[, C])`` uint8 decoded frames (lossy).
        frame_types: one letter per decoded frame (``"I"``, ``"P"``; ``"?"`` for others).
        motion_vectors: per frame, the exported motion vectors as a structured array (FFmpeg's
            ``AVMotionVector``: source, w, h, src_x, src_y, dst_x, dst_y, flags, motion_x,
            motion_y, motion_scale); empty on I-frames.
        residuals: ``(F, H, W[, C])`` int16: decoded frame − its prediction from the previous
            decoded frame with the codec's vectors (blocks without a vector predicted in place);
            zero on I-frames.
        codec: the FFmpeg encoder used.
    """

    decoded: np.ndarray
    frame_types: str
    motion_vectors: list[np.ndarray]
    residuals: np.ndarray
    codec: str


def _to_uint8(video: np.ndarray, name: str) -> np.ndarray:
    if video.dtype == np.uint8:
        return video
    if np.issubdtype(video.dtype, np.floating):
        if video.min() < 0 or video.max() > 1:
            raise InvalidValueError(
                f"{name}: float frames must lie in [0, 1] for the codec, got [{video.min():.3g}, {video.max():.3g}]"
            )
        return np.round(video * 255.0).astype(np.uint8)
    raise DTypeError(f"{name}: the codec takes uint8 frames or floats in [0, 1], got dtype {video.dtype}")


def _mv_prediction(reference: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """The prediction of a frame from ``reference`` ``(H, W, C)`` with FFmpeg motion vectors."""
    height, width = reference.shape[:2]
    prediction = reference.copy()  # blocks without a vector (skipped) predicted in place
    for vector in vectors:
        if int(vector["source"]) >= 0:  # a future reference: not produced without B-frames
            continue
        w, h = int(vector["w"]), int(vector["h"])
        x0, y0 = int(vector["dst_x"]) - w // 2, int(vector["dst_y"]) - h // 2
        sx0, sy0 = int(vector["src_x"]) - w // 2, int(vector["src_y"]) - h // 2
        ys = np.arange(h)
        xs = np.arange(w)
        ty, tx = y0 + ys, x0 + xs
        keep_y, keep_x = (ty >= 0) & (ty < height), (tx >= 0) & (tx < width)
        sy = np.clip(sy0 + ys, 0, height - 1)[keep_y]
        sx = np.clip(sx0 + xs, 0, width - 1)[keep_x]
        prediction[np.ix_(ty[keep_y], tx[keep_x])] = reference[np.ix_(sy, sx)]
    return prediction


def codec_side_data(video: Any, gop_size: int, codec: str = "mpeg4", quality: int = 2, fps: int = 25) -> CodecSideData:
    """Encode a video with FFmpeg (PyAV) as GOPs of I- and P-frames; read back the decoder's side data.

    The encoder runs with ``gop_size`` as its keyframe interval, no B-frames and no scene-cut
    keyframes; the decoder runs with ``flags2 +export_mvs``, so every P-frame carries its motion
    vectors. Residuals are rebuilt from the decoded frames and those vectors (see
    :class:`CodecSideData`).

    Args:
        video: ``(F, H, W)`` gray or ``(F, H, W, 3)`` RGB frames, uint8 or floats in [0, 1];
            H and W even (4:2:0 chroma).
        gop_size: keyframe interval.
        codec: an FFmpeg video encoder whose decoder exports motion vectors (``mpeg4``,
            ``libx264``, ``mpeg2video``...).
        quality: fixed quantiser scale (``qscale``; 1 is near lossless, 31 the coarsest).
        fps: nominal frame rate of the stream.

    Raises:
        BackendUnavailableError: PyAV is not installed (``pip install av``), or lacks ``codec``.
        ShapeError, DTypeError, InvalidValueError: bad video or parameters.
    """
    video = _check_video(video)
    gop_size = _check_int("gop_size", gop_size, 1)
    quality = _check_int("quality", quality, 1)
    if video.ndim == 4 and video.shape[3] != 3:
        raise ShapeError(f"video: the codec takes gray (F, H, W) or RGB (F, H, W, 3) frames, got {video.shape}")
    if video.shape[1] % 2 or video.shape[2] % 2:
        raise ShapeError(f"video: the codec needs an even height and width (4:2:0 chroma), got {video.shape[1]}x{video.shape[2]}")
    frames = _to_uint8(video, "video")
    try:
        import av
    except Exception as exc:
        raise BackendUnavailableError(
            f"real codec side data needs PyAV: pip install av ({exc.__class__.__name__}: {exc})"
        ) from exc
    if codec not in av.codecs_available:
        raise BackendUnavailableError(f"codec {codec!r} is not in this PyAV build's FFmpeg")
    color = frames.ndim == 4
    pixel_format = "rgb24" if color else "gray"
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="matroska") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height = int(frames.shape[2]), int(frames.shape[1])
        stream.pix_fmt = "yuv420p"
        stream.codec_context.gop_size = gop_size
        stream.codec_context.max_b_frames = 0
        stream.codec_context.qmin = stream.codec_context.qmax = quality  # a fixed quantiser
        stream.codec_context.bit_rate = 50_000_000
        stream.options = {"g": str(gop_size), "bf": "0", "sc_threshold": "1000000000", "keyint_min": str(gop_size)}
        for frame in frames:
            picture = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format=pixel_format)
            picture = picture.reformat(format="yuv420p")
            for packet in stream.encode(picture):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    buffer.seek(0)
    decoded, types, vectors = [], [], []
    with av.open(buffer, "r") as container:
        stream = container.streams.video[0]
        stream.codec_context.options = {"flags2": "+export_mvs"}
        for picture in container.decode(stream):
            decoded.append(picture.to_ndarray(format=pixel_format))
            kind = picture.pict_type
            kind = (
                {1: "I", 2: "P", 3: "B"}.get(kind, "?")
                if isinstance(kind, int) and not hasattr(kind, "name")
                else str(getattr(kind, "name", kind))
            )
            types.append(kind if kind in ("I", "P") else ("I" if picture.key_frame else "?"))
            side = picture.side_data.get("MOTION_VECTORS")
            vectors.append(side.to_ndarray() if side is not None else np.zeros(0))
    out = np.stack(decoded)
    residuals = np.zeros(out.shape, dtype=np.int16)
    for index in range(1, len(out)):
        if types[index] == "I":
            continue
        reference = _as_channels(out[index - 1], color)
        prediction = _mv_prediction(reference, vectors[index]) if vectors[index].size else reference
        prediction = prediction if color else prediction[..., 0]
        residuals[index] = out[index].astype(np.int16) - prediction.astype(np.int16)
    return CodecSideData(out, "".join(types), vectors, residuals, codec)


# --- what VCCV consumes -----------------------------------------------------------------------


@dataclass(frozen=True)
class GopInputs:
    """One I-frame and one residual frame per GOP (VCCV's P_I and P_r).

    Attributes:
        iframes: ``(G, H, W[, C])`` float32 in [0, 1] (integer videos scaled by their maximum).
        residuals: ``(G, H, W[, C])`` float32, the GOP's residuals folded by ``reduction``, on
            the same scale (so in [−1, 1]).
        source: ``"emulated"`` or ``"codec"``: where they came from.
        note: why a requested codec was not used (empty otherwise).
    """

    iframes: np.ndarray
    residuals: np.ndarray
    source: str
    note: str = ""


def _scale_of(dtype: np.dtype) -> float:
    return float(np.iinfo(dtype).max) if np.issubdtype(dtype, np.integer) else 1.0


def _fold(residuals: np.ndarray, groups: list[slice], reduction: str) -> np.ndarray:
    out = np.zeros((len(groups),) + residuals.shape[1:], dtype=np.float64)
    for gop, span in enumerate(groups):
        part = residuals[span][1:].astype(np.float64)  # the P-frames of the GOP
        if part.shape[0] == 0:
            continue
        if reduction == "mean-abs":
            out[gop] = np.abs(part).mean(axis=0)
        elif reduction == "mean":
            out[gop] = part.mean(axis=0)
        else:
            out[gop] = part[-1]
    return out


def gop_inputs(
    video: Any,
    gop_size: int,
    block_size: int = 8,
    search_range: int = 4,
    reduction: str = "mean-abs",
    source: str = "emulated",
    codec: str = "mpeg4",
    quality: int = 2,
) -> GopInputs:
    """The I-frame and the residual frame of each GOP of a video.

    Args:
        video: ``(F, H, W)`` or ``(F, H, W, C)``, integer or float in [0, 1].
        gop_size: frames per GOP (the I-frame period).
        block_size, search_range: of the emulated encoder (:func:`encode_gops`).
        reduction: how the residuals of a GOP's P-frames make one frame: ``"mean-abs"`` (mean
            magnitude: where things change, the saliency VCCV's attention starts from), ``"mean"``
            (signed mean) or ``"last"`` (the GOP's last P-frame). A GOP without P-frames gives zeros.
        source: ``"emulated"`` (:func:`encode_gops`, lossless, the default) or ``"codec"``
            (:func:`codec_side_data`, lossy; when PyAV is not installed this falls back to the
            emulation with a warning and says so in :attr:`GopInputs.note`).
        codec, quality: of the real codec.

    Returns:
        :class:`GopInputs`.

    Raises:
        ShapeError, DTypeError, InvalidValueError: bad video or parameters.
        ConfigError: unknown ``reduction`` or ``source``.
    """

    if reduction not in RESIDUAL_REDUCTIONS:
        raise ConfigError(f"reduction must be one of {', '.join(RESIDUAL_REDUCTIONS)}, got {reduction!r}")
    if source not in ("emulated", "codec"):
        raise ConfigError(f"source must be 'emulated' or 'codec', got {source!r}")
    video = _check_video(video)
    gop_size = _check_int("gop_size", gop_size, 1)
    note = ""
    if source == "codec":
        if codec_available():
            side = codec_side_data(video, gop_size, codec=codec, quality=quality)
            starts = [index for index, kind in enumerate(side.frame_types) if kind == "I"] or [0]
            groups = [slice(start, stop) for start, stop in zip(starts, starts[1:] + [len(side.frame_types)])]
            iframes = side.decoded[starts].astype(np.float32) / 255.0
            residuals = (_fold(side.residuals, groups, reduction) / 255.0).astype(np.float32)
            return GopInputs(iframes, residuals, "codec")
        note = (
            "PyAV is not installed (pip install av): real codec side data unavailable, used the block-matching emulation instead"
        )
        warnings.warn(note, RuntimeWarning, stacklevel=2)
    stream = encode_gops(video, gop_size, block_size, search_range)
    scale = _scale_of(video.dtype)
    iframes = (stream.iframes.astype(np.float64) / scale).astype(np.float32)
    residuals = (_fold(stream.residuals, stream.gop_slices(), reduction) / scale).astype(np.float32)
    return GopInputs(iframes, residuals, "emulated", note)
