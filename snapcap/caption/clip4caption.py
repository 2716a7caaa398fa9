"""CLIP4Caption (Tang et al., ACM MM 2021) and its consensus ensemble, as a zoo captioner.

The model (paper, Sec. 2):

    F_v  = ViT(v)      CLIP frame embeddings sampled at 1 fps: (n, d), d = 512 for ViT-B/16
    F_ve = TE(F_v)     a one-layer transformer video encoder (width D)
    t    = TD(F_ve)    a three-layer transformer decoder (cross-attention to F_ve), trained
                       with the cross-entropy caption loss only

**Frame sampling.** snapcap samples carry ``T·B`` frames ``(T, B, H, W[, 3])`` and no clock, so
the paper's "1 fps" becomes: ``frames = n`` frames evenly spaced over the clip (centres of n
equal windows); with ``clip_fps`` (the frame rate of the clip's frames) given, n =
``round(T·B / clip_fps · fps)`` (``fps`` = 1 as the paper). The default n = T: one frame per
coded snapshot (the middle one of its B frames).

**Frame encoder** (the CLIP image tower, :class:`snapcap.caption.teacher.ClipTeacher`):

* ``paper`` preset: open_clip ``ViT-B-16`` with ``pretrained="openai"`` weights (loaded from the
  local cache; snapcap never downloads), frozen, as the paper extracts features once. TE and TD
  have width 768 and 12 heads (UniVL's, whose weights the paper starts from; here they start
  from random initialisation: UniVL weights are not shipped).
* ``tiny`` preset (offline, CPU): the ``snapcap-tiny-vit`` tower (64×64, d = 32), width 64.
  With ``teacher`` (a ``teacher.pt`` of ``snapcap train teacher``) the tower is that teacher's
  trained CLIP tower, frozen; otherwise it is a randomly initialised tiny tower **trained from
  scratch end to end** with the caption loss (``freeze_clip=True`` keeps it frozen-random
  instead). A frozen tower's frame features are computed once per video and cached
  (``<out>/clip4caption.features.pt``, keyed by the videos' ids and frame checksums).

**Ensemble** (paper, Sec. 2.3): for the captions T_1..T_n of one video by n models, the score of
T_i is metric(refs = the other n−1 captions, hyp = T_i); the caption with the highest score wins
(:func:`ensemble_select`; ties go to the earliest model). ``ensemble:<a>+<b>+...[@metric]`` in
:func:`snapcap.caption.registry.create_captioner` (and ``snapcap eval/caption --model``) builds
an :class:`EnsembleCaptioner` of registry names or checkpoint files.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from snapcap.caption.registry import Captioner
from snapcap.errors import ConfigError, DataFileError, InvalidValueError, ShapeError

__all__ = [
    "Clip4CaptionConfig",
    "CLIP4CAPTION_PRESETS",
    "TransformerCaptionDecoder",
    "Clip4Caption",
    "sample_frame_indices",
    "select_frames",
    "frame_count",
    "train",
    "load",
    "add_arguments",
    "image_size",
    "consensus_scores",
    "ensemble_select",
    "EnsembleCaptioner",
    "create_ensemble",
    "ENSEMBLE_METRICS",
]

NAME = "clip4caption"
PAD, BOS, EOS, UNK = 0, 1, 2, 3


# --- configuration ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Clip4CaptionConfig:
    """Everything that rebuilds a CLIP4Caption model (stored in its checkpoint).

    Attributes:
        clip: open_clip model name of the frame encoder (``ViT-B-16``, ``snapcap-tiny-vit``).
        pretrained: open_clip pretrained tag (``openai``) or None (random initialisation).
        teacher: a snapcap ``teacher.pt`` whose CLIP tower is the frame encoder (or None).
        train_clip: train the tower with the caption loss (False: frozen, features cached).
        frames: n, frames per video (0: T, one per snapshot); see ``fps``/``clip_fps``.
        fps, clip_fps: with ``clip_fps`` set, n = round(T·B / clip_fps · fps).
        width, heads: D and the attention heads of TE and TD.
        encoder_layers, decoder_layers: 1 and 3 in the paper.
        dropout, max_length: dropout of TE/TD; the longest caption in tokens (BOS, EOS included).
        B, T: the data the model was trained on (frames per snapshot, snapshots per video).
    """

    clip: str = "snapcap-tiny-vit"
    pretrained: str | None = None
    teacher: str | None = None
    train_clip: bool = True
    frames: int = 0
    fps: float = 1.0
    clip_fps: float | None = None
    width: int = 64
    heads: int = 4
    encoder_layers: int = 1
    decoder_layers: int = 3
    dropout: float = 0.1
    max_length: int = 30
    B: int = 8  # noqa: N815
    T: int = 4  # noqa: N815

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


CLIP4CAPTION_PRESETS: dict[str, Clip4CaptionConfig] = {
    "tiny": Clip4CaptionConfig(),
    "paper": Clip4CaptionConfig(clip="ViT-B-16", pretrained="openai", train_clip=False, fps=1.0, width=768, heads=12, dropout=0.1),
}
"""``tiny``: offline CPU size; ``paper``: frozen OpenAI ViT-B/16, D = 768, 1 + 3 layers."""

TRAIN_DEFAULTS: dict[str, dict[str, Any]] = {
    "tiny": {"epochs": 30, "batch_size": 16, "lr": 1e-3, "warmup_epochs": 1},
    "paper": {"epochs": 30, "batch_size": 32, "lr": 1e-4, "warmup_epochs": 1},
}
"""Optimisation defaults per preset (AdamW, weight decay 1e-4, cosine schedule)."""


def frame_count(config: Clip4CaptionConfig) -> int:
    """n, the frames sampled per video for this configuration."""
    total = int(config.T) * int(config.B)
    if config.clip_fps:
        return max(1, min(total, int(round(total / float(config.clip_fps) * float(config.fps)))))
    n = int(config.frames) or int(config.T)
    return max(1, min(total, n))


def sample_frame_indices(total: int, count: int) -> np.ndarray:
    """``count`` frame indices evenly spread over ``total`` frames: the centres of equal windows."""
    if total < 1 or count < 1:
        raise InvalidValueError(f"need total >= 1 and count >= 1 frames, got total={total}, count={count}")
    return np.minimum(((np.arange(count) + 0.5) * total / count).astype(np.int64), total - 1)


def select_frames(frames: torch.Tensor, count: int) -> torch.Tensor:
    """Frames ``(N, T, B, H, W[, 3])`` -> ``(N, count, H, W[, 3])`` evenly spread over the T·B frames."""
    rgb = frames.ndim == 6
    if frames.ndim not in (5, 6):
        raise ShapeError(f"frames must be (N, T, B, H, W[, 3]), got {tuple(frames.shape)}")
    flat = frames.flatten(1, 2)
    index = torch.as_tensor(sample_frame_indices(int(flat.shape[1]), count), device=frames.device)
    return flat.index_select(1, index)


# --- building blocks ----------------------------------------------------------------------------


def create_clip(name: str, pretrained: str | None, device: str | torch.device = "cpu"):
    """A whole open_clip CLIP model (image and text towers), never downloading weights."""
    from snapcap.caption.teacher import _open_clip, _resolve_source, quiet_random_init
    from snapcap.errors import SnapcapError

    open_clip = _open_clip()
    source, extra = _resolve_source(open_clip, name, pretrained, None, False)
    try:
        with quiet_random_init(source):
            return open_clip.create_model(name, pretrained=source, device=device, **extra)
    except SnapcapError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise ConfigError(f"open_clip cannot build {name!r} (pretrained={pretrained!r}): {exc}") from exc


def build_frame_encoder(config: Clip4CaptionConfig, device: str | torch.device = "cpu", load_weights: bool = True):
    """The CLIP image tower of a config: pretrained, a snapcap teacher's, or random.

    ``load_weights=False`` builds the architecture only (when a checkpoint supplies the weights).
    """
    from snapcap.caption.teacher import ClipTeacher

    frozen = not config.train_clip
    if not load_weights:
        return ClipTeacher.create(config.clip, pretrained=None, device=device, frozen=frozen)
    if config.teacher:
        path = Path(config.teacher)
        if not path.is_file():
            raise DataFileError(f"{path}: no such teacher checkpoint (make one with `snapcap train teacher --out {path.parent}`)")
        return ClipTeacher.create(config.clip, pretrained=None, checkpoint=path, device=device, frozen=frozen)
    return ClipTeacher.create(config.clip, pretrained=config.pretrained, device=device, frozen=frozen)


def teacher_tower_name(path: str | Path) -> str:
    """The open_clip model name of a snapcap teacher checkpoint's tower."""
    from snapcap.caption.train import _load

    state = _load(Path(path))
    if not isinstance(state, dict) or state.get("kind") != "snapcap-captioner" or state.get("name") != "teacher":
        raise DataFileError(f"{path}: not a teacher checkpoint (made by `snapcap train teacher`)")
    return str(state["config"]["teacher"])


