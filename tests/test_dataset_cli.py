"""`snapcap dataset ...` end to end on small corpora."""

from __future__ import annotations

import json

import numpy as np
import pytest

from snapcap.cli import main
from snapcap.datasets.h5 import dataset_info


def test_synthetic_make_info_verify(tmp_path, capsys):
    out = tmp_path / "synth.h5"
    assert (
        main(
            [
                "dataset",
                "make",
                "--corpus",
                "synthetic",
                "--num-videos",
                "6",
                "--B",
                "4",
                "--T",
                "2",
                "--size",
                "32",
                "--noise",
                "poisson:photons=500",
                "-o",
                str(out),
            ]
        )
        == 0
    )
    info = dataset_info(out)
    assert info["num_samples"] == 6 and info["corpus"]["name"] == "synthetic"
    assert info["datasets"]["frames"]["shape"] == [6, 2, 4, 32, 32, 3]
    capsys.readouterr()
    assert main(["dataset", "info", str(out)]) == 0
    text = capsys.readouterr().out
    assert "num_samples: 6" in text and "meas: (6, 2, 32, 32) float32" in text
    assert main(["dataset", "verify", str(out), "--resimulate", "3"]) == 0
    assert ": OK;" in capsys.readouterr().out
    assert main(["dataset", "info", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["B"] == 4


def test_sharded_cli_run_and_merge(tmp_path, capsys):
    base = ["dataset", "make", "--corpus", "synthetic", "--num-videos", "5", "--B", "4", "--T", "1", "--size", "24", "--gray"]
    for shard in range(2):
        assert main(base + ["--shard", str(shard), "--num-shards", "2", "-o", str(tmp_path / "s.h5")]) == 0
    shards = sorted(tmp_path.glob("s.shard-*-of-002.h5"))
    assert len(shards) == 2
    assert main(["dataset", "merge", *map(str, shards), "-o", str(tmp_path / "s.h5")]) == 0
    assert dataset_info(tmp_path / "s.h5")["num_samples"] == 5
    assert main(base + ["-o", str(tmp_path / "single.h5")]) == 0
    import h5py

    with h5py.File(tmp_path / "s.h5") as merged, h5py.File(tmp_path / "single.h5") as single:
        np.testing.assert_array_equal(merged["meas"][()], single["meas"][()])


def test_folder_corpus_with_a_corrupt_video(tmp_path, capsys):
    cv2 = pytest.importorskip("cv2")
    videos = tmp_path / "videos"
    videos.mkdir()
    for name in ("a", "b"):
        writer = cv2.VideoWriter(str(videos / f"{name}.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10, (40, 32))
        for t in range(20):
            writer.write(np.full((32, 40, 3), 10 * t, np.uint8))
        writer.release()
    (videos / "broken.avi").write_bytes(b"\x00garbage" * 50)
    captions = tmp_path / "captions.csv"
    captions.write_text("video_id,caption,split\na,a bright fade,train\nb,another fade,test\nbroken,never decoded,train\n")
    out = tmp_path / "folder.h5"
    assert (
        main(
            [
                "dataset",
                "make",
                "--corpus",
                "folder",
                "--root",
                str(videos),
                "--captions",
                str(captions),
                "--B",
                "4",
                "--T",
                "2",
                "--size",
                "16",
                "-o",
                str(out),
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "1 video(s) skipped" in printed and "broken" in printed
    info = dataset_info(out)
    assert info["num_samples"] == 2 and info["skipped"][0]["video_id"] == "broken"
    assert info["split_counts"] == {"test": 1, "train": 1}


def test_bad_annotations_are_reported(tmp_path, capsys):
    root = tmp_path / "msrvtt"
    root.mkdir()
    (root / "videodatainfo.json").write_text(
        '{"videos": [{"video_id": "video0", "split": "train"}], "sentences": [{"video_id": "video9", "caption": "x"}]}'
    )
    assert main(["dataset", "make", "--corpus", "msrvtt", "--root", str(root), "-o", str(tmp_path / "x.h5")]) == 2
    err = capsys.readouterr().err
    assert "videodatainfo.json" in err and "video9" in err
    assert main(["dataset", "make", "--corpus", "msvd", "-o", str(tmp_path / "x.h5")]) == 2
    assert "--root" in capsys.readouterr().err
