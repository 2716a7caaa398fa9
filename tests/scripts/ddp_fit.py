"""Run by tests/test_distributed.py alone and under ``torchrun``: ``fit`` on a linear regression.

Writes the trained weights (rank 0) to ``argv[1]``. With a per-sample mean loss and no
randomness in the step, two processes must end where one does.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch import nn

from snapcap.caption.train import CaptionTrainConfig, fit
from snapcap.distributed import distributed_context, finish


def main(out: Path) -> None:
    context = distributed_context("cpu")
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(21, 6, generator=generator)
    targets = inputs @ torch.randn(6, 3, generator=generator) + 0.1 * torch.randn(21, 3, generator=generator)
    torch.manual_seed(0)
    model = nn.Linear(6, 3)

    def loss_fn(indices, epoch):
        rows = torch.as_tensor(indices, dtype=torch.long)
        return {"loss": nn.functional.mse_loss(model(inputs[rows]), targets[rows])}

    config = CaptionTrainConfig(batch_size=8, lr=1e-2, warmup_epochs=0, weight_decay=0.0, checkpoint_every=1000)
    out.parent.mkdir(parents=True, exist_ok=True)
    fit(
        "linear",
        model,
        [{"params": list(model.parameters()), "lr": config.lr}],
        loss_fn,
        len(inputs),  # 21: batches of 8, 8 and 5, which two processes split 4 + 4 and 3 + 2
        4,
        config,
        out.parent,
        {"test": 1},
        progress=False,
        context=context,
    )
    if context.main:
        torch.save(model.state_dict(), out)
    finish()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
