"""Captioners by name: the one registry of every captioner, in the manner of open_clip's factory.

Each captioner is a :class:`CaptionerEntry` in :data:`CAPTIONERS` — snapcap's own (the teacher,
the SnapCap student, its baseline and ablations: :mod:`snapcap.caption.native`) and the other
papers' models (:mod:`snapcap.caption.zoo`) alike: its kind (``frames`` or ``snapshot``), its
``train`` and ``load`` functions, its own training options and its data defaults. From the
entry follow a ``snapcap train NAME`` verb, a name for :func:`create_captioner` (``eval
--model``, ``caption --model``, ``compare --zoo``, ``ensemble:``) and the reading of its
checkpoints by :func:`load_captioner`. Trained weights are files in a folder, one per
captioner, ``<folder>/<stem>.pt``::

    <folder>/teacher.pt          snapcap train teacher --out <folder>
    <folder>/snapcap.pt          snapcap train snapcap --out <folder>          (needs teacher.pt)
    <folder>/baseline.pt         snapcap train baseline --out <folder>
    <folder>/reg-only.pt         snapcap train snapcap-reg-only --out <folder>
    <folder>/dis-only.pt         snapcap train snapcap-dis-only --out <folder>
    <folder>/clip4caption.pt     snapcap train clip4caption --out <folder>     (and the other zoo models)

Names with a registered prefix are built by the prefix's handler (:func:`register_prefix`):
``two-stage:<method>`` (snapshot -> :mod:`snapcap.recon` method -> teacher) and
``ensemble:<a>+<b>+...[@metric]`` (CLIP4Caption's consensus ensemble,
:mod:`snapcap.caption.zoo.ensemble`).

How to add a captioner
======================

1. Write a module (another paper's model: ``snapcap/caption/zoo/mymodel.py``) with::

       def train(samples, out_dir: Path, options: Mapping[str, Any], progress: bool) -> Path:
           ...  # train on the sample dicts; write out_dir / "mymodel.pt" atomically; return it

       def load(path: Path, device: str) -> tuple[model, config, vocab]:
           ...  # rebuild the trained model in eval mode

   * ``samples``: a sequence of the sample dicts of :mod:`snapcap.datasets.torch_data`
     (``frames (T, B, H, W[, 3])`` in [0, 1], ``meas (T, H, W)``, ``masks (B, H, W)``,
     ``captions``, ``video_id``, ``bayer``...).
   * ``options``: the parsed ``snapcap train NAME`` arguments by ``dest`` (``epochs``,
     ``batch_size``, ``lr``, ``warmup_epochs``, ``min_count``, ``seed``, ``device``,
     ``checkpoint_every``, ``preset``, ``pretrained``, ``B``, ``T``, ``out``... and the model's
     own); None means "the model's default". From Python, any mapping.
   * Resumable: :func:`snapcap.caption.train.fit` checkpoints every ``checkpoint_every`` steps;
     :func:`snapcap.caption.zoo.save_checkpoint` writes the final file atomically.
   * ``model.caption(*inputs, **generate) -> list[list[int]]`` (token ids per video), inputs as
     :meth:`Captioner.frames_input` or :meth:`Captioner.snapshot_input` give them; ``config``
     has ``B`` and ``T``; ``vocab`` is a :class:`snapcap.caption.text.Vocabulary`. Decode with
     :mod:`snapcap.caption.decoding`.

2. Register it: a line in :func:`_register_builtins` below, or from your own code::

       register(CaptionerEntry(
           name="mymodel", kind="frames", help="my captioner (resumable)",
           train="snapcap.caption.zoo.mymodel:train", load="snapcap.caption.zoo.mymodel:load",
           add_arguments="snapcap.caption.zoo.mymodel:add_arguments",   # optional: its own options
           defaults={"B": 8, "T": 4, "size": 64},                      # optional data defaults
       ))

Example::

    captioner = create_captioner("snapcap", "runs/tiny")
    captioner.caption(dataset[0])          # -> ["a red circle moves to the right"]
    captioner = load_captioner("runs/tiny/clip4caption.pt")
"""

from __future__ import annotations

import functools
import importlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch

from snapcap.caption import native
from snapcap.caption.models import CaptionerConfig, TwoStageCaptioner
from snapcap.caption.native import STUDENT_NAMES
from snapcap.caption.train import load_native
from snapcap.caption.zoo import checkpoint_name
from snapcap.datasets.torch_data import collate_samples
from snapcap.errors import ConfigError, DataFileError, ShapeError
from snapcap.recon.api import METHODS

