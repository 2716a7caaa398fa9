"""Training the captioners: the teacher on frames, the SnapCap student in two stages, the baseline.

The paper's recipe (SnapCap, Sec. 3.3 and Tables 5-6) with its optimiser settings as defaults:

* teacher captioner: CLIP encoder (trained too when it starts from random weights), projector
  and caption decoder with the cross-entropy caption loss;
* student stage 1: encoder f and decoder g with L_reg = L1(g(f(Y, C)), X);
* student stage 2: f, Conv2, S and Proj with L_dis + β·L_cap, L_dis = MSE(f_s_conv, f_t_conv)
  + α·MSE(f_s, f_t), the caption decoder frozen; AdamW, weight decay 1e-4, learning rates 1e-6
  for Conv2 and S, 3e-4 for Proj and f; α = β = 0.001;
* baseline: the same network, caption loss only; ablations: L_reg only, L_dis only.

Every stage is resumable: a checkpoint (module, optimiser, scheduler, epoch, position in the
epoch, history) is written atomically every ``checkpoint_every`` steps; batch order depends only
on (seed, epoch), so a resumed run continues exactly where it stopped. Under ``torchrun`` the
batches are split across processes and gradients averaged with DistributedDataParallel
(gloo on CPU, NCCL on GPUs); only rank 0 writes files.
"""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from snapcap.cacti.bayer import mosaic
from snapcap.caption.decoding import UNK
from snapcap.caption.lm import build_decoder, codec_for, codec_from_dict, decoder_choice, is_lm_decoder, lm_decoder_settings
from snapcap.caption.models import CaptionerConfig, SnapCapCaptioner, TeacherCaptioner, copy_module
from snapcap.caption.rowcache import cached_rows, finish_rows, load_rows, rows_of, write_rows
from snapcap.caption.student import SnapCapStudent, StudentConfig, normalized_measurement
from snapcap.caption.teacher import ClipTeacher
from snapcap.caption.temporal import OrderAwareStudent, frame_tokens, is_temporal, prefix_length
from snapcap.caption.text import Vocabulary
from snapcap.datasets.feed import BatchFeed, feed_of
from snapcap.datasets.samples import captions_of, sample_identities
from snapcap.distributed import DistributedContext, distributed_context
from snapcap.errors import ConfigError, DataFileError, InvalidValueError, ShapeError, SnapcapError
from snapcap.fileio import atomic_path

__all__ = [
    "CaptionTrainConfig",
    "STUDENT_MODES",
    "build_vocabulary",
    "train_teacher",
    "adapt_teacher",
    "train_student",
    "load_native",
    "compute_targets",
    "teacher_targets",
    "fit",
    "atomic_save",
    "load_checkpoint",
    "encode_caption_batch",
    "sample_keys",
    "stack_rows",
]

STUDENT_MODES = {
    "snapcap": {"reg": True, "dis": True, "cap": True, "temporal": False},
    "baseline": {"reg": False, "dis": False, "cap": True, "temporal": False},
    "reg-only": {"reg": True, "dis": False, "cap": True, "temporal": False},
    "dis-only": {"reg": False, "dis": True, "cap": True, "temporal": False},
    "snapcap-temporal": {"reg": True, "dis": True, "cap": True, "temporal": True},
    "baseline-temporal": {"reg": False, "dis": False, "cap": True, "temporal": True},
}
"""Which losses each student variant uses (the paper's Table 2 rows), and the order-aware
students (:class:`snapcap.caption.temporal.OrderAwareStudent`, of an order-aware teacher):
``snapcap-temporal`` distils each per-frame token, ``baseline-temporal`` is the same network
with the caption loss only."""


