"""Tests of snapcap.cacti.bayer: CFA mosaicking, adjoint, planes and demosaicking."""

from __future__ import annotations

import copy
import pickle
from typing import Any, Callable

import numpy as np
import pytest

from snapcap.backend import backend_name, to_numpy
from snapcap.cacti.bayer import (
    PATTERNS,
    BayerMosaic,
    channel_offsets,
    demosaic,
    from_planes,
    mosaic,
    mosaic_adjoint,
    normalize_pattern,
    to_planes,
)
from snapcap.errors import ConfigError, DTypeError, ShapeError

METHODS = ("bilinear", "malvar")

# Channel index (0 = R, 1 = G, 2 = B) at cell positions (0,0), (0,1), (1,0), (1,1), by hand.
HAND_CHANNELS = {
    "RGGB": (0, 1, 1, 2),
    "BGGR": (2, 1, 1, 0),
    "GRBG": (1, 0, 2, 1),
    "GBRG": (1, 2, 0, 1),
}
# (row, col) of R, G1 (green on the red row), G2 (green on the blue row), B, by hand.
HAND_OFFSETS = {
    "RGGB": {"R": (0, 0), "G1": (0, 1), "G2": (1, 0), "B": (1, 1)},
    "BGGR": {"R": (1, 1), "G1": (1, 0), "G2": (0, 1), "B": (0, 0)},
    "GRBG": {"R": (0, 1), "G1": (0, 0), "G2": (1, 1), "B": (1, 0)},
    "GBRG": {"R": (1, 0), "G1": (1, 1), "G2": (0, 0), "B": (0, 1)},
}


# --------------------------------------------------------------------------------------------
# Backends
# --------------------------------------------------------------------------------------------


def _numpy_backend() -> tuple[str, Callable[[np.ndarray], Any]]:
    return "numpy", lambda arr: np.array(arr)


def _torch_backend() -> tuple[str, Callable[[np.ndarray], Any]]:
    torch = pytest.importorskip("torch")
    return "torch", lambda arr: torch.from_numpy(np.array(arr))


def _strict_backend() -> tuple[str, Callable[[np.ndarray], Any]]:
    strict = pytest.importorskip("array_api_strict")
    return "array_api_strict", lambda arr: strict.asarray(np.array(arr))


@pytest.fixture(params=["numpy", "torch", "array_api_strict"])
def backend(request) -> tuple[str, Callable[[np.ndarray], Any]]:
    """(name, converter from numpy) for each array backend."""
    return {"numpy": _numpy_backend, "torch": _torch_backend, "array_api_strict": _strict_backend}[request.param]()


def _dtype_name(x: Any) -> str:
    return str(x.dtype).rsplit(".", 1)[-1]


def _check_like(out: Any, ref: Any) -> None:
    assert backend_name(out) == backend_name(ref)
    assert _dtype_name(out) == _dtype_name(ref)


# --------------------------------------------------------------------------------------------
# Test images
# --------------------------------------------------------------------------------------------


def _ramp(height: int, width: int, dtype=np.float64) -> np.ndarray:
    """Per-channel linear ramps with different slopes along both axes."""
    rows, cols = np.meshgrid(np.arange(height, dtype=np.float64), np.arange(width, dtype=np.float64), indexing="ij")
    slopes = ((0.03, 0.01, 0.2), (-0.02, 0.025, 0.5), (0.01, -0.03, 0.7))
    return np.stack([a * rows + b * cols + c for a, b, c in slopes], axis=-1).astype(dtype)


def _smooth_colour(height: int, width: int) -> np.ndarray:
    """Smooth, colourful image: low-frequency sinusoids, strongly correlated across channels."""
    rows, cols = np.meshgrid(np.arange(height, dtype=np.float64), np.arange(width, dtype=np.float64), indexing="ij")
    luminance = (
        0.5 + 0.2 * np.sin(2 * np.pi * (rows / 11.0 + cols / 17.0)) + 0.15 * np.cos(2 * np.pi * (rows / 7.0 - cols / 13.0))
    )
    chroma = 0.05 * np.sin(2 * np.pi * (rows / 29.0 + cols / 23.0))
    return np.stack([luminance + chroma, luminance, luminance - 0.7 * chroma], axis=-1)


