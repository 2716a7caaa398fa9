"""The GPU check: what a CUDA machine must show, in one table (about 8 minutes on one GPU).

1. The CUDA/CuPy tests (``pytest -k "cuda or cupy or gpu"``, slow cases included): counts.
2. The forward model: snapshots per second of ``CactiOperator.A`` on numpy, torch CPU, torch
   CUDA and CuPy (N = 32 snapshots, B = 8, 256 x 256, float32; CUDA synchronised, median of
   interleaved runs); the whole ``simulate()`` (RGB uint8 frames, Bayer, noise) on numpy and on
   ``device="cuda"``.
3. GAP-TV and PnP-FFDNet on CUDA against the CPU: seconds per snapshot and PSNR on the first
   snapshot of drop40 (the public grayscale benchmark) when ``--data`` has it, else on a
   procedural scene (PnP-FFDNet needs ``weights/net_gray.pth`` from the shared data).
4. The paper-shaped smoke comparison (``compare --preset paper-smoke --device cuda``): per
   pipeline latency at B = 8, one-stage against two-stage on the same device.

On a machine without CUDA, ``--allow-cpu`` runs every part it can on the CPU (the smoke
comparison becomes the micro one) to check the script itself; CUDA rows say "no CUDA".

Usage: python bench/gpu.py [--data ../shared/data] [--out bench_out/gpu] [--allow-cpu] [--skip-tests]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from snapcap.cacti import CactiOperator, simulate
from snapcap.cacti.masks import random_binary
from snapcap.recon.api import reconstruct
from snapcap.recon.metrics import mean_psnr

ROOT = Path(__file__).resolve().parents[1]
ROWS: list[tuple[str, str, str]] = []


def add(part: str, what: str, value: str) -> None:
    ROWS.append((part, what, value))
    print(f"[gpu] {part}: {what}: {value}", file=sys.stderr, flush=True)


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def synchronise() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()
    try:
        import cupy

        cupy.cuda.Device().synchronize()
    except Exception:  # noqa: BLE001 - no CuPy or no device: nothing to wait for
        pass


def timed(functions: dict[str, Callable[[], Any]], repeat: int) -> dict[str, float]:
    """Median seconds of each function, runs interleaved, CUDA synchronised around each."""
    samples: dict[str, list[float]] = {name: [] for name in functions}
    for function in functions.values():
        function()
    synchronise()
    for _ in range(repeat):
        for name, function in functions.items():
            synchronise()
            start = time.perf_counter()
            function()
            synchronise()
            samples[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in samples.items()}


def part_tests() -> None:
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-m",
        "slow or not slow",
        "-k",
        "cuda or cupy or gpu",
        "-p",
        "no:cacheprovider",
    ]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    tail = (done.stdout.strip().splitlines() or ["(no output)"])[-1]
    add("tests", "CUDA/CuPy tests", f"{tail} (exit {done.returncode})")


def part_simulator() -> None:
    import torch

    n, B, size = 32, 8, 256
    x = np.random.default_rng(0).random((n, B, size, size), dtype=np.float32)
    op = CactiOperator(random_binary(B, size, size, seed=0))
    functions: dict[str, Callable[[], Any]] = {"numpy": lambda: op.A(x)}
    xt = torch.from_numpy(x)
    functions["torch cpu"] = lambda: op.A(xt)
    if torch.cuda.is_available():
        xc = xt.cuda()
        functions["torch cuda"] = lambda: op.A(xc)
    try:
        import cupy

        xg = cupy.asarray(x)
        functions["cupy"] = lambda: op.A(xg)
    except Exception as exc:  # noqa: BLE001 - reported as a row
        add("simulate", "cupy", f"not run ({exc.__class__.__name__})")
    with torch.no_grad():
        times = timed(functions, repeat=9)
    for name, seconds in times.items():
        ratio = times["numpy"] / seconds
        add("simulate", f"A(x) {name}", f"{n / seconds:,.0f} snapshots/s ({ratio:.1f}x numpy)")
    # The whole simulate(): uint8 RGB frames in, Bayer mosaic, masks, read noise drawn on the host.
    video = (np.random.default_rng(1).random((4, 4 * B, size, size, 3)) * 255).astype(np.uint8)
    runs: dict[str, Callable[[], Any]] = {"numpy": lambda: simulate(video, B=B, noise="gaussian:sigma=0.01")}
    if torch.cuda.is_available():
        runs["torch cuda"] = lambda: simulate(video, B=B, noise="gaussian:sigma=0.01", device="cuda")
    whole = timed(runs, repeat=5)
    for name, seconds in whole.items():
        ratio = whole["numpy"] / seconds
        add("simulate", f"simulate() {name}", f"{16 / seconds:,.0f} snapshots/s ({ratio:.1f}x numpy; RGB uint8, noise)")


def benchmark_scene(data: Path | None):
    """(y, op, truth, name): drop40's first snapshot (meas / 255) when present, else a procedural one."""
    drop = data / "gray_benchmark" / "drop40_cacti.mat" if data else None
    if drop is not None and drop.is_file():
        from snapcap.matfile import load_mat

        loaded = load_mat(drop, ["meas", "mask", "orig"])
        masks = loaded["mask"].transpose(2, 0, 1)
        truth = loaded["orig"][:, :, : masks.shape[0]].transpose(2, 0, 1).astype(np.float32) / 255
        return loaded["meas"][:, :, 0].astype(np.float32) / 255, CactiOperator(masks), truth, "drop40 #1"
    from snapcap.datasets.synthetic import SyntheticCorpus

    corpus = SyntheticCorpus(num_videos=1, seed=0, splits=(1.0, 0.0, 0.0))
    truth = corpus.clip(corpus.items[0], T=1, B=8, size=(256, 256), gray=True)[0].astype(np.float32) / 255
    op = CactiOperator(random_binary(8, 256, 256, seed=0))
    return np.asarray(op.A(truth), dtype=np.float32), op, truth, "procedural scene"


