"""Tests of the prefix-LM caption decoder: shapes, mask, loss, greedy/beam generation, errors."""

from __future__ import annotations

import math

import pytest
import torch

from snapcap.caption import decoding
from snapcap.caption.decoder import DECODER_PRESETS, CaptionDecoder, DecoderConfig, prefix_lm_mask
from snapcap.caption.decoding import BOS, EOS, PAD, Hypothesis
from snapcap.errors import ConfigError, DTypeError, InvalidValueError, ShapeError, SnapcapError


@pytest.fixture(autouse=True, scope="module")
def single_thread():
    """One intra-op thread: these models are tiny, and on a busy machine extra threads that wait
    for a core slow the training loops down by 30x."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny(vocab_size: int = 24, seed: int = 0, **overrides) -> CaptionDecoder:
    torch.manual_seed(seed)
    overrides.setdefault("dropout", 0.0)
    return CaptionDecoder(DecoderConfig.preset("tiny", vocab_size, **overrides)).eval()


def scrambled(model: CaptionDecoder, std: float = 0.3, seed: int = 0) -> CaptionDecoder:
    """The model with every parameter redrawn from N(0, std²), so that every path carries signal
    (at the GPT-2 initialisation the prefix moves the logits by only ~1e-7)."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_(0.0, std)
    return model


def random_tokens(rows: int, words: list[int], vocab_size: int, seed: int = 0) -> torch.Tensor:
    """Rows ``BOS w.. EOS PAD..`` with the given word counts, padded to the longest."""
    generator = torch.Generator().manual_seed(seed)
    length = max(words) + 2
    tokens = torch.full((rows, length), PAD, dtype=torch.long)
    for row, count in enumerate(words):
        tokens[row, 0] = BOS
        tokens[row, 1 : 1 + count] = torch.randint(4, vocab_size, (count,), generator=generator)
        tokens[row, 1 + count] = EOS
    return tokens


def teacher_forced_logprob(model: CaptionDecoder, prefix: torch.Tensor, words: list[int], ended: bool) -> float:
    """Sum of log p(token) over the words (and EOS when ``ended``) by a full forward pass."""
    sequence = [BOS, *words] + ([EOS] if ended else [])
    tokens = torch.tensor([sequence])
    with torch.no_grad():
        logprobs = torch.log_softmax(model(prefix, tokens).double(), dim=-1)[0]
    return float(sum(logprobs[i, sequence[i + 1]] for i in range(len(sequence) - 1)))


# ---------------------------------------------------------------------------- config


def test_config_round_trip_and_presets():
    config = DecoderConfig.preset("tiny", 50, dropout=0.0)
    assert (config.width, config.layers, config.heads, config.vocab_size, config.dropout) == (64, 2, 4, 50, 0.0)
    assert DecoderConfig.from_dict(config.to_dict()) == config
    paper = DecoderConfig.preset("paper", 100)
    assert (paper.width, paper.layers, paper.heads) == (1024, 6, 16)
    assert set(DECODER_PRESETS) >= {"tiny", "paper"}
    default = DecoderConfig(vocab_size=10)
    assert (default.width, default.layers, default.heads, default.mlp_ratio, default.dropout) == (512, 4, 8, 4.0, 0.1)
    assert (default.max_length, default.max_prefix) == (30, 16)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"vocab_size": 3},
        {"vocab_size": 10, "width": 60, "heads": 8},
        {"vocab_size": 10, "layers": 0},
        {"vocab_size": 10, "dropout": 1.0},
        {"vocab_size": 10, "mlp_ratio": 0},
        {"vocab_size": 10, "max_length": 1},
        {"vocab_size": 10, "max_prefix": 0},
        {"vocab_size": 10.5},
    ],
)
def test_config_rejects_bad_values(kwargs):
    with pytest.raises(ConfigError):
        DecoderConfig(**kwargs)


