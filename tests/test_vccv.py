"""VCCV: the residuals-assisted encoder, the LSTM decoder with beam search, training and loading."""

from __future__ import annotations

import inspect
import itertools
import math

import numpy as np
import pytest
import torch
from caption_helpers import run_cli

from snapcap.caption.decoding import next_token_logprobs
from snapcap.caption.zoo.vccv import (
    VARIANTS,
    VCCV_DEFAULTS,
    VCCV_TRAIN_PRESETS,
    LstmDecoder,
    ResidualsAssistedEncoder,
    SpatialAttention,
    TemporalGate,
    VccvCaptioner,
    VccvConfig,
    VccvTrainConfig,
    load,
    options_from_cli,
    train_vccv,
    vccv_preset,
)
from snapcap.errors import ConfigError, DataFileError, InvalidValueError, ShapeError

torch.set_num_threads(1)

CAPTIONS = [
    "a red circle moves to the left",
    "a blue square spins in place",
    "a green ring grows slowly",
    "a white bar drifts up",
]


def tiny_model(vocab_size: int = 12, **overrides) -> VccvCaptioner:
    torch.manual_seed(0)
    config = vccv_preset("tiny", B=4, T=2, vocab_size=vocab_size, **{"dropout": 0.0, **overrides})
    return VccvCaptioner(config).eval()


