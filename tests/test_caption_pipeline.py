"""End-to-end captioning at tiny size: train (CLI) -> eval -> caption, registry, resume, DDP, errors."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("open_clip")
torch.set_num_threads(1)

from caption_helpers import (  # noqa: E402
    DDP_CAPTIONS,
    RESUME_TRAIN,
    batch_loss,
    ddp_samples,
    fresh_model,
    run_cli,
    tiny_config,
    tiny_samples,
    train_resume,
)

from snapcap.caption.evaluate import EvalResult, evaluate, results_markdown  # noqa: E402
from snapcap.caption.presets import CAPTIONER_PRESETS, captioner_preset  # noqa: E402
from snapcap.caption.registry import Captioner, create_captioner, list_captioners, load_captioner, zoo_names  # noqa: E402
from snapcap.caption.teacher import teacher_image_size  # noqa: E402
from snapcap.errors import ConfigError, DataFileError, ShapeError, SnapcapError  # noqa: E402

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
PYTHON = sys.executable
FAST_METRICS = "BLEU,ROUGE-L,CIDEr"


def make_h5(path: Path, count: int = 12, B: int = 4, T: int = 2, size: int = 64, **options) -> Path:
    from snapcap.datasets.h5 import DatasetConfig, make_dataset
    from snapcap.datasets.synthetic import SyntheticCorpus

    make_dataset(
        SyntheticCorpus(count, seed=0),
        path,
        DatasetConfig(B=B, T=T, size=(size, size), compression="gzip", **options),
        progress=False,
        workers=1,
    )
    return path


def write_video(path: Path, frames: int = 20, height: int = 72, width: int = 80) -> Path:
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (width, height))
    assert writer.isOpened()
    for k in range(frames):
        frame = np.full((height, width, 3), 40, np.uint8)
        cv2.circle(frame, (10 + 3 * k, height // 2), 9, (0, 0, 230), -1)
        writer.write(frame)
    writer.release()
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A dataset file (12 videos, 64x64, B=4, T=2) and teacher, snapcap, baseline trained by the CLI."""
    root = tmp_path_factory.mktemp("caption")
    data = make_h5(root / "data.h5")
    run = root / "run"
    common = ["--epochs", "2", "--batch-size", "4", "--warmup-epochs", "0", "--no-progress", "--out", run]
    started = time.perf_counter()
    run_cli(["train", "teacher", "--corpus", "synthetic", "--num-videos", "12", "--B", "4", "--T", "2", "--size", "64", *common])
    run_cli(["train", "snapcap", "--data", data, "--stage1-epochs", "1", *common])
    run_cli(["train", "baseline", "--data", data, *common])
    return {"root": root, "data": data, "run": run, "seconds": time.perf_counter() - started}


# --- registry ---------------------------------------------------------------------------------


def test_list_captioners_and_presets():
    from snapcap.recon.api import METHODS

    names = list_captioners()
    native = ["teacher", "snapcap", "baseline", "snapcap-reg-only", "snapcap-dis-only", "snapcap-temporal", "baseline-temporal"]
    assert names[: len(native)] == native
    assert names[len(native) :] == zoo_names() + [f"two-stage:{m}" for m in METHODS]
    assert {"tiny", "paper"} <= set(CAPTIONER_PRESETS)
    paper = CAPTIONER_PRESETS["paper"]
    assert (paper.teacher, paper.pretrained, paper.train_encoder) == ("ViT-B-16", "openai", False)
    assert paper.decoder == {"backend": "lm", "lm": "gpt2-medium", "max_length": 30, "max_prefix": 16}  # GPT-2 medium: D = 1024
    assert captioner_preset("paper", decoder="native").decoder["width"] == 1024
    assert paper.student["blocks"] == [4, 6, 6, 6] and paper.student["image_size"] == 224
    tiny = captioner_preset("tiny", B=4, T=2)
    assert (tiny.B, tiny.T) == (4, 2) and "B" not in tiny.student  # the student's B is the captioner's
    assert tiny.student["image_size"] == teacher_image_size(tiny.teacher) == 64
    with pytest.raises(ConfigError, match="tiny"):
        captioner_preset("huge")


