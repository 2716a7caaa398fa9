"""Backend helpers: the contraction kernel, lazy constants, optional CuPy."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import to_backend

from snapcap import backend as sb
from snapcap.errors import BackendUnavailableError, DTypeError


@pytest.mark.parametrize("shape", [(4, 6, 8), (3, 4, 6, 8), (64, 8, 64, 64)])
def test_sum_of_products_matches_naive(backend, shape, rng):
    x_np = rng.random(shape).astype(np.float32)
    w_np = (rng.random(shape[-3:]) < 0.5).astype(np.float32)
    x = to_backend(x_np, backend)
    w = to_backend(w_np, backend)
    got = sb.sum_of_products(x, w)
    assert sb.backend_name(got) == sb.backend_name(x)
    np.testing.assert_allclose(sb.to_numpy(got), np.sum(x_np * w_np, axis=-3), rtol=1e-5, atol=1e-5)


def test_threaded_numpy_path_is_independent_of_the_split(rng):
    x = rng.random((33, 8, 70, 70)).astype(np.float32)  # over the threading threshold, odd split
    w = rng.random((8, 70, 70)).astype(np.float32)
    threaded = sb.sum_of_products(x, w)
    single = np.einsum("nkhw,khw->nhw", x, w)
    np.testing.assert_array_equal(threaded, single)


def test_lazy_array_converts_once_and_keeps_host_read_only():
    torch = pytest.importorskip("torch")
    host = np.arange(6, dtype=np.float32).reshape(2, 3)
    lazy = sb.LazyArray(host)
    ref = torch.zeros(1, dtype=torch.float64)
    first = lazy.like(ref)
    assert first is lazy.like(ref) and first.dtype == torch.float64
    assert lazy.like(np.zeros(1, np.float32)) is lazy.host
    assert lazy.like(np.zeros(1, np.float64)).dtype == np.float64
    with pytest.raises(ValueError):
        lazy.host[0, 0] = 1


def test_require_float_and_finite():
    with pytest.raises(DTypeError, match="frames"):
        sb.require_float(np.zeros(3, np.int32), "frames")
    with pytest.raises(Exception, match="2 NaN"):
        sb.require_finite(np.array([np.nan, 1.0, np.inf]), "video")


def test_cupy_absent_or_present_is_reported_cleanly():
    ok, why = sb.cupy_available()
    assert isinstance(why, str) and why
    if ok:
        cp = sb.cupy()
        x = cp.asarray(np.ones((2, 4, 3, 3), np.float32))
        w = cp.asarray(np.ones((4, 3, 3), np.float32))
        assert float(sb.sum_of_products(x, w).sum()) == 2 * 4 * 9
    else:
        with pytest.raises(BackendUnavailableError, match="cupy"):
            sb.cupy()


def test_cuda_paths_when_a_gpu_is_present(rng):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device on this machine; the torch CUDA path runs where one is")
    from snapcap.cacti import CactiOperator

    masks = (rng.random((4, 8, 8)) < 0.5).astype(np.float32)
    op = CactiOperator(masks)
    x = torch.rand(2, 4, 8, 8, device="cuda")
    y = op.A(x)
    assert y.device.type == "cuda"
    np.testing.assert_allclose(y.cpu().numpy(), op.A(x.cpu().numpy()), rtol=1e-5)
