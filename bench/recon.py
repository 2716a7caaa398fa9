"""Reconstruction benchmark: every method's seconds per snapshot and PSNR, and the deep net.

1. On the first snapshot of drop40 and runner40 (the public grayscale benchmark, the stored
   mask, meas/255): seconds per snapshot and PSNR of gap-tv, admm-tv, pnp-ffdnet (snapcap's
   default schedule and the PnP-SCI protocol) and, in the same run, the public reference's way
   of running GAP-FFDNet (PnP-SCI schedule from Aᵀy, FFDNet called frame by frame with
   autograd on, no BatchNorm folding; ~53 s per snapshot on this kind of machine), so the
   speed-up is a ratio measured side by side; and pnp-fastdvdnet (no published weights here: a randomly
   initialised network, so its PSNR means nothing; its time, over one iteration per sigma,
   does: the full 4 x 10 schedule takes ten times as long).
2. The deep unfolding reconstructor (tiny preset: GAP-TV start, 3 learned stages) trained here
   on the CPU (procedural scenes, gray, B = 8, 64x64), against GAP-TV on the held-out scenes:
   PSNR and inference time per snapshot. GAP-TV is shown with snapcap's defaults and with the
   best of a few TV settings picked on the held-out scenes themselves (an optimistic bound).

The methods table starts with GAP-TV against the same GAP loop using scikit-image's
denoise_tv_chambolle (the reference's TV step), median of 3 interleaved runs, with the ratio
(target: at least 3x faster at equal or better PSNR; snapcap's default has the reference's
iteration count and reaches about 2.4x, GAP_TV_FAST about 4.7x); bench/recon_gap_tv.py has the
longer version (more repeats, one-thread, reference-TV and fast variants), and
bench/recon_defaults.py the robustness suite that chose the defaults.

Usage: python bench/recon.py [--data ../shared/data] [--steps 800] [--threads 1] [--skip-slow] [--skip-reference] [--skip-unfold]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from snapcap.cacti import CactiOperator
from snapcap.matfile import load_mat
from snapcap.recon.api import PNP_SCI_SCHEDULE, reconstruct
from snapcap.recon.metrics import mean_psnr

REFERENCE_PNP_FFDNET_SECONDS = 53.0


def first_snapshot(path: Path):
    data = load_mat(path, ["meas", "mask", "orig"])
    masks = data["mask"].transpose(2, 0, 1)
    return (
        data["meas"][:, :, 0].astype(np.float32) / 255,
        CactiOperator(masks),
        data["orig"][:, :, : masks.shape[0]].transpose(2, 0, 1) / 255,
    )


def row(name: str, seconds: float, psnr: float | None, note: str = "") -> None:
    value = f"{psnr:6.2f}" if psnr is not None else "   n/a"
    print(f"| {name:<28} | {seconds:8.2f} | {value} | {note}")


class ReferenceFrameDenoiser:
    """FFDNet as the public PnP-SCI reference runs it: one frame at a time, the loaded module
    as it is (BatchNorm not folded, contiguous layout), autograd on, output not clamped."""

    def __init__(self, weights: Path):
        from snapcap.recon.denoisers.ffdnet import load_ffdnet

        self.model = load_ffdnet(weights).eval()

    def __call__(self, x, sigma):
        import torch

        out = np.empty_like(x)
        for index in range(x.shape[0]):
            frame = torch.from_numpy(np.ascontiguousarray(x[index], dtype=np.float32))[None, None]
            out[index] = self.model(frame, sigma).detach().numpy()[0, 0]
        return out


def reference_gap_ffdnet(meas, op, truth, weights: Path) -> tuple[float, float]:
    """Seconds and PSNR of the reference's GAP-FFDNet (PnP-SCI schedule from Aᵀy, frame by frame)."""
    from snapcap.recon.solvers import GapParams, gap

    params = GapParams(iterations=PNP_SCI_SCHEDULE["iterations"], sigmas=PNP_SCI_SCHEDULE["sigmas"])
    start = time.perf_counter()
    result = gap(meas, op, ReferenceFrameDenoiser(weights), params)
    return time.perf_counter() - start, mean_psnr(result.frames, truth)


