"""CLIP4Caption (Tang et al., ACM MM 2021) and its consensus ensemble, as a zoo captioner.

The model (paper, Sec. 2):

    F_v  = ViT(v)      CLIP frame embeddings sampled at 1 fps: (n, d), d = 512 for ViT-B/16
    F_ve = TE(F_v)     a one-layer transformer video encoder (width D)
    t    = TD(F_ve)    a three-layer transformer decoder (cross-attention to F_ve), trained
                       with the cross-entropy caption loss only

**Frame sampling.** The paper extracts CLIP features at 1 fps over the whole video (Sec. 2.1).
A snapcap sample holds T windows of B consecutive frames ``(T, B, H, W[, 3])`` and no clock. How
the windows lie in the video depends on the corpus: video files (MSR-VTT, MSVD, folders) and the
procedural corpus with ``frames=N`` centre the T windows in T equal segments of the whole video
(:func:`snapcap.datasets.video.clip_indices`), while the SCI benchmark scenes and the default
procedural corpus give T·B consecutive frames. A sample records neither the video's duration nor
its layout, so the options say which (at most one of the three):

* ``video_seconds = D`` (``--video-seconds``): the sample's frames are spread over D seconds of
  video (the whole video, for video files): n = round(D · fps).
* ``clip_fps = r`` (``--clip-fps``): the T·B frames are **one contiguous stretch** of video at r
  frames per second, so D = T·B / r and n = round(T·B / r · fps). Wrong for spread windows:
  there it counts only the frames present (T·B = 64 frames of a 30 fps video give n = 2 at
  1 fps, whatever the video's length); give ``video_seconds`` instead.
* neither: n = ``frames``, or T (default: one frame per window).

n is clamped to [1, T·B] (``fps`` = 1 as the paper). The n frames are the flattened positions
``floor((k + 1/2) · T·B / n)``, k = 0..n−1, of the T·B frames (:func:`sample_frame_indices`;
n = T takes the middle frame of each window). With spread windows (a video of at least T·B
frames) frame k thus lies in the window of the segment that holds its instant (k + 1/2) · D / n,
the 1-fps instants as closely as the T windows allow; frames taken from the same window are
1 / (the video's frame rate) apart, not 1 / fps.

**Frame encoder** (the CLIP image tower, :class:`snapcap.caption.teacher.ClipTeacher`):

* ``paper`` preset: open_clip ``ViT-B-16`` with ``pretrained="openai"`` weights (loaded from the
  local cache; snapcap never downloads), frozen, as the paper extracts features once. TE and TD
  have width 768 and 12 heads (UniVL's, whose weights the paper starts from; here they start
  from random initialisation: UniVL weights are not shipped). Every paper-preset setting and its
  source in the paper: ``docs/paper-presets.md``.
* ``tiny`` preset (offline, CPU): the ``snapcap-tiny-vit`` tower (64×64, d = 32), width 64.
  With ``teacher`` (a ``teacher.pt`` of ``snapcap train teacher``) the tower is that teacher's
  trained CLIP tower, frozen; otherwise it is a randomly initialised tiny tower **trained from
  scratch end to end** with the caption loss (``freeze_clip=True`` keeps it frozen-random
  instead). A frozen tower's frame features are computed once per video and cached
  (``<out>/clip4caption.features.pt``, keyed by the videos' ids and frame checksums).

**Decoding.** Greedy decoding and beam search of :mod:`snapcap.caption.decoding`; the beam search
is its ``"constant"`` style (the 2·k best candidates each step, every EOS among them finished,
k live beams always, EOS forced after ``max_length - 2`` words).

**Ensemble** (paper, Sec. 2.3): :mod:`snapcap.caption.zoo.ensemble` (``ensemble:<a>+<b>+...``).
"""

from __future__ import annotations

import argparse
import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from snapcap.caption.decoding import PAD, search
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
from snapcap.caption.teacher import ClipTeacher, open_clip_module, quiet_random_init, resolve_pretrained, teacher_image_size
from snapcap.caption.train import (
    CaptionTrainConfig,
    build_vocabulary,
    encode_caption_batch,
    load_checkpoint,
    sample_keys,
    stack_rows,
)
from snapcap.caption.zoo import fit_and_save, option, read_checkpoint
from snapcap.datasets.feed import feed_of
from snapcap.datasets.samples import captions_of
from snapcap.distributed import distributed_context
from snapcap.errors import ConfigError, DataFileError, InvalidValueError, ShapeError, SnapcapError

