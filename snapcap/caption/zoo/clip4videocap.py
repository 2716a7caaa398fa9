"""CLIP4VideoCap (Mahmud et al., ICASSP 2023) as a zoo captioner.

The model (paper, Sec. 2, Figs. 1-3):

    (v_1..v_n) = E_I(x_1..x_n)           CLIP image features of n sampled frames (as CLIP4Caption)
    (f_1..f_n) = F(v_1..v_n)             multi-scale temporal fusion (:class:`TemporalFusion`)
    vt_i = σ2(F2(ReLU(F1(f_i))))         Vis2Text: two fully connected layers with ReLU (Eq. 3)
    L_distill = ||T_CLIP - T_Vis2Text||_1  towards the CLIP text encoder's feature of the caption
    commonsense sub-decoders (intention, effect, attribute) on [f; vt], then the caption decoder
    on [f; vt; the sub-decoders' hidden states]
    L = α1·L_cap + α2·L_int + α3·L_eff + α4·L_att + λ·L_distill       (Eqs. 7-8)

λ is the "distillation loss ratio" of the paper's Table 3 (0, 1, 5, 10, 20): Eq. 8 writes the sum
unweighted, but the paper's results (Table 1, and the best rows of Tables 4 and 5) are those of
λ = 10, the best of Table 3 on METEOR, ROUGE-L and BLEU-1 (λ = 20 is 0.2 CIDEr higher, the rest
lower). The ``paper`` preset uses λ = 10; ``tiny`` keeps 1. The paper does not give α1..α4
(1 each here).

**Multi-scale temporal fusion.** For scale s = 0..S-1 (``scales``, default 3 as the paper's
best): squeeze the sequence by 2^s in time (average pooling), fuse it with a block (``fusion``:
``lstm`` — bidirectional, the paper's best —, ``transformer`` or ``conv`` — 1-D convolution),
expand it back to n steps (each squeezed step repeated); the scales are averaged, projected and
added to the input (residual), then layer-normed.

**Vis2Text.** ``vis2text_final_relu`` applies the paper's σ2 (a ReLU after F2, Eq. 3): on in the
``paper`` preset, as the paper; off in ``tiny`` (and the dataclass default) because CLIP text
features have negative entries a ReLU output cannot reach under the L1 loss. Each vt_i is
distilled towards T_CLIP of the reference caption trained on (L1, mean).

**CLIP text encoder.** ``paper``: the text tower of open_clip ``ViT-B-16`` ``openai`` (loaded from
the local cache). ``tiny`` (offline): the text tower of the ``snapcap-tiny-vit`` open_clip config
(a 1-layer, width-32 transformer with CLIP's BPE tokenizer, d = 32), **randomly initialised with
seed 0 and frozen**: no pre-trained text knowledge is available offline, so the distillation
target is a fixed random sentence embedding of the caption. T_CLIP is computed once per caption
(the tower is frozen) and never needed at inference.

**Commonsense.** V2C-style ``intention``, ``effect`` and ``attribute`` texts per video: taken from
the sample dicts when they hold them, else from the corpus (the procedural corpus generates them;
a snapcap dataset file of the synthetic corpus is matched back to its corpus by video id). Without
annotations the sub-decoders are left out (``commonsense=False``) and a note says so. Each
sub-decoder is a transformer decoder (``sub_layers``) over [f; vt]; in training its hidden states
are teacher-forced on the annotation, at inference on its own greedy output.

**Frame encoder**, frame sampling (``frames``, ``video_seconds``, ``clip_fps``, ``fps``), decoding
and presets as :mod:`snapcap.caption.zoo.clip4caption` (``tiny``: the tiny tower trained from
scratch, or frozen-random with ``freeze_clip``, or a snapcap teacher's with ``teacher``;
``paper``: frozen OpenAI ViT-B/16, the encoder of the paper's Tables 4-5 and its best on
CIDEr in Table 2, width 768). Every paper-preset setting and its source in the paper:
``docs/paper-presets.md``.
"""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from snapcap.caption.decoding import BOS, EOS, PAD
from snapcap.caption.lm import (
    add_decoder_argument,
    codec_for,
    codec_from_dict,
    decoder_choice,
    is_lm_decoder,
    lm_decoder_settings,
)
from snapcap.caption.rowcache import cached_rows, rows_of
from snapcap.caption.teacher import open_clip_module, teacher_image_size
from snapcap.caption.text import Vocabulary
from snapcap.caption.zoo import fit_and_save, option, read_checkpoint
from snapcap.caption.zoo.clip4caption import (
    TrainingRows,
    TransformerCaptionDecoder,
    add_frame_sampling_arguments,
    build_frame_encoder,
    cached_features,
    caption_decoder,
    check_frame_sampling,
    clip_tower_name,
    create_clip,
    data_layout,
    fed_rows,
    frame_count,
    pretrained_override,
    select_frames,
    set_feature_moments,
    stack_frames,
    teacher_tower_name,
    train_config,
)
from snapcap.datasets.h5 import open_dataset
from snapcap.datasets.synthetic import SyntheticCorpus
from snapcap.distributed import distributed_context
from snapcap.errors import ConfigError, DataFileError, ShapeError

