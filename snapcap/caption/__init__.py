"""Captioning from frames, reconstructions or coded snapshots.

The names below are imported on first use (so ``import snapcap.caption.text`` stays light)::

    from snapcap.caption import create_captioner, evaluate_captioner, list_captioners

(``snapcap.caption.evaluate`` is the module; its ``evaluate`` function is exported as
``evaluate_captioner``.)
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str | tuple[str, str]] = {
    # registry
    "CAPTIONER_PRESETS": "snapcap.caption.registry",
    "Captioner": "snapcap.caption.registry",
    "captioner_preset": "snapcap.caption.registry",
    "create_captioner": "snapcap.caption.registry",
    "list_captioners": "snapcap.caption.registry",
    "load_captioner_file": "snapcap.caption.registry",
    # evaluation
    "EvalResult": "snapcap.caption.evaluate",
    "evaluate_captioner": ("snapcap.caption.evaluate", "evaluate"),
    "results_markdown": "snapcap.caption.evaluate",
    # command line
    "add_caption_commands": "snapcap.caption.cli",
    "add_train_verbs": "snapcap.caption.cli",
    # models and training
    "CaptionerConfig": "snapcap.caption.models",
    "TeacherCaptioner": "snapcap.caption.models",
    "SnapCapCaptioner": "snapcap.caption.models",
    "TwoStageCaptioner": "snapcap.caption.models",
    "CaptionTrainConfig": "snapcap.caption.train",
    "STUDENT_MODES": "snapcap.caption.train",
    "train_teacher": "snapcap.caption.train",
    "train_student": "snapcap.caption.train",
    "load_captioner": "snapcap.caption.train",
    # the model zoo (CLIP4Caption, CLIP4VideoCap, ...)
    "ZooModel": "snapcap.caption.zoo",
    "register_zoo_model": ("snapcap.caption.zoo", "register"),
    "zoo_names": "snapcap.caption.zoo",
    "ensemble_select": "snapcap.caption.clip4caption",
    "EnsembleCaptioner": "snapcap.caption.clip4caption",
    # building blocks
    "Vocabulary": "snapcap.caption.text",
    "caption_metrics": "snapcap.caption.text",
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
