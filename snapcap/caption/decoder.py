"""The caption decoder g: a GPT-like prefix-LM conditioned on visual prefix tokens.

SnapCap predicts the i-th word from ``z_i = Concat(t, c_<i)``: the ``T`` visual tokens ``t``
(one per measurement, already projected to the decoder width ``D`` by a projector outside this
module) followed by the embeddings ``c_<i`` of the previous words. :class:`CaptionDecoder` is a
pre-LayerNorm transformer over that concatenated sequence::

    x = [t_1 .. t_P, E[BOS], E[w_1], .., E[w_n]] + pos[0 .. P+L-1]
    h = LN_f(Block_K(.. Block_1(x)))          Block: x += Attn(LN(x)); x += MLP(LN(x))
    logits = h[P:] @ Eᵀ                        (output head tied to the token embedding E)

**Attention mask (prefix-LM).** Query position ``i`` may attend to key position ``j`` when
``j < P`` (every position sees the whole prefix) or ``j <= i`` (causal among the text). So the
prefix tokens attend to each other bidirectionally but never to text, and text tokens attend to
all prefix tokens and to themselves and earlier text tokens; see :func:`prefix_lm_mask`.

**Padding.** Token ids follow the vocabulary convention ``PAD=0, BOS=1, EOS=2, UNK=3`` (the ids
of :mod:`snapcap.caption.decoding`); rows are ``BOS w_1 .. w_n EOS PAD ..``. Padding is right
padding only (a PAD may not be followed by a real token; checked), so under the causal mask no
real token ever attends to a PAD and no key padding mask is needed; PAD positions produce logits
that are simply ignored, and PAD targets are left out of :meth:`CaptionDecoder.loss`.

**Teacher forcing.** ``forward(prefix, tokens)[:, i]`` are the logits of token ``i + 1``: the BOS
position predicts the first word and the last word's position predicts EOS.

**Generation.** Greedy decoding and beam search are those of :mod:`snapcap.caption.decoding`
(beam style ``"shrinking"``), batched over the ``N`` samples (``N · beam`` rows for beam
search), one decoder call per step for the whole batch, with a key/value cache (the prefix
keys/values do not depend on the text, so the cache is exact; ``use_cache=False`` recomputes the
whole sequence every step through :meth:`CaptionDecoder.forward` as a reference). See
:meth:`CaptionDecoder.beam_search` for the exact search and scoring rule.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from snapcap.caption.decoding import (
    NUM_SPECIAL,
    PAD,
    Hypothesis,
    ReorderFn,
    StepFn,
    beam_search,
    check_beam_options,
    check_lengths,
    greedy_search,
)
from snapcap.errors import ConfigError, DTypeError, InvalidValueError, ShapeError

__all__ = [
    "DecoderConfig",
    "DECODER_PRESETS",
    "CaptionDecoder",
    "prefix_lm_mask",
]


@dataclass(frozen=True)
class DecoderConfig:
    """Architecture of :class:`CaptionDecoder`.

    Attributes:
        vocab_size: number of token ids ``V``, special tokens included (at least 4).
        width: model width ``D``; the visual prefix tokens must already have this size.
        layers: number of transformer blocks.
        heads: attention heads per block (must divide ``width``).
        mlp_ratio: hidden size of the MLP as a multiple of ``width``.
        dropout: dropout on the embeddings, attention weights and residual branches.
        max_length: the longest token sequence, BOS and EOS included (so at most
            ``max_length - 2`` words are generated).
        max_prefix: the most visual prefix tokens ``P`` (``T`` measurements per video).
    """

    vocab_size: int
    width: int = 512
    layers: int = 4
    heads: int = 8
    mlp_ratio: float = 4.0
    dropout: float = 0.1
    max_length: int = 30
    max_prefix: int = 16

    def __post_init__(self) -> None:
        for name in ("vocab_size", "width", "layers", "heads", "max_length", "max_prefix"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(f"decoder config: {name} must be an int, got {value!r}")
        if self.vocab_size < NUM_SPECIAL:
            raise ConfigError(f"decoder config: vocab_size={self.vocab_size} must be at least {NUM_SPECIAL} (PAD, BOS, EOS, UNK)")
        if self.width < 1 or self.layers < 1 or self.heads < 1:
            raise ConfigError(
                f"decoder config: width, layers and heads must be positive, got {self.width}, {self.layers}, {self.heads}"
            )
        if self.width % self.heads:
            raise ConfigError(f"decoder config: width={self.width} is not a multiple of heads={self.heads}")
        if not (isinstance(self.mlp_ratio, (int, float)) and self.mlp_ratio > 0 and round(self.width * self.mlp_ratio) >= 1):
            raise ConfigError(f"decoder config: mlp_ratio must be a positive number, got {self.mlp_ratio!r}")
        if not (isinstance(self.dropout, (int, float)) and 0.0 <= self.dropout < 1.0):
            raise ConfigError(f"decoder config: dropout must be in [0, 1), got {self.dropout!r}")
        if self.max_length < 2:
            raise ConfigError(f"decoder config: max_length={self.max_length} must be at least 2 (BOS and EOS)")
        if self.max_prefix < 1:
            raise ConfigError(f"decoder config: max_prefix={self.max_prefix} must be at least 1")

    @property
    def head_width(self) -> int:
        """Width of one attention head, ``width // heads``."""
        return self.width // self.heads

    @property
    def mlp_width(self) -> int:
        """Hidden size of the MLP, ``round(width * mlp_ratio)``."""
        return int(round(self.width * self.mlp_ratio))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict; inverse of :meth:`from_dict`."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DecoderConfig:
        """Rebuild a config written by :meth:`to_dict`.

        Raises:
            ConfigError: ``data`` is not a mapping, lacks ``vocab_size``, has unknown keys or bad values.
        """
        if not isinstance(data, dict):
            raise ConfigError(f"decoder config must be a dict, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"decoder config has unknown keys {unknown}; expected some of {sorted(known)}")
        if "vocab_size" not in data:
            raise ConfigError("decoder config lacks vocab_size")
        return cls(**data)

    @classmethod
    def preset(cls, name: str, vocab_size: int, **overrides: Any) -> DecoderConfig:
        """The config of a named preset (see :data:`DECODER_PRESETS`) for a vocabulary size.

        Args:
            name: a key of :data:`DECODER_PRESETS`.
            vocab_size: number of token ids.
            **overrides: fields to change after applying the preset (e.g. ``dropout=0.0``).

        Raises:
            ConfigError: unknown preset name or invalid fields.
        """
        try:
            architecture = DECODER_PRESETS[name]
        except KeyError:
            raise ConfigError(f"unknown decoder preset {name!r}; expected one of {', '.join(DECODER_PRESETS)}") from None
        base = cls(vocab_size=vocab_size, **architecture)
        try:
            return replace(base, **overrides)
        except TypeError as exc:
            raise ConfigError(f"decoder preset {name!r}: bad overrides {overrides}: {exc}") from exc


DECODER_PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {"width": 64, "layers": 2, "heads": 4},
    "small": {"width": 256, "layers": 4, "heads": 8},
    "paper": {"width": 1024, "layers": 6, "heads": 16},
}
"""Named architectures (everything but ``vocab_size``); build one with :meth:`DecoderConfig.preset`.
``"paper"`` has the decoder width D = 1024 of the SnapCap paper."""


