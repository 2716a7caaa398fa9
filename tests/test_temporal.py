"""The arrow of time: camera controls, the order-aware teacher and student, the direction scores."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from snapcap.cacti import simulate
from snapcap.cacti.masks import MaskSpec, make_masks
from snapcap.caption.presets import captioner_preset, training_preset
from snapcap.caption.temporal import MOTION_FEATURES, TemporalEncoder, motion_summary, prefix_length
from snapcap.caption.train import build_teacher, build_vocabulary, load_native, train_student, train_teacher
from snapcap.datasets.h5 import DatasetConfig
from snapcap.datasets.synthetic import SyntheticCorpus
from snapcap.datasets.synthetic.readback import direction_scores, score_caption
from snapcap.datasets.torch_data import SimulatedDataset
from snapcap.errors import ConfigError, InvalidValueError, ShapeError

torch.set_num_threads(1)


def _pairs_corpus(count: int = 8, seed: int = 3) -> SyntheticCorpus:
    return SyntheticCorpus(num_videos=count, seed=seed, max_objects=1, temporal_pairs=True, splits=(1.0, 0.0, 0.0))


def _moving_pair(corpus: SyntheticCorpus) -> tuple[int, int]:
    """The first twin pair whose object moves with a direction."""
    for item in corpus.items[::2]:
        if item.extra["facts"]["objects"][0]["direction"] is not None:
            return item.extra["index"], item.extra["index"] + 1
    raise AssertionError("no moving pair in the corpus")


# --- camera controls -------------------------------------------------------------------------


def test_long_exposure_camera_is_the_plain_sum_of_the_frames():
    video = np.random.default_rng(0).random((2, 16, 12, 10)).astype(np.float32)
    result = simulate(video, B=8, masks="long-exposure", seed=5)
    np.testing.assert_allclose(result.meas, video.reshape(2, 2, 8, 12, 10).sum(axis=2), rtol=1e-6, atol=1e-6)
    assert result.params["masks"]["kind"] == "long-exposure"


def test_single_frame_camera_keeps_one_uncoded_frame_per_snapshot():
    video = np.random.default_rng(1).random((1, 16, 6, 6)).astype(np.float32)
    np.testing.assert_array_equal(simulate(video, B=8, masks="single-frame").meas[0], video[0, [4, 12]])
    with pytest.raises(InvalidValueError, match="frame must be an integer in 0..7"):
        make_masks(MaskSpec(kind="single-frame", B=8, H=6, W=6, params={"frame": 8}))


def test_long_exposure_snapshots_of_a_video_and_its_reversal_are_equal():
    corpus = _pairs_corpus()
    a, b = _moving_pair(corpus)
    config = DatasetConfig(B=8, T=1, size=(32, 32), mask="long-exposure")
    dataset = SimulatedDataset(corpus, config)
    np.testing.assert_allclose(dataset[a]["meas"].numpy(), dataset[b]["meas"].numpy(), atol=1e-4)
    coded = SimulatedDataset(corpus, DatasetConfig(B=8, T=1, size=(32, 32)))
    assert np.abs(coded[a]["meas"].numpy() - coded[b]["meas"].numpy()).max() > 0.1  # the coded camera tells them apart


# --- the order-aware teacher -----------------------------------------------------------------


@pytest.fixture(scope="module")
def order_aware_teacher():
    config = captioner_preset("tiny-temporal", B=8, T=1)
    vocab = build_vocabulary([{"captions": ["a red disc moves to the left"]}])
    torch.manual_seed(0)
    return build_teacher(config, vocab).eval()


def test_time_reversed_video_gives_another_order_aware_sequence_and_the_same_mean(order_aware_teacher):
    corpus = _pairs_corpus()
    a, b = _moving_pair(corpus)
    frames = torch.stack(
        [torch.from_numpy(corpus.clip(corpus.items[i], T=1, B=8, size=(64, 64))).float() / 255 for i in (a, b)]
    )  # (2, T, B, H, W, 3)
    np.testing.assert_array_equal(frames[1].numpy(), frames[0].flip(1).numpy())  # the twin is the video backwards
    model = order_aware_teacher
    with torch.no_grad():
        means = model.snapshot_embeddings(frames)  # the paper's f_t: blind to the order
        per_frame = model.frame_tokens(frames)
        tokens = model.tokens(frames)
    torch.testing.assert_close(means[0], means[1], atol=1e-5, rtol=1e-5)
    backwards = per_frame[0].flip(1)  # the same frames in the other order, moving the other way
    torch.testing.assert_close(per_frame[1, ..., :-2], backwards[..., :-2], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(per_frame[1, ..., -2:], -backwards[..., -2:], atol=1e-4, rtol=1e-4)
    centroid_x = per_frame[..., -MOTION_FEATURES + 1]  # where each frame differs, along x
    assert not torch.allclose(centroid_x[0], centroid_x[1], atol=1e-3)
    assert tokens.shape == (2, 8, model.decoder.config.width)
    assert (tokens[0] - tokens[1]).abs().max() > 1e-2


def test_motion_summary_follows_the_moving_patch():
    conv = torch.zeros(1, 1, 4, 2, 4, 4)
    for k in range(4):
        conv[0, 0, k, :, 1, k] = 1.0  # something at row 1, moving right one column a frame
    summary = motion_summary(conv)[0, 0]
    x = summary[:, 1]
    assert (x[1:] > x[:-1]).all()  # the centroid moves right
    assert torch.allclose(summary[:, 0], summary[0, 0].expand(4))  # and stays on one row
    assert (summary[:, 5] > 0).all() and torch.allclose(summary[:, 4], torch.zeros(4), atol=1e-6)  # velocity: right, not up
    still = torch.tensor([0.0, 0.0, 0.001, 0.001, 0.0, 0.0])
    assert torch.all(motion_summary(torch.ones(1, 1, 3, 2, 4, 4)) == still)  # a still video: zeros
    with pytest.raises(ShapeError):
        motion_summary(torch.zeros(2, 3, 4, 4))


def test_temporal_encoder_checks_its_input():
    encoder = TemporalEncoder(32, {"layers": 1, "heads": 4, "max_frames": 8, "max_snapshots": 2})
    assert encoder(torch.zeros(3, 2, 8, 32 + MOTION_FEATURES)).shape == (3, 16, 32)
    with pytest.raises(ShapeError, match="B <= 8 and T <= 2"):
        encoder(torch.zeros(1, 3, 8, 32 + MOTION_FEATURES))
    with pytest.raises(ShapeError, match="per-frame tokens"):
        encoder(torch.zeros(1, 1, 8, 32))
    with pytest.raises(ConfigError, match="heads=5 must divide"):
        TemporalEncoder(32, {"heads": 5})
    with pytest.raises(ConfigError, match="unknown keys"):
        TemporalEncoder(32, {"depth": 2})


def test_order_aware_preset_gives_the_decoder_every_frame():
    config = captioner_preset("tiny-temporal", B=8, T=4)
    assert prefix_length(config) == 32 and config.decoder["max_prefix"] >= 32
    assert prefix_length(captioner_preset("tiny", B=8, T=4)) == 4
    assert not captioner_preset("paper").temporal  # the paper preset keeps the paper's mean
    assert "temporal" not in captioner_preset("tiny").to_dict()  # and its records (cache keys) as before


# --- the order-aware student -----------------------------------------------------------------


@pytest.fixture(scope="module")
def temporal_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("temporal")
    corpus = _pairs_corpus(6)
    samples = [s for s in SimulatedDataset(corpus, DatasetConfig(B=4, T=2, size=(64, 64)))]
    training = training_preset(
        "tiny-temporal", head_epochs=1, stage1_epochs=1, epochs=1, batch_size=3, warmup_epochs=0, log_every=1
    )
    config = captioner_preset("tiny-temporal", B=4, T=2)
    teacher = train_teacher(samples, out, config, training, progress=False, preset="tiny-temporal")
    return out, samples, teacher, training


def test_order_aware_student_distils_every_frame_token(temporal_run):
    out, samples, teacher, training = temporal_run
    path = train_student(samples, teacher, out / "a", "snapcap-temporal", training, progress=False)
    model, config, _ = load_native(path)
    assert config.student["bayer"] == "RGGB"
    stage2 = [h for h in model_history(path) if h["stage"] == "snapcap-temporal-stage2"]
    assert stage2 and all({"l_frames", "l_conv", "l_emb", "l_cap", "l_reg"} <= set(h) for h in stage2)
    meas = torch.stack([s["meas"] for s in samples[:2]])
    with torch.no_grad():
        result = model.student(meas, samples[0]["masks"])
    assert result["tokens"].shape == (2, 8, model.decoder.config.width)
    assert result["frame_tokens"].shape[:3] == (2, 2, 4)

    # the per-frame targets are what l_frames reads: the same run on shifted targets logs another loss
    targets = out / "teacher.targets" / "f_t_frames.npy"
    array = np.load(targets, mmap_mode="r+")
    array[...] += 10.0
    array.flush()
    del array
    shifted = train_student(samples, teacher, out / "b", "snapcap-temporal", training, progress=False)
    first = [h["l_frames"] for h in model_history(path) if "l_frames" in h][0]
    moved = [h["l_frames"] for h in model_history(shifted) if "l_frames" in h][0]
    assert moved > first + 50.0


def model_history(path) -> list[dict]:
    return torch.load(path, map_location="cpu", weights_only=False)["history"]


def test_students_must_match_their_teachers_kind(temporal_run, tmp_path):
    out, samples, teacher, training = temporal_run
    with pytest.raises(ConfigError, match="the snapcap student needs a mean"):
        train_student(samples, teacher, tmp_path, "snapcap", training, progress=False)
    baseline = train_student(samples, teacher, tmp_path, "baseline-temporal", training, progress=False)
    assert "l_frames" not in {key for h in model_history(baseline) for key in h}  # caption loss only


# --- reading the direction back ----------------------------------------------------------------


def test_fact_readback_scores_the_reversed_caption_wrong():
    corpus = _pairs_corpus(40, seed=0)
    checked = 0
    for item in corpus.items[::2]:
        twin = corpus.items[item.extra["index"] + 1]
        facts, twin_facts = item.extra["facts"], twin.extra["facts"]
        obj = facts["objects"][0]
        if obj["direction"] is None or obj["bounces"]:
            continue  # a bounce played backwards bounces the same way: its words fit both
        for caption in item.captions:
            verdict = score_caption(caption, facts)["direction"]
            if verdict is None:
                continue
            assert verdict is True
            assert score_caption(caption, twin_facts)["direction"] is False  # the same words, the reversed video
            checked += 1
    assert checked >= 10


def test_direction_scores_count_statements_and_reversal_pairs():
    corpus = _pairs_corpus(40, seed=0)
    facts = {item.video_id: item.extra["facts"] for item in corpus.items}
    pairs = {item.video_id: item.extra["pair"] for item in corpus.items}
    stating = {
        item.video_id: next(c for c in item.captions if score_caption(c, item.extra["facts"])["direction"])
        for item in corpus.items
        if any(score_caption(c, item.extra["facts"])["direction"] for c in item.captions)
    }
    right = direction_scores(stating, facts, pairs)
    assert right["direction_accuracy"] == 100.0 and right["direction_stated"] == 100.0
    assert right["reversal_pairs"] == 100.0 and right["pairs_counted"] >= 5
    # the same caption for a video and its twin (what a long exposure allows): never both right
    swapped = {vid: stating[pairs[vid]] for vid in stating if pairs[vid] in stating}
    wrong = direction_scores(swapped, facts, pairs)
    assert wrong["reversal_pairs"] == 0.0 and wrong["direction_accuracy"] < 20.0  # right only where a bounce fits both
    assert direction_scores({"x": "a red disc"}, {"x": facts[corpus.items[0].video_id]})["direction_stated"] == 0.0


# --- the B = 2 anomaly: pixels that no mask opens ----------------------------------------------


def test_normalized_measurement_fills_the_pixels_no_mask_opens():
    from snapcap.caption.student import initial_estimate, normalized_measurement

    rng = np.random.default_rng(0)
    masks = torch.from_numpy((rng.random((2, 16, 16)) < 0.5).astype(np.float32))
    frames = torch.full((2, 16, 16), 0.6)
    meas = (masks * frames).sum(0)
    closed = masks.sum(0) == 0
    assert 0.1 < float(closed.float().mean()) < 0.4  # about (1 - 1/2)^2 = 25 % at B = 2
    ybar = normalized_measurement(meas, masks)
    torch.testing.assert_close(ybar, torch.full((16, 16), 0.6))  # a flat scene: filled with its value, not zeros
    assert torch.equal(ybar[~closed], (meas / masks.sum(0).clamp_min(1))[~closed])  # opened pixels: Y / sum C exactly
    estimate = initial_estimate(meas[None], masks)
    assert estimate.shape == (1, 2, 16, 16) and bool((estimate[0, :, closed] > 0).all())
    opened = torch.ones(8, 4, 4)
    assert torch.equal(normalized_measurement(torch.full((4, 4), 4.0), opened), torch.full((4, 4), 0.5))
    batch = normalized_measurement(meas.expand(3, 16, 16), masks.expand(3, 2, 16, 16))
    torch.testing.assert_close(batch, ybar.expand(3, 16, 16))


# --- compare: the order-aware rows and the camera controls ------------------------------------


def test_compare_adds_order_aware_rows_and_camera_controls_at_the_reference_B(tmp_path):
    from snapcap.compare import compare_preset, run_compare
    from snapcap.compare.config import CompareConfig

    corpus = {"kind": "synthetic", "num_videos": 12, "seed": 0, "max_objects": 1, "temporal_pairs": True}
    config = compare_preset(
        "micro",
        B=(2, 4),
        corpus=corpus,
        T=1,
        recon=(),
        students=("snapcap", "snapcap-temporal"),
        cameras=("long-exposure",),
        camera_students=("snapcap-temporal",),
    )
    assert config.order_aware_preset == "tiny-temporal" and config.reference_B == 4
    results = run_compare(config, tmp_path / "out", progress=False, quiet=True)
    rows = {(row["pipeline"], row["B"]): row for row in results["rows"]}
    assert set(rows) == {
        ("teacher", 2),
        ("snapcap", 2),
        ("teacher", 4),
        ("teacher-temporal", 4),
        ("snapcap", 4),
        ("snapcap-temporal", 4),
        ("snapcap-temporal@long-exposure", 4),
    }
    control = rows[("snapcap-temporal@long-exposure", 4)]
    assert control["camera"] == "long-exposure" and "long-exposure" in control["dataset"]
    assert set(control["direction"]) >= {"direction_accuracy", "direction_stated", "reversal_pairs", "pairs_counted"}
    report = (tmp_path / "out" / "report.md").read_text()
    assert "### Direction of motion (B = 4)" in report and "one-stage order-aware SnapCap (long-exposure)" in report
    with pytest.raises(ConfigError, match="not among the students"):
        CompareConfig(students=("snapcap",), cameras=("long-exposure",), camera_students=("baseline",))
    with pytest.raises(ConfigError, match="--cameras: unknown"):
        CompareConfig(cameras=("pinhole",))
    with pytest.raises(ConfigError, match="order-aware captioner preset"):
        CompareConfig(captioner="paper", students=("snapcap-temporal",))