__all__ = [
    "Clip4VideoCapConfig",
    "CLIP4VIDEOCAP_PRESETS",
    "ASPECTS",
    "FUSIONS",
    "TemporalFusion",
    "Vis2Text",
    "Clip4VideoCap",
    "ClipTextEncoder",
    "commonsense_annotations",
    "train",
    "load",
    "add_arguments",
    "image_size",
]

NAME = "clip4videocap"
ASPECTS = ("intention", "effect", "attribute")
FUSIONS = ("lstm", "transformer", "conv")


@dataclass(frozen=True)
class Clip4VideoCapConfig:
    """Everything that rebuilds a CLIP4VideoCap model (stored in its checkpoint).

    Attributes:
        clip, pretrained, teacher, train_clip, frames, fps, clip_fps, video_seconds: the frame
            encoder and the frame sampling, as
            :class:`snapcap.caption.zoo.clip4caption.Clip4CaptionConfig`.
        text_clip, text_pretrained, text_seed: the CLIP text encoder of the distillation targets.
        width, heads: model width D and attention heads.
        fusion, scales: the fusion block (``lstm``, ``transformer``, ``conv``) and the number of
            temporal scales (1, 2, 4... x squeezing).
        vis2text_hidden, vis2text_final_relu: F1's width; σ2 after F2 (see the module docstring).
        text_dim: the CLIP text feature size (set from the text tower).
        commonsense: with the intention / effect / attribute sub-decoders.
        sub_layers, decoder_layers: layers of each sub-decoder and of the caption decoder.
        alphas: α1..α4 (caption, intention, effect, attribute); distill_weight: λ (the
            paper's Table 3 "distillation loss ratio"; ``paper`` preset 10, its best).
        dropout, max_length, aspect_length: dropout; longest caption / commonsense text in tokens.
        B, T: the data the model was trained on.
        decoder: None (the transformer caption decoder) or a frozen pretrained language model's
            settings (:mod:`snapcap.caption.lm`): the caption decoder's memory ``[f; vt; the
            sub-decoders' states]`` is mapped to the model's width and read as its prefix
            (padding masked); the sub-decoders keep their word vocabulary.
    """

    clip: str = "snapcap-tiny-vit"
    pretrained: str | None = None
    teacher: str | None = None
    train_clip: bool = True
    frames: int = 0
    fps: float = 1.0
    clip_fps: float | None = None
    text_clip: str = "snapcap-tiny-vit"
    text_pretrained: str | None = None
    text_seed: int = 0
    width: int = 64
    heads: int = 4
    fusion: str = "lstm"
    scales: int = 3
    vis2text_hidden: int = 128
    vis2text_final_relu: bool = False
    text_dim: int = 32
    commonsense: bool = True
    sub_layers: int = 1
    decoder_layers: int = 3
    alphas: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0)
    distill_weight: float = 1.0
    dropout: float = 0.1
    max_length: int = 30
    aspect_length: int = 16
    B: int = 8
    T: int = 4
    decoder: dict[str, Any] | None = None
    video_seconds: float | None = None

    def __post_init__(self) -> None:
        if self.fusion not in FUSIONS:
            raise ConfigError(f"--fusion must be one of {', '.join(FUSIONS)}, got {self.fusion!r}")
        if int(self.scales) < 1:
            raise ConfigError(f"--scales must be >= 1, got {self.scales}")
        if int(self.width) < 1 or int(self.width) % int(self.heads) or (self.fusion == "lstm" and int(self.width) % 2):
            raise ConfigError(
                f"--width must be a positive multiple of the {self.heads} heads (and even for lstm), got {self.width}"
            )
        if len(self.alphas) != 4 or any(a < 0 for a in self.alphas) or self.distill_weight < 0:
            raise ConfigError(
                f"alphas must be four weights >= 0 and distill_weight >= 0, got {self.alphas}, {self.distill_weight}"
            )
        object.__setattr__(self, "alphas", tuple(float(a) for a in self.alphas))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


