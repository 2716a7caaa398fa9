"""The captioners snapcap compares, built from the teacher, the student and the decoder.

* :class:`TeacherCaptioner`: CLIP image encoder on the true frames; each snapshot's B frames
  give f_t = mean_k T(X_k) ∈ R^d, a projector maps it to a token of the decoder's width D, and
  the T tokens of a video condition the caption decoder. It is the "traditional" pipeline
  (upper bound) and the captioner of the two-stage pipeline.
* :class:`SnapCapCaptioner`: the one-stage student (:mod:`snapcap.caption.student`) in front of
  the (frozen) decoder trained with the teacher: captions straight from (Y, C). The baseline is
  the same network trained with the caption loss only.
* :class:`TwoStageCaptioner`: any :mod:`snapcap.recon` method, then the teacher captioner.

Configs are dataclasses; :func:`snapcap.caption.registry.create_captioner` builds them by name.
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from snapcap.cacti.operator import CactiOperator
from snapcap.caption.temporal import TemporalEncoder, frame_tokens
from snapcap.errors import ConfigError, ShapeError
from snapcap.recon.api import make_params, reconstruct

__all__ = ["CaptionerConfig", "TeacherCaptioner", "SnapCapCaptioner", "TwoStageCaptioner", "frames_to_rgb"]


@dataclass(frozen=True)
class CaptionerConfig:
    """Everything needed to rebuild a captioner (stored in its checkpoint).

    Attributes:
        teacher: open_clip model name (a shipped tiny config or e.g. ``ViT-B-16``).
        pretrained: open_clip pretrained tag (``openai``) or None (random initialisation).
        train_encoder: train the CLIP tower with the teacher captioner (needed without
            pretrained weights; the paper keeps a pretrained CLIP frozen).
        decoder: :class:`snapcap.caption.decoder.DecoderConfig` as a dict.
        student: :class:`snapcap.caption.student.StudentConfig` as a dict (students only).
        B, T: frames per snapshot, snapshots per video.
        temporal: empty for the paper's teacher (f_t = mean_k T(X_k), one token per snapshot);
            :class:`snapcap.caption.temporal.TemporalConfig` fields for the order-aware one (the
            per-frame tokens, their positions in snapshot and video, a small temporal
            transformer: T·B ordered tokens), whose students are order-aware too.
    """

    teacher: str = "snapcap-tiny-vit"
    pretrained: str | None = None
    train_encoder: bool = True
    decoder: dict[str, Any] = field(default_factory=dict)
    student: dict[str, Any] = field(default_factory=dict)
    B: int = 8
    T: int = 8
    temporal: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if not data["temporal"]:
            del data["temporal"]  # the paper's teacher: recorded (and hashed) as before the field existed
        return data


def frames_to_rgb(frames: torch.Tensor) -> torch.Tensor:
    """Frames ``(..., H, W)`` gray or ``(..., H, W, 3)`` -> ``(..., H, W, 3)`` float."""
    return frames if frames.shape[-1] == 3 and frames.ndim >= 3 else frames.unsqueeze(-1).expand(*frames.shape, 3)


class TeacherCaptioner(nn.Module):
    """CLIP teacher + projector + caption decoder, on true (or reconstructed) frames.

    With ``temporal`` (:class:`snapcap.caption.temporal.TemporalConfig` fields) the head is
    order-aware: the per-frame tokens go through a :class:`~snapcap.caption.temporal.TemporalEncoder`
    and the decoder reads T·B ordered tokens instead of the T snapshot means.
    """

    def __init__(self, teacher, decoder, token_dim: int, temporal: dict[str, Any] | None = None):
        super().__init__()
        self.teacher = teacher
        self.proj = nn.Sequential(nn.Linear(teacher.embed_dim, token_dim), nn.GELU(), nn.Linear(token_dim, token_dim))
        self.decoder = decoder
        self.temporal = TemporalEncoder(teacher.embed_dim, temporal) if temporal else None

    @property
    def head_key(self) -> str:
        """The stored target the head reads: ``f_t`` (snapshot means) or ``f_t_frames`` (per-frame tokens)."""
        return "f_t" if self.temporal is None else "f_t_frames"

    def head(self, features: torch.Tensor) -> torch.Tensor:
        """Decoder tokens from the tower's features: f_t ``(N, T, d)``, or per-frame ``(N, T, B, d + 4)`` when order-aware."""
        return self.proj(features if self.temporal is None else self.temporal(features))

    def frame_embeddings(self, frames: torch.Tensor) -> torch.Tensor:
        """T(X_{t,k}) per frame: frames ``(N, T, B, H, W[, 3])`` in [0, 1] -> ``(N, T, B, d)``."""
        if frames.ndim not in (5, 6):
            raise ShapeError(f"frames must have shape (N, T, B, H, W[, 3]), got {tuple(frames.shape)}")
        count, snapshots, frames_per = frames.shape[:3]
        embedding = self.teacher.encode(frames.reshape((-1,) + tuple(frames.shape[3:])))
        return embedding.reshape(count, snapshots, frames_per, -1)

    def frame_tokens(self, frames: torch.Tensor) -> torch.Tensor:
        """The order-aware per-frame tokens (:func:`snapcap.caption.temporal.frame_tokens`): ``(N, T, B, d + 4)``."""
        if frames.ndim not in (5, 6):
            raise ShapeError(f"frames must have shape (N, T, B, H, W[, 3]), got {tuple(frames.shape)}")
        return frame_tokens(self.teacher, frames, rgb=frames.ndim == 6)

    def features(self, frames: torch.Tensor) -> torch.Tensor:
        """What :meth:`head` reads: :meth:`snapshot_embeddings`, or :meth:`frame_tokens` when order-aware."""
        return self.snapshot_embeddings(frames) if self.temporal is None else self.frame_tokens(frames)

    def snapshot_embeddings(self, frames: torch.Tensor) -> torch.Tensor:
        """f_t per snapshot: frames ``(N, T, B, H, W[, 3])`` in [0, 1] -> ``(N, T, d)``."""
        return self.frame_embeddings(frames).mean(dim=2)

    def tokens(self, frames: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(frames))

    def loss(self, frames: torch.Tensor, captions: torch.Tensor) -> torch.Tensor:
        return self.decoder.loss(self.tokens(frames), captions)

    @torch.no_grad()
    def caption(self, frames: torch.Tensor, **generate) -> list[list[int]]:
        return self.decoder.generate(self.tokens(frames), **generate)