__all__ = [
    "CAPTIONERS",
    "CaptionerEntry",
    "Captioner",
    "register",
    "captioner_entry",
    "trainable_captioners",
    "zoo_names",
    "register_prefix",
    "prefix_handler",
    "prefixes",
    "list_captioners",
    "is_captioner_name",
    "create_captioner",
    "load_captioner",
    "open_captioner",
    "two_stage",
    "checkpoint_file",
]

TrainFn = Callable[[Any, Path, Mapping[str, Any], bool], Path]
LoadFn = Callable[[Path, str], tuple[Any, Any, Any]]
PrefixHandler = Callable[..., Any]


def resolve(value: Any, what: str, name: str) -> Any:
    """A callable, or the function a ``"module:function"`` string names (imported now)."""
    if value is None or callable(value):
        return value
    if isinstance(value, str) and ":" in value:
        module, attribute = value.split(":", 1)
        try:
            return getattr(importlib.import_module(module), attribute)
        except (ImportError, AttributeError) as exc:
            raise ConfigError(f"captioner {name!r}: cannot import its {what} {value!r} ({exc})") from exc
    raise ConfigError(f"captioner {name!r}: {what} must be a callable or 'module:function', got {value!r}")


@dataclass(frozen=True)
class CaptionerEntry:
    """One named captioner of the registry.

    Attributes:
        name: registry name and ``snapcap train`` verb.
        kind: ``"frames"`` (captions video frames) or ``"snapshot"`` (coded snapshots + masks).
        help: one line for ``snapcap train --help``.
        train: ``(samples, out_dir, options, progress) -> Path`` or ``"module:function"``.
        load: ``(path, device) -> (model, config, vocab)`` or ``"module:function"``.
        add_arguments: optional ``(argument group) -> None`` (or ``"module:function"``): the
            model's own ``snapcap train NAME`` options.
        defaults: data defaults of the ``train`` verb: ``B``, ``T`` and ``size`` (S: S x S).
        image_size: optional ``(options) -> int`` (or ``"module:function"``): the frame size of
            simulated training data for these options (e.g. 224 for a paper preset).
        data_defaults: optional ``(options) -> (B, T, size)`` (or ``"module:function"``), in place
            of ``defaults``/``image_size`` (a student: its teacher's).
        check_data: optional ``(B, T, (H, W), options) -> None`` (or ``"module:function"``):
            refuse data the model cannot train on.
        description: more text for ``snapcap train NAME --help``.
        stem: checkpoint file stem (default: ``name``).
        paper_beam: the beam its paper decodes with (1: greedy, or the paper does not say);
            ``snapcap compare --preset paper`` decodes its row so unless ``--beam`` is given.
        group: ``"snapcap"`` (the paper's own captioners) or ``"zoo"`` (other papers' models,
            ``compare --zoo`` rows).
    """

    name: str
    kind: str
    help: str
    train: TrainFn | str
    load: LoadFn | str
    add_arguments: Callable[[Any], None] | str | None = None
    defaults: Mapping[str, Any] = field(default_factory=lambda: {"B": 8, "T": 4, "size": 64})
    image_size: Callable[[Mapping[str, Any]], int] | str | None = None
    data_defaults: Callable[[Mapping[str, Any]], tuple[int, int, int]] | str | None = None
    check_data: Callable[..., None] | str | None = None
    description: str = ""
    stem: str | None = None
    group: str = "zoo"
    paper_beam: int = 1

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name or any(c in self.name for c in " :+/"):
            raise ConfigError(f"a captioner name must be a non-empty word without spaces, ':', '+' or '/', got {self.name!r}")
        if self.kind not in ("frames", "snapshot"):
            raise ConfigError(f"captioner {self.name!r}: kind must be 'frames' or 'snapshot', got {self.kind!r}")
        if self.group not in ("snapcap", "zoo"):
            raise ConfigError(f"captioner {self.name!r}: group must be 'snapcap' or 'zoo', got {self.group!r}")

    @property
    def file_stem(self) -> str:
        """The checkpoint file's stem: ``<folder>/<file_stem>.pt``."""
        return self.stem or self.name

    def train_fn(self) -> TrainFn:
        return resolve(self.train, "train function", self.name)

    def load_fn(self) -> LoadFn:
        return resolve(self.load, "load function", self.name)

    def arguments_fn(self) -> Callable[[Any], None] | None:
        return resolve(self.add_arguments, "add_arguments function", self.name)

    def size_for(self, options: Mapping[str, Any]) -> int:
        """The frame size S of simulated training data for these options."""
        fn = resolve(self.image_size, "image_size function", self.name)
        if fn is not None:
            return int(fn(options))
        return int(self.defaults.get("size", 64))

    def shape_for(self, options: Mapping[str, Any]) -> tuple[int, int, int]:
        """``(B, T, S)`` of the data to simulate for these options (explicit ``B``/``T`` options win)."""
        fn = resolve(self.data_defaults, "data_defaults function", self.name)
        if fn is not None:
            B, T, size = fn(options)
        else:
            B, T, size = int(self.defaults.get("B", 8)), int(self.defaults.get("T", 4)), self.size_for(options)
        return int(options.get("B") or B), int(options.get("T") or T), int(size)

    def check(self, B: int, T: int, size: tuple[int, int], options: Mapping[str, Any]) -> None:
        """Refuse training data the captioner cannot use (explicit ``B``/``T`` must match)."""
        fn = resolve(self.check_data, "check_data function", self.name)
        if fn is not None:
            fn(B, T, size, options)
            return
        given_b, given_t = options.get("B"), options.get("T")
        if given_b is not None and given_b != B or given_t is not None and given_t != T:
            raise ConfigError(f"--B {given_b} --T {given_t} do not match the data (B={B}, T={T}); leave them out with --data")

    def run_training(self, samples: Any, out: str | Path, options: Mapping[str, Any], progress: bool = True) -> Path:
        """Train on ``samples`` into ``out``; returns the checkpoint written."""
        return Path(self.train_fn()(samples, Path(out), options, progress))


