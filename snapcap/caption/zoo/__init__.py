"""The model zoo: captioners of other papers (CLIP4Caption, CLIP4VideoCap, VCCV) and their shared parts.

The package holds the models, :mod:`~snapcap.caption.zoo.clip4caption`,
:mod:`~snapcap.caption.zoo.clip4videocap` and :mod:`~snapcap.caption.zoo.vccv`, CLIP4Caption's
consensus ensemble of any captioners (:mod:`~snapcap.caption.zoo.ensemble`, the ``ensemble:``
name prefix), and here what they share: their checkpoint files (``<folder>/<name>.pt`` holding
``{"kind": ZOO_KIND, "name": name, ...}``, :func:`save_checkpoint`, :func:`read_checkpoint`,
:func:`checkpoint_name`), :func:`fit_and_save` and :func:`option`.

Each model is registered like snapcap's own captioners, by a
:class:`~snapcap.caption.registry.CaptionerEntry` in :mod:`snapcap.caption.registry` (whose
docstring says how to add one); the entry names the model's ``train``, ``load`` and
``add_arguments`` functions as ``"module:function"`` strings, so importing the registry does not
import the models.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import torch

from snapcap.caption.train import atomic_save, fit
from snapcap.errors import DataFileError

__all__ = ["ZOO_KIND", "fit_and_save", "save_checkpoint", "read_checkpoint", "checkpoint_name", "option"]

ZOO_KIND = "snapcap-zoo-captioner"
"""The ``kind`` field of every zoo checkpoint."""


def option(options: Mapping[str, Any] | None, key: str, default: Any) -> Any:
    """``options[key]`` unless it is missing or None."""
    if options is None:
        return default
    value = options.get(key)
    return default if value is None else value


# --- checkpoint files ---------------------------------------------------------------------------


def fit_and_save(
    name: str,
    model,
    loss_fn,
    count: int,
    config,
    training,
    vocab,
    out_dir: Path,
    progress: bool,
    context,
    extra=None,
    feed=None,
) -> Path:
    """Train every trainable parameter of ``model`` with :func:`snapcap.caption.train.fit`
    (resumable; ``feed``: the samples ``loss_fn`` reads, loaded ahead by DataLoader workers) and
    write ``out_dir/<name>.pt`` (config, vocabulary, weights, history and ``extra``)."""

    trainable = [p for p in model.parameters() if p.requires_grad]
    stamp = {"kind": name, "config": config.to_dict(), "train": training.to_dict(), "count": count, "vocab": len(vocab)}
    history = fit(
        name,
        model,
        [{"params": trainable, "lr": training.lr}],
        loss_fn,
        count,
        training.epochs,
        training,
        out_dir,
        stamp,
        progress,
        context,
        feed,
    )
    path = Path(out_dir) / f"{name}.pt"
    if context.main:
        save_checkpoint(
            path,
            name,
            {
                "config": config.to_dict(),
                "vocab": vocab.to_dict(),
                "state": model.state_dict(),
                "history": history,
                **(extra or {}),
            },
        )
    return path


def save_checkpoint(path: str | Path, name: str, payload: Mapping[str, Any]) -> Path:
    """Write ``{"kind": ZOO_KIND, "name": name, **payload}`` to ``path`` atomically; returns it."""
    path = Path(path)
    atomic_save(path, {"kind": ZOO_KIND, "name": name, **payload})
    return path


def _torch_load(path: Path, mmap: bool) -> Any:
    if not path.is_file():
        raise DataFileError(f"{path}: no such checkpoint")
    try:
        return torch.load(path, map_location="cpu", weights_only=False, mmap=mmap)
    except Exception:
        if not mmap:
            raise
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise DataFileError(f"{path}: not a readable snapcap checkpoint ({exc.__class__.__name__}: {exc})") from exc


def read_checkpoint(path: str | Path, name: str) -> dict[str, Any]:
    """The payload of a zoo checkpoint of model ``name``.

    Raises:
        DataFileError: missing, unreadable, or not a zoo checkpoint of ``name``.
    """
    path = Path(path)
    try:
        state = _torch_load(path, mmap=False)
    except DataFileError:
        raise
    except Exception as exc:
        raise DataFileError(f"{path}: not a readable snapcap checkpoint ({exc.__class__.__name__}: {exc})") from exc
    if not isinstance(state, dict) or state.get("kind") != ZOO_KIND:
        raise DataFileError(f"{path}: not a zoo captioner checkpoint (expected kind {ZOO_KIND!r})")
    if state.get("name") != name:
        raise DataFileError(f"{path}: holds the {state.get('name')!r} captioner, not {name!r}")
    return state


def checkpoint_name(path: str | Path) -> str | None:
    """The zoo model a checkpoint file holds, or None when it is not a zoo checkpoint.

    The file is memory-mapped, so this is cheap even for large checkpoints.
    """
    try:
        state = _torch_load(Path(path), mmap=True)
    except DataFileError:
        raise
    except Exception as exc:
        raise DataFileError(f"{path}: not a readable snapcap checkpoint ({exc.__class__.__name__}: {exc})") from exc
    if isinstance(state, dict) and state.get("kind") == ZOO_KIND:
        return str(state.get("name"))
    return None
