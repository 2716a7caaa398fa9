"""Command-line verbs of the captioning part: ``train <captioner>``, ``caption`` and ``eval``.

The main ``snapcap`` command wires them in::

    sub = parser.add_subparsers(dest="command")
    ...                                  # its own commands, ``train recon`` among them
    add_caption_commands(sub)            # ``caption``, ``eval``, and the caption verbs of ``train``

:func:`add_caption_commands` adds the caption verbs to the existing ``train`` command when there
is one (call it after the main CLI's ``train`` is added), else creates ``train`` itself;
:func:`add_train_verbs` adds them to any ``train`` sub-parser group.

``snapcap train teacher|snapcap|baseline|snapcap-reg-only|snapcap-dis-only``
    Train on snapcap dataset files (``--data FILE.h5 ...``) or on videos simulated on the fly
    from a corpus (``--corpus synthetic``, the default). Writes ``<out>/<name>.pt`` (students:
    ``snapcap.pt``, ``baseline.pt``, ``reg-only.pt``, ``dis-only.pt``), a resumable
    ``<out>/<stage>.ckpt`` (rerun the same command after an interruption to continue), a
    ``log.jsonl``, and a data sidecar ``<out>/<name>.data.json`` (how the training snapshots
    were made) with ``<out>/<name>.masks.npy`` (the training masks, when shared). Students need
    the teacher (``--teacher``, default ``<out>/teacher.pt``) and data at its B, T and image size.
    Runs under ``torchrun`` (DistributedDataParallel) as it is.

``snapcap train clip4caption|clip4videocap|...``
    The models of :mod:`snapcap.caption.zoo`, with the same data arguments; each writes
    ``<out>/<name>.pt`` (and the data sidecar). ``--preset`` (default ``tiny``) and the
    optimisation options default to the model's own settings; ``--help`` lists its options.

``snapcap caption INPUT --model PATH.pt``
    INPUT is a snapcap dataset file (``--samples 0:4``), a real capture (any layout of
    :func:`snapcap.hardware.load_capture`, with ``--mask`` when the file holds no masks), or a
    video file. A video is decoded at the model's image size (T·B frames, as the datasets do) and
    simulated with: the ``--mask`` file if given; else the training masks stored next to the
    checkpoint (``<name>.masks.npy``); else the masks the training configuration recorded in
    ``<name>.data.json`` regenerate; else ``DatasetConfig``'s defaults (random, seed 0) — the
    masks of a model trained with the default options. The Bayer pattern (or gray) and the noise
    come from the sidecar too (default: RGGB, no noise). A teacher checkpoint captions dataset
    frames and videos directly; with ``--recon METHOD`` it captions snapshots (two-stage).

``snapcap eval --data D.h5 --model NAME ... --checkpoints DIR``
    Metrics (BLEU-1..4, METEOR, ROUGE-L, CIDEr), latency per video (batch size 1) and peak
    memory of each captioner, as a Markdown table; ``-o OUT`` writes ``results.json`` and
    ``results.md`` (OUT a folder, or a ``.json`` file with the ``.md`` beside it).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from snapcap.errors import BackendUnavailableError, ConfigError, DataFileError, ShapeError

__all__ = ["add_caption_commands", "add_train_verbs", "TRAIN_VERBS", "VIDEO_SUFFIXES"]

TRAIN_VERBS: dict[str, str | None] = {
    "teacher": None,
    "snapcap": "snapcap",
    "baseline": "baseline",
    "snapcap-reg-only": "reg-only",
    "snapcap-dis-only": "dis-only",
}
"""``snapcap train`` verb -> student mode (None: the teacher)."""

_TRAIN_HELP = {
    "teacher": "train the CLIP teacher captioner on true frames (resumable)",
    "snapcap": "train the one-stage SnapCap student: stage 1 L_reg, stage 2 L_dis + beta L_cap (resumable)",
    "baseline": "train the baseline student: caption loss only (resumable)",
    "snapcap-reg-only": "ablation: the student with L_reg (stage 1) and the caption loss",
    "snapcap-dis-only": "ablation: the student with L_dis and the caption loss, no stage 1",
}

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".mpg", ".mpeg", ".m4v", ".wmv", ".flv", ".3gp", ".ogv")
_SPLIT_CHOICES = ["train", "val", "test", "all"]


# --- helpers ------------------------------------------------------------------------------------


def _size_type(text: str) -> tuple[int, int]:
    from snapcap.cli import _size

    return _size(text)


def _is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def _check_device(device: str) -> str:
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise BackendUnavailableError(f"--device {device}: CUDA is not available on this machine (torch {torch.__version__}); use --device cpu")
    elif device not in ("cpu", "mps"):
        raise ConfigError(f"--device must be cpu, cuda or cuda:N, got {device!r}")
    return device


def _recon_params(items: Sequence[str] | None) -> dict[str, Any] | None:
    if not items:
        return None
    params: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--recon-param takes NAME=VALUE (e.g. iterations=50), got {item!r}")
        key, text = item.split("=", 1)
        try:
            value: Any = json.loads(text)
        except json.JSONDecodeError:
            value = text
        if isinstance(value, list):
            value = tuple(value)
        params[key.strip().replace("-", "_")] = value
    return params


def _select(spec: str | None, count: int, what: str) -> list[int]:
    """Rows of ``0,3,5``, ``0:4``, ``2:``, ``all`` (default all); the reconstruct command's rule."""
    from snapcap.recon.inputs import parse_selection

    return parse_selection(None if spec is None else spec.strip().lower(), count, "samples")