__all__ = [
    "Clip4CaptionConfig",
    "CLIP4CAPTION_PRESETS",
    "TRAIN_DEFAULTS",
    "TransformerCaptionDecoder",
    "Clip4Caption",
    "sample_frame_indices",
    "select_frames",
    "frame_count",
    "check_frame_sampling",
    "add_frame_sampling_arguments",
    "create_clip",
    "build_frame_encoder",
    "teacher_tower_name",
    "clip_tower_name",
    "pretrained_override",
    "config_from_options",
    "train_config",
    "TrainingRows",
    "data_layout",
    "stack_frames",
    "cached_features",
    "set_feature_moments",
    "fed_rows",
    "train",
    "load",
    "add_arguments",
    "image_size",
]

NAME = "clip4caption"


# --- configuration ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Clip4CaptionConfig:
    """Everything that rebuilds a CLIP4Caption model (stored in its checkpoint).

    Attributes:
        clip: open_clip model name of the frame encoder (``ViT-B-16``, ``snapcap-tiny-vit``).
        pretrained: open_clip pretrained tag (``openai``) or None (random initialisation).
        teacher: a snapcap ``teacher.pt`` whose CLIP tower is the frame encoder (or None).
        train_clip: train the tower with the caption loss (False: frozen, features cached).
        frames: n, frames per video (0: T, one per snapshot), when neither ``video_seconds``
            nor ``clip_fps`` is set.
        fps: frames sampled per second of video with ``video_seconds`` or ``clip_fps`` (paper 1).
        video_seconds: the seconds of video the sample's T windows are spread over (the whole
            video, for video files): n = round(video_seconds · fps).
        clip_fps: the frame rate of the video when the T·B frames are one contiguous stretch of
            it: n = round(T·B / clip_fps · fps). See the module docstring, *Frame sampling*.
        width, heads: D and the attention heads of TE and TD.
        encoder_layers, decoder_layers: 1 and 3 in the paper.
        dropout, max_length: dropout of TE/TD; the longest caption in tokens (BOS, EOS included).
        B, T: the data the model was trained on (frames per snapshot, snapshots per video).
        decoder: None (TD, the paper's) or the settings of a frozen pretrained language model
            (:mod:`snapcap.caption.lm`): then a linear map takes F_ve to the model's width and
            the n encoded frames are its prefix.
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
    B: int = 8
    T: int = 4
    decoder: dict[str, Any] | None = None
    video_seconds: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


CLIP4CAPTION_PRESETS: dict[str, Clip4CaptionConfig] = {
    "tiny": Clip4CaptionConfig(),
    "paper": Clip4CaptionConfig(
        clip="ViT-B-16", pretrained="openai", train_clip=False, fps=1.0, width=768, heads=12, dropout=0.1
    ),
}
"""``tiny``: offline CPU size; ``paper``: frozen OpenAI ViT-B/16, D = 768, 1 + 3 layers, 1 fps.

Each ``paper`` setting, the paper's value and its source: ``docs/paper-presets.md`` (the paper
states the 1 fps, the one-layer TE, the three-layer TD and the cross-entropy loss only; width,
heads and dropout are UniVL's, whose weights it starts from)."""

TRAIN_DEFAULTS: dict[str, dict[str, Any]] = {
    "tiny": {"epochs": 30, "batch_size": 16, "lr": 1e-3, "warmup_epochs": 1},
    "paper": {"epochs": 30, "batch_size": 32, "lr": 1e-4, "warmup_epochs": 1},
}
"""Optimisation defaults per preset (AdamW, weight decay 1e-4, cosine schedule). The paper gives
no optimisation settings: the ``paper`` ones are snapcap's choice (``docs/paper-presets.md``)."""


def frame_count(config) -> int:
    """n, the frames sampled per video for this configuration (module docstring, *Frame sampling*).

    ``video_seconds`` D: n = round(D · fps); else ``clip_fps`` r (contiguous frames):
    n = round(T·B / r · fps); else ``frames``, or T. Clamped to [1, T·B].
    """
    total = int(config.T) * int(config.B)
    seconds = getattr(config, "video_seconds", None)
    if seconds:
        n = int(round(float(seconds) * float(config.fps)))
    elif config.clip_fps:
        n = int(round(total / float(config.clip_fps) * float(config.fps)))
    else:
        n = int(config.frames) or int(config.T)
    return max(1, min(total, n))