def test_config_from_dict_and_preset_errors():
    with pytest.raises(ConfigError, match="unknown keys"):
        DecoderConfig.from_dict({"vocab_size": 10, "depth": 3})
    with pytest.raises(ConfigError, match="vocab_size"):
        DecoderConfig.from_dict({"width": 64})
    with pytest.raises(ConfigError, match="unknown decoder preset"):
        DecoderConfig.preset("huge", 10)
    with pytest.raises(ConfigError):
        DecoderConfig.preset("tiny", 10, nonsense=1)
    with pytest.raises(ConfigError):
        CaptionDecoder({"vocab_size": 10})


# ---------------------------------------------------------------------------- shapes


def test_tiny_shapes_and_tied_head():
    model = tiny()
    prefix = torch.randn(3, 5, 64)
    tokens = random_tokens(3, [4, 2, 0], 24)
    logits = model(prefix, tokens)
    assert logits.shape == (3, tokens.shape[1], 24)
    assert model.hidden_states(prefix, tokens).shape == (3, 5 + tokens.shape[1], 64)
    assert logits.dtype == torch.float32
    # The output head is the token embedding: no separate (V, D) matrix.
    matrices = [p for p in model.parameters() if p.shape == (24, 64)]
    assert len(matrices) == 1 and matrices[0] is model.token_embedding.weight


def test_paper_size_forward():
    torch.manual_seed(0)
    config = DecoderConfig.preset("paper", 500, dropout=0.0)
    model = CaptionDecoder(config).eval()
    prefix = torch.randn(2, 8, 1024)
    tokens = random_tokens(2, [6, 3], 500)
    with torch.no_grad():
        logits = model(prefix, tokens)
    assert logits.shape == (2, tokens.shape[1], 500)
    assert torch.isfinite(logits).all()


# ---------------------------------------------------------------------------- mask


def test_prefix_lm_mask_pattern():
    mask = prefix_lm_mask(3, 4)
    assert mask.shape == (7, 7) and mask.dtype == torch.bool
    assert mask[:3, :3].all()  # prefix bidirectional
    assert not mask[:3, 3:].any()  # prefix never sees text
    assert mask[3:, :3].all()  # text sees the whole prefix
    assert torch.equal(mask[3:, 3:], torch.ones(4, 4, dtype=torch.bool).tril())  # causal text


def test_later_text_token_does_not_change_earlier_logits():
    model = scrambled(tiny())
    prefix = torch.randn(2, 4, 64)
    tokens = random_tokens(2, [6, 6], 24)
    changed = tokens.clone()
    changed[:, 4] = torch.where(tokens[:, 4] == 5, 6, 5)
    with torch.no_grad():
        a, b = model(prefix, tokens), model(prefix, changed)
    torch.testing.assert_close(a[:, :4], b[:, :4], rtol=0, atol=1e-6)
    assert not torch.allclose(a[:, 4:], b[:, 4:], atol=1e-4)
    # Text never leaks into the prefix hidden states.
    with torch.no_grad():
        ha, hb = model.hidden_states(prefix, tokens), model.hidden_states(prefix, changed)
    torch.testing.assert_close(ha[:, :4], hb[:, :4], rtol=0, atol=1e-6)


def test_prefix_token_changes_all_logits_and_prefix_is_bidirectional():
    model = scrambled(tiny())
    prefix = torch.randn(2, 4, 64)
    tokens = random_tokens(2, [6, 6], 24)
    changed = prefix.clone()
    changed[:, -1] = torch.randn(2, 64)  # (a constant shift would vanish in the LayerNorm)
    with torch.no_grad():
        a, b = model(prefix, tokens), model(changed, tokens)
        ha, hb = model.hidden_states(prefix, tokens), model.hidden_states(changed, tokens)
    differs = (a - b).abs().amax(dim=-1)
    assert (differs > 1e-4).all(), differs
    # The last prefix token reaches the first one: attention among the prefix is bidirectional.
    assert (ha[:, 0] - hb[:, 0]).abs().max() > 1e-4


# ---------------------------------------------------------------------------- loss