def _psnr(estimate: np.ndarray, truth: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / np.mean((estimate - truth) ** 2)))


# --------------------------------------------------------------------------------------------
# Patterns
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("pattern", PATTERNS)
def test_normalize_pattern_case_insensitive(pattern: str) -> None:
    assert normalize_pattern(pattern.lower()) == pattern
    assert normalize_pattern(f" {pattern.capitalize()} ") == pattern


def test_normalize_pattern_none() -> None:
    assert normalize_pattern(None) is None
    assert normalize_pattern("none") is None
    assert normalize_pattern("None") is None


@pytest.mark.parametrize("bad", ["RGBG", "", "RGGBX", 3])
def test_normalize_pattern_unknown(bad: Any) -> None:
    with pytest.raises(ConfigError, match="pattern must be") as info:
        normalize_pattern(bad)
    for allowed in PATTERNS:
        assert allowed in str(info.value)
    with pytest.raises(ConfigError, match="cfa"):
        normalize_pattern(bad, name="cfa")


@pytest.mark.parametrize("pattern", PATTERNS)
def test_channel_offsets(pattern: str) -> None:
    assert channel_offsets(pattern) == HAND_OFFSETS[pattern]
    assert channel_offsets(pattern.lower()) == HAND_OFFSETS[pattern]


def test_channel_offsets_none_rejected() -> None:
    with pytest.raises(ConfigError, match="RGGB"):
        channel_offsets(None)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# Mosaic, adjoint, planes
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("pattern", PATTERNS)
def test_mosaic_picks_cfa_channel(pattern: str, backend) -> None:
    _, make = backend
    # value = 100 * (2 * row + col) + channel: every (pixel, channel) distinct
    rgb = np.array([[[100.0 * (2 * row + col) + ch for ch in range(3)] for col in range(2)] for row in range(2)])
    out = mosaic(make(rgb), pattern)
    expected = np.array(
        [[100.0 * (2 * row + col) + HAND_CHANNELS[pattern][2 * row + col] for col in range(2)] for row in range(2)]
    )
    np.testing.assert_array_equal(to_numpy(out), expected)
    # tiled over a larger image, each cell behaves the same
    big = np.tile(rgb, (3, 2, 1))
    np.testing.assert_array_equal(to_numpy(mosaic(make(big), pattern)), np.tile(expected, (3, 2)))


@pytest.mark.parametrize("pattern", PATTERNS)
def test_mosaic_adjoint_places_value(pattern: str, backend) -> None:
    _, make = backend
    m = np.array([[1.0, 2.0], [3.0, 4.0]])
    out = to_numpy(mosaic_adjoint(make(m), pattern))
    expected = np.zeros((2, 2, 3))
    for k, channel in enumerate(HAND_CHANNELS[pattern]):
        expected[k // 2, k % 2, channel] = m[k // 2, k % 2]
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("pattern", PATTERNS)
def test_mosaic_of_adjoint_is_identity(pattern: str, backend) -> None:
    _, make = backend
    m = np.random.default_rng(1).random((2, 6, 8))
    np.testing.assert_array_equal(to_numpy(mosaic(mosaic_adjoint(make(m), pattern), pattern)), m)


@pytest.mark.parametrize("pattern", PATTERNS)
def test_adjoint_identity(pattern: str, backend) -> None:
    _, make = backend
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 8, 6, 3))
    y = rng.standard_normal((2, 8, 6))
    forward = to_numpy(mosaic(make(x), pattern))
    back = to_numpy(mosaic_adjoint(make(y), pattern))
    lhs = float(np.sum(forward * y))
    rhs = float(np.sum(x * back))
    assert abs(lhs - rhs) / (np.linalg.norm(forward) * np.linalg.norm(y)) < 1e-12