def check_frame_sampling(config) -> None:
    """Refuse frame-sampling settings that are out of range or contradict each other.

    Raises:
        ConfigError: ``frames`` < 0, ``fps``, ``clip_fps`` or ``video_seconds`` not a finite
            number > 0, or more than one of ``frames``, ``clip_fps`` and ``video_seconds`` given.
    """
    seconds = getattr(config, "video_seconds", None)

    def bad(value: Any) -> bool:  # not a finite number > 0 (NaN included)
        return not 0 < float(value) < math.inf

    if (
        config.frames < 0
        or bad(config.fps)
        or (config.clip_fps is not None and bad(config.clip_fps))
        or (seconds is not None and bad(seconds))
    ):
        raise ConfigError(
            "frames must be >= 0 and fps, clip_fps, video_seconds finite numbers > 0; got "
            f"frames={config.frames}, fps={config.fps}, clip_fps={config.clip_fps}, video_seconds={seconds}"
        )
    given = [
        name
        for name, value in (("--frames", config.frames), ("--clip-fps", config.clip_fps), ("--video-seconds", seconds))
        if value
    ]
    if len(given) > 1:
        raise ConfigError(
            f"{' and '.join(given)} each set the frames sampled per video; give one of them "
            "(--video-seconds: windows spread over the video; --clip-fps: contiguous frames; --frames: a count)"
        )


def sample_frame_indices(total: int, count: int) -> np.ndarray:
    """``count`` frame indices evenly spread over ``total`` frames: the centres of equal windows."""
    if total < 1 or count < 1:
        raise InvalidValueError(f"need total >= 1 and count >= 1 frames, got total={total}, count={count}")
    return np.minimum(((np.arange(count) + 0.5) * total / count).astype(np.int64), total - 1)


def select_frames(frames: torch.Tensor, count: int) -> torch.Tensor:
    """Frames ``(N, T, B, H, W[, 3])`` -> ``(N, count, H, W[, 3])`` evenly spread over the T·B frames."""
    if frames.ndim not in (5, 6):
        raise ShapeError(f"frames must be (N, T, B, H, W[, 3]), got {tuple(frames.shape)}")
    flat = frames.flatten(1, 2)
    index = torch.as_tensor(sample_frame_indices(int(flat.shape[1]), count), device=frames.device)
    return flat.index_select(1, index)


# --- building blocks ----------------------------------------------------------------------------


def create_clip(name: str, pretrained: str | None, device: str | torch.device = "cpu"):
    """A whole open_clip CLIP model (image and text towers), never downloading weights."""
    open_clip = open_clip_module()
    source, extra = resolve_pretrained(open_clip, name, pretrained, None, False)
    try:
        with quiet_random_init(source):
            return open_clip.create_model(name, pretrained=source, device=device, **extra)
    except SnapcapError:
        raise
    except Exception as exc:
        raise ConfigError(f"open_clip cannot build {name!r} (pretrained={pretrained!r}): {exc}") from exc


