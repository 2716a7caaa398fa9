"""Pretraining the tiny CLIP tower on procedural frames: snapcap's stand-in for CLIP's pretraining.

The SnapCap paper's teacher is a frozen CLIP ViT-B/16 with OpenAI's weights: a tower that already
sees colours, shapes and where things are before any captioning. No such weights exist offline
for the tiny tower (``snapcap-tiny-vit``), and a ViT trained from scratch on a few hundred
captioned videos learns colours and little else (measured: shape right in about a third of the
captions, direction of motion no better than chance). So the tiny preset starts from a tower
pretrained here, once, on single frames of fresh procedural scenes
(:func:`snapcap.datasets.synthetic.frames.labelled_frames`: disjoint from any corpus, hundreds of
thousands of frames) to read off each frame, per colour, whether an object is in view, its shape,
centre, size and angle. Its weights ship with snapcap (``weights/snapcap-tiny-vit-procedural.pt``,
with a JSON of the recipe and its held-out scores) and :meth:`ClipTeacher.create` loads them as
``pretrained="procedural"``; :func:`pretrain_tower` (``snapcap train tower``) remakes them.

Batches are drawn from ``(seed, step)``, so a run killed and resumed from its checkpoint draws
exactly the batches it would have drawn, and the same command gives the same weights.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from snapcap.caption.teacher import ClipTeacher
from snapcap.datasets.synthetic.frames import LABEL_COLORS, FrameLabels, labelled_frames
from snapcap.datasets.synthetic.scene import SHAPES
from snapcap.errors import ConfigError, DataFileError
from snapcap.fileio import atomic_path, write_json

__all__ = ["PretrainConfig", "pretrain_tower", "tower_scores"]

_PER_SLOT = 1 + len(SHAPES) + 3 + 2  # present, shape logits, (y, x, 5 r), (cos, sin)


@dataclass(frozen=True)
class PretrainConfig:
    """Settings of :func:`pretrain_tower` (the shipped weights' are the defaults)."""

    model: str = "snapcap-tiny-vit"
    steps: int = 30000
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 0.05
    warmup: float = 0.05
    max_objects: int = 2
    seed: int = 0
    val_frames: int = 512
    checkpoint_every: int = 1000
    device: str = "cpu"

    RUNTIME = ("device",)
    """Fields that decide where the run computes, not what it learns."""

    def recipe(self) -> dict[str, Any]:
        """The settings that decide the weights (what the record and a resumed run compare)."""
        return {key: value for key, value in asdict(self).items() if key not in self.RUNTIME}

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "max_objects", "val_frames", "checkpoint_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be an integer >= 1, got {value!r}")
        if not (self.lr > 0 and self.weight_decay >= 0 and 0 <= self.warmup < 1):
            raise ConfigError(
                f"need lr > 0, weight_decay >= 0, 0 <= warmup < 1; got {self.lr}, {self.weight_decay}, {self.warmup}"
            )


