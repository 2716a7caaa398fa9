"""Training the deep reconstructor end to end on simulated snapshots, resumable.

Training samples are the sample dicts of :mod:`snapcap.datasets.torch_data` (from dataset files
or simulated on the fly): each step draws, for every batch element, a sample, one of its T
snapshots and a random patch (even offsets keep the Bayer pattern aligned; the CACTI model is
per pixel, so a patch of the snapshot is the snapshot of the patch). The target is the gray or
Bayer-mosaic frames. The patch drawn at global position i depends only on (seed, i), so a run
resumed from a checkpoint sees exactly the data an uninterrupted run would.

When the network starts from GAP-TV (``UnfoldConfig.init_iterations > 0``), that initial
estimate is computed once for every whole training snapshot (when the cache fits in
``INITIAL_CACHE_BYTES``) and cropped with the patch, so a step does not rerun GAP-TV. Adam with a
cosine learning rate, the global gradient norm clipped at ``GRADIENT_CLIP``, an L1 loss on every
stage (intermediate stages weighted 1/2).

Checkpoints (model, optimiser, scheduler, step, history) are written to a temporary file and
renamed, every ``checkpoint_every`` steps and at the end.
"""

from __future__ import annotations

import json
import math
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from snapcap.cacti import functional as F
from snapcap.cacti.bayer import mosaic
from snapcap.distributed import distributed_context
from snapcap.errors import ConfigError, DataFileError, ShapeError, SnapcapError
from snapcap.fileio import atomic_path
from snapcap.recon.nets import create_net, is_colour, net_config, net_entry
from snapcap.recon.nets.registry import NET_CHECKPOINT_KIND
from snapcap.recon.nets.unfold import UNFOLD_PRESETS, UnfoldConfig, UnfoldingNet

__all__ = [
    "TrainReconConfig",
    "net_training",
    "PatchSampler",
    "initial_estimates",
    "train_recon",
    "load_reconstructor",
    "save_checkpoint",
]

GRADIENT_CLIP = 0.1  # on the global gradient norm: keeps a rare bad batch from undoing the refinement

INITIAL_CACHE_BYTES = 1 << 30
"""Largest cache of whole-snapshot initial estimates that training keeps in memory."""


@dataclass(frozen=True)
class TrainReconConfig:
    """What to train and how.

    ``arch`` ``unfold`` trains snapcap's unfolding network (:class:`UnfoldConfig` ``model``;
    L1 on every stage, cosine learning rate, gradient norm clipped). Another ``arch`` is a
    published network or preset of :mod:`snapcap.recon.nets` built with the constructor
    keywords ``net``; :func:`net_training` gives its authors' recipe. ``loss`` ``rmse`` is their
    √MSE of the final output, ``l1-stages`` snapcap's; ``schedule`` ``cosine`` or ``constant``;
    ``clip`` the gradient-norm bound (None: none); ``flips`` random horizontal and vertical flips
    of gray patches (a flip would move a Bayer mosaic off its pattern); ``amp`` bf16 autocast.
    """

    model: UnfoldConfig = field(default_factory=lambda: UNFOLD_PRESETS["tiny"])
    steps: int = 800
    batch_size: int = 8
    patch: int = 48
    lr: float = 2e-3
    weight_decay: float = 0.0
    checkpoint_every: int = 100
    log_every: int = 20
    seed: int = 0
    device: str = "cpu"
    arch: str = "unfold"
    net: Mapping[str, Any] = field(default_factory=dict)
    loss: str = "l1-stages"
    schedule: str = "cosine"
    clip: float | None = GRADIENT_CLIP
    flips: bool = False
    amp: bool = False

    def __post_init__(self):
        if self.loss not in ("l1-stages", "rmse"):
            raise ConfigError(f"loss {self.loss!r}: expected l1-stages or rmse")
        if self.schedule not in ("cosine", "constant"):
            raise ConfigError(f"schedule {self.schedule!r}: expected cosine or constant")
        if self.arch != "unfold" and self.loss == "l1-stages":
            raise ConfigError(f"loss l1-stages is the unfolding network's; {self.arch} trains with rmse")
        object.__setattr__(self, "net", dict(self.net))

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["model"] = self.model.to_dict()
        data["net"] = dict(self.net)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainReconConfig:
        data = dict(data)
        data["model"] = UnfoldConfig.from_dict(data["model"])
        return cls(**data)