class SnapCapCaptioner(nn.Module):
    """Student f, Conv2, S, Proj (trainable) + the teacher's caption decoder (frozen)."""

    def __init__(self, student, decoder):
        super().__init__()
        self.student = student
        self.decoder = decoder
        for parameter in self.decoder.parameters():
            parameter.requires_grad_(False)

    def train(self, mode: bool = True):
        super().train(mode)
        self.decoder.eval()  # frozen: no dropout noise in the language model
        return self

    def forward(self, meas: torch.Tensor, masks: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.student(meas, masks)

    def loss(self, meas: torch.Tensor, masks: torch.Tensor, captions: torch.Tensor) -> torch.Tensor:
        return self.decoder.loss(self.student(meas, masks)["tokens"], captions)

    @torch.no_grad()
    def caption(self, meas: torch.Tensor, masks: torch.Tensor, **generate) -> list[list[int]]:
        return self.decoder.generate(self.student(meas, masks)["tokens"], **generate)


class TwoStageCaptioner:
    """Reconstruct every snapshot with a :mod:`snapcap.recon` method, then caption the frames.

    Args:
        teacher: a trained :class:`TeacherCaptioner`.
        method: reconstruction method name (``gap-tv``, ``pnp-ffdnet``, ``unfold``...).
        params: the method's parameters (dataclass or dict of overrides).
        bayer: the Bayer pattern of the measurements (None for gray).
        arrays: where the reconstruction computes: ``"numpy"`` (host arrays: the fused CPU fast
            paths), ``"torch"`` (the snapshots' own tensors and device, through the array-API
            path: no round trip through the host on CUDA), or ``"auto"`` (torch for tensors on
            a GPU, numpy otherwise).
    """

    def __init__(
        self, teacher: TeacherCaptioner, method: str, params: Any = None, bayer: str | None = None, arrays: str = "auto"
    ):
        if arrays not in ("auto", "numpy", "torch"):
            raise ConfigError(f"arrays must be 'auto', 'numpy' or 'torch', got {arrays!r}")
        self.teacher = teacher
        self.method = method
        self.params = make_params(method, **(params or {})) if not hasattr(params, "__dataclass_fields__") else params
        self.bayer = bayer
        self.arrays = arrays
        self.last_recon_seconds = 0.0
        self.last_frames: torch.Tensor | None = None  # the last reconstruction (for PSNR/SSIM, montages)
        self._operator: tuple[Any, str | None, CactiOperator] | None = None  # (masks, bayer, operator) last used

    def operator(self, masks: Any) -> CactiOperator:
        """The operator of shared ``masks`` (``(B, H, W)``, a tensor or an array), kept while the
        masks stay the same: a test split captioned video by video builds it (and moves its
        masks to the device) once, not inside every timed reconstruction."""
        if self._operator is not None:
            held, bayer, op = self._operator
            if isinstance(masks, torch.Tensor):
                same = isinstance(held, torch.Tensor) and held.device == masks.device and torch.equal(held, masks)
            else:
                same = isinstance(held, np.ndarray) and np.array_equal(held, masks)
            if same and bayer == self.bayer:
                return op
        op = CactiOperator(masks, bayer=self.bayer)
        self._operator = (masks.clone() if isinstance(masks, torch.Tensor) else np.array(masks), self.bayer, op)
        return op

    def on_device(self, meas: torch.Tensor) -> bool:
        """Whether ``meas`` is reconstructed as torch tensors on its own device (else as numpy arrays)."""
        return self.arrays == "torch" or (self.arrays == "auto" and meas.device.type != "cpu")

    def reconstruct(self, meas: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """``(N, T, H, W)`` snapshots -> frames ``(N, T, B, H, W[, 3])`` in [0, 1], on the snapshots' device."""
        start = time.perf_counter()
        if self.on_device(meas):
            meas_t = meas.detach().to(torch.float32)
            masks_t = masks.detach().to(device=meas.device, dtype=torch.float32)
            frames = []
            for index in range(meas_t.shape[0]):
                op = self.operator(masks_t) if masks_t.ndim == 3 else CactiOperator(masks_t[index], bayer=self.bayer)
                result = reconstruct(meas_t[index], op, self.method, params=self.params)
                frames.append(torch.clamp(torch.as_tensor(result.frames, device=meas.device), 0.0, 1.0))
            self.last_frames = torch.stack(frames)
            if meas.device.type == "cuda":
                torch.cuda.synchronize(meas.device)
        else:
            masks_np = masks.detach().cpu().numpy()
            meas_np = meas.detach().cpu().numpy().astype(np.float32)
            out = []
            for index in range(meas_np.shape[0]):
                op = self.operator(masks_np) if masks_np.ndim == 3 else CactiOperator(masks_np[index], bayer=self.bayer)
                result = reconstruct(meas_np[index], op, self.method, params=self.params)
                out.append(np.clip(np.asarray(result.frames, dtype=np.float32), 0.0, 1.0))
            self.last_frames = torch.from_numpy(np.stack(out)).to(meas.device)
        self.last_recon_seconds = time.perf_counter() - start
        return self.last_frames

    @torch.no_grad()
    def caption(self, meas: torch.Tensor, masks: torch.Tensor, **generate) -> list[list[int]]:
        return self.teacher.caption(self.reconstruct(meas, masks), **generate)


def copy_module(module: nn.Module) -> nn.Module:
    """An independent deep copy (for initialising the student from the teacher)."""
    return copy.deepcopy(module)


def check_frames_for(config: CaptionerConfig, frames: torch.Tensor) -> None:
    if frames.shape[1] != config.T or frames.shape[2] != config.B:
        raise ShapeError(f"this captioner was built for T={config.T}, B={config.B}; got frames {tuple(frames.shape)}")


def stack_samples(samples: Sequence[dict[str, Any]], key: str) -> torch.Tensor:
    values = [sample[key] for sample in samples]
    return torch.stack([v if isinstance(v, torch.Tensor) else torch.as_tensor(np.asarray(v)) for v in values])


def unknown(name: str, known: Sequence[str]) -> ConfigError:
    return ConfigError(f"unknown captioner {name!r}; expected one of {', '.join(known)}")