def build_frame_encoder(config: Clip4CaptionConfig, device: str | torch.device = "cpu", load_weights: bool = True):
    """The CLIP image tower of a config: pretrained, a snapcap teacher's, or random.

    ``load_weights=False`` builds the architecture only (when a checkpoint supplies the weights).
    """
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
    state = load_checkpoint(Path(path))
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

    def hidden_states(
        self, memory: torch.Tensor, tokens: torch.Tensor, memory_padding: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``(N, L, D)`` final hidden states of the text positions."""
        self._check(memory, tokens)
        length = tokens.shape[1]
        x = self.drop(self.token_embedding(tokens.long()) + self.position_embedding[:length])
        causal = torch.triu(torch.full((length, length), float("-inf"), device=x.device), diagonal=1)
        return self.norm(self.layers(x, memory, tgt_mask=causal, memory_key_padding_mask=memory_padding))

    def forward(self, memory: torch.Tensor, tokens: torch.Tensor, memory_padding: torch.Tensor | None = None) -> torch.Tensor:
        return F.linear(self.hidden_states(memory, tokens, memory_padding), self.token_embedding.weight)

    def loss(
        self, memory: torch.Tensor, tokens: torch.Tensor, label_smoothing: float = 0.0, memory_padding: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Mean cross-entropy of the non-PAD targets (words and EOS)."""
        if tokens.ndim != 2 or tokens.shape[1] < 2:
            raise ShapeError(f"tokens must be (N, L) with L >= 2 (BOS and a target), got {tuple(tokens.shape)}")
        logits = self(memory, tokens[:, :-1], memory_padding)
        return F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]).float(),
            tokens[:, 1:].reshape(-1).long(),
            ignore_index=PAD,
            label_smoothing=label_smoothing,
        )

    def _search_functions(self, memory: torch.Tensor, memory_padding: torch.Tensor | None):
        """The ``step`` and ``reorder`` of :mod:`snapcap.caption.decoding` over this memory.

        The state is ``(memory, memory_padding, tokens so far)``; every step recomputes the whole
        sequence (no cache) and returns the float32 logits of its last position.
        """

        def step(tokens: torch.Tensor, state):
            memory, padding, history = state
            history = torch.cat([history, tokens[:, None]], dim=1)
            return self(memory, history, padding)[:, -1].float(), (memory, padding, history)

        def reorder(state, index: torch.Tensor):
            memory, padding, history = state
            padding = None if padding is None else padding.index_select(0, index)
            return memory.index_select(0, index), padding, history.index_select(0, index)

        history = torch.zeros((memory.shape[0], 0), dtype=torch.long, device=memory.device)
        return step, reorder, (memory, memory_padding, history)

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
        """Token ids (no BOS/EOS) per row: greedy, or beam search (``"constant"`` style of
        :func:`snapcap.caption.decoding.beam_search`) scored by logprob / length ** length_penalty."""
        if method not in ("greedy", "beam"):
            raise ConfigError(f"unknown generation method {method!r}; expected 'greedy' or 'beam'")
        max_length = self.max_length if max_length is None else int(max_length)
        if not 2 <= max_length <= self.max_length:
            raise InvalidValueError(f"max_length must be in [2, {self.max_length}], got {max_length}")
        if method == "beam" and int(beam_size) < 1:
            raise InvalidValueError(f"beam_size must be >= 1, got {beam_size}")
        if method == "beam" and int(beam_size) == 1:
            method = "greedy"
        was_training = self.training
        self.eval()
        try:
            step, reorder, state = self._search_functions(memory, memory_padding)
            return search(
                method,
                step,
                reorder,
                state,
                memory.shape[0],
                max_length - 2,
                int(min_length),
                int(beam_size),
                float(length_penalty),
                style="constant",
                device=memory.device,
            )
        finally:
            self.train(was_training)


def caption_decoder(config: Any, vocab_size: int, width: int, vocab: Any = None) -> tuple[nn.Module, nn.Linear | None, Any]:
    """The caption decoder of a frame captioner whose memory is ``width`` wide: a frozen language
    model (``config.decoder``; with the map into its width, and the config recording its hash) or
    TD (``decoder_layers``, ``heads``, ``dropout``, ``max_length`` of the config)."""
    if is_lm_decoder(config.decoder):
        decoder, to_prefix, settings = prefix_decoder(config.decoder, vocab, width)
        return decoder, to_prefix, replace(config, decoder=settings)
    decoder = TransformerCaptionDecoder(vocab_size, width, config.decoder_layers, config.heads, config.dropout, config.max_length)
    return decoder, None, config


