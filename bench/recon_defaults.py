"""Reconstruction defaults on a spread of cases, against the public references' settings.

Every case is reconstructed with snapcap's default and with the reference setting, side by side
in one run:

* GAP-TV: ``GapTVParams()`` against the public PnP-SCI reference's TV step
  (``PNP_SCI_GAP_TV``: isotropic Chambolle, weight 0.3, 5 iterations; bilinear demosaic for
  Bayer, as the reference code does), and any ``--gap-tv`` candidates;
* PnP-FFDNet (gray cases, ``--weights`` net_gray.pth): ``PnPFFDNetParams()`` against the PnP-SCI
  protocol (``PNP_SCI_SCHEDULE``: σ = 50, 25, 12, 6 /255, 10 GAP iterations each, from Aᵀy).

Cases: the shared benchmark's real frames (drop40, runner40: the stored first snapshot at B = 8,
and their frames coded again at B = 16, 24 and 32 with random masks, with and without noise);
procedural scenes (3 per case, 128 x 128, one snapshot each) at B = 8, 16, 24 and 50,
gray and RGGB Bayer, noise-free and with Gaussian read noise (σ = 1 % of the mean measurement
B/2 in frame units), random binary masks, plus shifting masks at B = 8 gray and B = 16 Bayer.
PnP-FFDNet runs on the gray cases up to B = 24. The printed table gives per case the PSNR (dB) and seconds per snapshot of each
setting and the difference default − reference; the summary line the worst difference (target:
≥ −0.1 dB on every case) and the speed ratio.

Usage: python bench/recon_defaults.py [--data ../shared/data] [--size 128] [--scenes 3]
       [--gap-tv 'name:key=value,key=value' ...] [--skip-ffdnet]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np

from snapcap.cacti import CactiOperator
from snapcap.cacti.masks import MASK_KINDS
from snapcap.datasets.synthetic import SyntheticCorpus
from snapcap.matfile import load_mat
from snapcap.recon.api import PNP_SCI_GAP_TV, PNP_SCI_SCHEDULE, reconstruct
from snapcap.recon.metrics import mean_psnr

ROOT = Path(__file__).resolve().parents[1]


def procedural_cases(size: int, scenes: int) -> list[dict]:
    corpus = SyntheticCorpus(num_videos=scenes, seed=7, splits=(1.0, 0.0, 0.0))
    cases = []
    specs = [(B, bayer, noise, "random") for B in (8, 16, 24, 50) for bayer in (None, "RGGB") for noise in (0.0, 0.01)]
    specs += [(8, None, 0.0, "shifting"), (16, "RGGB", 0.0, "shifting")]
    for B, bayer, noise, mask in specs:
        items = []
        for index, item in enumerate(corpus.items):
            frames = corpus.clip(item, T=1, B=B, size=(size, size), gray=bayer is None)[0].astype(np.float32) / 255
            op = CactiOperator(MASK_KINDS[mask](B, size, size, seed=index), bayer=bayer)
            y = np.asarray(op.A(frames), dtype=np.float32)
            if noise:
                y = y + np.random.default_rng(index).normal(0.0, noise * B / 2, y.shape).astype(np.float32)
            items.append((y, op, frames))
        name = f"procedural B={B} {'RGGB' if bayer else 'gray'} {mask}" + (f" noise {noise:g}" if noise else "")
        cases.append({"name": name, "items": items, "gray": bayer is None, "B": B})
    return cases


def benchmark_cases(data: Path | None) -> list[dict]:
    cases = []
    for scene in ("drop40", "runner40"):
        path = data / "gray_benchmark" / f"{scene}_cacti.mat" if data else None
        if path is None or not path.is_file():
            continue
        loaded = load_mat(path, ["meas", "mask", "orig"])
        masks = loaded["mask"].transpose(2, 0, 1)
        truth = loaded["orig"][:, :, : masks.shape[0]].transpose(2, 0, 1).astype(np.float32) / 255
        y = loaded["meas"][:, :, 0].astype(np.float32) / 255
        cases.append({"name": f"{scene} #1 (benchmark)", "items": [(y, CactiOperator(masks), truth)], "gray": True, "B": 8})
        # the same real frames (40 of them) coded at larger B with random masks: natural textures
        # and motion at compression ratios the stored measurements do not cover
        frames = loaded["orig"].transpose(2, 0, 1).astype(np.float32) / 255
        for B, noise in ((16, 0.0), (24, 0.0), (24, 0.01), (32, 0.0)):
            op = CactiOperator(MASK_KINDS["random"](B, *frames.shape[-2:], seed=B))
            y = np.asarray(op.A(frames[:B]), dtype=np.float32)
            if noise:
                y = y + np.random.default_rng(B).normal(0.0, noise * B / 2, y.shape).astype(np.float32)
            name = f"{scene} frames 0-{B - 1} at B={B} random" + (f" noise {noise:g}" if noise else "")
            cases.append({"name": name, "items": [(y, op, frames[:B])], "gray": True, "B": B})
    return cases


def run(items, method: str, params: dict) -> tuple[float, float]:
    psnrs, seconds = [], []
    for y, op, truth in items:
        result = reconstruct(y, op, method, **params)
        frames = np.clip(np.asarray(result.frames), 0, 1)
        psnrs.append(mean_psnr(frames, truth, channel_axis=-1 if truth.ndim == 4 else None))
        seconds.append(result.seconds)
    return float(np.mean(psnrs)), float(np.median(seconds))


def parse_candidate(text: str) -> tuple[str, dict]:
    name, _, spec = text.partition(":")
    params = {}
    for part in filter(None, spec.split(",")):
        key, _, value = part.partition("=")
        params[key.strip()] = json.loads(value) if value.strip()[:1] in "0123456789-tf[" else value.strip()
    return name, params


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default_data = Path(os.environ.get("SNAPCAP_DATA", ROOT.parent / "shared" / "data"))
    parser.add_argument("--data", type=Path, default=default_data)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--scenes", type=int, default=3)
    parser.add_argument("--gap-tv", action="append", default=[], help="another GAP-TV setting, NAME:key=value,...")
    parser.add_argument("--skip-ffdnet", action="store_true")
    args = parser.parse_args()
    data = args.data if args.data.is_dir() else None
    cases = benchmark_cases(data) + procedural_cases(args.size, args.scenes)
    candidates = [parse_candidate(text) for text in args.gap_tv]
    weights = data / "weights" / "net_gray.pth" if data else None
    ffdnet = not args.skip_ffdnet and weights is not None and weights.is_file()
    began = time.perf_counter()
    diffs: dict[str, list[float]] = {"gap-tv": [], "pnp-ffdnet": [], **{name: [] for name, _ in candidates}}
    speed: dict[str, list[float]] = {key: [] for key in diffs}
    print("| case | GAP-TV default dB / s | reference dB / s | Δ dB |" + "".join(f" {n} Δ dB |" for n, _ in candidates)
          + (" PnP-FFDNet default dB / s | PnP-SCI dB / s | Δ dB |" if ffdnet else ""))  # fmt: skip
    print("|---|---|---|---:|" + "---:|" * len(candidates) + ("---|---|---:|" if ffdnet else ""))
    for case in cases:
        reference_params = dict(PNP_SCI_GAP_TV, **({} if case["gray"] else {"demosaic": "bilinear"}))
        default = run(case["items"], "gap-tv", {})
        reference = run(case["items"], "gap-tv", reference_params)
        diffs["gap-tv"].append(default[0] - reference[0])
        speed["gap-tv"].append(reference[1] / default[1])
        line = f"| {case['name']} | {default[0]:.2f} / {default[1]:.2f} | {reference[0]:.2f} / {reference[1]:.2f} "
        line += f"| {default[0] - reference[0]:+.2f} |"
        for name, params in candidates:
            result = run(case["items"], "gap-tv", params)
            diffs[name].append(result[0] - reference[0])
            speed[name].append(reference[1] / result[1])
            line += f" {result[0] - reference[0]:+.2f} |"
        if ffdnet and case["gray"] and case["B"] <= 24:
            pnp = run(case["items"], "pnp-ffdnet", {"weights": str(weights)})
            protocol = run(case["items"], "pnp-ffdnet", {"weights": str(weights), **PNP_SCI_SCHEDULE})
            diffs["pnp-ffdnet"].append(pnp[0] - protocol[0])
            speed["pnp-ffdnet"].append(protocol[1] / pnp[1])
            line += f" {pnp[0]:.2f} / {pnp[1]:.2f} | {protocol[0]:.2f} / {protocol[1]:.2f} | {pnp[0] - protocol[0]:+.2f} |"
        elif ffdnet:
            line += " – | – | – |"
        print(line, flush=True)
    print()
    for key, values in diffs.items():
        if values:
            bad = sum(1 for v in values if v < -0.1)
            print(
                f"{key}: worst Δ {min(values):+.2f} dB, mean Δ {statistics.fmean(values):+.2f} dB, "
                f"{bad} of {len(values)} cases below reference − 0.1 dB (target 0); "
                f"reference time / this time: median {statistics.median(speed[key]):.2f}x"
            )
    print(f"wall {time.perf_counter() - began:.0f} s")


if __name__ == "__main__":
    main()
