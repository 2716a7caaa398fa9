"""The tiny tower's pretraining on procedural frames (snapcap.caption.pretrain) and its shipped weights."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import snapcap.caption.pretrain as pretrain
from snapcap.caption.pretrain import PretrainConfig, pretrain_tower
from snapcap.caption.teacher import SHIPPED_WEIGHTS, WEIGHTS_DIR, ClipTeacher
from snapcap.cli import main
from snapcap.datasets.synthetic.frames import LABEL_COLORS, labelled_frames
from snapcap.datasets.synthetic.scene import COLORS, SHAPES
from snapcap.errors import ConfigError, DataFileError


def test_labelled_frames_are_deterministic_and_show_what_they_say():
    frames, labels = labelled_frames((3, 7), 24, size=48, max_objects=2)
    again, labels_again = labelled_frames((3, 7), 24, size=48, max_objects=2)
    assert np.array_equal(frames, again) and np.array_equal(labels.geometry, labels_again.geometry)
    assert frames.shape == (24, 48, 48, 3) and frames.dtype == np.float32
    assert labels.present.sum() >= 24  # at least one object in view in most frames
    for i, k in zip(*np.nonzero(labels.present)):
        y, x, five_r = labels.geometry[i, k]
        assert labels.shape[i, k] >= 0 and 0 <= y <= 1 and 0 <= x <= 1 and five_r > 0
        if SHAPES[labels.shape[i, k]] == "ring":
            continue  # hollow
        # the pixel at an in-view object's centre has (about) its colour, unless another object covers it
        pixel = frames[i, min(47, int(y * 48)), min(47, int(x * 48))]
        colour = np.asarray(COLORS[LABEL_COLORS[k]])
        others = [COLORS[LABEL_COLORS[j]] for j in np.nonzero(labels.present[i])[0] if j != k]
        assert np.abs(pixel - colour).max() < 0.35 or any(np.abs(pixel - np.asarray(o)).max() < 0.35 for o in others)
    assert (labels.shape[labels.present == 0] == -1).all() and (labels.rotates <= labels.present).all()


def test_pretraining_resumes_to_the_same_weights(tmp_path, monkeypatch):
    config = PretrainConfig(steps=6, batch_size=4, checkpoint_every=3, val_frames=8)
    scores = pretrain_tower(tmp_path / "whole.pt", config, progress=False)
    assert set(scores) == {"shape_accuracy", "colour_accuracy", "position_error"}
    recipe = json.loads((tmp_path / "whole.json").read_text())
    assert recipe["recipe"]["steps"] == 6 and recipe["held_out"]["frames"] == 8

    calls = {"n": 0}
    real = pretrain.labelled_frames

    def interrupted(seed, count, size, max_objects):
        if count == 4:
            calls["n"] += 1
            if calls["n"] == 5:  # the fifth training batch: after the checkpoint at step 3
                raise KeyboardInterrupt
        return real(seed, count, size, max_objects)

    monkeypatch.setattr(pretrain, "labelled_frames", interrupted)
    with pytest.raises(KeyboardInterrupt):
        pretrain_tower(tmp_path / "split.pt", config, progress=False)
    assert (tmp_path / "split.ckpt").is_file() and not (tmp_path / "split.pt").exists()
    monkeypatch.setattr(pretrain, "labelled_frames", real)
    pretrain_tower(tmp_path / "split.pt", config, progress=False)
    assert not (tmp_path / "split.ckpt").exists()
    whole, split = torch.load(tmp_path / "whole.pt"), torch.load(tmp_path / "split.pt")
    assert whole.keys() == split.keys() and all(torch.equal(whole[k], split[k]) for k in whole)
    # the weights load as a teacher checkpoint
    tower = ClipTeacher.create("snapcap-tiny-vit", checkpoint=tmp_path / "whole.pt")
    assert torch.equal(tower.visual.conv1.weight, whole["visual.conv1.weight"])
    # a checkpoint of other settings is refused, not half-used
    (tmp_path / "other.ckpt").write_bytes((tmp_path / "whole.pt").read_bytes())
    with pytest.raises(DataFileError, match="other.ckpt"):
        pretrain_tower(tmp_path / "other.pt", config, progress=False)
    with pytest.raises(ConfigError, match="steps"):
        PretrainConfig(steps=0)


def test_the_shipped_tower_is_the_pretrained_one():
    path = WEIGHTS_DIR / SHIPPED_WEIGHTS[("snapcap-tiny-vit", "procedural")]
    record = json.loads(path.with_suffix(".json").read_text())
    assert record["recipe"] == PretrainConfig().recipe()  # the defaults remake it
    assert PretrainConfig(device="cuda").recipe() == PretrainConfig().recipe()  # where it runs is not the recipe
    held_out = record["held_out"]
    assert held_out["shape_accuracy"] > 0.85 and held_out["colour_accuracy"] > 0.85 and held_out["position_error"] < 0.08
    tower = ClipTeacher.create("snapcap-tiny-vit", pretrained="procedural")
    assert tower.pretrained == "procedural"
    state = torch.load(path)
    assert torch.equal(tower.visual.conv1.weight, state["visual.conv1.weight"])
    scratch = ClipTeacher.create("snapcap-tiny-vit")
    assert not torch.equal(scratch.visual.conv1.weight, tower.visual.conv1.weight)


def test_train_tower_command(tmp_path, capsys):
    out = tmp_path / "tower.pt"
    assert main(["train", "tower", "--steps", "2", "--batch-size", "2", "-o", str(out)]) == 0
    assert "held-out shape accuracy" in capsys.readouterr().out
    assert out.is_file() and out.with_suffix(".json").is_file()
    with pytest.raises(SystemExit) as exit_info:  # argparse's one-line refusal
        main(["train", "tower", "--steps", "0", "-o", str(tmp_path / "x.pt")])
    assert exit_info.value.code == 2 and "--steps" in capsys.readouterr().err


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_pretraining_runs_on_cuda(tmp_path):
    config = PretrainConfig(steps=2, batch_size=2, val_frames=4, device="cuda")
    pretrain_tower(tmp_path / "cuda.pt", config, progress=False)
    state = torch.load(tmp_path / "cuda.pt")
    assert all(value.device.type == "cpu" for value in state.values())  # portable weights
