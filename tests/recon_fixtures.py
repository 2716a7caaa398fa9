"""Small training data for reconstructor tests (importable by a killed subprocess too)."""

from __future__ import annotations

import sys

from snapcap.datasets.h5 import DatasetConfig
from snapcap.datasets.synthetic import SyntheticCorpus
from snapcap.datasets.torch_data import SimulatedDataset

CONFIG = DatasetConfig(B=4, T=2, size=(32, 32), gray=True)


def samples(split: str = "train", count: int = 6):
    dataset = SimulatedDataset(SyntheticCorpus(num_videos=16, seed=3), CONFIG, split=split)
    return [dataset[i] for i in range(min(count, len(dataset)))]


def train_config(steps: int = 24):
    from snapcap.recon.nets.unfold import UnfoldConfig
    from snapcap.recon.train import TrainReconConfig

    # two GAP-TV iterations as the initial estimate: the cached-initial-estimate path, cheaply
    model = UnfoldConfig(B=4, stages=2, features=8, levels=1, init_iterations=2)
    return TrainReconConfig(model=model, steps=steps, batch_size=2, patch=16, checkpoint_every=4, log_every=4)


if __name__ == "__main__":
    import time

    import torch

    from snapcap.recon.train import train_recon

    torch.set_num_threads(1)
    # slow each step down a little so the parent can kill us between checkpoints
    original = torch.optim.Adam.step

    def slow_step(self, *args, **kwargs):
        time.sleep(0.05)
        return original(self, *args, **kwargs)

    torch.optim.Adam.step = slow_step
    train_recon(samples(), sys.argv[1], train_config(), progress=False)