def prefix_lm_mask(prefix_length: int, text_length: int, device: torch.device | str | None = None) -> torch.Tensor:
    """The prefix-LM attention mask over ``prefix_length + text_length`` positions.

    Entry ``[i, j]`` is ``True`` when query ``i`` may attend to key ``j``: ``j < prefix_length``
    (everyone sees the whole prefix; the prefix is bidirectional) or ``j <= i`` (causal text).

    Returns:
        A boolean ``(S, S)`` tensor, ``S = prefix_length + text_length``.
    """
    size = prefix_length + text_length
    index = torch.arange(size, device=device)
    return (index[None, :] < prefix_length) | (index[None, :] <= index[:, None])


class _Block(nn.Module):
    """A pre-LN transformer block: ``x + Attn(LN(x))`` then ``x + MLP(LN(x))``."""

    def __init__(self, config: DecoderConfig):
        super().__init__()
        self.heads = config.heads
        self.dropout = config.dropout
        self.norm1 = nn.LayerNorm(config.width)
        self.qkv = nn.Linear(config.width, 3 * config.width)
        self.proj = nn.Linear(config.width, config.width)
        self.norm2 = nn.LayerNorm(config.width)
        self.fc = nn.Linear(config.width, config.mlp_width)
        self.out = nn.Linear(config.mlp_width, config.width)
        self.drop = nn.Dropout(config.dropout)

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor | None,
        past: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """Apply the block to ``x (rows, S, D)``.

        Args:
            x: the new positions.
            mask: boolean ``(S, S_past + S)`` attention mask, or ``None`` for no masking.
            past: cached keys and values ``(rows, heads, S_past, D / heads)`` of earlier positions.

        Returns:
            The output and the keys/values of all positions (past and new) for the cache.
        """
        rows, length, width = x.shape
        q, k, v = self.qkv(self.norm1(x)).split(width, dim=-1)
        q, k, v = (t.view(rows, length, self.heads, width // self.heads).transpose(1, 2) for t in (q, k, v))
        if past is not None:
            k = torch.cat([past[0], k], dim=2)
            v = torch.cat([past[1], v], dim=2)
        attended = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0)
        attended = attended.transpose(1, 2).reshape(rows, length, width)
        x = x + self.drop(self.proj(attended))
        x = x + self.drop(self.out(F.gelu(self.fc(self.norm2(x)))))
        return x, (k, v)


class CaptionDecoder(nn.Module):
    """Pre-LN prefix-LM transformer that writes captions from visual prefix tokens.

    See the module docstring for the architecture, the attention mask and the padding rules.

    Args:
        config: the architecture; see :class:`DecoderConfig` and :meth:`DecoderConfig.preset`.
    """

    def __init__(self, config: DecoderConfig):
        super().__init__()
        if not isinstance(config, DecoderConfig):
            raise ConfigError(f"CaptionDecoder needs a DecoderConfig, got {type(config).__name__}")
        self.config = config
        self.token_embedding = nn.Embedding(config.vocab_size, config.width)
        self.position_embedding = nn.Parameter(torch.zeros(config.max_prefix + config.max_length, config.width))
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(_Block(config) for _ in range(config.layers))
        self.norm = nn.LayerNorm(config.width)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """GPT-2 initialisation: N(0, 0.02) weights, zero biases, residual projections scaled by 1/sqrt(2·layers)."""
        std = 0.02
        nn.init.normal_(self.token_embedding.weight, std=std)
        nn.init.normal_(self.position_embedding, std=std)
        for block in self.blocks:
            for linear in (block.qkv, block.proj, block.fc, block.out):
                nn.init.normal_(linear.weight, std=std)
                nn.init.zeros_(linear.bias)
            for linear in (block.proj, block.out):
                nn.init.normal_(linear.weight, std=std / math.sqrt(2 * self.config.layers))
            for norm in (block.norm1, block.norm2):
                norm.reset_parameters()
        self.norm.reset_parameters()

    # ------------------------------------------------------------------ validation

    def _check_prefix(self, prefix: torch.Tensor) -> None:
        config = self.config
        if not isinstance(prefix, torch.Tensor):
            raise DTypeError(f"prefix must be a torch.Tensor of shape (N, P, {config.width}), got {type(prefix).__name__}")
        if prefix.ndim != 3 or prefix.shape[-1] != config.width:
            raise ShapeError(f"prefix has shape {tuple(prefix.shape)}; expected (N, P, D) with D = decoder width {config.width}")
        if not prefix.is_floating_point():
            raise DTypeError(f"prefix must be a floating-point tensor, got {prefix.dtype}")
        if prefix.shape[1] < 1:
            raise ShapeError(f"prefix has shape {tuple(prefix.shape)}; expected at least one prefix token")
        if prefix.shape[1] > config.max_prefix:
            raise ShapeError(
                f"prefix has {prefix.shape[1]} tokens (shape {tuple(prefix.shape)}); "
                f"this decoder takes at most max_prefix={config.max_prefix}"
            )

    def _check_tokens(self, tokens: torch.Tensor, rows: int) -> None:
        config = self.config
        if not isinstance(tokens, torch.Tensor):
            raise DTypeError(f"tokens must be a torch.LongTensor of shape (N, L), got {type(tokens).__name__}")
        if tokens.ndim != 2:
            raise ShapeError(f"tokens has shape {tuple(tokens.shape)}; expected (N, L)")
        if tokens.dtype.is_floating_point or tokens.dtype.is_complex or tokens.dtype == torch.bool:
            raise DTypeError(f"tokens must be an integer tensor, got {tokens.dtype}")
        if tokens.shape[0] != rows:
            raise ShapeError(f"tokens has shape {tuple(tokens.shape)} but the prefix has N={rows} rows")
        if tokens.shape[1] < 1:
            raise ShapeError(f"tokens has shape {tuple(tokens.shape)}; expected at least one token (BOS)")
        if tokens.shape[1] > config.max_length:
            raise ShapeError(
                f"tokens has length {tokens.shape[1]} (shape {tuple(tokens.shape)}); "
                f"this decoder takes at most max_length={config.max_length}"
            )
        if tokens.numel():
            low, high = int(tokens.min()), int(tokens.max())
            if low < 0 or high >= config.vocab_size:
                raise InvalidValueError(
                    f"tokens hold ids in [{low}, {high}]; "
                    f"expected ids in [0, {config.vocab_size - 1}] (vocab_size={config.vocab_size})"
                )
            real = tokens != PAD
            if bool((real[:, 1:] & ~real[:, :-1]).any()):
                raise InvalidValueError(
                    "tokens have a PAD followed by a real token; only right padding (BOS w1 .. wn EOS PAD ..) is supported"
                )

    # ------------------------------------------------------------------ teacher forcing

    def hidden_states(self, prefix: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Final (layer-normed) hidden states of every prefix and text position.

        Args:
            prefix: visual prefix tokens ``(N, P, D)``.
            tokens: token ids ``(N, L)``, ``BOS w_1 .. EOS PAD ..``.

        Returns:
            ``(N, P + L, D)``.

        Raises:
            ShapeError, DTypeError, InvalidValueError: see :meth:`forward`.
        """
        self._check_prefix(prefix)
        self._check_tokens(tokens, prefix.shape[0])
        prefix_length, text_length = prefix.shape[1], tokens.shape[1]
        x = torch.cat([prefix.to(self.token_embedding.weight.dtype), self.token_embedding(tokens.long())], dim=1)
        x = self.drop(x + self.position_embedding[: prefix_length + text_length])
        mask = prefix_lm_mask(prefix_length, text_length, device=x.device)
        for block in self.blocks:
            x, _ = block(x, mask)
        return self.norm(x)

    def forward(self, prefix: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Teacher-forced next-token logits.

        Args:
            prefix: visual prefix tokens ``(N, P, D)`` with ``1 <= P <= max_prefix``.
            tokens: token ids ``(N, L)`` with ``1 <= L <= max_length``, right padded with PAD.

        Returns:
            Logits ``(N, L, V)``; ``[:, i]`` predicts token ``i + 1`` (the BOS position predicts
            the first word).

        Raises:
            ShapeError: wrong number of axes, prefix width other than ``D``, prefix longer than
                ``max_prefix``, tokens longer than ``max_length``, or ``N`` that differ.
            DTypeError: non-float prefix or non-integer tokens.
            InvalidValueError: token ids outside ``[0, vocab_size)`` or PAD before a real token.
        """
        hidden = self.hidden_states(prefix, tokens)
        return F.linear(hidden[:, prefix.shape[1] :], self.token_embedding.weight)

    def loss(self, prefix: torch.Tensor, tokens: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
        """Mean cross-entropy of every non-PAD target token (words and EOS; BOS is never a target).

        Args:
            prefix: visual prefix tokens ``(N, P, D)``.
            tokens: token ids ``(N, L)``, ``L >= 2``.
            label_smoothing: in ``[0, 1)``; passed to :func:`torch.nn.functional.cross_entropy`.

        Returns:
            A scalar tensor.

        Raises:
            InvalidValueError: bad ``label_smoothing`` or no non-PAD target at all.
            ShapeError: ``L < 2`` or any error of :meth:`forward`.
        """
        if not (isinstance(label_smoothing, (int, float)) and 0.0 <= label_smoothing < 1.0):
            raise InvalidValueError(f"label_smoothing must be in [0, 1), got {label_smoothing!r}")
        if isinstance(tokens, torch.Tensor) and tokens.ndim == 2 and tokens.shape[1] < 2:
            raise ShapeError(f"tokens has shape {tuple(tokens.shape)}; the loss needs L >= 2 (BOS and at least one target)")
        logits = self(prefix, tokens)
        targets = tokens[:, 1:].long()
        if not bool((targets != PAD).any()):
            raise InvalidValueError("tokens have no non-PAD target; cannot compute a loss")
        return F.cross_entropy(
            logits[:, :-1].reshape(-1, logits.shape[-1]).float(),
            targets.reshape(-1),
            ignore_index=PAD,
            label_smoothing=float(label_smoothing),
        )

    # ------------------------------------------------------------------ incremental decoding

    def _start(self, prefix: torch.Tensor, bos: torch.Tensor, use_cache: bool) -> tuple[Any, torch.Tensor]:
        """Run prefix + BOS ``(N,)``; return the decoding state and the logits ``(N, V)`` after BOS."""
        bos = bos[:, None]
        if not use_cache:
            return (prefix, bos), self(prefix, bos)[:, -1]
        prefix_length = prefix.shape[1]
        x = torch.cat([prefix.to(self.token_embedding.weight.dtype), self.token_embedding(bos)], dim=1)
        x = self.drop(x + self.position_embedding[: prefix_length + 1])
        mask = prefix_lm_mask(prefix_length, 1, device=x.device)
        cache = []
        for block in self.blocks:
            x, kv = block(x, mask)
            cache.append(kv)
        logits = F.linear(self.norm(x[:, -1]), self.token_embedding.weight)
        return (cache, prefix_length + 1), logits

    def _advance(self, state: Any, tokens: torch.Tensor, use_cache: bool) -> tuple[Any, torch.Tensor]:
        """Append one token per row ``(rows,)``; return the new state and the next logits ``(rows, V)``."""
        if not use_cache:
            prefix, text = state
            text = torch.cat([text, tokens[:, None]], dim=1)
            return (prefix, text), self(prefix, text)[:, -1]
        cache, position = state
        x = self.drop(self.token_embedding(tokens[:, None]) + self.position_embedding[position])
        new_cache = []
        for block, past in zip(self.blocks, cache):
            x, kv = block(x, None, past)
            new_cache.append(kv)
        logits = F.linear(self.norm(x[:, -1]), self.token_embedding.weight)
        return (new_cache, position + 1), logits

    def _search_functions(self, prefix: torch.Tensor, use_cache: bool) -> tuple[StepFn, ReorderFn]:
        """The ``step`` and ``reorder`` of :mod:`snapcap.caption.decoding` for this prefix.

        The state is None before the first step (which runs the prefix and BOS), then the key/value
        cache and the next position (``use_cache``) or the prefix and the tokens so far.
        """

        def step(tokens: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
            if state is None:
                state, logits = self._start(prefix, tokens, use_cache)
            else:
                state, logits = self._advance(state, tokens, use_cache)
            return logits, state

        def reorder(state: Any, index: torch.Tensor) -> Any:
            if not use_cache:
                rows, text = state
                return rows.index_select(0, index), text.index_select(0, index)
            cache, position = state
            return [(k.index_select(0, index), v.index_select(0, index)) for k, v in cache], position

        return step, reorder

    def _check_generation(self, prefix: torch.Tensor, max_length: int | None, min_length: int) -> int:
        """Validate generation arguments; return the largest number of words to generate."""
        self._check_prefix(prefix)
        return check_lengths(self.config.max_length if max_length is None else max_length, min_length, self.config.max_length)

    @torch.no_grad()
    def beam_search(
        self,
        prefix: torch.Tensor,
        beam_size: int = 3,
        length_penalty: float = 1.0,
        max_length: int | None = None,
        min_length: int = 1,
        use_cache: bool = True,
    ) -> list[list[Hypothesis]]:
        """Beam search; every finished hypothesis of every sample, best first.

        The search, batched as ``N · beam_size`` rows with one decoder call per step:

        * each sample keeps ``k`` live beams (``k = beam_size`` at the start); every step expands
          every live beam by every token and keeps the ``k`` candidates with the highest
          cumulative log-probability (ties: lowest beam, then lowest token id);
        * a kept candidate that ends with EOS becomes a finished hypothesis and is set aside,
          and ``k`` drops by one (the finished hypotheses are kept, never pruned); the others
          continue as live beams;
        * a sample stops when it has no live beam left; beams still live after
          ``max_length - 2`` words finish without EOS.

        PAD and BOS are never generated, nor EOS before ``min_length`` words. The finished
        hypotheses are ranked by::

            score = logprob / length ** length_penalty

        where ``logprob`` is the sum of the natural-log probabilities of the generated tokens
        (EOS included) and ``length`` is the number of those tokens: ``words + 1`` for a
        hypothesis that ended with EOS, ``words`` for one cut at the length limit (at least 1).
        ``length_penalty = 0`` ranks by the raw sum; since log-probabilities are negative, a
        larger ``length_penalty`` favours longer captions. The length penalty only affects this
        final ranking, not which hypotheses the search finds. With ``beam_size = 1`` the search
        is exactly greedy decoding.

        The module is put in eval mode (no dropout) while searching and restored afterwards.

        Args:
            prefix: visual prefix tokens ``(N, P, D)``.
            beam_size: beams per sample, at least 1.
            length_penalty: exponent of the length normalisation.
            max_length: the longest sequence in tokens, BOS and EOS included, at most
                ``config.max_length`` (the default); at most ``max_length - 2`` words.
            min_length: the fewest words before EOS is allowed.
            use_cache: reuse keys/values of earlier positions (``False``: recompute every step).

        Returns:
            For each sample, its finished hypotheses sorted by decreasing score.

        Raises:
            ShapeError, DTypeError: bad prefix.
            InvalidValueError: bad beam_size, length_penalty, max_length or min_length.
        """
        max_words = self._check_generation(prefix, max_length, min_length)
        check_beam_options(beam_size, length_penalty)
        was_training = self.training
        self.eval()
        try:
            step, reorder = self._search_functions(prefix, use_cache)
            return beam_search(
                step,
                reorder,
                None,
                prefix.shape[0],
                beam_size,
                max_words,
                min_length,
                float(length_penalty),
                device=prefix.device,
            )
        finally:
            self.train(was_training)

    @torch.no_grad()
    def generate(
        self,
        prefix: torch.Tensor,
        method: str = "greedy",
        beam_size: int = 3,
        length_penalty: float = 1.0,
        max_length: int | None = None,
        min_length: int = 1,
        use_cache: bool = True,
    ) -> list[list[int]]:
        """Caption token ids for each sample, without BOS and EOS.

        ``"greedy"`` takes the most probable token at each step (PAD and BOS never, EOS not
        before ``min_length`` words) and stops a row at EOS or after ``max_length - 2`` words.
        ``"beam"`` returns the best hypothesis of :meth:`beam_search` (see there for the search and
        the score ``logprob / length ** length_penalty``). The module is put in eval mode while
        generating and restored afterwards.

        Args:
            prefix: visual prefix tokens ``(N, P, D)``.
            method: ``"greedy"`` or ``"beam"``.
            beam_size: beams per sample (``"beam"`` only).
            length_penalty: length normalisation exponent (``"beam"`` only).
            max_length: the longest sequence in tokens, BOS and EOS included (default
                ``config.max_length``).
            min_length: the fewest words before EOS is allowed.
            use_cache: reuse keys/values of earlier positions (``False``: recompute every step).

        Returns:
            ``N`` lists of word ids.

        Raises:
            ConfigError: unknown method.
            ShapeError, DTypeError: bad prefix.
            InvalidValueError: bad beam_size, length_penalty, max_length or min_length.
        """
        if method == "beam":
            hypotheses = self.beam_search(prefix, beam_size, length_penalty, max_length, min_length, use_cache)
            return [hyps[0].tokens for hyps in hypotheses]
        if method != "greedy":
            raise ConfigError(f"unknown generation method {method!r}; expected 'greedy' or 'beam'")
        max_words = self._check_generation(prefix, max_length, min_length)
        was_training = self.training
        self.eval()
        try:
            step, _ = self._search_functions(prefix, use_cache)
            return greedy_search(step, None, prefix.shape[0], max_words, min_length, device=prefix.device)
        finally:
            self.train(was_training)