CAPTIONERS: dict[str, CaptionerEntry] = {}
"""Name -> :class:`CaptionerEntry`: every captioner, in registration order."""

_RESERVED = {"recon", "ensemble", "two-stage"}


def register(entry: CaptionerEntry, replace: bool = False) -> CaptionerEntry:
    """Add a captioner (``replace=True`` to redefine a name); returns it.

    Raises:
        ConfigError: not an entry, a reserved word, or a name already registered.
    """
    if not isinstance(entry, CaptionerEntry):
        raise ConfigError(f"register() takes a CaptionerEntry, got {type(entry).__name__}")
    if entry.name in _RESERVED:
        raise ConfigError(f"{entry.name!r} is reserved (train recon, name prefixes); choose another name")
    if entry.name in CAPTIONERS and not replace:
        raise ConfigError(f"captioner {entry.name!r} is already registered (pass replace=True to redefine it)")
    CAPTIONERS[entry.name] = entry
    return entry


def captioner_entry(name: str) -> CaptionerEntry:
    """The :class:`CaptionerEntry` of ``name``; ConfigError naming the known ones otherwise."""
    if name not in CAPTIONERS:
        raise ConfigError(f"unknown captioner {name!r}; expected one of {', '.join(CAPTIONERS)}")
    return CAPTIONERS[name]


def trainable_captioners() -> list[CaptionerEntry]:
    """Every registered captioner (each is a ``snapcap train`` verb), in registration order."""
    return list(CAPTIONERS.values())


def zoo_names() -> list[str]:
    """Names of the other papers' captioners (``compare --zoo`` rows), in registration order."""
    return [name for name, entry in CAPTIONERS.items() if entry.group == "zoo"]


PREFIXES: dict[str, PrefixHandler | str] = {}
"""Captioner name prefix (``two-stage:``, ``ensemble:``) -> its handler."""


def register_prefix(prefix: str, handler: PrefixHandler | str, replace: bool = False) -> None:
    """Let captioner names that start with ``prefix`` (e.g. ``"ensemble:"``) be built by ``handler``.

    Args:
        prefix: a word followed by ``:``.
        handler: ``(name, checkpoints, recon_params=None, device="cpu") -> Captioner``, or its
            ``"module:function"`` (imported on first use).
        replace: redefine a registered prefix.

    Raises:
        ConfigError: a malformed prefix, or one already registered.
    """
    if not isinstance(prefix, str) or not prefix.endswith(":") or len(prefix) < 2 or any(c in prefix[:-1] for c in " :+/"):
        raise ConfigError(f"a captioner name prefix is a word followed by ':', got {prefix!r}")
    if prefix in PREFIXES and not replace:
        raise ConfigError(f"captioner name prefix {prefix!r} is already registered (pass replace=True to redefine it)")
    PREFIXES[prefix] = handler


