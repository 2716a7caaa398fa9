"""Captioners by name, in the manner of open_clip's factory.

Configurations are data (:data:`CAPTIONER_PRESETS`); trained weights are files in a folder, one
per captioner, as ``snapcap train ...`` writes them::

    <folder>/teacher.pt          snapcap train teacher --out <folder>
    <folder>/snapcap.pt          snapcap train snapcap --out <folder>          (needs teacher.pt)
    <folder>/baseline.pt         snapcap train baseline --out <folder>
    <folder>/reg-only.pt         snapcap train snapcap-reg-only --out <folder>
    <folder>/dis-only.pt         snapcap train snapcap-dis-only --out <folder>

:func:`create_captioner` turns a name of :func:`list_captioners` and those files into a
:class:`Captioner`, one interface for the three pipelines of the paper (Fig. 1):

* ``teacher`` — true frames -> CLIP teacher captioner (``kind == "frames"``);
* ``snapcap``, ``baseline``, ``snapcap-reg-only``, ``snapcap-dis-only`` — coded snapshot and
  masks -> one-stage student (``kind == "snapshot"``);
* ``two-stage:<method>`` — snapshot -> :mod:`snapcap.recon` method -> teacher (``kind ==
  "snapshot"``), e.g. ``two-stage:gap-tv``;
* the models of :mod:`snapcap.caption.zoo` (``clip4caption``, ``clip4videocap``...: files
  ``<folder>/<name>.pt`` from ``snapcap train <name> --out <folder>``), with their zoo kind;
* ``ensemble:<a>+<b>+...[@metric]`` — CLIP4Caption's consensus ensemble of any of the above
  (or checkpoint files): each video gets the member caption that scores best against the other
  members' captions (:func:`snapcap.caption.clip4caption.ensemble_select`; metric ``cider``,
  the default, or ``bleu4``).

Example::

    captioner = create_captioner("snapcap", "runs/tiny")
    captioner.caption(dataset[0])          # -> ["a red circle moves to the right"]
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from snapcap.caption.models import CaptionerConfig
from snapcap.errors import ConfigError, DataFileError, ShapeError

__all__ = [
    "CAPTIONER_PRESETS",
    "STUDENT_NAMES",
    "Captioner",
    "list_captioners",
    "is_captioner_name",
    "create_captioner",
    "load_captioner_file",
    "captioner_preset",
    "teacher_image_size",
    "checkpoint_file",
]

STUDENT_NAMES: dict[str, str] = {
    "snapcap": "snapcap",
    "baseline": "baseline",
    "snapcap-reg-only": "reg-only",
    "snapcap-dis-only": "dis-only",
}
"""Registry name -> student mode of :data:`snapcap.caption.train.STUDENT_MODES` (and file stem)."""

_TINY_STUDENT = {"B": 8, "image_size": 64, "widths": [16, 24, 32, 48], "blocks": [1, 1, 1, 1], "token_dim": 64}
_SMALL_STUDENT = {"B": 8, "image_size": 112, "widths": [32, 48, 64, 96], "blocks": [2, 2, 2, 2], "token_dim": 256}
_PAPER_STUDENT = {"B": 8, "image_size": 224, "widths": [64, 128, 256, 256], "blocks": [4, 6, 6, 6], "token_dim": 1024}

CAPTIONER_PRESETS: dict[str, CaptionerConfig] = {
    # Trained from scratch in seconds on a CPU: the offline default and the tests' size.
    "tiny": CaptionerConfig(
        teacher="snapcap-tiny-vit",
        pretrained=None,
        train_encoder=True,
        decoder={"width": 64, "layers": 2, "heads": 4, "dropout": 0.1, "max_length": 30, "max_prefix": 16},
        student=_TINY_STUDENT,
        B=8,
        T=8,
    ),
    # A CPU-trainable step up (112 x 112).
    "small": CaptionerConfig(
        teacher="snapcap-small-vit",
        pretrained=None,
        train_encoder=True,
        decoder={"width": 256, "layers": 4, "heads": 8, "dropout": 0.1, "max_length": 30, "max_prefix": 16},
        student=_SMALL_STUDENT,
        B=8,
        T=8,
    ),
    # The SnapCap paper: frozen OpenAI CLIP ViT-B/16, decoder width D = 1024, N1..N4 = 4, 6, 6, 6.
    "paper": CaptionerConfig(
        teacher="ViT-B-16",
        pretrained="openai",
        train_encoder=False,
        decoder={"width": 1024, "layers": 6, "heads": 16, "dropout": 0.1, "max_length": 30, "max_prefix": 16},
        student=_PAPER_STUDENT,
        B=8,
        T=8,
    ),
}
"""Named captioner configurations (architecture only; B and T are set from the data)."""


def list_captioners() -> list[str]:
    """The names :func:`create_captioner` accepts."""
    from snapcap.recon.api import METHODS

    from snapcap.caption.zoo import zoo_names

    return ["teacher", *STUDENT_NAMES, *(f"two-stage:{method}" for method in METHODS), *zoo_names()]


def is_captioner_name(name: str) -> bool:
    """Whether ``name`` is a name :func:`create_captioner` takes (``ensemble:...`` included)."""
    return name.startswith("ensemble:") or name in list_captioners()


def teacher_image_size(name: str) -> int:
    """The input size S (S x S) of an open_clip ViT config, without building the model."""
    from snapcap.caption.teacher import _open_clip

    open_clip = _open_clip()
    config = open_clip.get_model_config(name)
    if not config:
        raise ConfigError(f"unknown teacher model {name!r} (not an open_clip or snapcap model config)")
    size = config.get("vision_cfg", {}).get("image_size", 224)
    return int(size[0] if isinstance(size, (tuple, list)) else size)


def captioner_preset(name: str, B: int | None = None, T: int | None = None, **overrides: Any) -> CaptionerConfig:  # noqa: N803
    """A copy of :data:`CAPTIONER_PRESETS` ``[name]`` for the data's B and T.

    The student's ``image_size`` always follows the teacher's (the student works at the
    teacher's patch grid); ``overrides`` replace fields (``pretrained=None``...).
    """
    if name not in CAPTIONER_PRESETS:
        raise ConfigError(f"unknown captioner preset {name!r}; expected one of {', '.join(CAPTIONER_PRESETS)}")
    config = replace(CAPTIONER_PRESETS[name], **overrides)
    B = config.B if B is None else int(B)  # noqa: N806
    T = config.T if T is None else int(T)  # noqa: N806
    student = dict(config.student, B=B, image_size=teacher_image_size(config.teacher))
    decoder = dict(config.decoder)
    decoder["max_prefix"] = max(int(decoder.get("max_prefix", 16)), T)
    return replace(config, B=B, T=T, student=student, decoder=decoder)


# --- the uniform interface --------------------------------------------------------------------


def _train_command(name: str, folder: Path) -> str:
    from snapcap.caption.zoo import is_zoo_name

    if name == "teacher" or is_zoo_name(name):
        return f"snapcap train {name} --out {folder}"
    return f"snapcap train {name} --teacher {folder / 'teacher.pt'} --out {folder}"


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
    from snapcap.caption.zoo import is_zoo_name

    if is_zoo_name(name):
        stem = name
    else:
        stem = "teacher" if name == "teacher" or name.startswith("two-stage:") else STUDENT_NAMES[name]
    key = "teacher" if stem == "teacher" else name
    if isinstance(checkpoints, Mapping):
        value = checkpoints.get(key, checkpoints.get(stem))
        if value is None:
            raise DataFileError(f"no checkpoint for {key!r} among {sorted(checkpoints)}; make one with `{_train_command(key, Path('RUN'))}`")
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
        raise DataFileError(f"{path}: no such checkpoint for captioner {key!r}; make it with `{_train_command(key, folder)}`{hint}")
    return path


def _as_tensor(value: Any):
    import torch

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
        self, name: str, model: Any, config: CaptionerConfig, vocab: Any, checkpoint: Path | None = None, device: str = "cpu", kind: str | None = None
    ):
        self.name = name
        self.model = model
        self.config = config
        self.vocab = vocab
        self.checkpoint = checkpoint
        self.device = str(device)
        if kind is None:
            from snapcap.caption.zoo import is_zoo_name, zoo_model

            kind = "frames" if name == "teacher" else zoo_model(name).kind if is_zoo_name(name) else "snapshot"
        self.kind = kind
        self.timings: dict[str, float] = {"total": 0.0, "recon": 0.0, "caption": 0.0}

    def __repr__(self) -> str:
        return f"Captioner({self.name!r}, kind={self.kind!r}, B={self.B}, T={self.T}, image_size={self.image_size}, checkpoint={str(self.checkpoint)!r})"

    # -- what the checkpoint expects ----------------------------------------------------------

    @property
    def B(self) -> int:  # noqa: N802
        return int(self.config.B)

    @property
    def T(self) -> int:  # noqa: N802
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
            from snapcap.datasets.torch_data import collate_samples

            return collate_samples(list(sample_or_batch))
        raise ConfigError(f"{self._where()}: expected a sample dict (meas/masks/frames), a batch of them or a list of them, got {type(sample_or_batch).__name__}")

    def _check_T(self, count: int, what: str) -> None:  # noqa: N802
        if count != self.T:
            raise ShapeError(f"{self._where()} was trained on T={self.T} snapshots per video; the {what} has T={count} (make the data with --T {self.T})")

    def frames_input(self, batch: Mapping[str, Any]):
        """``(N, T, B, H, W[, 3])`` float frames of a sample or batch, on the model's device."""
        if "frames" not in batch or batch["frames"] is None:
            raise DataFileError(
                f"{self._where()} captions true video frames and this input holds none "
                "(a dataset made with --no-frames, or a capture); use a snapshot captioner (snapcap, baseline, two-stage:<method>)"
            )
        import torch

        frames = _as_tensor(batch["frames"])
        if frames.dtype == torch.uint8:
            frames = frames.float() / 255.0
        rgb = frames.shape[-1] == 3 and frames.ndim in (5, 6)
        if frames.ndim == (5 if rgb else 4):
            frames = frames.unsqueeze(0)
        if frames.ndim != (6 if rgb else 5):
            raise ShapeError(f"{self._where()}: frames must be (T, B, H, W[, 3]) or (N, T, B, H, W[, 3]), got {tuple(frames.shape)}")
        self._check_T(int(frames.shape[1]), "input")
        return frames.to(self.device, dtype=torch.float32)

    def snapshot_input(self, batch: Mapping[str, Any]):
        """``(meas (N, T, H, W), masks (B, H, W) or (N, B, H, W))`` checked against the checkpoint."""
        import torch

        if "meas" not in batch or batch["meas"] is None:
            raise DataFileError(f"{self._where()} captions coded snapshots and this input holds no 'meas'")
        if batch.get("masks") is None:
            raise DataFileError(f"{self._where()} needs the coding masks of the snapshots and this input holds none (pass --mask)")
        meas = _as_tensor(batch["meas"]).to(torch.float32)
        masks = _as_tensor(batch["masks"]).to(torch.float32)
        if meas.ndim == 3:
            meas = meas.unsqueeze(0)
        if meas.ndim != 4:
            raise ShapeError(f"{self._where()}: meas must be (T, H, W) or (N, T, H, W), got {tuple(meas.shape)}")
        if masks.ndim == 4 and masks.shape[0] == meas.shape[0] and (masks.shape[0] == 1 or bool((masks == masks[:1]).all())):
            masks = masks[0]  # a collated batch of shared masks
        if masks.ndim not in (3, 4) or (masks.ndim == 4 and masks.shape[0] != meas.shape[0]):
            raise ShapeError(f"{self._where()}: masks must be (B, H, W) or (N, B, H, W) for meas {tuple(meas.shape)}, got {tuple(masks.shape)}")
        if tuple(masks.shape[-2:]) != tuple(meas.shape[-2:]):
            raise ShapeError(f"{self._where()}: masks are {tuple(masks.shape[-2:])} but the snapshots are {tuple(meas.shape[-2:])}")
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
        import torch

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
        if cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        with torch.no_grad():
            ids = self.model.caption(*inputs, **options)
        if cuda:
            torch.cuda.synchronize()
        total = time.perf_counter() - start
        recon = float(getattr(self.model, "last_recon_seconds", 0.0)) if self.two_stage else 0.0
        self.timings = {"total": total, "recon": recon, "caption": max(0.0, total - recon)}
        return [self.vocab.decode(row) for row in ids]

    caption_batch = caption


def load_captioner_file(path: str | Path, device: str = "cpu", name: str | None = None) -> Captioner:
    """A :class:`Captioner` from one checkpoint file (``teacher.pt``, ``snapcap.pt``...)."""
    from snapcap.caption.train import load_captioner
    from snapcap.caption.zoo import checkpoint_name, zoo_model

    path = Path(path)
    if not path.is_file():
        raise DataFileError(f"{path}: no such checkpoint; make one with `snapcap train teacher|snapcap|baseline ... --out {path.parent}`")
    zoo_name = checkpoint_name(path)
    if zoo_name is not None:
        if name is not None and name != zoo_name:
            raise ConfigError(f"{path}: holds the {zoo_name!r} captioner, not {name!r}")
        spec = zoo_model(zoo_name)
        model, config, vocab = spec.load_fn()(path, str(device))
        return Captioner(zoo_name, model, config, vocab, checkpoint=path, device=str(device), kind=spec.kind)
    model, config, vocab = load_captioner(path, device=device)
    stored = getattr(model, "name", "teacher")
    registry_name = {mode: key for key, mode in STUDENT_NAMES.items()}.get(stored, stored)
    if name is not None and name != registry_name:
        raise ConfigError(f"{path}: holds the {registry_name!r} captioner, not {name!r}")
    return Captioner(registry_name, model, config, vocab, checkpoint=path, device=str(device))


def create_captioner(
    name: str,
    checkpoints: str | Path | Mapping[str, Any],
    recon_params: Any = None,
    device: str = "cpu",
) -> Captioner:
    """Build a captioner of :func:`list_captioners` from its trained weights.

    Args:
        name: ``teacher``, ``snapcap``, ``baseline``, ``snapcap-reg-only``,
            ``snapcap-dis-only``, ``two-stage:<method>`` (a :data:`snapcap.recon.api.METHODS` name),
            a zoo model (``clip4caption``...) or ``ensemble:<a>+<b>+...[@metric]``.
        checkpoints: the training folder (``teacher.pt``, ``snapcap.pt``...), a mapping name ->
            file, or the one ``.pt`` file of this captioner (the teacher's for two-stage).
        recon_params: two-stage only: the reconstruction method's parameters (a dict of
            overrides such as ``{"iterations": 50}`` or its parameter dataclass).
        device: torch device of the networks.

    Raises:
        ConfigError: unknown name (the message lists the known ones) or bad recon parameters.
        DataFileError: missing or unreadable checkpoint (the message gives the command that makes it).
    """
    from snapcap.caption.models import TwoStageCaptioner

    if name.startswith("ensemble:"):
        from snapcap.caption.clip4caption import create_ensemble

        return create_ensemble(name, checkpoints, recon_params=recon_params, device=device)
    known = list_captioners()
    if name not in known:
        raise ConfigError(f"unknown captioner {name!r}; expected one of {', '.join(known)}")
    if recon_params is not None and not name.startswith("two-stage:"):
        raise ConfigError(f"recon_params apply to two-stage captioners only, not {name!r}")
    path = checkpoint_file(name, checkpoints)
    if not name.startswith("two-stage:"):
        return load_captioner_file(path, device=device, name=name)
    teacher = load_captioner_file(path, device=device, name="teacher")
    method = name.split(":", 1)[1]
    params = recon_params
    if isinstance(params, Mapping):
        params = dict(params)
        if method in ("pnp-ffdnet", "pnp-fastdvdnet", "unfold") and "device" not in params and str(device).startswith("cuda"):
            params["device"] = str(device)
    model = TwoStageCaptioner(teacher.model, method, params=params)
    return Captioner(name, model, teacher.config, teacher.vocab, checkpoint=path, device=str(device))