class TransformerCaptionDecoder(nn.Module):
    """A pre-LN transformer decoder with cross-attention to a memory, output tied to the embedding.

    ``forward(memory (N, S, D), tokens (N, L)) -> logits (N, L, V)``: ``[:, i]`` predicts token
    ``i + 1`` (causal self-attention over ``BOS w_1 .. w_n EOS PAD ..``, right padding only).
    ``memory_padding`` (N, S) bool marks memory positions to ignore (True), in every method.
    """

    def __init__(self, vocab_size: int, width: int, layers: int, heads: int, dropout: float = 0.1, max_length: int = 30):
        super().__init__()
        if width % heads:
            raise ConfigError(f"the decoder width {width} must be a multiple of its heads {heads}")
        self.vocab_size, self.width, self.max_length = int(vocab_size), int(width), int(max_length)
        self.token_embedding = nn.Embedding(vocab_size, width)
        self.position_embedding = nn.Parameter(torch.randn(max_length, width) * 0.02)
        layer = nn.TransformerDecoderLayer(width, heads, 4 * width, dropout, activation="gelu", batch_first=True, norm_first=True)
        self.layers = nn.TransformerDecoder(layer, layers)
        self.norm = nn.LayerNorm(width)
        self.drop = nn.Dropout(dropout)
        nn.init.normal_(self.token_embedding.weight, std=0.02)

    def _check(self, memory: torch.Tensor, tokens: torch.Tensor) -> None:
        if memory.ndim != 3 or memory.shape[-1] != self.width:
            raise ShapeError(f"memory must be (N, S, {self.width}), got {tuple(memory.shape)}")
        if tokens.ndim != 2 or tokens.shape[0] != memory.shape[0]:
            raise ShapeError(f"tokens must be (N, L) with N = {memory.shape[0]}, got {tuple(tokens.shape)}")
        if tokens.shape[1] > self.max_length:
            raise ShapeError(f"tokens have length {tokens.shape[1]}; this decoder takes at most max_length={self.max_length}")

    def hidden_states(self, memory: torch.Tensor, tokens: torch.Tensor, memory_padding: torch.Tensor | None = None) -> torch.Tensor:
        """``(N, L, D)`` final hidden states of the text positions."""
        self._check(memory, tokens)
        length = tokens.shape[1]
        x = self.drop(self.token_embedding(tokens.long()) + self.position_embedding[:length])
        causal = torch.triu(torch.full((length, length), float("-inf"), device=x.device), diagonal=1)
        return self.norm(self.layers(x, memory, tgt_mask=causal, memory_key_padding_mask=memory_padding))

    def forward(self, memory: torch.Tensor, tokens: torch.Tensor, memory_padding: torch.Tensor | None = None) -> torch.Tensor:
        return F.linear(self.hidden_states(memory, tokens, memory_padding), self.token_embedding.weight)

    def loss(self, memory: torch.Tensor, tokens: torch.Tensor, label_smoothing: float = 0.0, memory_padding: torch.Tensor | None = None) -> torch.Tensor:
        """Mean cross-entropy of the non-PAD targets (words and EOS)."""
        if tokens.ndim != 2 or tokens.shape[1] < 2:
            raise ShapeError(f"tokens must be (N, L) with L >= 2 (BOS and a target), got {tuple(tokens.shape)}")
        logits = self(memory, tokens[:, :-1], memory_padding)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), tokens[:, 1:].reshape(-1).long(), ignore_index=PAD, label_smoothing=label_smoothing)

    def _next_logprobs(self, memory: torch.Tensor, tokens: torch.Tensor, words: int, min_length: int, last: bool, memory_padding: torch.Tensor | None = None) -> torch.Tensor:
        logits = self(memory, tokens, memory_padding)[:, -1].float()
        logprobs = logits.log_softmax(dim=-1)
        logprobs[:, PAD] = -math.inf
        logprobs[:, BOS] = -math.inf
        if words < min_length:
            logprobs[:, EOS] = -math.inf
        if last:  # the sequence is full: only EOS
            eos = logprobs[:, EOS].clone()
            logprobs.fill_(-math.inf)
            logprobs[:, EOS] = torch.where(torch.isfinite(eos), eos, torch.zeros_like(eos))
        return logprobs

    @torch.no_grad()
    def generate(
        self,
        memory: torch.Tensor,
        method: str = "greedy",
        beam_size: int = 3,
        length_penalty: float = 1.0,
        max_length: int | None = None,
        min_length: int = 1,
        memory_padding: torch.Tensor | None = None,
        **_: Any,
    ) -> list[list[int]]:
        """Token ids (no BOS/EOS) per row: greedy, or beam search scored by logprob / length ** length_penalty."""
        if method not in ("greedy", "beam"):
            raise ConfigError(f"unknown generation method {method!r}; expected 'greedy' or 'beam'")
        max_length = self.max_length if max_length is None else int(max_length)
        if not 2 <= max_length <= self.max_length:
            raise InvalidValueError(f"max_length must be in [2, {self.max_length}], got {max_length}")
        if method == "beam" and int(beam_size) < 1:
            raise InvalidValueError(f"beam_size must be >= 1, got {beam_size}")
        max_words = max_length - 2
        was_training = self.training
        self.eval()
        try:
            if method == "greedy" or int(beam_size) == 1:
                return self._greedy(memory, max_words, int(min_length), memory_padding)
            return self._beam(memory, int(beam_size), float(length_penalty), max_words, int(min_length), memory_padding)
        finally:
            self.train(was_training)

    def _greedy(self, memory: torch.Tensor, max_words: int, min_length: int, memory_padding: torch.Tensor | None = None) -> list[list[int]]:
        rows = memory.shape[0]
        tokens = torch.full((rows, 1), BOS, dtype=torch.long, device=memory.device)
        done = torch.zeros(rows, dtype=torch.bool, device=memory.device)
        for words in range(max_words + 1):
            choice = self._next_logprobs(memory, tokens, words, min_length, words == max_words, memory_padding).argmax(dim=-1)
            choice = torch.where(done, torch.full_like(choice, PAD), choice)
            tokens = torch.cat([tokens, choice[:, None]], dim=1)
            done |= choice == EOS
            if bool(done.all()):
                break
        out = []
        for row in tokens[:, 1:].tolist():
            words_out = []
            for token in row:
                if token in (EOS, PAD):
                    break
                words_out.append(int(token))
            out.append(words_out)
        return out

    def _beam(self, memory: torch.Tensor, beams: int, length_penalty: float, max_words: int, min_length: int, memory_padding: torch.Tensor | None = None) -> list[list[int]]:
        rows = memory.shape[0]
        expanded = memory.repeat_interleave(beams, dim=0)
        padding = None if memory_padding is None else memory_padding.repeat_interleave(beams, dim=0)
        tokens = torch.full((rows * beams, 1), BOS, dtype=torch.long, device=memory.device)
        scores = torch.full((rows, beams), -math.inf, device=memory.device)
        scores[:, 0] = 0.0
        finished: list[list[tuple[float, list[int]]]] = [[] for _ in range(rows)]
        for words in range(max_words + 1):
            logprobs = self._next_logprobs(expanded, tokens, words, min_length, words == max_words, padding)
            vocab = logprobs.shape[-1]
            total = (scores.reshape(-1, 1) + logprobs).reshape(rows, beams * vocab)
            top_scores, top_index = total.topk(min(2 * beams, total.shape[1]), dim=1)
            next_tokens, next_scores = tokens.new_full((rows, beams, tokens.shape[1] + 1), PAD), torch.full((rows, beams), -math.inf, device=memory.device)
            for row in range(rows):
                kept = 0
                for score, index in zip(top_scores[row].tolist(), top_index[row].tolist()):
                    if not math.isfinite(score):
                        break
                    beam, token = divmod(index, vocab)
                    history = tokens[row * beams + beam]
                    if token == EOS:
                        length = words + 1
                        finished[row].append((score / (length**length_penalty), history[1:].tolist()))
                        continue
                    if kept < beams:
                        next_tokens[row, kept, :-1] = history
                        next_tokens[row, kept, -1] = token
                        next_scores[row, kept] = score
                        kept += 1
            tokens = next_tokens.reshape(rows * beams, -1)
            scores = next_scores
            if all(len(done) >= beams for done in finished):
                break
        out = []
        for row in range(rows):
            if finished[row]:
                out.append(max(finished[row], key=lambda item: item[0])[1])
            else:
                out.append([t for t in tokens[row * beams, 1:].tolist() if t not in (PAD, EOS)])
        return out