def prefixes() -> list[str]:
    """The registered captioner name prefixes, in registration order."""
    return list(PREFIXES)


def prefix_handler(name: str) -> PrefixHandler | None:
    """The handler of the registered prefix ``name`` starts with, or None."""
    for prefix, handler in PREFIXES.items():
        if name.startswith(prefix):
            return resolve(handler, "prefix handler", prefix)
    return None


def list_captioners() -> list[str]:
    """The names :func:`create_captioner` accepts (besides ``ensemble:...``)."""
    return [*CAPTIONERS, *(f"two-stage:{method}" for method in METHODS)]


def is_captioner_name(name: str) -> bool:
    """Whether ``name`` is a name :func:`create_captioner` takes (prefixed names included)."""
    return name in CAPTIONERS or any(name.startswith(prefix) and len(name) > len(prefix) for prefix in PREFIXES)


def _train_command(name: str, folder: Path) -> str:
    if name in STUDENT_NAMES:  # students are built on the teacher
        return f"snapcap train {name} --teacher {folder / 'teacher.pt'} --out {folder}"
    return f"snapcap train {name} --out {folder}"


def checkpoint_file(name: str, checkpoints: str | Path | Mapping[str, Any]) -> Path:
    """Where the weights of captioner ``name`` are (two-stage captioners use the teacher's).

    Args:
        name: a name of :func:`list_captioners`.
        checkpoints: a folder holding ``teacher.pt``, ``snapcap.pt``...; a mapping from names
            (``teacher``, ``snapcap``, ``snapcap-reg-only``... or the file stems ``reg-only``...)
            to files; or one ``.pt`` file for that captioner.

    Raises:
        DataFileError: the file is missing (the message gives the command that makes it).
    """
    key = "teacher" if name.startswith("two-stage:") else name
    stem = captioner_entry(key).file_stem
    if isinstance(checkpoints, Mapping):
        value = checkpoints.get(key, checkpoints.get(stem))
        if value is None:
            raise DataFileError(
                f"no checkpoint for {key!r} among {sorted(checkpoints)}; make one with `{_train_command(key, Path('RUN'))}`"
            )
        path = Path(value)
        folder = path.parent
    else:
        given = Path(checkpoints)
        if given.is_file() or given.suffix in (".pt", ".pth"):
            path, folder = given, given.parent
        else:
            path, folder = given / f"{stem}.pt", given
    if not path.is_file():
        partial = folder / f"{stem}.ckpt"
        hint = f" (an unfinished run left {partial}: rerun the same command to finish it)" if partial.exists() else ""
        raise DataFileError(
            f"{path}: no such checkpoint for captioner {key!r}; make it with `{_train_command(key, folder)}`{hint}"
        )
    return path


def _as_tensor(value: Any):
    if isinstance(value, torch.Tensor):
        return value
    return torch.as_tensor(np.asarray(value))