def test_unknown_name_and_missing_checkpoint(tmp_path):
    with pytest.raises(ConfigError) as info:
        create_captioner("no-such-captioner", tmp_path)
    assert "snapcap" in str(info.value) and "two-stage:gap-tv" in str(info.value)
    with pytest.raises(DataFileError, match="snapcap train teacher"):
        create_captioner("teacher", tmp_path)
    with pytest.raises(DataFileError, match="snapcap train snapcap-dis-only"):
        create_captioner("snapcap-dis-only", tmp_path)
    with pytest.raises(DataFileError, match="snapcap train teacher"):
        create_captioner("two-stage:gap-tv", tmp_path)
    with pytest.raises(ConfigError, match="two-stage"):
        create_captioner("snapcap", tmp_path, recon_params={"iterations": 3})


def test_train_covers_reconstruction_and_every_captioner(tmp_path):
    from snapcap.cli.main import build_parser
    from snapcap.cli.train import run_recon

    parser = build_parser()
    assert parser.parse_args(["train", "recon", "--out", str(tmp_path)]).func is run_recon
    for name in list_captioners():
        if not name.startswith("two-stage:"):
            assert parser.parse_args(["train", name, "--out", str(tmp_path)]).captioner == name
    args = parser.parse_args(["train", "snapcap-reg-only", "--out", str(tmp_path)])
    assert args.captioner == "snapcap-reg-only" and args.teacher is None
    assert parser.parse_args(["eval", "--data", "d.h5", "--model", "snapcap", "teacher"]).model == ["snapcap", "teacher"]


# --- the pipeline -----------------------------------------------------------------------------


def test_training_writes_checkpoints_and_sidecars(trained):
    run = trained["run"]
    for stem in ("teacher", "snapcap", "baseline"):
        assert (run / f"{stem}.pt").is_file()
        meta = json.loads((run / f"{stem}.data.json").read_text())
        assert (meta["B"], meta["T"], meta["size"]) == (4, 2, [64, 64])
        assert np.load(run / f"{stem}.masks.npy").shape == (4, 64, 64)
    assert json.loads((run / "teacher.data.json").read_text())["source"] == "simulated"
    assert json.loads((run / "snapcap.data.json").read_text())["source"] == "files"
    # the on-the-fly simulation and the dataset file use the same (default) masks
    np.testing.assert_array_equal(np.load(run / "teacher.masks.npy"), np.load(run / "snapcap.masks.npy"))
    assert (run / "snapcap-stage1.ckpt").is_file() and (run / "snapcap-stage2.ckpt").is_file()


def test_rerunning_a_finished_training_command_changes_nothing(trained):
    """The train verbs resume from their checkpoints: a rerun of a finished run only rewrites the same weights."""
    run = trained["run"]
    before = torch.load(run / "baseline.pt", map_location="cpu", weights_only=False)
    run_cli(
        [
            "train",
            "baseline",
            "--data",
            trained["data"],
            "--epochs",
            "2",
            "--batch-size",
            "4",
            "--warmup-epochs",
            "0",
            "--no-progress",
            "--out",
            run,
        ]
    )
    after = torch.load(run / "baseline.pt", map_location="cpu", weights_only=False)
    assert before["state"].keys() == after["state"].keys()
    for key, value in before["state"].items():
        torch.testing.assert_close(after["state"][key], value, rtol=0, atol=0)
    with pytest.raises(ConfigError, match="another configuration"):
        run_cli(
            [
                "train",
                "baseline",
                "--data",
                trained["data"],
                "--epochs",
                "3",
                "--batch-size",
                "4",
                "--warmup-epochs",
                "0",
                "--no-progress",
                "--out",
                run,
            ]
        )


def test_eval_cli_table(trained, tmp_path, capsys):
    out = tmp_path / "eval"
    text = run_cli(
        [
            "eval",
            "--data",
            trained["data"],
            "--split",
            "all",
            "--model",
            "teacher",
            "snapcap",
            "baseline",
            "two-stage:gap-tv",
            "--checkpoints",
            trained["run"],
            "--metrics",
            FAST_METRICS,
            "--tokenizer",
            "regex",
            "--recon-param",
            "gap-tv:iterations=5",
            "-o",
            out,
        ],
        capsys,
    )
    assert "| model | B | BLEU-4 | METEOR | ROUGE-L | CIDEr | latency (ms)" in text
    payload = json.loads((out / "results.json").read_text())
    rows = {row["model"]: row for row in payload["rows"]}
    assert set(rows) == {"teacher", "snapcap", "baseline", "two-stage:gap-tv"}
    for row in rows.values():
        for key in ("BLEU-1", "BLEU-4", "ROUGE-L", "CIDEr", "latency_ms", "peak_rss_mb"):
            assert row[key] is not None, key
        assert row["videos"] == 12 and row["B"] == 4 and row["latency_ms"] > 0
    assert rows["two-stage:gap-tv"]["recon_ms"] > 0 and rows["snapcap"]["recon_ms"] is None
    per_video = payload["results"][1]["videos"]
    assert len(per_video) == 12 and all(v["latency_ms"] > 0 for v in per_video)
    assert (out / "results.md").read_text().count("\n| ") >= 5