def gap_tv_against_skimage(meas, op, truth, repeat: int = 3) -> tuple[float, float, float, float]:
    """Median seconds and PSNR of the skimage-TV GAP loop and of snapcap's gap-tv, interleaved."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from recon_gap_tv import gap_skimage, gap_snapcap

    psnr = {name: mean_psnr(run(meas, op), truth) for name, run in (("skimage", gap_skimage), ("snapcap", gap_snapcap))}
    seconds: dict[str, list[float]] = {"skimage": [], "snapcap": []}
    for _ in range(repeat):
        for name, run in (("skimage", gap_skimage), ("snapcap", gap_snapcap)):
            start = time.perf_counter()
            run(meas, op)
            seconds[name].append(time.perf_counter() - start)
    return statistics.median(seconds["skimage"]), statistics.median(seconds["snapcap"]), psnr["skimage"], psnr["snapcap"]


def methods_table(data: Path, skip_slow: bool, fastdvdnet_weights: Path, reference: bool = True) -> None:
    weights = data / "weights" / "net_gray.pth"
    for scene in ("drop40", "runner40"):
        meas, op, truth = first_snapshot(data / "gray_benchmark" / f"{scene}_cacti.mat")
        print(f"\n{scene}, first snapshot (256x256, B=8)\n| method | s/snapshot | PSNR dB | note\n|---|---|---|---")
        skimage_seconds, snap_seconds, skimage_psnr, snap_psnr = gap_tv_against_skimage(meas, op, truth)
        row(
            "gap-tv, skimage TV step",
            skimage_seconds,
            skimage_psnr,
            "the reference's GAP-TV loop (TV weight 0.3, 5 Chambolle iterations), median of 3",
        )
        row(
            "gap-tv, snapcap",
            snap_seconds,
            snap_psnr,
            f"median of 3, interleaved: {skimage_seconds / snap_seconds:.2f}x faster than skimage "
            f"(target >= 3), PSNR {snap_psnr - skimage_psnr:+.2f} dB",
        )
        reference_seconds = REFERENCE_PNP_FFDNET_SECONDS
        if reference:
            reference_seconds, reference_psnr = reference_gap_ffdnet(meas, op, truth, weights)
            row(
                "reference GAP-FFDNet",
                reference_seconds,
                reference_psnr,
                "PnP-SCI schedule, FFDNet frame by frame with autograd on (measured in this run)",
            )
        source = "measured above" if reference else "not run: the published figure for this machine"
        runs = [
            ("gap-tv", {}, ""),
            ("admm-tv", {}, ""),
            (
                "pnp-ffdnet",
                {"weights": str(weights)},
                f"default: TV warm start + 12 FFDNet passes; reference {reference_seconds:.1f} s ({source})",
            ),
        ]
        if not skip_slow:
            runs.append(("pnp-ffdnet", dict(PNP_SCI_SCHEDULE, weights=str(weights)), "PnP-SCI schedule (50,25,12,6 x 10)"))
            runs.append(
                (
                    "pnp-fastdvdnet",
                    {"weights": str(fastdvdnet_weights), "iterations": (1, 1, 1, 1)},
                    "random weights, 1 iteration per sigma: time only; x10 for the full schedule",
                )
            )
        for method, overrides, note in runs:
            result = reconstruct(meas, op, method, **overrides)
            psnr = None if method == "pnp-fastdvdnet" else mean_psnr(result.frames, truth)
            label = method if "sigmas" not in overrides else method + " (PnP-SCI)"
            extra = note
            if method == "pnp-ffdnet":
                extra += f"; {reference_seconds / result.seconds:.2f}x faster than the reference"
            row(label, result.seconds, psnr, extra)


GAP_TV_SETTINGS = {
    "default": {},
    "aniso w=0.05": {"tv_weight": 0.05},
    "iso w=0.1 5 it": {"tv_weight": 0.1, "tv_iterations": 5, "isotropic": True},
    "iso w=0.3 5 it (PnP-SCI)": {"tv_weight": 0.3, "tv_iterations": 5, "isotropic": True},
}


def unfold_table(steps: int, out: Path) -> None:
    import torch

    from snapcap.datasets.h5 import DatasetConfig
    from snapcap.datasets.synthetic import SyntheticCorpus
    from snapcap.datasets.torch_data import SimulatedDataset
    from snapcap.recon.nets.unfold import UNFOLD_PRESETS
    from snapcap.recon.train import TrainReconConfig, train_recon

    corpus = SyntheticCorpus(num_videos=150, seed=0)
    config = DatasetConfig(B=8, T=2, size=(64, 64), gray=True)
    train = [SimulatedDataset(corpus, config, split="train")[i] for i in range(120)]
    test_set = SimulatedDataset(corpus, config, split="test")
    test = [test_set[i] for i in range(len(test_set))]
    start = time.perf_counter()
    train_config = TrainReconConfig(model=UNFOLD_PRESETS["tiny"], steps=steps, batch_size=8, patch=48, lr=2e-3)
    record = train_recon(train, out, train_config, resume=False, progress=False)
    train_seconds = time.perf_counter() - start
    runs = {"unfold": ("unfold", {"checkpoint": str(record["model"])})}
    runs.update({f"gap-tv {name}": ("gap-tv", overrides) for name, overrides in GAP_TV_SETTINGS.items()})
    rows: dict[str, list[float]] = {name: [] for name in runs}
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    reconstruct(
        test[0]["meas"].numpy(), CactiOperator(test[0]["masks"].numpy()), "unfold", checkpoint=str(record["model"])
    )  # load once
    for sample in test:
        op = CactiOperator(sample["masks"].numpy())
        truth = sample["frames"].numpy()
        for name, (method, overrides) in runs.items():
            result = reconstruct(sample["meas"].numpy(), op, method, **overrides)
            rows[name].append(mean_psnr(np.asarray(result.frames).reshape(-1, 64, 64), truth.reshape(-1, 64, 64)))
            seconds[name].append(result.seconds / sample["meas"].shape[0])
    best = max(
        (name for name in runs if name != "gap-tv default" and name.startswith("gap-tv")), key=lambda name: np.mean(rows[name])
    )
    print(
        f"\ndeep unfolding net (tiny preset, {steps} steps, "
        f"batch {train_config.batch_size} of {train_config.patch}x{train_config.patch} patches, "
        f"lr {train_config.lr}, on {len(train)} procedural videos; "
        f"trained in {train_seconds:.0f} s on {torch.get_num_threads()} thread(s))"
    )
    print(
        f"held-out procedural scenes: {len(test)} videos x 2 snapshots, 64x64, B=8, gray\n"
        "| method | s/snapshot | PSNR dB |\n|---|---|---|"
    )
    for name in runs:
        print(f"| {name:<32} | {np.mean(seconds[name]):8.4f} | {np.mean(rows[name]):6.2f} |")
    print(
        f"unfold - gap-tv default: {np.mean(rows['unfold']) - np.mean(rows['gap-tv default']):+.2f} dB; "
        f"unfold - best gap-tv ({best}): {np.mean(rows['unfold']) - np.mean(rows[best]):+.2f} dB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--data", type=Path, default=Path(os.environ.get("SNAPCAP_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
    )
    parser.add_argument("--steps", type=int, default=800)
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads for training and running the deep net (1 avoids oversubscription on a shared machine)",
    )
    parser.add_argument("--skip-slow", action="store_true", help="skip the PnP-SCI schedule and FastDVDnet rows")
    parser.add_argument(
        "--skip-reference",
        action="store_true",
        help="do not run the reference GAP-FFDNet (~53 s per scene); compare with the published 53 s",
    )
    parser.add_argument("--skip-unfold", action="store_true", help="skip training and evaluating the deep unfolding net")
    args = parser.parse_args()
    import torch

    from snapcap.recon.denoisers.fastdvdnet import FastDVDnet

    with tempfile.TemporaryDirectory() as folder:
        weights = Path(folder) / "fastdvdnet_random.pth"
        torch.manual_seed(0)
        torch.save(FastDVDnet(num_color_channels=1).state_dict(), weights)
        methods_table(args.data, args.skip_slow, weights, reference=not args.skip_reference)
        if not args.skip_unfold:
            torch.set_num_threads(args.threads)  # the methods table above ran on torch's default threads
            unfold_table(args.steps, Path(folder) / "unfold")


if __name__ == "__main__":
    main()