def part_recon(data: Path | None, use_cuda: bool) -> None:
    import torch

    y, op, truth, scene = benchmark_scene(data)
    weights = data / "weights" / "net_gray.pth" if data else None
    methods: list[tuple[str, dict[str, Any]]] = [("gap-tv", {})]
    if weights is not None and weights.is_file():
        methods.append(("pnp-ffdnet", {"weights": str(weights)}))
    else:
        add("recon", "pnp-ffdnet", "not run (no weights/net_gray.pth under --data)")
    for method, params in methods:
        results = {}
        devices = ["cpu"] + (["cuda"] if use_cuda else [])
        for device in devices:
            yy = torch.from_numpy(y).to(device)
            extra = dict(params, device=device) if method == "pnp-ffdnet" else params

            def run(yy=yy, method=method, extra=extra):
                return reconstruct(yy, op, method, **extra)

            seconds = timed({device: run}, repeat=3)[device]
            frames = run().frames
            results[device] = (seconds, mean_psnr(frames.cpu().numpy(), truth))
        cpu_s, cpu_psnr = results["cpu"]
        text = f"cpu {cpu_s:.2f} s, {cpu_psnr:.2f} dB"
        if "cuda" in results:
            cuda_s, cuda_psnr = results["cuda"]
            text += f"; cuda {cuda_s:.3f} s, {cuda_psnr:.2f} dB ({cpu_s / cuda_s:.1f}x faster)"
        else:
            text += "; cuda: no CUDA"
        add("recon", f"{method} on {scene}", text)


def part_compare(out: Path, use_cuda: bool) -> None:
    preset, device = ("paper-smoke", "cuda") if use_cuda else ("micro", "cpu")
    folder = out / f"compare-{preset}-{device}"
    command = [sys.executable, "-m", "snapcap", "compare", "--preset", preset, "--B", "8", "--device", device]
    command += ["-o", str(folder), "--no-progress", "--quiet"]
    began = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - began
    if done.returncode != 0:
        add("compare", f"{preset} on {device}", f"FAILED (exit {done.returncode}): {done.stderr.strip()[-300:]}")
        return
    results = json.loads((folder / "results.json").read_text())
    add("compare", f"{preset} on {device}", f"{wall:.0f} s wall (install and data excluded)")
    rows = [row for row in results["rows"] if row["B"] == 8]
    for row in rows:
        recon = f"recon {row['recon_ms']:.1f} ms + " if row.get("recon_ms") is not None else ""
        memory = f", peak CUDA {row['peak_cuda_mb']:.0f} MB" if row.get("peak_cuda_mb") else ""
        add("compare", f"B=8 {row['label']}", f"{recon}total {row['total_ms']:.1f} ms/video{memory}")
    one = [row["total_ms"] for row in rows if row["pipeline"] == "snapcap"]
    two = [row["total_ms"] for row in rows if row["pipeline"].startswith("two-stage:")]
    if one and two:
        add(
            "compare",
            "two-stage / one-stage latency",
            f"{min(two) / one[0]:.1f}x (fastest two-stage) .. {max(two) / one[0]:.1f}x",
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default_data = Path(os.environ.get("SNAPCAP_DATA", ROOT.parent / "shared" / "data"))
    parser.add_argument("--data", type=Path, default=default_data)
    parser.add_argument("--out", type=Path, default=ROOT / "bench_out" / "gpu")
    parser.add_argument("--allow-cpu", action="store_true", help="run on a machine without CUDA (checks the script)")
    parser.add_argument("--skip-tests", action="store_true")
    args = parser.parse_args()
    use_cuda = cuda_available()
    if not use_cuda and not args.allow_cpu:
        print("bench/gpu.py: no CUDA device (torch.cuda.is_available() is False); --allow-cpu checks the script on the CPU")
        return 2
    data = args.data if args.data.is_dir() else None
    import torch

    add("machine", "device", torch.cuda.get_device_name(0) if use_cuda else f"CPU only ({os.cpu_count()} cores)")
    add("machine", "torch", f"{torch.__version__}, CUDA {torch.version.cuda}")
    began = time.perf_counter()
    if not args.skip_tests:
        part_tests()
    part_simulator()
    part_recon(data, use_cuda)
    part_compare(args.out, use_cuda)
    add("total", "wall", f"{time.perf_counter() - began:.0f} s")
    width = max(len(what) for _, what, _ in ROWS)
    print(f"| part | {'what':<{width}} | result |\n|---|---|---|")
    for part, what, value in ROWS:
        print(f"| {part} | {what:<{width}} | {re.sub(r'[|]', '/', value)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
