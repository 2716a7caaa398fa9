"""snapcap's own captioners as registry entries: the teacher, the SnapCap student, its baseline and ablations.

The configurations are data (:data:`CAPTIONER_PRESETS`, :func:`captioner_preset`); the
functions below are what :mod:`snapcap.caption.registry` calls for these names, with the same
signatures as every other registered captioner:

* ``train(samples, out, options, progress) -> Path`` (:func:`train_teacher_entry`,
  :func:`train_student_entry`): the options of ``snapcap train NAME`` (or any mapping);
* ``data_defaults(options) -> (B, T, size)``: the data to simulate when no dataset file is
  given (the teacher: its preset's; a student: its teacher's);
* ``check_data(B, T, size, options)``: refuse data the model cannot train on;
* ``load(path, device) -> (model, config, vocab)`` (:func:`snapcap.caption.train.load_native`).

The students are built on the teacher (``options["teacher"]``, default ``OUT/teacher.pt``) and
train at its B, T and image size.
"""

from __future__ import annotations

import functools
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any, Mapping

from snapcap.caption.lm import add_decoder_argument, decoder_choice, is_lm_decoder, lm_decoder_settings
from snapcap.caption.models import CaptionerConfig
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
    "CAPTIONER_PRESETS",
    "STUDENT_NAMES",
    "captioner_preset",
    "teacher_config",
    "training_config",
    "train_teacher_entry",
    "train_student_entry",
    "teacher_data_defaults",
    "student_data_defaults",
    "check_teacher_data",
    "check_student_data",
    "add_student_arguments",
    "add_teacher_arguments",
    "NATIVE_DECODERS",
    "PAPER_LM",
]

STUDENT_NAMES: dict[str, str] = {
    "snapcap": "snapcap",
    "baseline": "baseline",
    "snapcap-reg-only": "reg-only",
    "snapcap-dis-only": "dis-only",
}
"""Registry name -> student mode of :data:`snapcap.caption.train.STUDENT_MODES` (and file stem)."""

PAPER_LM = "gpt2-medium"
"""The paper preset's caption decoder: GPT-2 medium (width 1024, the paper's D), read from the local cache."""
NATIVE_DECODERS: dict[str, dict[str, Any]] = {
    "tiny": {"width": 64, "layers": 2, "heads": 4, "dropout": 0.1, "max_length": 30, "max_prefix": 16},
    "small": {"width": 256, "layers": 4, "heads": 8, "dropout": 0.1, "max_length": 30, "max_prefix": 16},
    "paper": {"width": 1024, "layers": 6, "heads": 16, "dropout": 0.1, "max_length": 30, "max_prefix": 16},
}
"""The in-house decoder of each preset (``--decoder native``; the paper's width D = 1024, trained from scratch)."""

_TINY_STUDENT = {"B": 8, "image_size": 64, "widths": [16, 24, 32, 48], "blocks": [1, 1, 1, 1], "token_dim": 64}
_SMALL_STUDENT = {"B": 8, "image_size": 112, "widths": [32, 48, 64, 96], "blocks": [2, 2, 2, 2], "token_dim": 256}
_PAPER_STUDENT = {"B": 8, "image_size": 224, "widths": [64, 128, 256, 256], "blocks": [4, 6, 6, 6], "token_dim": 1024}

CAPTIONER_PRESETS: dict[str, CaptionerConfig] = {
    # The offline default and the tests' size: the tiny tower with the weights snapcap ships
    # (pretrained on procedural frames, snapcap.caption.pretrain), frozen as the paper's CLIP.
    "tiny": CaptionerConfig(
        teacher="snapcap-tiny-vit",
        pretrained="procedural",
        train_encoder=False,
        decoder=NATIVE_DECODERS["tiny"],
        student=_TINY_STUDENT,
        B=8,
        T=8,
    ),
    # A CPU-trainable step up (112 x 112).
    "small": CaptionerConfig(
        teacher="snapcap-small-vit",
        pretrained=None,
        train_encoder=True,
        decoder=NATIVE_DECODERS["small"],
        student=_SMALL_STUDENT,
        B=8,
        T=8,
    ),
    # The SnapCap paper: frozen OpenAI CLIP ViT-B/16, a frozen pretrained GPT-like decoder of width
    # D = 1024 (GPT-2 medium, from the local Hugging Face cache), N1..N4 = 4, 6, 6, 6.
    "paper": CaptionerConfig(
        teacher="ViT-B-16",
        pretrained="openai",
        train_encoder=False,
        decoder=lm_decoder_settings(PAPER_LM),
        student=_PAPER_STUDENT,
        B=8,
        T=8,
    ),
    # The paper's architecture with random weights, its tower frozen as the paper's, and the
    # in-house decoder at the paper's width D = 1024 (nothing to download; `--decoder lm:FOLDER`
    # puts a language model there, as the slow test does): `snapcap compare --preset paper-smoke`
    # runs every code path a paper run takes, on a handful of videos.
    "paper-smoke": CaptionerConfig(
        teacher="ViT-B-16",
        pretrained=None,
        train_encoder=False,
        decoder=NATIVE_DECODERS["paper"],
        student=_PAPER_STUDENT,
        B=8,
        T=8,
    ),
}
"""Named captioner configurations (architecture only; B and T are set from the data)."""


