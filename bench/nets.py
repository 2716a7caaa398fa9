"""The published networks trained here on the CPU, against GAP-TV and snapcap's unfolding net.

1. Each network's smallest published variant (EfficientSCI-T, STFormer-S, BIRNAT: it has one
   size) trained with its authors' recipe (sqrt-MSE, Adam 1e-4, random flips; patches of
   ``--patch``, not their 128/256 crops, so that a step fits the CPU) on procedural gray scenes,
   B = 8, for ``--minutes`` of wall time each (the step count is set from a timed first few
   steps); snapcap's unfolding net (tiny preset) for the same time.
2. PSNR and seconds per snapshot of each, and of GAP-TV, on held-out procedural scenes
   (64 x 64, B = 8, gray, 2 snapshots per video).
3. A micro comparison with a two-stage row for each trained network (``two-stage:NAME`` with
   ``weights=`` its model.pt): the rows' PSNR and latency beside GAP-TV's.

The networks are far from their papers' training (DAVIS, 120 epochs on GPUs): this shows that
the training path works and where a few CPU minutes get each, not the networks' quality.

Usage: python bench/nets.py [--minutes 10] [--patch 64] [--out bench_out/nets]
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

import numpy as np
import torch

from snapcap.cacti import CactiOperator
from snapcap.datasets.h5 import DatasetConfig
from snapcap.datasets.synthetic import SyntheticCorpus
from snapcap.datasets.torch_data import SimulatedDataset
from snapcap.recon.api import reconstruct
from snapcap.recon.metrics import mean_psnr
from snapcap.recon.nets import create_net, net_entry, parameter_count
from snapcap.recon.nets.unfold import UNFOLD_PRESETS
from snapcap.recon.train import TrainReconConfig, net_training, train_recon

NETS = ("efficientsci-tiny", "stformer-small", "birnat")


def training_config(arch: str, patch: int, steps: int) -> TrainReconConfig:
    if arch == "unfold":
        return TrainReconConfig(model=UNFOLD_PRESETS["tiny"], steps=steps, batch_size=8, patch=min(patch, 48), lr=2e-3)
    return net_training(arch, steps=steps, patch=patch, batch_size=2, checkpoint_every=max(steps // 4, 1))


def timed_training(arch: str, train, out: Path, patch: int, minutes: float) -> tuple[Path, int, float]:
    """Train for about ``minutes``: two timed probes (1 and 31 steps; their difference leaves out
    the fixed costs, such as the unfolding net's GAP-TV starts) set the step count."""
    probe = out / f"{arch}-probe"
    times = []
    for steps in (1, 31):
        start = time.perf_counter()
        train_recon(train, probe, training_config(arch, patch, steps), resume=False, progress=False)
        times.append(time.perf_counter() - start)
        shutil.rmtree(probe, ignore_errors=True)
    per_step = max((times[1] - times[0]) / 30, times[1] / 31 / 4, 1e-2)
    steps = max(10, int(minutes * 60 / per_step))
    start = time.perf_counter()
    record = train_recon(train, out / arch, training_config(arch, patch, steps), resume=False, progress=False)
    return record["model"], steps, time.perf_counter() - start


def held_out(test, runs: dict[str, tuple[str, dict]]) -> dict[str, tuple[float, float]]:
    psnrs: dict[str, list[float]] = {name: [] for name in runs}
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    for sample in test:
        op = CactiOperator(sample["masks"].numpy())
        truth = sample["frames"].numpy()
        for name, (method, params) in runs.items():
            result = reconstruct(sample["meas"].numpy(), op, method, **params)
            frames = np.clip(np.asarray(result.frames), 0, 1)
            psnrs[name].append(mean_psnr(frames.reshape(-1, 64, 64), truth.reshape(-1, 64, 64)))
            seconds[name].append(result.seconds / sample["meas"].shape[0])
    return {name: (float(np.mean(psnrs[name])), float(np.median(seconds[name]))) for name in runs}


def micro_compare(models: dict[str, Path], out: Path) -> list[dict]:
    from snapcap.compare import compare_preset, run_compare

    methods = ("gap-tv", *models)
    params = {"gap-tv": {"iterations": 40}, **{name: {"weights": str(path)} for name, path in models.items()}}
    config = compare_preset("micro", B=(8,), students=(), recon=methods, recon_params=params, gray=True)
    return run_compare(config, out / "compare", progress=False, quiet=True)["rows"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0, help="training wall time per network")
    parser.add_argument("--patch", type=int, default=64)
    parser.add_argument("--out", type=Path, default=Path("bench_out/nets"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    corpus = SyntheticCorpus(num_videos=150, seed=0)
    config = DatasetConfig(B=8, T=2, size=(64, 64), gray=True)
    train = SimulatedDataset(corpus, config, split="train")
    test_set = SimulatedDataset(corpus, config, split="test")
    test = [test_set[i] for i in range(len(test_set))]
    models: dict[str, Path] = {}
    trained: dict[str, tuple[int, float]] = {}
    for arch in ("unfold", *NETS):
        path, steps, seconds = timed_training(arch, train, args.out, args.patch, args.minutes)
        models[arch] = path
        trained[arch] = (steps, seconds)
        print(f"[nets] {arch}: {steps} steps in {seconds:.0f} s", flush=True)
    runs = {"gap-tv (default)": ("gap-tv", {}), "unfold (tiny)": ("unfold", {"checkpoint": str(models["unfold"])})}
    runs.update({arch: (net_entry(arch).name, {"weights": str(models[arch])}) for arch in NETS})
    results = held_out(test, runs)
    print(
        f"\nheld-out procedural scenes: {len(test)} videos x 2 snapshots, 64x64, B=8, gray; "
        f"training {args.minutes:g} min each on {torch.get_num_threads()} thread(s), patches {args.patch}\n"
        "| method | parameters | steps | PSNR dB | s/snapshot |\n|---|---:|---:|---:|---:|"
    )
    for name, (psnr, seconds) in results.items():
        arch = name.split(" ")[0]
        count = parameter_count(create_net(arch)) if arch in NETS else None
        steps = trained.get(arch, (None, None))[0] if arch != "unfold" else trained["unfold"][0]
        print(
            f"| {name} | {'' if count is None else f'{count / 1e6:.2f} M'} | {'' if steps is None else steps} "
            f"| {psnr:.2f} | {seconds:.3f} |"
        )
    rows = micro_compare({net_entry(arch).name: models[arch] for arch in NETS}, args.out)
    print("\nmicro compare (B = 8, gray, 32x32): two-stage rows")
    print("| pipeline | PSNR dB | recon ms | total ms | CIDEr |\n|---|---:|---:|---:|---:|")
    for row in rows:
        if row["pipeline"].startswith("two-stage:"):
            print(
                f"| {row['label']} | {row['psnr']:.2f} | {row['recon_ms']:.1f} | {row['total_ms']:.1f} "
                f"| {row['scores'].get('CIDEr', float('nan')):.1f} |"
            )


if __name__ == "__main__":
    main()