@pytest.mark.parametrize("pattern", PATTERNS)
def test_planes_round_trip_and_values(pattern: str, backend) -> None:
    _, make = backend
    m = np.arange(2 * 4 * 6, dtype=np.float64).reshape(2, 4, 6)
    planes = to_planes(make(m), pattern)
    assert tuple(planes.shape) == (2, 4, 2, 3)
    planes_np = to_numpy(planes)
    for k, site in enumerate(("R", "G1", "G2", "B")):
        row, col = HAND_OFFSETS[pattern][site]
        np.testing.assert_array_equal(planes_np[:, k], m[:, row::2, col::2])
    np.testing.assert_array_equal(to_numpy(from_planes(planes, pattern)), m)
    # and the other way round
    p = np.random.default_rng(3).random((3, 4, 2, 5)).astype(np.float32)
    np.testing.assert_array_equal(to_numpy(to_planes(from_planes(make(p), pattern), pattern)), p)


@pytest.mark.parametrize("pattern", PATTERNS)
def test_planes_of_rgb_image_hold_channels(pattern: str) -> None:
    rgb = np.random.default_rng(4).random((4, 6, 3))
    planes = to_planes(mosaic(rgb, pattern), pattern)
    for k, (site, channel) in enumerate((("R", 0), ("G1", 1), ("G2", 1), ("B", 2))):
        row, col = HAND_OFFSETS[pattern][site]
        np.testing.assert_array_equal(planes[k], rgb[row::2, col::2, channel])


# --------------------------------------------------------------------------------------------
# Demosaicking
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("pattern", PATTERNS)
def test_demosaic_keeps_samples(pattern: str, method: str, backend) -> None:
    _, make = backend
    m = np.random.default_rng(5).random((2, 8, 10)).astype(np.float32)
    out = demosaic(make(m), pattern, method)
    assert tuple(out.shape) == (2, 8, 10, 3)
    np.testing.assert_allclose(to_numpy(mosaic(out, pattern)), m, rtol=0, atol=1e-6)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("pattern", PATTERNS)
@pytest.mark.parametrize("size", [(2, 2), (4, 6), (8, 8)])
def test_demosaic_constant_colour_exact(pattern: str, method: str, size: tuple[int, int]) -> None:
    rgb = np.broadcast_to(np.array([0.3, 0.55, 0.8]), size + (3,))
    out = demosaic(mosaic(np.array(rgb), pattern), pattern, method)
    np.testing.assert_allclose(out, rgb, rtol=0, atol=1e-12)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("pattern", PATTERNS)
def test_demosaic_linear_ramp_exact_in_interior(pattern: str, method: str, backend) -> None:
    _, make = backend
    rgb = _ramp(12, 14)
    out = to_numpy(demosaic(mosaic(make(rgb), pattern), pattern, method))
    np.testing.assert_allclose(out[2:-2, 2:-2], rgb[2:-2, 2:-2], rtol=0, atol=1e-12)


@pytest.mark.parametrize("pattern", PATTERNS)
def test_malvar_beats_bilinear(pattern: str) -> None:
    rgb = _smooth_colour(32, 32)
    m = mosaic(rgb, pattern)
    inner = (slice(2, -2), slice(2, -2))
    psnr_bilinear = _psnr(demosaic(m, pattern, "bilinear")[inner], rgb[inner])
    psnr_malvar = _psnr(demosaic(m, pattern, "malvar")[inner], rgb[inner])
    assert psnr_malvar > psnr_bilinear + 3.0, (psnr_malvar, psnr_bilinear)


def test_demosaic_default_is_malvar() -> None:
    m = np.random.default_rng(6).random((6, 8))
    np.testing.assert_array_equal(demosaic(m, "RGGB"), demosaic(m, "RGGB", "malvar"))
    np.testing.assert_array_equal(demosaic(m, "RGGB", "Bilinear"), demosaic(m, "RGGB", "bilinear"))


