"""Array backends: the only module that knows numpy, torch and cupy by name.

Every array function in snapcap starts with ``xp = namespace(x)`` and writes its arithmetic
against the array API standard, so the same code runs on numpy, torch (CPU or CUDA), cupy and
array-api-strict. Results keep the input's backend, device and dtype.

Constant arrays (masks, Bayer channel maps) are stored once as numpy and moved lazily to the
caller's namespace, device and dtype by :class:`LazyArray`, which caches each conversion.

The CACTI forward contraction (:func:`sum_of_products`) is compiled with numba for numpy
arrays and torch CPU tensors and shares its work among threads: for torch tensors torch's own
OpenMP threads (so that the two never compete for cores), for numpy arrays snapcap's pool.

CuPy is optional: nothing here imports it unless a cupy array is seen or :func:`cupy` is called,
and on a machine without a working GPU :func:`cupy` raises :class:`BackendUnavailableError`
with the reason instead of crashing deep inside CUDA.
"""

from __future__ import annotations

import ctypes
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

import array_api_compat
import numpy as np

from snapcap.errors import BackendUnavailableError, DTypeError, InvalidValueError

__all__ = [
    "namespace",
    "backend_name",
    "is_array_object",
    "is_numpy",
    "is_torch",
    "is_cupy",
    "device",
    "to_numpy",
    "from_numpy",
    "require_float",
    "require_finite",
    "LazyArray",
    "sum_of_products",
    "cupy",
    "cupy_available",
    "torch_cuda_available",
    "thread_pool",
    "require_data",
    "torch_device",
    "contraction_report",
    "share_work",
    "sharing_threads",
]


def namespace(*arrays: Any):
    """Array-API namespace of the given arrays (numpy, torch, cupy, array-api-strict...).

    Raises:
        InvalidValueError: a torch tensor on the ``meta`` device (it holds no data).
    """
    for array in arrays:
        require_data(array)
    return array_api_compat.array_namespace(*arrays)


def require_data(x: Any, what: str = "array") -> Any:
    """``x`` unless it is a torch tensor on the ``meta`` device, which has shapes but no values."""
    if getattr(x, "is_meta", False):
        raise InvalidValueError(
            f"{what} is a torch tensor on the 'meta' device, which holds no data; move it to cpu or cuda first"
        )
    return x


def is_numpy(x: Any) -> bool:
    return array_api_compat.is_numpy_array(x)


def is_torch(x: Any) -> bool:
    return array_api_compat.is_torch_array(x)


def is_cupy(x: Any) -> bool:
    return array_api_compat.is_cupy_array(x)


def is_array_object(x: Any) -> bool:
    """Whether ``x`` is an array of a backend snapcap computes with (not an h5py dataset, a list...)."""
    return array_api_compat.is_array_api_obj(x)


def backend_name(x: Any) -> str:
    """Short name of the backend holding ``x``: 'numpy', 'torch', 'cupy' or the module name."""
    if is_numpy(x):
        return "numpy"
    if is_torch(x):
        return "torch"
    if is_cupy(x):
        return "cupy"
    return type(x).__module__.split(".")[0]


def device(x: Any):
    """Device of ``x`` in the array API sense (``'cpu'`` for numpy)."""
    return array_api_compat.device(x)


def to_numpy(x: Any) -> np.ndarray:
    """A numpy view or copy of ``x`` (host memory). Numpy input is returned as is."""
    if isinstance(x, np.ndarray):
        return x
    if np.isscalar(x):
        return np.asarray(x)
    require_data(x)
    if is_torch(x):
        return x.detach().resolve_conj().cpu().numpy()
    if is_cupy(x):
        return x.get()
    try:
        return np.from_dlpack(x)
    except Exception:  # noqa: BLE001 - fall back for objects without a host dlpack export
        return np.asarray(x)


def _numpy_dtype(dtype: Any) -> np.dtype:
    """The numpy dtype equivalent to a dtype of any backend."""
    if isinstance(dtype, np.dtype) or (isinstance(dtype, type) and issubclass(dtype, np.generic)):
        return np.dtype(dtype)
    name = str(dtype).rsplit(".", 1)[-1]
    try:
        return np.dtype(name)
    except TypeError as exc:  # pragma: no cover - exotic dtypes such as bfloat16
        raise DTypeError(f"dtype {dtype!r} has no numpy equivalent") from exc


