"""The CACTI operator: adjoints, the data step against a generic solver, conformance, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
from helpers import to_backend
from scipy.sparse.linalg import LinearOperator, cg

from snapcap.backend import backend_name, to_numpy
from snapcap.cacti import BayerMosaic, CactiOperator
from snapcap.cacti.masks import gray, random_binary
from snapcap.errors import DTypeError, InvalidValueError, ShapeError, SnapcapError

# Every linear operator of the camera model: (name, factory, input shape, output shape).
OPERATORS = [
    ("gray-shared", lambda: CactiOperator(random_binary(4, 6, 8, seed=1)), (2, 4, 6, 8), (2, 6, 8)),
    ("gray-valued", lambda: CactiOperator(gray(5, 6, 6, seed=2)), (3, 5, 6, 6), (3, 6, 6)),
    ("per-sample", lambda: CactiOperator(random_binary(3 * 4, 6, 8, seed=3).reshape(3, 4, 6, 8)), (3, 4, 6, 8), (3, 6, 8)),
    ("per-sample-broadcast", lambda: CactiOperator(gray(3 * 4, 4, 4, seed=4).reshape(3, 4, 4, 4)), (2, 3, 4, 4, 4), (2, 3, 4, 4)),
    ("bayer-rggb", lambda: CactiOperator(random_binary(4, 6, 8, seed=5), bayer="RGGB"), (2, 4, 6, 8, 3), (2, 6, 8)),
    ("bayer-gbrg", lambda: CactiOperator(gray(3, 4, 6, seed=6), bayer="gbrg"), (3, 4, 6, 3), (4, 6)),
    ("mosaic", lambda: BayerMosaic("BGGR"), (2, 6, 8, 3), (2, 6, 8)),
]
IDS = [entry[0] for entry in OPERATORS]


@pytest.mark.parametrize("name,factory,x_shape,y_shape", OPERATORS, ids=IDS)
def test_adjoint_normalised_float64(name, factory, x_shape, y_shape, rng):
    op = factory()
    x = rng.standard_normal(x_shape)
    y = rng.standard_normal(y_shape)
    ax = op.A(x)
    aty = op.A_adjoint(y)
    assert ax.shape == y_shape and aty.shape == x_shape
    lhs = float(np.vdot(ax, y))
    rhs = float(np.vdot(x, aty))
    assert abs(lhs - rhs) / (np.linalg.norm(ax) * np.linalg.norm(y)) < 1e-12


@pytest.mark.parametrize("name,factory,x_shape,y_shape", [e for e in OPERATORS if e[0] != "mosaic"], ids=IDS[:-1])
def test_aat_is_the_stated_diagonal(name, factory, x_shape, y_shape, rng):
    op = factory()
    y = rng.standard_normal(y_shape)
    np.testing.assert_allclose(op.A(op.A_adjoint(y)), y * op.AAt_diag(), rtol=1e-12, atol=1e-12)


def _dense(op: CactiOperator, x_shape):
    size = int(np.prod(x_shape))
    columns = [op.A(np.eye(size)[i].reshape(x_shape)).ravel() for i in range(size)]
    return np.stack(columns, axis=1)


@pytest.mark.parametrize("bayer", [None, "RGGB"])
@pytest.mark.parametrize("gamma", [0.05, 1.0, 30.0])
def test_prox_l2_matches_conjugate_gradient(bayer, gamma, rng):
    masks = gray(3, 4, 6, seed=8)
    op = CactiOperator(masks, bayer=bayer)
    x_shape = op.frame_shape
    z = rng.standard_normal(x_shape)
    y = rng.standard_normal(op.meas_shape)
    size = int(np.prod(x_shape))

    def normal(v):
        v = v.reshape(x_shape)
        return (gamma * op.A_adjoint(op.A(v)) + v).ravel()

    rhs = (z + gamma * op.A_adjoint(y)).ravel()
    solution, info = cg(LinearOperator((size, size), matvec=normal, dtype=np.float64), rhs, rtol=1e-13, atol=0, maxiter=10_000)
    assert info == 0
    np.testing.assert_allclose(op.prox_l2(z, y, gamma), solution.reshape(x_shape), rtol=1e-8, atol=1e-9)


def test_gap_projection_equals_pseudo_inverse_with_dark_pixels(rng):
    masks = random_binary(3, 4, 5, seed=9)
    masks[:, 1, 2] = 0.0  # a pixel no mask opens: D = 0 there
    op = CactiOperator(masks)
    matrix = _dense(op, op.frame_shape)
    z = rng.standard_normal(op.frame_shape)
    y = rng.standard_normal(op.meas_shape)
    y_feasible = op.A(rng.standard_normal(op.frame_shape))
    expected = z.ravel() + np.linalg.pinv(matrix) @ (y.ravel() - matrix @ z.ravel())
    got = op.prox_l2(z, y, math.inf)
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got.ravel(), expected, atol=1e-10)
    # On feasible data GAP's projection satisfies A x = y exactly.
    np.testing.assert_allclose(op.A(op.prox_l2(z, y_feasible)), y_feasible, atol=1e-12)
    np.testing.assert_allclose(op.A_dagger(y).ravel(), np.linalg.pinv(matrix) @ y.ravel(), atol=1e-10)
    assert float(np.abs(op.A_dagger(y)[:, 1, 2]).max()) == 0.0


def test_large_gamma_tends_to_gap(rng):
    op = CactiOperator(gray(4, 5, 5, seed=10))
    z = rng.standard_normal(op.frame_shape)
    y = rng.standard_normal(op.meas_shape)
    np.testing.assert_allclose(op.prox_l2(z, y, 1e9), op.prox_l2(z, y), atol=1e-6)
    np.testing.assert_allclose(op.prox_l2(z, y, 0.0), z)


def test_normalised_measurement_and_mask_sum(rng):
    masks = random_binary(4, 6, 6, seed=11)
    op = CactiOperator(masks)
    frames = np.full(op.frame_shape, 0.25)
    y = op.A(frames)
    ybar = op.normalized_measurement(y)
    open_pixels = masks.sum(0) > 0
    np.testing.assert_allclose(ybar[open_pixels], 0.25)
    assert np.all(ybar[~open_pixels] == 0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bayer", [None, "GRBG"])
def test_conformance(backend, dtype, bayer, rng):
    op = CactiOperator(random_binary(4, 6, 8, seed=12), bayer=bayer)
    x_np = rng.random((3,) + op.frame_shape).astype(dtype)
    y_np = rng.random((3,) + op.meas_shape).astype(dtype)
    x = to_backend(x_np, backend)
    y = to_backend(y_np, backend)
    outputs = {
        "A": op.A(x),
        "A_adjoint": op.A_adjoint(y),
        "A_dagger": op.A_dagger(y),
        "prox_l2": op.prox_l2(x, y, 0.5),
        "gap": op.prox_l2(x, y),
        "normalized": op.normalized_measurement(y),
        "AAt_diag": op.AAt_diag(like=y),
    }
    for name, value in outputs.items():
        assert backend_name(value) == backend_name(x), name
        assert value.dtype == x.dtype, name
    np.testing.assert_array_equal(to_numpy(x), x_np)
    np.testing.assert_array_equal(to_numpy(y), y_np)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    reference = CactiOperator(random_binary(4, 6, 8, seed=12), bayer=bayer)
    np.testing.assert_allclose(to_numpy(outputs["A"]), reference.A(x_np.astype(np.float64)), rtol=tol, atol=tol)
    np.testing.assert_allclose(
        to_numpy(outputs["gap"]),
        reference.prox_l2(x_np.astype(np.float64), y_np.astype(np.float64)),
        rtol=1e-4 if dtype == np.float32 else 1e-10,
        atol=1e-4 if dtype == np.float32 else 1e-10,
    )


def test_torch_autograd_flows_through_the_operator():
    torch = pytest.importorskip("torch")
    op = CactiOperator(random_binary(4, 6, 8, seed=13))
    x = torch.rand(2, 4, 6, 8, dtype=torch.float64, requires_grad=True)
    y = torch.rand(2, 6, 8, dtype=torch.float64)
    loss = ((op.A(x) - y) ** 2).sum()
    loss.backward()
    expected = 2 * op.A_adjoint((op.A(x) - y).detach())
    torch.testing.assert_close(x.grad, expected)


def test_operator_is_immutable_and_masks_read_only():
    masks = random_binary(4, 6, 8, seed=14)
    op = CactiOperator(masks)
    masks[:] = 0  # the caller's array is copied
    assert op.masks.sum() > 0
    with pytest.raises(AttributeError):
        op.bayer = "RGGB"
    with pytest.raises(ValueError):
        op.masks[0, 0, 0] = 5.0
    other = op.with_masks(np.ones((4, 6, 8)))
    assert other is not op and other.masks.sum() == 4 * 6 * 8 and op.masks.sum() != 4 * 6 * 8
    assert CactiOperator(op.masks, bayer="rggb").mosaic_operator().bayer is None


def test_bad_inputs_raise_clear_errors():
    op = CactiOperator(random_binary(4, 6, 8, seed=15))
    with pytest.raises(ShapeError, match=r"\(\.\.\., 4, 6, 8\)"):
        op.A(np.zeros((2, 5, 6, 8)))
    with pytest.raises(ShapeError, match="meas"):
        op.A_adjoint(np.zeros((6, 7)))
    with pytest.raises(DTypeError, match="floating"):
        op.A(np.zeros((4, 6, 8), dtype=np.uint8))
    with pytest.raises(InvalidValueError, match="NaN"):
        CactiOperator(np.full((2, 3, 3), np.nan))
    with pytest.raises(InvalidValueError, match="negative"):
        CactiOperator(-np.ones((2, 3, 3)))
    with pytest.raises(ShapeError, match=r"\(B, H, W\)"):
        CactiOperator(np.ones((3, 3)))
    with pytest.raises(ShapeError, match="even"):
        CactiOperator(np.ones((2, 3, 3)), bayer="RGGB")
    with pytest.raises(InvalidValueError, match="gamma"):
        op.prox_l2(np.zeros((4, 6, 8)), np.zeros((6, 8)), -1.0)
    per_sample = CactiOperator(np.ones((3, 2, 4, 4)))
    with pytest.raises(ShapeError, match="broadcast"):
        per_sample.A(np.zeros((5, 2, 4, 4)))
    with pytest.raises(SnapcapError):
        CactiOperator(np.ones((2, 4, 4)), bayer="XYZW")


def test_masks_like_moves_the_masks_once_per_device():
    import torch

    masks = random_binary(4, 6, 8, seed=1)
    op = CactiOperator(masks)
    like = torch.zeros(3, dtype=torch.float64)
    moved = op.masks_like(like)
    assert isinstance(moved, torch.Tensor) and moved.dtype == torch.float64 and moved.shape == (4, 6, 8)
    np.testing.assert_array_equal(moved.numpy(), masks)
    assert op.masks_like(like) is moved  # cached
    assert op.masks_like(like, torch.float32).dtype == torch.float32
    assert op.masks_like(np.zeros(2, np.float32)).dtype == np.float32