# --------------------------------------------------------------------------------------------
# Conformance
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conformance_backend_dtype_batch_no_mutation(backend, dtype) -> None:
    _, make = backend
    rng = np.random.default_rng(7)
    rgb_np = rng.random((2, 3, 4, 6, 3)).astype(dtype)
    m_np = rng.random((2, 3, 4, 6)).astype(dtype)
    p_np = rng.random((2, 3, 4, 2, 3)).astype(dtype)
    rgb, m, p = make(rgb_np), make(m_np), make(p_np)
    for pattern in ("RGGB", "gbrg"):
        op = BayerMosaic(pattern)
        results = {
            "mosaic": (mosaic(rgb, pattern), m, (2, 3, 4, 6)),
            "A": (op.A(rgb), m, (2, 3, 4, 6)),
            "adjoint": (mosaic_adjoint(m, pattern), m, (2, 3, 4, 6, 3)),
            "A_adjoint": (op.A_adjoint(m), m, (2, 3, 4, 6, 3)),
            "to_planes": (to_planes(m, pattern), m, (2, 3, 4, 2, 3)),
            "planes": (op.planes(m), m, (2, 3, 4, 2, 3)),
            "from_planes": (from_planes(p, pattern), m, (2, 3, 4, 6)),
            "op.from_planes": (op.from_planes(p), m, (2, 3, 4, 6)),
            "bilinear": (demosaic(m, pattern, "bilinear"), m, (2, 3, 4, 6, 3)),
            "malvar": (demosaic(m, pattern, "malvar"), m, (2, 3, 4, 6, 3)),
        }
        for name, (out, ref, shape) in results.items():
            _check_like(out, ref)
            assert tuple(out.shape) == shape, name
    # batched results equal frame-by-frame results
    batched = to_numpy(demosaic(m, "RGGB"))
    single = to_numpy(demosaic(make(m_np[1, 2]), "RGGB"))
    np.testing.assert_array_equal(batched[1, 2], single)
    # inputs untouched
    np.testing.assert_array_equal(to_numpy(rgb), rgb_np)
    np.testing.assert_array_equal(to_numpy(m), m_np)
    np.testing.assert_array_equal(to_numpy(p), p_np)


def test_numpy_outputs_do_not_alias_inputs() -> None:
    m = np.random.default_rng(8).random((4, 6))
    keep = m.copy()
    for out in (mosaic_adjoint(m, "RGGB"), demosaic(m, "RGGB"), demosaic(m, "RGGB", "bilinear")):
        assert not np.shares_memory(out, m)
        out[...] = -1.0
    planes = to_planes(m, "RGGB")
    planes[...] = -1.0
    np.testing.assert_array_equal(m, keep)


# --------------------------------------------------------------------------------------------
# Operator
# --------------------------------------------------------------------------------------------


def test_operator_immutable_equal_repr() -> None:
    op = BayerMosaic("rggb")
    assert op.pattern == "RGGB"
    assert repr(op) == "BayerMosaic('RGGB')"
    assert op == BayerMosaic("RGGB")
    assert op != BayerMosaic("BGGR")
    assert hash(op) == hash(BayerMosaic("RGGB"))
    assert op.offsets == HAND_OFFSETS["RGGB"]
    with pytest.raises(AttributeError):
        op.pattern = "BGGR"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        op._pattern = "BGGR"
    with pytest.raises(AttributeError):
        op.other = 1  # type: ignore[attr-defined]
    assert not hasattr(op, "__dict__")
    assert pickle.loads(pickle.dumps(op)) == op
    assert copy.deepcopy(op) == op


def test_operator_bad_pattern() -> None:
    with pytest.raises(ConfigError, match="GRBG"):
        BayerMosaic("XYZW")
    with pytest.raises(ConfigError, match="RGGB"):
        BayerMosaic(None)  # type: ignore[arg-type]


def test_operator_matches_functions() -> None:
    rng = np.random.default_rng(9)
    rgb = rng.random((4, 4, 3))
    op = BayerMosaic("GRBG")
    np.testing.assert_array_equal(op(rgb), mosaic(rgb, "GRBG"))
    np.testing.assert_array_equal(op.demosaic(op.A(rgb)), demosaic(mosaic(rgb, "GRBG"), "GRBG"))