def from_numpy(arr: np.ndarray, like: Any, dtype: Any = None):
    """``arr`` moved to the backend and device of ``like``, cast to ``dtype`` (default ``like.dtype``)."""
    target = like.dtype if dtype is None else dtype
    if is_numpy(like):
        return np.asarray(arr, dtype=target)
    host = np.ascontiguousarray(arr, dtype=_numpy_dtype(target))
    if is_torch(like):
        import torch

        if not host.flags.writeable:
            host = host.copy()
        return torch.from_numpy(host).to(device=like.device)
    xp = namespace(like)
    return xp.asarray(host, device=device(like))


def require_float(x: Any, name: str):
    """Raise :class:`DTypeError` unless ``x`` has a real floating dtype."""
    xp = namespace(x)
    if not xp.isdtype(x.dtype, "real floating"):
        raise DTypeError(
            f"{name} must be a real floating array (float32 or float64), got dtype {x.dtype}; "
            "convert integer frames with snapcap.cacti.simulate or divide by 255 first"
        )
    return xp


def require_finite(x: Any, name: str) -> None:
    """Raise :class:`InvalidValueError` if ``x`` holds NaN or infinity."""
    xp = namespace(x)
    if xp.isdtype(x.dtype, ("real floating", "complex floating")) and not bool(xp.all(xp.isfinite(x))):
        bad = int(xp.sum(xp.astype(~xp.isfinite(x), xp.int64)))
        raise InvalidValueError(f"{name} holds {bad} NaN or infinite value(s); expected finite numbers")


class LazyArray:
    """A constant numpy array handed out in any backend, device and dtype, converting once.

    Args:
        array: the host copy; it is made read-only.
    """

    __slots__ = ("_host", "_cache", "_lock")

    def __init__(self, array: np.ndarray):
        host = np.array(array, copy=True)
        host.setflags(write=False)
        self._host = host
        self._cache: dict[tuple[str, str, str], Any] = {}
        self._lock = threading.Lock()

    @property
    def host(self) -> np.ndarray:
        """The read-only numpy array."""
        return self._host

    def like(self, ref: Any, dtype: Any = None):
        """The array in ``ref``'s backend and device, with ``dtype`` (default ``ref.dtype``)."""
        target = ref.dtype if dtype is None else dtype
        if is_numpy(ref):
            if self._host.dtype == target:
                return self._host
        key = (type(ref).__module__ + "." + type(ref).__qualname__, str(device(ref)), str(target))
        with self._lock:
            cached = self._cache.get(key)
            if cached is None:
                cached = from_numpy(self._host, ref, target)
                if is_numpy(cached):
                    cached.setflags(write=False)
                self._cache[key] = cached
        return cached


def cupy_available() -> tuple[bool, str]:
    """Whether CuPy imports and sees a CUDA device, and if not, why."""
    try:
        import cupy as cp
    except Exception as exc:  # noqa: BLE001 - ImportError or a broken CUDA install
        return False, f"cupy is not installed or does not import ({exc.__class__.__name__}: {exc}); install snapcap[gpu]"
    try:
        count = cp.cuda.runtime.getDeviceCount()
    except Exception as exc:  # noqa: BLE001 - CUDA driver errors
        return False, f"cupy imports but CUDA is not usable ({exc.__class__.__name__}: {exc})"
    if count < 1:
        return False, "cupy imports but no CUDA device is visible"
    return True, f"cupy {cp.__version__} with {count} CUDA device(s)"


def cupy():
    """The cupy module, or :class:`BackendUnavailableError` saying why it cannot be used."""
    ok, why = cupy_available()
    if not ok:
        raise BackendUnavailableError(why)
    import cupy as cp

    return cp


def torch_cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


# --- the CACTI contraction -------------------------------------------------------------------

_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()
_THREAD_MIN_ELEMENTS = 1 << 21  # below ~2M elements one thread is faster than handing off


def torch_device(device: Any):
    """``device`` (``"cpu"``, ``"cuda"``, ``"cuda:1"``, a ``torch.device``) as a ``torch.device``
    this machine has.

    Raises:
        InvalidValueError: not a torch device name.
        BackendUnavailableError: a CUDA device this machine does not have.
    """
    import torch

    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError):
        raise InvalidValueError(f"device must be a torch device such as cpu, cuda or cuda:0, got {device!r}") from None
    if resolved.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise BackendUnavailableError(f"device={device!r}: CUDA is not available on this machine")
        if resolved.index is not None and resolved.index >= count:
            raise BackendUnavailableError(f"device={device!r}: this machine has {count} CUDA device(s)")
    return resolved


def thread_pool() -> ThreadPoolExecutor | None:
    global _POOL
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    workers = min(cores, 8) - 1  # the calling thread works too
    if workers < 1:
        return None
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="snapcap")
    return _POOL


