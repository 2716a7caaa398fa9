"""snapcap compare: the main job end to end on a micro configuration, caching, resumption,
reports, and real captures (emulated layouts and the real Qiao et al. measurements)."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from helpers import data_path

from snapcap.cli import main
from snapcap.compare import CompareConfig, compare_preset, content_hash, run_compare
from snapcap.compare.report import findings, report_markdown
from snapcap.datasets.synthetic.readback import FACT_TYPES
from snapcap.errors import ConfigError, SnapcapError

PIPELINES = ["teacher", "snapcap", "baseline", "two-stage:gap-tv"]


@pytest.fixture(scope="module")
def micro(tmp_path_factory):
    """One micro comparison (B = 4 and 10) shared by the tests below."""
    out = tmp_path_factory.mktemp("compare") / "out"
    began = time.perf_counter()
    code = main(["compare", "--preset", "micro", "--B", "4", "10", "-o", str(out), "--no-progress", "--quiet"])
    return {"out": out, "code": code, "seconds": time.perf_counter() - began}


def test_micro_compare_writes_a_well_formed_report(micro):
    out = micro["out"]
    assert micro["code"] == 0
    results = json.loads((out / "results.json").read_text())
    rows = results["rows"]
    assert sorted((row["B"], row["pipeline"]) for row in rows) == sorted((b, p) for b in (4, 10) for p in PIPELINES)
    for row in rows:
        assert set(row["scores"]) >= {"BLEU-4", "ROUGE-L", "CIDEr"}
        assert all(value is None or 0 <= value <= 1000 for value in row["scores"].values())
        assert row["videos"] >= 2 and len(row["predictions"]) == row["videos"]
        assert row["total_ms"] > 0 and row["caption_ms"] >= 0
        assert row["peak_rss_mb"] and row["peak_rss_mb"] > 10
        if row["pipeline"].startswith("two-stage:"):
            assert row["recon_ms"] > 0 and 5 < row["psnr"] < 60 and 0 < row["ssim"] <= 1
        else:
            assert row["recon_ms"] is None and row["psnr"] is None
    # the teacher tower trains once (at B = 4 here) and is adapted to every B, its own included
    stages = {(stage["stage"], stage["B"]): stage for stage in results["stages"]}
    assert ("teacher", 4) in stages and ("teacher (adapted)", 4) in stages and ("teacher (adapted)", 10) in stages
    assert ("teacher", 10) not in stages
    assert results["config"]["teacher_B"] == 4
    # each row keeps its videos' CIDEr (their mean is the corpus CIDEr), for paired statistics
    for row in rows:
        per = row["per_video_cider"]
        assert set(per) == set(row["predictions"])
        assert np.mean(list(per.values())) == pytest.approx(row["scores"]["CIDEr"], abs=1e-6)
    with open(out / "results.csv", newline="") as handle:
        table = list(csv.DictReader(handle))
    assert len(table) == len(rows) and {"B", "pipeline", "CIDEr", "total_ms", "psnr"} <= set(table[0])
    report = (out / "report.md").read_text()
    assert "Table 3" in report and "Fig. 6" in report and "| one-stage SnapCap |" in report
    for name in ("cider_vs_B.png", "latency_memory.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    montages = sorted(out.glob("montage_*.png"))
    assert len(montages) == 2 and all(path.stat().st_size > 5000 for path in montages)
    assert len(results["montage_captions"]) == 2 and set(results["montage_captions"][0]["captions"]) == set(PIPELINES)
    # temporal facts read back from every row's captions (the procedural corpus knows them)
    for row in rows:
        assert set(row["facts"]) == set(FACT_TYPES) and row["facts"]["shape"]["videos"] == row["videos"]
        assert all(0 <= entry["stated"] <= 100 for entry in row["facts"].values())
    assert results["reference_facts"]["direction"]["accuracy"] == 100.0
    assert "## Temporal facts read back from the captions (B = 4)" in report and "Direction of motion" in report
    assert "One-stage rows: SnapCap and its baseline are the same network" in report
    # nothing half-written is left beside the report
    assert not [p for p in out.rglob("*.tmp*")]


def test_seeds_train_every_model_again_and_report_mean_and_spread(micro, tmp_path):
    config = compare_preset("micro", B=(4,), seeds=2, recon=(), students=("snapcap",))
    results = run_compare(config, tmp_path / "seeds", cache=micro["out"] / "cache", progress=False, quiet=True)
    fresh = {stage["stage"] for stage in results["stages"] if stage["status"] != "reused" and stage["stage"] != "dataset"}
    assert fresh == {"teacher", "teacher (adapted)", "snapcap", "row teacher", "row snapcap"}  # seed 1's
    assert results["seeds"] == [0, 1] and len(results["seed_rows"]) == 2 * len(results["rows"]) == 4
    for row in results["rows"]:
        each = [r for r in results["seed_rows"] if r["pipeline"] == row["pipeline"]]
        cider = [r["scores"]["CIDEr"] for r in each]
        assert row["seeds"] == [0, 1] and row["seed_scores"]["CIDEr"] == cider
        assert row["scores"]["CIDEr"] == pytest.approx(np.mean(cider))
        assert np.mean(list(row["per_video_cider"].values())) == pytest.approx(row["scores"]["CIDEr"], abs=1e-6)
        assert len(row["seed_facts"]["direction"]) == 2
    report = (tmp_path / "seeds" / "report.md").read_text()
    assert "trained with 2 seeds (0, 1)" in report and " ± " in report
    with pytest.raises(ConfigError, match="--seeds"):
        compare_preset("micro", seeds=0)


def test_rerun_reuses_the_cache_and_one_more_B_does_only_the_new_work(micro, tmp_path):
    out = micro["out"]
    before = json.loads((out / "results.json").read_text())
    again = run_compare(compare_preset("micro", B=(4, 10)), out, progress=False, quiet=True)
    assert all(stage["status"] == "reused" for stage in again["stages"]), [s for s in again["stages"] if s["status"] != "reused"]
    assert {(r["B"], r["pipeline"]): r["predictions"] for r in again["rows"]} == {
        (r["B"], r["pipeline"]): r["predictions"] for r in before["rows"]
    }
    # one more B into another report folder sharing the cache: only B = 2 is new work
    more = run_compare(compare_preset("micro", B=(2, 4, 10)), tmp_path / "more", cache=out / "cache", progress=False, quiet=True)
    fresh = {(stage["stage"], stage["B"]) for stage in more["stages"] if stage["status"] != "reused"}
    assert fresh and all(b == 2 for _, b in fresh), fresh
    assert sorted({row["B"] for row in more["rows"]}) == [2, 4, 10]


def test_a_killed_run_resumes(tmp_path):
    out = tmp_path / "killed"
    command = [
        sys.executable,
        "-m",
        "snapcap",
        "compare",
        "--preset",
        "micro",
        "--B",
        "4",
        "-o",
        str(out),
        "--no-progress",
        "--quiet",
    ]
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE")
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 120
    try:
        while time.time() < deadline and process.poll() is None:
            if list((out / "cache" / "models").glob("snapcap-*/snapcap-stage1.ckpt")) or list(
                (out / "cache" / "models").glob("snapcap-*/snapcap.pt")
            ):
                break
            time.sleep(0.05)
        assert process.poll() is None, "the run finished before it could be killed"
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert not (out / "results.json").exists()
    results = run_compare(compare_preset("micro", B=(4,)), out, progress=False, quiet=True)
    status = {stage["stage"]: stage["status"] for stage in results["stages"]}
    assert status["dataset"] == "reused" and status["teacher"] == "reused"
    assert len(results["rows"]) == 4 and (out / "report.md").is_file()


def test_content_hash_is_stable_and_order_free():
    assert content_hash({"a": 1, "b": [1, 2]}) == content_hash({"b": [1, 2], "a": 1})
    assert content_hash({"a": 1}) != content_hash({"a": 2})


@pytest.mark.parametrize(
    "overrides, match",
    [
        ({"B": (4, 4)}, "listed twice"),
        ({"B": (0, 4)}, "must be >= 1"),
        ({"recon": ("magic",)}, "unknown method"),
        ({"students": ("teacher",)}, "unknown"),
        ({"training": {"epochz": 3}}, "unknown field"),
        ({"T": 0}, "--T"),
    ],
)
def test_bad_configurations_are_refused(overrides, match):
    with pytest.raises(ConfigError, match=match):
        CompareConfig(**overrides)


def test_cli_errors_name_the_argument(tmp_path, capsys):
    assert main(["compare", "--preset", "micro", "--mask", "my_mask.mat", "-o", str(tmp_path / "x")]) == 2
    assert "--capture" in capsys.readouterr().err
    assert main(["compare", "--preset", "micro", "--size", "48", "-o", str(tmp_path / "y"), "--quiet", "--no-progress"]) == 2
    assert "--size 64" in capsys.readouterr().err
    assert (
        main(["compare", "--preset", "micro", "--recon", "pnp-ffdnet", "-o", str(tmp_path / "z"), "--quiet", "--no-progress"])
        == 2
    )
    assert "weights=PATH" in capsys.readouterr().err
    assert main(["compare", "--capture", str(tmp_path / "none.mat"), "-o", str(tmp_path / "w")]) == 2
    assert "--checkpoints" in capsys.readouterr().err


def _results(
    cider: dict[str, dict[int, float]], total: dict[str, float], per_video: dict[str, dict[int, list[float]]] | None = None
) -> dict:
    rows = []
    for pipeline, values in cider.items():
        for B, value in values.items():
            row = {
                "pipeline": pipeline,
                "label": pipeline,
                "B": B,
                "scores": {"CIDEr": value},
                "total_ms": total[pipeline],
                "videos": 10,
            }
            if per_video is not None:
                row["per_video_cider"] = {f"v{i}": score for i, score in enumerate(per_video[pipeline][B])}
                row["scores"]["CIDEr"] = float(np.mean(per_video[pipeline][B]))
            rows.append(row)
    config = dict(
        CompareConfig(B=tuple(sorted({b for values in cider.values() for b in values}))).to_dict(),
        reference_B=2,
        pipelines=PIPELINES,
    )
    return {"config": config, "rows": rows, "wall_s": 1.0}


def _per_video(
    means: dict[str, dict[int, float]], spread: float, videos: int = 60, seed: int = 0
) -> dict[str, dict[int, list[float]]]:
    """Per-video CIDEr around the given means: a per-video difficulty shared by every row plus
    independent noise of ``spread``."""
    rng = np.random.default_rng(seed)
    difficulty = rng.normal(0, 20, videos)
    return {
        name: {b: list(mean + difficulty + rng.normal(0, spread, videos)) for b, mean in values.items()}
        for name, values in means.items()
    }


def test_findings_state_the_papers_claims_with_their_noise():
    total = {"teacher": 5.0, "snapcap": 10.0, "baseline": 10.0, "two-stage:gap-tv": 60.0}
    means = {
        "teacher": {2: 60, 8: 60, 16: 60},
        "snapcap": {2: 55, 8: 54, 16: 53},
        "baseline": {2: 30, 8: 25, 16: 20},
        "two-stage:gap-tv": {2: 55, 8: 45, 16: 35},
    }
    clear = _results(means, total, _per_video(means, spread=2.0))
    lines = findings(clear)
    assert any(
        line.startswith("SnapCap degrades least as B grows, as the paper claims") and "beyond the test-set noise" in line
        for line in lines
    ), lines
    assert any("on the same 60 test videos" in line and "per doubling" in line for line in lines)
    assert any(line.startswith("CIDEr against the traditional pipeline") for line in lines)
    assert any("6.0x" in line for line in lines)
    # the same means, but noisy videos: the difference is not claimed
    noisy = _results(means, total, _per_video(means, spread=200.0))
    assert any(
        line.startswith("The paper's claim that SnapCap degrades least as B grows is not shown")
        and "within the test-set noise" in line
        for line in findings(noisy)
    )
    # SnapCap degrading more than two-stage is said so
    worse = {**means, "snapcap": {2: 55, 8: 40, 16: 25}}
    assert any(
        "not shown" in line and "SnapCap degrades more" in line
        for line in findings(_results(worse, total, _per_video(worse, spread=2.0)))
    )
    # rows without per-video scores (an older cache): the ends of the curve, and the caveat
    old = _results(
        {
            "teacher": {2: 60, 16: 58},
            "snapcap": {2: 55, 16: 50},
            "baseline": {2: 30, 16: 20},
            "two-stage:gap-tv": {2: 50, 16: 30},
        },
        total,
    )
    lines = findings(old)
    assert any(
        "SnapCap degrades less than the two-stage pipelines" in line and "CIDEr change -5.0" in line and "noise" in line
        for line in lines
    )
    text = report_markdown(old)
    assert "| snapcap | 55.0 | 50.0 |" in text


# --- real captures ------------------------------------------------------------------------------


def test_compare_on_emulated_captures_in_real_layouts(micro, tmp_path):
    from snapcap.datasets.synthetic import demo_video
    from snapcap.hardware import Rig, write_capture

    checkpoints = micro["out"]
    gray = Rig(H=96, W=96, B=10, noise="gaussian:sigma=0.002")
    video = (demo_video(20, 96, 96, rgb=False) * 0.6).astype(np.float32)
    written = write_capture(tmp_path / "meas_scene.mat", gray, gray.capture(video, seed=1), "qiao2020-dmd")
    out = tmp_path / "qiao"
    assert (
        main(
            [
                "compare",
                "--capture",
                str(written.path),
                "--mask-file",
                str(written.mask_path),
                "--checkpoints",
                str(checkpoints),
                "-o",
                str(out),
                "--no-progress",
            ]
        )
        == 0
    )
    results = json.loads((out / "results.json").read_text())
    assert results["layout"] == "qiao2020-dmd" and results["B"] == 10
    assert [row["pipeline"] for row in results["rows"]] == ["snapcap", "baseline", "two-stage:gap-tv"]
    assert all(row["predictions"] and row["total_ms"] > 0 for row in results["rows"])
    assert any("cropped from 96x96" in note for note in results["notes"])
    assert (out / "capture_montage.png").stat().st_size > 3000 and "No reference captions" in (out / "report.md").read_text()
    # a Bayer capture (Hammer layout, masks inside), at the models' size
    color = Rig(H=64, W=64, B=10, bayer="RGGB")
    rgb = (demo_video(20, 64, 64, rgb=True) * 0.4).astype(np.float32)
    hammer = write_capture(tmp_path / "hammer_cacti.mat", color, color.capture(rgb), "bayer-real")
    out2 = tmp_path / "hammer"
    assert (
        main(["compare", "--capture", str(hammer.path), "--checkpoints", str(checkpoints), "-o", str(out2), "--no-progress"]) == 0
    )
    assert json.loads((out2 / "results.json").read_text())["bayer"] == "RGGB"
    # refusing to crop says why
    assert (
        main(
            [
                "compare",
                "--capture",
                str(written.path),
                "--mask-file",
                str(written.mask_path),
                "--checkpoints",
                str(checkpoints),
                "--crop",
                "none",
                "-o",
                str(tmp_path / "no"),
            ]
        )
        == 2
    )


def test_compare_on_a_real_qiao2020_capture_with_emulated_masks(micro, tmp_path):
    from snapcap.hardware.emulate import write_mask_file

    capture = data_path("real_qiao2020/cr10/meas_duomino_cr_10.mat")
    from snapcap.hardware import load_capture

    probe = load_capture(capture, require_mask=False)
    height, width = probe.frame_shape[:2]
    masks = (np.random.default_rng(0).random((10, height, width)) < 0.5).astype(np.float32)
    mask_file = write_mask_file(tmp_path / "emulated_mask.mat", masks)
    out = tmp_path / "duomino"
    assert (
        main(
            [
                "compare",
                "--capture",
                str(capture),
                "--mask-file",
                str(mask_file),
                "--checkpoints",
                str(micro["out"]),
                "-o",
                str(out),
                "--no-progress",
            ]
        )
        == 0
    )
    results = json.loads((out / "results.json").read_text())
    assert results["layout"] == "qiao2020-dmd" and results["B"] == 10 and results["snapshots"] == probe.num_snapshots
    assert all(len(row["predictions"]) >= 1 for row in results["rows"])
    # the models of a B the comparison does not have are refused with the B's it has
    with pytest.raises(SnapcapError, match="B = \\[4, 10\\]"):
        from snapcap.compare.capture import capture_checkpoints

        capture_checkpoints(micro["out"], 20)


@pytest.mark.parametrize("layout", ["qiao2020-dmd", "bayer-real", "bayer-midscale", "gray-benchmark", "raw-frame"])
def test_caption_and_reconstruct_work_on_every_capture_layout(micro, tmp_path, layout, capsys):
    """`snapcap reconstruct`, `snapcap caption` (one-stage and two-stage) on emulated captures."""
    if layout == "raw-frame":
        pytest.importorskip("rawpy")
    from snapcap.datasets.synthetic import demo_video
    from snapcap.hardware import Rig, write_capture

    color = layout.startswith("bayer") or layout == "raw-frame"
    raw = layout == "raw-frame"
    rig = Rig(H=64, W=64, B=10, bayer="RGGB" if color else None, noise="gaussian:sigma=0.002", adc_bits=12 if raw else None)
    video = (demo_video(20, 64, 64, rgb=color) * 0.5).astype(np.float32)
    meas = rig.capture(video, seed=2)
    truth = video.reshape((2, 10) + video.shape[1:])
    name = tmp_path / (f"scene_{layout.replace('-', '_')}" + (".dng" if raw else ".mat"))
    written = write_capture(name, rig, meas[:1] if raw else meas, layout, truth=truth)
    mask = ([] if written.mask_path is None else ["--mask-file", str(written.mask_path)]) + (["--B", "10"] if raw else [])
    assert (
        main(
            [
                "reconstruct",
                str(written.path),
                *mask,
                "--method",
                "gap-tv",
                "--iterations",
                "5",
                "--video",
                "none",
                "-o",
                str(tmp_path / "recon"),
            ]
        )
        == 0
    )
    assert list((tmp_path / "recon").glob("*.png"))
    rows = json.loads((micro["out"] / "results.json").read_text())["rows"]
    checkpoint = {row["pipeline"]: row["checkpoint"] for row in rows if row["B"] == 10}
    capsys.readouterr()
    assert main(["caption", str(written.path), *mask, "--model", checkpoint["snapcap"], "--json"]) == 0
    one = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert one and all(record["caption"] for record in one)
    assert (
        main(
            [
                "caption",
                str(written.path),
                *mask,
                "--model",
                checkpoint["teacher"],
                "--recon",
                "gap-tv",
                "--recon-param",
                "gap-tv:iterations=5",
                "--json",
            ]
        )
        == 0
    )
    two = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert len(two) == len(one) and all(record["recon_ms"] > 0 for record in two)


def test_zoo_captioners_are_rows_of_a_comparison(tmp_path):
    out = tmp_path / "zoo"
    argv = [
        "compare",
        "--preset",
        "micro",
        "--B",
        "4",
        "--zoo",
        "clip4caption",
        "clip4videocap",
        "vccv",
        "--zoo-epochs",
        "1",
        "-o",
        str(out),
        "--no-progress",
        "--quiet",
    ]
    assert main(argv) == 0
    results = json.loads((out / "results.json").read_text())
    rows = {row["pipeline"]: row for row in results["rows"]}
    assert {"clip4caption", "clip4videocap", "vccv"} <= set(rows)
    assert all(
        rows[name]["videos"] >= 2 and "CIDEr" in rows[name]["scores"] for name in ("clip4caption", "clip4videocap", "vccv")
    )
    assert "| clip4caption |" in (out / "report.md").read_text()
    again = run_compare(
        compare_preset("micro", B=(4,), zoo=("vccv",), zoo_options={"vccv": {"epochs": 1}}), out, progress=False, quiet=True
    )
    assert all(stage["status"] == "reused" for stage in again["stages"])
    with pytest.raises(ConfigError, match="--zoo"):
        CompareConfig(zoo=("clip5caption",))


def test_paper_preset_rows_decode_as_their_papers():
    from snapcap.compare.report import _decoding

    paper = compare_preset("paper", zoo=("clip4caption", "vccv"))
    assert paper.zoo_preset == "paper" and compare_preset("tiny").zoo_preset == "tiny"
    assert [paper.row_beam(p) for p in ("teacher", "snapcap", "clip4caption", "vccv")] == [1, 1, 1, 5]
    assert compare_preset("tiny", zoo=("vccv",)).row_beam("vccv") == 1
    assert compare_preset("paper", zoo=("vccv",), beam=3).row_beam("vccv") == 3
    rows = [{"pipeline": "teacher", "beam": 1}, {"pipeline": "vccv", "beam": 5, "preset": "paper"}]
    text = _decoding(paper.to_dict(), rows)
    assert text == "greedy decoding except vccv beam 5 (as their papers); zoo rows: vccv paper preset"
    assert _decoding(dict(paper.to_dict(), beam=1), rows[:1]) == "greedy decoding"


def test_batched_evaluation_gives_the_same_captions_and_a_separate_timed_pass(micro, tmp_path):
    import shutil

    out = tmp_path / "out"
    shutil.copytree(micro["out"], out)  # the trained models are reused; only the rows are captioned again
    argv = ["compare", "--preset", "micro", "--B", "4", "10", "-o", str(out), "--no-progress", "--quiet"]
    assert main([*argv, "--batch-size", "3", "--latency-videos", "2"]) == 0
    single = {(r["B"], r["pipeline"]): r for r in json.loads((micro["out"] / "results.json").read_text())["rows"]}
    batched = json.loads((out / "results.json").read_text())
    assert not any(stage["status"] == "trained" for stage in batched["stages"])
    for row in batched["rows"]:
        alone = single[(row["B"], row["pipeline"])]
        assert row["predictions"] == alone["predictions"], row["pipeline"]
        assert (row["batch_size"], row["latency_videos"]) == (3, 2) and alone["latency_videos"] == alone["videos"]
        if row["pipeline"].startswith("two-stage:"):
            assert row["psnr"] == pytest.approx(alone["psnr"], abs=1e-3)


def test_two_stage_rows_without_their_checkpoints_are_refused_before_any_work(tmp_path):
    """The paper preset's rows are Table 3's (BIRNAT, PnP-FFDNet, PnP-FastDVDnet, STFormer,
    EfficientSCI): each needs the user's checkpoint, asked for before hours of training."""
    from snapcap.compare.run import Comparison

    paper = compare_preset("paper")
    assert paper.recon == ("birnat", "pnp-ffdnet", "pnp-fastdvdnet", "stformer", "efficientsci")
    with pytest.raises(ConfigError) as refused:
        Comparison(paper, tmp_path / "paper").check_checkpoints()
    for method in paper.recon:
        assert f"--recon-param {method}:weights=PATH" in str(refused.value)
    micro = compare_preset("micro", recon=("gap-tv", "efficientsci"))
    with pytest.raises(ConfigError, match="efficientsci:weights=PATH"):
        Comparison(micro, tmp_path / "micro").run()
    assert not (tmp_path / "micro").exists() or not any((tmp_path / "micro").rglob("*.h5"))  # nothing simulated
    absent = compare_preset(
        "micro", recon=("efficientsci",), recon_params={"efficientsci": {"weights": str(tmp_path / "no.pth")}}
    )
    with pytest.raises(ConfigError, match="no such file"):
        Comparison(absent, tmp_path / "absent").check_checkpoints()
    from snapcap.distributed import DistributedContext

    eight = Comparison(compare_preset("micro", recon=("unfold",), unfold={"batch_size": 4}), tmp_path / "eight")
    eight.dist = DistributedContext(rank=0, world=8, active=True)  # as under torchrun with 8 processes
    with pytest.raises(ConfigError, match="unfold-batch-size >= 8"):
        eight.check_checkpoints()
    two = Comparison(compare_preset("micro", recon=("unfold",), unfold={"preset": "tiny", "steps": 4}), tmp_path / "two")
    two.dist = DistributedContext(rank=0, world=2, active=True)  # the default batch (8 patches) serves 2 processes
    two.check_checkpoints()