class Captioner:
    """One interface for every captioner: ``caption(sample or batch) -> list[str]``.

    Attributes:
        name: the registry name (``teacher``, ``snapcap``, ``two-stage:gap-tv``...).
        kind: ``"frames"`` (captions true frames: the teacher) or ``"snapshot"`` (captions
            measurements with their masks: students and two-stage).
        model: the underlying :class:`TeacherCaptioner`, :class:`SnapCapCaptioner` or
            :class:`TwoStageCaptioner`.
        config: its :class:`CaptionerConfig` (B, T and sizes it was trained for).
        vocab: its :class:`~snapcap.caption.text.Vocabulary`.
        checkpoint: the file the weights came from.
        timings: seconds of the last call: ``total``, ``recon`` (two-stage; else 0) and
            ``caption`` (total minus recon).
    """

    def __init__(
        self,
        name: str,
        model: Any,
        config: CaptionerConfig,
        vocab: Any,
        checkpoint: Path | None = None,
        device: str = "cpu",
        kind: str | None = None,
    ):
        self.name = name
        self.model = model
        self.config = config
        self.vocab = vocab
        self.checkpoint = checkpoint
        self.device = str(device)
        if kind is None:
            kind = CAPTIONERS[name].kind if name in CAPTIONERS else "snapshot"
        self.kind = kind
        self.timings: dict[str, float] = {"total": 0.0, "recon": 0.0, "caption": 0.0}

    def __repr__(self) -> str:
        return (
            f"Captioner({self.name!r}, kind={self.kind!r}, B={self.B}, T={self.T}, image_size={self.image_size}, "
            f"checkpoint={str(self.checkpoint)!r})"
        )

    # -- what the checkpoint expects ----------------------------------------------------------

    @property
    def B(self) -> int:
        return int(self.config.B)

    @property
    def T(self) -> int:
        return int(self.config.T)

    @property
    def two_stage(self) -> bool:
        return self.name.startswith("two-stage:")

    @property
    def image_size(self) -> int:
        """The input size S the model works at (students need S x S measurements)."""
        model = self.model
        if isinstance(getattr(model, "image_size", None), int):  # zoo models say it
            return int(model.image_size)
        if hasattr(model, "student"):
            return int(model.student.config.image_size)
        teacher = model.teacher if hasattr(model, "teacher") else model
        teacher = teacher.teacher if hasattr(teacher, "teacher") else teacher
        return int(teacher.image_size)

    @property
    def needs_fixed_size(self) -> bool:
        """Whether the input must be exactly ``image_size`` (students; the teacher resizes)."""
        if hasattr(self.model, "needs_fixed_size"):  # zoo models say it
            return bool(self.model.needs_fixed_size)
        return self.kind == "snapshot" and not self.two_stage

    # -- captioning -----------------------------------------------------------------------------

    def _where(self) -> str:
        return f"captioner {self.name!r}" + (f" ({self.checkpoint})" if self.checkpoint else "")

    def _batch(self, sample_or_batch: Any) -> dict[str, Any]:
        if isinstance(sample_or_batch, Mapping):
            return dict(sample_or_batch)
        if isinstance(sample_or_batch, Sequence) and sample_or_batch and isinstance(sample_or_batch[0], Mapping):
            return collate_samples(list(sample_or_batch))
        raise ConfigError(
            f"{self._where()}: expected a sample dict (meas/masks/frames), a batch of them or a list of them, "
            f"got {type(sample_or_batch).__name__}"
        )

    def _check_T(self, count: int, what: str) -> None:
        if count != self.T:
            raise ShapeError(
                f"{self._where()} was trained on T={self.T} snapshots per video; the {what} has T={count} "
                f"(make the data with --T {self.T})"
            )

    def frames_input(self, batch: Mapping[str, Any]):
        """``(N, T, B, H, W[, 3])`` float frames of a sample or batch, on the model's device."""
        if "frames" not in batch or batch["frames"] is None:
            raise DataFileError(
                f"{self._where()} captions true video frames and this input holds none "
                "(a dataset made with --no-frames, or a capture); "
                "use a snapshot captioner (snapcap, baseline, two-stage:<method>)"
            )
        frames = _as_tensor(batch["frames"])
        if frames.dtype == torch.uint8:
            frames = frames.float() / 255.0
        rgb = frames.shape[-1] == 3 and frames.ndim in (5, 6)
        if frames.ndim == (5 if rgb else 4):
            frames = frames.unsqueeze(0)
        if frames.ndim != (6 if rgb else 5):
            raise ShapeError(
                f"{self._where()}: frames must be (T, B, H, W[, 3]) or (N, T, B, H, W[, 3]), got {tuple(frames.shape)}"
            )
        self._check_T(int(frames.shape[1]), "input")
        return frames.to(self.device, dtype=torch.float32)

    def snapshot_input(self, batch: Mapping[str, Any]):
        """``(meas (N, T, H, W), masks (B, H, W) or (N, B, H, W))`` checked against the checkpoint."""
        if "meas" not in batch or batch["meas"] is None:
            raise DataFileError(f"{self._where()} captions coded snapshots and this input holds no 'meas'")
        if batch.get("masks") is None:
            raise DataFileError(
                f"{self._where()} needs the coding masks of the snapshots and this input holds none (pass --mask)"
            )
        meas = _as_tensor(batch["meas"]).to(torch.float32)
        masks = _as_tensor(batch["masks"]).to(torch.float32)
        if meas.ndim == 3:
            meas = meas.unsqueeze(0)
        if meas.ndim != 4:
            raise ShapeError(f"{self._where()}: meas must be (T, H, W) or (N, T, H, W), got {tuple(meas.shape)}")
        if masks.ndim == 4 and masks.shape[0] == meas.shape[0] and (masks.shape[0] == 1 or bool((masks == masks[:1]).all())):
            masks = masks[0]  # a collated batch of shared masks
        if masks.ndim not in (3, 4) or (masks.ndim == 4 and masks.shape[0] != meas.shape[0]):
            raise ShapeError(
                f"{self._where()}: masks must be (B, H, W) or (N, B, H, W) for meas {tuple(meas.shape)}, got {tuple(masks.shape)}"
            )
        if tuple(masks.shape[-2:]) != tuple(meas.shape[-2:]):
            raise ShapeError(
                f"{self._where()}: masks are {tuple(masks.shape[-2:])} but the snapshots are {tuple(meas.shape[-2:])}"
            )
        self._check_T(int(meas.shape[1]), "input")
        frames_per = int(masks.shape[-3])
        if not self.two_stage:
            if frames_per != self.B:
                raise ShapeError(
                    f"{self._where()} was trained for B={self.B} frames per snapshot; these masks have B={frames_per} "
                    f"(use data made with --B {self.B}, or train a captioner for B={frames_per})"
                )
            size = self.image_size
            if tuple(meas.shape[-2:]) != (size, size):
                raise ShapeError(
                    f"{self._where()} works at {size}x{size}; the snapshots are {meas.shape[-2]}x{meas.shape[-1]} "
                    f"(simulate the data with --size {size}; real captures must be cropped to that size with their masks)"
                )
        return meas.to(self.device), masks.to(self.device)

    def caption(self, sample_or_batch: Any, beam_size: int = 1, method: str | None = None, **generate: Any) -> list[str]:
        """Captions of one sample dict (``meas (T, H, W)``, ``masks``, ``frames``...) or a batch.

        Args:
            sample_or_batch: a sample dict of :mod:`snapcap.datasets.torch_data`, a batch made
                by ``collate_samples`` (leading N axis), or a list of sample dicts.
            beam_size: 1: greedy decoding; more: beam search with that many beams.
            method: ``"greedy"`` or ``"beam"`` (default: from ``beam_size``).
            **generate: more options of :meth:`CaptionDecoder.generate` (``max_length``...).

        Returns:
            One caption per video.
        """
        batch = self._batch(sample_or_batch)
        method = method or ("beam" if beam_size > 1 else "greedy")
        options = dict(generate, method=method)
        if method == "beam":
            options["beam_size"] = int(beam_size)
        if self.two_stage:
            self.model.bayer = batch.get("bayer")[0] if isinstance(batch.get("bayer"), list) else batch.get("bayer")
        cuda = self.device.startswith("cuda")
        if self.kind == "frames":
            inputs: tuple = (self.frames_input(batch),)
        else:
            inputs = self.snapshot_input(batch)
        if cuda:  # this captioner's GPU, which need not be the current one (--device cuda:1)
            torch.cuda.synchronize(self.device)
        start = time.perf_counter()
        with torch.no_grad():
            ids = self.model.caption(*inputs, **options)
        if cuda:
            torch.cuda.synchronize(self.device)
        total = time.perf_counter() - start
        recon = float(getattr(self.model, "last_recon_seconds", 0.0)) if self.two_stage else 0.0
        self.timings = {"total": total, "recon": recon, "caption": max(0.0, total - recon)}
        return [self.vocab.decode(row) for row in ids]

    caption_batch = caption