def test_loss_ignores_padding():
    model = tiny()
    prefix = torch.randn(3, 4, 64)
    tokens = random_tokens(3, [5, 3, 1], 24)
    padded = torch.cat([tokens, torch.full((3, 4), PAD, dtype=torch.long)], dim=1)
    with torch.no_grad():
        short, long = model.loss(prefix, tokens), model.loss(prefix, padded)
        logits = model(prefix, tokens)
    torch.testing.assert_close(short, long, rtol=1e-6, atol=1e-6)
    # Manual mean cross-entropy over the non-PAD targets.
    targets = tokens[:, 1:]
    logprobs = torch.log_softmax(logits[:, :-1], dim=-1).gather(-1, targets[..., None])[..., 0]
    keep = targets != PAD
    torch.testing.assert_close(short, -logprobs[keep].mean(), rtol=1e-5, atol=1e-6)
    assert keep.sum() == 5 + 3 + 1 + 3  # words plus one EOS per row
    smoothed = model.loss(prefix, tokens, label_smoothing=0.1)
    assert torch.isfinite(smoothed) and not torch.allclose(smoothed, short)


def test_loss_errors():
    model = tiny()
    prefix = torch.randn(2, 4, 64)
    with pytest.raises(ShapeError, match="L >= 2"):
        model.loss(prefix, torch.full((2, 1), BOS))
    with pytest.raises(InvalidValueError, match="no non-PAD"):
        model.loss(prefix, torch.tensor([[BOS, PAD], [BOS, PAD]]))
    with pytest.raises(InvalidValueError, match="label_smoothing"):
        model.loss(prefix, random_tokens(2, [2, 2], 24), label_smoothing=1.0)


# ---------------------------------------------------------------------------- generation


@pytest.fixture(scope="module")
def varied() -> CaptionDecoder:
    """A tiny decoder briefly trained on 12 captions of 1 to 9 words: on new random prefixes it
    writes captions of varied lengths that end with EOS (random weights never pick EOS)."""
    torch.manual_seed(0)
    vocab_size = 16
    model = CaptionDecoder(DecoderConfig.preset("tiny", vocab_size, dropout=0.0))
    generator = torch.Generator().manual_seed(5)
    captions = [torch.randint(4, vocab_size, (n,), generator=generator).tolist() for n in [1, 2, 3, 4, 5, 6, 7, 9, 2, 3, 4, 5]]
    tokens = torch.full((len(captions), 11), PAD, dtype=torch.long)
    for row, caption in enumerate(captions):
        tokens[row, : len(caption) + 2] = torch.tensor([BOS, *caption, EOS])
    prefix = torch.randn(len(captions), 4, 64)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(60):
        optimizer.zero_grad()
        model.loss(prefix, tokens).backward()
        optimizer.step()
    return model.eval()


def test_cache_matches_recomputation(varied):
    prefix = torch.randn(16, 4, 64, generator=torch.Generator().manual_seed(7))
    for method in ("greedy", "beam"):
        cached = varied.generate(prefix, method=method, beam_size=3, max_length=15)
        recomputed = varied.generate(prefix, method=method, beam_size=3, max_length=15, use_cache=False)
        assert cached == recomputed
    assert len({len(c) for c in cached}) >= 3  # the captions really end at different steps


def test_beam_of_width_one_equals_greedy(varied):
    prefix = torch.randn(16, 4, 64, generator=torch.Generator().manual_seed(8))
    greedy = varied.generate(prefix, method="greedy", max_length=15)
    assert varied.generate(prefix, method="beam", beam_size=1, max_length=15) == greedy
    assert len({len(c) for c in greedy}) >= 3
    assert all(1 <= len(c) <= 13 and all(3 <= t < 16 for t in c) for c in greedy)
    # Also with random weights (no EOS: every caption uses the whole budget), several seeds.
    for seed in range(3):
        model = tiny(seed=seed)
        prefix = torch.randn(5, 4, 64)
        greedy = model.generate(prefix, method="greedy", max_length=12)
        assert model.generate(prefix, method="beam", beam_size=1, max_length=12) == greedy
        assert all(len(c) <= 10 and all(3 <= t < 24 for t in c) for c in greedy)