class Clip4Caption(nn.Module):
    """CLIP frame features -> one-layer transformer encoder TE -> three-layer transformer decoder TD.

    Args:
        config: the architecture and data layout.
        vocab_size: the caption vocabulary's size.
        encoder: the CLIP image tower (:class:`~snapcap.caption.teacher.ClipTeacher`).
        vocab: the tokenizer of a language-model decoder (``config.decoder``), when there is one.
    """

    needs_fixed_size = False

    def __init__(self, config: Clip4CaptionConfig, vocab_size: int, encoder, vocab: Any = None):
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
        layer = nn.TransformerEncoderLayer(
            width, config.heads, 4 * width, config.dropout, activation="gelu", batch_first=True, norm_first=True
        )
        self.video_encoder = nn.TransformerEncoder(layer, config.encoder_layers, enable_nested_tensor=False)
        self.video_norm = nn.LayerNorm(width)
        self.decoder, self.to_prefix, self.config = caption_decoder(config, vocab_size, width, vocab)
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

    def set_feature_stats(self, features: Any) -> None:
        """Standardise frame features ``(N, n, d)`` of the training set from now on."""
        set_feature_moments(self, features)

    def memory(self, features: torch.Tensor) -> torch.Tensor:
        """What the decoder reads: F_ve (TD's cross-attention memory) or its map into a language model's prefix."""
        encoded = self.encode(features)
        return encoded if self.to_prefix is None else self.to_prefix(encoded)

    def loss(self, features: torch.Tensor, captions: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
        return self.decoder.loss(self.memory(features), captions, label_smoothing)

    @torch.no_grad()
    def caption(self, frames: torch.Tensor, **generate: Any) -> list[list[int]]:
        return self.decoder.generate(self.memory(self.frame_features(frames)), **generate)


# --- training -----------------------------------------------------------------------------------


def add_arguments(group) -> None:
    """``snapcap train clip4caption`` options."""
    group.add_argument(
        "--teacher", type=Path, default=None, help="a snapcap teacher.pt: its trained CLIP tower is the frame encoder (frozen)"
    )
    add_frame_sampling_arguments(group)
    group.add_argument(
        "--freeze-clip",
        action="store_true",
        help="keep a randomly initialised tiny tower frozen (default: train it from scratch)",
    )
    group.add_argument("--width", type=int, default=None, help="width D of TE and TD (default: the preset's)")
    add_decoder_argument(group, "native (TD, the paper's three-layer transformer decoder)")


def _positive_number(text: str) -> float:
    """A finite number > 0, checked when the command line is read."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 < value < math.inf:  # NaN fails too
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text!r}")
    return value


def add_frame_sampling_arguments(group) -> None:
    """``--frames``, ``--video-seconds``, ``--clip-fps`` and ``--fps`` (module docstring, *Frame sampling*)."""
    group.add_argument(
        "--frames", type=int, default=None, help="frames sampled per video (default: T, one per snapshot's window)"
    )
    group.add_argument(
        "--video-seconds",
        type=_positive_number,
        default=None,
        help="seconds of video the T windows of a sample are spread over (video files: the whole video's length): "
        "frames = video-seconds * --fps, frame k from the window of the segment holding instant (k + 1/2) / fps",
    )
    group.add_argument(
        "--clip-fps",
        type=_positive_number,
        default=None,
        help="frame rate of the video, only when a sample's T*B frames are one contiguous stretch of it "
        "(SCI benchmark scenes, the default procedural corpus): frames = T*B / clip-fps * --fps; "
        "for windows spread over a video file use --video-seconds",
    )
    group.add_argument(
        "--fps",
        type=_positive_number,
        default=None,
        help="frames sampled per second of video with --video-seconds or --clip-fps (default 1, the paper's)",
    )


def image_size(options: Mapping[str, Any]) -> int:
    """The frame size of simulated training data: the tower's input size."""
    return teacher_image_size(clip_tower_name(options, CLIP4CAPTION_PRESETS))


def clip_tower_name(options: Mapping[str, Any], presets: Mapping[str, Any]) -> str:
    teacher = option(options, "teacher", None)
    if teacher:
        return teacher_tower_name(teacher)
    preset = str(option(options, "preset", "tiny"))
    if preset not in presets:
        raise ConfigError(f"--preset {preset!r}: expected one of {', '.join(presets)}")
    return presets[preset].clip


def pretrained_override(options: Mapping[str, Any]) -> dict[str, Any]:
    value = option(options, "pretrained", None)
    if value is None:
        return {}
    return {"pretrained": None if str(value).lower() == "none" else str(value)}


def config_from_options(options: Mapping[str, Any], B: int, T: int) -> Clip4CaptionConfig:
    """The model configuration of a preset with the given options applied."""
    preset = str(option(options, "preset", "tiny"))
    if preset not in CLIP4CAPTION_PRESETS:
        raise ConfigError(f"--preset {preset!r}: expected one of {', '.join(CLIP4CAPTION_PRESETS)}")
    config = replace(CLIP4CAPTION_PRESETS[preset], B=int(B), T=int(T), **pretrained_override(options))
    teacher = option(options, "teacher", None)
    if teacher:
        config = replace(
            config, teacher=str(Path(teacher).resolve()), clip=teacher_tower_name(teacher), pretrained=None, train_clip=False
        )
    elif option(options, "freeze_clip", False):
        config = replace(config, train_clip=False)
    elif config.pretrained is None and not config.teacher:
        config = replace(config, train_clip=True)
    for key in ("frames", "fps", "clip_fps", "video_seconds", "width"):
        value = option(options, key, None)
        if value is not None:
            config = replace(config, **{key: value})
    check_frame_sampling(config)
    if config.width < 1 or config.width % config.heads:
        raise ConfigError(f"--width must be a positive multiple of the {config.heads} heads, got {config.width}")
    decoder = option(options, "decoder", None)
    if decoder is not None and decoder_choice(decoder) != "native":
        config = replace(config, decoder=lm_decoder_settings(decoder, config.max_length, max(16, frame_count(config))))
    return config


def train_config(options: Mapping[str, Any], defaults: Mapping[str, Any]):
    """A :class:`~snapcap.caption.train.CaptionTrainConfig` from options over per-preset defaults."""
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
        amp=bool(option(options, "amp", False)),
        workers=int(option(options, "workers", 0) or 0),
    )


