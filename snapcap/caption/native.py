"""snapcap's own captioners as registry entries: the teacher, the SnapCap student, its baseline and ablations.

The configurations are data: the preset files read by :mod:`snapcap.caption.presets`
(:func:`~snapcap.caption.presets.captioner_preset`, :func:`~snapcap.caption.presets.training_preset`);
the functions below are what :mod:`snapcap.caption.registry` calls for these names, with the same
signatures as every other registered captioner:

* ``train(samples, out, options, progress) -> Path`` (:func:`train_teacher_entry`,
  :func:`train_student_entry`): the options of ``snapcap train NAME`` (or any mapping);
* ``data_defaults(options) -> (B, T, size)``: the data to simulate when no dataset file is
  given (the teacher: its preset's; a student: its teacher's);
* ``check_data(B, T, size, options)``: refuse data the model cannot train on;
* ``load(path, device) -> (model, config, vocab)`` (:func:`snapcap.caption.train.load_native`).

Options left unset (None) take the preset's values: the teacher's ``--preset`` (default
``tiny``), a student's its teacher's (recorded in ``teacher.pt``, :func:`teacher_preset`). The
students are built on the teacher (``options["teacher"]``, default ``OUT/teacher.pt``) and
train at its B, T and image size.
"""

from __future__ import annotations

import functools
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any, Mapping

from snapcap.caption.lm import add_decoder_argument, is_lm_decoder
from snapcap.caption.models import CaptionerConfig
from snapcap.caption.presets import captioner_preset, preset_decoder, preset_names, training_preset
from snapcap.caption.teacher import teacher_image_size
from snapcap.caption.train import (
    STUDENT_MODES,
    CaptionTrainConfig,
    build_vocabulary,
    load_checkpoint,
    train_student,
    train_teacher,
)
from snapcap.datasets.samples import captions_of
from snapcap.errors import ConfigError, DataFileError, ShapeError

__all__ = [
    "STUDENT_NAMES",
    "DEFAULT_PRESET",
    "teacher_config",
    "teacher_preset",
    "teacher_captioner_config",
    "training_config",
    "student_training_config",
    "train_teacher_entry",
    "train_student_entry",
    "teacher_data_defaults",
    "student_data_defaults",
    "check_teacher_data",
    "check_student_data",
    "add_student_arguments",
    "add_teacher_arguments",
]

STUDENT_NAMES: dict[str, str] = {
    "snapcap": "snapcap",
    "baseline": "baseline",
    "snapcap-reg-only": "reg-only",
    "snapcap-dis-only": "dis-only",
    "snapcap-temporal": "snapcap-temporal",
    "baseline-temporal": "baseline-temporal",
}
"""Registry name -> student mode of :data:`snapcap.caption.train.STUDENT_MODES` (and file stem)."""

DEFAULT_PRESET = "tiny"
"""The teacher's preset when ``--preset`` is not given."""


# --- options -------------------------------------------------------------------------------------


def _get(options: Mapping[str, Any], key: str, default: Any) -> Any:
    value = options.get(key)
    return default if value is None else value


def _preset_overrides(options: Mapping[str, Any]) -> dict[str, Any]:
    overrides: dict[str, Any] = {} if options.get("decoder") is None else {"decoder": options["decoder"]}
    pretrained = options.get("pretrained")
    if pretrained is None:
        return overrides
    if str(pretrained).lower() == "none":
        return dict(overrides, pretrained=None, train_encoder=True)
    return dict(overrides, pretrained=pretrained)


def training_config(options: Mapping[str, Any]) -> CaptionTrainConfig:
    """The teacher's :class:`CaptionTrainConfig`: ``training_preset`` of the options' ``preset``
    (default :data:`DEFAULT_PRESET`) with every option that is set (not None) over it. ``lr``
    sets the rates of the teacher, the students' encoder f and their projector (``lr``,
    ``lr_encoder``, ``lr_proj``); ``amp`` turns mixed precision on. A student's:
    :func:`student_training_config`."""
    return _with_options(training_preset(str(_get(options, "preset", DEFAULT_PRESET))), options)