def test_evaluate_api_result(trained):
    from snapcap.datasets.torch_data import MeasurementDataset

    captioner = create_captioner("snapcap", trained["run"])
    samples = MeasurementDataset(trained["data"], split="train")
    result = evaluate(captioner, samples, metrics=("BLEU", "CIDEr"), tokenizer="regex", warmup=0)
    assert isinstance(result, EvalResult) and len(result.videos) == len(samples) == 10
    assert set(result.scores) == {"BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "CIDEr"}
    assert result.memory["host_method"] in ("linux-vmhwm", "psutil-sampled", "getrusage-maxrss")
    row = result.to_row()
    assert row["model"] == "snapcap" and "METEOR" not in row and row["BLEU-4"] is not None
    decoded = json.loads(result.to_json())
    assert decoded["row"]["videos"] == 10 and set(decoded["predictions"]) == set(decoded["references"])
    table = results_markdown([result, row])
    assert table.count("| snapcap |") == 2 and "n/a" in table  # METEOR not computed


@pytest.mark.slow
def test_evaluate_with_meteor(trained):
    import shutil

    from snapcap.datasets.torch_data import MeasurementDataset

    captioner = create_captioner("teacher", trained["run"])
    result = evaluate(captioner, MeasurementDataset(trained["data"], split="train"))
    assert {"BLEU-4", "METEOR", "ROUGE-L", "CIDEr"} <= set(result.scores)
    if shutil.which("java"):
        assert result.scores["METEOR"] is not None


def test_caption_cli_on_a_dataset_file(trained, capsys):
    run, data = trained["run"], trained["data"]
    lines = run_cli(["caption", data, "--model", run / "snapcap.pt", "--samples", "0:3", "--json"], capsys).strip().splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["video_id"] for r in records] == ["synth00000", "synth00001", "synth00002"]
    assert all(isinstance(r["caption"], str) and r["references"] and r["model"] == "snapcap" for r in records)
    # same captions as the Python API
    from snapcap.datasets.torch_data import MeasurementDataset

    captioner = load_captioner(run / "snapcap.pt")
    dataset = MeasurementDataset(data)
    assert [r["caption"] for r in records] == [captioner.caption(dataset[i])[0] for i in range(3)]
    # batches caption like single samples
    from snapcap.datasets.torch_data import collate_samples

    assert captioner.caption(collate_samples([dataset[i] for i in range(3)])) == [r["caption"] for r in records]
    text = run_cli(["caption", data, "--model", run / "teacher.pt", "--samples", "1,4"], capsys)
    assert [line.split("\t")[0] for line in text.strip().splitlines()] == ["synth00001", "synth00004"]
    text = run_cli(
        [
            "caption",
            data,
            "--model",
            "two-stage:gap-tv",
            "--checkpoints",
            run,
            "--recon-param",
            "iterations=3",
            "--samples",
            "0",
            "--json",
        ],
        capsys,
    )
    assert json.loads(text)["recon_ms"] > 0


def test_caption_cli_on_a_video_file(trained, tmp_path, capsys):
    video = write_video(tmp_path / "clip.avi")
    run = trained["run"]
    for model in ("snapcap.pt", "teacher.pt", "baseline.pt"):
        record = json.loads(run_cli(["caption", video, "--model", run / model, "--json"], capsys))
        assert record["video_id"] == "clip" and isinstance(record["caption"], str)
    # an explicit mask file, and the same masks as the stored ones give the same caption
    np.save(tmp_path / "masks.npy", np.load(run / "snapcap.masks.npy"))
    a = run_cli(["caption", video, "--model", run / "snapcap.pt"], capsys)
    b = run_cli(["caption", video, "--model", run / "snapcap.pt", "--mask", tmp_path / "masks.npy"], capsys)
    assert a == b
    np.save(tmp_path / "wrong.npy", np.ones((4, 32, 32), np.float32))
    with pytest.raises(ShapeError, match="64x64"):
        run_cli(["caption", video, "--model", run / "snapcap.pt", "--mask", tmp_path / "wrong.npy"])


