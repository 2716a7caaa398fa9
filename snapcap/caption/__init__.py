"""Captioning from frames, reconstructions or coded snapshots.

The names below are imported on first use (so ``import snapcap.caption.text`` stays light)::

    from snapcap.caption import create_captioner, evaluate_captioner, list_captioners, load_captioner

(``snapcap.caption.evaluate`` is the module; its ``evaluate`` function is exported as
``evaluate_captioner``.)
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str | tuple[str, str]] = {
    # the registry
    "CAPTIONERS": "snapcap.caption.registry",
    "CaptionerEntry": "snapcap.caption.registry",
    "Captioner": "snapcap.caption.registry",
    "register_captioner": ("snapcap.caption.registry", "register"),
    "create_captioner": "snapcap.caption.registry",
    "load_captioner": "snapcap.caption.registry",
    "open_captioner": "snapcap.caption.registry",
    "list_captioners": "snapcap.caption.registry",
    "zoo_names": "snapcap.caption.registry",
    # snapcap's own captioners: the presets (snapcap/caption/presets/*.json)
    "CAPTIONER_PRESETS": "snapcap.caption.presets",
    "captioner_preset": "snapcap.caption.presets",
    "training_preset": "snapcap.caption.presets",
    "preset_names": "snapcap.caption.presets",
    "preset_notes": "snapcap.caption.presets",
    # evaluation
    "EvalResult": "snapcap.caption.evaluate",
    "evaluate_captioner": ("snapcap.caption.evaluate", "evaluate"),
    "results_markdown": "snapcap.caption.evaluate",
    # models and training
    "CaptionerConfig": "snapcap.caption.models",
    "TeacherCaptioner": "snapcap.caption.models",
    "SnapCapCaptioner": "snapcap.caption.models",
    "TwoStageCaptioner": "snapcap.caption.models",
    "CaptionTrainConfig": "snapcap.caption.train",
    "STUDENT_MODES": "snapcap.caption.train",
    "train_teacher": "snapcap.caption.train",
    "train_student": "snapcap.caption.train",
    # CLIP4Caption's consensus ensemble
    "ensemble_select": "snapcap.caption.zoo.ensemble",
    "EnsembleCaptioner": "snapcap.caption.zoo.ensemble",
    # building blocks
    "Vocabulary": "snapcap.caption.text",
    "caption_metrics": "snapcap.caption.metrics",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    target = _EXPORTS.get(name)
    if target is None:
        raise AttributeError(f"module 'snapcap.caption' has no attribute {name!r}")
    module, attribute = target if isinstance(target, tuple) else (target, name)
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