def net_training(arch: str, **overrides: Any) -> TrainReconConfig:
    """The training of a published network (``efficientsci-tiny``, ``stformer``...) with its
    authors' recipe, as the CACTI toolbox trains them all: √MSE of the final output, Adam at a
    constant 1e-4, patches of the recipe's crop size (128, BIRNAT 256), random flips; no
    adversarial term for BIRNAT (the toolbox's recipe, not its paper's). ``overrides`` are
    :class:`TrainReconConfig` fields (``net`` adds constructor keywords to the preset's)."""
    entry = net_entry(arch)
    recipe = dict(entry.module.TRAINING_RECIPES.get(arch) or next(iter(entry.module.TRAINING_RECIPES.values())))
    recipe = dict(recipe.get("toolbox", recipe))
    crop = recipe.get("crop_size", 128)
    crop = int(crop[0] if isinstance(crop, (tuple, list)) else crop)
    net = dict(overrides.pop("net", {}))
    net_config(arch, **net)  # unknown keywords fail here, before any work
    base = {"arch": arch, "net": net, "loss": "rmse", "schedule": "constant", "clip": None, "flips": True}
    base.update(lr=float(recipe.get("lr", 1e-4)), patch=crop, batch_size=int(recipe.get("batch_size", 1)))
    return TrainReconConfig(**{**base, **overrides})


