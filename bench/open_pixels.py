"""The B = 2 anomaly: the pixels that no mask opens, and how far the student's linear start is from its targets.

With random binary masks (duty 0.5) a pixel is closed in every one of the B masks with
probability 2^-B: 25 % of the pixels at B = 2, 6 % at B = 4, 0.4 % at B = 8. There Y holds
nothing of the scene and Ȳ = Y ⊘ Σ_k C_k is undefined; left at zero, a quarter of Ȳ (and of the
initial estimate X_e = Ȳ ⊙ C + Ȳ) is dark at B = 2. The tiny SnapCap student starts its linear
shortcut P from the teacher's conv1 (P(Ȳ) ≈ conv1 of the mean frame, the target f_t_conv), so
this bench prints, per B, the share of closed pixels and the relative MSE of P(Ȳ) to f_t_conv
(MSE over the targets' variance) with the closed pixels left at zero and completed as
:func:`snapcap.caption.student.normalized_measurement` completes them (the mean of the opened
pixels two steps away). Procedural corpus, 64 videos, 64×64 RGGB, T = 4, the tiny preset.

Usage: python bench/open_pixels.py
"""

import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from snapcap.caption.presets import captioner_preset  # noqa: E402
from snapcap.caption.student import normalized_measurement  # noqa: E402
from snapcap.caption.train import build_student, build_teacher, build_vocabulary, rgb_frames  # noqa: E402
from snapcap.datasets.h5 import DatasetConfig  # noqa: E402
from snapcap.datasets.synthetic import SyntheticCorpus  # noqa: E402
from snapcap.datasets.torch_data import SimulatedDataset  # noqa: E402


def main() -> int:
    torch.set_num_threads(2)
    corpus = SyntheticCorpus(num_videos=64, seed=0, max_objects=1, splits=(1.0, 0.0, 0.0))
    vocab = build_vocabulary([{"captions": ["a red disc"]}])
    print("| B | pixels no mask opens % | relative MSE of P(Ȳ) to f_t_conv, closed pixels at zero | completed |")
    print("|---:|---:|---:|---:|")
    for B in (2, 4, 8, 16):
        config = captioner_preset("tiny", B=B, T=4)
        teacher = build_teacher(config, vocab)
        dataset = SimulatedDataset(corpus, DatasetConfig(B=B, T=4, size=(64, 64)))
        samples = [dataset[i] for i in range(len(dataset))]
        meas = torch.stack([s["meas"] for s in samples]).flatten(0, 1)
        masks = samples[0]["masks"]
        frames = rgb_frames(torch.stack([s["frames"] for s in samples]))
        with torch.no_grad():
            conv = teacher.teacher.snapshot_targets(frames)[0].flatten(0, 1)
            student = build_student(teacher, config).student
            tower = teacher.teacher
            student.init_shortcut(tower.visual.conv1.weight, tower.pixel_mean.flatten(), tower.pixel_std.flatten(), "RGGB")
            total = masks.sum(0)
            zeros = torch.where(total > 0, meas / total.clamp_min(1e-12), torch.zeros_like(meas))
            completed = normalized_measurement(meas, masks[None])
            errors = [float(((student.patch(y[:, None]) - conv) ** 2).mean() / conv.var()) for y in (zeros, completed)]
        closed = 100 * float((total == 0).float().mean())
        print(f"| {B} | {closed:.1f} | {errors[0]:.3f} | {errors[1]:.3f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