def _after_fork() -> None:
    # A forked child (a dataset or DataLoader worker) inherits the pool object but none of its
    # threads: work handed to it would never run, so the child makes its own on first use. Nor
    # may it enter the OpenMP team torch's runtime kept from the parent (GNU OpenMP hangs there),
    # so it shares work on its own pool. A lock held by a parent thread at the fork would never
    # be released in the child: the child gets fresh ones.
    global _POOL, _POOL_LOCK, _OPENMP, _KERNEL_LOCK
    _POOL = None
    _POOL_LOCK = threading.Lock()
    _KERNEL_LOCK = threading.Lock()
    _OPENMP = False


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


def sharing_threads(torch_threads: bool = False) -> int:
    """How many threads :func:`share_work` runs tasks on (the caller included)."""
    if torch_threads and _torch_openmp() is not None:
        return sys.modules["torch"].get_num_threads()  # torch's team, as torch.set_num_threads sets it
    pool = thread_pool()
    return 1 + (pool._max_workers if pool else 0)


def share_work(tasks: list[Any], run: Callable[[Any], None], torch_threads: bool = False) -> None:
    """``run(task)`` for every task, by several threads taking tasks from one queue: a thread
    that wakes late (or a core taken by something else) only means the others do more. The
    first error a task raises is raised here once the others have stopped.

    The threads are the caller and the workers of :func:`thread_pool`; with ``torch_threads``,
    and torch on an OpenMP runtime, torch's own team of ``torch.get_num_threads()`` threads
    (see :func:`_torch_openmp`).
    """
    parallel = _torch_openmp() if torch_threads else None
    pool = thread_pool() if parallel is None else None
    threads = sharing_threads(torch_threads)
    if len(tasks) < 2 or threads < 2:
        for task in tasks:
            run(task)
        return
    pending = iter(tasks)
    lock = threading.Lock()
    errors: list[BaseException] = []

    def work(_: Any = None) -> None:
        try:
            while not errors:
                with lock:
                    task = next(pending, None)
                if task is None:
                    return
                run(task)
        except BaseException as error:  # noqa: BLE001 - an OpenMP thread cannot raise: the caller re-raises it
            errors.append(error)

    if parallel is not None:
        parallel(_OPENMP_TASK(work), None, min(threads, len(tasks)), 0)
    else:
        futures = [pool.submit(work) for _ in range(min(pool._max_workers, len(tasks) - 1))]
        work()
        for future in futures:
            # A helper that never started (pool busy, or we are inside a pool thread) is
            # cancelled rather than waited for: the caller has already emptied the queue.
            if not future.cancel():
                future.result()
    if errors:
        raise errors[0]


# torch runs its CPU operators on an OpenMP team whose threads spin for a while after each
# operator, waiting for the next; threads of another pool then share those cores with spinning
# threads (on 2 cores, the contraction ran 2.1x slower right after a torch operator). So the
# contraction of torch tensors runs on that same team, through the runtime's GOMP_parallel
# entry point (libgomp's ABI, also exported by LLVM's and Intel's runtimes), with a Python
# callback on each thread that calls the GIL-free kernel. numpy arrays stay on snapcap's pool,
# with the rest of snapcap's numpy work (the TV denoiser's threads), which would otherwise meet
# torch's spinning threads in turn.
_OPENMP_TASK = ctypes.CFUNCTYPE(None, ctypes.c_void_p)
_OPENMP: Any = None  # GOMP_parallel once looked up; False: torch is loaded without OpenMP


def _torch_openmp() -> Callable | None:
    """GOMP_parallel of the OpenMP runtime torch's CPU threads run on, when torch is loaded and
    uses one (Linux); None otherwise."""
    global _OPENMP
    torch = sys.modules.get("torch")
    if _OPENMP is None and torch is not None and hasattr(torch, "__config__"):
        _OPENMP = False
        if "parallel backend: OpenMP" in torch.__config__.parallel_info() and os.path.exists("/proc/self/maps"):
            with open("/proc/self/maps") as maps:  # address perms offset dev inode path (which may hold spaces)
                paths = {fields[5].rstrip("\n") for fields in (line.split(maxsplit=5) for line in maps) if len(fields) == 6}
            loaded = {path for path in paths if os.path.basename(path).startswith(("libgomp", "libiomp", "libomp"))}
            torch_first = sorted(loaded, key=lambda path: not path.startswith(os.path.dirname(torch.__file__)))
            for path in torch_first:
                try:
                    parallel = ctypes.CDLL(path).GOMP_parallel  # the loaded copy: dlopen finds it by path
                except (OSError, AttributeError):
                    continue
                parallel.argtypes = [_OPENMP_TASK, ctypes.c_void_p, ctypes.c_uint, ctypes.c_uint]
                parallel.restype = None
                _OPENMP = parallel
                break
    return _OPENMP or None