def load_captioner(path: str | Path, device: str = "cpu", name: str | None = None) -> Captioner:
    """A :class:`Captioner` from any snapcap captioner checkpoint (``teacher.pt``, ``snapcap.pt``, ``vccv.pt``...).

    Args:
        path: the checkpoint file.
        device: torch device of the networks.
        name: when given, the captioner the file must hold.

    Raises:
        DataFileError: a missing, unreadable or foreign file.
        ConfigError: the file holds another captioner than ``name``.
    """
    path = Path(path)
    if not path.is_file():
        raise DataFileError(f"{path}: no such checkpoint; make one with `snapcap train NAME --out {path.parent}`")
    zoo_name = checkpoint_name(path)
    if zoo_name is not None:
        entry = captioner_entry(zoo_name)
    else:  # snapcap's own captioners share one file format; the file says which one it is
        entry = CAPTIONERS["teacher"]
    model, config, vocab = entry.load_fn()(path, str(device))
    if zoo_name is None:
        stem = getattr(model, "name", "teacher")
        entry = next((e for e in CAPTIONERS.values() if e.group == "snapcap" and e.file_stem == stem), entry)
    if name is not None and name != entry.name:
        raise ConfigError(f"{path}: holds the {entry.name!r} captioner, not {name!r}")
    return Captioner(entry.name, model, config, vocab, checkpoint=path, device=str(device), kind=entry.kind)