def _tensors(labels: FrameLabels, device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
    return {name: torch.from_numpy(np.asarray(value)).to(device) for name, value in asdict(labels).items()}


def _losses(out: torch.Tensor, labels: dict[str, torch.Tensor]) -> torch.Tensor:
    out = out.view(out.shape[0], len(LABEL_COLORS), _PER_SLOT)
    present = labels["present"]
    loss = F.binary_cross_entropy_with_logits(out[..., 0], present)
    shown = labels["shape"] >= 0
    if bool(shown.any()):
        loss = loss + F.cross_entropy(out[..., 1 : 1 + len(SHAPES)][shown], labels["shape"][shown])
    count = present.sum().clamp_min(1.0)
    where = out[..., 1 + len(SHAPES) : 4 + len(SHAPES)]
    loss = loss + (((where - labels["geometry"]) ** 2).sum(-1) * present).sum() / count
    turn = out[..., 4 + len(SHAPES) :]
    return loss + (((turn - labels["angle"]) ** 2).sum(-1) * labels["rotates"]).sum() / count


@torch.no_grad()
def tower_scores(tower: ClipTeacher, head: nn.Module, frames: np.ndarray, labels: FrameLabels) -> dict[str, float]:
    """Held-out scores of a tower and its attribute head: the share of objects whose shape is
    right, of frames whose set of colours in view is right, and the mean centre error (frame
    fractions) of the objects in view."""
    out = head(tower.encode(torch.from_numpy(frames).to(tower.device), rgb=True))
    out = out.view(len(frames), len(LABEL_COLORS), _PER_SLOT)
    truth = _tensors(labels, tower.device)
    shown = truth["shape"] >= 0
    shape = (out[..., 1 : 1 + len(SHAPES)].argmax(-1) == truth["shape"])[shown].float().mean()
    colours = ((out[..., 0] > 0).float() == truth["present"]).all(-1).float().mean()
    where = out[..., 1 + len(SHAPES) : 3 + len(SHAPES)]
    error = (where - truth["geometry"][..., :2]).norm(dim=-1)[shown].mean()
    return {"shape_accuracy": float(shape), "colour_accuracy": float(colours), "position_error": float(error)}


def pretrain_tower(out: str | Path, config: PretrainConfig = PretrainConfig(), progress: bool = True) -> dict[str, Any]:
    """Pretrain ``config.model``'s tower on labelled procedural frames; write its state dict to
    ``out`` (``visual.*`` keys, loadable as ``ClipTeacher.create(..., checkpoint=out)``) and the
    recipe with the held-out scores beside it (``out`` with ``.json``). Resumes from
    ``out``'s ``.ckpt`` when one is there (written every ``checkpoint_every`` steps, removed at
    the end). Returns the scores."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed)
    device = torch.device(config.device)
    tower = ClipTeacher.create(config.model, frozen=False, device=device)
    head = nn.Linear(tower.embed_dim, len(LABEL_COLORS) * _PER_SLOT).to(device)
    params = list(tower.parameters()) + list(head.parameters())
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, config.lr, total_steps=config.steps, pct_start=max(config.warmup, 1e-3)
    )
    size = tower.image_size
    ckpt = out.with_suffix(".ckpt")
    step = 0
    if ckpt.is_file():
        try:
            state = torch.load(ckpt, map_location="cpu", weights_only=False)
            if state.get("config") != config.recipe():
                raise DataFileError(f"{ckpt}: a checkpoint of other settings ({state.get('config')}); remove it to start afresh")
            tower.visual.load_state_dict(state["tower"])
            head.load_state_dict(state["head"])
            optimizer.load_state_dict(state["optimizer"])
            schedule.load_state_dict(state["schedule"])
            step = int(state["step"])
        except DataFileError:
            raise
        except Exception as exc:  # noqa: BLE001 - any unreadable checkpoint is named, not half-used
            raise DataFileError(f"{ckpt}: unreadable pretraining checkpoint ({type(exc).__name__}: {exc})") from None
    val_frames, val_labels = labelled_frames((config.seed, 2**31 - 1), config.val_frames, size, config.max_objects)
    tower.train()
    began = time.perf_counter()
    bar = tqdm(total=config.steps, initial=step, desc=f"pretrain {config.model}", unit="step", disable=not progress)
    while step < config.steps:
        frames, labels = labelled_frames((config.seed, step), config.batch_size, size, config.max_objects)
        loss = _losses(head(tower.encode(torch.from_numpy(frames).to(device), rgb=True)), _tensors(labels, device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        step += 1
        bar.update(1)
        if step % 50 == 0:
            bar.set_postfix(loss=f"{loss.item():.3f}")
        if step % config.checkpoint_every == 0 and step < config.steps:
            state = {
                "config": config.recipe(),
                "step": step,
                "tower": tower.visual.state_dict(),
                "head": head.state_dict(),
                "optimizer": optimizer.state_dict(),
                "schedule": schedule.state_dict(),
            }
            with atomic_path(ckpt) as tmp:
                torch.save(state, tmp)
    bar.close()
    tower.eval()
    scores = tower_scores(tower, head, val_frames, val_labels)
    with atomic_path(out) as tmp:
        torch.save({f"visual.{key}": value.cpu() for key, value in tower.visual.state_dict().items()}, tmp)
    record = {
        "recipe": config.recipe(),
        "held_out": dict(scores, frames=config.val_frames),
        "seconds": round(time.perf_counter() - began, 1),
    }
    write_json(out.with_suffix(".json"), record, indent=1)
    ckpt.unlink(missing_ok=True)
    return scores