class _CachedSamples:
    """Samples simulated on the fly, each made once and kept (frames as uint8: lossless)."""

    def __init__(self, dataset: Any):
        self.dataset = dataset
        self._cache: dict[int, dict[str, Any]] = {}

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict[str, Any]:
        import torch

        count = len(self)
        if index < 0:
            index += count
        if not 0 <= index < count:
            raise IndexError(f"index {index} out of range for {count} samples")
        if index not in self._cache:
            sample = dict(self.dataset[index])
            if isinstance(sample.get("frames"), torch.Tensor) and sample["frames"].is_floating_point():
                sample["frames"] = sample["frames"].mul(255.0).round_().to(torch.uint8)
            self._cache[index] = sample
        sample = dict(self._cache[index])
        if isinstance(sample.get("frames"), torch.Tensor) and sample["frames"].dtype == torch.uint8:
            sample["frames"] = sample["frames"].float().div_(255.0)
        return sample


def _dataset_config_of(path: Path):
    from snapcap.datasets.h5 import DatasetConfig, open_dataset

    with open_dataset(path) as handle:
        text = handle.attrs.get("config")
        if text is None:
            return None
        return DatasetConfig.from_dict(json.loads(text.decode() if isinstance(text, bytes) else text))


def _captions_of(dataset: Any) -> list[list[str]]:
    """Every sample's captions without decoding frames."""
    from snapcap.datasets.torch_data import MeasurementDataset, SimulatedDataset

    if isinstance(dataset, _CachedSamples):
        dataset = dataset.dataset
    if isinstance(dataset, SimulatedDataset):
        return [list(dataset.items[p].captions) for p in dataset.positions]
    if isinstance(dataset, MeasurementDataset):
        from snapcap.datasets.h5 import open_dataset

        out: list[list[str]] = []
        handles: dict[int, Any] = {}
        try:
            for file_index, row in dataset.rows:
                if file_index not in handles:
                    handles[file_index] = open_dataset(dataset.paths[file_index])
                out.append(json.loads(handles[file_index]["captions"][row]))
        finally:
            for handle in handles.values():
                handle.close()
        return out
    return [list(dataset[i]["captions"]) for i in range(len(dataset))]


# --- train ----------------------------------------------------------------------------------------