def create_two_stage(
    name: str, checkpoints: str | Path | Mapping[str, Any], recon_params: Any = None, device: str = "cpu"
) -> Captioner:
    """``two-stage:<method>``: reconstruct with a :data:`snapcap.recon.api.METHODS` method, then the teacher."""
    path = checkpoint_file(name, checkpoints)
    return two_stage(load_captioner(path, device=device, name="teacher"), name.split(":", 1)[1], recon_params=recon_params)


def two_stage(teacher: Captioner, method: str, recon_params: Any = None) -> Captioner:
    """The two-stage captioner of a loaded ``teacher``: reconstruct with ``method``, then caption the frames."""
    if method not in METHODS:
        raise ConfigError(
            f"unknown captioner 'two-stage:{method}': {method!r} is not a reconstruction method ({', '.join(METHODS)})"
        )
    if teacher.name != "teacher":
        raise ConfigError(
            f"two-stage:{method}: two-stage captioning needs a teacher checkpoint; {teacher.checkpoint} holds {teacher.name!r}"
        )
    params = recon_params
    if isinstance(params, Mapping):
        params = dict(params)
        if method in ("pnp-ffdnet", "pnp-fastdvdnet", "unfold") and "device" not in params and teacher.device.startswith("cuda"):
            params["device"] = teacher.device
    model = TwoStageCaptioner(teacher.model, method, params=params)
    return Captioner(
        f"two-stage:{method}", model, teacher.config, teacher.vocab, checkpoint=teacher.checkpoint, device=teacher.device
    )


def create_captioner(
    name: str,
    checkpoints: str | Path | Mapping[str, Any],
    recon_params: Any = None,
    device: str = "cpu",
) -> Captioner:
    """Build a captioner of :func:`list_captioners` from its trained weights.

    Args:
        name: a registered name (``teacher``, ``snapcap``, ``baseline``, ``clip4caption``...), or
            a prefixed one: ``two-stage:<method>``, ``ensemble:<a>+<b>+...[@metric]``.
        checkpoints: the training folder (``teacher.pt``, ``snapcap.pt``...), a mapping name ->
            file, or the one ``.pt`` file of this captioner (the teacher's for two-stage).
        recon_params: two-stage only: the reconstruction method's parameters (a dict of
            overrides such as ``{"iterations": 50}`` or its parameter dataclass).
        device: torch device of the networks.

    Raises:
        ConfigError: unknown name (the message lists the known ones) or bad recon parameters.
        DataFileError: missing or unreadable checkpoint (the message gives the command that makes it).
    """
    handler = prefix_handler(name)
    if handler is not None:
        return handler(name, checkpoints, recon_params=recon_params, device=device)
    if name not in CAPTIONERS:
        raise ConfigError(f"unknown captioner {name!r}; expected one of {', '.join(list_captioners())} or ensemble:A+B...")
    if recon_params is not None:
        raise ConfigError(f"recon_params apply to two-stage captioners only, not {name!r}")
    return load_captioner(checkpoint_file(name, checkpoints), device=device, name=name)


def open_captioner(
    model: str, checkpoints: str | Path | None = None, recon: str | None = None, recon_params: Any = None, device: str = "cpu"
) -> Captioner:
    """A captioner from what a user names: a registered (or prefixed) name, or a checkpoint file.

    Args:
        model: a name of :func:`list_captioners` / ``ensemble:...`` (then ``checkpoints`` is the
            training folder), or a checkpoint file.
        recon: with a teacher checkpoint file: caption snapshots through this reconstruction
            method (two-stage); with a name, use ``two-stage:<method>`` instead.
        recon_params: the reconstruction parameters of two-stage captioning.
    """
    if is_captioner_name(model):
        if checkpoints is None and prefix_handler(model) is None:
            raise ConfigError(f"--model {model}: a captioner name needs --checkpoints DIR (the training folder)")
        if recon:
            raise ConfigError("--recon goes with a teacher checkpoint; with a name use --model two-stage:METHOD")
        return create_captioner(model, checkpoints, recon_params=recon_params, device=device)
    path = Path(model)
    if path.suffix in (".pt", ".pth") or path.exists():
        if recon:
            return two_stage(load_captioner(path, device=device), recon, recon_params=recon_params)
        if recon_params:
            raise ConfigError("--recon-param applies to two-stage captioning only (--recon METHOD)")
        return load_captioner(path, device=device)
    raise ConfigError(f"--model {model!r}: neither a checkpoint file nor a captioner name ({', '.join(list_captioners())})")