CLIP4VIDEOCAP_PRESETS: dict[str, Clip4VideoCapConfig] = {
    "tiny": Clip4VideoCapConfig(),
    "paper": Clip4VideoCapConfig(
        clip="ViT-B-16",
        pretrained="openai",
        train_clip=False,
        text_clip="ViT-B-16",
        text_pretrained="openai",
        width=768,
        heads=12,
        vis2text_hidden=1024,
        vis2text_final_relu=True,  # σ2 of Eq. 3
        text_dim=512,
        fusion="lstm",  # Table 4: LSTM fusion with 3 scales is the best
        scales=3,
        commonsense=True,  # Table 5: all three sub-decoders combined is the best
        distill_weight=10.0,  # Table 3: ratio 10 is the best (and the setting of Tables 1, 4 and 5)
    ),
}
"""``tiny``: offline CPU size; ``paper``: frozen OpenAI ViT-B/16 image and text towers, LSTM fusion
with 3 scales, the three commonsense sub-decoders, λ = 10, σ2 on. Each ``paper`` setting, the
paper's value and its source: ``docs/paper-presets.md``."""

TRAIN_DEFAULTS: dict[str, dict[str, Any]] = {
    "tiny": {"epochs": 30, "batch_size": 16, "lr": 1e-3, "warmup_epochs": 1},
    "paper": {"epochs": 30, "batch_size": 32, "lr": 1e-4, "warmup_epochs": 1},
}
"""Optimisation defaults per preset (AdamW, weight decay 1e-4, cosine schedule). The paper gives
no optimisation settings: the ``paper`` ones are snapcap's choice (``docs/paper-presets.md``)."""


# --- modules ------------------------------------------------------------------------------------