# --------------------------------------------------------------------------------------------
# Bad inputs
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(5, 4, 3), (4, 7, 3), (2, 3, 5, 3)])
def test_mosaic_odd_size(shape: tuple[int, ...]) -> None:
    with pytest.raises(ShapeError, match="even") as info:
        mosaic(np.zeros(shape), "RGGB")
    assert str(shape) in str(info.value)


@pytest.mark.parametrize("shape", [(4, 4, 4), (4, 4), (4, 4, 1)])
def test_mosaic_last_axis_not_three(shape: tuple[int, ...]) -> None:
    with pytest.raises(ShapeError, match=r"\(\.\.\., H, W, 3\)") as info:
        mosaic(np.zeros(shape), "RGGB")
    assert str(shape) in str(info.value)


@pytest.mark.parametrize(
    "func",
    [
        lambda m: mosaic_adjoint(m, "RGGB"),
        lambda m: to_planes(m, "RGGB"),
        lambda m: demosaic(m, "RGGB"),
        lambda m: demosaic(m, "RGGB", "bilinear"),
    ],
)
@pytest.mark.parametrize("shape", [(3, 4), (4, 5), (2, 6, 3), (4,)])
def test_mosaic_side_odd_size(func, shape: tuple[int, ...]) -> None:
    with pytest.raises(ShapeError, match=r"\(\.\.\., H, W\)") as info:
        func(np.zeros(shape))
    assert str(shape) in str(info.value)


@pytest.mark.parametrize("shape", [(3, 2, 2), (2, 2), (2, 5, 2, 2)])
def test_from_planes_bad_shape(shape: tuple[int, ...]) -> None:
    with pytest.raises(ShapeError, match=r"\(\.\.\., 4, h, w\)") as info:
        from_planes(np.zeros(shape), "RGGB")
    assert str(shape) in str(info.value)


@pytest.mark.parametrize(
    "func",
    [
        lambda: mosaic(np.zeros((2, 2, 3)), "RGBG"),
        lambda: mosaic_adjoint(np.zeros((2, 2)), "foo"),
        lambda: to_planes(np.zeros((2, 2)), "RGGBB"),
        lambda: from_planes(np.zeros((4, 1, 1)), "x"),
        lambda: demosaic(np.zeros((2, 2)), "GGRB"),
        lambda: mosaic(np.zeros((2, 2, 3)), None),
    ],
)
def test_unknown_pattern(func) -> None:
    with pytest.raises(ConfigError, match="pattern must be") as info:
        func()
    for allowed in PATTERNS:
        assert allowed in str(info.value)


def test_unknown_method() -> None:
    with pytest.raises(ConfigError, match="method must be one of bilinear, malvar") as info:
        demosaic(np.zeros((4, 4)), "RGGB", "nearest")
    assert "'nearest'" in str(info.value)


@pytest.mark.parametrize(
    "func",
    [
        lambda x: mosaic_adjoint(x, "RGGB"),
        lambda x: demosaic(x, "RGGB"),
        lambda x: demosaic(x, "RGGB", "bilinear"),
    ],
)
@pytest.mark.parametrize("dtype", [np.uint8, np.int32])
def test_integer_dtype_rejected(func, dtype) -> None:
    with pytest.raises(DTypeError, match="real floating") as info:
        func(np.zeros((4, 4), dtype=dtype))
    assert str(np.dtype(dtype)) in str(info.value)


def test_mosaic_selects_integer_video_exactly() -> None:
    rgb = np.arange(4 * 4 * 3, dtype=np.uint8).reshape(4, 4, 3)
    selected = mosaic(rgb, "RGGB")
    assert selected.dtype == np.uint8
    np.testing.assert_array_equal(selected, mosaic(rgb.astype(np.float64), "RGGB").astype(np.uint8))


def test_integer_dtype_rejected_torch() -> None:
    torch = pytest.importorskip("torch")
    with pytest.raises(DTypeError, match="real floating"):
        demosaic(torch.zeros((4, 4), dtype=torch.int64), "RGGB")
