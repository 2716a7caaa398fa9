"""Forward-model benchmark: snapcap's CACTI operator against the naive sum and the memory floor.

At N = 32 videos' snapshots, B = 8, 256 x 256, float32, on the same arrays in one run:
  naive  np.sum(x * masks, axis=1)   (materialises the product)
  floor  x.sum(axis=1)                (reads x once, no multiply: nothing can do much better)
  snapcap CactiOperator(masks).A(x)
Runs are interleaved (a, b, c, a, b, c, ...) and the median is reported, since the machine is
shared. Target (issue 2): at least 3x faster than naive, within 1.2x of the floor, on numpy.

Usage: python bench/simulate.py [--repeat 15] [--n 32]
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
        print(f"  {name:<8} {seconds * 1e3:8.2f} ms")
    print(f"  snapcap vs naive: {times['naive'] / times['snapcap']:.2f}x faster (target >= 3)")
    print(f"  snapcap / floor:  {times['snapcap'] / times['floor']:.2f} (target <= 1.2)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=32)
    parser.add_argument("--B", type=int, default=8)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    shape = (args.n, args.B, args.size, args.size)
    x = rng.random(shape, dtype=np.float32)
    masks = random_binary(args.B, args.size, args.size, seed=0)
    op = CactiOperator(masks)
    print(f"forward model, x {shape} float32, masks {masks.shape}")
    np.testing.assert_allclose(op.A(x), np.sum(x * masks, axis=1), rtol=1e-5, atol=1e-4)
    numpy_times = timed(
        {"naive": lambda: np.sum(x * masks, axis=1), "floor": lambda: x.sum(axis=1), "snapcap": lambda: op.A(x)}, args.repeat
    )
    report("numpy", numpy_times)
    try:
        import torch
    except ImportError:
        print("\ntorch not installed: skipped")
    else:
        xt = torch.from_numpy(x)
        mt = torch.from_numpy(masks)
        with torch.no_grad():
            functions = {"naive": lambda: (xt * mt).sum(1), "floor": lambda: xt.sum(1), "snapcap": lambda: op.A(xt)}
            functions["numpy snapcap"] = lambda: op.A(x)  # the same run: torch against numpy side by side
            torch_times = timed(functions, args.repeat)
            report(f"torch CPU ({torch.get_num_threads()} threads)", torch_times)
            print(
                f"  torch snapcap / numpy snapcap (same run): {torch_times['snapcap'] / torch_times['numpy snapcap']:.2f}; "
                f"torch's floor / numpy's floor: {torch_times['floor'] / numpy_times['floor']:.2f} "
                "(torch's x.sum(1) is the faster floor: the torch target is the stricter one)"
            )
            if torch.cuda.is_available():
                xc = xt.cuda()
                mc = mt.cuda()

                def sync(function):
                    def run():
                        function()
                        torch.cuda.synchronize()

                    return run

                report(
                    "torch CUDA",
                    timed(
                        {
                            "naive": sync(lambda: (xc * mc).sum(1)),
                            "floor": sync(lambda: xc.sum(1)),
                            "snapcap": sync(lambda: op.A(xc)),
                        },
                        args.repeat,
                    ),
                )
    from snapcap.backend import cupy_available

    ok, why = cupy_available()
    if ok:
        import cupy as cp

        xc = cp.asarray(x)
        mc = cp.asarray(masks)

        def csync(function):
            def run():
                function()
                cp.cuda.Device().synchronize()

            return run

        report(
            "cupy",
            timed(
                {"naive": csync(lambda: (xc * mc).sum(1)), "floor": csync(lambda: xc.sum(1)), "snapcap": csync(lambda: op.A(xc))},
                args.repeat,
            ),
        )
    else:
        print(f"\ncupy: skipped ({why})")
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