def _add_train_arguments(parser: argparse.ArgumentParser, student: bool, zoo: Any = None) -> None:
    data = parser.add_argument_group("data (dataset files, or simulation on the fly)")
    data.add_argument("--data", type=Path, nargs="+", help="snapcap dataset file(s) with frames (default: simulate from --corpus)")
    data.add_argument("--split", default="train", choices=_SPLIT_CHOICES, help="split to train on (default train)")
    data.add_argument("--limit", type=int, help="at most this many training videos")
    data.add_argument("--corpus", default="synthetic", choices=["synthetic", "msrvtt", "msvd", "folder", "benchmark"], help="corpus simulated on the fly (default synthetic)")
    data.add_argument("--root", type=Path, help="corpus folder (msrvtt, msvd, folder)")
    data.add_argument("--annotations", type=Path, nargs="*", help="MSR-VTT annotation JSON file(s)")
    data.add_argument("--captions", type=Path, help="MSVD caption file, or the folder corpus's captions CSV/JSON")
    data.add_argument("--mapping", type=Path, help="MSVD youtube_mapping.txt")
    data.add_argument("--paths", type=Path, nargs="*", help="benchmark .mat files")
    data.add_argument("--num-videos", type=int, default=200, help="synthetic corpus size (default 200)")
    data.add_argument("--corpus-seed", type=int, default=0)
    default_b = zoo.defaults.get("B", 8) if zoo is not None else 8
    default_t = zoo.defaults.get("T", 8) if zoo is not None else 8
    data.add_argument("--B", type=int, default=None, help=f"frames per snapshot (default: the preset's {default_b}" + (", or the teacher's)" if student else ")"))
    data.add_argument("--T", type=int, default=None, help=f"snapshots per video (default: the preset's {default_t}" + (", or the teacher's)" if student else ")"))
    data.add_argument("--size", type=_size_type, default=None, help="frame size N or HxW for simulation (default: the teacher's image size)")
    data.add_argument("--gray", action="store_true", help="gray video (default: RGB through a Bayer mosaic)")
    data.add_argument("--bayer", default="RGGB", help="Bayer pattern of RGB video (default RGGB)")
    data.add_argument("--mask", default="random", choices=["random", "shifting", "gray", "dmd"], help="mask kind (default random)")
    data.add_argument("--mask-seed", type=int, default=0)
    data.add_argument("--noise", default="none", help="noise spec, e.g. 'poisson:photons=1000+gaussian:sigma=0.01'")
    data.add_argument("--noise-seed", type=int, default=0)
    model = parser.add_argument_group("model and optimisation")
    if zoo is not None:
        model.add_argument("--preset", default="tiny", help="the model's preset (default tiny; see its documentation, e.g. paper)")
        model.add_argument("--pretrained", default=None, help="override the preset's open_clip pretrained tag ('none': random initialisation)")
        model.add_argument("--epochs", type=int, default=None, help="epochs (default: the preset's)")
        model.add_argument("--batch-size", type=int, default=None, help="default: the preset's")
        model.add_argument("--lr", type=float, default=None, help="learning rate (default: the preset's)")
        model.add_argument("--warmup-epochs", type=int, default=None, help="linear warm-up epochs (default: the preset's)")
        model.add_argument("--min-count", type=int, default=1, help="vocabulary: keep words seen at least this often")
        model.add_argument("--seed", type=int, default=0)
        model.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
        model.add_argument("--checkpoint-every", type=int, default=50, help="steps between resumable checkpoints")
        model.add_argument("--no-progress", action="store_true", help="no progress bars")
        try:
            extra = zoo.arguments_fn()
        except ConfigError as exc:  # a broken plug-in must not take the whole command line down
            parser.set_defaults(zoo_error=str(exc))
            extra = None
        if extra is not None:
            extra(parser.add_argument_group(f"{zoo.name} options"))
        parser.add_argument("--out", "-o", type=Path, required=True, help="output folder")
        return
    if student:
        model.add_argument("--teacher", type=Path, default=None, help="the trained teacher (default: OUT/teacher.pt)")
    else:
        model.add_argument("--preset", default="tiny", choices=["tiny", "small", "paper"], help="captioner size (default tiny; paper: CLIP ViT-B/16 openai, D=1024)")
        model.add_argument("--pretrained", default=None, help="override the preset's open_clip pretrained tag ('none': random initialisation)")
    model.add_argument("--epochs", type=int, default=30, help="epochs (students: of stage 2; default 30)")
    if student:
        model.add_argument("--stage1-epochs", type=int, default=30, help="epochs of stage 1 (L_reg; default 30)")
    model.add_argument("--batch-size", type=int, default=32)
    model.add_argument("--lr", type=float, default=3e-4, help="learning rate (students: of f and Proj; Conv2 and S keep 1e-6)")
    model.add_argument("--warmup-epochs", type=int, default=10, help="linear warm-up epochs (only when there are more epochs)")
    model.add_argument("--min-count", type=int, default=1, help="vocabulary: keep words seen at least this often")
    model.add_argument("--seed", type=int, default=0)
    model.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (under torchrun: cuda:LOCAL_RANK is used)")
    model.add_argument("--checkpoint-every", type=int, default=50, help="steps between resumable checkpoints")
    model.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--out", "-o", type=Path, required=True, help="output folder")


def add_train_verbs(what: argparse._SubParsersAction) -> None:
    """Add the captioner verbs (teacher, snapcap, baseline, ablations) to a ``train`` group."""
    for verb, mode in TRAIN_VERBS.items():
        parser = what.add_parser(verb, help=_TRAIN_HELP[verb], description=_TRAIN_HELP[verb] + ". " + (
            "Writes OUT/teacher.pt." if mode is None else f"Needs the teacher (--teacher, default OUT/teacher.pt); writes OUT/{mode}.pt."))
        _add_train_arguments(parser, student=mode is not None)
        parser.set_defaults(func=_cmd_train_caption, captioner=verb)
    from snapcap.caption.zoo import zoo_model, zoo_names

    for name in zoo_names():
        spec = zoo_model(name)
        parser = what.add_parser(name, help=spec.help, description=spec.help + (". " + spec.description if spec.description else ""))
        _add_train_arguments(parser, student=False, zoo=spec)
        parser.set_defaults(func=_cmd_train_zoo, captioner=name)


