"""Dataset generation throughput against the decode-only floor, and memory against corpus size.

In one run, on the same video files (written here with OpenCV: 320x240, 96 frames, MJPG):
  floor    decode + resize/crop the T·B frames of every video (read_clip), nothing else
  snapcap  `make_dataset`: decode, Bayer mosaic, code with masks, noise, compress, write, finalise
Target (issue 5): snapcap >= 0.7 x the floor's videos per second. Then the peak resident memory
of a child process making a dataset of N videos and of 10·N videos: within 10 % of each other.

Usage: python bench/dataset.py [--videos 12] [--size 224] [--compression zstd|lz4|gzip|lzf|none]
"""

from __future__ import annotations

import argparse
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from snapcap.datasets.base import Corpus, VideoItem
from snapcap.datasets.h5 import DatasetConfig, make_dataset
from snapcap.datasets.video import read_clip


class FilesCorpus(Corpus):
    name = "bench-files"

    def __init__(self, paths):
        self.items = [VideoItem(path.stem, "train", ("a video",), path=path) for path in paths]

    def clip(self, item, T, B, size, gray=False):
        return read_clip(item.path, T, B, size, gray=gray)


def write_videos(folder: Path, count: int, frames: int = 96) -> list[Path]:
    import cv2

    paths = []
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:240, 0:320]
    for index in range(count):
        path = folder / f"clip{index:04d}.avi"
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, (320, 240))
        phase = rng.uniform(0, 6.28, 3)
        for t in range(frames):
            frame = np.stack([127 + 100 * np.sin(0.05 * xx + 0.03 * yy + 0.2 * t + p) for p in phase], axis=-1)
            cv2.circle(frame, (int(20 + 3 * t) % 320, 120), 25, (255, 255, 255), -1)
            writer.write(frame.astype(np.uint8))
        writer.release()
        paths.append(path)
    return paths


def child(args) -> None:
    """Make a dataset of the first N videos and print the peak RSS (MiB)."""
    paths = sorted(Path(args.folder).glob("clip*.avi"))
    corpus = FilesCorpus(paths * (args.repeat_corpus))
    corpus.items = [
        VideoItem(f"{item.video_id}-{i}", "train", item.captions, path=item.path) for i, item in enumerate(corpus.items)
    ][: args.count]
    config = DatasetConfig(size=(args.size, args.size), noise="poisson:photons=1000", compression=args.compression)
    make_dataset(corpus, Path(args.folder) / f"mem-{args.count}.h5", config, progress=False)
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    workers = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(max(own, workers) / 1024)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=12)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--compression", default="zstd", choices=["zstd", "lz4", "gzip", "lzf", "none"])
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--repeat-corpus", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    folder = Path(tempfile.mkdtemp(prefix="snapcap-bench-"))
    try:
        paths = write_videos(folder, args.videos)
        corpus = FilesCorpus(paths)
        config = DatasetConfig(size=(args.size, args.size), noise="poisson:photons=1000", compression=args.compression)
        print(
            f"{args.videos} videos 320x240x96 -> T={config.T} x B={config.B} frames at {args.size}x{args.size}, "
            f"RGB/RGGB, compression {args.compression}"
        )
        floors, runs = [], []
        for repeat in range(2):
            start = time.perf_counter()
            for item in corpus.items:
                read_clip(item.path, config.T, config.B, config.size)
            floors.append(time.perf_counter() - start)
            out = folder / f"run{repeat}.h5"
            start = time.perf_counter()
            make_dataset(corpus, out, config, progress=False)
            runs.append(time.perf_counter() - start)
            out.unlink()
        floor, run = min(floors), min(runs)
        print(f"  decode-only floor: {args.videos / floor:6.2f} videos/s ({floor:.2f} s)")
        print(f"  snapcap dataset:   {args.videos / run:6.2f} videos/s ({run:.2f} s)")
        print(f"  ratio: {floor / run:.2f} of the floor (target >= 0.7)")
        small, large = 4, 40
        peaks = []
        for count in (small, large):
            output = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--child",
                    "--folder",
                    str(folder),
                    "--count",
                    str(count),
                    "--repeat-corpus",
                    str(-(-large // len(paths))),
                    "--size",
                    str(args.size),
                    "--compression",
                    args.compression,
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            peaks.append(float(output.stdout.strip().splitlines()[-1]))
        print(
            f"  peak RSS: {small} videos {peaks[0]:.0f} MiB, {large} videos {peaks[1]:.0f} MiB: "
            f"ratio {peaks[1] / peaks[0]:.3f} (target <= 1.10)"
        )
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
