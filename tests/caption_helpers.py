"""Helpers of tests/test_caption_pipeline.py that also run as subprocesses.

``python tests/caption_helpers.py resume OUT``   a teacher training that the test kills and resumes;
``torchrun --nproc_per_node 2 tests/caption_helpers.py ddp OUT``   one DDP step's gradients, then a
1-epoch ``train_teacher`` under DistributedDataParallel (every checkpoint write is logged).
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

torch.set_num_threads(1)

DDP_CAPTIONS = [
    "a red circle moves to the left",
    "a blue square spins in place slowly",
    "a green ring grows on dark ground",
    "a white bar drifts up then stops",
]
"""Equal-length captions (7 words): every sample has the same number of target tokens, so the
mean of the per-rank mean losses is the mean loss of the whole batch."""


def run_cli(argv, capsys=None) -> str:
    """Run ``snapcap ARGV`` through the real parser (errors raise); return what it printed."""
    from snapcap.cli.main import build_parser

    args = build_parser().parse_args([str(a) for a in argv])
    if capsys is not None:
        capsys.readouterr()
    assert args.func(args) == 0
    return capsys.readouterr().out if capsys is not None else ""


def tiny_samples(count: int, B: int = 2, T: int = 2, size: int = 64, seed: int = 1, captions_per_video: int = 5):
    from snapcap.datasets.h5 import DatasetConfig
    from snapcap.datasets.synthetic import SyntheticCorpus
    from snapcap.datasets.torch_data import SimulatedDataset

    corpus = SyntheticCorpus(num_videos=count, seed=seed, captions_per_video=captions_per_video, splits=(1.0, 0.0, 0.0))
    dataset = SimulatedDataset(corpus, DatasetConfig(B=B, T=T, size=(size, size)))
    return [dataset[i] for i in range(len(dataset))]


def tiny_config(B: int = 2, T: int = 2):
    """The tiny preset without dropout (so runs are deterministic)."""
    from snapcap.caption.presets import captioner_preset

    config = captioner_preset("tiny", B=B, T=T)
    return replace(config, decoder=dict(config.decoder, dropout=0.0))


class _Slow:
    """Samples with a delay per access (keeps a run alive long enough to be killed mid-way)."""

    def __init__(self, samples, delay: float):
        self.samples, self.delay = samples, delay

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, index):
        time.sleep(self.delay)
        return self.samples[index]


RESUME_TRAIN = dict(epochs=6, batch_size=2, warmup_epochs=0, lr=1e-3, checkpoint_every=1, log_every=1)


def train_resume(out: str | Path, delay: float = 0.0) -> Path:
    """The run of the kill-and-resume test: 8 videos, 24 steps, a checkpoint after every step."""
    from snapcap.caption.train import CaptionTrainConfig, train_teacher

    samples = tiny_samples(8)
    if delay:
        samples = _Slow(samples, delay)
    return train_teacher(samples, out, tiny_config(), CaptionTrainConfig(**RESUME_TRAIN), progress=False)


# --- distributed -------------------------------------------------------------------------------


def ddp_samples():
    samples = tiny_samples(4)
    for sample, caption in zip(samples, DDP_CAPTIONS):
        sample["captions"] = [caption]
    return samples


def batch_loss(model, vocab, samples, indices):
    from snapcap.caption.train import rgb_frames

    frames = rgb_frames(torch.stack([samples[i]["frames"] for i in indices]).float())
    captions = vocab.encode_batch([samples[i]["captions"][0] for i in indices], max_length=30)
    return model.loss(frames, captions)


def fresh_model(samples):
    from snapcap.caption.train import build_teacher, build_vocabulary

    vocab = build_vocabulary(samples)
    torch.manual_seed(0)
    return build_teacher(tiny_config(), vocab), vocab


class _Loss(torch.nn.Module):
    def __init__(self, model, vocab, samples):
        super().__init__()
        self.model, self.vocab, self.samples = model, vocab, samples

    def forward(self, indices):
        return batch_loss(self.model, self.vocab, self.samples, indices)


def ddp_main(out: Path) -> None:
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    import snapcap.caption.train as train_module
    from snapcap.caption.train import CaptionTrainConfig, distributed_context, train_teacher

    context = distributed_context("cpu")
    assert context.active and context.world == 2, context
    samples = ddp_samples()
    model, vocab = fresh_model(samples)
    runner = DistributedDataParallel(_Loss(model, vocab, samples))
    indices = list(range(4))[context.rank :: context.world]
    runner(indices).backward()
    if context.rank == 0:
        grads = {name: p.grad.detach().clone() for name, p in model.named_parameters() if p.grad is not None}
        torch.save({"grads": grads, "state": model.state_dict()}, out / "ddp_grads.pt")
    dist.barrier()

    original = train_module.atomic_save

    def logged_save(path, payload):
        with open(out / f"saves-rank{context.rank}.log", "a", encoding="utf-8") as log:
            log.write(f"{Path(path).name}\n")
        original(path, payload)

    train_module.atomic_save = logged_save
    config = CaptionTrainConfig(epochs=1, batch_size=4, warmup_epochs=0, checkpoint_every=1, log_every=1)
    train_teacher(samples, out / "run", tiny_config(), config, progress=False)
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    command, target = sys.argv[1], Path(sys.argv[2])
    if command == "resume":
        train_resume(target, delay=float(os.environ.get("SNAPCAP_TEST_DELAY", "0")))
    elif command == "ddp":
        ddp_main(target)
    else:
        raise SystemExit(f"unknown command {command!r}")