@dataclass(frozen=True)
class CaptionTrainConfig:
    """Optimisation settings; defaults are the paper's (Tables 5 and 6).

    Fields beyond the paper (their defaults leave the paper's recipe unchanged):

    * ``label_smoothing``: of every caption cross-entropy (teacher and students).
    * ``teacher_epochs``: end-to-end teacher epochs (None: ``epochs``, as the students' stage 2).
    * ``teacher_frames``: k > 0 averages T(X_k) over k of the B frames of each snapshot (evenly
      spaced, random offset) while the teacher trains end to end: k/B of the cost; 0 uses all B.
    * ``head_epochs``: then, the tower frozen, f_t over all B frames computed once and projector
      + decoder trained on it for this many epochs (the decoder learns the exact full-B features
      it sees at inference); the same pass writes the students' targets (``teacher.targets.pt``).
    * ``bow_weight``: weight of an auxiliary bag-of-words loss while the teacher trains end to
      end (the T snapshot embeddings predict the distribution of the video's caption words; the
      head is dropped afterwards). A randomly initialised tower learns colours and shapes from it
      far sooner than from the caption loss alone: a stand-in for CLIP's image-text pre-training.
    * ``cache_targets``: the frozen teacher's (f_t_conv, f_t) computed once per sample for stage 2.
    * ``shortcut_init``: how a student with a linear shortcut P (``StudentConfig.shortcut``)
      starts: ``fit`` (modes with L_dis start stage 2 from P = argmin L_conv, a closed-form ridge
      regression; other modes start from P = 0 and learn it from their losses), ``teacher``
      (every mode: P copied from the teacher's conv1 through the Bayer pattern) or ``zero``.
    * ``shortcut_ridge``: the ridge of that regression (relative to the number of patches).
    * ``match_epochs``: students without L_reg (the baseline, ``dis-only``) have no stage 1; with
      this they train stage 2 for ``stage1_epochs`` more epochs, so every student makes the same
      number of passes over the data (off: the paper's schedule, the same stage 2 for all).
    * ``amp``: mixed precision: the forward passes and losses of every training step under
      bf16 autocast (CUDA, or CPUs with bf16 support); weights, optimiser state and the
      teacher's stored targets stay float32, and the caption losses are computed on float32
      logits. Off by default: on CPUs without native bf16 it is slower, not faster.
    * ``frame_weight``: γ, the weight of the order-aware students' per-frame distillation
      MSE(s_{t,k}, T(X_{t,k})) (:mod:`snapcap.caption.temporal`); ``frame_reg_weight``: the weight
      of L_reg that they keep in stage 2 (g's frames feed their tokens). Unused by the paper's students.
    * ``workers``: DataLoader worker processes that read each step's samples ahead
      (:class:`~snapcap.datasets.feed.BatchFeed`); 0 reads them in the training process. A
      run resumes with any number of workers.
    """

    epochs: int = 30
    stage1_epochs: int = 30
    batch_size: int = 32
    lr: float = 3e-4
    lr_tail: float = 1e-6
    lr_conv2: float = 1e-6
    lr_proj: float = 3e-4
    lr_encoder: float = 3e-4
    weight_decay: float = 1e-4
    warmup_epochs: int = 10
    alpha: float = 1e-3
    beta: float = 1e-3
    baseline_caption_weight: float = 1.0
    label_smoothing: float = 0.0
    teacher_epochs: int | None = None
    teacher_frames: int = 0
    head_epochs: int = 0
    bow_weight: float = 0.0
    cache_targets: bool = True
    shortcut_init: str = "fit"
    shortcut_ridge: float = 1e-3
    match_epochs: bool = False
    frame_weight: float = 1.0
    frame_reg_weight: float = 1.0
    max_length: int = 30
    min_count: int = 1
    seed: int = 0
    device: str = "cpu"
    checkpoint_every: int = 50
    log_every: int = 10
    workers: int = 0
    amp: bool = False

    def __post_init__(self) -> None:
        for name in ("lr", "lr_tail", "lr_conv2", "lr_proj", "lr_encoder"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ConfigError(f"{name} must be a finite number > 0, got {value!r}")
        for name in (
            "weight_decay",
            "alpha",
            "beta",
            "baseline_caption_weight",
            "label_smoothing",
            "bow_weight",
            "shortcut_ridge",
            "frame_weight",
            "frame_reg_weight",
        ):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ConfigError(f"{name} must be a finite number >= 0, got {value!r}")
        for name, minimum in (
            ("epochs", 0),
            ("stage1_epochs", 0),
            ("batch_size", 1),
            ("warmup_epochs", 0),
            ("head_epochs", 0),
            ("teacher_frames", 0),
            ("max_length", 1),
            ("min_count", 1),
            ("seed", 0),
            ("checkpoint_every", 1),
            ("log_every", 1),
            ("workers", 0),
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")
        for name in ("amp", "match_epochs"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be True or False, got {getattr(self, name)!r}")
        if self.teacher_epochs is not None and (not isinstance(self.teacher_epochs, int) or self.teacher_epochs < 0):
            raise ConfigError(f"teacher_epochs must be None or an integer >= 0, got {self.teacher_epochs!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    RUNTIME = ("workers",)
    """Fields that change how a run reads its data, not what it trains."""

    def model_settings(self) -> dict[str, Any]:
        """:meth:`to_dict` without the :attr:`RUNTIME` fields: what decides the trained model."""
        return {key: value for key, value in self.to_dict().items() if key not in self.RUNTIME}


def build_vocabulary(samples: Sequence[dict[str, Any]], min_count: int = 1):
    """A :class:`~snapcap.caption.text.Vocabulary` from every caption of the given samples."""
    captions = [caption for captions in captions_of(samples) for caption in captions]
    if not captions:
        raise ConfigError("the training data holds no caption")
    return Vocabulary.build(captions, min_count=min_count)


# --- the generic resumable loop ---------------------------------------------------------------


def atomic_save(path: Path, payload: dict[str, Any]) -> None:
    """``torch.save(payload)`` to ``path`` atomically (a temporary file in the folder, then a rename)."""
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """What :func:`atomic_save` wrote (loaded on the CPU).

    Raises:
        DataFileError: the file is missing or not a readable torch file.
    """
    path = Path(path)
    if not path.is_file():
        raise DataFileError(f"{path}: no such checkpoint")
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise DataFileError(f"{path}: not a readable snapcap checkpoint ({exc.__class__.__name__}: {exc})") from exc


def _batches(count: int, batch_size: int, seed: int, epoch: int) -> list[np.ndarray]:
    order = np.random.default_rng([seed, epoch]).permutation(count)
    return [order[i : i + batch_size] for i in range(0, count, batch_size)]


def _schedule(optimizer, total_steps: int, warmup_steps: int):
    def factor(step: int) -> float:
        if warmup_steps and step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def fit(
    name: str,
    module: nn.Module,
    groups: list[dict[str, Any]],
    loss_fn: Callable[[np.ndarray, int], dict[str, torch.Tensor]],
    count: int,
    epochs: int,
    config: CaptionTrainConfig,
    out_dir: Path,
    stamp: dict[str, Any],
    progress: bool = True,
    context: DistributedContext | None = None,
    feed: BatchFeed | None = None,
) -> list[dict[str, Any]]:
    """Train ``module`` for ``epochs`` over ``count`` samples; resumable from ``out_dir/name.ckpt``.

    ``loss_fn(indices, epoch)`` returns a dict with ``loss`` (and other scalars to log). With a
    ``feed`` (the samples ``loss_fn`` reads), each step's rows are loaded ahead by its workers.
    """
    context = context or DistributedContext()
    checkpoint = out_dir / f"{name}.ckpt"
    optimizer = torch.optim.AdamW(groups, betas=(0.9, 0.999), weight_decay=config.weight_decay)
    steps_per_epoch = math.ceil(count / config.batch_size)
    scheduler = _schedule(
        optimizer, epochs * steps_per_epoch, config.warmup_epochs * steps_per_epoch if epochs > config.warmup_epochs else 0
    )
    epoch, position, history = 0, 0, []
    if checkpoint.exists():
        state = load_checkpoint(checkpoint)
        if _resumable(state.get("stamp")) != _resumable(stamp):
            raise ConfigError(f"{checkpoint}: was written by another configuration; use another output folder")
        module.load_state_dict(state["module"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        epoch, position, history = state["epoch"], state["position"], state["history"]
    runner: nn.Module = _LossModule(module, loss_fn)
    if context.active:
        runner = DistributedDataParallel(runner, find_unused_parameters=True)
    step = epoch * steps_per_epoch + position
    total = epochs * steps_per_epoch
    bar = tqdm(total=total, initial=step, desc=f"train {name}", unit="step", disable=not (progress and context.main))
    module.train()
    try:
        while epoch < epochs:
            batches = _batches(count, config.batch_size, config.seed, epoch)
            plan = [_share(b, context) for b in batches[position:]]
            sizes = [len(b) for b in batches[position:]]
            for number, indices in enumerate(feed.steps(plan) if feed is not None else plan):
                with torch.autocast(device_type=torch.device(config.device).type, dtype=torch.bfloat16, enabled=config.amp):
                    values = runner(indices, epoch)
                optimizer.zero_grad(set_to_none=True)
                if context.active:
                    # each rank's loss is a mean over its share; weighted by the share's size,
                    # DistributedDataParallel's average of the gradients is the whole batch's
                    (values["loss"] * (len(indices) * context.world / sizes[number])).backward()
                else:
                    values["loss"].backward()
                optimizer.step()
                scheduler.step()
                position += 1
                step += 1
                bar.update(1)
                if step % config.log_every == 0 or step == total:
                    entry = {"stage": name, "epoch": epoch, "step": step, **{k: float(v.detach()) for k, v in values.items()}}
                    history.append(entry)
                    bar.set_postfix(loss=f"{entry['loss']:.4f}")
                    if context.main:
                        with open(out_dir / "log.jsonl", "a", encoding="utf-8") as log:
                            log.write(json.dumps(entry) + "\n")
                if context.main and (step % config.checkpoint_every == 0 or step == total):
                    atomic_save(
                        checkpoint,
                        {
                            "module": module.state_dict(),
                            "optimizer": optimizer.state_dict(),
                            "scheduler": scheduler.state_dict(),
                            "epoch": epoch if position < len(batches) else epoch + 1,
                            "position": position if position < len(batches) else 0,
                            "history": history,
                            "stamp": stamp,
                        },
                    )
            epoch += 1
            position = 0
    finally:
        bar.close()
    module.eval()
    return history


def _share(batch: np.ndarray, context: DistributedContext) -> np.ndarray:
    """This rank's part of a batch (all of it when alone). A batch smaller than the number of
    processes (an epoch's last) gives the ranks past its end one of its samples again: every rank
    must take part in each step's gradient averaging."""
    if not context.active:
        return batch
    share = batch[context.rank :: context.world]
    return share if len(share) else batch[context.rank % len(batch) :][:1]


def _resumable(stamp: Any) -> Any:
    """A run's stamp without the settings a resumed run may change (:attr:`CaptionTrainConfig.RUNTIME`)."""
    if isinstance(stamp, dict) and isinstance(stamp.get("train"), dict):
        return dict(stamp, train={k: v for k, v in stamp["train"].items() if k not in CaptionTrainConfig.RUNTIME})
    return stamp


class _LossModule(nn.Module):
    """Holds the trained module so DistributedDataParallel can wrap "compute the loss"."""

    def __init__(self, module: nn.Module, loss_fn: Callable[[np.ndarray, int], dict[str, torch.Tensor]]):
        super().__init__()
        self.module = module
        self.loss_fn = loss_fn

    def forward(self, indices: np.ndarray, epoch: int) -> dict[str, torch.Tensor]:
        return self.loss_fn(indices, epoch)


# --- batches from samples ---------------------------------------------------------------------


def encode_caption_batch(samples, indices, vocab, epoch: int, seed: int, max_length: int) -> torch.Tensor:
    """One caption per sample, drawn from its ``captions`` by ``(seed, epoch, index)``, encoded.

    Returns:
        The ids ``(len(indices), L)`` of :meth:`~snapcap.caption.text.Vocabulary.encode_batch`.

    Raises:
        ConfigError: a sample without captions.
    """
    captions = []
    for index in indices:
        options = samples[int(index)]["captions"]
        if not options:
            raise ConfigError(f"sample {int(index)} has no caption to train on")
        choice = np.random.default_rng([seed, epoch, int(index)]).integers(len(options))
        captions.append(options[int(choice)])
    return vocab.encode_batch(captions, max_length=max_length)


def stack_rows(samples, indices, key: str, device) -> torch.Tensor:
    """``samples[i][key]`` of every index as one float32 tensor on ``device``.

    uint8 frames (a dataset file's, as a :class:`~snapcap.datasets.feed.BatchFeed` holds them)
    are stacked into page-locked memory on CUDA, moved as bytes and widened on the device, as
    the dataset widens them (``x.float().div_(255)``: the same numbers either way).
    """
    values = [torch.as_tensor(samples[int(i)][key]) for i in indices]
    device = torch.device(device)
    if values[0].dtype == torch.uint8:
        if device.type == "cuda":
            batch = torch.empty((len(values), *values[0].shape), dtype=torch.uint8, pin_memory=True)
            torch.stack(values, out=batch)
            return batch.to(device, non_blocking=True).float().div_(255.0)
        out = torch.empty((len(values), *values[0].shape), dtype=torch.float32, device=device)
        for row, value in zip(out, values):  # converted while copied: one pass, no uint8 batch
            row.copy_(value)
        return out.div_(255.0)
    return torch.stack(values).to(device, torch.float32)


def _masks(samples, indices, device) -> torch.Tensor:
    masks = [torch.as_tensor(samples[int(i)]["masks"]) for i in indices]
    if all(m.data_ptr() == masks[0].data_ptr() for m in masks) or all(torch.equal(m, masks[0]) for m in masks[1:]):
        return masks[0].to(device, torch.float32)
    return torch.stack(masks).to(device, torch.float32)


def _ybar(samples, indices, device) -> torch.Tensor:
    """Ȳ of every snapshot of the samples (:func:`~snapcap.caption.student.normalized_measurement`): (n·T, H, W)."""
    meas = stack_rows(samples, indices, "meas", device)
    masks = _masks(samples, indices, device)
    masks = masks.unsqueeze(0) if masks.ndim == 3 else masks.unsqueeze(1)  # (1 or n, 1, B, H, W) against (n, T, H, W)
    return normalized_measurement(meas, masks).flatten(0, 1)


def rgb_frames(frames: torch.Tensor) -> torch.Tensor:
    """``(N, T, B, H, W[, 3])`` -> RGB ``(N, T, B, H, W, 3)`` (gray replicated)."""
    return frames if frames.ndim == 6 else frames.unsqueeze(-1).expand(*frames.shape, 3)


def mosaic_frames(frames: torch.Tensor, bayer: str | None) -> torch.Tensor:
    """The frames the sensor saw: RGB -> Bayer mosaic, gray unchanged (stage-1 targets)."""
    if frames.ndim == 6:
        return mosaic(frames, bayer or "RGGB")
    return frames


# --- teacher ----------------------------------------------------------------------------------


def build_teacher(captioner_config, vocab, device="cpu"):
    """CLIP tower + Proj + the decoder of ``captioner_config.decoder`` (in-house, or a frozen ``lm:`` model)."""
    teacher = ClipTeacher.create(captioner_config.teacher, pretrained=captioner_config.pretrained, device=device)
    decoder = build_decoder(captioner_config.decoder, vocab)
    model = TeacherCaptioner(teacher, decoder, token_dim=decoder.config.width, temporal=captioner_config.temporal)
    if captioner_config.train_encoder:
        for parameter in model.teacher.parameters():
            parameter.requires_grad_(True)
    return model.to(device)


def _with_prefix(captioner_config):
    """The config with a decoder that takes :func:`~snapcap.caption.temporal.prefix_length` visual tokens."""
    need = prefix_length(captioner_config)
    if int(captioner_config.decoder.get("max_prefix", 16)) >= need:
        return captioner_config
    return replace(captioner_config, decoder=dict(captioner_config.decoder, max_prefix=need))


def _frame_subset(frames: torch.Tensor, indices, count: int, seed: int, epoch: int) -> torch.Tensor:
    """``count`` of the B frames of every snapshot, evenly spaced from a random offset.

    Frames ``(n, T, B, ...)`` -> ``(n, T, count, ...)``; the offsets depend only on (seed, epoch,
    sample index), so a resumed run draws the same frames.
    """
    per = frames.shape[2]
    if not count or count >= per:
        return frames
    stride = per / count
    picks = []
    for index in indices:
        offsets = np.random.default_rng([seed, epoch, int(index), 17]).uniform(0.0, stride, size=frames.shape[1])
        picks.append(np.floor(offsets[:, None] + stride * np.arange(count)[None, :]).astype(np.int64).clip(0, per - 1))
    pick = torch.as_tensor(np.stack(picks), device=frames.device)  # (n, T, count)
    pick = pick.reshape(pick.shape + (1,) * (frames.ndim - 3)).expand(pick.shape + tuple(frames.shape[3:]))
    return torch.gather(frames, 2, pick)


def _bag_of_words(samples, vocab) -> torch.Tensor:
    """(N, V) multi-hot: the words (ids >= 4, no special tokens) of each sample's captions.

    With a language model's tokenizer (tens of thousands of tokens) the columns are the tokens
    the training captions use, in id order.
    """
    if isinstance(vocab, Vocabulary):
        rows = [[i for c in captions for i in vocab.encode(c, max_length=10_000) if i > UNK] for captions in captions_of(samples)]
        columns = None
    else:
        rows = [[i for c in captions for i in vocab.content_ids(c)] for captions in captions_of(samples)]
        columns = {token: column for column, token in enumerate(sorted({i for ids in rows for i in ids}))}
    out = torch.zeros(len(rows), len(vocab) if columns is None else max(1, len(columns)))
    for row, ids in enumerate(rows):
        out[row, ids if columns is None else [columns[i] for i in ids]] = 1.0
    return out


def train_teacher(
    samples,
    out_dir: str | Path,
    captioner_config,
    config: CaptionTrainConfig = CaptionTrainConfig(),
    vocab=None,
    progress: bool = True,
    preset: str | None = None,
) -> Path:
    """Train the teacher captioner on true frames; returns the path of ``teacher.pt``.

    Phase 1 (``config.epochs``): CLIP tower (when ``train_encoder``), projector and decoder with
    the caption loss; with ``config.teacher_frames = k`` each snapshot's f_t is the mean over k of
    its B frames (evenly spaced, random offset) instead of all B, a k/B cheaper pass through the
    tower. Phase 2 (``config.head_epochs``): the tower frozen, f_t of every sample over all B
    frames computed once (the same pass gives the students' distillation targets, stored in
    ``teacher.targets.pt``), then projector and decoder trained on them: the decoder learns the
    exact full-B features it will see at inference.

    ``preset``: the :mod:`snapcap.caption.presets` name the configurations came from, recorded
    in ``teacher.pt`` (its students take that preset's training defaults; None: none).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    context = distributed_context(config.device)
    torch.manual_seed(config.seed)
    samples = feed_of(samples, config.workers)
    captioner_config = _with_prefix(captioner_config)
    lm = is_lm_decoder(captioner_config.decoder)
    if vocab is None:
        vocab = codec_for(captioner_config.decoder) if lm else build_vocabulary(samples, config.min_count)
    device = torch.device(config.device)
    model = build_teacher(captioner_config, vocab, device)
    if lm:  # record the model's hash and width: a load with other weights is refused
        captioner_config = replace(captioner_config, decoder=model.decoder.config.to_dict())

    # Auxiliary "bag of words" head (training only, dropped afterwards): from the T snapshot
    # embeddings, predict which vocabulary words the video's reference captions use. A dense
    # signal from the same captions that gets a randomly initialised tower to see colours,
    # shapes and motions much sooner than the caption loss alone (a stand-in for CLIP's
    # image-text pre-training, which the paper relies on).
    bow_targets = _bag_of_words(samples, vocab) if config.bow_weight > 0 else None
    bow_head = None
    if bow_targets is not None:
        bow_head = nn.Linear(captioner_config.T * model.teacher.embed_dim, bow_targets.shape[1]).to(device)

    def loss_fn(indices, epoch):
        frames = _frame_subset(
            rgb_frames(stack_rows(samples, indices, "frames", device)), indices, config.teacher_frames, config.seed, epoch
        )
        captions = encode_caption_batch(samples, indices, vocab, epoch, config.seed, config.max_length).to(device)
        features = model.features(frames)
        cap = model.decoder.loss(model.head(features), captions, label_smoothing=config.label_smoothing)
        if bow_head is None:
            return {"loss": cap}
        embeddings = features if model.temporal is None else features.mean(dim=2)
        target = bow_targets[torch.as_tensor(np.asarray(indices), dtype=torch.long)].to(device)
        target = target / target.sum(dim=1, keepdim=True).clamp_min(1.0)
        bow = -(target * bow_head(embeddings.flatten(1)).log_softmax(dim=1)).sum(dim=1).mean()
        return {"loss": cap + config.bow_weight * bow, "l_cap": cap, "l_bow": bow}

    trainable = [p for p in model.parameters() if p.requires_grad]
    holder: nn.Module = model if bow_head is None else nn.ModuleDict({"model": model, "bow": bow_head})
    if bow_head is not None:
        trainable += list(bow_head.parameters())
    stamp = {
        "kind": "teacher",
        "captioner": captioner_config.to_dict(),
        "train": config.to_dict(),
        "count": len(samples),
        "vocab": len(vocab),
    }
    epochs = config.epochs if config.teacher_epochs is None else config.teacher_epochs
    history = fit(
        "teacher",
        holder,
        [{"params": trainable, "lr": config.lr}],
        loss_fn,
        len(samples),
        epochs,
        config,
        out_dir,
        stamp,
        progress,
        context,
        feed=samples,
    )
    targets = None
    if config.head_epochs > 0:
        targets, head_history = _train_head(
            model, samples, vocab, config, config.head_epochs, epochs, out_dir, dict(stamp, phase=2), progress, context
        )
        history += head_history
    path = out_dir / "teacher.pt"
    if context.main:
        atomic_save(
            path,
            {
                "kind": "snapcap-captioner",
                "name": "teacher",
                "config": captioner_config.to_dict(),
                "vocab": vocab.to_dict(),
                "state": model.state_dict(),
                "history": history,
                "preset": preset,
            },
        )
        if targets is not None:
            _save_targets(path, samples, targets)
    return path


def _train_head(
    model,
    samples,
    vocab,
    config: CaptionTrainConfig,
    head_epochs: int,
    epoch_offset: int,
    out_dir: Path,
    stamp,
    progress,
    context,
):
    """The tower frozen: f_t over all B frames computed once, projector + decoder trained on it."""
    device = next(model.parameters()).device
    model.teacher.freeze()
    # rank 0 computes the targets into a folder (moved beside teacher.pt at the end); the other
    # ranks map its files once it is done
    folder = _work_folder(out_dir) if context.main else None
    try:
        targets = compute_targets(model, samples, device, folder=folder) if context.main else None
    except BaseException:
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
        raise
    folder = context.broadcast(folder)
    if targets is None:
        targets = MappedTargets(folder)
    texts = [{"captions": captions} for captions in captions_of(samples)]  # the head reads captions only

    def head_fn(indices, epoch):
        captions = encode_caption_batch(texts, indices, vocab, epoch + epoch_offset, config.seed, config.max_length).to(device)
        tokens = model.head(target_rows(targets, model.head_key, indices).to(device))
        return {"loss": model.decoder.loss(tokens, captions, label_smoothing=config.label_smoothing)}

    head = list(model.proj.parameters()) + list(model.decoder.parameters())
    if model.temporal is not None:
        head += list(model.temporal.parameters())
    history = fit(
        "teacher-head",
        model,
        [{"params": head, "lr": config.lr}],
        head_fn,
        len(samples),
        head_epochs,
        config,
        out_dir,
        stamp,
        progress,
        context,
    )
    return targets, history


def adapt_teacher(
    samples,
    teacher_path: str | Path,
    out_dir: str | Path,
    config: CaptionTrainConfig = CaptionTrainConfig(),
    head_epochs: int | None = None,
    progress: bool = True,
    decoder: str | None = None,
) -> Path:
    """A trained teacher carried to data of another B (or T), or to another decoder: writes ``out_dir/teacher.pt``.

    The CLIP tower works frame by frame and does not depend on B; what does is the snapshot
    feature f_t (the mean over a snapshot's B frames) that the projector and decoder read. So
    the tower is kept frozen and, as in the teacher's second phase, f_t of every sample over its
    B frames is computed once and projector + decoder are trained on it for ``head_epochs``
    (default ``config.head_epochs``, at least 1) from the given teacher's weights. The same pass
    writes the students' targets (``teacher.targets.pt``). ``snapcap compare`` trains one tower
    and adapts it to every compression ratio this way.

    ``decoder="lm:<name-or-path>"`` puts a frozen pretrained language model
    (:mod:`snapcap.caption.lm`) behind the trained tower: a new projector into the model's
    embedding space is trained, the tower and the language model stay frozen (the paper's
    setting, with this tower standing in for the pretrained CLIP). The new ``teacher.pt`` records
    the source's preset (:func:`train_teacher`'s ``preset``).
    """
    teacher_path, out_dir = Path(teacher_path), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if out_dir.resolve() == teacher_path.parent.resolve():
        raise ConfigError(
            f"adapt_teacher writes {out_dir / 'teacher.pt'}: give another folder than the source teacher's ({teacher_path})"
        )
    context = distributed_context(config.device)
    device = torch.device(config.device)
    model, source_config, vocab = load_native(teacher_path, device=device, expect="teacher")
    preset = model.preset  # the source's preset carries over (its students' training defaults)
    B, T = int(samples[0]["masks"].shape[-3]), int(samples[0]["meas"].shape[-3])
    max_prefix = max(int(source_config.decoder.get("max_prefix", 16)), prefix_length(replace(source_config, B=B, T=T)))
    captioner_config = replace(source_config, B=B, T=T, decoder=dict(source_config.decoder, max_prefix=max_prefix))
    if decoder is not None and decoder != "native":
        settings = lm_decoder_settings(decoder_choice(decoder), int(source_config.decoder.get("max_length", 30)), max_prefix)
        vocab = codec_for(settings)
        torch.manual_seed(config.seed)
        language_decoder = build_decoder(settings, vocab)
        source = model
        model = TeacherCaptioner(
            model.teacher, language_decoder, token_dim=language_decoder.config.width, temporal=source_config.temporal
        ).to(device)
        if source.temporal is not None:  # the order-aware head's temporal encoder carries over (the projector is new)
            model.temporal.load_state_dict(source.temporal.state_dict())
        captioner_config = replace(captioner_config, decoder=model.decoder.config.to_dict())
    elif captioner_config.decoder != source_config.decoder:
        raise ConfigError(
            f"{teacher_path}: its decoder takes at most {source_config.decoder.get('max_prefix')} visual tokens; "
            f"this data needs {prefix_length(captioner_config)} (B={B}, T={T})"
        )
    torch.manual_seed(config.seed)
    epochs = max(1, int(config.head_epochs if head_epochs is None else head_epochs))
    stamp = {
        "kind": "teacher-adapt",
        "source": str(teacher_path),
        "source_stamp": _teacher_stamp(teacher_path),
        "captioner": captioner_config.to_dict(),
        "train": config.to_dict(),
        "count": len(samples),
        "epochs": epochs,
    }
    targets, history = _train_head(model, samples, vocab, config, epochs, 0, out_dir, stamp, progress, context)
    path = out_dir / "teacher.pt"
    if context.main:
        atomic_save(
            path,
            {
                "kind": "snapcap-captioner",
                "name": "teacher",
                "config": captioner_config.to_dict(),
                "vocab": vocab.to_dict(),
                "state": model.state_dict(),
                "history": history,
                "adapted_from": str(teacher_path),
                "preset": preset,
            },
        )
        _save_targets(path, samples, targets)
    return path


# --- the teacher's distillation targets, computed once ---------------------------------------


def _targets_dir(teacher_path: Path) -> Path:
    return teacher_path.with_name(teacher_path.stem + ".targets")


TARGET_KEYS = ("f_t_conv", "f_t", "f_t_frames")
"""The stored targets: snapshot means (f_t_conv, f_t) and, of an order-aware teacher, the per-frame tokens."""


def sample_keys(samples) -> list[list[Any]]:
    """What identifies a sample's frames: for samples of dataset files, the file's checksum and
    the row (:func:`~snapcap.datasets.samples.sample_identities`: no frame is read, so checking a
    cache costs no pass over the corpus); for others, the id, the frames' shape and a checksum."""
    identities = sample_identities(samples)
    if identities is not None:
        return identities
    keys = []
    for sample in samples:
        frames = torch.as_tensor(sample["frames"])
        keys.append(
            [
                str(sample.get("video_id", "")),
                int(sample.get("index", -1)),
                list(frames.shape),
                round(float(frames.double().sum()), 3),
            ]
        )
    return keys


def _teacher_stamp(teacher_path: Path) -> list[int]:
    info = teacher_path.stat()
    return [int(info.st_mtime_ns), int(info.st_size)]


def _save_targets(teacher_path: Path, samples, targets: MappedTargets) -> None:
    """Move the targets :func:`_train_head` computed into its work folder beside the teacher
    (``teacher.targets/``: one .npy per array and ``meta.json``, a
    :mod:`snapcap.caption.rowcache` folder), whole or not at all."""
    work = Path(targets.folder)
    try:
        finish_rows(work, _targets_dir(teacher_path), {"teacher": _teacher_stamp(teacher_path), "keys": sample_keys(samples)})
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise


def _work_folder(parent: Path) -> Path:
    """An empty ``parent/.targets-work/``, where targets are written before they are moved beside
    the teacher (one writer per folder: anything there is a killed run's leftover)."""
    work = Path(parent) / ".targets-work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    return work


class MappedTargets(dict):
    """Target arrays memory-mapped from ``folder`` (RAM does not grow with the corpus)."""

    def __init__(self, folder: Path):
        super().__init__({key: value for key, value in load_rows(folder).items() if key in TARGET_KEYS})
        self.folder = folder


def target_rows(targets: Mapping[str, Any], key: str, rows) -> torch.Tensor:
    """Rows of a target array (a tensor, or a memory-mapped array: only those rows are read)."""
    return rows_of(targets[key], rows)


def _target_chunk(teacher_model, samples, device):
    def compute(rows: range) -> dict[str, torch.Tensor]:
        frames = rgb_frames(stack_rows(samples, rows, "frames", device))
        if teacher_model.temporal is None:
            conv, embed = teacher_model.teacher.snapshot_targets(frames, out_device="cpu")
            return {"f_t_conv": conv, "f_t": embed}
        # (n, T, B, d + 4): the embeddings and where each frame differs; their means are the paper's targets
        tokens, conv = frame_tokens(teacher_model.teacher, frames, rgb=True, with_conv=True)
        embed = tokens[..., : teacher_model.teacher.embed_dim].mean(dim=2)
        return {"f_t_conv": conv.mean(dim=2).cpu(), "f_t": embed.cpu(), "f_t_frames": tokens.cpu()}

    return compute


def compute_targets(
    teacher_model, samples, device, chunk: int = 32, folder: str | Path | None = None, progress: bool = False
) -> Mapping[str, Any]:
    """The frozen teacher's (f_t_conv, f_t) of every sample over all its B frames: one pass,
    one chunk of frames in memory at a time.

    Returns ``{"f_t_conv": (N, T, c, h, w), "f_t": (N, T, d)}`` (and ``"f_t_frames": (N, T, B, d)``
    for an order-aware teacher): torch tensors on the CPU, or,
    with ``folder``, arrays written there chunk by chunk as .npy files and memory-mapped
    (:class:`MappedTargets`), so that memory stays bounded at any corpus size; a rerun into the
    same folder resumes after the last flushed chunk (:func:`snapcap.caption.rowcache.write_rows`).
    """
    compute = _target_chunk(teacher_model, samples, device)
    with torch.no_grad():
        if folder is not None:
            write_rows(Path(folder), len(samples), compute, chunk, progress, "teacher targets")
            return MappedTargets(Path(folder))
        parts = [compute(range(start, min(len(samples), start + chunk))) for start in range(0, len(samples), chunk)]
    return {key: torch.cat([part[key] for part in parts]) for key in parts[0]}


def teacher_targets(
    teacher_model,
    teacher_path: str | Path,
    samples,
    device,
    context: DistributedContext | None = None,
    progress: bool = False,
    chunk: int = 32,
) -> Mapping[str, Any]:
    """:func:`compute_targets`, read (memory-mapped) from ``teacher.targets/`` when this teacher
    wrote it for these samples (same files and rows, or ids, shapes and frame checksums), else
    computed and stored there first (:func:`snapcap.caption.rowcache.cached_rows`: resumable
    after a kill; under torchrun rank 0 computes and the other ranks map its files).
    """
    teacher_path = Path(teacher_path)
    stamp = {"teacher": _teacher_stamp(teacher_path), "keys": sample_keys(samples)}
    with torch.no_grad():
        arrays = cached_rows(
            _targets_dir(teacher_path),
            stamp,
            len(samples),
            _target_chunk(teacher_model, samples, device),
            context,
            chunk=chunk,
            progress=progress,
            desc="teacher targets",
        )
    return MappedTargets(_targets_dir(teacher_path)) if all(isinstance(a, np.ndarray) for a in arrays.values()) else arrays


# --- student ----------------------------------------------------------------------------------


def build_student(teacher_model, captioner_config, device="cpu"):
    """The student, initialised from the trained teacher: S and Proj copied, decoder shared."""
    teacher = teacher_model.teacher
    config = StudentConfig.from_dict(
        dict(captioner_config.student, B=captioner_config.B, token_dim=teacher_model.decoder.config.width)
    )
    if teacher_model.temporal is not None:  # the order-aware student: per-frame tokens from g's frames
        student = OrderAwareStudent(
            config,
            teacher.conv_channels,
            teacher.grid,
            teacher.copy_vit_tail(),
            teacher.embed_dim,
            teacher,
            teacher_model.temporal,
        )
    else:
        student = SnapCapStudent(config, teacher.conv_channels, teacher.grid, teacher.copy_vit_tail(), teacher.embed_dim)
    student.proj.load_state_dict(copy_module(teacher_model.proj).state_dict())
    return SnapCapCaptioner(student, copy_module(teacher_model.decoder)).to(device)  # a frozen lm: model is shared, not copied


def train_student(
    samples,
    teacher_path: str | Path,
    out_dir: str | Path,
    mode: str = "snapcap",
    config: CaptionTrainConfig = CaptionTrainConfig(),
    student: dict[str, Any] | None = None,
    progress: bool = True,
) -> Path:
    """Train a student variant (``snapcap``, ``baseline``, ``reg-only``, ``dis-only``).

    Returns the path of ``<mode>.pt``. The samples' measurements must be at the student's
    image size (the teacher's), with their frames (for L_reg and the teacher's targets).
    """
    if mode not in STUDENT_MODES:
        raise ConfigError(f"unknown student mode {mode!r}; expected one of {', '.join(STUDENT_MODES)}")
    losses = STUDENT_MODES[mode]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    context = distributed_context(config.device)
    device = torch.device(config.device)
    samples = feed_of(samples, config.workers)
    teacher_model, teacher_config, vocab = load_native(teacher_path, device=device, expect="teacher")
    if losses["temporal"] != is_temporal(teacher_config):
        kind = "an order-aware" if losses["temporal"] else "a mean (paper)"
        raise ConfigError(
            f"the {mode} student needs {kind} teacher; {teacher_path} is "
            f"{'order-aware' if is_temporal(teacher_config) else 'the paper’s mean teacher'} "
            f"(train it with {'--preset tiny-temporal' if losses['temporal'] else 'a preset without temporal'}, "
            f"or train {'snapcap-temporal' if is_temporal(teacher_config) else 'snapcap'} instead)"
        )
    student_settings = dict(student or teacher_config.student)
    if losses["temporal"]:  # it demosaics g's frames for the tower: the data's colour filter
        student_settings["bayer"] = samples[0].get("bayer")
    captioner_config = replace(teacher_config, student=student_settings)
    torch.manual_seed(config.seed)
    model = build_student(teacher_model, captioner_config, device)
    teacher_model.eval()
    for parameter in teacher_model.parameters():
        parameter.requires_grad_(False)
    first = samples[0]
    size = model.student.config.image_size
    if tuple(first["meas"].shape[-2:]) != (size, size):
        raise ShapeError(
            f"the student works at {size}x{size} (the teacher's image size); the data is {tuple(first['meas'].shape[-2:])}"
        )
    bayer = first.get("bayer")
    if model.student.patch is not None and config.shortcut_init not in ("fit", "teacher", "zero"):
        raise ConfigError(f"shortcut_init must be 'fit', 'teacher' or 'zero', got {config.shortcut_init!r}")
    if model.student.patch is not None and config.shortcut_init == "teacher":  # every mode, the baseline too
        tower = teacher_model.teacher
        model.student.init_shortcut(tower.visual.conv1.weight, tower.pixel_mean.flatten(), tower.pixel_std.flatten(), bayer)
    elif model.student.patch is not None:  # "fit" (done below, with the distillation targets) or "zero"
        nn.init.zeros_(model.student.patch.weight)
        nn.init.zeros_(model.student.patch.bias)
    history: list[dict[str, Any]] = []
    stamp_base = {
        "mode": mode,
        "captioner": captioner_config.to_dict(),
        "train": config.to_dict(),
        "count": len(samples),
        "teacher": str(teacher_path),
    }
    student = model.student

    if losses["reg"]:

        def stage1(indices, epoch):
            meas = stack_rows(samples, indices, "meas", device)
            masks = _masks(samples, indices, device)
            target = mosaic_frames(stack_rows(samples, indices, "frames", device), bayer)
            latent = student.video_latent(meas, masks)
            estimate = student.reconstruct(latent)
            return {"loss": nn.functional.l1_loss(estimate, target.reshape(estimate.shape))}

        encoder_params = (
            list(student.stem.parameters())
            + list(student.encoder.parameters())
            + list(student.decoder.parameters())
            + list(student.head.parameters())
        )
        history += fit(
            f"{mode}-stage1",
            student,
            [{"params": encoder_params, "lr": config.lr_encoder}],
            stage1,
            len(samples),
            config.stage1_epochs,
            config,
            out_dir,
            dict(stamp_base, stage=1),
            progress,
            context,
            feed=samples,
        )

    cached = None
    if losses["dis"] and config.cache_targets:
        # rank 0 computes and stores the targets; the other ranks then map its files
        cached = teacher_targets(teacher_model, teacher_path, samples, device, context, progress=progress and context.main)
    if (
        losses["dis"]
        and student.patch is not None
        and config.shortcut_init == "fit"
        and not (out_dir / f"{mode}-stage2.ckpt").exists()
    ):
        # L_conv is quadratic in the linear shortcut P while Conv2's output is still zero:
        # start stage 2 from its exact minimiser (a ridge regression over the training patches).
        # Chunk by chunk from the memory-mapped targets: only the normal equations are kept.
        targets = cached if cached is not None else compute_targets(teacher_model, samples, device)
        chunks = (
            (
                _ybar(samples, range(i, min(len(samples), i + 64)), device).cpu(),
                torch.from_numpy(np.array(targets["f_t_conv"][i : i + 64])).flatten(0, 1),  # a copy: the map is read-only
            )
            for i in range(0, len(samples), 64)
        )
        student.fit_shortcut(chunks, config.shortcut_ridge)

    def stage2(indices, epoch):
        meas = stack_rows(samples, indices, "meas", device)
        masks = _masks(samples, indices, device)
        out = student(meas, masks)
        values: dict[str, torch.Tensor] = {}
        total = torch.zeros((), device=device)
        if losses["dis"]:
            if cached is not None:
                rows = torch.as_tensor(np.asarray(indices), dtype=torch.long)
                f_t_conv, f_t = target_rows(cached, "f_t_conv", rows), target_rows(cached, "f_t", rows)
                f_t_frames = target_rows(cached, "f_t_frames", rows) if losses["temporal"] else None
            else:
                with torch.no_grad():
                    targets = _target_chunk(teacher_model, samples, device)(indices)
                    f_t_conv, f_t, f_t_frames = targets["f_t_conv"], targets["f_t"], targets.get("f_t_frames")
            conv = nn.functional.mse_loss(out["f_s_conv"], f_t_conv.to(device))
            emb = nn.functional.mse_loss(out["f_s"], f_t.to(device))
            values["l_conv"], values["l_emb"] = conv, emb
            total = total + conv + config.alpha * emb
            if f_t_frames is not None:  # each ordered token to the teacher's token of its frame
                values["l_frames"] = nn.functional.mse_loss(out["frame_tokens"], f_t_frames.to(device))
                total = total + config.frame_weight * values["l_frames"]
        if losses["temporal"] and losses["reg"]:  # g's frames feed the tokens: they stay frames
            target = mosaic_frames(stack_rows(samples, indices, "frames", device), bayer)
            values["l_reg"] = nn.functional.l1_loss(out["frames"], target.reshape(out["frames"].shape))
            total = total + config.frame_reg_weight * values["l_reg"]
        captions = encode_caption_batch(samples, indices, vocab, epoch, config.seed, config.max_length).to(device)
        cap = model.decoder.loss(out["tokens"], captions, label_smoothing=config.label_smoothing)
        values["l_cap"] = cap
        weight = config.beta if losses["dis"] else config.baseline_caption_weight
        values["loss"] = total + weight * cap
        return values

    groups = [
        {"params": list(student.stem.parameters()) + list(student.encoder.parameters()), "lr": config.lr_encoder},
        {
            "params": list(student.conv2.parameters()) + (list(student.patch.parameters()) if student.patch is not None else []),
            "lr": config.lr_conv2,
        },
        {"params": list(student.tail.parameters()), "lr": config.lr_tail},
        {"params": list(student.proj.parameters()), "lr": config.lr_proj},
    ]
    if losses["temporal"]:  # g's frames and the temporal encoder feed the tokens
        groups += [
            {"params": list(student.decoder.parameters()) + list(student.head.parameters()), "lr": config.lr_encoder},
            {"params": list(student.temporal.parameters()), "lr": config.lr_proj},
        ]
    history += fit(
        f"{mode}-stage2",
        student,
        groups,
        stage2,
        len(samples),
        config.epochs + (config.stage1_epochs if config.match_epochs and not losses["reg"] else 0),
        config,
        out_dir,
        dict(stamp_base, stage=2),
        progress,
        context,
        feed=samples,
    )
    path = out_dir / f"{mode}.pt"
    if context.main:
        atomic_save(
            path,
            {
                "kind": "snapcap-captioner",
                "name": mode,
                "config": captioner_config.to_dict(),
                "vocab": vocab.to_dict(),
                "state": model.state_dict(),
                "history": history,
                "teacher": str(teacher_path),
            },
        )
    return path


# --- loading ----------------------------------------------------------------------------------


def load_native(path: str | Path, device="cpu", expect: str | None = None):
    """The registry's load function of snapcap's own captioners: (model, CaptionerConfig, Vocabulary).

    Any captioner checkpoint, zoo models included, loads with :func:`snapcap.caption.registry.load_captioner`.
    The model's ``name`` is the checkpoint's (``teacher``, ``snapcap``...) and its ``preset`` the
    captioner preset a teacher recorded (None when it recorded none).

    Raises:
        DataFileError: not a snapcap captioner checkpoint, a damaged one (missing or malformed
            entries, weights that do not fit, non-finite weights).
        ConfigError: a student where a teacher is expected; a language model whose weights
            differ from those it was trained with.
    """
    path = Path(path)
    state = load_checkpoint(path)
    if not isinstance(state, dict) or state.get("kind") != "snapcap-captioner":
        raise DataFileError(
            f"{path}: not a snapcap captioner checkpoint "
            f"(kind {state.get('kind') if isinstance(state, dict) else type(state).__name__!r})"
        )
    try:
        config = CaptionerConfig(**state["config"])
        vocab = codec_from_dict(state["vocab"])
        name = str(state["name"])
        weights = state["state"]
        if not isinstance(weights, dict):
            raise TypeError(f"its weights are a {type(weights).__name__}, not a state dict")
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        if isinstance(exc, SnapcapError) and not isinstance(exc, InvalidValueError):
            raise
        raise DataFileError(f"{path}: damaged captioner checkpoint ({exc.__class__.__name__}: {exc})") from None
    if expect == "teacher" and name != "teacher":
        raise ConfigError(f"{path}: is a {name!r} captioner; a teacher checkpoint (teacher.pt) is needed here")
    bad = [
        key
        for key, value in weights.items()
        if torch.is_tensor(value) and value.is_floating_point() and not bool(torch.isfinite(value).all())
    ]
    if bad:
        raise DataFileError(f"{path}: damaged captioner checkpoint (non-finite weights in {bad[:3]})")
    try:
        teacher = build_teacher(replace(config, train_encoder=False), vocab, device)
        model = teacher if name == "teacher" else build_student(teacher, config, device)
        missing, unexpected = model.load_state_dict(weights, strict=False)
    except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as exc:
        if isinstance(exc, SnapcapError):
            raise
        raise DataFileError(f"{path}: damaged captioner checkpoint ({exc.__class__.__name__}: {exc})") from None
    if missing or unexpected:
        raise DataFileError(
            f"{path}: weights do not fit the recorded architecture (missing {missing[:3]}, unexpected {unexpected[:3]})"
        )
    model.eval()
    model.name = name
    preset = state.get("preset")  # the preset a teacher was trained from (None: not recorded)
    model.preset = None if preset is None else str(preset)
    return model, config, vocab