class Clip4Caption(nn.Module):
    """CLIP frame features -> one-layer transformer encoder TE -> three-layer transformer decoder TD.

    Args:
        config: the architecture and data layout.
        vocab_size: the caption vocabulary's size.
        encoder: the CLIP image tower (:class:`~snapcap.caption.teacher.ClipTeacher`).
    """

    needs_fixed_size = False

    def __init__(self, config: Clip4CaptionConfig, vocab_size: int, encoder):
        super().__init__()
        self.config = config
        self.encoder = encoder
        self.frames = frame_count(config)
        width = int(config.width)
        # frame features are standardised with the training set's statistics (a frozen tower's
        # features of different videos can differ by a few percent only: a random tiny tower's)
        self.register_buffer("feature_mean", torch.zeros(encoder.embed_dim))
        self.register_buffer("feature_std", torch.ones(encoder.embed_dim))
        self.feature_proj = nn.Sequential(nn.Linear(encoder.embed_dim, width), nn.LayerNorm(width))
        self.frame_position = nn.Parameter(torch.randn(self.frames, width) * 0.02)
        layer = nn.TransformerEncoderLayer(width, config.heads, 4 * width, config.dropout, activation="gelu", batch_first=True, norm_first=True)
        self.video_encoder = nn.TransformerEncoder(layer, config.encoder_layers, enable_nested_tensor=False)
        self.video_norm = nn.LayerNorm(width)
        self.decoder = TransformerCaptionDecoder(vocab_size, width, config.decoder_layers, config.heads, config.dropout, config.max_length)
        self.name = NAME

    @property
    def image_size(self) -> int:
        return int(self.encoder.image_size)

    @property
    def feature_dim(self) -> int:
        return int(self.encoder.embed_dim)

    def frame_features(self, frames: torch.Tensor) -> torch.Tensor:
        """F_v: frames ``(N, T, B, H, W[, 3])`` in [0, 1] -> ``(N, n, d)`` CLIP embeddings of n sampled frames."""
        if frames.ndim not in (5, 6):
            raise ShapeError(f"frames must be (N, T, B, H, W[, 3]), got {tuple(frames.shape)}")
        chosen = select_frames(frames, self.frames)
        return self.encoder.encode(chosen, rgb=frames.ndim == 6)

    def encode(self, features: torch.Tensor) -> torch.Tensor:
        """F_ve = TE(F_v): ``(N, n, d)`` -> ``(N, n, D)``."""
        if features.ndim != 3 or features.shape[1] != self.frames or features.shape[2] != self.feature_dim:
            raise ShapeError(f"frame features must be (N, {self.frames}, {self.feature_dim}), got {tuple(features.shape)}")
        x = self.feature_proj((features - self.feature_mean) / self.feature_std) + self.frame_position
        return self.video_norm(self.video_encoder(x))

    def set_feature_stats(self, features: torch.Tensor) -> None:
        """Standardise frame features ``(N, n, d)`` of the training set from now on."""
        flat = features.reshape(-1, features.shape[-1]).float()
        self.feature_mean.copy_(flat.mean(dim=0))
        self.feature_std.copy_(flat.std(dim=0).clamp_min(1e-6) if flat.shape[0] > 1 else torch.ones_like(self.feature_std))

    def loss(self, features: torch.Tensor, captions: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
        return self.decoder.loss(self.encode(features), captions, label_smoothing)

    @torch.no_grad()
    def caption(self, frames: torch.Tensor, **generate: Any) -> list[list[int]]:
        return self.decoder.generate(self.encode(self.frame_features(frames)), **generate)


# --- training -----------------------------------------------------------------------------------


def add_arguments(group) -> None:
    """``snapcap train clip4caption`` options."""
    group.add_argument("--teacher", type=Path, default=None, help="a snapcap teacher.pt: its trained CLIP tower is the frame encoder (frozen)")
    group.add_argument("--frames", type=int, default=None, help="frames sampled per video (default: T, one per snapshot)")
    group.add_argument("--clip-fps", type=float, default=None, help="frame rate of the clip's frames: then frames = T*B / clip-fps * --fps")
    group.add_argument("--fps", type=float, default=None, help="frames sampled per second with --clip-fps (default 1, the paper's)")
    group.add_argument("--freeze-clip", action="store_true", help="keep a randomly initialised tiny tower frozen (default: train it from scratch)")
    group.add_argument("--width", type=int, default=None, help="width D of TE and TD (default: the preset's)")


def image_size(options: Mapping[str, Any]) -> int:
    """The frame size of simulated training data: the tower's input size."""
    from snapcap.caption.registry import teacher_image_size

    return teacher_image_size(_clip_name(options, CLIP4CAPTION_PRESETS))


def _clip_name(options: Mapping[str, Any], presets: Mapping[str, Any]) -> str:
    from snapcap.caption.zoo import option

    teacher = option(options, "teacher", None)
    if teacher:
        return teacher_tower_name(teacher)
    preset = str(option(options, "preset", "tiny"))
    if preset not in presets:
        raise ConfigError(f"--preset {preset!r}: expected one of {', '.join(presets)}")
    return presets[preset].clip


def _pretrained_override(options: Mapping[str, Any]) -> dict[str, Any]:
    from snapcap.caption.zoo import option

    value = option(options, "pretrained", None)
    if value is None:
        return {}
    return {"pretrained": None if str(value).lower() == "none" else str(value)}


def config_from_options(options: Mapping[str, Any], B: int, T: int) -> Clip4CaptionConfig:  # noqa: N803
    """The model configuration of a preset with the given options applied."""
    from snapcap.caption.zoo import option

    preset = str(option(options, "preset", "tiny"))
    if preset not in CLIP4CAPTION_PRESETS:
        raise ConfigError(f"--preset {preset!r}: expected one of {', '.join(CLIP4CAPTION_PRESETS)}")
    config = replace(CLIP4CAPTION_PRESETS[preset], B=int(B), T=int(T), **_pretrained_override(options))
    teacher = option(options, "teacher", None)
    if teacher:
        config = replace(config, teacher=str(Path(teacher).resolve()), clip=teacher_tower_name(teacher), pretrained=None, train_clip=False)
    elif option(options, "freeze_clip", False):
        config = replace(config, train_clip=False)
    elif config.pretrained is None and not config.teacher:
        config = replace(config, train_clip=True)
    for key in ("frames", "fps", "clip_fps", "width"):
        value = option(options, key, None)
        if value is not None:
            config = replace(config, **{key: value})
    if config.frames < 0 or (config.clip_fps is not None and config.clip_fps <= 0) or config.fps <= 0:
        raise ConfigError(f"frames must be >= 0 and fps, clip_fps > 0; got frames={config.frames}, fps={config.fps}, clip_fps={config.clip_fps}")
    if config.width < 1 or config.width % config.heads:
        raise ConfigError(f"--width must be a positive multiple of the {config.heads} heads, got {config.width}")
    return config


def train_config(options: Mapping[str, Any], defaults: Mapping[str, Any]):
    """A :class:`~snapcap.caption.train.CaptionTrainConfig` from options over per-preset defaults."""
    from snapcap.caption.train import CaptionTrainConfig
    from snapcap.caption.zoo import option

    values = {key: option(options, key, defaults[key]) for key in ("epochs", "batch_size", "lr", "warmup_epochs")}
    for key in ("epochs", "batch_size"):
        if int(values[key]) < 1:
            raise ConfigError(f"{key} must be >= 1, got {values[key]}")
    return CaptionTrainConfig(
        epochs=int(values["epochs"]),
        batch_size=int(values["batch_size"]),
        lr=float(values["lr"]),
        warmup_epochs=int(values["warmup_epochs"]),
        min_count=int(option(options, "min_count", 1)),
        seed=int(option(options, "seed", 0)),
        device=str(option(options, "device", "cpu")),
        checkpoint_every=int(option(options, "checkpoint_every", 50)),
        label_smoothing=float(option(options, "label_smoothing", 0.0)),
    )


def materialise(samples: Any) -> list[dict[str, Any]]:
    """Index every sample once (simulated data renders on access)."""
    rows = [samples[i] for i in range(len(samples))]
    if not rows:
        raise ConfigError("no training samples")
    for position, row in enumerate(rows):
        if row.get("frames") is None:
            raise DataFileError(f"training sample {position} ({row.get('video_id', '?')}) holds no frames; frame captioners train on video frames")
    return rows


def data_layout(rows: Sequence[Mapping[str, Any]]) -> tuple[int, int]:
    frames = torch.as_tensor(rows[0]["frames"])
    if frames.ndim not in (4, 5):
        raise ShapeError(f"sample frames must be (T, B, H, W[, 3]), got {tuple(frames.shape)}")
    return int(frames.shape[1]), int(frames.shape[0])


def stack_frames(rows: Sequence[Mapping[str, Any]], indices, device) -> torch.Tensor:
    out = torch.stack([torch.as_tensor(rows[int(i)]["frames"]) for i in indices]).to(device)
    return out.float() / 255.0 if out.dtype == torch.uint8 else out.float()


def cached_features(model, rows, out_dir: Path, stem: str, device, chunk: int = 16) -> torch.Tensor:
    """Frozen-tower frame features of every row, ``(N, n, d)`` on the CPU, cached in ``out_dir/<stem>.features.pt``."""
    from snapcap.caption.train import _sample_keys, _save

    path = out_dir / f"{stem}.features.pt"
    keys = _sample_keys(rows)
    tower = {"clip": model.config.clip, "pretrained": model.config.pretrained, "teacher": model.config.teacher, "frames": model.frames}
    if path.is_file():
        try:
            state = torch.load(path, map_location="cpu", weights_only=False)
            if state.get("keys") == keys and state.get("tower") == tower:
                return state["features"]
        except Exception:  # noqa: BLE001 - a damaged cache is recomputed
            pass
    parts = []
    with torch.no_grad():
        for start in range(0, len(rows), chunk):
            parts.append(model.frame_features(stack_frames(rows, range(start, min(len(rows), start + chunk)), device)).cpu())
    features = torch.cat(parts)
    _save(path, {"keys": keys, "tower": tower, "features": features})
    return features


def train(samples: Any, out_dir: str | Path, options: Mapping[str, Any] | None = None, progress: bool = True) -> Path:
    """Train CLIP4Caption on sample dicts (with frames and captions); returns ``out_dir/clip4caption.pt``.

    Resumable: an interrupted run continues from ``out_dir/clip4caption.ckpt`` when rerun with
    the same options. See the module docstring for the presets and the frame encoder.
    """
    from snapcap.caption.train import _caption_batch, build_vocabulary, distributed_context
    from snapcap.caption.zoo import fit_and_save, option

    options = dict(options or {})
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = materialise(samples)
    B, T = data_layout(rows)  # noqa: N806
    config = config_from_options(options, B, T)
    preset = str(option(options, "preset", "tiny"))
    training = train_config(options, TRAIN_DEFAULTS.get(preset, TRAIN_DEFAULTS["tiny"]))
    context = distributed_context(training.device)
    device = torch.device(training.device)
    vocab = build_vocabulary(rows, training.min_count)
    torch.manual_seed(training.seed)
    model = Clip4Caption(config, len(vocab), build_frame_encoder(config, device)).to(device)
    if config.train_clip:
        model.encoder.unfreeze()
    features = None if config.train_clip else cached_features(model, rows, out_dir, NAME, device)
    if features is not None:
        model.set_feature_stats(features.to(device))
    max_length = min(training.max_length, config.max_length)

    def loss_fn(indices, epoch):
        captions = _caption_batch(rows, indices, vocab, epoch, training.seed, max_length).to(device)
        if features is not None:
            feats = features[torch.as_tensor(np.asarray(indices), dtype=torch.long)].to(device)
        else:
            feats = model.frame_features(stack_frames(rows, indices, device))
        return {"loss": model.loss(feats, captions, training.label_smoothing)}

    return fit_and_save(NAME, model, loss_fn, len(rows), config, training, vocab, out_dir, progress, context)


def load(path: str | Path, device: str = "cpu"):
    """``(model, Clip4CaptionConfig, Vocabulary)`` of a ``clip4caption.pt``."""
    from snapcap.caption.text import Vocabulary
    from snapcap.caption.zoo import read_checkpoint

    path = Path(path)
    state = read_checkpoint(path, NAME)
    config = Clip4CaptionConfig(**state["config"])
    vocab = Vocabulary.from_dict(state["vocab"])
    model = Clip4Caption(replace(config, train_clip=False), len(vocab), build_frame_encoder(replace(config, train_clip=False), device, load_weights=False))
    try:
        model.load_state_dict(state["state"])
    except RuntimeError as exc:
        raise DataFileError(f"{path}: weights do not fit the recorded architecture ({exc})") from exc
    model.to(device).eval()
    return model, config, vocab


# --- the ensemble ---------------------------------------------------------------------------------


def _words(caption: str) -> list[str]:
    from snapcap.caption.text import tokenize

    return [w for w in tokenize(caption) if any(c.isalnum() for c in w)]


def _ngrams(words: Sequence[str], n: int) -> Counter:
    return Counter(tuple(words[i : i + n]) for i in range(len(words) - n + 1))


def bleu4(hypothesis: str, references: Sequence[str]) -> float:
    """Sentence BLEU-4 against several references (closest reference length; add-one smoothing for n > 1)."""
    hyp = _words(hypothesis)
    refs = [_words(r) for r in references]
    if not hyp or not refs:
        return 0.0
    log_precision = 0.0
    for n in range(1, 5):
        counts = _ngrams(hyp, n)
        best: Counter = Counter()
        for ref in refs:
            best |= _ngrams(ref, n)
        matched = sum(min(c, best[g]) for g, c in counts.items())
        total = max(0, len(hyp) - n + 1)
        if n == 1:
            if matched == 0:
                return 0.0
            log_precision += math.log(matched / total)
        else:
            log_precision += math.log((matched + 1) / (total + 1))
    closest = min((abs(len(r) - len(hyp)), len(r)) for r in refs)[1]
    brevity = 1.0 if len(hyp) > closest else math.exp(1 - closest / max(1, len(hyp)))
    return brevity * math.exp(log_precision / 4)


def document_frequency(documents: Sequence[Sequence[str]]) -> tuple[Counter, int]:
    """CIDEr's n-gram document frequencies (n = 1..4) over documents (each a list of captions)."""
    df: Counter = Counter()
    for captions in documents:
        seen = set()
        for caption in captions:
            words = _words(caption)
            for n in range(1, 5):
                seen.update(_ngrams(words, n))
        df.update(seen)
    return df, len(documents)


def cider_d(hypothesis: str, references: Sequence[str], df: Counter | None = None, documents: int = 0, sigma: float = 6.0) -> float:
    """CIDEr-D of one caption against references (×10 as pycocoevalcap; clipped counts, length penalty).

    ``df``/``documents``: document frequencies of :func:`document_frequency`; with fewer than two
    documents the IDF is uniform (1 for every n-gram): TF cosine similarity.
    """
    hyp = _words(hypothesis)
    refs = [_words(r) for r in references]
    if not refs:
        return 0.0
    uniform = df is None or documents < 2
    log_docs = math.log(float(max(1, documents)))

    def vector(words: list[str], n: int) -> dict:
        counts = _ngrams(words, n)
        if uniform:
            return {g: float(c) for g, c in counts.items()}
        return {g: float(c) * (log_docs - math.log(max(1.0, float(df[g])))) for g, c in counts.items()}

    score = 0.0
    for ref in refs:
        delta = len(hyp) - len(ref)
        for n in range(1, 5):
            vh, vr = vector(hyp, n), vector(ref, n)
            norm_h = math.sqrt(sum(v * v for v in vh.values()))
            norm_r = math.sqrt(sum(v * v for v in vr.values()))
            dot = sum(min(v, vr[g]) * vr[g] for g, v in vh.items() if g in vr)
            if norm_h > 0 and norm_r > 0:
                score += dot / (norm_h * norm_r) * math.exp(-(delta**2) / (2 * sigma**2)) / 4
    return 10.0 * score / len(refs)


ENSEMBLE_METRICS = ("cider", "bleu4")
"""Consensus metrics of :func:`ensemble_select`."""


def consensus_scores(candidates: Sequence[str], metric: str = "cider", df: Counter | None = None, documents: int = 0) -> list[float]:
    """S_i = metric(refs = the other captions, hyp = candidates[i]) for each of the n >= 2 candidates."""
    if metric not in ENSEMBLE_METRICS:
        raise ConfigError(f"unknown ensemble metric {metric!r}; expected one of {', '.join(ENSEMBLE_METRICS)}")
    if len(candidates) < 2:
        raise InvalidValueError(f"an ensemble needs at least 2 captions per video, got {len(candidates)}")
    scores = []
    for i, caption in enumerate(candidates):
        others = [c for j, c in enumerate(candidates) if j != i]
        scores.append(bleu4(caption, others) if metric == "bleu4" else cider_d(caption, others, df, documents))
    return scores


def ensemble_select(candidates_per_video: Sequence[Sequence[str]], metric: str = "cider") -> list[int]:
    """CLIP4Caption's ensemble: for each video, the index of the caption with the best consensus score.

    Args:
        candidates_per_video: per video, the captions of the n models (same order for every video).
        metric: ``cider`` (CIDEr-D; document frequencies over the videos given, each video's
            candidates one document; uniform with a single video) or ``bleu4``.

    Returns:
        One index per video into its candidates (ties: the earliest).
    """
    if not candidates_per_video:
        return []
    df, documents = document_frequency(candidates_per_video) if metric == "cider" else (None, 0)
    out = []
    for candidates in candidates_per_video:
        scores = consensus_scores(list(candidates), metric, df, documents)
        out.append(int(max(range(len(scores)), key=lambda i: (scores[i], -i))))
    return out


class EnsembleCaptioner(Captioner):
    """Captions of several captioners, one chosen per video by consensus (:func:`ensemble_select`).

    ``kind`` is ``"frames"`` when any member captions frames (the input must then hold them).
    After each call, ``last_candidates`` holds every member's captions and ``last_choice``
    the chosen member per video.
    """

    def __init__(self, name: str, members: Sequence[Any], metric: str = "cider"):
        if len(members) < 2:
            raise ConfigError(f"{name}: an ensemble needs at least 2 members, got {len(members)}")
        if metric not in ENSEMBLE_METRICS:
            raise ConfigError(f"{name}: unknown ensemble metric {metric!r}; expected one of {', '.join(ENSEMBLE_METRICS)}")
        first = members[0]
        kind = "frames" if any(m.kind == "frames" for m in members) else "snapshot"
        super().__init__(name, None, first.config, first.vocab, checkpoint=first.checkpoint, device=first.device, kind=kind)
        self.members = list(members)
        self.metric = metric
        self.last_candidates: list[list[str]] = []
        self.last_choice: list[int] = []

    @property
    def image_size(self) -> int:
        return int(self.members[0].image_size)

    @property
    def needs_fixed_size(self) -> bool:
        return any(m.needs_fixed_size for m in self.members)

    @property
    def two_stage(self) -> bool:
        return False

    def __repr__(self) -> str:
        return f"EnsembleCaptioner({self.name!r}, members={[m.name for m in self.members]}, metric={self.metric!r})"

    def caption(self, sample_or_batch: Any, beam_size: int = 1, method: str | None = None, **generate: Any) -> list[str]:
        start = time.perf_counter()
        per_member = [m.caption(sample_or_batch, beam_size=beam_size, method=method, **generate) for m in self.members]
        recon = sum(m.timings.get("recon", 0.0) for m in self.members)
        candidates = [list(row) for row in zip(*per_member)]
        choice = ensemble_select(candidates, self.metric)
        self.last_candidates, self.last_choice = candidates, choice
        total = time.perf_counter() - start
        self.timings = {"total": total, "recon": recon, "caption": max(0.0, total - recon)}
        return [row[i] for row, i in zip(candidates, choice)]

    caption_batch = caption


def parse_ensemble(name: str) -> tuple[list[str], str]:
    """``ensemble:a+b+c[@metric]`` -> (members, metric)."""
    if not name.startswith("ensemble:"):
        raise ConfigError(f"{name!r} is not an ensemble name (ensemble:<a>+<b>+...[@metric])")
    body = name[len("ensemble:") :]
    metric = "cider"
    if "@" in body:
        body, metric = body.rsplit("@", 1)
        metric = metric.strip().lower().replace("-", "")
    members = [m.strip() for m in body.split("+") if m.strip()]
    if len(members) < 2:
        raise ConfigError(f"{name!r}: an ensemble needs at least 2 members, e.g. ensemble:clip4caption+clip4videocap")
    if metric not in ENSEMBLE_METRICS:
        raise ConfigError(f"{name!r}: unknown ensemble metric {metric!r}; expected one of {', '.join(ENSEMBLE_METRICS)}")
    return members, metric


def create_ensemble(name: str, checkpoints: Any = None, recon_params: Any = None, device: str = "cpu"):
    """An :class:`EnsembleCaptioner` from ``ensemble:<a>+<b>+...[@metric]``.

    Members are registry names (their weights found in ``checkpoints`` as
    :func:`~snapcap.caption.registry.create_captioner` finds them) or checkpoint files.
    """
    from snapcap.caption.registry import create_captioner, is_captioner_name, load_captioner_file

    members, metric = parse_ensemble(name)
    built = []
    for member in members:
        if member.startswith("ensemble:"):
            raise ConfigError(f"{name!r}: ensembles do not nest")
        if is_captioner_name(member):
            if checkpoints is None:
                raise ConfigError(f"{name!r}: member {member!r} is a captioner name and needs the training folder (--checkpoints DIR)")
            params = recon_params if member.startswith("two-stage:") else None
            built.append(create_captioner(member, checkpoints, recon_params=params, device=device))
        elif Path(member).suffix in (".pt", ".pth") or Path(member).exists():
            built.append(load_captioner_file(member, device=device))
        else:
            from snapcap.caption.registry import list_captioners

            raise ConfigError(f"{name!r}: member {member!r} is neither a captioner name ({', '.join(list_captioners())}) nor a checkpoint file")
    T = {m.T for m in built}  # noqa: N806
    if len(T) > 1:
        raise ConfigError(f"{name!r}: the members were trained for different T ({sorted(T)}); they caption the same videos")
    return EnsembleCaptioner(name, built, metric)


