"""Backend helpers: the contraction kernel, lazy constants, optional CuPy."""

from __future__ import annotations

import multiprocessing
import os
import sys
import threading
import time

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


def frame_order_sum(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    total = x[..., 0, :, :] * w[..., 0, :, :]
    for k in range(1, x.shape[-3]):
        total = total + x[..., k, :, :] * w[..., k, :, :]
    return total


@pytest.mark.parametrize("threads", ["openmp", "pool"])
@pytest.mark.parametrize(
    ("x_shape", "w_shape"),
    [
        ((33, 8, 96, 96), (8, 96, 96)),  # over the threading threshold, odd split
        ((5, 1, 9, 300), (1, 9, 300)),
        ((2, 3, 9, 40, 41), (9, 40, 41)),  # B = 9: two four-frame passes and one more
        ((2, 3, 5, 40, 41), (1, 1, 5, 40, 41)),
        ((45, 3, 128, 128), (45, 3, 128, 128)),  # one set of masks per item, threaded
        ((6, 30, 31), (6, 30, 31)),
    ],
)
def test_compiled_contraction_is_the_frame_order_sum_bit_for_bit(threads, x_shape, w_shape, rng, monkeypatch, request):
    # `dataset verify` re-simulates measurements bit for bit: every path, split and thread count
    # must sum each pixel's frames in order k = 0..B-1, as the files' writer did.
    torch = pytest.importorskip("torch")
    saved = torch.get_num_threads()
    request.addfinalizer(lambda: torch.set_num_threads(saved))
    torch.set_num_threads(2)  # other tests may have left torch on one thread
    if threads == "pool":
        monkeypatch.setattr(sb, "_OPENMP", False)  # torch tensors as without OpenMP: snapcap's own threads
    shared = []
    share_work = sb.share_work
    spy = lambda tasks, run, on_torch=False: share_work(tasks, run, shared.append(on_torch) or on_torch)  # noqa: E731
    monkeypatch.setattr(sb, "share_work", spy)
    for dtype in (np.float32, np.float64):
        x = rng.random(x_shape).astype(dtype)
        w = rng.random(w_shape).astype(dtype)
        expected = frame_order_sum(x, w)
        got = sb.sum_of_products(x, w)
        assert got.dtype == dtype and got.shape == expected.shape
        np.testing.assert_array_equal(got, expected)
        np.testing.assert_array_equal(np.einsum("...khw,...khw->...hw", x, w), expected)  # the fallback
        on_torch = sb.sum_of_products(torch.from_numpy(x), torch.from_numpy(w))
        assert isinstance(on_torch, torch.Tensor) and on_torch.dtype == torch.from_numpy(x).dtype
        np.testing.assert_array_equal(on_torch.numpy(), expected)
    if np.prod(x_shape) >= 1 << 21 and len(os.sched_getaffinity(0)) > 1:
        # split over threads: numpy on snapcap's pool, then torch on torch's team
        assert shared[:2] == [False, True]
        assert sb.sharing_threads(False) > 1 and sb.sharing_threads(True) > 1
    torch.set_num_threads(1)  # torch tensors then on the calling thread alone
    np.testing.assert_array_equal(sb.sum_of_products(torch.from_numpy(x), torch.from_numpy(w)).numpy(), expected)


def test_contraction_fallbacks_keep_autograd_dtypes_and_broadcasting(rng):
    torch = pytest.importorskip("torch")
    x_np = rng.random((3, 4, 6, 8)).astype(np.float32)
    w_np = rng.random((4, 6, 8)).astype(np.float32)
    expected = np.sum(x_np * w_np, axis=-3)
    x = torch.from_numpy(x_np).requires_grad_(True)
    y = sb.sum_of_products(x, torch.from_numpy(w_np))
    y.sum().backward()  # the compiled kernel is invisible to autograd: this runs on torch ops
    np.testing.assert_allclose(x.grad.numpy(), np.broadcast_to(w_np, x_np.shape), rtol=1e-6)
    np.testing.assert_allclose(y.detach().numpy(), expected, rtol=1e-5)
    half = sb.sum_of_products(torch.from_numpy(x_np).half(), torch.from_numpy(w_np).half())
    assert half.dtype == torch.float16
    np.testing.assert_allclose(half.float().numpy(), expected, rtol=1e-2)
    strided = x_np[:, :, :, ::2]  # not contiguous: einsum
    np.testing.assert_allclose(
        sb.sum_of_products(strided, w_np[:, :, ::2]), np.sum(strided * w_np[:, :, ::2], axis=-3), rtol=1e-6
    )
    wider = w_np[None, None]  # weights with more axes than x broadcast as numpy does
    assert sb.sum_of_products(x_np[0], wider).shape == (1, 1, 6, 8)
    mixed = sb.sum_of_products(x_np, w_np.astype(np.float64))
    assert mixed.dtype == np.float64
    np.testing.assert_allclose(mixed, expected, rtol=1e-6)
    empty = np.zeros((2, 4, 0, 8), np.float32)  # no pixels: the shape numpy gives
    assert sb.sum_of_products(empty, np.zeros((4, 0, 8), np.float32)).shape == (2, 0, 8)
    assert tuple(sb.sum_of_products(torch.from_numpy(empty), torch.zeros(4, 0, 8)).shape) == (2, 0, 8)
    w = torch.from_numpy(w_np)
    import torch.autograd.forward_ad as fwad

    with fwad.dual_level():  # forward-mode autograd keeps its tangent
        dual = fwad.make_dual(torch.from_numpy(x_np), torch.ones_like(torch.from_numpy(x_np)))
        tangent = fwad.unpack_dual(sb.sum_of_products(dual, w)).tangent
    np.testing.assert_allclose(tangent.numpy(), np.broadcast_to(w_np.sum(0), expected.shape), rtol=1e-5)
    batched = torch.func.vmap(lambda item: sb.sum_of_products(item, w))(torch.from_numpy(x_np))
    np.testing.assert_allclose(batched.numpy(), expected, rtol=1e-5)

    class Tagged(torch.Tensor):
        pass

    tagged = sb.sum_of_products(torch.from_numpy(x_np).as_subclass(Tagged), w.as_subclass(Tagged))
    assert type(tagged) is Tagged


def test_without_numba_the_contraction_still_runs(rng, monkeypatch):
    monkeypatch.setattr(sb, "_KERNEL", False)  # what a failed `import numba` leaves
    x = rng.random((3, 5, 7, 9)).astype(np.float32)
    w = rng.random((5, 7, 9)).astype(np.float32)
    np.testing.assert_array_equal(sb.sum_of_products(x, w), frame_order_sum(x, w))
    assert "numba does not import" in sb.contraction_report()


def raise_on_the_third(task: int) -> None:
    if task == 3:
        raise ValueError("task 3 failed")


@pytest.mark.parametrize("torch_threads", [True, False])
def test_a_failing_task_reaches_the_caller(torch_threads):
    pytest.importorskip("torch")
    with pytest.raises(ValueError, match="task 3 failed"):
        sb.share_work(list(range(8)), raise_on_the_third, torch_threads)


def test_torch_cpu_work_runs_on_torchs_own_openmp_threads():
    torch = pytest.importorskip("torch")
    if "parallel backend: OpenMP" not in torch.__config__.parallel_info() or not sys.platform.startswith("linux"):
        pytest.skip("torch does not run on OpenMP here")
    # without it the contraction competes with torch's spinning threads (2x slower on 2 cores)
    assert sb._torch_openmp() is not None
    seen: set[int] = set()
    lock = threading.Lock()

    def record(task: int) -> None:
        time.sleep(0.01)
        with lock:
            seen.add(threading.get_ident())

    saved = torch.get_num_threads()
    torch.set_num_threads(2)  # other tests may have left torch on one thread
    try:
        sb.share_work(list(range(8)), record, torch_threads=True)
    finally:
        torch.set_num_threads(saved)
    assert len(seen) >= 2 and not any(thread.ident in seen - {threading.get_ident()} for thread in threading.enumerate())


def contract_in_a_forked_child(queue, x, w) -> None:
    queue.put(sb.to_numpy(sb.sum_of_products(x, w)))


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="no fork on this platform")
@pytest.mark.parametrize("backend_name", ["numpy", "torch"])
def test_a_forked_worker_contracts_after_its_parent_did(backend_name, rng):
    # a dataset or DataLoader worker forked after the parent used its threads (snapcap's pool for
    # numpy, torch's OpenMP team for torch) must not wait on threads it does not have
    x = to_backend(rng.random((33, 8, 96, 96)).astype(np.float32), backend_name)
    w = to_backend(rng.random((8, 96, 96)).astype(np.float32), backend_name)
    expected = sb.to_numpy(sb.sum_of_products(x, w))  # threads started here
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=contract_in_a_forked_child, args=(queue, x, w))
    child.start()
    try:
        got = queue.get(timeout=60)
    finally:
        child.join(timeout=10)
        if child.is_alive():
            child.kill()
    np.testing.assert_array_equal(got, expected)


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


def test_the_kernel_compiles_without_a_writable_cache_folder(rng, monkeypatch):
    # numba refuses cache=True where no cache folder can be written (a read-only install and
    # home): the kernel is then compiled in memory, once per process
    numba = pytest.importorskip("numba")
    njit = numba.njit
    asked = []

    def without_cache(*args, **options):
        asked.append(options.get("cache", False))
        if options.get("cache"):
            raise RuntimeError("cannot cache function '_contraction_loop': no locator available")
        return njit(*args, **options)

    monkeypatch.setattr(numba, "njit", without_cache)
    monkeypatch.setattr(sb, "_KERNEL", None)
    x = rng.random((3, 5, 7, 9)).astype(np.float32)
    w = rng.random((5, 7, 9)).astype(np.float32)
    np.testing.assert_array_equal(sb.sum_of_products(x, w), frame_order_sum(x, w))
    assert asked[:2] == [True, False]  # (numba compiles its own helpers through njit too)