def _with_options(base: CaptionTrainConfig, options: Mapping[str, Any]) -> CaptionTrainConfig:
    """``base`` with the options that are set over it."""
    given: dict[str, Any] = {}
    for key, kind in (
        ("epochs", int),
        ("stage1_epochs", int),
        ("batch_size", int),
        ("warmup_epochs", int),
        ("min_count", int),
        ("seed", int),
        ("device", str),
        ("checkpoint_every", int),
        ("workers", int),
    ):
        if options.get(key) is not None:
            given[key] = kind(options[key])
    if options.get("lr") is not None:
        lr = float(options["lr"])  # CaptionTrainConfig refuses a rate that is not finite and > 0
        given.update(lr=lr, lr_encoder=lr, lr_proj=lr)
    if options.get("amp"):
        given["amp"] = True
    return replace(base, **given)


def add_student_arguments(group) -> None:
    """``snapcap train snapcap|baseline|...`` options."""
    group.add_argument("--teacher", type=Path, default=None, help="the trained teacher (default: OUT/teacher.pt)")
    group.add_argument(
        "--stage1-epochs", type=int, default=None, help="epochs of stage 1 (L_reg; default: the teacher's preset's, paper 30)"
    )


# --- the teacher ---------------------------------------------------------------------------------


def teacher_captioner_config(options: Mapping[str, Any]) -> CaptionerConfig:
    """The teacher's :class:`CaptionerConfig`: the options' ``preset`` (default
    :data:`DEFAULT_PRESET`) at their ``B`` and ``T`` (None: the preset's), with ``decoder`` and
    ``pretrained`` (``"none"``: random weights, the tower trained) over it."""
    return captioner_preset(
        str(_get(options, "preset", DEFAULT_PRESET)), B=options.get("B"), T=options.get("T"), **_preset_overrides(options)
    )


def teacher_data_defaults(options: Mapping[str, Any]) -> tuple[int, int, int]:
    """B, T and image size of the teacher preset the options name."""
    config = teacher_captioner_config(dict(options, B=None, T=None))
    return config.B, config.T, teacher_image_size(config.teacher)


def check_teacher_data(B: int, T: int, size: tuple[int, int], options: Mapping[str, Any]) -> None:
    """Data given as files must agree with an explicit ``--B``/``--T``; a size other than the tower's is noted."""
    if options.get("B") is not None and options["B"] != B or options.get("T") is not None and options["T"] != T:
        raise ConfigError(
            f"--B {options.get('B')} --T {options.get('T')} do not match the data (B={B}, T={T}); leave them out with --data"
        )
    _, _, image = teacher_data_defaults(options)
    if tuple(size) != (image, image):
        print(
            f"note: the teacher resizes {size[0]}x{size[1]} frames to its {image}x{image}; students train on snapshots "
            f"of exactly {image}x{image}, so make their data at --size {image}",
            file=sys.stderr,
        )


def train_teacher_entry(samples: Any, out: str | Path, options: Mapping[str, Any], progress: bool = True) -> Path:
    """Train the teacher on ``samples`` with the options; returns ``OUT/teacher.pt`` (which records the preset)."""
    config = teacher_captioner_config(options)
    training = training_config(options)
    vocab = None  # an lm: decoder brings its own tokenizer
    if not is_lm_decoder(config.decoder):
        vocab = build_vocabulary([{"captions": captions} for captions in captions_of(samples)], training.min_count)
    preset = str(_get(options, "preset", DEFAULT_PRESET))
    return train_teacher(samples, out, config, training, vocab=vocab, progress=progress, preset=preset)


def add_teacher_arguments(group) -> None:
    """``snapcap train teacher`` options."""
    defaults = ", ".join(f"{name}: {preset_decoder(name)}" for name in preset_names())
    add_decoder_argument(group, f"the preset's ({defaults})")


# --- the students --------------------------------------------------------------------------------


def _teacher_path(options: Mapping[str, Any]) -> Path:
    if options.get("teacher") is not None:
        return Path(options["teacher"])
    if options.get("out") is None:
        raise ConfigError("a student needs its teacher: pass teacher= (or --teacher)")
    return Path(options["out"]) / "teacher.pt"


def teacher_config(path: str | Path) -> CaptionerConfig:
    """The :class:`CaptionerConfig` of a teacher checkpoint (a clear error for anything else)."""
    return _teacher_record(path)[0]