def random_video(count: int = 2, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(count, 2, 4, 64, 64, 3, generator=generator)


# --- modules ------------------------------------------------------------------------------------


def test_spatial_attention_shapes_and_weights():
    torch.manual_seed(0)
    sam = SpatialAttention(hidden_dim=10, locations=16)
    v_conv, v_s, a_s, hidden = torch.randn(3, 5, 16, 7), torch.randn(3, 5, 16), torch.randn(3, 5, 16), torch.randn(3, 10)
    attended, weights = sam(v_conv, v_s, a_s, hidden)
    assert attended.shape == (3, 5, 7) and weights.shape == (3, 5, 16)
    torch.testing.assert_close(weights.sum(-1), torch.ones(3, 5))
    torch.testing.assert_close(attended, (weights[..., None] * v_conv).sum(2))
    # The residuals and the decoder state both move the attention.
    assert not torch.allclose(sam(v_conv, v_s, a_s + 1.0, hidden)[1], weights)
    assert not torch.allclose(sam(v_conv, v_s, a_s, hidden + 1.0)[1], weights)
    without = SpatialAttention(10, 16, use_residuals=False)
    torch.testing.assert_close(without(v_conv, v_s, None, hidden)[1], without(v_conv, v_s, a_s, hidden)[1])
    with pytest.raises(ShapeError, match="V_I"):
        sam(torch.randn(3, 5, 15, 7), v_s, a_s, hidden)


def test_temporal_gate_shapes_and_limits():
    torch.manual_seed(0)
    tgm = TemporalGate(hidden_dim=10, image_dim=12, residual_dim=6, gate_dim=8)
    attended, v_c, a_c, hidden = torch.randn(2, 4, 6), torch.randn(2, 4, 12), torch.randn(2, 4, 6), torch.randn(2, 10)
    fused, gate = tgm(attended, v_c, a_c, hidden)
    assert fused.shape == (2, 4, 12) and gate.shape == (2, 4)
    assert bool(((gate > 0) & (gate < 1)).all())
    with torch.no_grad():
        tgm.w_g.bias.fill_(1e4)  # G -> 1: only the attended feature
    torch.testing.assert_close(tgm(attended, v_c, a_c, hidden)[0], tgm.w_out_attended(attended))
    with torch.no_grad():
        tgm.w_g.bias.fill_(-1e4)  # G -> 0: only the plain I-frame feature
    torch.testing.assert_close(tgm(attended, v_c, a_c, hidden)[0], tgm.w_out_plain(v_c))


@pytest.mark.parametrize("variant", VARIANTS)
def test_encoder_variants(variant):
    torch.manual_seed(0)
    encoder = ResidualsAssistedEncoder(
        image_dim=12, residual_dim=6, grid=(4, 4), hidden_dim=10, gate_dim=8, visual_dim=20, dropout=0.0, variant=variant
    )
    v_i, a_r = torch.randn(3, 5, 12, 4, 4), torch.randn(3, 5, 6, 4, 4)
    hidden = torch.randn(3, 10)
    context = encoder.prepare(v_i, a_r)
    details: dict = {}
    out = encoder.step(context, hidden, details)
    assert out.shape == (3, 20)
    torch.testing.assert_close(encoder(v_i, a_r, hidden), out)
    moved = encoder.step(context, hidden + 1.0)
    if variant == "iframe":
        torch.testing.assert_close(moved, out)  # Mean Pool: no attention on the decoder state
        assert details == {}
    else:
        assert not torch.allclose(moved, out)
        assert details["attention"].shape == (3, 5, 16)
        assert ("gate" in details) == (variant == "rae")
        if "gate" in details:
            assert details["gate"].shape == (3, 5)
    changed = encoder.step(encoder.prepare(v_i, a_r + 1.0), hidden)
    assert torch.allclose(changed, out) == (variant not in ("rae", "rae-no-gate"))
    rows = encoder.select(context, torch.tensor([2, 0]))
    torch.testing.assert_close(encoder.step(rows, hidden[[2, 0]]), out[[2, 0]])


def test_initial_state_from_the_pooled_features():
    torch.manual_seed(0)
    encoder = ResidualsAssistedEncoder(12, 6, (4, 4), 10, 8, 20, 0.0, init_state=True, gops=5)
    v_i, a_r = torch.randn(3, 5, 12, 4, 4), torch.randn(3, 5, 6, 4, 4)
    h0, c0 = encoder.initial_state(encoder.prepare(v_i, a_r))
    assert h0.shape == c0.shape == (3, 10) and bool((h0.abs() < 1).all())
    assert not torch.allclose(h0[0], h0[1])  # each video starts from its own state
    moved, _ = encoder.initial_state(encoder.prepare(v_i, a_r + 1.0))
    assert not torch.allclose(moved, h0)  # the residuals count
    reversed_gops, _ = encoder.initial_state(encoder.prepare(v_i.flip(1), a_r.flip(1)))
    assert not torch.allclose(reversed_gops, h0)  # and the order of the GOPs
    rows = encoder.select(encoder.prepare(v_i, a_r), torch.tensor([2, 0]))
    torch.testing.assert_close(encoder.initial_state(rows)[0], h0[[2, 0]])
    with pytest.raises(ShapeError, match="GOPs"):
        encoder.prepare(v_i[:, :4], a_r[:, :4])
    plain = ResidualsAssistedEncoder(12, 6, (4, 4), 10, 8, 20, 0.0)
    zeros = plain.initial_state(plain.prepare(v_i, a_r))
    assert not zeros[0].any() and not zeros[1].any() and zeros[0].shape == (3, 10)
    # The captioner decodes from that state: the first word's distribution depends on the video.
    model = tiny_model(vocab_size=15)
    assert model.encoder.init_h is not None and model.config.init_state
    context = model.context(*model.compress(random_video(2, seed=3)))
    _, logits = model._advance(context, model.encoder.initial_state(context), torch.full((2,), 1))
    assert not torch.allclose(logits[0], logits[1])


def test_encoder_checks_its_inputs():
    encoder = ResidualsAssistedEncoder(12, 6, (4, 4), 10, 8, 20, 0.0)
    with pytest.raises(ShapeError, match="V_I"):
        encoder.prepare(torch.randn(3, 5, 11, 4, 4), torch.randn(3, 5, 6, 4, 4))
    with pytest.raises(ShapeError, match="A_r"):
        encoder.prepare(torch.randn(3, 5, 12, 4, 4), torch.randn(3, 4, 6, 4, 4))
    with pytest.raises(ShapeError, match="A_r"):
        encoder.prepare(torch.randn(3, 5, 12, 4, 4), None)
    with pytest.raises(ConfigError, match="variant"):
        ResidualsAssistedEncoder(12, 6, (4, 4), 10, 8, 20, 0.0, variant="full")


def test_lstm_decoder_step():
    decoder = LstmDecoder(vocab_size=9, visual_dim=5, embed_dim=4, hidden_dim=6, dropout=0.0)
    state = (torch.zeros(3, 6), torch.zeros(3, 6))
    (hidden, cell), logits = decoder(torch.randn(3, 5), torch.tensor([1, 4, 8]), state)
    assert hidden.shape == cell.shape == (3, 6) and logits.shape == (3, 9)
    with pytest.raises(InvalidValueError, match="vocab_size"):
        LstmDecoder(3, 5, 4, 6, 0.0)


def test_compress_gives_one_iframe_and_residual_per_gop():
    model = tiny_model()
    frames = random_video()
    iframes, residuals = model.compress(frames)
    assert iframes.shape == residuals.shape == (2, 2, 3, 64, 64)
    torch.testing.assert_close(iframes, frames[:, :, 0].permute(0, 1, 4, 2, 3), atol=1 / 255, rtol=0)
    static = frames[:, :, :1].expand(-1, -1, 4, -1, -1, -1)
    assert not model.compress(static)[1].any()  # nothing moves: zero residuals
    gray = model.compress(frames[..., 0])[0]  # gray video, replicated to RGB
    assert gray.shape == (2, 2, 3, 64, 64)
    small = model.compress(frames[:, :, :, :48, :48])[0]  # resized to the model's 64 x 64
    assert small.shape == (2, 2, 3, 64, 64)
    v_i, a_r = model.image_features(iframes), model.residual_features(residuals)
    assert v_i.shape == (2, 2, 64, 8, 8) and a_r.shape == (2, 2, 32, 8, 8)
    gops = tiny_model(gop_size=2).compress(frames)[0]  # 8 frames in GOPs of 2
    assert gops.shape == (2, 4, 3, 64, 64)


def test_clip_backbone_features():
    model = tiny_model(backbone="clip", clip_model="snapcap-tiny-vit")
    frames = random_video(1)
    iframes, residuals = model.compress(frames)
    v_i = model.image_features(iframes)
    assert v_i.shape == (1, 2, 64, 8, 8)
    assert not any(p.requires_grad for p in model.clip.parameters())
    captions = torch.tensor([[1, 5, 6, 2]])
    loss = model.loss(iframes, residuals, captions)
    loss.backward()
    assert math.isfinite(float(loss.detach()))
    assert len(model.caption(frames, beam_size=2, max_length=6)) == 1


# --- generation -----------------------------------------------------------------------------------


def test_greedy_equals_beam_of_one():
    model = tiny_model(vocab_size=15)
    with torch.no_grad():
        model.decoder.head.bias.normal_(0, 2.0)  # a peaky, non-trivial distribution
    iframes, residuals = model.compress(random_video(3, seed=1))
    for max_length in (3, 8, 20):
        greedy = model.generate(iframes, residuals, method="greedy", max_length=max_length)
        beam = model.generate(iframes, residuals, method="beam", beam_size=1, max_length=max_length)
        assert greedy == beam


def _all_scores(model, context, max_words: int, min_length: int = 1) -> dict[tuple[int, ...], float]:
    """Log-probability of every possible output (ended with EOS or cut at max_words), by brute force."""
    vocab = model.config.vocab_size
    words = [token for token in range(vocab) if token not in (0, 1, 2)]
    out = {}
    for length in range(0, max_words + 1):
        for sequence in itertools.product(words, repeat=length):
            ended = length < max_words
            if ended and length < min_length:
                continue
            tokens = [1, *sequence] + ([2] if ended else [])
            state = model.encoder.initial_state(context)
            total = 0.0
            for position in range(len(tokens) - 1):
                state, logits = model._advance(context, state, torch.tensor([tokens[position]]))
                total += float(next_token_logprobs(logits, position, min_length)[0, tokens[position + 1]])
            out[sequence] = total
    return out


def test_beam_search_returns_the_best_of_its_beams():
    model = tiny_model(vocab_size=6)  # three words (UNK among them) + EOS
    with torch.no_grad():
        model.decoder.head.bias.normal_(0, 1.0)
    iframes, residuals = model.compress(random_video(1, seed=2))
    with torch.no_grad():
        context = model.context(iframes, residuals)
        scores = _all_scores(model, context, max_words=3)
        exhaustive = max(scores, key=scores.get)
        # A beam as wide as every prefix is exhaustive: it finds the best sequence.
        hypotheses = model.beam(context, beam_size=27, max_words=3, length_penalty=0.0)[0]
        assert tuple(hypotheses[0].tokens) == exhaustive
        assert hypotheses[0].logprob == pytest.approx(scores[exhaustive])
        # Beam 5: the answer is the best-scoring of the hypotheses it kept, and scores are exact.
        five = model.beam(context, beam_size=5, max_words=3, length_penalty=0.0)[0]
        assert 1 <= len(five) <= 5 + 5
        assert [h.score for h in five] == sorted((h.score for h in five), reverse=True)
        for hyp in five:
            assert hyp.logprob == pytest.approx(scores[tuple(hyp.tokens)])
        best = model.generate(iframes, residuals, method="beam", beam_size=5, max_length=5, length_penalty=0.0)[0]
        assert best == five[0].tokens
        assert scores[tuple(best)] >= scores[tuple(model.greedy(context, 3)[0])] - 1e-9


def test_paper_defaults():
    # Sec. IV-A: words seen fewer than 3 times removed; sentences cut at 50 words, then BOS and EOS; beam 5
    assert VCCV_DEFAULTS == {"min_count": 3, "max_length": 52, "beam_size": 5}
    assert VccvTrainConfig().min_count == 3 and VccvTrainConfig().max_length == 50  # tiny: 50 tokens, as before
    assert VccvConfig().max_length == 50
    assert vccv_preset("paper").dropout == 0.5  # the paper's; the tiny preset uses 0.2
    signature = inspect.signature(VccvCaptioner.caption)
    assert signature.parameters["beam_size"].default == 5 and signature.parameters["method"].default == "beam"
    assert inspect.signature(VccvCaptioner.generate).parameters["beam_size"].default == 5


def test_paper_preset_is_the_papers():
    """VCCV, Sec. IV-A: Adam, lr 1e-4, batch 8, embedding 500, LSTM 512, visual 2048, dropout 0.5,
    residual features 512 x 7 x 7 (D_r = 512), min count 3, 50 words, beam 5."""
    from snapcap.caption.registry import captioner_entry

    train = VCCV_TRAIN_PRESETS["paper"]
    assert (train.lr, train.batch_size, train.weight_decay) == (1e-4, 8, 0.0)  # Adam = AdamW without decay
    assert train.warmup_epochs == 0  # starts at the paper's initial learning rate
    assert (train.min_count, train.max_length) == (3, 52)
    model = vccv_preset("paper")
    assert (model.embed_dim, model.hidden_dim, model.visual_dim, model.dropout) == (500, 512, 2048, 0.5)
    assert model.residual_widths[-1] == 512 and model.max_length == 52 and model.image_size == 224
    assert (model.backbone, model.clip_model, model.clip_pretrained, model.variant) == ("clip", "ViT-B-16", "openai", "rae")
    assert captioner_entry("vccv").paper_beam == VCCV_DEFAULTS["beam_size"] == 5
    built = VccvCaptioner(vccv_preset("paper", backbone="cnn", image_widths=(4, 4, 4, 4), vocab_size=8))
    assert built.grid == (14, 14) and built.encoder.residual_dim == 512  # A_r: 512 channels, as the paper's ResNet-18
    # the tiny preset keeps its own optimisation (CNNs from scratch): lr 1e-3, batch 16
    assert VCCV_TRAIN_PRESETS["tiny"] == VccvTrainConfig()
    assert (VccvTrainConfig().lr, VccvTrainConfig().batch_size, VccvTrainConfig().warmup_epochs) == (1e-3, 16, 1)


def test_training_takes_the_presets_optimisation(tmp_path):
    from caption_helpers import tiny_samples

    samples = tiny_samples(2, B=2, T=1, size=32)
    small = {"image_size": 32, "image_widths": (8, 8), "residual_widths": (4, 4)}
    small.update(backbone="cnn", embed_dim=8, hidden_dim=16, visual_dim=16, gate_dim=8, epochs=1, min_count=1)
    state = torch.load(train_vccv(samples, tmp_path / "paper", dict(small, preset="paper"), progress=False), weights_only=False)
    assert (state["train"]["lr"], state["train"]["batch_size"], state["train"]["warmup_epochs"]) == (1e-4, 8, 0)
    assert state["train"]["max_length"] == 52 and state["config"]["max_length"] == 52
    state = torch.load(
        train_vccv(samples, tmp_path / "lr", dict(small, preset="paper", lr=5e-4), progress=False), weights_only=False
    )
    assert (state["train"]["lr"], state["train"]["batch_size"]) == (5e-4, 8)  # an option beats the preset
    state = torch.load(train_vccv(samples, tmp_path / "tiny", small, progress=False), weights_only=False)
    assert (state["train"]["lr"], state["train"]["batch_size"], state["train"]["max_length"]) == (1e-3, 16, 50)
    # the command line leaves unset options to the preset
    assert options_from_cli({"preset": "paper", "lr": None, "batch_size": None, "min_count": 3}) == {
        "preset": "paper",
        "min_count": 3,
    }


# --- training -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def overfit_run(tmp_path_factory):
    from caption_helpers import tiny_samples

    samples = tiny_samples(4, B=4, T=2, size=64)
    for sample, caption in zip(samples, CAPTIONS):
        sample["captions"] = [caption]
    out = tmp_path_factory.mktemp("vccv")
    options = {"epochs": 100, "batch_size": 4, "min_count": 1, "dropout": 0.0, "warmup_epochs": 0, "lr": 5e-3, "log_every": 10}
    path = train_vccv(samples, out, options, progress=False)
    return samples, path


def test_tiny_overfit_memorises_captions(overfit_run):
    samples, path = overfit_run
    model, config, vocab = load(path)
    assert (config.B, config.T, config.variant) == (4, 2, "rae")
    frames = torch.stack([sample["frames"] for sample in samples])
    for method in ("greedy", "beam"):
        predicted = [vocab.decode(ids) for ids in model.caption(frames, method=method)]
        assert predicted == CAPTIONS, method
    assert (path.parent / "vccv.ckpt").is_file() and (path.parent / "log.jsonl").is_file()


def _square_videos(count: int, seed: int) -> list[dict]:
    """Videos of one coloured square (3 colours) that stays or moves sideways, at random places."""
    colours = {"red": (0.9, 0.1, 0.1), "green": (0.1, 0.9, 0.1), "blue": (0.1, 0.2, 0.9)}
    rng = np.random.default_rng(seed)
    out = []
    for index in range(count):
        name, moves = list(colours)[index % 3], (index // 3) % 2 == 1
        video = np.full((2, 4, 32, 32, 3), 0.1, np.float32) + rng.uniform(0, 0.05, (1, 1, 32, 32, 3)).astype(np.float32)
        y, x = rng.integers(4, 20, 2)
        step = int(rng.choice([-1, 1])) if moves else 0
        for frame in range(8):
            left = int(np.clip(x + step * frame, 0, 24))
            video[frame // 4, frame % 4, y : y + 8, left : left + 8] = colours[name]
        out.append({"frames": torch.from_numpy(video), "captions": [f"a {name} square {'moves' if moves else 'stays still'}"]})
    return out


def test_learns_from_the_video_instead_of_collapsing(tmp_path):
    """Held-out videos get their own captions (colour from the I-frames, motion from the residuals).

    The collapse this guards against: before batch normalisation in the CNNs (``cnn_norm="none"``,
    the paper's dropout 0.5), the same run gave one caption for every video (accuracy 2/12)."""
    train, test = _square_videos(36, seed=0), _square_videos(12, seed=1)
    options = {
        "epochs": 20,
        "batch_size": 6,
        "min_count": 1,
        "image_size": 32,
        "image_widths": (8, 16),
        "residual_widths": (8, 16),
        "lr": 3e-3,
    }
    model, _, vocab = load(train_vccv(train, tmp_path, options, progress=False))
    predicted = [vocab.decode(ids) for ids in model.caption(torch.stack([s["frames"] for s in test]), method="greedy")]
    correct = sum(p == s["captions"][0] for p, s in zip(predicted, test))
    assert len(set(predicted)) >= 4 and correct >= 8, predicted


def test_loads_checkpoints_from_before_cnn_norm_and_init_state(tmp_path):
    from snapcap.caption.text import Vocabulary
    from snapcap.caption.zoo import save_checkpoint

    old = tiny_model(vocab_size=6, cnn_norm="none", init_state=False)
    config = old.config.to_dict()
    del config["cnn_norm"], config["init_state"]  # the fields an older checkpoint lacks
    vocab = Vocabulary.build(["a b c"], min_count=1)
    path = tmp_path / "vccv.pt"
    save_checkpoint(
        path, "vccv", {"config": config, "train": {}, "vocab": vocab.to_dict(), "state": old.state_dict(), "history": []}
    )
    model, loaded, _ = load(path)
    assert (loaded.cnn_norm, loaded.init_state) == ("none", False)
    frames = random_video(1)
    assert model.caption(frames, method="greedy", max_length=6) == old.caption(frames, method="greedy", max_length=6)


def test_vocabulary_min_count_three_by_default(tmp_path):
    from caption_helpers import tiny_samples

    samples = tiny_samples(2, B=2, T=1, size=32)
    samples[0]["captions"] = ["a red circle", "a red square", "a red ring"]
    samples[1]["captions"] = ["a blue bar"]
    path = train_vccv(
        samples,
        tmp_path,
        {"epochs": 1, "batch_size": 2, "image_size": 32, "image_widths": (8, 8), "residual_widths": (4, 4)},
        progress=False,
    )
    _, config, vocab = load(path)
    assert vocab.tokens[4:] == ["a", "red"]  # words seen at least 3 times
    assert config.image_size == 32 and config.max_length == 50


def test_train_with_a_frozen_clip_backbone(tmp_path):
    from caption_helpers import tiny_samples

    samples = tiny_samples(2, B=2, T=2, size=48)
    options = {"epochs": 1, "batch_size": 2, "min_count": 1, "backbone": "clip", "clip_model": "snapcap-tiny-vit"}
    path = train_vccv(samples, tmp_path, options, progress=False)
    model, config, vocab = load(path)
    assert config.backbone == "clip" and model.image_size == 64
    frames = torch.stack([sample["frames"] for sample in samples])
    assert len(model.caption(frames, beam_size=2, max_length=8)) == 2
    # the compressed videos and their I-frame features live on disk, memory-mapped, not in RAM
    gops, features = np.load(tmp_path / "vccv.gops" / "iframes.npy", mmap_mode="r"), None
    features = np.load(tmp_path / "vccv.features" / "features.npy", mmap_mode="r")
    assert gops.shape[:3] == (2, config.gop, 3) and features.shape[:2] == (2, config.gop)
    iframes, _ = model.compress(frames)
    torch.testing.assert_close(torch.from_numpy(np.array(gops)), iframes, rtol=0, atol=1e-6)
    with torch.no_grad():
        torch.testing.assert_close(torch.from_numpy(np.array(features)), model.image_features(iframes), rtol=1e-4, atol=1e-5)


def test_training_data_streams_from_dataset_files_through_disk_caches(tmp_path, monkeypatch):
    """Frames of a dataset file are read once, to compress them into the GOP cache; a rerun
    whose training is lost (only the caches are left) reads no frame but the first sample's."""
    from test_caption_pipeline import make_h5

    from snapcap.datasets.torch_data import MeasurementDataset

    samples = MeasurementDataset(make_h5(tmp_path / "data.h5", count=6, B=2, T=2, size=32), split="train")
    reads = []
    read = MeasurementDataset.__getitem__
    monkeypatch.setattr(MeasurementDataset, "__getitem__", lambda self, i: reads.append(i) or read(self, i))
    options = {"epochs": 1, "batch_size": 2, "min_count": 1, "image_size": 32}
    train_vccv(samples, tmp_path / "run", options, progress=False)
    assert sorted(reads) == [0, *range(len(samples))]  # every frame once, and the first sample's shape up front
    reads.clear()
    for done in ("vccv.pt", "vccv.ckpt"):
        (tmp_path / "run" / done).unlink(missing_ok=True)
    train_vccv(samples, tmp_path / "run", options, progress=False)
    assert len(reads) == 1  # the first sample's shape; the GOPs come from the cache


# --- errors ---------------------------------------------------------------------------------------


def test_bad_input_names_the_argument(tmp_path):
    model = tiny_model()
    with pytest.raises(ConfigError, match="variant"):
        VccvConfig(variant="full")
    with pytest.raises(ConfigError, match="backbone"):
        VccvConfig(backbone="resnet")
    with pytest.raises(InvalidValueError, match="gop_size"):
        VccvConfig(gop_size=0)
    with pytest.raises(ConfigError, match="preset"):
        vccv_preset("huge")
    with pytest.raises(ConfigError, match="bogus"):
        vccv_preset("tiny", bogus=1)
    with pytest.raises(ShapeError, match="frames"):
        model.caption(torch.rand(64, 64, 3))
    with pytest.raises(InvalidValueError, match="NaN"):
        model.caption(torch.full((1, 2, 4, 8, 8, 3), float("nan")))
    with pytest.raises(InvalidValueError, match="beam_size"):
        model.caption(random_video(1), beam_size=0)
    with pytest.raises(InvalidValueError, match="max_length"):
        model.caption(random_video(1), max_length=51)
    with pytest.raises(ConfigError, match="method"):
        model.caption(random_video(1), method="sample")
    with pytest.raises(ConfigError, match="temperature"):
        model.caption(random_video(1), temperature=2.0)
    with pytest.raises(ConfigError, match="vocab_size"):
        VccvCaptioner(vccv_preset("tiny"))
    with pytest.raises(ConfigError, match="learning_rate"):
        train_vccv([{"frames": torch.rand(2, 4, 64, 64, 3), "captions": ["a b"]}], tmp_path, {"learning_rate": 1.0})
    with pytest.raises(DataFileError, match="frames"):
        train_vccv([{"captions": ["a b"]}], tmp_path, {})
    with pytest.raises(DataFileError, match="no such VCCV checkpoint"):
        load(tmp_path / "missing.pt")
    foreign = tmp_path / "teacher.pt"
    torch.save({"kind": "snapcap-captioner", "name": "teacher"}, foreign)
    with pytest.raises(DataFileError, match="not a zoo captioner checkpoint"):
        load(foreign)
    with pytest.raises(ShapeError, match="captions"):
        model.loss(*model.compress(random_video(2)), torch.tensor([[1, 2]]))
    assert np.isfinite(model.loss(*model.compress(random_video(1)), torch.tensor([[1, 5, 2]])).item())


# --- command line (through the zoo) ---------------------------------------------------------------


def test_cli_train_and_eval(tmp_path, capsys):
    import json

    from snapcap.caption.registry import create_captioner, list_captioners
    from snapcap.datasets.h5 import DatasetConfig, make_dataset
    from snapcap.datasets.synthetic import SyntheticCorpus

    assert "vccv" in list_captioners()
    run = tmp_path / "run"
    run_cli(
        [
            "train",
            "vccv",
            "--num-videos",
            "8",
            "--split",
            "all",
            "--B",
            "2",
            "--T",
            "2",
            "--epochs",
            "2",
            "--batch-size",
            "4",
            "--variant",
            "rae-no-gate",
            "--gop-size",
            "2",
            "--no-progress",
            "--out",
            run,
        ]
    )
    assert (run / "vccv.pt").is_file() and (run / "vccv.data.json").is_file()
    model, config, vocab = load(run / "vccv.pt")
    assert (config.variant, config.gop_size, config.B, config.T) == ("rae-no-gate", 2, 2, 2)
    assert all(vocab.counts[word] >= 3 for word in vocab.tokens[4:])  # the paper's min count by default
    data = make_dataset(
        SyntheticCorpus(6, seed=0),
        tmp_path / "d.h5",
        DatasetConfig(B=2, T=2, size=(48, 48), compression="gzip"),
        progress=False,
        workers=1,
    )
    data = tmp_path / "d.h5"
    text = run_cli(
        [
            "eval",
            "--data",
            data,
            "--split",
            "all",
            "--model",
            "vccv",
            "--checkpoints",
            run,
            "--metrics",
            "BLEU,ROUGE-L,CIDEr",
            "--tokenizer",
            "regex",
            "--beam",
            "5",
            "-o",
            tmp_path / "eval",
        ],
        capsys,
    )
    rows = json.loads((tmp_path / "eval" / "results.json").read_text())["rows"]
    assert [row["model"] for row in rows] == ["vccv"] and "vccv" in text
    out = run_cli(["caption", data, "--model", run / "vccv.pt", "--samples", "0", "--beam", "2"], capsys)
    assert out.startswith("synth00000\t")
    captioner = create_captioner("vccv", run)
    assert captioner.kind == "frames" and captioner.image_size == 64
