"""snapcap's captioner presets: one JSON file per preset in ``snapcap/caption/presets/``, read here only.

Each file (``tiny.json``, ``tiny-temporal.json``, ``small.json``, ``paper.json``, ``paper-smoke.json``) holds

* ``captioner``: the fields of :class:`~snapcap.caption.models.CaptionerConfig` (``teacher``,
  ``pretrained``, ``train_encoder``, ``student``, ``B``, ``T``, and ``temporal`` for an
  order-aware captioner, :mod:`snapcap.caption.temporal`), with ``decoder`` a reference:
  a :data:`~snapcap.caption.decoder.DECODER_PRESETS` name (the in-house decoder) or
  ``lm:<name-or-path>`` (a frozen pretrained language model, :mod:`snapcap.caption.lm`), and
  ``native_decoder``, the :data:`~snapcap.caption.decoder.DECODER_PRESETS` name that
  ``--decoder native`` puts there. ``student`` holds only what the preset chooses (``widths``,
  ``blocks``, ``unshuffle``, ``shortcut``): its ``image_size`` is the teacher's, and ``B`` and
  ``token_dim`` are the captioner's B and its decoder's width
  (:func:`snapcap.caption.train.build_student`);
* ``training``: overrides of the :class:`~snapcap.caption.train.CaptionTrainConfig` defaults
  (the paper's recipe; ``{}`` keeps it);
* ``notes``: ``"captioner.<field>"`` or ``"training.<field>"`` -> why the preset deviates from
  the paper there; ``description``: what the preset is for.

``snapcap train teacher --preset P`` and ``snapcap compare`` with captioner ``P`` build the
same :class:`CaptionerConfig` (:func:`captioner_preset`) and the same
:class:`CaptionTrainConfig` (:func:`training_preset`, the students' defaults too).
"""

from __future__ import annotations

import functools
import json
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from snapcap.caption.decoder import DECODER_PRESETS
from snapcap.caption.lm import LM_PREFIX, decoder_choice, lm_decoder_settings
from snapcap.caption.models import CaptionerConfig
from snapcap.caption.student import StudentConfig
from snapcap.caption.teacher import teacher_image_size
from snapcap.caption.temporal import prefix_length
from snapcap.caption.train import CaptionTrainConfig
from snapcap.errors import ConfigError

__all__ = [
    "PRESET_DIR",
    "CAPTIONER_PRESETS",
    "preset_names",
    "captioner_preset",
    "training_preset",
    "preset_decoder",
    "preset_notes",
    "preset_description",
]

PRESET_DIR = Path(__file__).resolve().parent / "presets"
"""The folder of the preset files (package data)."""

_FILE_KEYS = {"description", "captioner", "training", "notes"}
_CAPTIONER_KEYS = {f.name for f in fields(CaptionerConfig)} | {"native_decoder"}
_STUDENT_KEYS = {f.name for f in fields(StudentConfig)} - {"B", "image_size", "token_dim"}  # derived, never stored


def preset_names() -> list[str]:
    """The captioner presets, in a fixed order (``tiny`` first: the default)."""
    names = sorted(path.stem for path in PRESET_DIR.glob("*.json"))
    return sorted(names, key=lambda name: name != "tiny")


@functools.cache
def _read(name: str) -> dict[str, Any]:
    """The checked contents of ``presets/<name>.json`` (read once)."""
    if name not in preset_names():
        raise ConfigError(f"unknown captioner preset {name!r}; expected one of {', '.join(preset_names())}")
    path = PRESET_DIR / f"{name}.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: not a readable preset ({exc.__class__.__name__}: {exc})") from None
    if not isinstance(data, dict) or set(data) - _FILE_KEYS or not {"captioner", "training"} <= set(data):
        raise ConfigError(f"{path}: a preset holds captioner, training and optionally notes and description")
    captioner, training = data["captioner"], data["training"]
    problems = sorted(set(captioner) - _CAPTIONER_KEYS) + sorted(set(captioner.get("student", {})) - _STUDENT_KEYS)
    problems += sorted(set(training) - {f.name for f in fields(CaptionTrainConfig)})
    for key in data.get("notes", {}):
        section, _, field = key.partition(".")
        target = captioner if section == "captioner" else training if section == "training" else None
        if target is None or field.split(".")[0] not in target:
            problems.append(f"notes.{key}")
    if problems:
        raise ConfigError(f"{path}: unknown or misplaced field(s) {problems}")
    native, decoder = captioner.get("native_decoder"), captioner.get("decoder")
    if native not in DECODER_PRESETS:
        raise ConfigError(f"{path}: native_decoder must name one of {', '.join(DECODER_PRESETS)}")
    if not (isinstance(decoder, str) and (decoder.startswith(LM_PREFIX) or decoder == native)):
        raise ConfigError(f"{path}: decoder must be lm:NAME or the native_decoder ({native!r}), got {decoder!r}")
    return data