def teacher_preset(path: str | Path) -> str | None:
    """The captioner preset a teacher checkpoint was trained from (the students' defaults).

    The name recorded in ``teacher.pt`` (``snapcap train teacher --preset``, ``snapcap
    compare``). A checkpoint without one (snapcap before presets were recorded) counts as
    ``tiny`` when its :class:`CaptionerConfig` is the tiny preset's at its B and T, and as None
    otherwise; None, or a name this snapcap does not know, gives the students the
    :class:`CaptionTrainConfig` defaults (the paper's recipe).
    """
    config, preset = _teacher_record(path)
    if preset is None and config == captioner_preset(DEFAULT_PRESET, B=config.B, T=config.T):
        preset = DEFAULT_PRESET
    return preset if preset in preset_names() else None


def _teacher_record(path: str | Path) -> tuple[CaptionerConfig, str | None]:
    path = Path(path)
    if not path.is_file():
        raise DataFileError(
            f"{path}: no teacher checkpoint; train it first with `snapcap train teacher --out {path.parent}` (or pass --teacher)"
        )
    stat = path.stat()
    return _read_teacher(str(path.resolve()), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=4)
def _read_teacher(path: str, mtime_ns: int, size: int) -> tuple[CaptionerConfig, str | None]:
    """(config, preset) of the checkpoint, read once per file version (the key holds its modification time and size)."""
    state = load_checkpoint(Path(path))
    if not isinstance(state, dict) or state.get("kind") != "snapcap-captioner" or state.get("name") != "teacher":
        raise DataFileError(f"{path}: not a teacher checkpoint (made by `snapcap train teacher`)")
    preset = state.get("preset")
    return CaptionerConfig(**state["config"]), None if preset is None else str(preset)


def student_training_config(options: Mapping[str, Any], out: str | Path | None = None) -> CaptionTrainConfig:
    """A student's :class:`CaptionTrainConfig`: its teacher's preset (:func:`teacher_preset`;
    the defaults when there is none) with the options that are set over it."""
    preset = teacher_preset(_teacher_path(dict(options, out=options.get("out", out))))
    return _with_options(CaptionTrainConfig() if preset is None else training_preset(preset), options)


def student_data_defaults(options: Mapping[str, Any]) -> tuple[int, int, int]:
    """B, T and image size of the student's teacher."""
    if options.get("preset") is not None or options.get("pretrained") is not None:
        raise ConfigError("a student is built from its teacher (--teacher): --preset and --pretrained do not apply")
    config = teacher_config(_teacher_path(options))
    B, T = options.get("B"), options.get("T")
    if B is not None and B != config.B or T is not None and T != config.T:
        raise ConfigError(
            f"{_teacher_path(options)} was trained with B={config.B}, T={config.T}; the student is built for the "
            f"teacher's B and T (got --B {B} --T {T}); train a teacher for those first"
        )
    return config.B, config.T, teacher_image_size(config.teacher)


def check_student_data(B: int, T: int, size: tuple[int, int], options: Mapping[str, Any]) -> None:
    """The data must have the teacher's B and T, at the teacher's image size."""
    path = _teacher_path(options)
    config = teacher_config(path)
    if (B, T) != (config.B, config.T):
        raise ShapeError(f"the data has B={B}, T={T} but the teacher {path} was trained with B={config.B}, T={config.T}")
    image = teacher_image_size(config.teacher)
    if tuple(size) != (image, image):
        raise ShapeError(
            f"the student works at the teacher's image size {image}x{image}; the data is {size[0]}x{size[1]} "
            f"(make it with --size {image})"
        )


def train_student_entry(
    samples: Any, out: str | Path, options: Mapping[str, Any], progress: bool = True, mode: str = "snapcap"
) -> Path:
    """Train the student variant ``mode`` (:data:`STUDENT_MODES`) on its teacher; returns ``OUT/<mode>.pt``."""
    if mode not in STUDENT_MODES:
        raise ConfigError(f"unknown student mode {mode!r}; expected one of {', '.join(STUDENT_MODES)}")
    teacher = _teacher_path(dict(options, out=options.get("out", out)))
    return train_student(samples, teacher, out, mode, student_training_config(options, out), progress=progress)