def _teacher_config(path: Path):
    import torch

    from snapcap.caption.models import CaptionerConfig

    if not path.is_file():
        raise DataFileError(f"{path}: no teacher checkpoint; train it first with `snapcap train teacher --out {path.parent}` (or pass --teacher)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 - damaged or foreign files
        raise DataFileError(f"{path}: not a readable snapcap checkpoint ({exc.__class__.__name__}: {exc})") from exc
    if not isinstance(state, dict) or state.get("kind") != "snapcap-captioner" or state.get("name") != "teacher":
        raise DataFileError(f"{path}: not a teacher checkpoint (made by `snapcap train teacher`)")
    return CaptionerConfig(**state["config"])


def _training_data(args: argparse.Namespace, B: int, T: int, size: tuple[int, int]):  # noqa: N803
    """(samples, description for the sidecar, DatasetConfig or None)."""
    from snapcap.datasets.h5 import DatasetConfig
    from snapcap.datasets.torch_data import MeasurementDataset, SimulatedDataset

    split = None if args.split == "all" else args.split
    if args.data:
        dataset = MeasurementDataset(args.data, split=split)
        info = dataset.info[0]
        if not all(entry["has_frames"] for entry in dataset.info):
            raise DataFileError(f"{args.data[0]}: training needs the video frames and this dataset holds none (made with --no-frames)")
        if len(dataset) == 0:
            from snapcap.datasets.h5 import dataset_info

            counts = dataset_info(args.data[0])["split_counts"]
            raise ConfigError(f"{args.data[0]}: no {args.split!r} videos (splits: {counts}); pass --split all or another split")
        config = _dataset_config_of(args.data[0])
        description = {"source": "files", "files": [str(p) for p in args.data], "split": args.split, "B": info["B"], "T": info["T"], "bayer": info["bayer"]}
        samples: Any = dataset
    else:
        from snapcap.cli import _open_corpus_from_args

        corpus = _open_corpus_from_args(args)
        config = DatasetConfig(
            B=B, T=T, size=size, gray=args.gray or args.corpus == "benchmark", bayer=args.bayer, mask=args.mask,
            mask_seed=args.mask_seed, noise=args.noise, noise_seed=args.noise_seed,
        )
        dataset = SimulatedDataset(corpus, config, split=split)
        if len(dataset) == 0:
            raise ConfigError(f"corpus {corpus.name}: no {args.split!r} videos; pass --split all or a larger --num-videos")
        description = {"source": "simulated", "corpus": corpus.describe(), "split": args.split}
        samples = _CachedSamples(dataset)
    if args.limit is not None:
        if args.limit < 1:
            raise ConfigError(f"--limit must be >= 1, got {args.limit}")
        samples = _Limited(samples, args.limit)
    return samples, description, config


class _Limited:
    def __init__(self, samples: Any, limit: int):
        self.samples = samples
        self.count = min(limit, len(samples))

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> dict[str, Any]:
        if index < 0:
            index += self.count
        if not 0 <= index < self.count:
            raise IndexError(index)
        return self.samples[index]


def _data_shape(samples: Any) -> tuple[int, int, tuple[int, int]]:
    first = samples[0]
    meas, masks = first["meas"], first["masks"]
    return int(masks.shape[-3]), int(meas.shape[-3]), (int(meas.shape[-2]), int(meas.shape[-1]))


def _write_sidecar(out: Path, stem: str, samples: Any, description: dict[str, Any], config) -> None:
    import torch

    out.mkdir(parents=True, exist_ok=True)
    B, T, size = _data_shape(samples)  # noqa: N806
    first = samples[0]
    record = dict(description, B=B, T=T, size=list(size), bayer=first.get("bayer"))
    record["dataset_config"] = None if config is None else config.to_dict()
    masks = first["masks"]
    shared = config is None or not config.per_sample_masks
    record["shared_masks"] = bool(shared)
    if shared:
        array = (masks.numpy() if isinstance(masks, torch.Tensor) else np.asarray(masks)).astype(np.float32)
        tmp = out / f".{stem}.masks.npy.tmp"
        with open(tmp, "wb") as handle:
            np.save(handle, array)
        os.replace(tmp, out / f"{stem}.masks.npy")
        record["masks_file"] = f"{stem}.masks.npy"
    tmp = out / f".{stem}.data.json.tmp"
    tmp.write_text(json.dumps(record, indent=2, default=str))
    os.replace(tmp, out / f"{stem}.data.json")


def _cmd_train_caption(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from snapcap.caption.registry import captioner_preset, teacher_image_size
    from snapcap.caption.train import CaptionTrainConfig, build_vocabulary, train_student, train_teacher

    verb = args.captioner
    mode = TRAIN_VERBS[verb]
    device = args.device
    if device.startswith("cuda") and "LOCAL_RANK" in os.environ and device == "cuda":
        device = f"cuda:{int(os.environ['LOCAL_RANK'])}"
    _check_device(device)
    for name in ("epochs", "batch_size", "checkpoint_every"):
        if getattr(args, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    out: Path = args.out
    progress = not args.no_progress
    if mode is None:
        overrides = {}
        if args.pretrained is not None:
            overrides = {"pretrained": None if args.pretrained.lower() == "none" else args.pretrained}
            if overrides["pretrained"] is None:
                overrides["train_encoder"] = True
        base = captioner_preset(args.preset, **overrides)
        image = teacher_image_size(base.teacher)
        want_b, want_t = args.B or base.B, args.T or base.T
        samples, description, data_config = _training_data(args, want_b, want_t, args.size or (image, image))
        B, T, size = _data_shape(samples)  # noqa: N806
        if args.B is not None and args.B != B or args.T is not None and args.T != T:
            raise ConfigError(f"--B {args.B} --T {args.T} do not match the data (B={B}, T={T}); leave them out with --data")
        if size != (image, image):
            print(
                f"note: the teacher resizes {size[0]}x{size[1]} frames to its {image}x{image}; students train on snapshots "
                f"of exactly {image}x{image}, so make their data at --size {image}",
                file=sys.stderr,
            )
        captioner_config = captioner_preset(args.preset, B=B, T=T, **overrides)
    else:
        teacher_path = args.teacher or out / "teacher.pt"
        captioner_config = _teacher_config(teacher_path)
        image = teacher_image_size(captioner_config.teacher)
        if args.B is not None and args.B != captioner_config.B or args.T is not None and args.T != captioner_config.T:
            raise ConfigError(
                f"{teacher_path} was trained with B={captioner_config.B}, T={captioner_config.T}; the student is built for the teacher's B and T "
                f"(got --B {args.B} --T {args.T}); train a teacher for those first"
            )
        samples, description, data_config = _training_data(args, captioner_config.B, captioner_config.T, args.size or (image, image))
        B, T, size = _data_shape(samples)  # noqa: N806
        if (B, T) != (captioner_config.B, captioner_config.T):
            raise ShapeError(f"the data has B={B}, T={T} but the teacher {teacher_path} was trained with B={captioner_config.B}, T={captioner_config.T}")
        if size != (image, image):
            raise ShapeError(f"the student works at the teacher's image size {image}x{image}; the data is {size[0]}x{size[1]} (make it with --size {image})")
    config = CaptionTrainConfig(
        epochs=args.epochs,
        stage1_epochs=getattr(args, "stage1_epochs", 30),
        batch_size=args.batch_size,
        lr=args.lr,
        lr_encoder=args.lr,
        lr_proj=args.lr,
        warmup_epochs=args.warmup_epochs,
        min_count=args.min_count,
        seed=args.seed,
        device=device,
        checkpoint_every=args.checkpoint_every,
    )
    stem = "teacher" if mode is None else mode
    if _is_main_process():
        _write_sidecar(out, stem, samples, description, data_config)
    print(f"train {verb}: {len(samples)} video(s), B={B}, T={T}, {size[0]}x{size[1]}, {'teacher ' + captioner_config.teacher if mode is None else 'student'} -> {out}", file=sys.stderr)
    if mode is None:
        vocab = build_vocabulary([{"captions": captions} for captions in _captions_of(samples)], args.min_count)
        path = train_teacher(samples, out, replace(captioner_config), config, vocab=vocab, progress=progress)
    else:
        path = train_student(samples, teacher_path, out, mode, config, progress=progress)
    if _is_main_process():
        print(f"wrote {path}")
    return 0


def _cmd_train_zoo(args: argparse.Namespace) -> int:
    """``snapcap train NAME`` of a :mod:`snapcap.caption.zoo` model."""
    from snapcap.caption.zoo import zoo_model

    spec = zoo_model(args.captioner)
    if getattr(args, "zoo_error", None):
        raise ConfigError(args.zoo_error)
    device = args.device
    if device.startswith("cuda") and "LOCAL_RANK" in os.environ and device == "cuda":
        device = f"cuda:{int(os.environ['LOCAL_RANK'])}"
    _check_device(device)
    for name in ("epochs", "batch_size", "checkpoint_every", "warmup_epochs", "min_count"):
        value = getattr(args, name, None)
        if value is not None and value < (0 if name == "warmup_epochs" else 1):
            raise ConfigError(f"--{name.replace('_', '-')} must be >= {0 if name == 'warmup_epochs' else 1}, got {value}")
    if args.lr is not None and not args.lr > 0:
        raise ConfigError(f"--lr must be > 0, got {args.lr}")
    options = {key: value for key, value in vars(args).items() if key not in ("func", "command", "what", "zoo_error")}
    options["device"] = device
    want_b = args.B or int(spec.defaults.get("B", 8))
    want_t = args.T or int(spec.defaults.get("T", 4))
    image = spec.size_for(options)
    samples, description, data_config = _training_data(args, want_b, want_t, args.size or (image, image))
    B, T, size = _data_shape(samples)  # noqa: N806
    if args.data and (args.B is not None and args.B != B or args.T is not None and args.T != T):
        raise ConfigError(f"--B {args.B} --T {args.T} do not match the data (B={B}, T={T}); leave them out with --data")
    options.update(B=B, T=T, size=list(size))
    out: Path = args.out
    if _is_main_process():
        _write_sidecar(out, spec.name, samples, description, data_config)
    print(f"train {spec.name}: {len(samples)} video(s), B={B}, T={T}, {size[0]}x{size[1]} -> {out}", file=sys.stderr)
    path = spec.train_fn()(samples, out, options, not args.no_progress)
    if _is_main_process():
        print(f"wrote {path}")
    return 0


# --- caption ------------------------------------------------------------------------------------


def _add_model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--recon-param", action="append", metavar="NAME=VALUE", help="two-stage: a reconstruction parameter (repeatable), e.g. iterations=50")
    parser.add_argument("--beam", type=int, default=1, help="beam size (1: greedy, the default)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")


def _add_caption(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "caption",
        help="caption a dataset file, a real capture or a video file with a trained captioner",
        description="Caption snapshots or videos. INPUT: a snapcap dataset .h5 (--samples), a capture file "
        "(with --mask when it holds no masks) or a video file (simulated with --mask, else the training masks).",
    )
    parser.add_argument("input", type=Path)
    parser.add_argument("--model", required=True, help="a checkpoint (teacher.pt, snapcap.pt...) or a captioner name with --checkpoints")
    parser.add_argument("--checkpoints", type=Path, help="training folder, when --model is a name")
    parser.add_argument("--recon", help="with a teacher checkpoint: caption snapshots through this reconstruction method (two-stage)")
    parser.add_argument("--mask", type=Path, help="mask file for captures without masks, or to simulate a video with")
    parser.add_argument("--mask-key", help="variable of the mask file")
    parser.add_argument("--B", type=int, default=None, help="frames per snapshot of a capture that does not say it")
    parser.add_argument("--samples", help="dataset rows: 0,3,5 or 0:4 or all (default all)")
    parser.add_argument("--split", default="all", choices=_SPLIT_CHOICES, help="dataset split (default all)")
    parser.add_argument("--json", action="store_true", help="print one JSON object per video")
    _add_model_arguments(parser)
    parser.set_defaults(func=_cmd_caption)


def _open_captioner(model: str, checkpoints: Path | None, recon: str | None, params: dict[str, Any] | None, device: str):
    from snapcap.caption.registry import Captioner, create_captioner, is_captioner_name, list_captioners, load_captioner_file

    _check_device(device)
    path = Path(model)
    if is_captioner_name(model):
        if checkpoints is None and not model.startswith("ensemble:"):
            raise ConfigError(f"--model {model}: a captioner name needs --checkpoints DIR (the training folder)")
        if recon:
            raise ConfigError("--recon goes with a teacher checkpoint; with a name use --model two-stage:METHOD")
        return create_captioner(model, checkpoints, recon_params=params, device=device)
    if path.suffix in (".pt", ".pth") or path.exists():
        captioner = load_captioner_file(path, device=device)
        if recon:
            if captioner.name != "teacher":
                raise ConfigError(f"--recon {recon}: two-stage captioning needs a teacher checkpoint; {path} holds {captioner.name!r}")
            from snapcap.caption.models import TwoStageCaptioner

            return Captioner(f"two-stage:{recon}", TwoStageCaptioner(captioner.model, recon, params=params), captioner.config, captioner.vocab, checkpoint=path, device=device)
        if params:
            raise ConfigError("--recon-param applies to two-stage captioning only (--recon METHOD)")
        return captioner
    raise ConfigError(f"--model {model!r}: neither a checkpoint file nor a captioner name ({', '.join(list_captioners())})")


def _is_snapcap_dataset(path: Path) -> bool:
    if path.suffix.lower() not in (".h5", ".hdf5"):
        return False
    from snapcap.datasets.h5 import FORMAT, h5py_with_filters

    h5py = h5py_with_filters()
    try:
        with h5py.File(path, "r") as handle:
            found = handle.attrs.get("format")
    except OSError:
        return False
    return (found.decode() if isinstance(found, bytes) else found) == FORMAT


def _sidecar(captioner) -> tuple[dict[str, Any] | None, np.ndarray | None]:
    if captioner.checkpoint is None:
        return None, None
    path = Path(captioner.checkpoint)
    meta_path = path.with_name(f"{path.stem}.data.json")
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else None
    masks_path = path.with_name(f"{path.stem}.masks.npy")
    masks = np.load(masks_path) if masks_path.is_file() else None
    return meta, masks


def _video_samples(path: Path, captioner, args: argparse.Namespace) -> tuple[list[dict[str, Any]], list[str]]:
    """One sample dict of a video file, simulated as the captioner's training data was."""
    import torch

    from snapcap.datasets.h5 import DatasetConfig
    from snapcap.datasets.video import read_clip

    notes: list[str] = []
    meta, stored_masks = _sidecar(captioner)
    size = captioner.image_size
    B, T = captioner.B, captioner.T  # noqa: N806
    if args.B is not None and args.B != B and not captioner.two_stage:
        raise ShapeError(f"--B {args.B}: {captioner.checkpoint} was trained for B={B}")
    B = args.B or B  # noqa: N806
    config_data = (meta or {}).get("dataset_config")
    gray = bool(config_data and config_data.get("gray"))
    bayer = None if gray else ((meta or {}).get("bayer") or (config_data or {}).get("bayer") or "RGGB")
    noise = (config_data or {}).get("noise", "none")
    clip = read_clip(path, T, B, (size, size), gray=gray)
    frames = torch.from_numpy(clip).float().div_(255.0)
    sample: dict[str, Any] = {"frames": frames, "video_id": path.stem, "captions": [], "bayer": bayer, "index": 0, "split": "none"}
    if captioner.kind == "frames":
        return [sample], notes
    if args.mask is not None:
        from snapcap.cacti.masks import load_masks

        masks = load_masks(args.mask, key=args.mask_key, B=B)
        notes.append(f"masks from {args.mask}")
    elif stored_masks is not None and stored_masks.shape[-3] == B:
        masks = stored_masks
        notes.append(f"the training masks stored beside {captioner.checkpoint}")
    else:
        from snapcap.cacti.masks import MaskSpec, make_masks

        base = DatasetConfig.from_dict(config_data) if config_data else DatasetConfig(B=B, T=T, size=(size, size))
        spec = MaskSpec(base.mask, B, size, size, seed=base.mask_seed, params=dict(base.mask_params))
        masks = make_masks(spec)
        notes.append(f"masks regenerated: {base.mask}, seed {base.mask_seed}" + ("" if config_data else " (DatasetConfig defaults; no training record beside the checkpoint)"))
    masks = np.asarray(masks, dtype=np.float32)
    if tuple(masks.shape[-2:]) != (size, size):
        raise ShapeError(f"the masks are {masks.shape[-2]}x{masks.shape[-1]} but {captioner.name} works at {size}x{size}")
    from snapcap.cacti.simulate import simulate

    video = clip.reshape((1, T * B) + clip.shape[2:])
    result = simulate(video, masks=masks, bayer=bayer, noise=None if noise in (None, "none") else noise, seed=0)
    sample["meas"] = torch.as_tensor(np.asarray(result.meas[0], dtype=np.float32))
    sample["masks"] = torch.from_numpy(masks)
    return [sample], notes


def _capture_samples(path: Path, captioner, args: argparse.Namespace) -> tuple[list[dict[str, Any]], list[str]]:
    import torch

    try:
        from snapcap.hardware import load_capture
    except ImportError as exc:  # pragma: no cover - hardware drivers in progress
        raise BackendUnavailableError(f"{path}: reading captures needs snapcap.hardware ({exc})") from exc
    if captioner.kind == "frames":
        raise ConfigError(f"{path}: a capture holds snapshots and the teacher captions true frames; add --recon METHOD (two-stage) or use a student checkpoint")
    capture = load_capture(path, mask=args.mask, mask_key=args.mask_key, B=args.B)
    notes = [f"capture {capture.layout}: {capture.num_snapshots} snapshot(s) {capture.frame_shape[0]}x{capture.frame_shape[1]}, B={capture.B}, bayer={capture.bayer}"]
    if capture.masks is None:  # pragma: no cover - load_capture raises first
        raise DataFileError(capture.mask_help or f"{path}: no masks; pass --mask")
    meta, _ = _sidecar(captioner)
    if meta is not None and not captioner.two_stage and (meta.get("bayer") or None) != (capture.bayer or None):
        notes.append(f"the captioner was trained on {meta.get('bayer') or 'gray'} snapshots and this capture is {capture.bayer or 'gray'}: expect poor captions")
    T = captioner.T  # noqa: N806
    meas = np.asarray(capture.meas, dtype=np.float32)
    masks = np.asarray(capture.masks, dtype=np.float32)
    count = meas.shape[0]
    if count < T:
        order = np.arange(T) % count
        notes.append(f"the capture has {count} snapshot(s) and the captioner takes T={T} per video: repeated cyclically")
    else:
        order = np.arange((count // T) * T)
        if count % T:
            notes.append(f"{count % T} trailing snapshot(s) do not fill a video of T={T} and are left out")
    samples = []
    for video, start in enumerate(range(0, len(order), T)):
        rows = order[start : start + T]
        if masks.ndim == 4:
            chosen = masks[rows]
            if not np.all(chosen == chosen[:1]):
                raise ShapeError(f"{path}: snapshots {rows.tolist()} have different masks; a video of T={T} snapshots must share its masks")
            video_masks = chosen[0]
        else:
            video_masks = masks
        samples.append({
            "meas": torch.from_numpy(meas[rows].copy()),
            "masks": torch.from_numpy(np.ascontiguousarray(video_masks)),
            "video_id": f"{path.stem}:{video}",
            "captions": [],
            "bayer": capture.bayer,
        })
    return samples, notes


def _cmd_caption(args: argparse.Namespace) -> int:
    from snapcap.datasets.torch_data import MeasurementDataset

    if args.beam < 1:
        raise ConfigError(f"--beam must be >= 1, got {args.beam}")
    path: Path = args.input
    if not path.exists():
        raise DataFileError(f"{path}: no such file")
    captioner = _open_captioner(args.model, args.checkpoints, args.recon, _recon_params(args.recon_param), args.device)
    notes: list[str] = []
    if path.suffix.lower() in VIDEO_SUFFIXES:
        samples, notes = _video_samples(path, captioner, args)
        rows: Any = samples
        selection = list(range(len(samples)))
    elif _is_snapcap_dataset(path):
        rows = MeasurementDataset(path, split=None if args.split == "all" else args.split, frames=captioner.kind == "frames")
        if captioner.kind == "frames" and not rows.info[0]["has_frames"]:
            raise DataFileError(f"{path}: holds no frames (made with --no-frames) and {captioner.name} captions frames; use a snapshot captioner or --recon METHOD")
        selection = _select(args.samples, len(rows), str(path))
    else:
        samples, notes = _capture_samples(path, captioner, args)
        rows = samples
        selection = list(range(len(samples)))
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    for index in selection:
        sample = rows[index]
        text = captioner.caption(sample, beam_size=args.beam)[0]
        video_id = str(sample.get("video_id", index))
        if args.json:
            record: dict[str, Any] = {"input": str(path), "video_id": video_id, "caption": text, "model": captioner.name, "latency_ms": 1000.0 * captioner.timings["total"]}
            if captioner.two_stage:
                record["recon_ms"] = 1000.0 * captioner.timings["recon"]
            if sample.get("captions"):
                record["references"] = list(sample["captions"])
            print(json.dumps(record))
        else:
            print(f"{video_id}\t{text}")
    return 0


# --- eval ---------------------------------------------------------------------------------------


def _add_eval(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "eval",
        help="caption metrics, latency and peak memory of captioners on a dataset file (Table 3)",
        description="Caption every video of a dataset split with each captioner (batch size 1) and report BLEU-4, METEOR, "
        "ROUGE-L, CIDEr, the latency per video and the peak memory.",
    )
    parser.add_argument("--data", type=Path, nargs="+", required=True, help="snapcap dataset file(s)")
    parser.add_argument("--split", default="test", choices=_SPLIT_CHOICES, help="split to evaluate (default test)")
    parser.add_argument("--limit", type=int, help="at most this many videos")
    parser.add_argument("--model", nargs="+", required=True, help="captioner name(s) (teacher, snapcap, baseline, two-stage:gap-tv, clip4caption, "
                        "ensemble:clip4caption+clip4videocap...) or checkpoint file(s)")
    parser.add_argument("--checkpoints", type=Path, help="the training folder holding teacher.pt, snapcap.pt... (needed with names)")
    parser.add_argument("--metrics", default="BLEU,METEOR,ROUGE-L,CIDEr", help="comma-separated (default BLEU,METEOR,ROUGE-L,CIDEr)")
    parser.add_argument("--tokenizer", default="auto", choices=["auto", "ptb", "regex"], help="caption tokenizer of the metrics (default auto: PTB when Java runs)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed warm-up captions before timing (default 1)")
    parser.add_argument("--out", "-o", type=Path, help="write results.json and results.md in this folder (or OUT.json and OUT.md)")
    _add_model_arguments(parser)
    parser.set_defaults(func=_cmd_eval)


def _cmd_eval(args: argparse.Namespace) -> int:
    from snapcap.caption.evaluate import evaluate, results_markdown
    from snapcap.datasets.torch_data import MeasurementDataset

    if args.beam < 1:
        raise ConfigError(f"--beam must be >= 1, got {args.beam}")
    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()]
    params = _recon_params(args.recon_param)
    split = None if args.split == "all" else args.split
    results = []
    for model in args.model:
        two_stage = model.startswith("two-stage:")
        captioner = _open_captioner(model, args.checkpoints, None, params if two_stage else None, args.device)
        dataset = MeasurementDataset(args.data, split=split, frames=captioner.kind == "frames")
        if len(dataset) == 0:
            from snapcap.datasets.h5 import dataset_info

            raise ConfigError(f"{args.data[0]}: no {args.split!r} videos (splits: {dataset_info(args.data[0])['split_counts']}); pass --split")
        if captioner.kind == "frames" and not all(info["has_frames"] for info in dataset.info):
            raise DataFileError(f"{args.data[0]}: holds no frames (made with --no-frames); the teacher row needs them")
        samples: Any = dataset if args.limit is None else _Limited(dataset, args.limit)
        result = evaluate(captioner, samples, beam_size=args.beam, metrics=metrics, tokenizer=args.tokenizer, warmup=args.warmup, progress=True)
        results.append(result)
        print(f"{model}: {len(result.videos)} video(s), {result.latency_ms:.1f} ms per video", file=sys.stderr)
    table = results_markdown(results)
    notes = sorted({note for result in results for note in result.notes})
    markdown = f"Evaluation on {', '.join(str(p) for p in args.data)} (split {args.split}, beam {args.beam}, batch size 1, device {args.device}).\n\n" + table
    if notes:
        markdown += "\n" + "\n".join(f"- {note}" for note in notes) + "\n"
    print(markdown, end="")
    if args.out is not None:
        if args.out.suffix.lower() == ".json":
            json_path, md_path = args.out, args.out.with_suffix(".md")
        else:
            json_path, md_path = args.out / "results.json", args.out / "results.md"
        json_path.parent.mkdir(parents=True, exist_ok=True)
        payload = {"data": [str(p) for p in args.data], "split": args.split, "rows": [r.to_row() for r in results], "results": [r.to_dict() for r in results]}
        json_path.write_text(json.dumps(payload, indent=2, default=str))
        md_path.write_text(markdown)
        print(f"wrote {json_path} and {md_path}", file=sys.stderr)
    return 0


# --- wiring -------------------------------------------------------------------------------------


def _train_group(sub: argparse._SubParsersAction) -> argparse._SubParsersAction:
    parser = sub.choices.get("train")
    if parser is None:
        parser = sub.add_parser("train", help="train models (teacher, snapcap, baseline, ...)")
        what = parser.add_subparsers(dest="what", metavar="MODEL")
        what.required = True
        return what
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    what = parser.add_subparsers(dest="what", metavar="MODEL")
    what.required = True
    return what


def add_caption_commands(sub: argparse._SubParsersAction, train: bool = True) -> None:
    """Add ``caption`` and ``eval``, and (``train=True``) the caption verbs of ``train``.

    Call it after the main CLI's own ``train`` command is added: the verbs join it.
    """
    _add_caption(sub)
    _add_eval(sub)
    if train:
        add_train_verbs(_train_group(sub))