def test_wider_beam_finds_at_least_as_good_scores(varied):
    prefix = torch.randn(16, 4, 64, generator=torch.Generator().manual_seed(9))
    narrow = varied.beam_search(prefix, beam_size=1, length_penalty=0.0, max_length=15)
    wide = varied.beam_search(prefix, beam_size=4, length_penalty=0.0, max_length=15)
    # Beam search guarantees nothing per sample, but on average the wider beam finds more
    # probable captions, and for some samples it picks another caption than greedy.
    assert sum(w[0].score for w in wide) > sum(n[0].score for n in narrow)
    assert any(w[0].tokens != n[0].tokens for w, n in zip(wide, narrow))


def test_beam_scores_follow_documented_formula(varied):
    prefix = torch.randn(6, 4, 64, generator=torch.Generator().manual_seed(10))
    penalty = 0.7
    results = varied.beam_search(prefix, beam_size=4, length_penalty=penalty, max_length=10, min_length=2)
    lengths = set()
    for sample, hypotheses in enumerate(results):
        assert 1 <= len(hypotheses) <= 4
        scores = [h.score for h in hypotheses]
        assert scores == sorted(scores, reverse=True)
        for h in hypotheses:
            assert isinstance(h, Hypothesis)
            assert 2 <= len(h.tokens) <= 8
            assert h.length == len(h.tokens) + (1 if h.ended else 0)
            assert h.ended or len(h.tokens) == 8
            assert math.isclose(h.score, h.logprob / h.length**penalty, rel_tol=1e-12)
            expected = teacher_forced_logprob(varied, prefix[sample : sample + 1], h.tokens, h.ended)
            assert math.isclose(h.logprob, expected, rel_tol=1e-4, abs_tol=1e-4)
            lengths.add(h.length)
    assert len(lengths) >= 2
    best = varied.generate(prefix, method="beam", beam_size=4, length_penalty=penalty, max_length=10, min_length=2)
    assert best == [hyps[0].tokens for hyps in results]
    # The length penalty only re-ranks the same finished hypotheses.
    for other in (0.0, 2.0):
        reranked = varied.beam_search(prefix, beam_size=4, length_penalty=other, max_length=10, min_length=2)
        for a, b in zip(results, reranked):
            assert {(tuple(h.tokens), h.ended) for h in a} == {(tuple(h.tokens), h.ended) for h in b}
            top = max(b, key=lambda h: h.logprob / h.length**other)
            assert b[0].score == top.score


