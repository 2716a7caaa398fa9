"""Training memory against corpus size, and the data feed's throughput against plain reading.

On procedural corpora written to HDF5 at 224 x 224 (RGB through an RGGB mosaic, B = 8, T = 4,
frames stored), in one run:

1. **Memory.** A child process trains the tiny teacher (one tower epoch, one head epoch: the
   distillation targets written memory-mapped beside it) and the SnapCap student (one stage-1,
   one stage-2 epoch; the student works on 64 x 64 snapshots, so it trains on a 64 x 64 file of
   the same corpus) straight from the files, each sample read when a step asks for it
   (:class:`snapcap.datasets.feed.BatchFeed`, one DataLoader worker). The same run on N and on
   8N videos: target peak memory(8N) / peak memory(N) <= 1.15 (issue 15). The memory is the
   proportional set size (PSS) of the training process and its DataLoader workers added up,
   sampled every 50 ms: forked workers share the trainer's pages, so adding their RSS would count
   those twice (the trainer's own peak RSS is printed too).
2. **Throughput.** Samples per second delivered as the trainer consumes them (the training's
   shuffled batches of 8, frames stacked and widened to float32 by
   :func:`snapcap.caption.train.stack_rows`; no model) through the feed's two workers, against
   the same batches read one sample after another in this process: target >= 0.8. The plain
   reading rate (no stacking) is printed for reference.

N (``--videos``) must be at least 32: the teacher's targets are computed 32 samples at a time, so a
smaller N understates the small run's peak (16 against 128 videos reads 1.42 for that reason alone:
the extra memory is one chunk of frames, not the corpus).

Usage: python bench/scale.py [--videos 32] [--size 224] [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from snapcap.datasets.h5 import DatasetConfig, make_dataset  # noqa: E402
from snapcap.datasets.synthetic import SyntheticCorpus  # noqa: E402

CHILD = r"""
import json, os, resource, sys, threading, time
import torch
torch.set_num_threads(1)


def pss_kib(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as handle:
            return next(int(line.split()[1]) for line in handle if line.startswith("Pss:"))
    except (OSError, StopIteration, ValueError):
        return 0


def tree(root):
    found, todo = [root], [root]
    while todo:
        pid = todo.pop()
        try:
            with open(f"/proc/{pid}/task/{pid}/children") as handle:
                kids = [int(k) for k in handle.read().split()]
        except OSError:
            kids = []
        found += kids
        todo += kids
    return found


peak = [0]
running = [True]


def sample():
    while running[0]:
        peak[0] = max(peak[0], sum(pss_kib(pid) for pid in tree(os.getpid())))
        time.sleep(0.05)


threading.Thread(target=sample, daemon=True).start()
from snapcap.caption.presets import captioner_preset, training_preset
from snapcap.caption.train import train_student, train_teacher
from snapcap.datasets.torch_data import MeasurementDataset
frames_path, snapshots_path, out = sys.argv[1], sys.argv[2], sys.argv[3]
training = training_preset("tiny", teacher_epochs=1, head_epochs=1, stage1_epochs=1, epochs=1, batch_size=8, workers=1)
start = time.perf_counter()
teacher = train_teacher(MeasurementDataset(frames_path, split="train"), out, captioner_preset("tiny"), training, progress=False)
student = train_student(MeasurementDataset(snapshots_path, split="train"), teacher, out, "snapcap", training, progress=False)
running[0] = False
own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"peak_mib": peak[0] / 1024, "own_mib": own, "seconds": time.perf_counter() - start}))
"""


def make(folder: Path, videos: int, size: int) -> tuple[Path, Path]:
    corpus = SyntheticCorpus(num_videos=videos, seed=0, splits=(1.0, 0.0, 0.0))
    paths = []
    for side in (size, 64):
        path = folder / f"corpus{videos}-{side}.h5"
        if not path.exists():
            make_dataset(corpus, path, DatasetConfig(B=8, T=4, size=(side, side)), progress=False, workers=2)
        paths.append(path)
    return paths[0], paths[1]


def train_child(frames: Path, snapshots: Path, out: Path) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", CHILD, str(frames), str(snapshots), str(out)], capture_output=True, text=True, check=False
    )
    if result.returncode:
        raise SystemExit(f"training child failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def throughput(path: Path, batch: int = 8) -> tuple[float, float, float]:
    import numpy as np

    from snapcap.caption.train import stack_rows
    from snapcap.datasets.feed import BatchFeed
    from snapcap.datasets.torch_data import MeasurementDataset

    dataset = MeasurementDataset(path, split="train")
    count = len(dataset)
    start = time.perf_counter()
    for index in range(count):
        dataset[index]
    reading = count / (time.perf_counter() - start)
    order = np.random.default_rng(0).permutation(count)
    batches = [order[i : i + batch] for i in range(0, count, batch)]
    start = time.perf_counter()
    for indices in batches:
        stack_rows(dataset, indices, "frames", "cpu")
    plain = count / (time.perf_counter() - start)
    feed = BatchFeed(dataset, workers=2)
    start = time.perf_counter()
    seen = 0
    for indices in feed.steps(batches):
        seen += len(stack_rows(feed, indices, "frames", "cpu"))
    fed = seen / (time.perf_counter() - start)
    dataset.close()
    return reading, plain, fed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", type=int, default=32, help="N: the small corpus (the large one has 8N; default 32)")
    parser.add_argument("--size", type=int, default=224, help="frame size of the teacher's file (default 224)")
    parser.add_argument("--work", type=Path, help="folder for the files (default: a temporary folder)")
    args = parser.parse_args(argv)
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="snapcap-bench-scale-") as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        runs = {}
        for videos in (args.videos, 8 * args.videos):
            frames, snapshots = make(work, videos, args.size)
            runs[videos] = train_child(frames, snapshots, work / f"run{videos}")
            print(f"[{time.perf_counter() - began:.0f} s] {videos} videos: {runs[videos]}", file=sys.stderr, flush=True)
        reading, plain, fed = throughput(make(work, 8 * args.videos, args.size)[0])
    small, large = runs[args.videos], runs[8 * args.videos]
    ratio = large["peak_mib"] / small["peak_mib"]
    print(f"## Training from HDF5 at {args.size}x{args.size} (B = 8, T = 4, RGB): memory and data feed\n")
    print("| videos | peak PSS MiB (trainer + workers) | trainer's peak RSS MiB | training s |")
    print("|---:|---:|---:|---:|")
    for videos, run in runs.items():
        print(f"| {videos} | {run['peak_mib']:.0f} | {run['own_mib']:.0f} | {run['seconds']:.0f} |")
    print(
        f"\n- {'PASS' if ratio <= 1.15 else 'FAIL'}: peak memory {8 * args.videos} / {args.videos} videos = {ratio:.2f} "
        "(target <= 1.15)"
    )
    print(
        f"- {'PASS' if fed >= 0.8 * plain else 'FAIL'}: shuffled batches of 8 stacked as the trainer stacks them: "
        f"through the feed (2 workers) {fed:.1f} samples/s vs read in this process {plain:.1f} samples/s = "
        f"{fed / plain:.2f} (target >= 0.8); reading alone, no stacking: {reading:.1f} samples/s "
        f"(the feed's stacked batches / reading alone = {fed / reading:.2f})"
    )
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\nwall time {time.perf_counter() - began:.0f} s; this process's peak RSS {own:.0f} MiB")
    return 0 if ratio <= 1.15 and fed >= 0.8 * plain else 1


if __name__ == "__main__":
    raise SystemExit(main())