class _Lstm(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.lstm = nn.LSTM(width, width // 2, batch_first=True, bidirectional=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lstm(x)[0]


class _Conv(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.conv = nn.Conv1d(width, width, kernel_size=3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(self.conv(x.transpose(1, 2))).transpose(1, 2)


def _fusion_block(kind: str, width: int, heads: int, dropout: float) -> nn.Module:
    if kind == "lstm":
        return _Lstm(width)
    if kind == "conv":
        return _Conv(width)
    return nn.TransformerEncoderLayer(width, heads, 4 * width, dropout, activation="gelu", batch_first=True, norm_first=True)


class TemporalFusion(nn.Module):
    """Multi-scale temporal fusion: per scale s, squeeze by 2^s, fuse, expand; average, project, add.

    ``(N, n, D) -> (N, n, D)``.
    """

    def __init__(self, width: int, scales: int = 3, kind: str = "lstm", heads: int = 4, dropout: float = 0.1):
        super().__init__()
        if kind not in FUSIONS:
            raise ConfigError(f"fusion must be one of {', '.join(FUSIONS)}, got {kind!r}")
        self.scales, self.kind = int(scales), kind
        self.blocks = nn.ModuleList(_fusion_block(kind, width, heads, dropout) for _ in range(self.scales))
        self.proj = nn.Linear(width, width)
        self.norm = nn.LayerNorm(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 3:
            raise ShapeError(f"temporal fusion takes (N, n, D) features, got {tuple(x.shape)}")
        steps = x.shape[1]
        total = torch.zeros_like(x)
        for scale, block in enumerate(self.blocks):
            factor = 2**scale
            squeezed = (
                F.avg_pool1d(x.transpose(1, 2), kernel_size=factor, stride=factor, ceil_mode=True).transpose(1, 2)
                if factor > 1
                else x
            )
            fused = block(squeezed)
            total = total + fused.repeat_interleave(factor, dim=1)[:, :steps]
        return self.norm(x + self.proj(total / self.scales))


class Vis2Text(nn.Module):
    """vt_i = F2(ReLU(F1(f_i))) (σ2 = ReLU after F2 with ``final_relu``): ``(N, n, D) -> (N, n, d_text)``."""

    def __init__(self, width: int, hidden: int, text_dim: int, final_relu: bool = False):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(width, hidden), nn.Linear(hidden, text_dim)
        self.final_relu = bool(final_relu)

    def forward(self, fused: torch.Tensor) -> torch.Tensor:
        out = self.fc2(F.relu(self.fc1(fused)))
        return F.relu(out) if self.final_relu else out


class Clip4VideoCap(nn.Module):
    """Frame encoder -> temporal fusion -> Vis2Text -> commonsense sub-decoders -> caption decoder."""

    needs_fixed_size = False

    def __init__(self, config: Clip4VideoCapConfig, vocab_size: int, encoder, vocab: Any = None, aspect_vocab_size: int = 0):
        super().__init__()
        self.config = config
        self.encoder = encoder
        self.frames = frame_count(config)
        width = int(config.width)
        self.register_buffer("feature_mean", torch.zeros(encoder.embed_dim))
        self.register_buffer("feature_std", torch.ones(encoder.embed_dim))
        self.feature_proj = nn.Sequential(nn.Linear(encoder.embed_dim, width), nn.LayerNorm(width))
        self.frame_position = nn.Parameter(torch.randn(self.frames, width) * 0.02)
        self.fusion = TemporalFusion(width, config.scales, config.fusion, config.heads, config.dropout)
        self.vis2text = Vis2Text(width, config.vis2text_hidden, config.text_dim, config.vis2text_final_relu)
        self.text_proj = nn.Linear(config.text_dim, width)
        self.segment = nn.Parameter(torch.randn(2 + len(ASPECTS), width) * 0.02)  # visual, textual, aspects
        if config.commonsense:
            self.aspects = nn.ModuleDict(
                {
                    aspect: TransformerCaptionDecoder(
                        aspect_vocab_size or vocab_size,
                        width,
                        config.sub_layers,
                        config.heads,
                        config.dropout,
                        config.aspect_length,
                    )
                    for aspect in ASPECTS
                }
            )
        else:
            self.aspects = nn.ModuleDict()
        self.decoder, self.to_prefix, self.config = caption_decoder(config, vocab_size, width, vocab)
        self.name = NAME

    def _prefix(self, memory: torch.Tensor, padding: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """A language model's prefix: the sub-decoders' states, then ``[f; vt]`` (real tokens last,
        as the last prefix position predicts the first word), mapped to the model's width."""
        if padding is not None:
            visual = 2 * self.frames
            memory = torch.cat([memory[:, visual:], memory[:, :visual]], dim=1)
            padding = torch.cat([padding[:, visual:], padding[:, :visual]], dim=1)
        return self.to_prefix(memory), padding

    def _caption_loss(self, memory, captions, label_smoothing, padding) -> torch.Tensor:
        if self.to_prefix is None:
            return self.decoder.loss(memory, captions, label_smoothing, memory_padding=padding)
        prefix, padding = self._prefix(memory, padding)
        return self.decoder.loss(prefix, captions, label_smoothing, prefix_padding=padding)

    def _generate(self, memory, padding, **generate: Any) -> list[list[int]]:
        if self.to_prefix is None:
            return self.decoder.generate(memory, memory_padding=padding, **generate)
        prefix, padding = self._prefix(memory, padding)
        return self.decoder.generate(prefix, prefix_padding=padding, **generate)

    @property
    def image_size(self) -> int:
        return int(self.encoder.image_size)

    @property
    def feature_dim(self) -> int:
        return int(self.encoder.embed_dim)

    def set_feature_stats(self, features: Any) -> None:
        set_feature_moments(self, features)

    def frame_features(self, frames: torch.Tensor) -> torch.Tensor:
        """(v_1..v_n): frames ``(N, T, B, H, W[, 3])`` -> ``(N, n, d)``."""
        if frames.ndim not in (5, 6):
            raise ShapeError(f"frames must be (N, T, B, H, W[, 3]), got {tuple(frames.shape)}")
        return self.encoder.encode(select_frames(frames, self.frames), rgb=frames.ndim == 6)

    def visual(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        """Fused features ``f (N, n, D)``, Vis2Text ``vt (N, n, d_text)`` and the memory ``[f; vt] (N, 2n, D)``."""
        if features.ndim != 3 or features.shape[1] != self.frames or features.shape[2] != self.feature_dim:
            raise ShapeError(f"frame features must be (N, {self.frames}, {self.feature_dim}), got {tuple(features.shape)}")
        x = self.feature_proj((features - self.feature_mean) / self.feature_std) + self.frame_position
        fused = self.fusion(x)
        vt = self.vis2text(fused)
        memory = torch.cat([fused + self.segment[0], self.text_proj(vt) + self.segment[1]], dim=1)
        return {"fused": fused, "vt": vt, "memory": memory}

    def _aspect_states(self, memory: torch.Tensor, aspect: str, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Hidden states of a sub-decoder teacher-forced on ``tokens`` (BOS .. EOS PAD), and their padding."""
        inputs = tokens[:, :-1]
        states = self.aspects[aspect].hidden_states(memory, inputs) + self.segment[2 + ASPECTS.index(aspect)]
        return states, inputs == PAD

    def _caption_memory(
        self, memory: torch.Tensor, aspect_tokens: Mapping[str, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        parts, masks = [memory], [torch.zeros(memory.shape[:2], dtype=torch.bool, device=memory.device)]
        for aspect in self.aspects:
            states, padding = self._aspect_states(memory, aspect, aspect_tokens[aspect])
            parts.append(states)
            masks.append(padding)
        return torch.cat(parts, dim=1), torch.cat(masks, dim=1)

    def losses(
        self,
        features: torch.Tensor,
        captions: torch.Tensor,
        text_targets: torch.Tensor | None,
        aspect_tokens: Mapping[str, torch.Tensor] | None,
        label_smoothing: float = 0.0,
    ) -> dict[str, torch.Tensor]:
        """Every term: ``l_cap``, ``l_int``, ``l_eff``, ``l_att`` (with commonsense), ``l_distill`` and ``loss``."""
        config = self.config
        out = self.visual(features)
        values: dict[str, torch.Tensor] = {}
        alpha_cap, *alpha_aspects = config.alphas
        total = torch.zeros((), device=features.device)
        if self.aspects:
            if aspect_tokens is None:
                raise ConfigError(
                    "this CLIP4VideoCap model has commonsense sub-decoders: its loss needs intention/effect/attribute tokens"
                )
            for aspect, weight, short in zip(ASPECTS, alpha_aspects, ("l_int", "l_eff", "l_att")):
                values[short] = self.aspects[aspect].loss(out["memory"], aspect_tokens[aspect], label_smoothing)
                total = total + weight * values[short]
            memory, padding = self._caption_memory(out["memory"], aspect_tokens)
        else:
            memory, padding = out["memory"], None
        values["l_cap"] = self._caption_loss(memory, captions, label_smoothing, padding)
        total = total + alpha_cap * values["l_cap"]
        if text_targets is not None and config.distill_weight > 0:
            values["l_distill"] = F.l1_loss(out["vt"], text_targets[:, None, :].expand_as(out["vt"]).to(out["vt"].dtype))
            total = total + config.distill_weight * values["l_distill"]
        values["loss"] = total
        return values

    @torch.no_grad()
    def commonsense(self, features: torch.Tensor) -> dict[str, list[list[int]]]:
        """Each sub-decoder's greedy text (token ids) for frame features ``(N, n, d)``."""
        memory = self.visual(features)["memory"]
        return {aspect: decoder.generate(memory, "greedy") for aspect, decoder in self.aspects.items()}

    def _tokens(self, ids: Sequence[Sequence[int]], length: int, device) -> torch.Tensor:
        out = torch.full((len(ids), length), PAD, dtype=torch.long, device=device)
        for row, words in enumerate(ids):
            seq = [BOS, *list(words)[: length - 2], EOS]
            out[row, : len(seq)] = torch.as_tensor(seq, device=device)
        return out

    @torch.no_grad()
    def caption_features(self, features: torch.Tensor, **generate: Any) -> list[list[int]]:
        memory = self.visual(features)["memory"]
        if self.aspects:
            texts = {aspect: decoder.generate(memory, "greedy") for aspect, decoder in self.aspects.items()}
            tokens = {aspect: self._tokens(ids, self.config.aspect_length, memory.device) for aspect, ids in texts.items()}
            memory, padding = self._caption_memory(memory, tokens)
        else:
            padding = None
        return self._generate(memory, padding, **generate)

    @torch.no_grad()
    def caption(self, frames: torch.Tensor, **generate: Any) -> list[list[int]]:
        return self.caption_features(self.frame_features(frames), **generate)


class ClipTextEncoder:
    """The frozen CLIP text tower of the distillation targets: ``encode(captions) -> (N, d_text)``."""

    def __init__(self, name: str, pretrained: str | None, seed: int = 0, device: str | torch.device = "cpu"):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            model = create_clip(name, pretrained, device)
        model.visual = None  # the image tower is not needed here
        self.model = model.eval()
        for parameter in self.model.parameters():
            parameter.requires_grad_(False)
        self.tokenizer = open_clip_module().get_tokenizer(name)
        self.device = device

    @property
    def dim(self) -> int:
        projection = getattr(self.model, "text_projection", None)
        if isinstance(projection, torch.Tensor):
            return int(projection.shape[1])
        return int(self.encode(["a"]).shape[-1])

    @torch.no_grad()
    def encode(self, captions: Sequence[str], chunk: int = 256) -> torch.Tensor:
        parts = [
            self.model.encode_text(self.tokenizer(list(captions[i : i + chunk])).to(self.device)).float().cpu()
            for i in range(0, len(captions), chunk)
        ]
        return torch.cat(parts)


# --- commonsense annotations ----------------------------------------------------------------------


def _from_rows(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, str]] | None:
    if all(all(isinstance(row.get(a), str) for a in ASPECTS) for row in rows):
        return [{a: str(row[a]) for a in ASPECTS} for row in rows]
    return None


def _synthetic_corpus(description: Mapping[str, Any]):
    if description.get("name") != "synthetic":
        return None
    keys = ("seed", "frames", "max_objects", "min_objects", "captions_per_video", "temporal_pairs", "max_speed")
    kwargs = {k: description[k] for k in keys if k in description}
    if "split_fractions" in description:
        kwargs["splits"] = tuple(description["split_fractions"])
    count = description.get("num_videos") or description.get("videos") or description.get("size")
    if count is None:
        return None
    return SyntheticCorpus(num_videos=int(count), **kwargs)


def _corpus_extras(samples: Any) -> dict[str, dict[str, Any]] | None:
    """video id -> corpus ``extra`` of the samples' source, when it can be found."""
    seen = 0
    node = samples
    while node is not None and seen < 6:
        seen += 1
        items = getattr(node, "items", None)
        if isinstance(items, list) and items and hasattr(items[0], "extra"):
            return {item.video_id: dict(item.extra) for item in items}
        paths = getattr(node, "paths", None)
        if isinstance(paths, list) and paths and all(isinstance(p, Path) for p in paths):
            extras: dict[str, dict[str, Any]] = {}
            for path in paths:
                with open_dataset(path) as handle:
                    text = handle.attrs.get("corpus")
                if text is None:
                    return None
                corpus = _synthetic_corpus(json.loads(text.decode() if isinstance(text, bytes) else text))
                if corpus is None:
                    return None
                extras.update({item.video_id: dict(item.extra) for item in corpus.items})
            return extras
        node = getattr(node, "samples", None) or getattr(node, "dataset", None)
    return None


def commonsense_annotations(samples: Any, rows: Sequence[Mapping[str, Any]]) -> list[dict[str, str]] | None:
    """Per row, its ``intention``, ``effect`` and ``attribute`` texts; None when they are not known.

    From the rows themselves, else from the corpus the samples come from (a simulated dataset's
    items, or a dataset file of the synthetic corpus rebuilt from its recorded description).
    """
    direct = _from_rows(rows)
    if direct is not None:
        return direct
    try:
        extras = _corpus_extras(samples)
    except Exception:  # noqa: BLE001 - a corpus that cannot be rebuilt just has no annotations
        extras = None
    if not extras:
        return None
    out = []
    for row in rows:
        extra = extras.get(str(row.get("video_id")))
        if extra is None or not all(isinstance(extra.get(a), str) for a in ASPECTS):
            return None
        out.append({a: extra[a] for a in ASPECTS})
    return out


# --- training -----------------------------------------------------------------------------------


def add_arguments(group) -> None:
    """``snapcap train clip4videocap`` options."""
    group.add_argument(
        "--teacher", type=Path, default=None, help="a snapcap teacher.pt: its trained CLIP tower is the frame encoder (frozen)"
    )
    add_frame_sampling_arguments(group)
    group.add_argument(
        "--freeze-clip",
        action="store_true",
        help="keep a randomly initialised tiny tower frozen (default: train it from scratch)",
    )
    group.add_argument("--width", type=int, default=None, help="model width D (default: the preset's)")
    add_decoder_argument(group, "native (the paper's transformer caption decoder)")
    group.add_argument(
        "--fusion", choices=FUSIONS, default=None, help="temporal fusion block (default lstm, the paper's best, Table 4)"
    )
    group.add_argument(
        "--scales", type=int, default=None, help="temporal scales of the fusion (default 3, the paper's best, Table 4)"
    )
    group.add_argument(
        "--alphas",
        type=float,
        nargs=4,
        default=None,
        metavar=("A1", "A2", "A3", "A4"),
        help="weights α1..α4 of L_cap, L_int, L_eff, L_att (default 1 1 1 1; the paper does not give them)",
    )
    group.add_argument(
        "--distill-weight",
        type=float,
        default=None,
        help="weight λ of L_distill (default: the preset's; paper preset 10, the best distillation loss ratio of "
        "the paper's Table 3 and the setting of its results; tiny preset 1)",
    )
    group.add_argument("--no-commonsense", action="store_true", help="leave the commonsense sub-decoders out")


def image_size(options: Mapping[str, Any]) -> int:
    return teacher_image_size(clip_tower_name(options, CLIP4VIDEOCAP_PRESETS))


def config_from_options(options: Mapping[str, Any], B: int, T: int) -> Clip4VideoCapConfig:
    preset = str(option(options, "preset", "tiny"))
    if preset not in CLIP4VIDEOCAP_PRESETS:
        raise ConfigError(f"--preset {preset!r}: expected one of {', '.join(CLIP4VIDEOCAP_PRESETS)}")
    base = CLIP4VIDEOCAP_PRESETS[preset]
    changes: dict[str, Any] = dict(B=int(B), T=int(T), **pretrained_override(options))
    teacher = option(options, "teacher", None)
    if teacher:
        changes.update(teacher=str(Path(teacher).resolve()), clip=teacher_tower_name(teacher), pretrained=None, train_clip=False)
    elif option(options, "freeze_clip", False):
        changes["train_clip"] = False
    elif changes.get("pretrained", base.pretrained) is None:
        changes["train_clip"] = True
    for key in ("frames", "fps", "clip_fps", "video_seconds", "width", "fusion", "scales", "distill_weight"):
        value = option(options, key, None)
        if value is not None:
            changes[key] = value
    if option(options, "alphas", None) is not None:
        changes["alphas"] = tuple(float(a) for a in options["alphas"])
    if option(options, "no_commonsense", False):
        changes["commonsense"] = False
    config = replace(base, **changes)
    decoder = option(options, "decoder", None)
    if decoder is not None and decoder_choice(decoder) != "native":
        config = replace(config, decoder=lm_decoder_settings(decoder, config.max_length, _prefix_length(config)))
    check_frame_sampling(config)
    return config


def _prefix_length(config: Clip4VideoCapConfig) -> int:
    """The caption decoder's memory length: ``[f; vt]`` and, with commonsense, each sub-decoder's states."""
    return 2 * frame_count(config) + (len(ASPECTS) * (config.aspect_length - 1) if config.commonsense else 0)


def _chosen_captions(rows, indices, epoch: int, seed: int) -> list[int]:
    """The caption index of each row for this epoch: the rule of ``snapcap.caption.train.encode_caption_batch``."""
    out = []
    for index in indices:
        options = rows[int(index)]["captions"]
        if not options:
            raise ConfigError(f"sample {int(index)} has no caption to train on")
        out.append(int(np.random.default_rng([seed, epoch, int(index)]).integers(len(options))))
    return out


def train(samples: Any, out_dir: str | Path, options: Mapping[str, Any] | None = None, progress: bool = True) -> Path:
    """Train CLIP4VideoCap on sample dicts; returns ``out_dir/clip4videocap.pt`` (resumable)."""
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
    annotations = commonsense_annotations(samples, rows) if config.commonsense else None
    if config.commonsense and annotations is None:
        print(
            "note: clip4videocap: no intention/effect/attribute annotations found for this data; "
            "training without the commonsense sub-decoders",
            file=sys.stderr,
        )
        config = replace(config, commonsense=False)
    aspect_texts = [a[k] for a in annotations for k in ASPECTS] if annotations else []
    texts = [c for row in rows for c in row["captions"]] + aspect_texts
    if not any(str(t).strip() for t in texts):
        raise ConfigError("the training data holds no caption")
    aspect_vocab = None
    if is_lm_decoder(config.decoder):  # captions in the language model's tokens; the sub-decoders keep words
        config = replace(config, decoder=dict(config.decoder, max_prefix=_prefix_length(config)))
        vocab = codec_for(config.decoder)
        aspect_vocab = Vocabulary.build(aspect_texts, min_count=training.min_count) if aspect_texts else None
    else:
        vocab = Vocabulary.build(texts, min_count=training.min_count)
    text_encoder = None
    if config.distill_weight > 0:
        text_encoder = ClipTextEncoder(config.text_clip, config.text_pretrained, config.text_seed)
        config = replace(config, text_dim=text_encoder.dim)
    torch.manual_seed(training.seed)
    model = Clip4VideoCap(
        config, len(vocab), build_frame_encoder(config, device), vocab, len(aspect_vocab) if aspect_vocab else 0
    ).to(device)
    config = model.config  # with the language model's hash, when there is one
    words = aspect_vocab or vocab
    if config.train_clip:
        model.encoder.unfreeze()
    features = None if config.train_clip else cached_features(model, rows, out_dir, NAME, device, context)
    if features is not None:
        model.set_feature_stats(features)
    # T_CLIP of every reference caption, once (the text tower is frozen)
    offsets = np.cumsum([0] + [len(row["captions"]) for row in rows])
    targets = None
    if text_encoder is not None:  # on disk, memory-mapped: one row per reference caption of the corpus
        captions = [str(c) for row in rows for c in row["captions"]]
        digest = hashlib.sha256("\n".join(captions).encode()).hexdigest()
        encoder = {"clip": config.text_clip, "pretrained": config.text_pretrained, "seed": config.text_seed}

        def encode(part: range) -> dict[str, torch.Tensor]:
            return {"text": text_encoder.encode([captions[i] for i in part])}

        meta = {"captions": digest, "count": len(captions), "encoder": encoder}
        cache = out_dir / f"{NAME}.text"
        targets = cached_rows(cache, meta, len(captions), encode, context, 256, desc="caption text features")["text"]
    aspect_tokens = (
        {a: words.encode_batch([ann[a] for ann in annotations], max_length=config.aspect_length) for a in ASPECTS}
        if annotations
        else None
    )
    max_length = min(training.max_length, config.max_length)

    def loss_fn(indices, epoch):
        choice = _chosen_captions(rows, indices, epoch, training.seed)
        captions = vocab.encode_batch([rows[int(i)]["captions"][c] for i, c in zip(indices, choice)], max_length=max_length).to(
            device
        )
        index = torch.as_tensor(np.asarray(indices), dtype=torch.long)
        if features is not None:
            feats = rows_of(features, indices).to(device)
        else:
            feats = model.frame_features(stack_frames(rows, indices, device))
        text = None if targets is None else rows_of(targets, [offsets[int(i)] + c for i, c in zip(indices, choice)]).to(device)
        aspects = None if aspect_tokens is None else {a: t[index].to(device) for a, t in aspect_tokens.items()}
        return model.losses(feats, captions, text, aspects, training.label_smoothing)

    extra = {"aspect_vocab": aspect_vocab.to_dict()} if aspect_vocab is not None else None
    return fit_and_save(NAME, model, loss_fn, len(rows), config, training, vocab, out_dir, progress, context, extra, feed=feed)


def load(path: str | Path, device: str = "cpu"):
    """``(model, Clip4VideoCapConfig, Vocabulary)`` of a ``clip4videocap.pt``."""
    path = Path(path)
    state = read_checkpoint(path, NAME)
    data = dict(state["config"])
    data["alphas"] = tuple(data.get("alphas", (1.0, 1.0, 1.0, 1.0)))
    config = Clip4VideoCapConfig(**data)
    vocab = codec_from_dict(state["vocab"])
    aspects = len(Vocabulary.from_dict(state["aspect_vocab"])) if state.get("aspect_vocab") else 0
    frozen = replace(config, train_clip=False)
    model = Clip4VideoCap(frozen, len(vocab), build_frame_encoder(frozen, device, load_weights=False), vocab, aspects)
    try:
        model.load_state_dict(state["state"])
    except RuntimeError as exc:
        raise DataFileError(f"{path}: weights do not fit the recorded architecture ({exc})") from exc
    model.to(device).eval()
    return model, config, vocab
