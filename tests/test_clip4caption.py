"""CLIP4Caption: shapes, decoding, a tiny overfit, the consensus ensemble, CLI train + eval, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("open_clip")
torch.set_num_threads(1)

from caption_helpers import run_cli  # noqa: E402

from snapcap.caption.registry import create_captioner, load_captioner  # noqa: E402
from snapcap.caption.zoo import clip4caption as c4c  # noqa: E402
from snapcap.caption.zoo import ensemble  # noqa: E402
from snapcap.errors import ConfigError, DataFileError, InvalidValueError, ShapeError  # noqa: E402

CAPTIONS = ["a red circle moves left", "a blue square spins slowly", "a green ring grows", "a white bar drifts up"]
FAST_METRICS = "BLEU,ROUGE-L,CIDEr"


def tiny_samples(count: int, B: int = 2, T: int = 2, size: int = 64):
    from snapcap.datasets.h5 import DatasetConfig
    from snapcap.datasets.synthetic import SyntheticCorpus
    from snapcap.datasets.torch_data import SimulatedDataset

    corpus = SyntheticCorpus(num_videos=count, seed=1, splits=(1.0, 0.0, 0.0))
    dataset = SimulatedDataset(corpus, DatasetConfig(B=B, T=T, size=(size, size)))
    return [dataset[i] for i in range(len(dataset))]


@pytest.fixture(scope="module")
def four():
    samples = tiny_samples(4)
    for sample, caption in zip(samples, CAPTIONS):
        sample["captions"] = [caption]
    return samples


OVERFIT = {"epochs": 60, "batch_size": 4, "lr": 3e-3, "warmup_epochs": 0, "freeze_clip": True, "checkpoint_every": 1000}


@pytest.fixture(scope="module")
def overfit(four, tmp_path_factory):
    """Two models memorising the four captions (frozen random tiny towers, seeds 0 and 1)."""
    root = tmp_path_factory.mktemp("c4c")
    paths = [c4c.train(four, root / f"seed{seed}", dict(OVERFIT, seed=seed), progress=False) for seed in (0, 1)]
    return {"root": root, "paths": paths}


# --- shapes ----------------------------------------------------------------------------------


def test_frame_sampling():
    assert c4c.sample_frame_indices(8, 4).tolist() == [1, 3, 5, 7]
    assert c4c.sample_frame_indices(8, 1).tolist() == [4]
    assert c4c.sample_frame_indices(3, 5).tolist() == [0, 0, 1, 2, 2]
    config = c4c.Clip4CaptionConfig(B=8, T=4)
    assert c4c.frame_count(config) == 4
    assert c4c.frame_count(c4c.Clip4CaptionConfig(B=8, T=4, clip_fps=8.0)) == 4  # 32 frames at 8 fps = 4 s at 1 fps
    assert c4c.frame_count(c4c.Clip4CaptionConfig(B=8, T=4, frames=100)) == 32
    frames = torch.arange(2 * 2 * 4).float().reshape(2, 2, 4, 1, 1).expand(2, 2, 4, 3, 3)
    chosen = c4c.select_frames(frames, 2)
    assert chosen.shape == (2, 2, 3, 3) and chosen[0, :, 0, 0].tolist() == [2.0, 6.0]
    with pytest.raises(InvalidValueError):
        c4c.sample_frame_indices(0, 2)


def test_frame_count_rule_for_windows_spread_over_the_video():
    """--video-seconds D: n = round(D * fps); --clip-fps r only for contiguous frames: n = round(T*B / r * fps)."""
    config = c4c.Clip4CaptionConfig
    # the reported bug: 64 frames of a 30 fps video "at 1 fps" give 2 frames, whatever the video's length
    assert c4c.frame_count(config(B=8, T=8, clip_fps=30.0)) == 2  # right only if the 64 frames are contiguous (2.1 s)
    assert c4c.frame_count(config(B=8, T=8, video_seconds=15.0)) == 15  # a 15 s video at the paper's 1 fps
    assert c4c.frame_count(config(B=8, T=8, video_seconds=15.0, fps=2.0)) == 30
    assert c4c.frame_count(config(B=8, T=8, video_seconds=100.0)) == 64  # at most the T*B frames present
    assert c4c.frame_count(config(B=8, T=8, video_seconds=0.2)) == 1
    assert c4c.frame_count(config(B=8, T=4, video_seconds=24.0)) == 24


def test_sampled_frames_follow_the_one_fps_instants():
    """Frame k comes from the window of the segment that holds its instant (k + 1/2) / fps."""
    from snapcap.datasets.video import clip_indices

    rate, seconds, T, B = 30, 10.0, 4, 8
    layout = clip_indices(int(rate * seconds), T, B).reshape(-1)  # a video file's T windows of B frames
    n = c4c.frame_count(c4c.Clip4CaptionConfig(B=B, T=T, video_seconds=seconds))
    assert n == 10
    chosen = c4c.sample_frame_indices(T * B, n)
    segment = seconds / T
    for k, position in enumerate(chosen):
        instant = (k + 0.5) / 1.0
        assert int(layout[position] / rate // segment) == int(instant // segment), (k, position)
    frames = torch.arange(T * B).float().reshape(1, T, B, 1, 1)
    assert c4c.select_frames(frames, n)[0, :, 0, 0].long().tolist() == chosen.tolist()


def test_frame_sampling_options():
    config = c4c.config_from_options({"video_seconds": 12.0}, B=8, T=4)
    assert config.video_seconds == 12.0 and c4c.frame_count(config) == 12
    assert c4c.frame_count(c4c.config_from_options({"clip_fps": 8.0}, B=8, T=4)) == 4
    for bad in ({"video_seconds": 10.0, "clip_fps": 30.0}, {"frames": 3, "video_seconds": 10.0}, {"frames": 3, "clip_fps": 8.0}):
        with pytest.raises(ConfigError, match="give one"):
            c4c.config_from_options(bad, B=8, T=4)
    for bad in ({"video_seconds": 0.0}, {"video_seconds": -5.0}, {"video_seconds": float("nan")}, {"clip_fps": -1.0}):
        with pytest.raises(ConfigError, match="video_seconds"):
            c4c.config_from_options(bad, B=8, T=4)
    for bad in ({"fps": 0.0}, {"fps": float("inf")}):
        with pytest.raises(ConfigError, match="finite numbers > 0"):
            c4c.config_from_options(bad, B=8, T=4)
    from snapcap.cli.main import build_parser

    args = build_parser().parse_args(["train", "clip4caption", "--video-seconds", "12", "--fps", "2", "--out", "x"])
    assert (args.video_seconds, args.fps, args.clip_fps) == (12.0, 2.0, None)
    for value in ("0", "-3", "nan", "inf", "ten"):  # refused when the command line is read
        with pytest.raises(SystemExit):
            build_parser().parse_args(["train", "clip4caption", "--video-seconds", value, "--out", "x"])


def test_clip_fps_help_says_contiguous_frames():
    import argparse

    parser = argparse.ArgumentParser()
    c4c.add_arguments(parser.add_argument_group("clip4caption"))
    text = " ".join(parser.format_help().split())
    assert "one contiguous stretch" in text and "--video-seconds" in text


def test_paper_preset_is_the_papers():
    """CLIP4Caption, Sec. 2: CLIP ViT features at 1 fps, a one-layer TE, a three-layer TD (UniVL's width)."""
    paper = c4c.CLIP4CAPTION_PRESETS["paper"]
    assert (paper.clip, paper.pretrained, paper.train_clip) == ("ViT-B-16", "openai", False)
    assert paper.fps == 1.0 and (paper.frames, paper.clip_fps, paper.video_seconds) == (0, None, None)
    assert (paper.encoder_layers, paper.decoder_layers) == (1, 3)
    assert (paper.width, paper.heads, paper.dropout, paper.max_length) == (768, 12, 0.1, 30)
    assert paper.decoder is None  # TD, the paper's decoder
    assert c4c.TRAIN_DEFAULTS["paper"] == {"epochs": 30, "batch_size": 32, "lr": 1e-4, "warmup_epochs": 1}
    assert c4c.TRAIN_DEFAULTS["tiny"] == {"epochs": 30, "batch_size": 16, "lr": 1e-3, "warmup_epochs": 1}
    assert c4c.CLIP4CAPTION_PRESETS["tiny"] == c4c.Clip4CaptionConfig()


def test_model_shapes_and_generation():
    from snapcap.caption.teacher import ClipTeacher

    torch.manual_seed(0)
    config = c4c.Clip4CaptionConfig(B=2, T=3, frames=5)
    model = c4c.Clip4Caption(config, 20, ClipTeacher.create("snapcap-tiny-vit")).eval()
    frames = torch.rand(2, 3, 2, 40, 48, 3)
    features = model.frame_features(frames)
    assert features.shape == (2, 5, 32)
    memory = model.encode(features)
    assert memory.shape == (2, 5, 64)
    tokens = torch.tensor([[1, 5, 6, 2, 0], [1, 7, 2, 0, 0]])
    assert model.decoder(memory, tokens).shape == (2, 5, 20)
    assert model.loss(features, tokens).ndim == 0
    greedy = model.caption(frames, method="greedy", max_length=8)
    assert len(greedy) == 2 and all(len(row) <= 6 and all(4 <= t < 20 or t == 3 for t in row) for row in greedy)
    assert model.caption(frames, method="beam", beam_size=1, max_length=8) == greedy
    beam = model.caption(frames, method="beam", beam_size=3, max_length=8)
    assert len(beam) == 2 and all(len(row) <= 6 for row in beam)
    gray = model.frame_features(torch.rand(1, 3, 2, 40, 48))
    assert gray.shape == (1, 5, 32)
    with pytest.raises(ShapeError):
        model.frame_features(torch.rand(2, 3, 40, 48))
    with pytest.raises(ShapeError):
        model.encode(torch.rand(2, 4, 32))
    with pytest.raises(ConfigError):
        model.caption(frames, method="sample")


def test_beam_search_finds_the_better_sequence():
    """Beam search keeps a hypothesis greedy drops: first step 0.6/0.4, but the 0.4 branch is certain."""

    class Scripted(c4c.TransformerCaptionDecoder):
        def forward(self, memory, tokens, memory_padding=None):
            rows, length = tokens.shape
            logits = torch.full((rows, length, 8), -30.0)
            for r in range(rows):
                last = int(tokens[r, -1])
                if length == 1:
                    logits[r, -1, 4], logits[r, -1, 5] = np.log(0.6), np.log(0.4)
                elif last == 4:
                    logits[r, -1, 6], logits[r, -1, 7] = np.log(0.5), np.log(0.5)
                elif last == 5:
                    logits[r, -1, 6] = 0.0
                else:
                    logits[r, -1, 2] = 0.0
            return logits

    decoder = Scripted(8, 8, 1, 2, 0.0, 10)
    memory = torch.zeros(1, 1, 8)
    assert decoder.generate(memory, "greedy")[0][:1] == [4]
    assert decoder.generate(memory, "beam", beam_size=2, length_penalty=0.0)[0] == [5, 6]


# --- training ----------------------------------------------------------------------------------


def test_tiny_overfit_memorises_four_captions(four, overfit):
    model, config, vocab = c4c.load(overfit["paths"][0])
    assert (config.B, config.T, config.train_clip) == (2, 2, False)
    frames = torch.stack([s["frames"] for s in four])
    got = [vocab.decode(ids) for ids in model.caption(frames, method="greedy")]
    assert got == CAPTIONS
    assert [vocab.decode(ids) for ids in model.caption(frames, method="beam", beam_size=3)] == CAPTIONS
    history = torch.load(overfit["paths"][0], weights_only=False)["history"]
    assert history[-1]["loss"] < 0.6 < history[0]["loss"]
    cache = overfit["paths"][0].parent / "clip4caption.features"
    assert sorted(p.name for p in cache.iterdir()) == ["features.npy", "meta.json"]  # memory-mapped, whole
    features = np.load(cache / "features.npy", mmap_mode="r")
    assert features.shape[:2] == (len(four), model.frames)
    flat = torch.from_numpy(np.array(features)).reshape(-1, features.shape[-1])
    torch.testing.assert_close(model.feature_mean, flat.mean(0))
    torch.testing.assert_close(model.feature_std, flat.std(0).clamp_min(1e-6), rtol=1e-4, atol=1e-6)


def test_rerun_resumes_and_changes_nothing(four, overfit):
    path = overfit["paths"][0]
    before = path.stat().st_mtime_ns
    state = torch.load(path, weights_only=False)["state"]
    again = c4c.train(four, path.parent, dict(OVERFIT, seed=0), progress=False)
    after = torch.load(again, weights_only=False)["state"]
    assert all(torch.equal(state[k], after[k]) for k in state)
    assert again == path and path.stat().st_mtime_ns >= before
    with pytest.raises(ConfigError, match="another configuration"):
        c4c.train(four, path.parent, dict(OVERFIT, seed=0, lr=1e-4), progress=False)


def test_amp_and_workers_reach_the_training(four, tmp_path, monkeypatch):
    """--amp trains under bf16 autocast; --workers loads each step's frames ahead when the tower
    trains (frames are read at every step); a frozen tower reads cached features instead."""
    from test_caption_pipeline import linear_output_dtypes

    import snapcap.caption.zoo as zoo
    from snapcap.datasets.feed import BatchFeed

    training = c4c.train_config({"amp": True, "workers": 2}, c4c.TRAIN_DEFAULTS["tiny"])
    assert training.amp and training.workers == 2
    feeds = []
    fit = zoo.fit
    monkeypatch.setattr(zoo, "fit", lambda *args: feeds.append(args[-1]) or fit(*args))
    options = {"epochs": 1, "batch_size": 2, "warmup_epochs": 0, "amp": True, "workers": 2}
    with linear_output_dtypes() as seen:
        c4c.train(four[:2], tmp_path / "scratch", options, progress=False)  # the tiny preset's tower trains
    assert torch.bfloat16 in seen
    assert isinstance(feeds[-1], BatchFeed) and feeds[-1].workers == 2
    frozen = dict(OVERFIT, epochs=1, amp=False, workers=2)
    with linear_output_dtypes() as seen:
        c4c.train(four[:2], tmp_path / "frozen", frozen, progress=False)
    assert torch.bfloat16 not in seen and feeds[-1] is None


def test_from_scratch_tower_trains_end_to_end(four, tmp_path):
    path = c4c.train(four[:2], tmp_path, {"epochs": 1, "batch_size": 2, "warmup_epochs": 0}, progress=False)
    model, config, _ = c4c.load(path)
    assert config.train_clip and not (tmp_path / "clip4caption.features").exists()
    fresh = c4c.Clip4Caption(config, model.decoder.vocab_size, c4c.build_frame_encoder(config, load_weights=False))
    changed = [k for k, v in fresh.state_dict().items() if k.startswith("encoder.") and not torch.equal(v, model.state_dict()[k])]
    assert changed  # the tower's weights moved


def test_teacher_tower_as_frame_encoder(four, tmp_path):
    from caption_helpers import tiny_config

    from snapcap.caption.train import CaptionTrainConfig, train_teacher

    teacher = train_teacher(
        four[:2], tmp_path / "t", tiny_config(), CaptionTrainConfig(epochs=1, batch_size=2, warmup_epochs=0), progress=False
    )
    path = c4c.train(four[:2], tmp_path / "c", {"epochs": 1, "batch_size": 2, "teacher": teacher}, progress=False)
    model, config, _ = c4c.load(path)
    assert config.teacher == str(teacher.resolve()) and not config.train_clip
    tower = torch.load(teacher, weights_only=False)["state"]
    assert torch.equal(model.encoder.visual.conv1.weight, tower["teacher.visual.conv1.weight"])
    with pytest.raises(DataFileError, match="teacher"):
        c4c.train(four[:2], tmp_path / "d", {"epochs": 1, "teacher": tmp_path / "missing.pt"}, progress=False)


# --- the ensemble ------------------------------------------------------------------------------


def test_ensemble_selects_the_consensus_caption():
    candidates = [
        "a red ball rolls to the left",
        "a red ball rolls left",
        "a red ball rolls to the left slowly",
        "a green tree stands still",
    ]
    for metric in ("cider", "bleu4"):
        scores = ensemble.consensus_scores(candidates, metric)
        assert int(np.argmax(scores)) == 0, (metric, scores)
        assert scores[3] == min(scores)
    videos = [candidates, ["a man sings", "a dog barks loudly", "a dog barks"], ["x y", "x y", "z"]]
    assert ensemble.ensemble_select(videos, "cider") == [0, 2, 0]
    assert ensemble.ensemble_select(videos, "bleu4") == [0, 2, 0]
    assert ensemble.ensemble_select([candidates]) == [0]  # one video alone: CIDEr-D is not degenerate
    assert ensemble.ensemble_select([["same words", "same words"]]) == [0]  # tie: the earliest model
    assert ensemble.ensemble_select([]) == []


def test_consensus_reference_values():
    """pycocoevalcap's scores (snapcap.caption.metrics), in percent."""
    assert ensemble.consensus_scores(["a b c d", "a b c d"], "bleu4") == pytest.approx([100.0, 100.0])
    assert ensemble.consensus_scores(["q r s t", "a b c d"], "bleu4") == pytest.approx([0.0, 0.0], abs=1e-6)
    # CIDEr-D: 10 (x100) against an identical caption, 0 against a disjoint one; the mean of the two
    assert ensemble.consensus_scores(["a b c d", "a b c d", "e f"], "cider") == pytest.approx([500.0, 500.0, 0.0])
    # a word in every candidate carries no information
    assert ensemble.consensus_scores(["a", "a"], "cider") == [0.0, 0.0]
    assert ensemble.consensus_scores(["", "a b"], "bleu4") == [0.0, 0.0]  # a blank reference scores 0, no error
    with pytest.raises(ConfigError, match="metric"):
        ensemble.consensus_scores(["a", "b"], "spice")
    with pytest.raises(InvalidValueError, match="at least 2"):
        ensemble.consensus_scores(["a"], "cider")


def test_ensemble_captioner_from_files(four, overfit):
    name = "ensemble:" + "+".join(str(p) for p in overfit["paths"]) + "@bleu4"
    captioner = create_captioner(name, None)
    assert captioner.kind == "frames" and captioner.metric == "bleu4" and len(captioner.members) == 2
    got = captioner.caption(four)
    assert got == CAPTIONS
    assert len(captioner.last_candidates) == 4 and all(len(c) == 2 for c in captioner.last_candidates)
    assert captioner.timings["total"] > 0
    with pytest.raises(ConfigError, match="at least 2"):
        create_captioner(f"ensemble:{overfit['paths'][0]}", None)
    with pytest.raises(ConfigError, match="metric"):
        create_captioner(name.replace("@bleu4", "@spice"), None)
    with pytest.raises(ConfigError, match="--checkpoints"):
        create_captioner("ensemble:clip4caption+teacher", None)
    with pytest.raises(ConfigError, match="neither"):
        create_captioner("ensemble:nope+clip4caption", "x")


def test_captioner_checks_the_input(four, overfit):
    captioner = load_captioner(overfit["paths"][0])
    assert captioner.name == "clip4caption" and captioner.kind == "frames" and captioner.image_size == 64
    assert captioner.caption(four[0]) == [CAPTIONS[0]]
    bad = dict(four[0], frames=torch.rand(3, 2, 64, 64, 3))
    with pytest.raises(ShapeError, match="T=2"):
        captioner.caption(bad)
    with pytest.raises(DataFileError, match="frames"):
        captioner.caption({"meas": four[0]["meas"], "masks": four[0]["masks"]})


def test_bad_options(four, tmp_path):
    with pytest.raises(ConfigError, match="--preset"):
        c4c.train(four[:1], tmp_path, {"preset": "huge"}, progress=False)
    with pytest.raises(ConfigError, match="--width"):
        c4c.train(four[:1], tmp_path, {"width": 30}, progress=False)
    with pytest.raises(ConfigError, match="epochs"):
        c4c.train(four[:1], tmp_path, {"epochs": 0}, progress=False)
    with pytest.raises(DataFileError, match="frames"):
        c4c.train([{k: v for k, v in four[0].items() if k != "frames"}], tmp_path, {}, progress=False)
    with pytest.raises(DataFileError, match="no such checkpoint"):
        c4c.load(tmp_path / "missing.pt")
    torch.save({"kind": "snapcap-captioner", "name": "teacher"}, tmp_path / "teacher.pt")
    with pytest.raises(DataFileError, match="not a zoo"):
        c4c.load(tmp_path / "teacher.pt")


# --- command line ------------------------------------------------------------------------------


def test_cli_train_and_eval(tmp_path, capsys):
    from snapcap.datasets.h5 import DatasetConfig, make_dataset
    from snapcap.datasets.synthetic import SyntheticCorpus

    run = tmp_path / "run"
    run_cli(
        [
            "train",
            "clip4caption",
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
            "--freeze-clip",
            "--frames",
            "3",
            "--no-progress",
            "--out",
            run,
        ]
    )
    assert (run / "clip4caption.pt").is_file() and (run / "clip4caption.data.json").is_file()
    data = make_dataset(
        SyntheticCorpus(6, seed=0),
        tmp_path / "d.h5",
        DatasetConfig(B=2, T=2, size=(64, 64), compression="gzip"),
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
            "clip4caption",
            "ensemble:clip4caption+clip4caption@bleu4",
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
    rows = {row["model"]: row for row in json.loads((tmp_path / "eval" / "results.json").read_text())["rows"]}
    assert set(rows) == {"clip4caption", "ensemble:clip4caption+clip4caption@bleu4"} and "clip4caption" in text
    assert rows["clip4caption"]["CIDEr"] == pytest.approx(rows["ensemble:clip4caption+clip4caption@bleu4"]["CIDEr"])
    out = run_cli(["caption", data, "--model", run / "clip4caption.pt", "--samples", "0", "--beam", "2"], capsys)
    assert out.startswith("synth00000\t")
    model, config, _ = c4c.load(run / "clip4caption.pt")
    assert model.frames == 3 and config.frames == 3
    from snapcap.cli.main import build_parser

    parser = build_parser()
    with pytest.raises(ConfigError, match="--preset"):
        args = parser.parse_args(
            ["train", "clip4caption", "--preset", "huge", "--num-videos", "2", "--split", "all", "--out", str(tmp_path / "x")]
        )
        args.func(args)


def test_training_rows_stream_the_frames_and_hold_the_captions(four):
    class Counting(list):
        reads = 0

        def __getitem__(self, index):
            Counting.reads += 1
            return super().__getitem__(index)

    samples = Counting(four)
    rows = c4c.TrainingRows(samples)
    Counting.reads = 0  # the captions were read once, up front
    assert [rows[i]["captions"] for i in range(len(rows))] == [list(s["captions"]) for s in four]
    assert Counting.reads == 0
    frames = rows[1]["frames"]
    assert Counting.reads == 1 and np.array_equal(frames, four[1]["frames"])
    assert rows[-1]["video_id"] == four[-1]["video_id"]
    rows[1]["frames"]  # read again: the rows keep no frames between uses
    assert Counting.reads == 3
    with pytest.raises(ConfigError, match="no training samples"):
        c4c.TrainingRows([])
    with pytest.raises(IndexError):
        rows[len(four)]
