"""A tiny in-memory corpus for dataset tests (importable by subprocesses too)."""

from __future__ import annotations

import sys
import time

import numpy as np

from snapcap.datasets.base import Corpus, VideoItem


class TinyCorpus(Corpus):
    """``count`` videos of moving noise blobs; ``bad`` ids raise like a corrupt file would."""

    name = "tiny"

    def __init__(self, count: int = 10, bad: tuple[str, ...] = (), delay: float = 0.0):
        self.items = [
            VideoItem(f"vid{i:03d}", ("train", "val", "test")[i % 3], (f"video {i} caption a", f"video {i} caption b"))
            for i in range(count)
        ]
        self.bad = set(bad)
        self.delay = delay

    def describe(self):
        return dict(super().describe(), bad=sorted(self.bad))

    def clip(self, item, T, B, size, gray=False):
        if self.delay:
            time.sleep(self.delay)
        if item.video_id in self.bad:
            raise ValueError("moov atom not found")
        seed = int(item.video_id[3:])
        rng = np.random.default_rng(seed)
        base = rng.random((size[0] + T * B, size[1] + T * B) + (() if gray else (3,)))
        frames = np.stack([base[k : k + size[0], k : k + size[1]] for k in range(T * B)])
        return (frames * 255).round().astype(np.uint8).reshape((T, B) + frames.shape[1:])


if __name__ == "__main__":  # used by the kill-and-resume and two-writer tests: OUT [PART_SIZE [WORKERS [DELAY]]]
    from snapcap.datasets.h5 import DatasetConfig, make_dataset

    out = sys.argv[1]
    part_size = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    workers = int(sys.argv[3]) if len(sys.argv) > 3 else None
    delay = float(sys.argv[4]) if len(sys.argv) > 4 else 0.04
    make_dataset(
        TinyCorpus(24, bad=("vid005",), delay=delay),
        out,
        DatasetConfig(B=4, T=2, size=(24, 24), noise="gaussian:sigma=0.01", part_size=part_size),
        progress=False,
        workers=workers,
    )
