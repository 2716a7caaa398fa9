"""Forward-model benchmark: snapcap's CACTI operator against the naive sum and the memory floor.

At B = 8, 256 x 256, float32, on the same arrays in one run, for two batch sizes:
  N = 32 videos' snapshots (64 MB of frames: held by a large last-level cache, 300 MiB here)
  N = 256 (512 MB: larger than the cache, so every pass reads main memory)
it times
  naive    np.sum(x * masks, axis=1)   (materialises the product)
  floor    x.sum(axis=1)                (reads x once, no multiply: nothing can do much better)
  snapcap  CactiOperator(masks).A(x)
snapcap's numpy and torch CPU paths run one compiled kernel (numba, threaded; see
snapcap.backend.sum_of_products). On torch, references that snapcap does not use there:
  addcmul  the eager multiply-add loop over k (torch's own fused op; snapcap's path for CUDA,
           autograd and other dtypes): it reads and writes the output B times
  conv     the contraction as a depthwise convolution (oneDNN; one pass over x)
  compiled torch.compile of (x * masks).sum(1) (a generated C++/OpenMP loop; --compiled,
           needs a C++ compiler and takes seconds to compile)
In the torch table, "numpy snapcap" is the numpy path timed right after torch operators: it runs
on snapcap's own pool while torch's OpenMP threads still spin, the contention the torch path
avoids by running on torch's team.
Runs are interleaved (a, b, c, a, b, c, ...) and the median is reported, since the machine is
shared. Targets: at least 3x faster than naive, within 1.2x of the floor.

Usage: python bench/simulate.py [--repeat 15] [--n 32] [--n-large 256] [--compiled]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from snapcap.cacti import CactiOperator, simulate
from snapcap.cacti.masks import random_binary


def timed(functions: dict, repeat: int) -> dict[str, float]:
    samples: dict[str, list[float]] = {name: [] for name in functions}
    for function in functions.values():
        function()  # warm-up (allocations, mask transfer cache)
    for _ in range(repeat):
        for name, function in functions.items():
            start = time.perf_counter()
            function()
            samples[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in samples.items()}


def report(title: str, times: dict[str, float]) -> None:
    print(f"\n{title}")
    for name, seconds in times.items():
        print(f"  {name:<14} {seconds * 1e3:8.2f} ms   {seconds / times['floor']:5.2f} x the floor")
    print(f"  snapcap vs naive: {times['naive'] / times['snapcap']:.2f}x faster (target >= 3)")
    print(f"  snapcap / floor:  {times['snapcap'] / times['floor']:.2f} (target <= 1.2)")


def torch_references(xt, mt, compiled: bool) -> dict:
    """Fused kernels snapcap does not use: what one pass over x costs on this machine."""
    import torch
    import torch.nn.functional as F

    n, b, h, w = xt.shape
    weight = mt.reshape(b, h * w).t().contiguous().view(h * w, 1, b, 1)

    def addcmul():
        out = xt[:, 0] * mt[0]
        for k in range(1, b):
            out.addcmul_(xt[:, k], mt[k])
        return out

    # (N, B, H, W) seen as a channels-last (N, C=H*W, B, 1) image: a depthwise convolution with
    # kernel (B, 1) is the sum over frames, and oneDNN streams x once.
    references = {
        "addcmul (ref)": addcmul,
        "conv (ref)": lambda: F.conv2d(xt.view(n, b, 1, h * w).permute(0, 3, 1, 2), weight, groups=h * w),
    }
    if compiled:
        fused = torch.compile(lambda x, m: (x * m).sum(1))
        start = time.perf_counter()
        fused(xt, mt)
        print(f"  (torch.compile: {time.perf_counter() - start:.1f} s to compile)")
        references["compiled (ref)"] = lambda: fused(xt, mt)
    expected = (xt * mt).sum(1)
    for name, function in references.items():
        got = function().reshape(n, h, w)
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-4, msg=f"{name} is wrong")
    return references


def on_device(x, masks, op: CactiOperator, synchronize) -> dict:
    """naive, floor and snapcap on arrays of a GPU, each run waiting for the device."""

    def synced(function):
        def run():
            function()
            synchronize()

        return run

    return {
        "naive": synced(lambda: (x * masks).sum(1)),
        "floor": synced(lambda: x.sum(1)),
        "snapcap": synced(lambda: op.A(x)),
    }


def one_size(n: int, args: argparse.Namespace, masks: np.ndarray, op: CactiOperator) -> dict[str, float]:
    rng = np.random.default_rng(0)
    shape = (n, args.B, args.size, args.size)
    x = rng.random(shape, dtype=np.float32)
    print(f"\n=== x {shape} float32 ({x.nbytes / 2**20:.0f} MiB), masks {masks.shape} ===")
    np.testing.assert_allclose(op.A(x), np.sum(x * masks, axis=1), rtol=1e-5, atol=1e-4)
    numpy_times = timed(
        {"naive": lambda: np.sum(x * masks, axis=1), "floor": lambda: x.sum(axis=1), "snapcap": lambda: op.A(x)}, args.repeat
    )
    report("numpy", numpy_times)
    ratios = {"numpy": numpy_times["snapcap"] / numpy_times["floor"]}
    try:
        import torch
    except ImportError:
        print("\ntorch not installed: skipped")
        return ratios
    xt = torch.from_numpy(x)
    mt = torch.from_numpy(masks)
    with torch.no_grad():
        functions = {"naive": lambda: (xt * mt).sum(1), "floor": lambda: xt.sum(1), "snapcap": lambda: op.A(xt)}
        functions.update(torch_references(xt, mt, args.compiled))
        functions["numpy snapcap"] = lambda: op.A(x)  # the same run: torch against numpy side by side
        torch_times = timed(functions, args.repeat)
        report(f"torch CPU ({torch.get_num_threads()} threads)", torch_times)
        print(
            f"  torch snapcap / numpy snapcap (same run): {torch_times['snapcap'] / torch_times['numpy snapcap']:.2f}; "
            f"torch's floor / numpy's floor: {torch_times['floor'] / numpy_times['floor']:.2f} "
            "(the torch target is against torch's own, faster floor)"
        )
        ratios["torch"] = torch_times["snapcap"] / torch_times["floor"]
        for name in torch_times:
            if name.endswith("(ref)"):
                ratios[f"torch {name}"] = torch_times[name] / torch_times["floor"]
        if torch.cuda.is_available():
            cuda_times = timed(on_device(xt.cuda(), mt.cuda(), op, torch.cuda.synchronize), args.repeat)
            report("torch CUDA", cuda_times)
            ratios["torch CUDA"] = cuda_times["snapcap"] / cuda_times["floor"]
    from snapcap.backend import cupy_available

    ok, why = cupy_available()
    if ok:
        import cupy as cp

        cupy_times = timed(on_device(cp.asarray(x), cp.asarray(masks), op, cp.cuda.Device().synchronize), args.repeat)
        report("cupy", cupy_times)
        ratios["cupy"] = cupy_times["snapcap"] / cupy_times["floor"]
    else:
        print(f"\ncupy: skipped ({why})")
    return ratios


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=32, help="snapshots at the cache-resident size (default 32)")
    parser.add_argument("--n-large", type=int, default=256, help="snapshots at the memory-bound size (default 256; 0 skips)")
    parser.add_argument("--B", type=int, default=8)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--compiled", action="store_true", help="also time torch.compile's fused kernel (a reference)")
    args = parser.parse_args()
    masks = random_binary(args.B, args.size, args.size, seed=0)
    op = CactiOperator(masks)
    sizes = [n for n in (args.n, args.n_large) if n > 0]
    table = {n: one_size(n, args, masks, op) for n in sizes}
    print("\nsnapcap (and the references) / floor, target <= 1.2:")
    names = list(dict.fromkeys(name for ratios in table.values() for name in ratios))
    print(f"  {'':<24}" + "".join(f"{f'N = {n}':>10}" for n in sizes))
    for name in names:
        cells = "".join(f"{table[n][name]:>10.2f}" if name in table[n] else f"{'-':>10}" for n in sizes)
        print(f"  {name:<24}{cells}")
    rng = np.random.default_rng(1)
    video = (rng.random((args.n, 2 * args.B, args.size, args.size)) * 255).astype(np.uint8)
    start = time.perf_counter()
    simulate(video, B=args.B, noise="poisson:photons=1000+gaussian:sigma=0.01", seed=0)
    seconds = time.perf_counter() - start
    print(
        f"\nfull simulate() of {args.n} uint8 videos x {2 * args.B} frames with Poisson-Gaussian noise: "
        f"{seconds:.2f} s ({args.n * 2 / seconds:.0f} snapshots/s)"
    )


if __name__ == "__main__":
    main()