def captioner_preset(
    name: str, B: int | None = None, T: int | None = None, decoder: str | None = None, **overrides: Any
) -> CaptionerConfig:
    """A copy of :data:`CAPTIONER_PRESETS` ``[name]`` for the data's B and T.

    The student's ``image_size`` always follows the teacher's (the student works at the
    teacher's patch grid); ``decoder`` is ``"native"`` (the preset's in-house decoder) or
    ``"lm:<name-or-path>"`` (a frozen pretrained language model; :mod:`snapcap.caption.lm`);
    ``overrides`` replace fields (``pretrained=None``...).
    """
    if name not in CAPTIONER_PRESETS:
        raise ConfigError(f"unknown captioner preset {name!r}; expected one of {', '.join(CAPTIONER_PRESETS)}")
    config = replace(CAPTIONER_PRESETS[name], **overrides)
    if decoder is not None:
        choice = decoder_choice(decoder)
        settings = NATIVE_DECODERS[name] if choice == "native" else lm_decoder_settings(choice)
        config = replace(config, decoder=dict(settings))
    B = config.B if B is None else int(B)
    T = config.T if T is None else int(T)
    student = dict(config.student, B=B, image_size=teacher_image_size(config.teacher))
    decoder = dict(config.decoder)
    decoder["max_prefix"] = max(int(decoder.get("max_prefix", 16)), T)
    return replace(config, B=B, T=T, student=student, decoder=decoder)


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
    """The :class:`CaptionTrainConfig` of the options (unset ones: the paper's defaults)."""
    defaults = CaptionTrainConfig()
    lr = float(_get(options, "lr", defaults.lr))  # CaptionTrainConfig refuses a rate that is not finite and > 0
    return CaptionTrainConfig(
        epochs=int(_get(options, "epochs", defaults.epochs)),
        stage1_epochs=int(_get(options, "stage1_epochs", defaults.stage1_epochs)),
        batch_size=int(_get(options, "batch_size", defaults.batch_size)),
        lr=lr,
        lr_encoder=lr,
        lr_proj=lr,
        warmup_epochs=int(_get(options, "warmup_epochs", defaults.warmup_epochs)),
        min_count=int(_get(options, "min_count", defaults.min_count)),
        seed=int(_get(options, "seed", defaults.seed)),
        device=str(_get(options, "device", defaults.device)),
        checkpoint_every=int(_get(options, "checkpoint_every", defaults.checkpoint_every)),
        workers=int(_get(options, "workers", defaults.workers)),
        amp=bool(options.get("amp", False)),
    )


def add_student_arguments(group) -> None:
    """``snapcap train snapcap|baseline|...`` options."""
    group.add_argument("--teacher", type=Path, default=None, help="the trained teacher (default: OUT/teacher.pt)")
    group.add_argument("--stage1-epochs", type=int, default=None, help="epochs of stage 1 (L_reg; default 30)")


# --- the teacher ---------------------------------------------------------------------------------


def teacher_data_defaults(options: Mapping[str, Any]) -> tuple[int, int, int]:
    """B, T and image size of the teacher preset the options name."""
    config = captioner_preset(str(_get(options, "preset", "tiny")), **_preset_overrides(options))
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
    """Train the teacher on ``samples`` with the options; returns ``OUT/teacher.pt``."""
    config = captioner_preset(
        str(_get(options, "preset", "tiny")), B=options.get("B"), T=options.get("T"), **_preset_overrides(options)
    )
    training = training_config(options)
    vocab = None  # an lm: decoder brings its own tokenizer
    if not is_lm_decoder(config.decoder):
        vocab = build_vocabulary([{"captions": captions} for captions in captions_of(samples)], training.min_count)
    return train_teacher(samples, out, config, training, vocab=vocab, progress=progress)


def add_teacher_arguments(group) -> None:
    """``snapcap train teacher`` options."""
    add_decoder_argument(group, f"the preset's (tiny, small: native; paper: lm:{PAPER_LM})")


# --- the students --------------------------------------------------------------------------------


def _teacher_path(options: Mapping[str, Any]) -> Path:
    if options.get("teacher") is not None:
        return Path(options["teacher"])
    if options.get("out") is None:
        raise ConfigError("a student needs its teacher: pass teacher= (or --teacher)")
    return Path(options["out"]) / "teacher.pt"


def teacher_config(path: str | Path) -> CaptionerConfig:
    """The :class:`CaptionerConfig` of a teacher checkpoint (a clear error for anything else)."""
    path = Path(path)
    if not path.is_file():
        raise DataFileError(
            f"{path}: no teacher checkpoint; train it first with `snapcap train teacher --out {path.parent}` (or pass --teacher)"
        )
    stat = path.stat()
    return _teacher_config(str(path.resolve()), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=4)
def _teacher_config(path: str, mtime_ns: int, size: int) -> CaptionerConfig:
    """The checkpoint read once per file version (the key holds its modification time and size)."""
    state = load_checkpoint(Path(path))
    if not isinstance(state, dict) or state.get("kind") != "snapcap-captioner" or state.get("name") != "teacher":
        raise DataFileError(f"{path}: not a teacher checkpoint (made by `snapcap train teacher`)")
    return CaptionerConfig(**state["config"])


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
    return train_student(
        samples, _teacher_path(dict(options, out=options.get("out", out))), out, mode, training_config(options), progress=progress
    )