def _decoder_settings(reference: str) -> dict[str, Any]:
    """A preset's decoder reference -> the captioner's ``decoder`` settings (``max_prefix`` set later)."""
    if isinstance(reference, str) and reference.startswith(LM_PREFIX):
        return lm_decoder_settings(decoder_choice(reference))
    if reference not in DECODER_PRESETS:
        raise ConfigError(f"decoder {reference!r}: expected a DECODER_PRESETS name ({', '.join(DECODER_PRESETS)}) or lm:NAME")
    return dict(DECODER_PRESETS[reference])


def captioner_preset(
    name: str, B: int | None = None, T: int | None = None, decoder: str | None = None, **overrides: Any
) -> CaptionerConfig:
    """The :class:`CaptionerConfig` of preset ``name`` for the data's B and T (None: the preset's).

    The student's ``image_size`` always follows the teacher's (the student works at the
    teacher's patch grid); ``decoder`` is ``"native"`` (the preset's in-house decoder,
    ``native_decoder``) or ``"lm:<name-or-path>"`` (a frozen pretrained language model;
    :mod:`snapcap.caption.lm`), None the preset's own; ``overrides`` replace fields
    (``pretrained=None``...). The decoder takes at least T prefix tokens (``max_prefix``), T·B for
    an order-aware captioner (``temporal``: :func:`snapcap.caption.temporal.prefix_length`).
    """
    spec = dict(_read(name)["captioner"])
    native = spec.pop("native_decoder")
    spec["decoder"] = _decoder_settings(spec["decoder"])
    spec["student"] = dict(spec.get("student", {}))
    config = replace(CaptionerConfig(**spec), **overrides)
    if decoder is not None:
        choice = decoder_choice(decoder)
        config = replace(config, decoder=_decoder_settings(native if choice == "native" else choice))
    B = config.B if B is None else int(B)
    T = config.T if T is None else int(T)
    student = dict(config.student, image_size=teacher_image_size(config.teacher))
    settings = dict(config.decoder)
    settings["max_prefix"] = max(int(settings.get("max_prefix", 16)), prefix_length(replace(config, B=B, T=T)))
    return replace(config, B=B, T=T, student=student, decoder=settings)


def training_preset(name: str, **overrides: Any) -> CaptionTrainConfig:
    """The :class:`CaptionTrainConfig` of preset ``name``: the defaults (the paper's), the
    preset's ``training`` over them, then ``overrides``."""
    values = {**_read(name)["training"], **overrides}
    try:
        return CaptionTrainConfig(**values)
    except TypeError as exc:
        raise ConfigError(f"training preset {name!r}: {exc}") from None


def preset_decoder(name: str) -> str:
    """Preset ``name``'s own decoder as a ``--decoder`` value: ``native`` or ``lm:<name>``."""
    decoder = _read(name)["captioner"]["decoder"]
    return decoder if decoder.startswith(LM_PREFIX) else "native"


def preset_notes(name: str) -> dict[str, str]:
    """``"captioner.<field>"`` / ``"training.<field>"`` -> why preset ``name`` deviates from the paper there."""
    return dict(_read(name).get("notes", {}))


def preset_description(name: str) -> str:
    """What preset ``name`` is for (one paragraph)."""
    return str(_read(name).get("description", ""))


CAPTIONER_PRESETS: dict[str, CaptionerConfig]  # built on first use by __getattr__ below


def __getattr__(name: str) -> Any:
    """``CAPTIONER_PRESETS``: preset name -> its :class:`CaptionerConfig` at the preset's own B and T
    (:func:`captioner_preset` rebuilds one for the data's). Built on first use: resolving the
    teacher's image size reads open_clip's model configs, which ``import`` alone should not."""
    if name == "CAPTIONER_PRESETS":
        presets = {preset: captioner_preset(preset) for preset in preset_names()}
        globals()[name] = presets
        return presets
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
