"""FFDNet denoiser benchmark: snapcap's FFDNetDenoiser against the reference way of calling the net.

On 8 random 256 x 256 float32 frames at sigma = 25/255 with the official IPOL gray checkpoint
(``net_gray.pth`` from the shared data folder):

  reference   the module called frame by frame with autograd on and BatchNorm as trained
              (how the PnP-SCI reference code calls it)
  snapcap     FFDNetDenoiser(model)(x, sigma): one batch, inference mode, BatchNorm folded

Runs are interleaved and medians reported, since the machine is shared; the outputs are
compared too (max absolute difference, float32).

Usage: python bench/ffdnet.py [--repeat 5] [--data FOLDER]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from snapcap.recon.denoisers.ffdnet import FFDNetDenoiser, load_ffdnet

SIGMA = 25 / 255


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    default = Path(os.environ.get("SNAPCAP_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
    parser.add_argument("--data", type=Path, default=default)
    args = parser.parse_args()
    model = load_ffdnet(args.data / "weights" / "net_gray.pth")
    frames = np.random.default_rng(0).random((8, 256, 256)).astype(np.float32)
    denoiser = FFDNetDenoiser(model)
    denoiser(frames[:1, :64, :64], SIGMA)  # warm up

    def reference() -> np.ndarray:
        out = []
        for frame in frames:
            x = torch.from_numpy(frame)[None, None].requires_grad_(False)
            with torch.enable_grad():
                out.append(model(x, SIGMA).clamp(0, 1).detach().numpy()[0, 0])
        return np.stack(out)

    def snapcap() -> np.ndarray:
        return denoiser(frames, SIGMA)

    times: dict[str, list[float]] = {"reference": [], "snapcap": []}
    outputs = {}
    for _ in range(args.repeat):
        for name, fn in (("reference", reference), ("snapcap", snapcap)):
            start = time.perf_counter()
            outputs[name] = fn()
            times[name].append(time.perf_counter() - start)
    ref, ours = statistics.median(times["reference"]), statistics.median(times["snapcap"])
    print(f"FFDNet net_gray on (8, 256, 256) float32, {torch.get_num_threads()} threads, median of {args.repeat}")
    print(f"  reference (frame by frame, autograd): {ref:.3f} s")
    print(f"  snapcap FFDNetDenoiser:               {ours:.3f} s")
    print(f"  speed-up: {ref / ours:.2f}x; max |difference| {np.abs(outputs['reference'] - outputs['snapcap']).max():.2e}")


if __name__ == "__main__":
    main()