def test_video_simulation_matches_the_dataset_rules():
    """The caption command simulates videos with snapcap.cacti.simulate; it must equal the datasets'."""
    from snapcap.cacti.simulate import simulate
    from snapcap.datasets.h5 import DatasetConfig
    from snapcap.datasets.synthetic import SyntheticCorpus
    from snapcap.datasets.torch_data import SimulatedDataset

    corpus = SyntheticCorpus(2)
    sample = SimulatedDataset(corpus, DatasetConfig(B=4, T=2, size=(32, 32)))[0]
    clip = corpus.clip(corpus.items[0], 2, 4, (32, 32))
    result = simulate(clip.reshape((1, 8) + clip.shape[2:]), masks=sample["masks"].numpy(), bayer=sample["bayer"], seed=0)
    np.testing.assert_array_equal(np.asarray(result.meas[0]), sample["meas"].numpy())


def test_checkpoint_round_trip(trained, tmp_path):
    from snapcap.datasets.torch_data import MeasurementDataset

    dataset = MeasurementDataset(trained["data"])
    samples = [dataset[i] for i in range(4)]
    for name in ("teacher", "snapcap"):
        first = create_captioner(name, trained["run"])
        assert isinstance(first, Captioner) and first.kind == ("frames" if name == "teacher" else "snapshot")
        before = [first.caption(s)[0] for s in samples]
        beam = [first.caption(s, beam_size=3)[0] for s in samples]
        payload = torch.load(first.checkpoint, map_location="cpu", weights_only=False)
        payload["state"] = first.model.state_dict()
        copy = tmp_path / f"{name}-copy.pt"
        torch.save(payload, copy)
        second = create_captioner(name, {name: copy})
        assert [second.caption(s)[0] for s in samples] == before
        assert [second.caption(s, beam_size=3)[0] for s in samples] == beam
        for key, value in first.model.state_dict().items():
            torch.testing.assert_close(second.model.state_dict()[key], value, rtol=0, atol=0)


# --- bad inputs -------------------------------------------------------------------------------


def test_wrong_b_and_size_for_a_checkpoint(trained, tmp_path):
    run = trained["run"]
    wrong_b = make_h5(tmp_path / "b2.h5", count=2, B=2)
    wrong_size = make_h5(tmp_path / "s32.h5", count=2, size=32)
    wrong_t = make_h5(tmp_path / "t3.h5", count=2, T=3)
    with pytest.raises(ShapeError, match="B=4"):
        run_cli(["caption", wrong_b, "--model", run / "snapcap.pt"])
    with pytest.raises(ShapeError, match="64x64"):
        run_cli(["caption", wrong_size, "--model", run / "baseline.pt"])
    with pytest.raises(ShapeError, match="T=2"):
        run_cli(["caption", wrong_t, "--model", run / "teacher.pt"])
    with pytest.raises(ShapeError, match="64x64"):
        run_cli(
            [
                "train",
                "snapcap",
                "--data",
                wrong_size,
                "--split",
                "all",
                "--epochs",
                "1",
                "--no-progress",
                "--teacher",
                run / "teacher.pt",
                "--out",
                tmp_path / "s",
            ]
        )
    with pytest.raises(SnapcapError, match="B=4"):
        run_cli(
            [
                "train",
                "baseline",
                "--data",
                wrong_b,
                "--split",
                "all",
                "--epochs",
                "1",
                "--no-progress",
                "--teacher",
                run / "teacher.pt",
                "--out",
                tmp_path / "b",
            ]
        )
    with pytest.raises(DataFileError, match="snapcap train teacher"):
        run_cli(["train", "snapcap", "--data", trained["data"], "--out", tmp_path / "no-teacher"])
    # two-stage reconstructs any size and B: only T must match
    captioner = create_captioner("two-stage:gap-tv", run, recon_params={"iterations": 2})
    from snapcap.datasets.torch_data import MeasurementDataset

    assert len(captioner.caption(MeasurementDataset(wrong_size)[0])) == 1


