"""CLIP4VideoCap: fusion, Vis2Text, sub-decoders, losses, a tiny overfit, annotations, CLI train + eval, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("open_clip")
torch.set_num_threads(1)

from caption_helpers import run_cli  # noqa: E402

from snapcap.caption.registry import load_captioner  # noqa: E402
from snapcap.caption.zoo import clip4videocap as c4v  # noqa: E402
from snapcap.errors import ConfigError, DataFileError, ShapeError  # noqa: E402

CAPTIONS = ["a red circle moves left", "a blue square spins slowly", "a green ring grows", "a white bar drifts up"]
ASPECTS = [
    {"intention": "to reach the left edge", "effect": "it ends up near the left", "attribute": "fast"},
    {"intention": "to turn around", "effect": "it ends up rotated", "attribute": "spinning"},
    {"intention": "to get bigger", "effect": "it ends up larger", "attribute": "growing"},
    {"intention": "to reach the top", "effect": "it ends up near the top", "attribute": "slow"},
]
FAST_METRICS = "BLEU,ROUGE-L,CIDEr"


def tiny_samples(count: int, B: int = 2, T: int = 2, size: int = 64):
    from snapcap.datasets.h5 import DatasetConfig
    from snapcap.datasets.synthetic import SyntheticCorpus
    from snapcap.datasets.torch_data import SimulatedDataset

    corpus = SyntheticCorpus(num_videos=count, seed=1, splits=(1.0, 0.0, 0.0))
    return SimulatedDataset(corpus, DatasetConfig(B=B, T=T, size=(size, size)))


@pytest.fixture(scope="module")
def four():
    dataset = tiny_samples(4)
    rows = [dataset[i] for i in range(4)]
    for row, caption, aspects in zip(rows, CAPTIONS, ASPECTS):
        row["captions"] = [caption]
        row.update(aspects)
    return rows


def tiny_model(**changes):
    from snapcap.caption.teacher import ClipTeacher

    torch.manual_seed(0)
    config = c4v.Clip4VideoCapConfig(B=2, T=3, frames=5, **changes)
    return c4v.Clip4VideoCap(config, 30, ClipTeacher.create("snapcap-tiny-vit")).eval()


# --- modules -----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", c4v.FUSIONS)
@pytest.mark.parametrize("scales", [1, 3])
def test_temporal_fusion_shapes(kind, scales):
    fusion = c4v.TemporalFusion(16, scales, kind, heads=4, dropout=0.0)
    for steps in (1, 5, 8):
        x = torch.randn(2, steps, 16)
        y = fusion(x)
        assert y.shape == x.shape and torch.isfinite(y).all()
    with pytest.raises(ShapeError):
        fusion(torch.randn(2, 16))


def test_fusion_scales_see_longer_windows():
    """With 3 scales, output step 0 depends on step 3 even through a pointwise (1-step) conv."""
    torch.manual_seed(0)
    fusion = c4v.TemporalFusion(8, 3, "conv", dropout=0.0)
    x = torch.randn(1, 8, 8, requires_grad=True)
    fusion(x)[0, 0].sum().backward()
    assert x.grad[0, 3].abs().sum() > 0  # conv k=3 alone reaches step 1; squeezing by 4 reaches step 3
    single = c4v.TemporalFusion(8, 1, "conv", dropout=0.0)
    x2 = x.detach().clone().requires_grad_(True)
    single(x2)[0, 0].sum().backward()
    assert x2.grad[0, 3].abs().sum() == 0


def test_vis2text():
    module = c4v.Vis2Text(16, 32, 8)
    out = module(torch.randn(2, 5, 16))
    assert out.shape == (2, 5, 8) and (out < 0).any()
    assert (c4v.Vis2Text(16, 32, 8, final_relu=True)(torch.randn(2, 5, 16)) >= 0).all()


def test_model_shapes_losses_and_generation():
    model = tiny_model()
    frames = torch.rand(2, 3, 2, 40, 48, 3)
    features = model.frame_features(frames)
    assert features.shape == (2, 5, 32)
    out = model.visual(features)
    assert out["fused"].shape == (2, 5, 64) and out["vt"].shape == (2, 5, 32) and out["memory"].shape == (2, 10, 64)
    captions = torch.tensor([[1, 5, 6, 2, 0], [1, 7, 2, 0, 0]])
    aspects = {a: torch.tensor([[1, 8, 2], [1, 9, 2]]) for a in c4v.ASPECTS}
    values = model.losses(features, captions, torch.randn(2, 32), aspects)
    assert set(values) == {"l_cap", "l_int", "l_eff", "l_att", "l_distill", "loss"}
    expected = values["l_cap"] + values["l_int"] + values["l_eff"] + values["l_att"] + values["l_distill"]
    assert values["loss"].item() == pytest.approx(expected.item(), rel=1e-5)
    weighted = tiny_model(alphas=(2.0, 0.0, 0.5, 0.0), distill_weight=3.0).losses(features, captions, torch.randn(2, 32), aspects)
    assert weighted["loss"].item() == pytest.approx(
        (2 * weighted["l_cap"] + 0.5 * weighted["l_eff"] + 3 * weighted["l_distill"]).item(), rel=1e-5
    )
    texts = model.commonsense(features)
    assert set(texts) == set(c4v.ASPECTS) and all(len(v) == 2 for v in texts.values())
    ids = model.caption(frames, method="beam", beam_size=2, max_length=8)
    assert len(ids) == 2 and all(len(row) <= 6 for row in ids)
    plain = tiny_model(commonsense=False, fusion="transformer", scales=2)
    assert len(plain.aspects) == 0 and set(plain.losses(features, captions, None, None)) == {"l_cap", "loss"}
    with pytest.raises(ConfigError, match="commonsense"):
        model.losses(features, captions, None, None)
    with pytest.raises(ShapeError):
        model.visual(torch.randn(2, 4, 32))


def test_text_encoder_is_deterministic():
    first = c4v.ClipTextEncoder("snapcap-tiny-vit", None, seed=0)
    second = c4v.ClipTextEncoder("snapcap-tiny-vit", None, seed=0)
    a = first.encode(["a red circle", "a blue square"])
    assert a.shape == (2, 32) and first.dim == 32
    assert torch.equal(a, second.encode(["a red circle", "a blue square"]))
    assert not torch.allclose(a[0], a[1])


# --- annotations -------------------------------------------------------------------------------


def test_commonsense_annotations_sources(tmp_path):
    from snapcap.datasets.h5 import DatasetConfig, make_dataset
    from snapcap.datasets.synthetic import SyntheticCorpus, commonsense, describe_scene
    from snapcap.datasets.torch_data import MeasurementDataset

    dataset = tiny_samples(3)
    rows = [dataset[i] for i in range(3)]
    found = c4v.commonsense_annotations(dataset, rows)
    corpus = dataset.corpus
    assert found == [commonsense(describe_scene(corpus.scene(i), corpus.timeline)) for i in range(3)]
    assert c4v.commonsense_annotations(list(rows), rows) is None  # a plain list: no corpus to ask
    make_dataset(
        SyntheticCorpus(3, seed=1, splits=(1.0, 0.0, 0.0)),
        tmp_path / "d.h5",
        DatasetConfig(B=2, T=2, size=(32, 32), compression="gzip"),
        progress=False,
        workers=1,
    )
    files = MeasurementDataset(tmp_path / "d.h5")
    assert c4v.commonsense_annotations(files, [files[i] for i in range(3)]) == found
    direct = [dict(r, **ASPECTS[0]) for r in rows]
    assert c4v.commonsense_annotations(None, direct) == [ASPECTS[0]] * 3


# --- training ----------------------------------------------------------------------------------


def test_tiny_overfit_memorises_captions_and_commonsense(four, tmp_path):
    options = {
        "epochs": 60,
        "batch_size": 4,
        "lr": 3e-3,
        "warmup_epochs": 0,
        "freeze_clip": True,
        "scales": 2,
        "checkpoint_every": 1000,
    }
    path = c4v.train(four, tmp_path, options, progress=False)
    model, config, vocab = c4v.load(path)
    assert config.commonsense and config.scales == 2 and config.text_dim == 32
    history = torch.load(path, weights_only=False)["history"]
    assert {"l_cap", "l_int", "l_eff", "l_att", "l_distill"} <= set(history[-1])
    assert history[-1]["l_distill"] < history[0]["l_distill"]
    frames = torch.stack([s["frames"] for s in four])
    assert [vocab.decode(ids) for ids in model.caption(frames, method="greedy")] == CAPTIONS
    texts = model.commonsense(model.frame_features(frames))
    assert [vocab.decode(ids) for ids in texts["attribute"]] == [a["attribute"] for a in ASPECTS]
    # the distillation targets T_CLIP of every reference caption live on disk, memory-mapped
    text = np.load(tmp_path / "clip4videocap.text" / "text.npy", mmap_mode="r")
    captions = [c for sample in four for c in sample["captions"]]
    assert text.shape == (len(captions), config.text_dim)
    encoder = c4v.ClipTextEncoder(config.text_clip, config.text_pretrained, config.text_seed)
    np.testing.assert_allclose(np.array(text), encoder.encode(captions).numpy(), rtol=1e-5, atol=1e-6)


def test_without_annotations_the_sub_decoders_are_left_out(four, tmp_path, capsys):
    rows = [{k: v for k, v in row.items() if k not in c4v.ASPECTS} for row in four[:2]]
    path = c4v.train(rows, tmp_path, {"epochs": 1, "batch_size": 2}, progress=False)
    assert "without the commonsense" in capsys.readouterr().err
    model, config, _ = c4v.load(path)
    assert not config.commonsense and len(model.aspects) == 0 and config.train_clip


def test_bad_options(four, tmp_path):
    with pytest.raises(ConfigError, match="--fusion"):
        c4v.train(four[:1], tmp_path, {"fusion": "gru"}, progress=False)
    with pytest.raises(ConfigError, match="--scales"):
        c4v.train(four[:1], tmp_path, {"scales": 0}, progress=False)
    with pytest.raises(ConfigError, match="--width"):
        c4v.train(four[:1], tmp_path, {"width": 30}, progress=False)
    with pytest.raises(ConfigError, match="--preset"):
        c4v.train(four[:1], tmp_path, {"preset": "huge"}, progress=False)
    with pytest.raises(ConfigError, match="alphas"):
        c4v.train(four[:1], tmp_path, {"alphas": [1, -1, 1, 1]}, progress=False)
    with pytest.raises(DataFileError, match="no such checkpoint"):
        c4v.load(tmp_path / "missing.pt")


def test_paper_preset_is_the_papers():
    """CLIP4VideoCap: ViT-B/16 (Tables 2, 4, 5), 3-scale LSTM fusion (Table 4), the three
    sub-decoders (Table 5), distillation ratio 10 (Table 3, the setting of Table 1), σ2 (Eq. 3)."""
    paper = c4v.CLIP4VIDEOCAP_PRESETS["paper"]
    assert paper.distill_weight == 10
    assert paper.vis2text_final_relu is True
    assert (paper.fusion, paper.scales, paper.commonsense) == ("lstm", 3, True)
    assert (paper.clip, paper.pretrained, paper.train_clip) == ("ViT-B-16", "openai", False)
    assert (paper.text_clip, paper.text_pretrained, paper.text_dim) == ("ViT-B-16", "openai", 512)
    assert paper.alphas == (1.0, 1.0, 1.0, 1.0) and paper.fps == 1.0
    assert c4v.config_from_options({"preset": "paper"}, 8, 8).distill_weight == 10
    assert c4v.config_from_options({"preset": "paper", "distill_weight": 2.0}, 8, 8).distill_weight == 2.0
    tiny = c4v.CLIP4VIDEOCAP_PRESETS["tiny"]  # the offline size keeps its own choices
    assert tiny == c4v.Clip4VideoCapConfig() and tiny.distill_weight == 1 and not tiny.vis2text_final_relu
    assert c4v.TRAIN_DEFAULTS["paper"] == {"epochs": 30, "batch_size": 32, "lr": 1e-4, "warmup_epochs": 1}


def test_help_tells_the_papers_distillation_weight():
    import argparse

    parser = argparse.ArgumentParser()
    c4v.add_arguments(parser.add_argument_group("clip4videocap"))
    text = " ".join(parser.format_help().split())
    start = text.index("--distill-weight DISTILL_WEIGHT weight")  # the option's entry, not the usage line
    entry = text[start : text.index("--no-commonsense", start)]
    assert "paper preset 10" in entry and "Table 3" in entry and "tiny preset 1" in entry
    assert "Eq. 8" not in entry
    assert "--video-seconds" in text and "one contiguous stretch" in text


def test_frame_sampling_options():
    config = c4v.config_from_options({"video_seconds": 20.0}, 8, 4)
    assert config.video_seconds == 20.0 and c4v.frame_count(config) == 20
    assert c4v.frame_count(c4v.config_from_options({"video_seconds": 90.0}, 8, 4)) == 32
    with pytest.raises(ConfigError, match="give one"):
        c4v.config_from_options({"video_seconds": 20.0, "clip_fps": 30.0}, 8, 4)
    with pytest.raises(ConfigError, match="video_seconds"):
        c4v.config_from_options({"video_seconds": 0.0}, 8, 4)


# --- command line ------------------------------------------------------------------------------


def test_cli_train_and_eval(tmp_path, capsys):
    from snapcap.datasets.h5 import DatasetConfig, make_dataset
    from snapcap.datasets.synthetic import SyntheticCorpus

    run = tmp_path / "run"
    run_cli(
        [
            "train",
            "clip4videocap",
            "--num-videos",
            "8",
            "--split",
            "all",
            "--B",
            "2",
            "--T",
            "2",
            "--epochs",
            "1",
            "--batch-size",
            "4",
            "--freeze-clip",
            "--fusion",
            "conv",
            "--scales",
            "2",
            "--alphas",
            "1",
            "0.5",
            "0.5",
            "0.5",
            "--no-progress",
            "--out",
            run,
        ]
    )
    model, config, _ = c4v.load(run / "clip4videocap.pt")
    assert config.commonsense and config.fusion == "conv" and config.alphas == (1.0, 0.5, 0.5, 0.5)
    make_dataset(
        SyntheticCorpus(6, seed=0),
        tmp_path / "d.h5",
        DatasetConfig(B=2, T=2, size=(64, 64), compression="gzip"),
        progress=False,
        workers=1,
    )
    run_cli(
        [
            "eval",
            "--data",
            tmp_path / "d.h5",
            "--split",
            "all",
            "--model",
            "clip4videocap",
            "--checkpoints",
            run,
            "--metrics",
            FAST_METRICS,
            "--tokenizer",
            "regex",
            "-o",
            tmp_path / "eval",
        ],
        capsys,
    )
    rows = json.loads((tmp_path / "eval" / "results.json").read_text())["rows"]
    assert rows[0]["model"] == "clip4videocap" and rows[0]["videos"] == 6 and rows[0]["CIDEr"] is not None
    captioner = load_captioner(run / "clip4videocap.pt")
    assert captioner.kind == "frames" and captioner.image_size == 64
