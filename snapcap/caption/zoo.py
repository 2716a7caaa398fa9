"""The model zoo: captioners of other papers (CLIP4Caption, CLIP4VideoCap, VCCV...) as named models.

A zoo model plugs into the registry (:func:`snapcap.caption.registry.list_captioners`,
``create_captioner``, ``load_captioner_file``, :class:`~snapcap.caption.registry.Captioner`) and
into the command line (a ``snapcap train NAME`` verb with the shared data arguments;
``snapcap eval --model NAME`` and ``snapcap caption --model NAME|FILE`` accept it) through one
:class:`ZooModel` record. Importing this module is cheap: the built-in records below name their
functions as ``"module:function"`` strings, imported on first use.

How to register a model
=======================

1. Write a module (e.g. ``snapcap/caption/mymodel.py``) with two functions::

       def train(samples, out_dir: Path, options: Mapping[str, Any], progress: bool) -> Path:
           ...  # train on the sample dicts; write out_dir / "mymodel.pt" atomically; return it

       def load(path: Path, device: str) -> tuple[model, config, vocab]:
           ...  # rebuild the trained model in eval mode

   * ``samples``: a sequence (``len``, ``[i]``) of the sample dicts of
     :mod:`snapcap.datasets.torch_data`: ``frames (T, B, H, W[, 3])`` float in [0, 1], ``meas
     (T, H, W)``, ``masks (B, H, W)``, ``captions`` (list of str), ``video_id``, ``index``,
     ``bayer``. Index it once per sample and keep what you need (it may simulate on access).
   * ``options``: every parsed command-line argument by its ``dest`` (``epochs``,
     ``batch_size``, ``lr``, ``warmup_epochs``, ``min_count``, ``seed``, ``device``,
     ``checkpoint_every``, ``preset``, ``pretrained``, ``B``, ``T``... and the model's own
     arguments, see ``add_arguments``); from Python, any mapping (missing keys: your defaults).
   * Resumable: an interrupted run rerun with the same options continues. The simplest way is
     :func:`snapcap.caption.train.fit` (checkpoints ``out_dir/<stage>.ckpt`` every
     ``checkpoint_every`` steps) and :func:`save_checkpoint` for the final file (atomic).
   * ``model.caption(*inputs, **generate) -> list[list[int]]``: token ids (no BOS/EOS) per
     video, ``inputs`` as :meth:`Captioner.frames_input` (``(N, T, B, H, W[, 3])`` float frames)
     or :meth:`Captioner.snapshot_input` (``meas (N, T, H, W)``, ``masks``) give them, by
     ``kind``; ``generate``: ``method`` ("greedy"/"beam"), ``beam_size``, ``max_length``...
   * ``config``: any object with ``B`` and ``T`` attributes (the data the model was trained
     for; the Captioner checks inputs against them) and preferably ``to_dict()``.
   * ``vocab``: a :class:`snapcap.caption.text.Vocabulary` (``decode(ids) -> str``).
   * Optional model attributes: ``image_size`` (int: the input size it works at) and
     ``needs_fixed_size`` (bool: inputs must be exactly ``image_size``; default False).

2. Register it, here (built-ins: one line in :func:`_register_builtins`) or from your own code::

       from snapcap.caption.zoo import ZooModel, register

       register(ZooModel(
           name="mymodel", kind="frames", help="my captioner (resumable)",
           train="snapcap.caption.mymodel:train", load="snapcap.caption.mymodel:load",
           add_arguments="snapcap.caption.mymodel:add_arguments",   # optional
           defaults={"B": 8, "T": 4, "size": 64},                    # optional data defaults
       ))

   ``add_arguments(parser)`` adds the model's own options to its ``snapcap train NAME`` verb
   (their values reach ``options``). The verb already has the data arguments of the other
   captioners (``--data``/``--corpus``..., ``--B``, ``--T``, ``--size``, ``--gray``, ``--mask``,
   ``--noise``...), ``--preset`` (default ``tiny``), ``--pretrained``, ``--epochs``,
   ``--batch-size``, ``--lr``, ``--warmup-epochs``, ``--min-count``, ``--seed``, ``--device``,
   ``--checkpoint-every``, ``--no-progress`` and ``--out``.

Checkpoints are ``<folder>/<name>.pt`` holding ``{"kind": ZOO_KIND, "name": name, ...}``
(:func:`save_checkpoint`); :func:`checkpoint_name` tells which zoo model a file holds.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from snapcap.errors import ConfigError, DataFileError

__all__ = [
    "ZOO_KIND",
    "fit_and_save",
    "ZooModel",
    "register",
    "zoo_names",
    "zoo_model",
    "is_zoo_name",
    "save_checkpoint",
    "read_checkpoint",
    "checkpoint_name",
    "option",
]

ZOO_KIND = "snapcap-zoo-captioner"
"""The ``kind`` field of every zoo checkpoint."""

TrainFn = Callable[[Any, Path, Mapping[str, Any], bool], Path]
LoadFn = Callable[[Path, str], tuple[Any, Any, Any]]


def _resolve(value: Any, what: str, name: str) -> Any:
    if value is None or callable(value):
        return value
    if isinstance(value, str) and ":" in value:
        module, attribute = value.split(":", 1)
        try:
            return getattr(importlib.import_module(module), attribute)
        except (ImportError, AttributeError) as exc:
            raise ConfigError(f"zoo model {name!r}: cannot import its {what} {value!r} ({exc})") from exc
    raise ConfigError(f"zoo model {name!r}: {what} must be a callable or 'module:function', got {value!r}")


@dataclass(frozen=True)
class ZooModel:
    """One named captioner of the zoo.

    Attributes:
        name: registry name and ``snapcap train`` verb (also the checkpoint stem: ``<name>.pt``).
        kind: ``"frames"`` (captions video frames) or ``"snapshot"`` (coded snapshots + masks).
        help: one line for ``snapcap train --help``.
        train: ``(samples, out_dir, options, progress) -> Path`` or ``"module:function"``.
        load: ``(path, device) -> (model, config, vocab)`` or ``"module:function"``.
        add_arguments: optional ``(argparse.ArgumentParser) -> None`` (or ``"module:function"``):
            the model's own ``snapcap train NAME`` options.
        defaults: data defaults of the ``train`` verb: ``B``, ``T`` and ``size`` (S: S x S
            frames); ``size`` may also come from ``image_size``.
        image_size: optional ``(options) -> int`` (or ``"module:function"``): the frame size of
            simulated training data for these options (e.g. 224 for a paper preset).
        description: more text for ``snapcap train NAME --help``.
    """

    name: str
    kind: str
    help: str
    train: TrainFn | str
    load: LoadFn | str
    add_arguments: Callable[[Any], None] | str | None = None
    defaults: Mapping[str, Any] = field(default_factory=lambda: {"B": 8, "T": 4, "size": 64})
    image_size: Callable[[Mapping[str, Any]], int] | str | None = None
    description: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name or any(c in self.name for c in " :+/"):
            raise ConfigError(f"a zoo model name must be a non-empty word without spaces, ':', '+' or '/', got {self.name!r}")
        if self.kind not in ("frames", "snapshot"):
            raise ConfigError(f"zoo model {self.name!r}: kind must be 'frames' or 'snapshot', got {self.kind!r}")

    def train_fn(self) -> TrainFn:
        return _resolve(self.train, "train function", self.name)

    def load_fn(self) -> LoadFn:
        return _resolve(self.load, "load function", self.name)

    def arguments_fn(self) -> Callable[[Any], None] | None:
        return _resolve(self.add_arguments, "add_arguments function", self.name)

    def size_for(self, options: Mapping[str, Any]) -> int:
        """The frame size S of simulated training data for these options."""
        fn = _resolve(self.image_size, "image_size function", self.name)
        if fn is not None:
            return int(fn(options))
        return int(self.defaults.get("size", 64))


_ZOO: dict[str, ZooModel] = {}
_RESERVED = {"teacher", "snapcap", "baseline", "snapcap-reg-only", "snapcap-dis-only", "recon", "ensemble", "two-stage"}


def register(model: ZooModel, replace: bool = False) -> ZooModel:
    """Add a model to the zoo (``replace=True`` to redefine a name); returns it.

    Raises:
        ConfigError: a name of snapcap's own captioners, or one already registered.
    """
    if not isinstance(model, ZooModel):
        raise ConfigError(f"register() takes a ZooModel, got {type(model).__name__}")
    if model.name in _RESERVED:
        raise ConfigError(f"{model.name!r} is a name of snapcap's own captioners; choose another")
    if model.name in _ZOO and not replace:
        raise ConfigError(f"zoo model {model.name!r} is already registered (pass replace=True to redefine it)")
    _ZOO[model.name] = model
    return model


def zoo_names() -> list[str]:
    """Names of the registered zoo models, in registration order."""
    return list(_ZOO)


def is_zoo_name(name: str) -> bool:
    return name in _ZOO


def zoo_model(name: str) -> ZooModel:
    """The :class:`ZooModel` of ``name``; ConfigError naming the known ones otherwise."""
    if name not in _ZOO:
        raise ConfigError(f"unknown zoo model {name!r}; expected one of {', '.join(_ZOO) or '(none registered)'}")
    return _ZOO[name]


def option(options: Mapping[str, Any] | None, key: str, default: Any) -> Any:
    """``options[key]`` unless it is missing or None."""
    if options is None:
        return default
    value = options.get(key)
    return default if value is None else value


# --- checkpoint files ---------------------------------------------------------------------------


def fit_and_save(name: str, model, loss_fn, count: int, config, training, vocab, out_dir: Path, progress: bool, context) -> Path:
    """Train every trainable parameter of ``model`` with :func:`snapcap.caption.train.fit`
    (resumable) and write ``out_dir/<name>.pt`` (config, vocabulary, weights, history)."""
    from snapcap.caption.train import fit

    trainable = [p for p in model.parameters() if p.requires_grad]
    stamp = {"kind": name, "config": config.to_dict(), "train": training.to_dict(), "count": count, "vocab": len(vocab)}
    history = fit(name, model, [{"params": trainable, "lr": training.lr}], loss_fn, count, training.epochs, training, out_dir, stamp, progress, context)
    path = Path(out_dir) / f"{name}.pt"
    if context.main:
        save_checkpoint(path, name, {"config": config.to_dict(), "vocab": vocab.to_dict(), "state": model.state_dict(), "history": history})
    return path


def save_checkpoint(path: str | Path, name: str, payload: Mapping[str, Any]) -> Path:
    """Write ``{"kind": ZOO_KIND, "name": name, **payload}`` to ``path`` atomically; returns it."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    torch.save({"kind": ZOO_KIND, "name": name, **payload}, tmp)
    os.replace(tmp, path)
    return path


