"""Captioner presets: one JSON file each (snapcap/caption/presets/), the same models for `train` and `compare`."""

from __future__ import annotations

import json
from dataclasses import fields, replace
from pathlib import Path

import pytest
from caption_helpers import tiny_samples

from snapcap.caption import native
from snapcap.caption.decoder import DECODER_PRESETS
from snapcap.caption.models import CaptionerConfig
from snapcap.caption.presets import (
    CAPTIONER_PRESETS,
    PRESET_DIR,
    captioner_preset,
    preset_decoder,
    preset_names,
    preset_notes,
    training_preset,
)
from snapcap.caption.teacher import teacher_image_size
from snapcap.caption.train import CaptionTrainConfig, adapt_teacher, atomic_save, load_checkpoint, train_teacher
from snapcap.cli.main import build_parser
from snapcap.cli.train import captioner_options
from snapcap.compare.config import COMPARE_PRESETS, CompareConfig
from snapcap.compare.run import Comparison
from snapcap.errors import ConfigError

PACKAGE = Path(native.__file__).resolve().parents[1]


def test_every_preset_is_one_json_file_of_known_fields():
    assert set(preset_names()) >= {"tiny", "small", "paper", "paper-smoke"} and preset_names()[0] == "tiny"
    assert sorted(path.stem for path in PRESET_DIR.glob("*.json")) == sorted(preset_names())
    captioner_fields = {f.name for f in fields(CaptionerConfig)}
    training_fields = {f.name for f in fields(CaptionTrainConfig)}
    for name in preset_names():
        data = json.loads((PRESET_DIR / f"{name}.json").read_text())
        assert {"captioner", "training", "notes"} <= set(data)
        assert set(data["captioner"]) <= captioner_fields | {"native_decoder"}
        assert data["captioner"]["native_decoder"] in DECODER_PRESETS
        assert set(data["training"]) <= training_fields
        for key in preset_notes(name):
            section, _, field = key.partition(".")
            assert field.split(".")[0] in data[section], f"{name}: note {key} is about no field of the preset"
        assert CAPTIONER_PRESETS[name] == captioner_preset(name)
        assert training_preset(name) == CaptionTrainConfig(**data["training"])
    assert training_preset("paper") == training_preset("small") == CaptionTrainConfig()  # the paper's recipe
    assert preset_decoder("paper") == "lm:gpt2-medium" and preset_decoder("tiny") == "native"
    # package data: installed with snapcap as the tower's weights are
    setup = (PACKAGE.parent / "setup.cfg").read_text()
    assert "presets/*.json" in setup.split("[options.package_data]")[1].split("[")[0]


def test_unknown_presets_and_fields_are_refused():
    with pytest.raises(ConfigError, match="tiny"):
        captioner_preset("huge")
    with pytest.raises(ConfigError, match="tiny"):
        training_preset("huge")
    with pytest.raises(ConfigError):
        training_preset("tiny", no_such_field=1)
    assert training_preset("tiny", epochs=3).epochs == 3


def test_tiny_is_the_demo_recipe():
    """What `snapcap compare --preset tiny` (`make demo`) trained before the presets were files."""
    tiny = training_preset("tiny")
    expected = {
        "lr": 3e-3,
        "head_epochs": 20,
        "teacher_epochs": 0,
        "stage1_epochs": 2,
        "epochs": 6,
        "alpha": 1.0,
        "beta": 0.1,
        "shortcut_init": "teacher",
        "batch_size": 16,
        "match_epochs": True,
        "lr_encoder": 1e-3,
        "lr_conv2": 1e-3,
        "lr_tail": 1e-4,
        "lr_proj": 1e-3,
        "warmup_epochs": 1,
        "checkpoint_every": 1000,
        "bow_weight": 0.0,
        "weight_decay": 1e-4,
    }
    assert {key: getattr(tiny, key) for key in expected} == expected
    config = captioner_preset("tiny")
    assert (config.teacher, config.pretrained, config.train_encoder) == ("snapcap-tiny-vit", "procedural", False)
    assert (config.B, config.T) == (8, 4)
    assert config.student == {
        "image_size": 64,
        "widths": [16, 24, 32, 48],
        "blocks": [1, 1, 1, 1],
        "unshuffle": 4,
        "shortcut": True,
    }
    assert config.decoder == {"width": 64, "layers": 2, "heads": 4, "max_prefix": 16}
    # every comment the tuned recipe had is kept beside its value
    notes = preset_notes("tiny")
    assert {f"training.{key}" for key in expected} <= set(notes)
    assert {"captioner.T", "captioner.student.unshuffle", "captioner.student.shortcut", "captioner.pretrained"} <= set(notes)


def _cli_options(argv: list[str]) -> dict:
    return captioner_options(build_parser().parse_args(argv))