class MarkovDecoder(CaptionDecoder):
    """A decoder whose next-token distribution depends only on the last token (a fixed table).

    From BOS: word 4 (p ≈ 1). After 4: EOS 0.55, word 5 0.45. After 5: EOS ≈ 1.
    So "4" has log-prob log 0.55 ≈ -0.598 (2 tokens) and "4 5" log 0.45 ≈ -0.799 (3 tokens):
    with length_penalty 0 the short caption wins, with length_penalty 1 the long one
    (-0.299 vs -0.266).
    """

    def __init__(self):
        super().__init__(DecoderConfig(vocab_size=8, width=8, layers=1, heads=1, dropout=0.0, max_length=10, max_prefix=4))
        table = torch.full((8, 8), 1e-9)
        table[BOS, 4] = 1.0
        table[4, EOS], table[4, 5] = 0.55, 0.45
        table[5, EOS] = 1.0
        for t in (6, 7):
            table[t, EOS] = 1.0
        table[:, 3] = 1e-9
        self.register_buffer("table", torch.log(table / table.sum(dim=1, keepdim=True)))

    def forward(self, prefix: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        self._check_tokens(tokens, prefix.shape[0])
        return self.table[tokens]


def test_length_penalty_changes_beam_preference():
    model = MarkovDecoder()
    prefix = torch.zeros(1, 2, 8)
    hyps = model.beam_search(prefix, beam_size=2, length_penalty=0.0, use_cache=False)[0]
    assert {tuple(h.tokens) for h in hyps} >= {(4,), (4, 5)}
    assert model.generate(prefix, method="beam", beam_size=2, length_penalty=0.0, use_cache=False) == [[4]]
    assert model.generate(prefix, method="beam", beam_size=2, length_penalty=1.0, use_cache=False) == [[4, 5]]
    assert model.generate(prefix, method="greedy", use_cache=False) == [[4]]
    short = next(h for h in hyps if h.tokens == [4])
    assert math.isclose(short.logprob, math.log(0.55), abs_tol=1e-6) and short.length == 2


def test_generation_stops_at_eos_and_respects_max_length():
    model = MarkovDecoder()
    prefix = torch.zeros(2, 1, 8)
    # min_length forces the second word; EOS then stops generation.
    assert model.generate(prefix, min_length=2, use_cache=False) == [[4, 5], [4, 5]]
    # Without EOS the length limit stops it: a table that never says EOS.
    model.table[:, EOS] = -30.0
    model.table[4, 5] = model.table[5, 4] = 0.0
    for method in ("greedy", "beam"):
        assert model.generate(prefix, method=method, max_length=7, use_cache=False) == [[4, 5, 4, 5, 4]] * 2
    hyps = model.beam_search(prefix[:1], beam_size=2, max_length=7, use_cache=False)[0]
    assert hyps[0].ended is False and hyps[0].length == 5


def test_generate_restores_training_mode_and_min_length():
    model = tiny(seed=2, dropout=0.1).train()
    prefix = torch.randn(2, 3, 64)
    first = model.generate(prefix, max_length=10, min_length=8)
    assert model.training
    assert model.generate(prefix, max_length=10, min_length=8) == first  # no dropout while generating
    assert all(len(c) >= 8 for c in first)


# ---------------------------------------------------------------------------- overfitting


def test_tiny_decoder_overfits_captions():
    torch.manual_seed(0)
    vocab_size = 24  # 4 special tokens + 20 words
    model = CaptionDecoder(DecoderConfig.preset("tiny", vocab_size, dropout=0.0))
    prefix = torch.randn(6, 4, 64)
    generator = torch.Generator().manual_seed(1)
    captions = [torch.randperm(20, generator=generator)[:5].add(4).tolist() for _ in range(6)]
    assert len({tuple(c) for c in captions}) == 6
    tokens = torch.tensor([[BOS, *c, EOS] for c in captions])
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(300):
        optimizer.zero_grad()
        loss = model.loss(prefix, tokens)
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.05
    assert model.generate(prefix, method="greedy") == captions
    assert model.generate(prefix, method="beam", beam_size=3) == captions
    assert model.training  # generate restored the mode


# ---------------------------------------------------------------------------- errors


def test_input_validation_errors():
    model = tiny()
    tokens = random_tokens(2, [3, 3], 24)
    with pytest.raises(ShapeError, match=r"\(2, 4, 32\).*64"):
        model(torch.randn(2, 4, 32), tokens)
    with pytest.raises(ShapeError):
        model(torch.randn(4, 64), tokens)
    with pytest.raises(ShapeError, match="max_prefix"):
        model(torch.randn(2, 17, 64), tokens)
    with pytest.raises(ShapeError, match="max_length"):
        model(torch.randn(2, 4, 64), torch.full((2, 31), 5))
    with pytest.raises(ShapeError, match="N=2"):
        model(torch.randn(2, 4, 64), tokens[:1])
    with pytest.raises(InvalidValueError, match="vocab_size=24"):
        model(torch.randn(2, 4, 64), torch.tensor([[BOS, 24], [BOS, 5]]))
    with pytest.raises(InvalidValueError):
        model(torch.randn(2, 4, 64), torch.tensor([[BOS, -1], [BOS, 5]]))
    with pytest.raises(InvalidValueError, match="right padding"):
        model(torch.randn(2, 4, 64), torch.tensor([[BOS, PAD, 5], [BOS, 5, EOS]]))
    with pytest.raises(DTypeError):
        model(torch.randn(2, 4, 64), tokens.float())
    with pytest.raises(DTypeError):
        model(torch.ones(2, 4, 64, dtype=torch.long), tokens)
    prefix = torch.randn(2, 4, 64)
    with pytest.raises(ConfigError, match="method"):
        model.generate(prefix, method="sample")
    with pytest.raises(InvalidValueError, match="beam_size"):
        model.generate(prefix, method="beam", beam_size=0)
    with pytest.raises(InvalidValueError, match="max_length"):
        model.generate(prefix, max_length=31)
    with pytest.raises(InvalidValueError, match="min_length"):
        model.generate(prefix, max_length=6, min_length=5)
    with pytest.raises(ShapeError):
        model.generate(torch.randn(2, 4, 65))
    with pytest.raises(SnapcapError):
        model.generate(torch.randn(2, 20, 64), method="beam")


# ---------------------------------------------------------------------------- the shared search


def markov_step(table: torch.Tensor):
    """``step``/``reorder`` of :mod:`snapcap.caption.decoding` for a next-token table (state: calls so far)."""

    def step(tokens, state):
        return table[tokens], state + 1

    def reorder(state, index):
        return state

    return step, reorder


def test_shared_search_styles_on_a_markov_table():
    # From BOS: 4 (0.6) or 5 (0.4). After 4: EOS 0.5, 6 0.5. After 5 and 6: 7 (p ≈ 1, EOS ≈ 0). After 7: 7.
    table = torch.full((8, 8), 1e-6)
    table[BOS, 4], table[BOS, 5] = 0.6, 0.4
    table[4, EOS], table[4, 6] = 0.5, 0.5
    table[5, 7] = table[6, 7] = table[7, 7] = 1.0
    table = torch.log(table / table.sum(dim=1, keepdim=True))
    step, reorder = markov_step(table)
    assert decoding.greedy_search(step, 0, 2, max_words=4) == [[4], [4]]
    shrinking = decoding.beam_search(step, reorder, 0, 1, beam_size=2, max_words=3, length_penalty=0.0)[0]
    # Ties go to the lower token: "4 EOS" (0.3) beats "4 6" (0.3), ends and takes a slot; the other
    # beam runs to the limit and ends without EOS, more probable (0.4) than "4".
    assert [(h.tokens, h.ended, h.length) for h in shrinking] == [([5, 7, 7], False, 3), ([4], True, 2)]
    assert shrinking[1].logprob == pytest.approx(math.log(0.6 * 0.5), abs=1e-4)
    assert decoding.search("beam", step, reorder, 0, 1, 3, beam_size=2, length_penalty=0.0) == [[5, 7, 7]]
    constant = decoding.beam_search(step, reorder, 0, 1, beam_size=2, max_words=3, length_penalty=0.0, style="constant")[0]
    # Two live beams always, every EOS among the 4 best candidates finishes; the search stops with
    # 2 finished hypotheses: "4" and "5 7" (its EOS, p ≈ 1e-6, is among the 4 best).
    assert [(h.tokens, h.ended, h.length) for h in constant] == [([4], True, 2), ([5, 7], True, 3)]
    # After max_words words only EOS may follow: a table where EOS is (nearly) never likely.
    uniform = torch.full((8, 8), 1e-9)
    uniform[:, 4:] = 0.25
    step, reorder = markov_step(torch.log(uniform))
    forced = decoding.beam_search(step, reorder, 0, 1, beam_size=1, max_words=3, style="constant")[0]
    assert [(h.tokens, h.ended, h.length) for h in forced] == [([4, 4, 4], True, 4)]
    assert decoding.beam_search(step, reorder, 0, 1, beam_size=1, max_words=3)[0][0].ended is False
    with pytest.raises(ConfigError, match="style"):
        decoding.beam_search(step, reorder, 0, 1, beam_size=2, max_words=3, style="greedy")
    with pytest.raises(ConfigError, match="method"):
        decoding.search("sample", step, reorder, 0, 1, 3)
    logprobs = decoding.next_token_logprobs(torch.zeros(1, 8), words=0, min_length=1)
    assert logprobs.dtype == torch.float64 and torch.isinf(logprobs[0, [PAD, BOS, EOS]]).all()
    only_eos = decoding.next_token_logprobs(torch.zeros(1, 8), words=3, min_length=1, only_eos=True)
    assert torch.isfinite(only_eos[0]).tolist() == [i == EOS for i in range(8)]