def _torch_load(path: Path, mmap: bool) -> Any:
    import torch

    if not path.is_file():
        raise DataFileError(f"{path}: no such checkpoint")
    try:
        return torch.load(path, map_location="cpu", weights_only=False, mmap=mmap)
    except Exception:  # noqa: BLE001 - old (non-zip) files cannot be memory-mapped: read them whole
        if not mmap:
            raise
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 - damaged or foreign files
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
    except Exception as exc:  # noqa: BLE001
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
    except Exception as exc:  # noqa: BLE001
        raise DataFileError(f"{path}: not a readable snapcap checkpoint ({exc.__class__.__name__}: {exc})") from exc
    if isinstance(state, dict) and state.get("kind") == ZOO_KIND:
        return str(state.get("name"))
    return None


# --- the built-in models ----------------------------------------------------------------------


def _register_builtins() -> None:
    register(ZooModel(
        name="clip4caption",
        kind="frames",
        help="train CLIP4Caption: CLIP frame features, 1-layer transformer encoder, 3-layer decoder, cross-entropy (resumable)",
        train="snapcap.caption.clip4caption:train",
        load="snapcap.caption.clip4caption:load",
        add_arguments="snapcap.caption.clip4caption:add_arguments",
        image_size="snapcap.caption.clip4caption:image_size",
        description="Writes OUT/clip4caption.pt.",
    ))
    register(ZooModel(
        name="clip4videocap",
        kind="frames",
        help="train CLIP4VideoCap: multi-scale temporal fusion, Vis2Text distillation, commonsense sub-decoders (resumable)",
        train="snapcap.caption.clip4videocap:train",
        load="snapcap.caption.clip4videocap:load",
        add_arguments="snapcap.caption.clip4videocap:add_arguments",
        image_size="snapcap.caption.clip4videocap:image_size",
        description="Writes OUT/clip4videocap.pt.",
    ))
    register(ZooModel(
        name="vccv",
        kind="frames",
        help="train VCCV: GOPs (I-frames + residuals) of the video, residuals-assisted encoder, LSTM decoder (resumable)",
        train="snapcap.caption.vccv:train",
        load="snapcap.caption.vccv:load",
        add_arguments="snapcap.caption.vccv:add_arguments",
        image_size="snapcap.caption.vccv:image_size",
        description="Compresses the true video itself (block-matching P-frame emulation, or a real codec with --source codec). Writes OUT/vccv.pt.",
    ))


_register_builtins()