def test_paper_smoke_preset_has_the_paper_shapes(tmp_path):
    """The preset itself; its run is the slow test below."""
    from snapcap.compare.run import Comparison

    config = compare_preset("paper-smoke")
    assert (config.size, config.T, config.B, config.recon) == (224, 8, (8,), ("gap-tv", "unfold"))
    captioner = Comparison(config, tmp_path).captioner_config(8)
    assert (captioner.teacher, captioner.pretrained, captioner.decoder["width"]) == ("ViT-B-16", None, 1024)
    assert captioner.student["blocks"] == [4, 6, 6, 6] and captioner.student["image_size"] == 224
    assert config.unfold["preset"] == "paper"


@pytest.mark.slow
def test_paper_smoke_runs_every_code_path_of_a_paper_run(tmp_path):
    """The paper's shapes end to end on 4 procedural videos (about 5 minutes and 3 GB here):
    224x224, T = B = 8, the ViT-B/16 teacher frozen (random weights), a frozen causal LM of width
    D = 1024 as the decoder, the paper's student, the paper's unfolding net and a pretrained
    network's row (EfficientSCI's layout, random weights), a DataLoader worker feeding training,
    scores in batches of 2 with the separate batch-1 latency pass. Finished models keep their
    weights only (no resumable optimiser state)."""
    import torch
    from lm_helpers import save_tiny_lm

    from snapcap.recon.nets import create_net

    out = tmp_path / "smoke"
    lm = save_tiny_lm(tmp_path / "lm", width=1024, steps=0)  # a frozen causal LM of the paper's width D = 1024
    weights = tmp_path / "efficientsci.pth"  # a pretrained network's row (Table 3): random weights, official layout
    torch.manual_seed(0)
    torch.save({"model_state_dict": create_net("efficientsci", in_ch=8, units=1, group_num=2).state_dict()}, weights)
    try:
        command = ["compare", "--preset", "paper-smoke", "-o", str(out), "--no-progress", "--quiet"]
        command += ["--recon", "gap-tv", "unfold", "efficientsci", "--recon-param", f"efficientsci:weights={weights}"]
        command += ["--recon-param", "efficientsci:config=in_ch=8,units=1,group_num=2"]
        command += ["--workers", "1", "--batch-size", "2", "--latency-videos", "1"]  # the DataLoader feed; batched scoring
        command += ["--decoder", f"lm:{lm}"]  # the paper's decoder path: visual prefix into a frozen LM
        code = main(command)
        assert code == 0
        results = json.loads((out / "results.json").read_text())
        rows = {row["pipeline"]: row for row in results["rows"]}
        assert list(rows) == [
            "teacher",
            "snapcap",
            "baseline",
            "two-stage:gap-tv",
            "two-stage:unfold",
            "two-stage:efficientsci",
        ]
        assert all(row["B"] == 8 and row["T"] == 8 and row["videos"] == 1 for row in rows.values())
        assert all(row["batch_size"] == 2 and row["latency_videos"] == 1 for row in rows.values())
        assert results["config"]["size"] == 224 and results["config"]["student"]["token_dim"] == 1024
        assert rows["two-stage:gap-tv"]["psnr"] > 10 and rows["two-stage:unfold"]["psnr"] is not None
        assert rows["two-stage:efficientsci"]["psnr"] is not None and rows["two-stage:efficientsci"]["recon_ms"] > 0
        assert not list(out.rglob("*.ckpt")) and not list(out.rglob("checkpoint.pt"))
        assert (out / "report.md").is_file()
    finally:
        shutil.rmtree(out, ignore_errors=True)  # 3 GB: not left for pytest's kept temporary folders