class PatchSampler:
    """Deterministic random patches ``(meas (H, W), masks (B, H, W), target (B, H, W), initial)``.

    ``initial`` is the patch of ``initials[sample]`` (``(T, B, H, W)``, the network's initial
    estimate of each whole snapshot) when ``initials`` is given, else None. With ``flips``, gray
    patches are flipped left-right and up-down at random (measurement, masks, target and initial
    alike: the CACTI model is per pixel); with ``rgb`` the target of RGB samples is the RGB frames
    ``(B, H, W, 3)`` instead of the mosaic the sensor saw.
    """

    def __init__(
        self,
        samples: Sequence[dict[str, Any]] | Any,
        patch: int,
        seed: int = 0,
        initials: Sequence[Any] | None = None,
        flips: bool = False,
        rgb: bool = False,
    ):
        if len(samples) == 0:
            raise ConfigError("the training data holds no sample")
        self.samples = samples
        self.patch = patch
        self.seed = seed
        self.initials = initials
        self.flips = flips
        self.rgb = rgb
        first = samples[0]
        self.height, self.width = first["meas"].shape[-2:]
        if patch > min(self.height, self.width):
            raise ShapeError(f"patch {patch} is larger than the frames ({self.height}x{self.width})")

    def __call__(self, position: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
        rng = np.random.default_rng([self.seed, position])
        index = int(rng.integers(len(self.samples)))
        sample = self.samples[index]
        if "frames" not in sample:
            raise DataFileError("training the reconstructor needs the frames; make the dataset without --no-frames")
        snapshot = int(rng.integers(sample["meas"].shape[0]))
        top = 2 * int(rng.integers((self.height - self.patch) // 2 + 1))
        left = 2 * int(rng.integers((self.width - self.patch) // 2 + 1))
        window = (slice(top, top + self.patch), slice(left, left + self.patch))
        frames = sample["frames"][snapshot]
        gray = frames.ndim == 3
        if not gray and self.rgb:
            frames = torch.as_tensor(frames[..., window[0], window[1], :])
        elif not gray:  # RGB -> the mosaic the sensor saw
            frames = mosaic(frames[..., window[0], window[1], :], sample.get("bayer") or "RGGB")
        else:
            frames = frames[..., window[0], window[1]]
        masks = sample["masks"]
        initial = None if self.initials is None else self.initials[index][snapshot][..., window[0], window[1]]
        meas, masks = sample["meas"][snapshot][window], masks[..., window[0], window[1]]
        if self.flips and gray:
            axes = [axis for axis, draw in ((-1, rng.random()), (-2, rng.random())) if draw < 0.5]
            if axes:
                meas, masks, frames = (torch.flip(torch.as_tensor(t), axes) for t in (meas, masks, frames))
                initial = None if initial is None else torch.flip(torch.as_tensor(initial), axes)
        return meas, masks, frames, initial


@torch.no_grad()
def initial_estimates(
    model: UnfoldingNet, samples: Sequence[dict[str, Any]] | Any, device: torch.device, max_bytes: int
) -> list[torch.Tensor] | None:
    """The network's initial estimate (GAP-TV) of every whole training snapshot, on the CPU.

    Computed once, a few samples per batch, so that a training step crops it instead of
    running GAP-TV on its patches. None when the network starts from A⁺y (nothing worth
    caching) or when the cache would exceed ``max_bytes``; the network then computes the
    estimate of each patch itself.
    """
    if model.config.init_iterations == 0:
        return None
    first = samples[0]
    snapshots, (height, width) = first["meas"].shape[0], first["meas"].shape[-2:]
    if len(samples) * snapshots * model.config.B * height * width * 4 > max_bytes:
        return None
    initials: list[torch.Tensor] = []
    chunk = max(1, 64 // max(snapshots, 1))
    for start in range(0, len(samples), chunk):
        group = [samples[index] for index in range(start, min(start + chunk, len(samples)))]
        if any(tuple(sample["meas"].shape) != tuple(first["meas"].shape) for sample in group):
            return None
        meas = torch.cat([torch.as_tensor(sample["meas"]) for sample in group]).to(device, torch.float32)
        masks = torch.cat(
            [torch.as_tensor(sample["masks"]).expand(snapshots, *sample["masks"].shape[-3:]) for sample in group]
        ).to(device, torch.float32)
        estimate = model.initial_estimate(meas, masks, F.aat_diag(masks)).cpu()
        initials.extend(estimate.reshape(len(group), snapshots, *estimate.shape[1:]).unbind(0))
    return initials


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """torch.save through :func:`snapcap.fileio.atomic_path`: a checkpoint on disk is always whole."""
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def _psnr(estimate: torch.Tensor, target: torch.Tensor) -> float:
    mse = float(torch.mean((estimate.clamp(0, 1) - target) ** 2))
    return 10 * math.log10(1 / mse) if mse > 0 else float("inf")


def train_recon(
    samples,
    out_dir: str | Path,
    config: TrainReconConfig = TrainReconConfig(),
    resume: bool = True,
    progress: bool = True,
    validation=None,
) -> dict[str, Any]:
    """Train an :class:`UnfoldingNet`; returns the final record (history, paths, seconds).

    Args:
        samples: a sequence of sample dicts (``MeasurementDataset``, ``SimulatedDataset``).
        out_dir: gets ``checkpoint.pt`` (resumable state), ``model.pt`` (weights and config)
            and ``log.jsonl`` (one line per logged step).
        resume: continue from ``out_dir/checkpoint.pt`` when it exists (a different config
            is refused).
        validation: optional sample dicts; PSNR on them is logged at each checkpoint.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    checkpoint_path = out_dir / "checkpoint.pt"
    context = distributed_context(config.device)
    device = torch.device(config.device)
    torch.manual_seed(config.seed)
    unfold = config.arch == "unfold"
    model = (UnfoldingNet(config.model) if unfold else create_net(config.arch, **config.net)).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    if config.schedule == "cosine":
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(config.steps, 1), eta_min=config.lr * 0.05)
    else:
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    step, history = 0, []
    if resume and checkpoint_path.exists():
        state = _load(checkpoint_path)
        if not isinstance(state, dict):
            raise DataFileError(f"{checkpoint_path}: holds a {type(state).__name__}, not a training checkpoint; remove it")
        if state.get("config") != config.to_dict():
            raise ConfigError(
                f"{checkpoint_path}: was written with another configuration; use another output folder or resume=False"
            )
        try:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            step, history = int(state["step"]), list(state["history"])
        except (KeyError, TypeError, ValueError, RuntimeError, AttributeError, IndexError) as exc:
            raise DataFileError(
                f"{checkpoint_path}: damaged training checkpoint ({exc.__class__.__name__}: {_one_line(exc)}); "
                "remove it to start again"
            ) from exc
    first = samples[0]
    if unfold and first["masks"].shape[-3] != config.model.B:
        raise ShapeError(f"the data has B={first['masks'].shape[-3]} but the network is configured for B={config.model.B}")
    colour = not unfold and is_colour(config.arch, **config.net)
    initials = initial_estimates(model, samples, device, INITIAL_CACHE_BYTES) if unfold else None
    sampler = PatchSampler(samples, config.patch, config.seed, initials, flips=config.flips, rgb=colour)
    started = time.perf_counter()
    # under torchrun each rank takes its share of every batch (the same patches as one process)
    # and DistributedDataParallel averages the gradients; rank 0 alone writes
    if context.active and config.batch_size < context.world:
        raise ConfigError(f"batch_size {config.batch_size}: each of the {context.world} processes needs a patch per step")
    runner = DistributedDataParallel(model) if context.active else model
    log = open(out_dir / "log.jsonl", "a", encoding="utf-8") if context.main else None
    try:
        model.train()
        shown = progress and context.main
        with tqdm(total=config.steps, initial=step, desc="train recon", unit="step", disable=not shown) as bar:
            while step < config.steps:
                batch = [sampler(step * config.batch_size + j) for j in context.shard(config.batch_size)]
                meas = torch.stack([b[0] for b in batch]).to(device, torch.float32)
                masks = torch.stack([b[1] for b in batch]).to(device, torch.float32)
                target = torch.stack([b[2] for b in batch]).to(device, torch.float32)
                initial = None if batch[0][3] is None else torch.stack([b[3] for b in batch]).to(device, torch.float32)
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.amp):
                    if unfold:
                        estimate, stages = runner(meas, masks, return_stages=True, initial=initial)
                    else:
                        estimate, stages = runner(meas, masks), None
                if stages is not None:
                    loss = sum(
                        torch.nn.functional.l1_loss(s.float(), target) * (0.5 if i < len(stages) - 1 else 1.0)
                        for i, s in enumerate(stages)
                    )
                else:  # the authors' √MSE of the final output
                    loss = torch.sqrt(torch.nn.functional.mse_loss(estimate.float(), target))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if config.clip is not None:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip)
                optimizer.step()
                scheduler.step()
                step += 1
                bar.update(1)
                if step % config.log_every == 0 or step == config.steps:
                    entry = {
                        "step": step,
                        "loss": float(loss.detach()),
                        "psnr": _psnr(estimate.detach(), target),
                        "lr": scheduler.get_last_lr()[0],
                    }
                    history.append(entry)
                    if log is not None:
                        log.write(json.dumps(entry) + "\n")
                        log.flush()
                    bar.set_postfix(loss=f"{entry['loss']:.4f}", psnr=f"{entry['psnr']:.1f}")
                if context.main and (step % config.checkpoint_every == 0 or step == config.steps):
                    if validation is not None:
                        history.append({"step": step, "val_psnr": evaluate(model, validation, device, rgb=colour)})
                        model.train()
                    save_checkpoint(
                        checkpoint_path,
                        {
                            "model": model.state_dict(),
                            "optimizer": optimizer.state_dict(),
                            "scheduler": scheduler.state_dict(),
                            "step": step,
                            "history": history,
                            "config": config.to_dict(),
                        },
                    )
    finally:
        if log is not None:
            log.close()
    model.eval()
    if context.main:
        if unfold:
            payload = {
                "kind": "snapcap-unfold",
                "model": model.state_dict(),
                "config": config.model.to_dict(),
                "train": config.to_dict(),
                "history": history,
            }
        else:  # readable as an official checkpoint (model_state_dict) and by reconstruct(method=...)
            payload = {
                "kind": NET_CHECKPOINT_KIND,
                "arch": config.arch,
                "config": net_config(config.arch, **config.net),
                "model_state_dict": model.state_dict(),
                "train": config.to_dict(),
                "history": history,
            }
        save_checkpoint(out_dir / "model.pt", payload)
    context.barrier()
    return {
        "model": out_dir / "model.pt",
        "checkpoint": checkpoint_path,
        "history": history,
        "steps": step,
        "seconds": time.perf_counter() - started,
    }


@torch.no_grad()
def evaluate(model: torch.nn.Module, samples, device=None, rgb: bool = False) -> float:
    """Mean PSNR (dB) of the model over every snapshot of the given samples (mosaic targets,
    or RGB ones for a colour network: ``rgb``)."""
    model.eval()
    device = device or next(model.parameters()).device
    values = []
    for sample in samples:
        frames = sample["frames"]
        target = mosaic(frames, sample.get("bayer") or "RGGB") if frames.ndim == 5 and not rgb else frames
        estimate = model(sample["meas"].to(device, torch.float32), sample["masks"].to(device, torch.float32))
        values.extend(_psnr(estimate[t].cpu(), target[t]) for t in range(target.shape[0]))
    return float(np.mean(values))


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300]


def _load(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise DataFileError(f"{path}: no such checkpoint")
    try:
        with warnings.catch_warnings():  # torch warns about what damaged bytes look like; the error says it
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise DataFileError(f"{path}: not a readable torch checkpoint ({exc.__class__.__name__}: {exc})") from exc


def load_reconstructor(path: str | Path, device: str = "cpu") -> UnfoldingNet:
    """Load a trained :class:`UnfoldingNet` from ``model.pt`` (or a training ``checkpoint.pt``)."""
    path = Path(path)
    state = _load(path)
    if not isinstance(state, dict) or "model" not in state or "config" not in state:
        raise DataFileError(f"{path}: not a snapcap reconstructor checkpoint (expected keys 'model' and 'config')")
    config = state["config"]
    weights = state["model"]
    if not isinstance(config, dict) or not isinstance(weights, dict):
        raise DataFileError(f"{path}: damaged reconstructor checkpoint ('config' and 'model' must be dicts)")
    try:
        config = UnfoldConfig.from_dict(config["model"] if "model" in config and isinstance(config["model"], dict) else config)
        with torch.device("meta"):  # the architecture's shapes, allocating nothing (a damaged size may be huge)
            expected = {name: tuple(value.shape) for name, value in UnfoldingNet(config).state_dict().items()}
    except (TypeError, ValueError, RuntimeError, OverflowError, SnapcapError) as exc:  # unknown fields, impossible sizes
        raise DataFileError(f"{path}: the recorded architecture is damaged ({exc.__class__.__name__}: {_one_line(exc)})") from exc
    found = {name: tuple(value.shape) for name, value in weights.items() if isinstance(value, torch.Tensor)}
    missing = [name for name in expected if name not in found]
    unexpected = [name for name in weights if name not in expected]
    mismatched = [name for name in expected if name in found and found[name] != expected[name]]
    if missing or unexpected or mismatched:
        raise DataFileError(
            f"{path}: weights do not fit the recorded architecture "
            f"(missing {missing[:3]}, unexpected {unexpected[:3]}, other shapes {mismatched[:3]})"
        )
    model = UnfoldingNet(config)
    model.load_state_dict(weights)
    bad = [name for name, value in model.state_dict().items() if value.is_floating_point() and not torch.isfinite(value).all()]
    if bad:
        raise DataFileError(f"{path}: the weights {bad[:3]} hold NaN or infinite values; the checkpoint is damaged")
    return model.to(device).eval()
