"""The GOP encoder emulation (I-frames + motion-compensated residuals) and the codec side data."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from snapcap.datasets import gop
from snapcap.datasets.gop import block_motion, decode_gops, encode_gops, gop_inputs, motion_compensate
from snapcap.errors import ConfigError, DTypeError, InvalidValueError, ShapeError, SnapcapError


def moving_patch(
    frames: int = 8, size: int = 64, step: tuple[int, int] = (1, -2), color: bool = True, seed: int = 0
) -> np.ndarray:
    """A textured patch moving by whole pixels over a flat background, staying inside the frame."""
    rng = np.random.default_rng(seed)
    patch = rng.integers(0, 256, size=(12, 12, 3) if color else (12, 12), dtype=np.uint8)
    video = np.full((frames, size, size) + ((3,) if color else ()), 90, dtype=np.uint8)
    for index in range(frames):
        y, x = 26 + step[0] * index, 26 + step[1] * index
        video[index, y : y + 12, x : x + 12] = patch
    return video


@pytest.mark.parametrize("color", [True, False])
@pytest.mark.parametrize("step", [(1, -2), (0, 3), (-2, 0), (0, 0)])
def test_perfect_motion_compensation_gives_zero_residuals(color, step):
    video = moving_patch(step=step, color=color)
    stream = encode_gops(video, gop_size=4, block_size=8, search_range=4)
    assert stream.frame_types == "IPPPIPPP"
    assert stream.residuals.dtype == np.int16
    assert not stream.residuals.any()  # exactly zero: every block is predicted perfectly
    assert not stream.intra.any()
    np.testing.assert_array_equal(stream.iframes, video[[0, 4]])
    # The I-frame + motion alone rebuild every P-frame of its GOP.
    for span in stream.gop_slices():
        frame = video[span.start]
        for index in range(span.start + 1, span.stop):
            frame = motion_compensate(frame, stream.motion[index], stream.block_size, color=color)
            np.testing.assert_array_equal(frame, video[index])
    # Blocks holding the patch point back along the motion (prediction = reference at p + v).
    moving = np.abs(video[1].astype(int) - video[0].astype(int)).reshape(8, 8, 8, 8, -1).any(axis=(1, 3, 4))
    if step != (0, 0):
        assert moving.any()
        assert (stream.motion[1][moving] == (-step[0], -step[1])).all()
    np.testing.assert_array_equal(decode_gops(stream), video)


def test_translated_frame_interior_is_exact():
    rng = np.random.default_rng(3)
    canvas = rng.integers(0, 256, size=(80, 80, 3), dtype=np.uint8)
    video = np.stack([canvas[10 + 2 * k : 10 + 2 * k + 48, 10 - k + 5 : 10 - k + 5 + 48] for k in range(4)])
    stream = encode_gops(video, gop_size=4, block_size=8, search_range=3)
    # Frame k = frame k-1 moved by (-2, +1): interior blocks (their source inside the frame) are exact.
    assert (stream.motion[1:, 1:-1, 1:-1] == (2, -1)).all()
    assert not stream.residuals[1:, 8:-8, 8:-8].any()
    assert stream.residuals[1:].any()  # border pixels come from outside the previous frame
    np.testing.assert_array_equal(decode_gops(stream), video)


@pytest.mark.parametrize(
    "dtype,shape,gop_size,block",
    [
        (np.uint8, (7, 21, 30, 3), 3, 8),  # partial blocks, a short last GOP
        (np.uint8, (5, 16, 16), 5, 4),  # gray
        (np.uint16, (6, 12, 10, 2), 4, 5),
        (np.int8, (4, 9, 9), 2, 3),
        (np.float32, (6, 20, 20, 3), 3, 8),
        (np.float16, (3, 8, 8), 2, 4),
        (np.float64, (5, 10, 12, 3), 2, 4),
        (np.uint8, (1, 8, 8, 3), 4, 8),  # one frame: one I-frame
        (np.uint8, (4, 8, 8, 3), 1, 8),  # all I-frames
    ],
)
def test_round_trip_is_exact(dtype, shape, gop_size, block):
    rng = np.random.default_rng(1)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        video = rng.integers(info.min, int(info.max) + 1, size=shape).astype(dtype)
    else:
        video = rng.random(shape).astype(dtype)
        video[0, 0, 0] = 1e-30 if dtype == np.float64 else 0.0
    before = video.copy()
    stream = encode_gops(video, gop_size, block_size=block, search_range=2)
    decoded = decode_gops(stream)
    assert decoded.dtype == video.dtype and decoded.shape == video.shape
    np.testing.assert_array_equal(decoded, video)
    np.testing.assert_array_equal(video, before)  # not mutated
    assert stream.num_gops == -(-shape[0] // gop_size)
    assert stream.frame_types.count("I") == stream.num_gops


def test_float32_never_needs_intra_blocks_in_range():
    rng = np.random.default_rng(2)
    video = rng.random((6, 16, 16, 3)).astype(np.float32)
    stream = encode_gops(video, 3, block_size=4, search_range=2)
    assert not stream.intra.any()
    np.testing.assert_array_equal(decode_gops(stream), video)


def test_block_motion_matches_brute_force():
    rng = np.random.default_rng(4)
    reference = rng.integers(0, 256, size=(13, 11, 3)).astype(np.uint8)
    target = rng.integers(0, 256, size=(13, 11, 3)).astype(np.uint8)
    block, search = 4, 2
    motion, sad = block_motion(reference, target, block, search, color=True)
    assert motion.shape == (4, 3, 2) and sad.shape == (4, 3)
    padded = np.pad(reference.astype(int), ((search, search + 3), (search, search + 1), (0, 0)), mode="edge")
    for by, bx in itertools.product(range(4), range(3)):
        ys = slice(by * block, min(13, (by + 1) * block))
        xs = slice(bx * block, min(11, (bx + 1) * block))
        costs = {}
        for dy, dx in itertools.product(range(-search, search + 1), repeat=2):
            source = padded[ys.start + search + dy : ys.stop + search + dy, xs.start + search + dx : xs.stop + search + dx]
            costs[(dy, dx)] = np.abs(target[ys, xs].astype(int) - source).sum()
        best = min(costs.values())
        assert sad[by, bx] == best
        assert costs[tuple(motion[by, bx])] == best
        ties = [v for v, c in costs.items() if c == best]
        assert abs(motion[by, bx][0]) + abs(motion[by, bx][1]) == min(abs(a) + abs(b) for a, b in ties)


def test_block_motion_batches_and_zero_motion():
    rng = np.random.default_rng(5)
    frames = rng.random((3, 16, 16)).astype(np.float32)
    motion, sad = block_motion(frames, frames, 8, 2, color=False)
    assert motion.shape == (3, 2, 2, 2)
    assert not motion.any() and not sad.any()  # a static block keeps (0, 0)
    np.testing.assert_array_equal(motion_compensate(frames, motion, 8, color=False), frames)


def test_gop_inputs_reductions():
    video = moving_patch(frames=8, step=(0, 2), color=True)
    video[5, 0:4, 0:4] = 200  # something the motion cannot explain
    stream = encode_gops(video, 4)
    for reduction in gop.RESIDUAL_REDUCTIONS:
        inputs = gop_inputs(video, 4, reduction=reduction)
        assert inputs.source == "emulated" and inputs.note == ""
        assert inputs.iframes.shape == (2, 64, 64, 3) and inputs.iframes.dtype == np.float32
        assert inputs.residuals.shape == (2, 64, 64, 3) and inputs.residuals.dtype == np.float32
        np.testing.assert_allclose(inputs.iframes, video[[0, 4]] / 255.0, atol=1e-7)
        assert not inputs.residuals[0].any()  # perfect compensation in the first GOP
        expected = {
            "mean-abs": np.abs(stream.residuals[5:8].astype(float)).mean(0),
            "mean": stream.residuals[5:8].astype(float).mean(0),
            "last": stream.residuals[7].astype(float),
        }[reduction]
        np.testing.assert_allclose(inputs.residuals[1], expected / 255.0, atol=1e-6)
    assert gop_inputs(video[:5], 4).residuals[1].sum() == 0  # a GOP of one I-frame


def test_codec_request_falls_back_with_a_note(monkeypatch):
    monkeypatch.setattr(gop, "codec_available", lambda: False)
    video = moving_patch(frames=4)
    with pytest.warns(RuntimeWarning, match="pip install av"):
        inputs = gop_inputs(video, 2, source="codec")
    assert inputs.source == "emulated"
    assert "PyAV is not installed" in inputs.note
    np.testing.assert_array_equal(inputs.residuals, gop_inputs(video, 2).residuals)


def test_codec_side_data_without_pyav_says_how_to_install(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_av(name, *args, **kwargs):
        if name == "av":
            raise ImportError("No module named 'av'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_av)
    with pytest.raises(SnapcapError, match="pip install av"):
        gop.codec_side_data(moving_patch(frames=2), 2)


def test_codec_side_data_with_pyav():
    pytest.importorskip("av")
    rng = np.random.default_rng(6)
    from scipy.ndimage import gaussian_filter

    canvas = gaussian_filter(rng.random((96, 96, 3)) * 255, (2, 2, 0)).astype(np.uint8)
    video = np.stack([canvas[16 + k : 16 + k + 48, 16 + 2 * k : 16 + 2 * k + 48] for k in range(8)])
    side = gop.codec_side_data(video, 4, quality=1)
    assert side.frame_types == "IPPPIPPP"
    assert side.decoded.shape == video.shape and side.decoded.dtype == np.uint8
    assert np.abs(side.decoded.astype(int) - video).mean() < 6  # lossy, but close
    assert all(len(side.motion_vectors[i]) == 0 for i in (0, 4))
    assert any(len(side.motion_vectors[i]) > 0 for i in (1, 2, 3))
    assert not side.residuals[[0, 4]].any()
    inputs = gop_inputs(video, 4, source="codec")
    assert inputs.source == "codec" and inputs.iframes.shape == (2, 48, 48, 3) and inputs.residuals.shape == (2, 48, 48, 3)


@pytest.mark.parametrize(
    "call,error,words",
    [
        (lambda: encode_gops(np.zeros((8, 8), np.uint8), 2), ShapeError, "video"),
        (lambda: encode_gops(np.zeros((2, 8, 8), bool), 2), DTypeError, "video"),
        (lambda: encode_gops(np.full((2, 8, 8), np.nan), 2), InvalidValueError, "NaN"),
        (lambda: encode_gops(np.zeros((2, 8, 8), np.uint8), 0), InvalidValueError, "gop_size"),
        (lambda: encode_gops(np.zeros((2, 8, 8), np.uint8), 2, block_size=0), InvalidValueError, "block_size"),
        (lambda: encode_gops(np.zeros((2, 8, 8), np.uint8), 2, search_range=-1), InvalidValueError, "search_range"),
        (lambda: block_motion(np.zeros((8, 8)), np.zeros((8, 9))), ShapeError, "same shape"),
        (lambda: motion_compensate(np.zeros((8, 8)), np.zeros((2, 2, 2), int), 8, color=False), ShapeError, "motion"),
        (lambda: motion_compensate(np.zeros((8, 8)), np.zeros((1, 1, 2)), 8, color=False), DTypeError, "motion"),
        (lambda: gop_inputs(np.zeros((2, 8, 8), np.uint8), 2, reduction="max"), ConfigError, "reduction"),
        (lambda: gop_inputs(np.zeros((2, 8, 8), np.uint8), 2, source="mpeg"), ConfigError, "source"),
        (lambda: decode_gops("stream"), InvalidValueError, "stream"),
    ],
)
def test_bad_input_names_the_argument(call, error, words):
    with pytest.raises(error, match=words):
        call()