# The compiled contraction. Pixels are taken in blocks whose shared weights (B x 4096 values) stay in
# the core's L2 cache while every snapshot of the batch passes over them; within a block, 256
# pixels at a time are summed over the frames in an L1-resident row, four frames a pass, and
# stored once. So x is read once, the weights once per block and the output written once: the
# cost of x.sum(-3) (bench/simulate.py), where a loop of whole-array multiply-adds reads and
# writes the output B times. Every output pixel is summed in the same order whatever the split,
# so results do not depend on the number of threads.
_BLOCK = 4096
_ROW = 256


def _contraction_loop(x, weights, out, first_item, stop_item, first_pixel, stop_pixel):
    nframes = x.shape[1]
    row = np.empty(_ROW, out.dtype)
    for block in range(first_pixel, stop_pixel, _BLOCK):
        block_stop = min(stop_pixel, block + _BLOCK)
        for item in range(first_item, stop_item):
            mask = weights[item if weights.shape[0] > 1 else 0]
            for start in range(block, block_stop, _ROW):
                # unsigned indices: numba then drops its negative-index handling and vectorises
                width = np.uint64(min(_ROW, block_stop - start))
                base = np.uint64(start)
                k = 0
                if nframes >= 4:
                    for j in range(width):
                        p = base + j
                        total = x[item, 0, p] * mask[0, p]
                        total += x[item, 1, p] * mask[1, p]
                        total += x[item, 2, p] * mask[2, p]
                        row[j] = total + x[item, 3, p] * mask[3, p]
                    k = 4
                else:
                    for j in range(width):
                        row[j] = x[item, 0, base + j] * mask[0, base + j]
                    k = 1
                while k + 4 <= nframes:
                    for j in range(width):
                        p = base + j
                        total = row[j] + x[item, k, p] * mask[k, p]
                        total += x[item, k + 1, p] * mask[k + 1, p]
                        total += x[item, k + 2, p] * mask[k + 2, p]
                        row[j] = total + x[item, k + 3, p] * mask[k + 3, p]
                    k += 4
                while k < nframes:
                    for j in range(width):
                        row[j] += x[item, k, base + j] * mask[k, base + j]
                    k += 1
                for j in range(width):
                    out[item, base + j] = row[j]


_KERNEL: Any = None  # the compiled loop; False: numba does not import
_KERNEL_LOCK = threading.Lock()


def _contraction_kernel():
    """The loop above compiled by numba (on first use: ~0.2 s from numba's on-disk cache, ~1 s
    without one); None where numba does not import (the einsum and torch paths then serve)."""
    global _KERNEL
    if _KERNEL is not None:
        return _KERNEL or None
    with _KERNEL_LOCK:
        if _KERNEL is None:
            try:
                import numba
            except ImportError:  # a broken or missing install: slower, still right
                _KERNEL = False
                return None
            options = {"nogil": True, "boundscheck": False, "error_model": "numpy"}
            try:
                _KERNEL = numba.njit(cache=True, **options)(_contraction_loop)
            except RuntimeError:  # no writable cache folder: compile in memory, once per process
                _KERNEL = numba.njit(**options)(_contraction_loop)
    return _KERNEL or None