def test_bad_names_and_inputs(trained, tmp_path):
    run = trained["run"]
    with pytest.raises(ConfigError, match="snapcap-reg-only"):
        run_cli(["eval", "--data", trained["data"], "--model", "snapcap-v2", "--checkpoints", run])
    with pytest.raises(ConfigError, match="--checkpoints"):
        run_cli(["eval", "--data", trained["data"], "--model", "snapcap"])
    with pytest.raises(ConfigError, match="no 'val' videos|no 'test' videos"):
        run_cli(["train", "teacher", "--data", make_h5(tmp_path / "two.h5", count=2), "--split", "val", "--out", tmp_path / "x"])
    with pytest.raises(DataFileError, match="no such file"):
        run_cli(["caption", tmp_path / "missing.h5", "--model", run / "snapcap.pt"])
    with pytest.raises(ConfigError, match="two-stage captioning needs a teacher"):
        run_cli(["caption", trained["data"], "--model", run / "snapcap.pt", "--recon", "gap-tv"])
    with pytest.raises(ConfigError, match="holds the 'snapcap' captioner"):
        create_captioner("baseline", {"baseline": run / "snapcap.pt"})
    captioner = create_captioner("snapcap", run)
    with pytest.raises(DataFileError, match="masks"):
        captioner.caption({"meas": torch.zeros(2, 64, 64)})
    teacher = create_captioner("teacher", run)
    with pytest.raises(DataFileError, match="frames"):
        teacher.caption({"meas": torch.zeros(2, 64, 64), "masks": torch.ones(4, 64, 64)})


def test_capture_needs_its_mask(trained, tmp_path, capsys):
    hardware = pytest.importorskip("snapcap.hardware")
    rng = np.random.default_rng(0)
    capture = tmp_path / "scene_cr_4.mat"
    hardware.write_mat_v5(capture, meas=(rng.random((64, 64, 2)) * 255).round().astype(np.uint8))
    with pytest.raises(DataFileError, match="--mask"):
        run_cli(["caption", capture, "--model", trained["run"] / "snapcap.pt"])
    hardware.write_mask_file(tmp_path / "real_mask.mat", (rng.random((4, 64, 64)) > 0.5).astype(np.float32))
    text = run_cli(["caption", capture, "--model", trained["run"] / "snapcap.pt", "--mask", tmp_path / "real_mask.mat"], capsys)
    assert text.startswith("scene_cr_4:0\t")
    with pytest.raises(ConfigError, match="--recon"):
        run_cli(["caption", capture, "--model", trained["run"] / "teacher.pt", "--mask", tmp_path / "real_mask.mat"])


# --- shapes -----------------------------------------------------------------------------------


def _check_student_shapes(config, vocab_size: int = 40) -> None:
    from snapcap.caption.student import initial_estimate
    from snapcap.caption.text import Vocabulary
    from snapcap.caption.train import build_student, build_teacher

    vocab = Vocabulary.build([" ".join(f"w{i}" for i in range(vocab_size))])
    teacher = build_teacher(config, vocab)
    captioner = build_student(teacher, config).eval()
    student = captioner.student
    B, T, S = config.B, config.T, config.student["image_size"]
    c, (h, w), d, D = teacher.teacher.conv_channels, teacher.teacher.grid, teacher.teacher.embed_dim, config.decoder["width"]
    meas = torch.rand(1, T, S, S) * B / 2
    masks = (torch.rand(B, S, S) > 0.5).float()
    with torch.no_grad():
        estimate = initial_estimate(meas.reshape(T, S, S), masks.unsqueeze(0))
        assert estimate.shape == (T, B, S, S)
        out = captioner(meas, masks)  # one pass through every module
        latent = out["latent"]
        assert latent.shape == (T, config.student["widths"][-1], h, w)
        conv, embedding = student.features(latent)
        assert conv.shape == (T, c, h, w) and embedding.shape == (T, d)
        assert student.reconstruct(latent).shape == (T, B, S, S)
        assert out["tokens"].shape == (1, T, D) and out["f_s"].shape == (1, T, d) and out["f_s_conv"].shape == (1, T, c, h, w)
        # the teacher's targets have the student's shapes (one frame per snapshot is enough to check)
        f_t_conv, f_t = teacher.teacher.snapshot_targets(torch.rand(1, T, 1, S, S, 3))
        assert f_t_conv.shape == out["f_s_conv"].shape and f_t.shape == out["f_s"].shape
        assert teacher.proj(f_t).shape == (1, T, D)
        ids = captioner.decoder.generate(out["tokens"], max_length=6)
        assert len(ids) == 1 and len(ids[0]) <= 4


def test_student_shapes_tiny():
    _check_student_shapes(replace(captioner_preset("tiny", B=4, T=2), train_encoder=False))