class _Row(Mapping):
    """One training sample: its captions at hand, everything else read from the samples when
    first asked for (and forgotten with the row)."""

    def __init__(self, rows: TrainingRows, position: int):
        self._rows = rows
        self._position = position
        self._sample: Mapping[str, Any] | None = None

    def _read(self) -> Mapping[str, Any]:
        if self._sample is None:
            self._sample = self._rows.samples[self._position]
        return self._sample

    def __getitem__(self, key: str) -> Any:
        if key == "captions":
            return self._rows.captions[self._position]
        value = self._read().get(key) if key == "frames" else self._read()[key]
        if key == "frames" and value is None:
            raise DataFileError(
                f"training sample {self._position} ({self._read().get('video_id', '?')}) holds no frames; "
                "frame captioners train on video frames"
            )
        return value

    def __iter__(self):
        return iter(self._read())

    def __len__(self) -> int:
        return len(self._read())


class TrainingRows(Sequence):
    """The training samples of a frame captioner, streamed: captions are read once up front
    (without frames); a row's frames are read when a step (or the feature cache) needs them, so
    memory does not grow with the corpus."""

    def __init__(self, samples: Any):
        if len(samples) == 0:
            raise ConfigError("no training samples")
        self.samples = samples
        self.captions = captions_of(samples)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, position: int) -> _Row:  # type: ignore[override]
        if not -len(self) <= position < len(self):
            raise IndexError(position)
        return _Row(self, position % len(self))


def fed_rows(rows: TrainingRows, train_clip: bool, workers: int) -> tuple[TrainingRows, Any]:
    """``(rows, feed)`` for :func:`~snapcap.caption.zoo.fit_and_save`: when the tower trains, the
    frames are read at every step and ``workers`` DataLoader processes load them ahead (the
    feed); a frozen tower reads cached features instead (no feed)."""
    if not train_clip or workers <= 0:
        return rows, None
    feed = feed_of(rows.samples, workers)
    return TrainingRows(feed), feed


def data_layout(rows: Sequence[Mapping[str, Any]]) -> tuple[int, int]:
    frames = torch.as_tensor(rows[0]["frames"])
    if frames.ndim not in (4, 5):
        raise ShapeError(f"sample frames must be (T, B, H, W[, 3]), got {tuple(frames.shape)}")
    return int(frames.shape[1]), int(frames.shape[0])


def stack_frames(rows: Sequence[Mapping[str, Any]], indices, device) -> torch.Tensor:
    return stack_rows(rows, indices, "frames", device)