def _compiled_operands(x: Any, weights: Any) -> tuple[np.ndarray, np.ndarray] | None:
    """numpy views ``(items, B, pixels)`` of x and ``(1 or items, B, pixels)`` of the weights
    when the compiled kernel applies: numpy or torch CPU arrays of one dtype (float32 or
    float64), C-contiguous, weights shared by every item or one set per item, nothing that
    autograd or torch.compile must see. Otherwise None."""
    if x.ndim < 3 or 0 in tuple(x.shape) or weights.ndim > x.ndim or tuple(weights.shape[-3:]) != tuple(x.shape[-3:]):
        return None
    lead = tuple(weights.shape[:-3])
    per_item = any(size != 1 for size in lead)
    if per_item and (len(lead) != x.ndim - 3 or lead != tuple(x.shape[:-3])):
        return None  # masks that broadcast over some leading axes only
    if is_numpy(x) and is_numpy(weights):
        if x.dtype != weights.dtype or x.dtype not in (np.float32, np.float64):
            return None
        if not (x.flags.c_contiguous and weights.flags.c_contiguous):
            return None
        host_x, host_w = x, weights
    elif is_torch(x) and is_torch(weights):
        import torch

        if type(x) is not torch.Tensor or type(weights) is not torch.Tensor:  # subclasses, fake tensors
            return None
        if x.device.type != "cpu" or weights.device.type != "cpu" or x.dtype != weights.dtype:
            return None
        if x.dtype not in (torch.float32, torch.float64) or not (x.is_contiguous() and weights.is_contiguous()):
            return None
        if x.is_neg() or weights.is_neg():
            return None
        # what autograd (backward or forward mode), vmap/grad or torch.compile must see
        if torch.is_grad_enabled() and (x.requires_grad or weights.requires_grad):
            return None
        if torch.autograd.forward_ad._current_level >= 0 or torch.compiler.is_compiling():  # a dual level is open
            return None
        if torch._C._functorch.is_functorch_wrapped_tensor(x) or torch._C._functorch.is_functorch_wrapped_tensor(weights):
            return None
        host_x, host_w = x.detach().numpy(), weights.detach().numpy()
    else:
        return None
    nframes, height, width = x.shape[-3:]
    return host_x.reshape(-1, nframes, height * width), host_w.reshape(-1 if per_item else 1, nframes, height * width)


def _compiled_sum_of_products(x: Any, host_x: np.ndarray, host_w: np.ndarray):
    items, _, pixels = host_x.shape
    out_shape = tuple(x.shape[:-3]) + tuple(x.shape[-2:])
    host_out = np.empty((items, pixels), dtype=host_x.dtype)
    out = host_out.reshape(out_shape)
    if is_torch(x):
        import torch

        out = torch.from_numpy(out)
    kernel = _contraction_kernel()
    torch_threads = is_torch(x)
    threads = sharing_threads(torch_threads) if host_x.size >= _THREAD_MIN_ELEMENTS else 1
    if threads == 1:
        kernel(host_x, host_w, host_out, 0, items, 0, pixels)
        return out
    # A task is up to 8 items x 8192 pixels: the weights of its blocks are read from L2 by all 8
    # items, and the pages it touches stay few. At least four tasks a thread even out a slow core.
    blocks = [(start, min(pixels, start + 2 * _BLOCK)) for start in range(0, pixels, 2 * _BLOCK)]
    chunk = max(1, min(8, items * len(blocks) // (4 * threads)))
    tasks = [(first, min(items, first + chunk), p0, p1) for p0, p1 in blocks for first in range(0, items, chunk)]
    share_work(tasks, lambda task: kernel(host_x, host_w, host_out, *task), torch_threads)
    return out


def contraction_report() -> str:
    """How :func:`sum_of_products` runs on the CPU here: the kernel and whose threads."""
    if _contraction_kernel() is None:
        return "numba does not import: einsum and torch's multiply-add loop (slower; reinstall snapcap)"
    import numba

    report = f"numba {numba.__version__} kernel; numpy arrays on snapcap's thread pool ({sharing_threads()} threads)"
    if _torch_openmp() is not None:
        report += f", torch tensors on torch's OpenMP threads ({sharing_threads(True)})"
    return report


def sum_of_products(x: Any, weights: Any):
    """Σ_k x[..., k, :, :] · weights[..., k, :, :] without materialising the product.

    This is the CACTI forward contraction. ``weights`` broadcasts against ``x`` and must
    already be in ``x``'s backend and device. numpy arrays and torch CPU tensors (float32 or
    float64, contiguous, no autograd) with weights ``(B, H, W)`` or one set per item run a
    compiled, threaded kernel that reads x once; torch otherwise (CUDA, autograd, other dtypes)
    runs a fused multiply-add loop, numpy an einsum, other backends a plain loop over k. Each
    pixel's products are summed in frame order k = 0, 1, ..., B - 1 on every path, so numpy
    results are the same bit for bit whatever the path or the number of threads.
    """
    operands = _compiled_operands(x, weights)
    if operands is not None and _contraction_kernel() is not None:
        return _compiled_sum_of_products(x, *operands)
    if is_numpy(x) and is_numpy(weights):
        return np.einsum("...khw,...khw->...hw", x, weights)
    nframes = x.shape[-3]
    if is_torch(x):
        out = x[..., 0, :, :] * weights[..., 0, :, :]
        for k in range(1, nframes):
            out.addcmul_(x[..., k, :, :], weights[..., k, :, :])
        return out
    out = x[..., 0, :, :] * weights[..., 0, :, :]
    for k in range(1, nframes):
        out = out + x[..., k, :, :] * weights[..., k, :, :]
    return out