@pytest.mark.slow
def test_student_shapes_paper_random_weights():
    config = captioner_preset("paper", B=8, T=8, pretrained=None, decoder="native")  # GPT-2 medium is not offline
    assert config.student["image_size"] == 224 and config.decoder["width"] == 1024
    _check_student_shapes(config)


# --- learning -----------------------------------------------------------------------------------


def test_tiny_teacher_overfits_four_videos(tmp_path):
    from snapcap.caption.train import CaptionTrainConfig, train_teacher

    samples = tiny_samples(4, seed=3, captions_per_video=1)
    config = CaptionTrainConfig(epochs=120, batch_size=4, warmup_epochs=0, lr=1.5e-3, checkpoint_every=1000, log_every=10)
    path = train_teacher(samples, tmp_path, tiny_config(), config, progress=False)
    losses = [json.loads(line)["loss"] for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert losses[-1] < 0.3 * losses[0]
    captioner = create_captioner("teacher", path)
    predicted = [captioner.caption(s)[0] for s in samples]
    matches = sum(p == s["captions"][0] for p, s in zip(predicted, samples))
    assert matches >= 3, list(zip(predicted, [s["captions"][0] for s in samples]))


def test_resume_after_kill(tmp_path):
    killed = tmp_path / "killed"
    env = dict(
        os.environ,
        SNAPCAP_TEST_DELAY="0.05",
        OMP_NUM_THREADS="1",
        PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    )
    process = subprocess.Popen(
        [PYTHON, str(HERE / "caption_helpers.py"), "resume", str(killed)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    checkpoint = killed / "teacher.ckpt"
    deadline = time.monotonic() + 120
    try:
        while not checkpoint.exists():
            if process.poll() is not None:
                pytest.fail(f"the training process ended before its first checkpoint: {process.stderr.read().decode()[-2000:]}")
            if time.monotonic() > deadline:
                pytest.fail("no checkpoint within 120 s")
            time.sleep(0.01)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=60)
        process.stderr.close()
    assert process.returncode == -signal.SIGKILL
    assert not (killed / "teacher.pt").exists()
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    steps = RESUME_TRAIN["epochs"] * 4
    assert state["epoch"] * 4 + state["position"] < steps
    resumed = train_resume(killed)
    straight = train_resume(tmp_path / "straight")
    a = torch.load(resumed, map_location="cpu", weights_only=False)["state"]
    b = torch.load(straight, map_location="cpu", weights_only=False)["state"]
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-5, msg=key)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow
def test_ddp_two_processes_match_one(tmp_path):
    import torch.distributed as dist

    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("torch.distributed with gloo is not available")
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    command = [
        PYTHON,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(_free_port()),
        str(HERE / "caption_helpers.py"),
        "ddp",
        str(tmp_path),
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    record = torch.load(tmp_path / "ddp_grads.pt", map_location="cpu", weights_only=False)
    from snapcap.caption.text import tokenize

    assert len({len(tokenize(c)) for c in DDP_CAPTIONS}) == 1  # equal lengths: mean of rank means == batch mean
    samples = ddp_samples()
    model, vocab = fresh_model(samples)
    for key, value in model.state_dict().items():
        torch.testing.assert_close(record["state"][key], value, rtol=0, atol=0)
    batch_loss(model, vocab, samples, [0, 1, 2, 3]).backward()
    grads = {name: p.grad for name, p in model.named_parameters() if p.grad is not None}
    assert grads.keys() == record["grads"].keys() and len(grads) > 10
    for name, grad in grads.items():
        torch.testing.assert_close(record["grads"][name], grad, rtol=1e-4, atol=1e-6, msg=name)
    saves = [
        line
        for rank in (0, 1)
        if (tmp_path / f"saves-rank{rank}.log").exists()
        for line in (tmp_path / f"saves-rank{rank}.log").read_text().split()
    ]
    assert saves.count("teacher.pt") == 1 and not (tmp_path / "saves-rank1.log").exists()
    assert (tmp_path / "run" / "teacher.pt").is_file()
    captioner = create_captioner("teacher", tmp_path / "run")
    assert len(captioner.caption(samples[0])) == 1


def test_teacher_targets_live_on_disk_memory_mapped(tmp_path):
    import numpy as np
    from caption_helpers import tiny_config, tiny_samples

    from snapcap.caption.train import (
        CaptionTrainConfig,
        MappedTargets,
        compute_targets,
        load_native,
        target_rows,
        teacher_targets,
        train_teacher,
    )

    samples = tiny_samples(6, B=2, T=2)
    path = train_teacher(
        samples, tmp_path, tiny_config(), CaptionTrainConfig(epochs=1, head_epochs=1, batch_size=4), progress=False
    )
    folder = tmp_path / "teacher.targets"
    assert sorted(p.name for p in folder.iterdir()) == ["f_t.npy", "f_t_conv.npy", "meta.json"]
    assert not list(tmp_path.glob(".targets-*"))  # the working folder was moved, not copied
    model, _, _ = load_native(path)
    stored = teacher_targets(model, path, samples, "cpu")
    assert isinstance(stored, MappedTargets) and isinstance(stored["f_t_conv"], np.memmap)
    fresh = compute_targets(model, samples, "cpu")
    for key in ("f_t_conv", "f_t"):
        assert torch.allclose(torch.from_numpy(np.array(stored[key])), fresh[key], atol=1e-5)
        assert torch.equal(
            target_rows(stored, key, [4, 1, 3]), target_rows({key: torch.from_numpy(np.array(stored[key]))}, key, [4, 1, 3])
        )
    (folder / "meta.json").write_text("{damaged")
    again = teacher_targets(model, path, samples, "cpu")  # a damaged cache is recomputed and rewritten
    assert json.loads((folder / "meta.json").read_text())["keys"] and isinstance(again, MappedTargets)


def test_teacher_targets_resume_after_a_kill_and_file_samples_are_keyed_without_reading_frames(tmp_path, monkeypatch):
    """A run killed while computing the students' targets resumes where the flushed part ends
    (no sample is computed twice, the arrays equal an uninterrupted run's); samples of dataset
    files are told apart by the file's checksum and the row, so finding the cache reads no frame."""
    import h5py
    from caption_helpers import tiny_config

    from snapcap.caption.train import (
        CaptionTrainConfig,
        MappedTargets,
        compute_targets,
        load_native,
        sample_keys,
        teacher_targets,
        train_teacher,
    )
    from snapcap.datasets.samples import Limited
    from snapcap.datasets.torch_data import MeasurementDataset

    data = make_h5(tmp_path / "data.h5", count=9, B=2, T=2)
    samples = MeasurementDataset(data, split="train")
    count = len(samples)
    assert count >= 5
    training = CaptionTrainConfig(epochs=1, head_epochs=1, batch_size=4)
    path = train_teacher(samples, tmp_path / "teacher", tiny_config(B=2, T=2), training, progress=False)
    model, _, _ = load_native(path)
    keys = sample_keys(samples)
    with h5py.File(data) as handle:
        stamp = handle.attrs["metadata_sha256"]
    assert keys[0][2] == (stamp.decode() if isinstance(stamp, bytes) else stamp) and len(keys) == count
    assert sample_keys(Limited(samples, 2)) == keys[:2]

    reads = {"count": 0, "die_after": None}
    read = MeasurementDataset.__getitem__

    def counted(self, position):
        if reads["die_after"] is not None and reads["count"] >= reads["die_after"]:
            raise KeyboardInterrupt("killed")
        reads["count"] += 1
        return read(self, position)

    monkeypatch.setattr(MeasurementDataset, "__getitem__", counted)
    final = path.with_name("teacher.targets")
    partial = path.with_name("teacher.targets.partial")
    shutil.rmtree(final, ignore_errors=True)
    reads["die_after"] = 3
    with pytest.raises(KeyboardInterrupt):
        teacher_targets(model, path, samples, "cpu", chunk=2)
    done = json.loads((partial / "done.json").read_text())
    assert (done["count"], done["done"]) == (count, 2) and not final.exists()
    reads.update(count=0, die_after=None)
    resumed = teacher_targets(model, path, samples, "cpu", chunk=2)
    assert reads["count"] == count - 2  # the flushed chunk's two samples were not computed again
    assert isinstance(resumed, MappedTargets) and final.is_dir() and not partial.exists()
    fresh = compute_targets(model, [read(samples, i) for i in range(count)], "cpu")
    for key in ("f_t_conv", "f_t"):
        np.testing.assert_allclose(np.array(resumed[key]), fresh[key].numpy(), atol=1e-5)
    reads["count"] = 0
    assert isinstance(teacher_targets(model, path, samples, "cpu"), MappedTargets)
    assert reads["count"] == 0  # found in the cache without reading a frame


def test_streamed_training_equals_training_from_memory(tmp_path):
    """A lazily read HDF5 split through DataLoader workers trains exactly as the same samples in a list."""
    from caption_helpers import tiny_config

    from snapcap.caption.train import CaptionTrainConfig, stack_rows, train_student, train_teacher
    from snapcap.datasets.feed import BatchFeed
    from snapcap.datasets.torch_data import MeasurementDataset

    path = make_h5(tmp_path / "data.h5", count=10, B=2, T=2)
    lazy = MeasurementDataset(path, split="train")
    listed = [lazy[i] for i in range(len(lazy))]
    config = tiny_config(B=2, T=2)
    states = []
    for name, samples, workers in (("memory", listed, 0), ("streamed", lazy, 2)):
        training = CaptionTrainConfig(epochs=2, head_epochs=1, stage1_epochs=1, batch_size=3, workers=workers)
        teacher = train_teacher(samples, tmp_path / name, config, training, progress=False)
        student = train_student(samples, teacher, tmp_path / name, "snapcap", training, progress=False)
        states.append([torch.load(p, weights_only=False)["state"] for p in (teacher, student)])
    for memory, streamed in zip(*states):
        assert memory.keys() == streamed.keys()
        assert all(torch.equal(memory[k], streamed[k]) for k in memory)
    feed = BatchFeed(lazy, workers=1)
    steps = list(feed.steps([[0, 2], [1]]))
    assert [s.tolist() for s in steps] == [[0, 2], [1]] and feed._rows == {}  # nothing held after the epoch
    for workers in (0, 1):  # a step's frames are held as the file's bytes, widened when stacked, exactly
        feed = BatchFeed(lazy, workers=workers)
        for batch in feed.steps([[0, 2]]):
            assert feed[0]["frames"].dtype == torch.uint8
            stacked = stack_rows(feed, batch, "frames", "cpu")
            assert stacked.dtype == torch.float32 and torch.equal(stacked, torch.stack([lazy[0]["frames"], lazy[2]["frames"]]))


@contextlib.contextmanager
def linear_output_dtypes():
    """The dtypes of every nn.Linear output computed inside the block."""
    seen: set = set()

    def hook(module, inputs, output):
        if isinstance(module, torch.nn.Linear) and isinstance(output, torch.Tensor):
            seen.add(output.dtype)

    handle = torch.nn.modules.module.register_module_forward_hook(hook)
    try:
        yield seen
    finally:
        handle.remove()


def test_mixed_precision_training_runs_and_keeps_float32_weights(tmp_path):
    from caption_helpers import tiny_config, tiny_samples

    from snapcap.caption.train import CaptionTrainConfig, train_student, train_teacher

    samples = tiny_samples(4, B=2, T=2)
    training = CaptionTrainConfig(epochs=1, head_epochs=1, stage1_epochs=1, batch_size=2, amp=True)
    with linear_output_dtypes() as seen:
        teacher = train_teacher(samples, tmp_path, tiny_config(), training, progress=False)
        student = train_student(samples, teacher, tmp_path, "snapcap", training, progress=False)
    assert torch.bfloat16 in seen  # the steps ran under bf16 autocast
    with linear_output_dtypes() as seen:
        train_teacher(samples, tmp_path / "fp32", tiny_config(), replace(training, amp=False), progress=False)
    assert torch.bfloat16 not in seen
    for path in (teacher, student):
        state = torch.load(path, weights_only=False)
        assert all(h["loss"] == h["loss"] for h in state["history"])  # finite, not NaN
        assert {v.dtype for v in state["state"].values() if v.is_floating_point()} == {torch.float32}
    with pytest.raises(ConfigError, match="amp"):
        CaptionTrainConfig(amp="yes")


def test_two_stage_builds_the_operator_of_shared_masks_once():
    """Captioning a test split video by video reuses the operator (and its masks on the device)
    while the masks stay the same; other masks or another Bayer pattern get their own."""
    from snapcap.cacti.masks import random_binary
    from snapcap.caption.models import TwoStageCaptioner

    two = TwoStageCaptioner(None, "gap-tv")
    masks = torch.from_numpy(random_binary(4, 8, 8, seed=0))
    first = two.operator(masks)
    assert two.operator(masks.clone()) is first
    assert two.operator(masks.numpy()) is not first  # another backend: rebuilt
    other = torch.from_numpy(random_binary(4, 8, 8, seed=1))
    assert two.operator(other) is not first and two.operator(other).B == 4
    two.bayer = "RGGB"
    assert two.operator(other).bayer == "RGGB"
