"""GAP-TV benchmark: snapcap's GAP-TV against the same GAP loop with scikit-image's TV step.

On the first snapshot of drop40 and runner40 (256 x 256, B = 8, float32 as in the reference),
GAP-TV runs with the same accelerated data step (op.prox_l2 onto A x = y_acc), 40 iterations,
x0 = Aᵀy:

  skimage      the GAP loop with scikit-image's denoise_tv_chambolle(x, weight=0.3,
               max_num_iter=5, channel_axis=0) as the TV step (the PnP-SCI reference's TV step)
  snapcap      reconstruct(y, op, "gap-tv") with snapcap's defaults: isotropic Chambolle,
               weight 0.25, 5 iterations (4 dual updates; chosen for robustness across B and
               cameras, bench/recon_defaults.py)
  snapcap-1t   the same with the TV thread pool disabled (one core)
  snapcap-ref  snapcap's GAP and TV with the reference's TV step (isotropic, weight 0.3,
               5 iterations): the same numbers as skimage, from snapcap's kernel
  snapcap-fast GAP_TV_FAST (anisotropic, weight 0.1, 3 iterations): the earlier default

Runs are interleaved (skimage, snapcap, ..., skimage, ...) and medians reported, since the
machine is shared. Target: at least 3x faster than skimage at equal or better PSNR; the default
(the same number of TV iterations as the reference) reaches about 2.4x, the fast setting 4.7x.

Usage: python bench/recon_gap_tv.py [--repeat 5] [--data FOLDER]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path
from typing import Callable

import numpy as np

from snapcap import backend
from snapcap.cacti import CactiOperator, load_masks
from snapcap.matfile import load_mat
from snapcap.recon.api import GAP_TV_FAST, PNP_SCI_GAP_TV, GapTVParams, reconstruct
from snapcap.recon.metrics import mean_psnr

ITERATIONS = 40
WEIGHT = PNP_SCI_GAP_TV["tv_weight"]
TV_ITERATIONS = PNP_SCI_GAP_TV["tv_iterations"]


def load_first_snapshot(path: Path) -> tuple[np.ndarray, CactiOperator, np.ndarray]:
    data = load_mat(path, ["meas", "orig"])
    masks = load_masks(path)
    y = (data["meas"][:, :, 0] / 255).astype(np.float32)
    truth = np.moveaxis(data["orig"][:, :, : masks.shape[0]], -1, 0) / 255
    return y, CactiOperator(masks), truth


def gap_skimage(y: np.ndarray, op: CactiOperator) -> np.ndarray:
    """The reference loop: accelerated GAP with scikit-image's Chambolle TV step."""
    from skimage.restoration import denoise_tv_chambolle

    x = op.A_adjoint(y)
    y_acc = np.zeros_like(y)
    for _ in range(ITERATIONS):
        y_acc = y_acc + (y - op.A(x))
        x = op.prox_l2(x, y_acc)
        x = denoise_tv_chambolle(x, weight=WEIGHT, max_num_iter=TV_ITERATIONS, channel_axis=0)
    return x


def gap_snapcap(y: np.ndarray, op: CactiOperator) -> np.ndarray:
    return reconstruct(y, op, "gap-tv", iterations=ITERATIONS).frames


def gap_snapcap_reference_tv(y: np.ndarray, op: CactiOperator) -> np.ndarray:
    return reconstruct(y, op, "gap-tv", iterations=ITERATIONS, **PNP_SCI_GAP_TV).frames


def gap_snapcap_fast(y: np.ndarray, op: CactiOperator) -> np.ndarray:
    return reconstruct(y, op, "gap-tv", iterations=ITERATIONS, **GAP_TV_FAST).frames


def gap_snapcap_one_thread(y: np.ndarray, op: CactiOperator) -> np.ndarray:
    saved = backend.thread_pool
    backend.thread_pool = lambda: None  # snapcap's numpy work (TV, the contraction) then runs on the calling thread only
    try:
        return gap_snapcap(y, op)
    finally:
        backend.thread_pool = saved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5)
    default_data = os.environ.get("SNAPCAP_DATA", str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    parser.add_argument("--data", default=default_data)
    args = parser.parse_args()

    runners: dict[str, Callable[[np.ndarray, CactiOperator], np.ndarray]] = {
        "skimage": gap_skimage,
        "snapcap": gap_snapcap,
        "snapcap-1t": gap_snapcap_one_thread,
        "snapcap-ref": gap_snapcap_reference_tv,
        "snapcap-fast": gap_snapcap_fast,
    }
    scenes = {
        name: load_first_snapshot(Path(args.data) / "gray_benchmark" / f"{name}_cacti.mat") for name in ("drop40", "runner40")
    }
    defaults = GapTVParams()
    kind = "isotropic" if defaults.isotropic else "anisotropic"
    print(
        f"GAP-TV, {ITERATIONS} iterations, float32, first snapshot; median of {args.repeat} interleaved runs\n"
        f"  skimage / snapcap-ref: isotropic TV, weight {WEIGHT}, {TV_ITERATIONS} iterations (the PnP-SCI reference)\n"
        f"  snapcap / snapcap-1t:  snapcap's defaults, {kind} TV, "
        f"weight {defaults.tv_weight}, {defaults.tv_iterations} iterations"
    )
    for scene, (y, op, truth) in scenes.items():
        seconds: dict[str, list[float]] = {name: [] for name in runners}
        quality: dict[str, float] = {}
        for name, run in runners.items():  # warm-up, and the PSNR (runs are deterministic)
            quality[name] = mean_psnr(run(y, op), truth)
        for _ in range(args.repeat):
            for name, run in runners.items():
                start = time.perf_counter()
                run(y, op)
                seconds[name].append(time.perf_counter() - start)
        medians = {name: statistics.median(values) for name, values in seconds.items()}
        print(f"\n{scene}")
        for name in runners:
            print(f"  {name:<12} {medians[name]:7.3f} s/snapshot   PSNR {quality[name]:.4f} dB")
        for name in ("snapcap", "snapcap-1t", "snapcap-ref", "snapcap-fast"):
            ratio = medians["skimage"] / medians[name]
            delta = quality[name] - quality["skimage"]
            target = " (target >= 3)" if name in ("snapcap", "snapcap-fast") else ""
            print(f"  {name:<12} vs skimage: {ratio:5.2f}x faster{target}, PSNR {delta:+.4f} dB")


if __name__ == "__main__":
    main()