def _comparison(name: str, B: int, T: int, tmp_path: Path) -> Comparison:
    """The comparison of captioner ``name``: its compare preset when there is one, else a plain one."""
    config = COMPARE_PRESETS.get(name) or CompareConfig(
        captioner=name, T=T, size=teacher_image_size(captioner_preset(name).teacher)
    )
    assert config.captioner == name
    return Comparison(config.with_overrides(B=(B,), T=T, device="cpu"), tmp_path / "cache", progress=False, quiet=True)


@pytest.mark.parametrize("name", preset_names())
def test_train_and_compare_build_the_same_models(name, tmp_path):
    out = tmp_path / "run"
    options = _cli_options(["train", "teacher", "--preset", name, "--out", str(out)])
    B, T, image = native.teacher_data_defaults(options)
    compare_T = COMPARE_PRESETS[name].T if name in COMPARE_PRESETS else T
    assert T == compare_T  # the preset's T is the comparison's
    for data_B in {B, 4}:
        cli = dict(options, B=data_B, T=T, size=[image, image])  # as run_captioner passes them after reading the data
        comparison = _comparison(name, data_B, T, tmp_path)
        teacher = native.teacher_captioner_config(cli)
        assert teacher == comparison.captioner_config(data_B)
        assert (teacher.B, teacher.T) == (data_B, T)
        training = native.training_config(cli)
        assert training == comparison.training() == training_preset(name)

    # the students take their teacher's preset: recorded in teacher.pt
    out.mkdir()
    atomic_save(out / "teacher.pt", {"kind": "snapcap-captioner", "name": "teacher", "config": teacher.to_dict(), "preset": name})
    for student in ("snapcap", "baseline", "snapcap-reg-only", "snapcap-dis-only"):
        student_options = _cli_options(["train", student, "--out", str(out)])
        assert native.teacher_preset(out / "teacher.pt") == name
        assert native.student_training_config(student_options) == comparison.training()


def test_options_given_on_the_command_line_win(tmp_path):
    options = _cli_options(
        [
            "train",
            "teacher",
            "--preset",
            "tiny",
            "--epochs",
            "3",
            "--lr",
            "1e-2",
            "--checkpoint-every",
            "7",
            "--out",
            str(tmp_path),
        ]
    )
    training = native.training_config(options)
    assert (training.epochs, training.lr, training.lr_encoder, training.lr_proj) == (3, 1e-2, 1e-2, 1e-2)
    assert training.checkpoint_every == 7
    assert training.head_epochs == 20 and training.lr_tail == 1e-4  # the rest: the preset's
    assert native.teacher_captioner_config(dict(options, T=None)).T == 4


def test_a_teacher_without_a_recorded_preset(tmp_path):
    """Older checkpoints: ``tiny`` when their architecture is the tiny preset's, else the paper's defaults."""
    tiny, other = tmp_path / "tiny.pt", tmp_path / "other.pt"
    atomic_save(tiny, {"kind": "snapcap-captioner", "name": "teacher", "config": captioner_preset("tiny", B=4).to_dict()})
    old = replace(captioner_preset("tiny"), T=8, student={"image_size": 64, "widths": [16, 24, 32, 48], "blocks": [1, 1, 1, 1]})
    atomic_save(other, {"kind": "snapcap-captioner", "name": "teacher", "config": old.to_dict()})
    assert native.teacher_preset(tiny) == "tiny"
    assert native.student_training_config({"teacher": tiny}) == training_preset("tiny")
    assert native.teacher_preset(other) is None
    assert native.student_training_config({"teacher": other}) == CaptionTrainConfig()


def test_teacher_checkpoints_record_their_preset(tmp_path):
    samples = tiny_samples(4, B=2, T=2)
    training = training_preset("tiny", head_epochs=1, batch_size=4)
    config = captioner_preset("tiny", B=2, T=2)
    path = train_teacher(samples, tmp_path / "teacher", config, training, progress=False, preset="tiny")
    assert load_checkpoint(path)["preset"] == "tiny"
    adapted = adapt_teacher(tiny_samples(4, B=4, T=2), path, tmp_path / "adapted", training, head_epochs=1, progress=False)
    assert load_checkpoint(adapted)["preset"] == "tiny"
    assert native.teacher_preset(adapted) == "tiny"


def test_no_second_copy_of_the_presets_in_the_code():
    names = ("TINY_CAPTIONER", "TINY_TRAINING", "STUDENT_PRESETS", "NATIVE_DECODERS")
    offenders = [
        f"{path.relative_to(PACKAGE.parent)}: {name}"
        for path in sorted(PACKAGE.rglob("*.py"))
        for name in names
        if name in path.read_text(encoding="utf-8")
    ]
    assert not offenders, offenders
