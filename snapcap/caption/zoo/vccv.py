"""VCCV: video captioning in compressed video (I-frames + residuals, residuals-assisted encoder).

The software-compression counterpart of a coded snapshot: where CACTI sums B frames into one
snapshot, a codec keeps one I-frame per group of pictures (GOP) and the residuals of the others.
VCCV captions from those. The model of the paper (Sec. III), end to end:

* compression: the true video (``T·B`` frames) is coded as GOPs of ``gop_size`` frames (default
  B, so one GOP per CACTI snapshot) by :func:`snapcap.datasets.gop.gop_inputs` (the
  block-matching P-frame emulation, or a real codec's side data through PyAV); each GOP gives its
  I-frame P_I and one residual frame P_r (the mean magnitude of its P-frames' residuals).
* features (Eq. 1): V_I = CNN_I(P_I) ∈ R^{N×D_I×H×W} and A_r = CNN_r(P_r) ∈ R^{N×D_r×H×W}.
  ``backbone="cnn"``: two small CNNs trained end to end with the captioner (no pretrained
  weights offline; batch normalisation in each stage, without which the from-scratch CNNs gave
  the LSTM nearly the same features for every video and it learned one caption for all);
  ``backbone="clip"``: V_I are the patch-token features of a frozen open_clip
  ViT tower (:class:`snapcap.caption.teacher.ClipTeacher`; pretrained weights, or the tower of a
  trained snapcap teacher checkpoint), computed once before training as the paper stores them;
  CNN_r is then still trained end to end (the paper pre-trains a ResNet-18 on residuals).
* residuals-assisted encoder (:class:`ResidualsAssistedEncoder`), at every decoding step t with
  the decoder's previous hidden state h_{t−1}:

  - pooling (Eqs. 3–7): V_I^c, A_r^c spatial means; V_I^conv = Conv1×1(V_I) (D_I -> D_r);
    V_I^s, A_r^s channel means of V_I^conv and A_r;
  - spatial attention module (:class:`SpatialAttention`, Eqs. 8–10):
    α_R = tanh(E(W_t h_{t−1}) + W_I V_I^s + W_r A_r^s), A_R = softmax over H×W,
    F_R^att = Σ_{h,w} A_R ⊙ V_I^conv (the paper also divides by H·W, a constant that the next
    linear map absorbs: left out);
  - temporal gate module (:class:`TemporalGate`, Eqs. 11–12):
    G = σ(w_Gᵀ (W_Gt h_{t−1} + W_Gr A_r^c + W_GI V_I^c)) ∈ R^N,
    F_G^att = G ⊙ W_GR F_R^att + (1 − G) ⊙ W_GI' V_I^c;
  - then the mean over the N GOPs, a linear map, ReLU and dropout: the visual representation.

* decoder (:class:`LstmDecoder`, Eqs. 13–14): h_t, c_t = LSTM([F_G^att; x_{t−1}], (h_{t−1},
  c_{t−1})), a linear layer and softmax over the vocabulary; cross-entropy with teacher forcing;
  greedy decoding or beam search (paper: beam 5), those of :mod:`snapcap.caption.decoding`.
  Vocabulary min count 3, captions cut at 50 words (52 tokens with BOS and EOS), beam 5 (the
  paper's settings, :data:`VCCV_DEFAULTS`; the ``tiny`` preset cuts at 50 tokens). Training
  (:data:`VCCV_TRAIN_PRESETS`): ``paper`` Adam, lr 1e-4, batch 8, as the paper; ``tiny`` lr 1e-3,
  batch 16 (its CNNs train from scratch). Every paper-preset setting and its source in the
  paper: ``docs/paper-presets.md``. (h_0, c_0) come from the video
  (``init_state``, as Show, Attend and Tell does; the zero state of older checkpoints left the
  first words blind): linear maps of the I-frame and residual channel means V_I^c, A_r^c of the
  GOPs, concatenated in GOP order (the one place the model sees the order of the GOPs, which the
  mean over N discards), tanh for h_0.

Variants (the paper's Table I rows): ``rae`` (full), ``rae-no-gate``, ``rae-no-gate-no-residuals``
and ``iframe`` (Mean Pool of the I-frame features into the LSTM).

Entry points: :func:`train_vccv` (resumable, DDP-capable through
:func:`snapcap.caption.train.fit`) writes ``<out>/vccv.pt``; :func:`load` reads it back as
``(model, config, vocab)``; ``model.caption(frames, method=..., beam_size=...)`` returns token
ids per video.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from snapcap.caption.decoding import PAD, Hypothesis, beam_search, check_beam_options, check_lengths, greedy_search
from snapcap.caption.lm import (
    add_decoder_argument,
    codec_for,
    codec_from_dict,
    decoder_choice,
    is_lm_decoder,
    lm_decoder_settings,
    prefix_decoder,
)
from snapcap.caption.rowcache import cached_rows, rows_of
from snapcap.caption.teacher import ClipTeacher, teacher_image_size
from snapcap.caption.train import (
    CaptionTrainConfig,
    build_vocabulary,
    encode_caption_batch,
    fit,
    load_checkpoint,
    sample_keys,
)
from snapcap.caption.zoo import read_checkpoint, save_checkpoint
from snapcap.datasets.gop import RESIDUAL_REDUCTIONS, gop_inputs
from snapcap.datasets.samples import captions_of
from snapcap.distributed import distributed_context
from snapcap.errors import ConfigError, DataFileError, DTypeError, InvalidValueError, ShapeError

__all__ = [
    "VARIANTS",
    "VCCV_DEFAULTS",
    "VCCV_PRESETS",
    "VCCV_TRAIN_PRESETS",
    "VccvConfig",
    "VccvTrainConfig",
    "FrameCNN",
    "ClipGridFeatures",
    "SpatialAttention",
    "TemporalGate",
    "ResidualsAssistedEncoder",
    "LstmDecoder",
    "VccvCaptioner",
    "vccv_preset",
    "train_vccv",
    "compress_samples",
    "train",
    "load",
    "add_arguments",
    "image_size",
]

VARIANTS = ("rae", "rae-no-gate", "rae-no-gate-no-residuals", "iframe")
"""The paper's model variants (Table I): full RAE, without the temporal gate, without the gate
and the residuals, and the I-frame Mean Pool baseline."""

VCCV_DEFAULTS = {"min_count": 3, "max_length": 52, "beam_size": 5}
"""The paper's text settings (Sec. IV-A): vocabulary min count (words seen fewer than 3 times are
removed), longest caption in tokens (sentences cut at 50 words, then BOS and EOS added: 52), beam
size (5, the default of :meth:`VccvCaptioner.caption`)."""

CNN_NORMS = ("batch", "none")
"""Normalisation in the CNN stages (:class:`FrameCNN`)."""

NAME = "vccv"


def _check_positive(name: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or int(value) < minimum:
        raise InvalidValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


@dataclass(frozen=True)
class VccvConfig:
    """The VCCV architecture and its compression settings (stored in the checkpoint).

    Attributes:
        B, T: frames per group and groups per video of the data (``T·B`` frames a video).
        gop_size: frames per GOP (None: B, one GOP per CACTI snapshot).
        block_size, search_range: the emulated encoder's motion search.
        residual_reduction: how a GOP's residuals make one frame (see
            :func:`snapcap.datasets.gop.gop_inputs`).
        source: ``"emulated"`` or ``"codec"`` (PyAV side data; falls back to the emulation
            with a note when PyAV is missing).
        image_size: I-frames and residuals are resized to image_size × image_size (``clip``:
            the tower's own size).
        backbone: ``"cnn"`` (CNN_I trained end to end) or ``"clip"`` (a frozen open_clip ViT).
        clip_model, clip_pretrained, clip_checkpoint: the ViT of ``backbone="clip"``
            (:meth:`ClipTeacher.create` arguments; a checkpoint may be a snapcap ``teacher.pt``).
        image_widths: CNN_I stage widths (each stage halves the size); D_I is the last.
        residual_widths: CNN_r stage widths; D_r is the last. Its number of stages follows the
            feature grid of CNN_I.
        cnn_norm: normalisation in the CNN stages (:data:`CNN_NORMS`; ``"none"``: checkpoints
            written before it existed).
        init_state: the LSTM's (h_0, c_0) from the pooled video features (I-frame and residual
            channel means over the GOPs, one linear map each; tanh for h_0); False: zeros
            (checkpoints written before it existed).
        gate_dim: the width of the temporal gate's hidden sum (Eq. 11).
        visual_dim: the visual representation fed to the LSTM (paper 2048).
        embed_dim: word embeddings (paper 500). hidden_dim: LSTM state (paper 512).
        dropout: on the visual representation and the LSTM output (paper 0.5).
        variant: one of :data:`VARIANTS`.
        max_length: longest caption in tokens, BOS and EOS included (paper 50 words: 52;
            ``tiny`` 50).
        vocab_size: set from the vocabulary.
        decoder: None (the paper's LSTM decoder) or a frozen pretrained language model's settings
            (:mod:`snapcap.caption.lm`): then the LSTM's state, which queries the RAE's spatial
            attention and temporal gate at every word, is replaced by ``lm_queries`` learned
            query vectors; the RAE's outputs for them, mapped to the model's width, are its
            prefix (a frozen model fed through ``inputs_embeds`` has no state to query with).
        lm_queries: the number of those queries (prefix tokens).
    """

    B: int = 8
    T: int = 4
    gop_size: int | None = None
    block_size: int = 8
    search_range: int = 4
    residual_reduction: str = "mean-abs"
    source: str = "emulated"
    image_size: int = 64
    backbone: str = "cnn"
    clip_model: str = "snapcap-tiny-vit"
    clip_pretrained: str | None = None
    clip_checkpoint: str | None = None
    image_widths: tuple[int, ...] = (16, 32, 64)
    residual_widths: tuple[int, ...] = (8, 16, 32)
    cnn_norm: str = "batch"
    init_state: bool = True
    gate_dim: int = 64
    visual_dim: int = 128
    embed_dim: int = 64
    hidden_dim: int = 128
    dropout: float = 0.5
    variant: str = "rae"
    max_length: int = 50
    vocab_size: int = 0
    decoder: dict[str, Any] | None = None
    lm_queries: int = 4

    def __post_init__(self) -> None:
        for name in ("B", "T", "block_size", "image_size", "gate_dim", "visual_dim", "embed_dim", "hidden_dim"):
            _check_positive(name, getattr(self, name))
        _check_positive("search_range", self.search_range, 0)
        _check_positive("vocab_size", self.vocab_size, 0)
        if self.gop_size is not None:
            _check_positive("gop_size", self.gop_size)
        if _check_positive("max_length", self.max_length, 3) < 3:
            raise InvalidValueError(f"max_length must be >= 3, got {self.max_length}")
        if self.variant not in VARIANTS:
            raise ConfigError(f"variant must be one of {', '.join(VARIANTS)}, got {self.variant!r}")
        if self.backbone not in ("cnn", "clip"):
            raise ConfigError(f"backbone must be 'cnn' or 'clip', got {self.backbone!r}")
        if self.residual_reduction not in RESIDUAL_REDUCTIONS:
            raise ConfigError(
                f"residual_reduction must be one of {', '.join(RESIDUAL_REDUCTIONS)}, got {self.residual_reduction!r}"
            )
        if self.cnn_norm not in CNN_NORMS:
            raise ConfigError(f"cnn_norm must be one of {', '.join(CNN_NORMS)}, got {self.cnn_norm!r}")
        if not isinstance(self.init_state, bool):
            raise InvalidValueError(f"init_state must be a bool, got {self.init_state!r}")
        if self.source not in ("emulated", "codec"):
            raise ConfigError(f"source must be 'emulated' or 'codec', got {self.source!r}")
        for name in ("image_widths", "residual_widths"):
            widths = tuple(getattr(self, name))
            if not widths or any(isinstance(w, bool) or not isinstance(w, (int, np.integer)) or w < 1 for w in widths):
                raise InvalidValueError(f"{name} must be a non-empty sequence of positive integers, got {getattr(self, name)!r}")
            object.__setattr__(self, name, tuple(int(w) for w in widths))
        if not 0.0 <= float(self.dropout) < 1.0:
            raise InvalidValueError(f"dropout must be in [0, 1), got {self.dropout!r}")

    @property
    def gop(self) -> int:
        """Frames per GOP actually used."""
        return int(self.gop_size or self.B)

    @property
    def num_gops(self) -> int:
        return math.ceil(self.T * self.B / self.gop)

    @property
    def use_residuals(self) -> bool:
        return self.variant in ("rae", "rae-no-gate")

    @property
    def use_gate(self) -> bool:
        return self.variant == "rae"

    @property
    def attention(self) -> bool:
        return self.variant != "iframe"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["image_widths"], data["residual_widths"] = list(self.image_widths), list(self.residual_widths)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> VccvConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown VCCV config field(s) {unknown}; expected some of {sorted(known)}")
        values = dict(data)
        for name in ("image_widths", "residual_widths"):
            if name in values and not isinstance(values[name], tuple):
                values[name] = tuple(values[name])
        return cls(**values)


VCCV_PRESETS: dict[str, VccvConfig] = {
    # CPU-trainable in a few minutes on the procedural corpus (64 x 64, T = 4 GOPs). Dropout 0.2,
    # not the paper's 0.5: with 480 training videos and 30 epochs, 0.5 kept the LSTM from using
    # the video (bench/caption.py --vccv, teacher tower: CIDEr 47 at 0.5, 57 at 0.2, beam 5).
    "tiny": VccvConfig(dropout=0.2),
    # The paper's sizes (ResNet-152 features 2048 x 7 x 7 there; here a frozen CLIP ViT-B/16,
    # 768 x 14 x 14), word embedding 500, LSTM 512, visual representation 2048.
    "paper": VccvConfig(
        image_size=224,
        backbone="clip",
        clip_model="ViT-B-16",
        clip_pretrained="openai",
        residual_widths=(64, 128, 256, 512),  # ResNet-18's stage widths: D_r = 512 as the paper's 512 x 7 x 7 A_r
        gate_dim=512,  # the paper does not give it
        visual_dim=2048,
        embed_dim=500,
        hidden_dim=512,
        T=8,  # SnapCap's T; training sets T (and B) from the data
        dropout=0.5,
        max_length=VCCV_DEFAULTS["max_length"],  # 50 words + BOS + EOS
    ),
}
"""Named VCCV architectures (B and T are set from the data). Each ``paper`` setting, the paper's
value and its source: ``docs/paper-presets.md``."""


def vccv_preset(name: str = "tiny", **overrides: Any) -> VccvConfig:
    """A copy of :data:`VCCV_PRESETS` ``[name]`` with fields replaced.

    Raises:
        ConfigError: unknown preset or field.
    """
    if name not in VCCV_PRESETS:
        raise ConfigError(f"unknown VCCV preset {name!r}; expected one of {', '.join(VCCV_PRESETS)}")
    known = {f.name for f in fields(VccvConfig)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ConfigError(f"unknown VCCV config field(s) {unknown}; expected some of {sorted(known)}")
    return replace(VCCV_PRESETS[name], **overrides)


@dataclass(frozen=True)
class VccvTrainConfig:
    """Optimisation settings; the defaults are the ``tiny`` preset's (:data:`VCCV_TRAIN_PRESETS`).

    The paper (Sec. IV-A): Adam with initial learning rate 1e-4, batch 8, on stored pretrained
    features. The tiny preset trains its CNNs from scratch on a few hundred procedural videos, so
    it takes larger steps (lr 1e-3, batch 16: more, larger updates per epoch) after one warm-up
    epoch.
    """

    epochs: int = 30  # the paper does not give its epochs
    batch_size: int = 16  # tiny; paper 8
    lr: float = 1e-3  # tiny: CNNs from scratch; paper 1e-4 on pretrained features
    weight_decay: float = 0.0  # Adam, as the paper (fit uses AdamW: no decay = Adam)
    warmup_epochs: int = 1  # tiny; the paper starts at its learning rate (no warm-up)
    label_smoothing: float = 0.0
    min_count: int = VCCV_DEFAULTS["min_count"]
    max_length: int = 50  # tiny: 50 tokens (48 words); the paper 52 (50 words, BOS, EOS)
    seed: int = 0
    device: str = "cpu"
    checkpoint_every: int = 200
    log_every: int = 10
    amp: bool = False  # bf16 autocast around each step (CUDA; slower on most CPUs)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


VCCV_TRAIN_PRESETS: dict[str, VccvTrainConfig] = {
    "tiny": VccvTrainConfig(),
    # The paper (Sec. IV-A): Adam (AdamW without decay), initial learning rate 1e-4 (no warm-up;
    # snapcap's cosine decay follows, the paper gives no schedule), batch 8, sentences cut at 50
    # words; min count 3. Epochs: the paper does not say (30).
    "paper": VccvTrainConfig(batch_size=8, lr=1e-4, weight_decay=0.0, warmup_epochs=0, max_length=VCCV_DEFAULTS["max_length"]),
}
"""Optimisation settings per preset (the options of :func:`train_vccv` override them)."""


# --- features ---------------------------------------------------------------------------------


class FrameCNN(nn.Module):
    """A small CNN: each stage a stride-2 3×3 conv, optionally batch normalisation, and a ReLU.

    ``norm="batch"`` normalises each channel over the batch (not per frame, so brightness and
    contrast stay information); ``norm="none"`` is the plain conv + ReLU stack of older
    checkpoints. ``(M, C_in, S, S)`` -> ``(M, widths[-1], S / 2^len(widths), S / 2^len(widths))``.
    """

    def __init__(self, in_channels: int, widths: Sequence[int], norm: str = "batch"):
        super().__init__()
        if norm not in CNN_NORMS:
            raise ConfigError(f"norm must be one of {', '.join(CNN_NORMS)}, got {norm!r}")
        layers: list[nn.Module] = []
        channels = in_channels
        for width in widths:
            if norm == "batch":
                layers += [
                    nn.Conv2d(channels, width, 3, stride=2, padding=1, bias=False),
                    nn.BatchNorm2d(width),
                    nn.ReLU(inplace=True),
                ]
            else:
                layers += [nn.Conv2d(channels, width, 3, stride=2, padding=1), nn.ReLU(inplace=True)]
            channels = width
        self.body = nn.Sequential(*layers)
        self.out_channels = channels
        self.stages = len(tuple(widths))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class ClipGridFeatures(nn.Module):
    """Frozen open_clip ViT patch-token features: frames ``(M, H, W, 3)`` -> ``(M, width, h, w)``."""

    def __init__(
        self, name: str, pretrained: str | None = None, checkpoint: str | None = None, device: str | torch.device = "cpu"
    ):
        super().__init__()
        self.teacher = ClipTeacher.create(name, pretrained=pretrained, checkpoint=checkpoint, device=device, frozen=True)
        self.out_channels = int(self.teacher.visual.class_embedding.shape[0])
        self.grid = tuple(int(g) for g in self.teacher.grid)

    @property
    def image_size(self) -> int:
        return int(self.teacher.image_size)

    @torch.no_grad()
    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        visual = self.teacher.visual
        x = self.teacher.preprocess(frames)
        x = visual.transformer(visual._embeds(x))
        _, tokens = visual._pool(x)
        count = tokens.shape[0]
        return tokens.transpose(1, 2).reshape(count, self.out_channels, *self.grid).float()


# --- the residuals-assisted encoder ------------------------------------------------------------


class SpatialAttention(nn.Module):
    """SAM (Eqs. 8–10): attention over the H×W locations of each I-frame, led by the residuals.

    α_R = tanh(E(W_t h) + W_I V_I^s + W_r A_r^s); A_R = softmax_{H×W}(α_R);
    F_R^att = Σ_{h,w} A_R ⊙ V_I^conv. W_I and W_r are linear maps over the H·W locations.
    """

    def __init__(self, hidden_dim: int, locations: int, use_residuals: bool = True):
        super().__init__()
        self.locations = int(locations)
        self.w_t = nn.Linear(hidden_dim, locations)
        self.w_i = nn.Linear(locations, locations, bias=False)
        self.w_r = nn.Linear(locations, locations, bias=False) if use_residuals else None

    def static(self, v_s: torch.Tensor, a_s: torch.Tensor | None) -> torch.Tensor:
        """The h-independent part W_I V_I^s + W_r A_r^s: ``(b, N, S)`` maps -> ``(b, N, S)``."""
        out = self.w_i(v_s)
        if self.w_r is not None:
            if a_s is None:
                raise ShapeError("SpatialAttention built with residuals needs A_r^s")
            out = out + self.w_r(a_s)
        return out

    def weights(self, static: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        """A_R ``(b, N, S)``, summing to one over S."""
        alpha = torch.tanh(self.w_t(hidden)[:, None, :] + static)
        return torch.softmax(alpha, dim=-1)

    def forward(
        self, v_conv: torch.Tensor, v_s: torch.Tensor, a_s: torch.Tensor | None, hidden: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """F_R^att ``(b, N, D_r)`` and A_R ``(b, N, S)`` from V_I^conv ``(b, N, S, D_r)``,
        V_I^s, A_r^s ``(b, N, S)`` and h ``(b, hidden_dim)``."""
        if v_conv.ndim != 4 or v_conv.shape[2] != self.locations:
            raise ShapeError(f"V_I^conv must have shape (b, N, {self.locations}, D_r), got {tuple(v_conv.shape)}")
        attention = self.weights(self.static(v_s, a_s), hidden)
        return torch.einsum("bns,bnsd->bnd", attention, v_conv), attention


class TemporalGate(nn.Module):
    """TGM (Eqs. 11–12): how much each GOP's attended feature counts against its plain feature.

    G = σ(w_Gᵀ (W_Gt h + W_Gr A_r^c + W_GI V_I^c)) ∈ (0, 1)^N;
    F_G^att = G ⊙ W_GR F_R^att + (1 − G) ⊙ W_GI' V_I^c ∈ R^{N×D_I}.
    """

    def __init__(self, hidden_dim: int, image_dim: int, residual_dim: int, gate_dim: int, use_residuals: bool = True):
        super().__init__()
        self.w_gt = nn.Linear(hidden_dim, gate_dim)
        self.w_gr = nn.Linear(residual_dim, gate_dim, bias=False) if use_residuals else None
        self.w_gi = nn.Linear(image_dim, gate_dim, bias=False)
        self.w_g = nn.Linear(gate_dim, 1)
        self.w_out_attended = nn.Linear(residual_dim, image_dim)  # W_GR
        self.w_out_plain = nn.Linear(image_dim, image_dim)  # W_GI' of Eq. 12

    def static(self, v_c: torch.Tensor, a_c: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """(W_Gr A_r^c + W_GI V_I^c, W_GI' V_I^c): the h-independent parts, ``(b, N, ·)``."""
        gate = self.w_gi(v_c)
        if self.w_gr is not None:
            if a_c is None:
                raise ShapeError("TemporalGate built with residuals needs A_r^c")
            gate = gate + self.w_gr(a_c)
        return gate, self.w_out_plain(v_c)

    def gate(self, static_gate: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.w_g(static_gate + self.w_gt(hidden)[:, None, :]))

    def forward(
        self, attended: torch.Tensor, v_c: torch.Tensor, a_c: torch.Tensor | None, hidden: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """F_G^att ``(b, N, D_I)`` and G ``(b, N)`` from F_R^att ``(b, N, D_r)``, V_I^c, A_r^c, h."""
        static_gate, plain = self.static(v_c, a_c)
        gate = self.gate(static_gate, hidden)
        return gate * self.w_out_attended(attended) + (1 - gate) * plain, gate[..., 0]


class ResidualsAssistedEncoder(nn.Module):
    """RAE: V_I ``(b, N, D_I, H, W)``, A_r ``(b, N, D_r, H, W)`` and h_{t−1} -> ``(b, visual_dim)``.

    :meth:`prepare` computes everything that does not depend on h once per video (Eqs. 3–7 and
    the h-free terms of Eqs. 8 and 11); :meth:`step` adds h_{t−1} at each decoding step. The
    variants of :data:`VARIANTS` drop the gate (F_G = W_GR F_R^att), the residuals (from
    Eqs. 8 and 11), or everything but the mean-pooled I-frame features (``iframe``).
    """

    def __init__(
        self,
        image_dim: int,
        residual_dim: int,
        grid: tuple[int, int],
        hidden_dim: int,
        gate_dim: int,
        visual_dim: int,
        dropout: float,
        variant: str = "rae",
        init_state: bool = False,
        gops: int = 1,
    ):
        super().__init__()
        if variant not in VARIANTS:
            raise ConfigError(f"variant must be one of {', '.join(VARIANTS)}, got {variant!r}")
        self.variant = variant
        self.image_dim, self.residual_dim = int(image_dim), int(residual_dim)
        self.grid = (int(grid[0]), int(grid[1]))
        locations = self.grid[0] * self.grid[1]
        use_residuals = variant in ("rae", "rae-no-gate")
        self.use_residuals = use_residuals
        self.attention = variant != "iframe"
        self.use_gate = variant == "rae"
        if self.attention:
            self.reduce = nn.Conv2d(image_dim, residual_dim, 1)  # Eq. 5: D_I -> D_r
            self.sam = SpatialAttention(hidden_dim, locations, use_residuals)
            if self.use_gate:
                self.tgm = TemporalGate(hidden_dim, image_dim, residual_dim, gate_dim, use_residuals)
            else:
                self.w_gr = nn.Linear(residual_dim, image_dim)
        self.out = nn.Linear(image_dim, visual_dim)
        self.dropout = nn.Dropout(dropout)
        self.hidden_dim = int(hidden_dim)
        self.gops = int(gops)
        if init_state:  # (h_0, c_0) from the pooled I-frame (and residual) features, GOP by GOP in order
            pooled = self.gops * (image_dim + (residual_dim if use_residuals else 0))
            self.init_h, self.init_c = nn.Linear(pooled, hidden_dim), nn.Linear(pooled, hidden_dim)
        else:
            self.init_h = self.init_c = None

    def _check(self, v_i: torch.Tensor, a_r: torch.Tensor | None) -> None:
        if v_i.ndim != 5 or v_i.shape[2] != self.image_dim or tuple(v_i.shape[-2:]) != self.grid:
            raise ShapeError(
                f"V_I must have shape (b, N, {self.image_dim}, {self.grid[0]}, {self.grid[1]}), got {tuple(v_i.shape)}"
            )
        if self.use_residuals:
            if a_r is None:
                raise ShapeError(f"the {self.variant!r} encoder needs the residual features A_r")
            expected = (v_i.shape[0], v_i.shape[1], self.residual_dim, *self.grid)
            if tuple(a_r.shape) != expected:
                raise ShapeError(f"A_r must have shape {expected} (V_I is {tuple(v_i.shape)}), got {tuple(a_r.shape)}")

    def prepare(self, v_i: torch.Tensor, a_r: torch.Tensor | None) -> dict[str, torch.Tensor]:
        """The h-independent context of a batch of videos (a dict of ``(b, ...)`` tensors)."""
        self._check(v_i, a_r)
        batch, count = v_i.shape[:2]
        v_c = v_i.mean(dim=(-2, -1))  # Eq. 3
        context = {"pooled": v_c.mean(dim=1)}
        if self.init_h is not None:
            if count != self.gops:
                raise ShapeError(f"the encoder was built for {self.gops} GOPs a video, got {count}")
            summary = torch.cat([v_c, a_r.mean(dim=(-2, -1))], dim=2) if self.use_residuals else v_c
            summary = summary.flatten(1)
            context["h0"], context["c0"] = torch.tanh(self.init_h(summary)), self.init_c(summary)
        if not self.attention:
            return context
        v_conv = self.reduce(v_i.flatten(0, 1)).reshape(batch, count, self.residual_dim, -1)  # Eq. 5
        v_s = v_conv.mean(dim=2)  # Eq. 6
        a_flat = a_r.reshape(batch, count, self.residual_dim, -1) if self.use_residuals else None
        a_s = a_flat.mean(dim=2) if a_flat is not None else None  # Eq. 7
        a_c = a_flat.mean(dim=3) if a_flat is not None else None  # Eq. 4
        context.update(v_conv=v_conv.transpose(2, 3).contiguous(), attention=self.sam.static(v_s, a_s))
        if self.use_gate:
            context["gate"], context["plain"] = self.tgm.static(v_c, a_c)
        return context

    def initial_state(self, context: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """The decoder's (h_0, c_0) for these videos: from the pooled features, or zeros."""
        if "h0" in context:
            return context["h0"], context["c0"]
        zeros = context["pooled"].new_zeros(context["pooled"].shape[0], self.hidden_dim)
        return zeros, zeros.clone()

    @staticmethod
    def select(context: dict[str, torch.Tensor], index: torch.Tensor) -> dict[str, torch.Tensor]:
        """The context of the videos (rows) ``index``."""
        return {key: value.index_select(0, index) for key, value in context.items()}

    def step(
        self, context: dict[str, torch.Tensor], hidden: torch.Tensor, details: dict[str, torch.Tensor] | None = None
    ) -> torch.Tensor:
        """The visual representation ``(b, visual_dim)`` for the decoder's previous state ``hidden``.

        ``details``, when given, receives ``"attention"`` A_R ``(b, N, S)`` and ``"gate"`` G ``(b, N)``.
        """
        if not self.attention:
            fused = context["pooled"]
        else:
            weights = self.sam.weights(context["attention"], hidden)
            attended = torch.einsum("bns,bnsd->bnd", weights, context["v_conv"])
            if self.use_gate:
                gate = self.tgm.gate(context["gate"], hidden)
                frames = gate * self.tgm.w_out_attended(attended) + (1 - gate) * context["plain"]
                if details is not None:
                    details["gate"] = gate[..., 0]
            else:
                frames = self.w_gr(attended)
            if details is not None:
                details["attention"] = weights
            fused = frames.mean(dim=1)
        return self.dropout(F.relu(self.out(fused)))

    def forward(self, v_i: torch.Tensor, a_r: torch.Tensor | None, hidden: torch.Tensor) -> torch.Tensor:
        return self.step(self.prepare(v_i, a_r), hidden)


# --- the LSTM decoder -------------------------------------------------------------------------


class LstmDecoder(nn.Module):
    """h_t, c_t = LSTM([F_G^att; x_{t−1}], (h_{t−1}, c_{t−1})); p(y_t) = softmax(Linear(dropout(h_t)))."""

    def __init__(self, vocab_size: int, visual_dim: int, embed_dim: int, hidden_dim: int, dropout: float):
        super().__init__()
        if vocab_size < 4:
            raise InvalidValueError(f"vocab_size must be >= 4 (the special tokens), got {vocab_size}")
        self.vocab_size, self.hidden_dim = int(vocab_size), int(hidden_dim)
        self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=PAD)
        self.cell = nn.LSTMCell(visual_dim + embed_dim, hidden_dim)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_dim, vocab_size)

    def forward(
        self, visual: torch.Tensor, tokens: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]
    ) -> tuple[tuple[torch.Tensor, torch.Tensor], torch.Tensor]:
        """One step: visual ``(b, visual_dim)``, previous tokens ``(b,)`` -> new state, logits ``(b, V)``."""
        hidden, cell = self.cell(torch.cat([visual, self.embed(tokens)], dim=1), state)
        return (hidden, cell), self.head(self.dropout(hidden))


# --- the captioner ----------------------------------------------------------------------------


def _to_video(frames: torch.Tensor) -> np.ndarray:
    """``(T, B, H, W[, 3])`` floats in [0, 1] or uint8 -> ``(T·B, H, W, 3)`` uint8."""
    array = frames.detach().cpu()
    if array.dtype == torch.uint8:
        video = array.numpy()
    else:
        video = np.round(array.float().clamp(0, 1).numpy() * 255.0).astype(np.uint8)
    if video.ndim == 4:  # gray
        video = np.repeat(video[..., None], 3, axis=-1)
    return video.reshape((-1,) + video.shape[-3:])


class VccvCaptioner(nn.Module):
    """The whole VCCV model: compression, CNN_I / CNN_r, the RAE and the LSTM decoder.

    Args:
        config: its :class:`VccvConfig` (``vocab_size`` set).
        device: where the networks live (also used to build a CLIP backbone).
    """

    def __init__(self, config: VccvConfig, device: str | torch.device = "cpu", vocab: Any = None):
        super().__init__()
        if config.vocab_size < 4:
            raise ConfigError(f"VccvConfig.vocab_size must be set from the vocabulary (>= 4), got {config.vocab_size}")
        self.config = config
        if config.backbone == "clip":
            self.clip = ClipGridFeatures(config.clip_model, config.clip_pretrained, config.clip_checkpoint, device=device)
            self.image_cnn = None
            image_dim, grid = self.clip.out_channels, self.clip.grid
            self.input_size = self.clip.image_size
        else:
            self.clip = None
            self.image_cnn = FrameCNN(3, config.image_widths, config.cnn_norm)
            image_dim = self.image_cnn.out_channels
            size = config.image_size // 2 ** len(config.image_widths)
            if size < 1 or config.image_size % 2 ** len(config.image_widths):
                raise ConfigError(
                    f"image_size {config.image_size} must be divisible by 2^{len(config.image_widths)} "
                    "(one halving per CNN stage)"
                )
            grid = (size, size)
            self.input_size = config.image_size
        stages = int(round(math.log2(self.input_size / grid[0])))
        if 2**stages * grid[0] != self.input_size:
            raise ConfigError(
                f"the residual CNN cannot reach the {grid} feature grid from {self.input_size}x{self.input_size} by halvings"
            )
        widths = tuple(config.residual_widths)
        widths = (widths + (widths[-1],) * stages)[:stages] if stages else widths[:0]
        self.residual_cnn = FrameCNN(3, widths, config.cnn_norm) if config.use_residuals else None
        residual_dim = widths[-1] if widths else 3
        self.grid = grid
        self.encoder = ResidualsAssistedEncoder(
            image_dim,
            residual_dim,
            grid,
            config.hidden_dim,
            config.gate_dim,
            config.visual_dim,
            config.dropout,
            config.variant,
            config.init_state,
            config.num_gops,
        )
        if is_lm_decoder(config.decoder):
            self.queries = nn.Parameter(torch.randn(int(config.lm_queries), config.hidden_dim) * 0.1)
            self.decoder, self.to_prefix, settings = prefix_decoder(config.decoder, vocab, config.visual_dim)
            self.config = replace(config, decoder=settings)
        else:
            self.decoder = LstmDecoder(config.vocab_size, config.visual_dim, config.embed_dim, config.hidden_dim, config.dropout)
            self.to_prefix = None
        self.name = "vccv"
        self.to(device)

    @property
    def image_size(self) -> int:
        return int(self.input_size)

    @property
    def device(self) -> torch.device:
        return self.encoder.out.weight.device

    # -- compression and features ---------------------------------------------------------------

    def compress(self, frames: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """The true video -> (I-frames, residual frames) of its GOPs, at the model's input size.

        Args:
            frames: ``(N, T, B, H, W[, 3])`` or ``(T, B, H, W[, 3])`` floats in [0, 1] or uint8
                (tensor or array; gray replicated to RGB).

        Returns:
            ``(iframes, residuals)``, each ``(N, G, 3, S, S)`` float32 on the model's device;
            I-frames in [0, 1], residuals on the same scale.
        """
        frames = _as_frames(frames)
        config = self.config
        iframes, residuals = [], []
        for video in frames:
            inputs = gop_inputs(
                _to_video(video), config.gop, config.block_size, config.search_range, config.residual_reduction, config.source
            )
            iframes.append(torch.from_numpy(inputs.iframes))
            residuals.append(torch.from_numpy(inputs.residuals))
        return self._resize(torch.stack(iframes)), self._resize(torch.stack(residuals))

    def _resize(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, G, H, W, 3)`` -> ``(N, G, 3, S, S)`` on the device."""
        count, gops = x.shape[:2]
        x = x.to(self.device).permute(0, 1, 4, 2, 3).flatten(0, 1)
        size = self.input_size
        if tuple(x.shape[-2:]) != (size, size):
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        return x.reshape(count, gops, 3, size, size)

    def image_features(self, iframes: torch.Tensor) -> torch.Tensor:
        """V_I ``(N, G, D_I, h, w)`` of I-frames ``(N, G, 3, S, S)`` in [0, 1]."""
        count, gops = iframes.shape[:2]
        flat = iframes.flatten(0, 1)
        if self.clip is not None:
            features = self.clip(flat.permute(0, 2, 3, 1))
        else:
            features = self.image_cnn((flat - 0.5) / 0.25)
        return features.reshape(count, gops, *features.shape[1:])

    def residual_features(self, residuals: torch.Tensor) -> torch.Tensor | None:
        """A_r ``(N, G, D_r, h, w)`` of residual frames ``(N, G, 3, S, S)`` (None without residuals)."""
        if self.residual_cnn is None:
            return None
        count, gops = residuals.shape[:2]
        features = self.residual_cnn(residuals.flatten(0, 1) * 4.0)
        return features.reshape(count, gops, *features.shape[1:])

    def context(
        self, iframes: torch.Tensor, residuals: torch.Tensor, image_features: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        v_i = self.image_features(iframes) if image_features is None else image_features.to(self.device)
        return self.encoder.prepare(v_i, self.residual_features(residuals))

    def lm_prefix(self, context: dict[str, torch.Tensor]) -> torch.Tensor:
        """A language-model decoder's prefix ``(b, lm_queries, width)``: the RAE queried by each learned vector."""
        rows = next(iter(context.values())).shape[0]
        tokens = [self.encoder.step(context, query.expand(rows, -1)) for query in self.queries]
        return self.to_prefix(torch.stack(tokens, dim=1))

    # -- training ---------------------------------------------------------------------------------

    def loss(
        self,
        iframes: torch.Tensor,
        residuals: torch.Tensor,
        captions: torch.Tensor,
        image_features: torch.Tensor | None = None,
        label_smoothing: float = 0.0,
    ) -> torch.Tensor:
        """Cross-entropy of the captions ``(N, L)`` (``[BOS, w..., EOS, PAD...]``) with teacher forcing (Eq. 14)."""
        if captions.ndim != 2 or captions.shape[1] < 2 or captions.shape[0] != iframes.shape[0]:
            raise ShapeError(f"captions must have shape ({iframes.shape[0]}, L >= 2), got {tuple(captions.shape)}")
        context = self.context(iframes, residuals, image_features)
        captions = captions.to(self.device)
        if self.to_prefix is not None:
            return self.decoder.loss(self.lm_prefix(context), captions, label_smoothing)
        state = self.encoder.initial_state(context)
        logits = []
        for position in range(captions.shape[1] - 1):
            visual = self.encoder.step(context, state[0])
            state, step_logits = self.decoder(visual, captions[:, position], state)
            logits.append(step_logits)
        stacked = torch.stack(logits, dim=1)
        return F.cross_entropy(
            stacked.reshape(-1, stacked.shape[-1]), captions[:, 1:].reshape(-1), ignore_index=PAD, label_smoothing=label_smoothing
        )

    # -- generation ---------------------------------------------------------------------------------

    def _advance(self, context, state, tokens):
        """One LSTM step: the RAE's visual representation for h_{t−1}, then the decoder on ``tokens``."""
        visual = self.encoder.step(context, state[0])
        return self.decoder(visual, tokens, state)

    def _search_functions(self, context: dict[str, torch.Tensor]):
        """The ``step``, ``reorder`` and initial state of :mod:`snapcap.caption.decoding` for these
        videos: the state is ``(context, (h, c))``."""

        def step(tokens: torch.Tensor, state):
            context, hidden = state
            hidden, logits = self._advance(context, hidden, tokens)
            return logits, (context, hidden)

        def reorder(state, index: torch.Tensor):
            context, (h, c) = state
            return self.encoder.select(context, index), (h.index_select(0, index), c.index_select(0, index))

        return step, reorder, (context, self.encoder.initial_state(context))

    def _max_words(self, max_length: int | None, min_length: int) -> int:
        limit = self.config.max_length
        return check_lengths(limit if max_length is None else max_length, min_length, limit)

    def greedy(self, context: dict[str, torch.Tensor], max_words: int, min_length: int = 1) -> list[list[int]]:
        """Greedy decoding (:func:`snapcap.caption.decoding.greedy_search`) of the videos of ``context``."""
        step, _, state = self._search_functions(context)
        return greedy_search(step, state, next(iter(context.values())).shape[0], max_words, min_length, device=self.device)

    def beam(
        self, context: dict[str, torch.Tensor], beam_size: int, max_words: int, min_length: int = 1, length_penalty: float = 1.0
    ) -> list[list[Hypothesis]]:
        """Beam search over a batch (:func:`snapcap.caption.decoding.beam_search`, ``"shrinking"``
        style); per video its finished hypotheses, best first.

        Each video keeps ``k`` live beams (``k = beam_size`` at first); every step extends each
        live beam by every word and keeps the ``k`` best by cumulative log-probability (ties:
        lowest beam, then lowest id); a kept candidate ending in EOS is finished and ``k`` drops
        by one. Beams still live after ``max_words`` words finish without EOS. Hypotheses are
        ranked by ``logprob / length ** length_penalty``. ``beam_size = 1`` is greedy decoding.
        """
        step, reorder, state = self._search_functions(context)
        videos = next(iter(context.values())).shape[0]
        return beam_search(step, reorder, state, videos, beam_size, max_words, min_length, length_penalty, device=self.device)

    @torch.no_grad()
    def generate(
        self,
        iframes: torch.Tensor,
        residuals: torch.Tensor,
        method: str = "beam",
        beam_size: int = VCCV_DEFAULTS["beam_size"],
        length_penalty: float = 1.0,
        max_length: int | None = None,
        min_length: int = 1,
        image_features: torch.Tensor | None = None,
    ) -> list[list[int]]:
        """Word ids (no BOS/EOS) for each video from its I-frames and residual frames."""
        if method not in ("greedy", "beam"):
            raise ConfigError(f"unknown generation method {method!r}; expected 'greedy' or 'beam'")
        check_beam_options(beam_size, length_penalty)
        max_words = self._max_words(max_length, min_length)
        was_training = self.training
        self.eval()
        try:
            context = self.context(iframes, residuals, image_features)
            if self.to_prefix is not None:
                options = {"beam_size": beam_size, "length_penalty": float(length_penalty)} if method == "beam" else {}
                return self.decoder.generate(
                    self.lm_prefix(context), method=method, max_length=max_length, min_length=min_length, **options
                )
            if method == "greedy":
                return self.greedy(context, max_words, min_length)
            return [hyps[0].tokens for hyps in self.beam(context, beam_size, max_words, min_length, float(length_penalty))]
        finally:
            self.train(was_training)

    @torch.no_grad()
    def caption(
        self, frames: Any, method: str = "beam", beam_size: int = VCCV_DEFAULTS["beam_size"], **options: Any
    ) -> list[list[int]]:
        """Caption true videos: compress them (GOPs), then :meth:`generate`.

        Args:
            frames: ``(N, T, B, H, W[, 3])`` (or one video ``(T, B, H, W[, 3])``), floats in
                [0, 1] or uint8.
            method: ``"beam"`` (default, the paper's) or ``"greedy"``.
            beam_size: beams (default 5, the paper's).
            **options: ``length_penalty``, ``max_length``, ``min_length``.

        Returns:
            One list of word ids per video.
        """
        unknown = sorted(set(options) - {"length_penalty", "max_length", "min_length"})
        if unknown:
            raise ConfigError(
                f"unknown caption option(s) {unknown}; expected method, beam_size, length_penalty, max_length, min_length"
            )
        iframes, residuals = self.compress(frames)
        return self.generate(iframes, residuals, method=method, beam_size=beam_size, **options)


def _as_frames(frames: Any) -> torch.Tensor:
    """``(N, T, B, H, W[, 3])`` tensor from a tensor or array (one video gets N = 1)."""
    if not torch.is_tensor(frames):
        frames = torch.as_tensor(np.asarray(frames))
    if not (frames.dtype == torch.uint8 or frames.dtype.is_floating_point):
        raise DTypeError(f"frames must be floats in [0, 1] or uint8, got dtype {frames.dtype}")
    rgb = frames.shape[-1] == 3 and frames.ndim in (5, 6)
    if frames.ndim == (5 if rgb else 4):
        frames = frames.unsqueeze(0)
    if frames.ndim != (6 if rgb else 5) or min(frames.shape) < 1:
        raise ShapeError(f"frames must have shape (N, T, B, H, W[, 3]) or (T, B, H, W[, 3]), got {tuple(frames.shape)}")
    if frames.dtype.is_floating_point and not bool(torch.isfinite(frames).all()):
        raise InvalidValueError("frames hold NaN or infinite values")
    return frames


# --- training and loading ------------------------------------------------------------------------


def _split_options(options: Mapping[str, Any] | VccvTrainConfig | None) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """(preset, model overrides, training overrides) from one options mapping."""
    if options is None:
        return "tiny", {}, {}
    if isinstance(options, VccvTrainConfig):
        return "tiny", {}, options.to_dict()
    if not isinstance(options, Mapping):
        raise ConfigError(f"options must be a mapping of VCCV settings, got {type(options).__name__}")
    model_fields = {f.name for f in fields(VccvConfig)} - {"vocab_size"}
    train_fields = {f.name for f in fields(VccvTrainConfig)}
    preset, model, train = "tiny", {}, {}
    for key, value in options.items():
        if key == "preset":
            preset = str(value)
        elif key in train_fields:
            train[key] = value
        elif key in model_fields:
            model[key] = value
        else:
            raise ConfigError(f"unknown VCCV option {key!r}; expected preset or one of {sorted(model_fields | train_fields)}")
    return preset, model, train


def _compress_rows(model: VccvCaptioner, samples):
    """``compute(rows)`` of :func:`snapcap.caption.rowcache.cached_rows`: the I-frames and
    residual frames ``(n, G, 3, S, S)`` of those videos."""

    def compute(rows: range) -> dict[str, torch.Tensor]:
        chosen = [samples[index] for index in rows]
        for index, row in zip(rows, chosen):
            if row.get("frames") is None:
                raise DataFileError(
                    f"training sample {index} ({row.get('video_id', '?')}) holds no frames; VCCV compresses the true video frames"
                )
        iframes, residuals = model.compress(torch.stack([torch.as_tensor(row["frames"]) for row in chosen]))
        return {"iframes": iframes, "residuals": residuals}

    return compute


def compress_samples(
    model: VccvCaptioner, samples, out_dir: str | Path, context=None, chunk: int = 16, progress: bool = False, keys=None
) -> tuple[Any, Any]:
    """The I-frames and residual frames ``(N, G, 3, S, S)`` of every video, computed once into
    ``out_dir/vccv.gops/`` and memory-mapped from there (:func:`snapcap.caption.rowcache.cached_rows`:
    one pass over the samples, by rank 0 under torchrun, resumable; RAM does not grow with the
    corpus)."""
    meta = {"keys": sample_keys(samples) if keys is None else keys, "compress": model.config.to_dict()}
    compute = _compress_rows(model, samples)
    arrays = cached_rows(Path(out_dir) / "vccv.gops", meta, len(samples), compute, context, chunk, progress, "compress (GOPs)")
    return arrays["iframes"], arrays["residuals"]


def train_vccv(
    samples, out_dir: str | Path, options: Mapping[str, Any] | VccvTrainConfig | None = None, progress: bool = True, vocab=None
) -> Path:
    """Train VCCV on true videos; returns the path of ``<out_dir>/vccv.pt``.

    The training videos are compressed once (GOPs: I-frames and residual frames, stored in
    ``out_dir/vccv.gops/`` and memory-mapped) and, with ``backbone="clip"``, their I-frame
    features computed once by the frozen tower (``out_dir/vccv.features/``), as the paper stores
    them; then CNN_r (and CNN_I for ``backbone="cnn"``), the RAE and the LSTM
    train with the caption cross-entropy (teacher forcing), resumable from ``vccv.ckpt``.

    Args:
        samples: a sequence of sample dicts with ``frames`` ``(T, B, H, W[, 3])`` and ``captions``
            (:mod:`snapcap.datasets.torch_data`).
        out_dir: output folder.
        options: one mapping of settings: ``preset`` (``tiny``/``paper``), any
            :class:`VccvConfig` field (``variant``, ``backbone``, ``gop_size``...) and any
            :class:`VccvTrainConfig` field (``epochs``, ``lr``, ``min_count``...) over the
            preset's :data:`VCCV_PRESETS` and :data:`VCCV_TRAIN_PRESETS`; or a
            :class:`VccvTrainConfig`.
        progress: progress bars.
        vocab: a :class:`~snapcap.caption.text.Vocabulary` (default: built from the samples'
            captions with ``min_count``, 3 by default as the paper).

    Raises:
        ConfigError: unknown option, or no captions.
        ShapeError: samples without frames of the expected shape.
    """
    preset, model_overrides, train_overrides = _split_options(options)
    if preset not in VCCV_TRAIN_PRESETS:
        raise ConfigError(f"unknown VCCV preset {preset!r}; expected one of {', '.join(VCCV_TRAIN_PRESETS)}")
    train = replace(VCCV_TRAIN_PRESETS[preset], **train_overrides)
    if len(samples) == 0:
        raise ConfigError("train_vccv needs at least one training sample")
    first = samples[0]
    if "frames" not in first or first["frames"] is None:
        raise DataFileError("VCCV trains on the true video frames and the samples hold none (a dataset made with --no-frames)")
    frames = _as_frames(first["frames"])
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    context = distributed_context(train.device)
    torch.manual_seed(train.seed)
    model_overrides.setdefault("B", int(frames.shape[2]))
    model_overrides.setdefault("T", int(frames.shape[1]))
    config = vccv_preset(preset, **model_overrides, vocab_size=max(4, len(vocab) if vocab is not None else 4))
    if (config.T, config.B) != (int(frames.shape[1]), int(frames.shape[2])):
        raise ShapeError(
            f"the samples have T={frames.shape[1]}, B={frames.shape[2]} but the options ask for T={config.T}, B={config.B}"
        )
    device = torch.device(train.device)
    if isinstance(config.decoder, str):  # --decoder native|lm:NAME
        choice = decoder_choice(config.decoder)
        config = replace(
            config, decoder=None if choice == "native" else lm_decoder_settings(choice, config.max_length, config.lm_queries)
        )
    compress_config = replace(config, decoder=None)
    if config.backbone == "clip":  # compression needs only the input size, not the tower
        compress_config = replace(
            config, backbone="cnn", image_size=teacher_image_size(config.clip_model), image_widths=(1,), residual_widths=(1,)
        )
    compressor = VccvCaptioner(compress_config, device="cpu")
    keys = sample_keys(samples)
    iframes, residuals = compress_samples(compressor, samples, out_dir, context, progress=progress and context.main, keys=keys)
    texts = [{"captions": captions} for captions in captions_of(samples)]  # no frame is read for these
    if vocab is None:
        vocab = codec_for(config.decoder) if is_lm_decoder(config.decoder) else build_vocabulary(texts, train.min_count)
    config = replace(config, vocab_size=len(vocab))
    torch.manual_seed(train.seed)
    model = VccvCaptioner(config, device=device, vocab=vocab)
    config = model.config  # with the language model's hash, when there is one
    features = None
    if model.clip is not None:
        tower = {k: v for k, v in config.to_dict().items() if k.startswith("clip")}

        def image_features(rows: range) -> dict[str, torch.Tensor]:
            return {"features": model.image_features(rows_of(iframes, rows).to(device))}

        with torch.no_grad():
            features = cached_rows(
                out_dir / "vccv.features",
                {"keys": keys, "compress": compressor.config.to_dict(), "tower": tower},
                len(samples),
                image_features,
                context,
                chunk=32,
                desc="I-frame features",
            )["features"]

    def loss_fn(indices, epoch):
        captions = encode_caption_batch(texts, indices, vocab, epoch, train.seed, min(train.max_length, config.max_length))
        feats = rows_of(features, indices).to(device) if features is not None else None
        loss = model.loss(
            rows_of(iframes, indices).to(device),
            rows_of(residuals, indices).to(device),
            captions,
            image_features=feats,
            label_smoothing=train.label_smoothing,
        )
        return {"loss": loss}

    trainable = [p for p in model.parameters() if p.requires_grad]
    fit_config = CaptionTrainConfig(
        batch_size=train.batch_size,
        weight_decay=train.weight_decay,
        warmup_epochs=train.warmup_epochs,
        seed=train.seed,
        device=train.device,
        checkpoint_every=train.checkpoint_every,
        log_every=train.log_every,
        amp=train.amp,
    )
    stamp = {"kind": "vccv", "config": config.to_dict(), "train": train.to_dict(), "count": len(samples), "vocab": len(vocab)}
    history = fit(
        "vccv",
        model,
        [{"params": trainable, "lr": train.lr}],
        loss_fn,
        len(samples),
        train.epochs,
        fit_config,
        out_dir,
        stamp,
        progress,
        context,
    )
    path = out_dir / "vccv.pt"
    if context.main:
        save_checkpoint(
            path,
            NAME,
            {
                "config": config.to_dict(),
                "train": train.to_dict(),
                "vocab": vocab.to_dict(),
                "state": model.state_dict(),
                "history": history,
            },
        )
    return path


def load(path: str | Path, device: str | torch.device = "cpu") -> tuple[VccvCaptioner, VccvConfig, Any]:
    """A trained VCCV model: ``(model, config, vocab)``, the model in eval mode (the registry's load function;
    :func:`snapcap.caption.registry.load_captioner` reads any checkpoint).

    Raises:
        DataFileError: missing, unreadable or foreign checkpoint, or weights that do not fit.
    """
    path = Path(path)
    if not path.is_file():
        raise DataFileError(f"{path}: no such VCCV checkpoint; make one with `snapcap train vccv --out {path.parent}`")
    state = read_checkpoint(path, NAME)
    # Checkpoints written before these fields existed: plain CNN stages, zero initial state.
    config = VccvConfig.from_dict({"cnn_norm": "none", "init_state": False, **state["config"]})
    vocab = codec_from_dict(state["vocab"])
    model = VccvCaptioner(config, device=device, vocab=vocab)
    missing, unexpected = model.load_state_dict(state["state"], strict=False)
    if missing or unexpected:
        raise DataFileError(
            f"{path}: weights do not fit the recorded architecture (missing {missing[:3]}, unexpected {unexpected[:3]})"
        )
    model.eval()
    return model, config, vocab


# --- the zoo hook (``snapcap train vccv``, ``snapcap eval --model vccv``) --------------------------

_CLI_TRAIN_KEYS = (
    "epochs",
    "batch_size",
    "lr",
    "warmup_epochs",
    "min_count",
    "seed",
    "device",
    "checkpoint_every",
    "label_smoothing",
    "amp",
)
_CLI_MODEL_KEYS = (
    "variant",
    "backbone",
    "gop_size",
    "block_size",
    "search_range",
    "residual_reduction",
    "source",
    "dropout",
    "B",
    "T",
    "decoder",
)


def _teacher_tower(path: str | Path) -> str:
    """The open_clip model name of a snapcap ``teacher.pt``'s CLIP tower."""
    path = Path(path)
    if not path.is_file():
        raise DataFileError(f"{path}: no such teacher checkpoint (make one with `snapcap train teacher --out {path.parent}`)")
    state = load_checkpoint(path)
    if not isinstance(state, dict) or state.get("kind") != "snapcap-captioner" or state.get("name") != "teacher":
        raise DataFileError(f"{path}: not a teacher checkpoint (made by `snapcap train teacher`)")
    return str(state["config"]["teacher"])


def options_from_cli(options: Mapping[str, Any] | None) -> dict[str, Any]:
    """The :func:`train_vccv` options of a ``snapcap train vccv`` command line (its ``dest`` dict).

    Keys left None keep the preset's defaults; the data arguments (``corpus``, ``mask``...) are
    not VCCV's and are dropped. ``teacher`` (a ``teacher.pt``) selects ``backbone="clip"`` with
    that teacher's trained tower, frozen; ``pretrained`` overrides the CLIP pretrained tag.
    """
    options = dict(options or {})
    out: dict[str, Any] = {"preset": str(options.get("preset") or "tiny")}
    for key in _CLI_TRAIN_KEYS + _CLI_MODEL_KEYS:
        if options.get(key) is not None:
            out[key] = options[key]
    if options.get("pretrained") is not None:
        tag = str(options["pretrained"])
        out["clip_pretrained"] = None if tag.lower() == "none" else tag
    if options.get("teacher") is not None:
        out.update(
            backbone="clip",
            clip_model=_teacher_tower(options["teacher"]),
            clip_checkpoint=str(options["teacher"]),
            clip_pretrained=None,
        )
    return out


def train(samples, out_dir: str | Path, options: Mapping[str, Any] | None = None, progress: bool = True) -> Path:
    """The zoo's train function: :func:`train_vccv` with command-line options (:func:`options_from_cli`)."""
    return train_vccv(samples, out_dir, options_from_cli(options), progress=progress)


def add_arguments(group) -> None:
    """``snapcap train vccv`` options (the vocabulary's --min-count defaults to the paper's 3)."""
    add_decoder_argument(group, "native (the paper's LSTM; an lm: model reads the RAE through learned queries)")
    group.add_argument(
        "--variant",
        choices=VARIANTS,
        default=None,
        help="model variant (default rae, the full model; the others are the paper's ablations)",
    )
    group.add_argument(
        "--backbone",
        choices=["cnn", "clip"],
        default=None,
        help="I-frame features: a CNN trained end to end (tiny default) or a frozen CLIP ViT",
    )
    group.add_argument(
        "--teacher",
        type=Path,
        default=None,
        help="a snapcap teacher.pt: its trained CLIP tower gives the I-frame features (frozen)",
    )
    group.add_argument(
        "--gop-size", type=int, default=None, help="frames per group of pictures (default B: one GOP per snapshot's frames)"
    )
    group.add_argument("--block-size", type=int, default=None, help="block size of the motion search (default 8)")
    group.add_argument("--search-range", type=int, default=None, help="largest motion searched, pixels (default 4)")
    group.add_argument(
        "--residual-reduction",
        choices=["mean-abs", "mean", "last"],
        default=None,
        help="how a GOP's residuals make one frame (default mean-abs)",
    )
    group.add_argument(
        "--source",
        choices=["emulated", "codec"],
        default=None,
        help="GOPs from the block-matching emulation (default) or a real codec through PyAV",
    )
    group.add_argument("--dropout", type=float, default=None, help="dropout (tiny preset 0.2; paper preset 0.5, the paper's)")
    group.set_defaults(min_count=VCCV_DEFAULTS["min_count"])


def image_size(options: Mapping[str, Any] | None) -> int:
    """The frame size of simulated training data: the model's input size for these options."""
    cli = options_from_cli(options)
    preset = vccv_preset(cli["preset"])
    if cli.get("backbone", preset.backbone) == "clip":
        return teacher_image_size(cli.get("clip_model", preset.clip_model))
    return int(preset.image_size)
