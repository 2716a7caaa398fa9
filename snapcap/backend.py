"""Array backends: the only module that knows numpy, torch and cupy by name.

Every array function in snapcap starts with ``xp = namespace(x)`` and writes its arithmetic
against the array API standard, so the same code runs on numpy, torch (CPU or CUDA), cupy and
array-api-strict. Results keep the input's backend, device and dtype.

Constant arrays (masks, Bayer channel maps) are stored once as numpy and moved lazily to the
caller's namespace, device and dtype by :class:`LazyArray`, which caches each conversion.

CuPy is optional: nothing here imports it unless a cupy array is seen or :func:`cupy` is called,
and on a machine without a working GPU :func:`cupy` raises :class:`BackendUnavailableError`
with the reason instead of crashing deep inside CUDA.
"""

from __future__ import annotations

import os
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


def _numpy_sum_of_products(x: np.ndarray, weights: np.ndarray) -> np.ndarray:
    shape = np.broadcast_shapes(x.shape, weights.shape)
    out_shape = shape[:-3] + shape[-2:]
    dtype = np.result_type(x.dtype, weights.dtype)
    out = np.empty(out_shape, dtype=dtype)
    pool = thread_pool()
    if weights.ndim != 3 or pool is None or x.size < _THREAD_MIN_ELEMENTS or x.ndim < 4:
        np.einsum("...khw,...khw->...hw", x, weights, out=out)
        return out
    # Shared weights: split the flattened leading axes over threads (numpy releases the GIL).
    # einsum's fused multiply-add never materialises the (..., B, H, W) product.
    # Each output pixel is still summed over k in the same order, so results do not depend on
    # the split.
    lead = int(np.prod(x.shape[:-3]))
    flat_x = x.reshape((lead,) + x.shape[-3:])
    flat_out = out.reshape((lead,) + out.shape[-2:])
    parts = min(lead, 4 * (pool._max_workers + 1))  # the pool size we asked for
    bounds = np.linspace(0, lead, parts + 1).astype(int)

    def part(bound: tuple[int, int]) -> None:
        start, stop = bound
        np.einsum("nkhw,khw->nhw", flat_x[start:stop], weights, out=flat_out[start:stop])

    _share_work(pool, [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:]) if b > a], part)
    return out


def _share_work(pool: ThreadPoolExecutor | None, tasks: list[Any], run: Callable[[Any], None]) -> None:
    """``run(task)`` for every task, by the calling thread and the pool's workers taking tasks
    from one queue: a worker that wakes late (or a core taken by something else) only means the
    caller does more."""
    pending = iter(tasks)
    lock = threading.Lock()

    def work() -> None:
        while True:
            with lock:
                task = next(pending, None)
            if task is None:
                return
            run(task)

    futures = [pool.submit(work) for _ in range(pool._max_workers)] if pool is not None else []
    work()
    for future in futures:
        future.result()


def sum_of_products(x: Any, weights: Any):
    """Σ_k x[..., k, :, :] · weights[..., k, :, :] without materialising the product.

    This is the CACTI forward contraction. ``weights`` broadcasts against ``x`` and must
    already be in ``x``'s backend and device. numpy uses a threaded einsum, torch a fused
    multiply-add loop, other backends a plain loop over k.
    """
    if is_numpy(x) and is_numpy(weights):
        return _numpy_sum_of_products(x, weights)
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
