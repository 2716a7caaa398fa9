"""Greedy decoding and beam search: one implementation for every token-by-token captioner.

The special token ids (:data:`PAD`, :data:`BOS`, :data:`EOS`, :data:`UNK`) are the vocabulary's
(:class:`snapcap.caption.text.Vocabulary`); every captioner takes them from here.

A captioner describes one decoding step of its model as a function::

    step(tokens, state) -> (logits, state)

``tokens`` ``(rows,)`` holds the last token of every row (BOS at the first call), ``state`` is
whatever the model carries from step to step (a key/value cache, an LSTM state, the tokens so
far...; at the first call, the caller's initial state) and ``logits`` ``(rows, V)`` score the next
token. Beam search also needs::

    reorder(state, index) -> state

the state of the rows ``index`` (a LongTensor, repeats allowed), in that order: it expands the
state of the ``N`` samples to ``N · beam_size`` rows after the first step and follows the beams
after every step. Every row of a batch goes through one ``step`` call per position.

The next-token log-probabilities are ``log_softmax(logits)`` in float64 with PAD and BOS never
generated and EOS not before ``min_length`` words (:func:`next_token_logprobs`); greedy decoding
takes their argmax (ties: the lowest id). :func:`beam_search` documents the search and the score
``logprob / length ** length_penalty`` of a finished hypothesis.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import torch

from snapcap.caption.text import Vocabulary
from snapcap.errors import ConfigError, InvalidValueError

__all__ = [
    "PAD",
    "BOS",
    "EOS",
    "UNK",
    "NUM_SPECIAL",
    "BEAM_STYLES",
    "Hypothesis",
    "StepFn",
    "ReorderFn",
    "next_token_logprobs",
    "greedy_search",
    "beam_search",
    "search",
    "check_lengths",
    "check_beam_options",
]

PAD, BOS, EOS, UNK = Vocabulary.PAD, Vocabulary.BOS, Vocabulary.EOS, Vocabulary.UNK
"""Special token ids (the vocabulary's): padding, begin and end of a caption, unknown word."""

NUM_SPECIAL = 4
"""The special ids come first: words have ids >= NUM_SPECIAL."""

BEAM_STYLES = ("shrinking", "constant")
"""The two beam-search flavours of :func:`beam_search`."""

StepFn = Callable[[torch.Tensor, Any], "tuple[torch.Tensor, Any]"]
"""``step(tokens (rows,), state) -> (logits (rows, V), state)``."""

ReorderFn = Callable[[Any, torch.Tensor], Any]
"""``reorder(state, index (rows',)) -> state`` of the rows ``index``."""


@dataclass(frozen=True)
class Hypothesis:
    """One finished beam-search hypothesis.

    Attributes:
        tokens: the word ids, without BOS and EOS.
        logprob: sum of the log-probabilities of every generated token (EOS included when ``ended``).
        length: number of generated tokens the log-probability sums over:
            ``len(tokens) + 1`` when ``ended``, else ``len(tokens)`` (at least 1).
        score: ``logprob / length ** length_penalty``, the quantity hypotheses are ranked by.
        ended: whether the hypothesis ended with EOS (``False``: stopped at the length limit).
    """

    tokens: list[int]
    logprob: float
    length: int
    score: float
    ended: bool


def next_token_logprobs(logits: torch.Tensor, words: int, min_length: int, only_eos: bool = False) -> torch.Tensor:
    """Float64 log-probabilities ``(rows, V)`` of the next token, as the searches use them.

    ``log_softmax(logits)`` with PAD and BOS set to -inf, and EOS too while fewer than
    ``min_length`` words were generated (``words``). ``only_eos``: the sequence is full, every
    token but EOS is -inf (EOS keeps its log-probability, or 0 where that is -inf).
    """
    logprobs = torch.log_softmax(logits.double(), dim=-1)
    logprobs[:, PAD] = -math.inf
    logprobs[:, BOS] = -math.inf
    if words < min_length:
        logprobs[:, EOS] = -math.inf
    if only_eos:
        eos = logprobs[:, EOS].clone()
        logprobs.fill_(-math.inf)
        logprobs[:, EOS] = torch.where(torch.isfinite(eos), eos, torch.zeros_like(eos))
    return logprobs


def greedy_search(
    step: StepFn,
    state: Any,
    rows: int,
    max_words: int,
    min_length: int = 1,
    device: torch.device | str | None = None,
) -> list[list[int]]:
    """The most probable token at every step, for ``rows`` sequences at once.

    A row stops at EOS or after ``max_words`` words (finished rows still go through ``step``
    with EOS until every row is done).

    Args:
        step: the model's step function (see the module docstring).
        state: its initial state for the ``rows`` rows.
        rows: the number of sequences.
        max_words: the most words a sequence gets (``step`` is called at most that many times).
        min_length: the fewest words before EOS is allowed.
        device: where the token tensors live (the model's device).

    Returns:
        ``rows`` lists of word ids, without BOS and EOS.
    """
    tokens = torch.full((rows,), BOS, dtype=torch.long, device=device)
    done = torch.zeros(rows, dtype=torch.bool, device=device)
    chosen: list[torch.Tensor] = []
    for position in range(max_words):
        logits, state = step(tokens, state)
        best = next_token_logprobs(logits, position, min_length).argmax(dim=-1)
        best = torch.where(done, torch.full_like(best, EOS), best)
        chosen.append(best)
        done = done | (best == EOS)
        if bool(done.all()):
            break
        tokens = best
    sequences = torch.stack(chosen, dim=1).tolist() if chosen else [[] for _ in range(rows)]
    return [seq[: seq.index(EOS)] if EOS in seq else seq for seq in sequences]


def beam_search(
    step: StepFn,
    reorder: ReorderFn,
    state: Any,
    rows: int,
    beam_size: int,
    max_words: int,
    min_length: int = 1,
    length_penalty: float = 1.0,
    style: str = "shrinking",
    device: torch.device | str | None = None,
) -> list[list[Hypothesis]]:
    """Beam search over a batch; for every sample its finished hypotheses, best first.

    Batched as ``rows · beam_size`` rows with one ``step`` call per position: the first step
    runs on the ``rows`` samples, whose state is then expanded to ``beam_size`` rows each. Every
    step expands every live beam by every token and sorts the candidates by cumulative
    log-probability (ties: lowest beam, then lowest token id). Two flavours (``style``):

    * ``"shrinking"`` (snapcap's decoder, VCCV): each sample keeps ``k`` live beams, ``k =
      beam_size`` at first. The ``k`` best candidates are kept; a kept candidate that ends with
      EOS becomes a finished hypothesis and ``k`` drops by one (finished hypotheses are kept,
      never pruned). A sample stops when it has no live beam left; beams still live after
      ``max_words`` words finish without EOS. With ``beam_size = 1`` this is greedy decoding.
    * ``"constant"`` (CLIP4Caption's, as Hugging Face's beam search): among the ``2·beam_size``
      best candidates, every one that ends with EOS becomes a finished hypothesis and the
      ``beam_size`` best others stay live, so a sample always has ``beam_size`` live beams. The
      batch stops once every sample has at least ``beam_size`` finished hypotheses (live beams
      are then dropped); after ``max_words`` words only EOS may follow, so every beam ends.

    Finished hypotheses are ranked by (stable sort: equal scores keep the order found)::

        score = logprob / length ** length_penalty

    ``logprob`` is the sum of the natural-log probabilities of the generated tokens (EOS
    included) and ``length`` the number of those tokens: ``words + 1`` for a hypothesis that
    ended with EOS, ``words`` for one cut at the length limit (at least 1). The length penalty
    only affects this ranking, not which hypotheses the search finds.

    Args:
        step, reorder: the model's step and reorder functions (see the module docstring).
        state: the model's initial state for the ``rows`` samples.
        rows: the number of samples.
        beam_size: beams per sample, at least 1.
        max_words: the most words a hypothesis gets.
        min_length: the fewest words before EOS is allowed.
        length_penalty: exponent of the length normalisation.
        style: ``"shrinking"`` or ``"constant"`` (:data:`BEAM_STYLES`).
        device: where the token tensors live (the model's device).

    Returns:
        For each sample, its finished hypotheses sorted by decreasing score.

    Raises:
        ConfigError: unknown ``style``.
    """
    if style not in BEAM_STYLES:
        raise ConfigError(f"unknown beam-search style {style!r}; expected one of {', '.join(BEAM_STYLES)}")
    constant = style == "constant"
    width = beam_size
    pool = 2 * width if constant else width

    def score(logprob: float, length: int) -> float:
        return logprob / (max(length, 1) ** length_penalty)

    logits, state = step(torch.full((rows,), BOS, dtype=torch.long, device=device), state)
    expand = torch.arange(rows, device=device).repeat_interleave(width)
    state = reorder(state, expand)
    logits = logits.index_select(0, expand)
    # Cumulative log-probabilities of the live beams; -inf marks an empty slot. At the start only
    # the first slot of each sample is live, so that the first step does not pick duplicates.
    cumulative = torch.full((rows, width), -math.inf, dtype=torch.float64, device=device)
    cumulative[:, 0] = 0.0
    words = torch.zeros((rows * width, 0), dtype=torch.long, device=device)
    slots = torch.full((rows, 1), width, device=device)  # "shrinking": beams not yet finished
    finished: list[list[Hypothesis]] = [[] for _ in range(rows)]
    base = (torch.arange(rows, device=device) * width)[:, None]
    last = max_words if constant else max_words - 1
    for position in range(last + 1):
        logprobs = next_token_logprobs(logits, position, min_length, only_eos=constant and position == max_words)
        vocab = logprobs.shape[-1]
        candidates = (cumulative.reshape(-1, 1) + logprobs).reshape(rows, width * vocab)
        top_scores, top_index = torch.sort(candidates, dim=1, descending=True, stable=True)
        top_scores, top_index = top_scores[:, :pool], top_index[:, :pool]
        origin, token = base + top_index // vocab, top_index % vocab
        ending = token == EOS
        if constant:
            usable = torch.isfinite(top_scores)
            live = usable & ~ending
            live = live & (live.cumsum(dim=1) <= width)
        else:
            usable = (torch.arange(pool, device=device)[None, :] < slots) & torch.isfinite(top_scores)
            live = usable & ~ending
        ends = usable & ending
        for sample, rank in ends.nonzero().tolist():
            logprob = float(top_scores[sample, rank])
            tokens = words[int(origin[sample, rank])].tolist()
            finished[sample].append(Hypothesis(tokens, logprob, len(tokens) + 1, score(logprob, len(tokens) + 1), True))
        if not constant:
            slots = slots - ends.sum(dim=1, keepdim=True)
        # The live candidates, best first, fill the beam slots; the other slots are empty.
        order = torch.sort((~live).to(torch.uint8), dim=1, stable=True).indices[:, :width]
        filled = live.gather(1, order)
        cumulative = torch.where(filled, top_scores.gather(1, order), torch.full_like(cumulative, -math.inf))
        token = torch.where(filled, token.gather(1, order), torch.full_like(order, EOS)).reshape(-1)
        origin = origin.gather(1, order).reshape(-1)
        words = torch.cat([words.index_select(0, origin), token[:, None]], dim=1)
        if not bool(filled.any()) or position == last or (constant and all(len(hyps) >= width for hyps in finished)):
            break
        state = reorder(state, origin)
        logits, state = step(token, state)
    # Beams still live at the length limit finish without EOS ("constant": only for a sample
    # that has no finished hypothesis at all).
    for sample, slot in torch.isfinite(cumulative).nonzero().tolist():
        if constant and finished[sample]:
            continue
        logprob = float(cumulative[sample, slot])
        tokens = words[sample * width + slot].tolist()
        finished[sample].append(Hypothesis(tokens, logprob, max(len(tokens), 1), score(logprob, len(tokens)), False))
    return [sorted(hyps, key=lambda h: -h.score) for hyps in finished]


def search(
    method: str,
    step: StepFn,
    reorder: ReorderFn,
    state: Any,
    rows: int,
    max_words: int,
    min_length: int = 1,
    beam_size: int = 1,
    length_penalty: float = 1.0,
    style: str = "shrinking",
    device: torch.device | str | None = None,
) -> list[list[int]]:
    """Word ids per row: ``"greedy"`` (:func:`greedy_search`) or ``"beam"`` (the best hypothesis
    of :func:`beam_search`).

    Raises:
        ConfigError: unknown ``method``.
    """
    if method == "greedy":
        return greedy_search(step, state, rows, max_words, min_length, device)
    if method == "beam":
        results = beam_search(step, reorder, state, rows, beam_size, max_words, min_length, length_penalty, style, device)
        return [hyps[0].tokens if hyps else [] for hyps in results]
    raise ConfigError(f"unknown generation method {method!r}; expected 'greedy' or 'beam'")


def check_lengths(max_length: Any, min_length: Any, limit: int) -> int:
    """Check generation lengths (in tokens, BOS and EOS included); return the most words.

    Raises:
        InvalidValueError: ``max_length`` is not an int in ``[3, limit]`` or ``min_length`` not
            an int in ``[0, max_length - 2]``.
    """
    if isinstance(max_length, bool) or not isinstance(max_length, int) or not 3 <= max_length <= limit:
        raise InvalidValueError(f"max_length must be an int in [3, {limit}] (tokens incl. BOS and EOS), got {max_length!r}")
    if isinstance(min_length, bool) or not isinstance(min_length, int) or not 0 <= min_length <= max_length - 2:
        raise InvalidValueError(f"min_length must be an int in [0, max_length - 2 = {max_length - 2}] words, got {min_length!r}")
    return max_length - 2


def check_beam_options(beam_size: Any, length_penalty: Any) -> None:
    """Raise InvalidValueError unless ``beam_size`` is a positive int and ``length_penalty`` finite."""
    if isinstance(beam_size, bool) or not isinstance(beam_size, int) or beam_size < 1:
        raise InvalidValueError(f"beam_size must be a positive int, got {beam_size!r}")
    if not isinstance(length_penalty, (int, float)) or not math.isfinite(length_penalty):
        raise InvalidValueError(f"length_penalty must be a finite number, got {length_penalty!r}")