# --- the built-in captioners --------------------------------------------------------------------


def _register_builtins() -> None:
    register(
        CaptionerEntry(
            name="teacher",
            kind="frames",
            group="snapcap",
            help="train the CLIP teacher captioner on true frames (resumable)",
            description="Writes OUT/teacher.pt.",
            train=native.train_teacher_entry,
            load=load_native,
            add_arguments=native.add_teacher_arguments,
            data_defaults=native.teacher_data_defaults,
            check_data=native.check_teacher_data,
        )
    )
    helps = {
        "snapcap": "train the one-stage SnapCap student: stage 1 L_reg, stage 2 L_dis + beta L_cap (resumable)",
        "baseline": "train the baseline student: caption loss only (resumable)",
        "snapcap-reg-only": "ablation: the student with L_reg (stage 1) and the caption loss",
        "snapcap-dis-only": "ablation: the student with L_dis and the caption loss, no stage 1",
        "snapcap-temporal": "train the order-aware SnapCap student of an order-aware teacher (--preset tiny-temporal): "
        "per-frame tokens from g's frames, each distilled to the teacher's (resumable)",
        "baseline-temporal": "train the order-aware student with the caption loss only (resumable)",
    }
    for name, mode in STUDENT_NAMES.items():
        register(
            CaptionerEntry(
                name=name,
                kind="snapshot",
                group="snapcap",
                stem=mode,
                help=helps[name],
                description=f"{helps[name]}. Needs the teacher (--teacher, default OUT/teacher.pt); writes OUT/{mode}.pt.",
                train=functools.partial(native.train_student_entry, mode=mode),
                load=load_native,
                add_arguments=native.add_student_arguments,
                data_defaults=native.student_data_defaults,
                check_data=native.check_student_data,
            )
        )
    zoo = "snapcap.caption.zoo"
    register(
        CaptionerEntry(
            name="clip4caption",
            kind="frames",
            help=(
                "train CLIP4Caption: CLIP frame features, 1-layer transformer encoder, 3-layer decoder, cross-entropy (resumable)"
            ),
            train=f"{zoo}.clip4caption:train",
            load=f"{zoo}.clip4caption:load",
            add_arguments=f"{zoo}.clip4caption:add_arguments",
            image_size=f"{zoo}.clip4caption:image_size",
            description="Writes OUT/clip4caption.pt.",
        )
    )
    register(
        CaptionerEntry(
            name="clip4videocap",
            kind="frames",
            help="train CLIP4VideoCap: multi-scale temporal fusion, Vis2Text distillation, commonsense sub-decoders (resumable)",
            train=f"{zoo}.clip4videocap:train",
            load=f"{zoo}.clip4videocap:load",
            add_arguments=f"{zoo}.clip4videocap:add_arguments",
            image_size=f"{zoo}.clip4videocap:image_size",
            description="Writes OUT/clip4videocap.pt.",
        )
    )
    register(
        CaptionerEntry(
            name="vccv",
            kind="frames",
            help="train VCCV: GOPs (I-frames + residuals) of the video, residuals-assisted encoder, LSTM decoder (resumable)",
            train=f"{zoo}.vccv:train",
            load=f"{zoo}.vccv:load",
            add_arguments=f"{zoo}.vccv:add_arguments",
            image_size=f"{zoo}.vccv:image_size",
            paper_beam=5,  # VCCV's paper decodes with beam search of width 5 (VCCV_DEFAULTS["beam_size"])
            description="Compresses the true video itself (block-matching P-frame emulation, "
            "or a real codec with --source codec). "
            "Writes OUT/vccv.pt.",
        )
    )
    register_prefix("two-stage:", create_two_stage)
    register_prefix("ensemble:", f"{zoo}.ensemble:create_ensemble")


_register_builtins()