def set_feature_moments(model: nn.Module, features: Any, chunk: int = 256) -> None:
    """``model.feature_mean``/``feature_std`` := the per-dimension mean and standard deviation of
    frame features ``(N, n, d)`` (a tensor or a memory-mapped array, read ``chunk`` rows at a time
    and summed in float64)."""
    total, square, count = None, None, 0
    for start in range(0, len(features), chunk):
        part = torch.from_numpy(np.array(features[start : start + chunk], dtype=np.float64))
        part = part.reshape(-1, part.shape[-1])
        total = part.sum(0) if total is None else total + part.sum(0)
        square = (part * part).sum(0) if square is None else square + (part * part).sum(0)
        count += part.shape[0]
    if total is None or square is None:
        return
    mean = total / count
    model.feature_mean.copy_(mean.float())
    if count > 1:
        variance = ((square - count * mean * mean) / (count - 1)).clamp_min(0.0)
        model.feature_std.copy_(variance.sqrt().float().clamp_min(1e-6))
    else:
        model.feature_std.fill_(1.0)


def cached_features(model, rows, out_dir: Path, stem: str, device, context=None, chunk: int = 16) -> Any:
    """Frozen-tower frame features of every row, ``(N, n, d)``, memory-mapped from
    ``out_dir/<stem>.features/`` (:func:`snapcap.caption.rowcache.cached_rows`: computed once, by
    rank 0 under torchrun, resumable; keyed by the rows and the tower)."""
    tower = {
        "clip": model.config.clip,
        "pretrained": model.config.pretrained,
        "teacher": model.config.teacher,
        "frames": model.frames,
    }
    meta = {"keys": sample_keys(rows.samples if isinstance(rows, TrainingRows) else rows), "tower": tower}

    def compute(part: range) -> dict[str, torch.Tensor]:
        return {"features": model.frame_features(stack_frames(rows, part, device))}

    with torch.no_grad():
        arrays = cached_rows(out_dir / f"{stem}.features", meta, len(rows), compute, context, chunk, desc=f"{stem} features")
    return arrays["features"]


def train(samples: Any, out_dir: str | Path, options: Mapping[str, Any] | None = None, progress: bool = True) -> Path:
    """Train CLIP4Caption on sample dicts (with frames and captions); returns ``out_dir/clip4caption.pt``.

    Resumable: an interrupted run continues from ``out_dir/clip4caption.ckpt`` when rerun with
    the same options. See the module docstring for the presets and the frame encoder.
    """
    options = dict(options or {})
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = TrainingRows(samples)
    B, T = data_layout(rows)
    config = config_from_options(options, B, T)
    preset = str(option(options, "preset", "tiny"))
    training = train_config(options, TRAIN_DEFAULTS.get(preset, TRAIN_DEFAULTS["tiny"]))
    context = distributed_context(training.device)
    device = torch.device(training.device)
    rows, feed = fed_rows(rows, config.train_clip, training.workers)
    vocab = codec_for(config.decoder) if is_lm_decoder(config.decoder) else build_vocabulary(rows, training.min_count)
    torch.manual_seed(training.seed)
    model = Clip4Caption(config, len(vocab), build_frame_encoder(config, device), vocab).to(device)
    config = model.config  # with the language model's hash, when there is one
    if config.train_clip:
        model.encoder.unfreeze()
    features = None if config.train_clip else cached_features(model, rows, out_dir, NAME, device, context)
    if features is not None:
        model.set_feature_stats(features)
    max_length = min(training.max_length, config.max_length)

    def loss_fn(indices, epoch):
        captions = encode_caption_batch(rows, indices, vocab, epoch, training.seed, max_length).to(device)
        if features is not None:
            feats = rows_of(features, indices).to(device)
        else:
            feats = model.frame_features(stack_frames(rows, indices, device))
        return {"loss": model.loss(feats, captions, training.label_smoothing)}

    return fit_and_save(NAME, model, loss_fn, len(rows), config, training, vocab, out_dir, progress, context, feed=feed)


def load(path: str | Path, device: str = "cpu"):
    """``(model, Clip4CaptionConfig, Vocabulary)`` of a ``clip4caption.pt``."""
    path = Path(path)
    state = read_checkpoint(path, NAME)
    config = Clip4CaptionConfig(**state["config"])
    vocab = codec_from_dict(state["vocab"])
    model = Clip4Caption(
        replace(config, train_clip=False),
        len(vocab),
        build_frame_encoder(replace(config, train_clip=False), device, load_weights=False),
        vocab,
    )
    try:
        model.load_state_dict(state["state"])
    except RuntimeError as exc:
        raise DataFileError(f"{path}: weights do not fit the recorded architecture ({exc})") from exc
    model.to(device).eval()
    return model, config, vocab
