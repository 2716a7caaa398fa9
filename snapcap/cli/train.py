"""``snapcap train MODEL``: the deep reconstructor (``recon``) and every registered captioner, in one place.

Captioner verbs come from the captioner registry (:func:`snapcap.caption.registry.trainable_captioners`):
the teacher, the SnapCap student and its baseline and ablations, and the zoo models. They share
the data options (dataset files with ``--data``, or a corpus simulated on the fly) and the
optimisation options; each adds its own (``--teacher`` for students, the zoo models' options).
Every verb writes ``OUT/<name>.pt``, a resumable checkpoint and the training record
(:mod:`snapcap.caption.records`), and runs under ``torchrun`` as it is.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path

from snapcap.caption.presets import preset_names
from snapcap.caption.pretrain import PretrainConfig, pretrain_tower
from snapcap.caption.records import write_training_record
from snapcap.caption.registry import CaptionerEntry, captioner_entry, trainable_captioners
from snapcap.cli.dataset import dataset_config_from_args
from snapcap.cli.options import (
    SPLIT_CHOICES,
    add_camera_options,
    add_corpus_options,
    add_device_option,
    nonnegative_int,
    open_corpus_from_args,
    positive_float,
    positive_int,
)
from snapcap.datasets.h5 import DatasetConfig
from snapcap.datasets.samples import Limited, data_shape, training_data
from snapcap.datasets.torch_data import MeasurementDataset, SimulatedDataset
from snapcap.distributed import process_device
from snapcap.errors import ConfigError
from snapcap.fileio import check_output
from snapcap.recon.nets import is_colour, list_nets
from snapcap.recon.nets.inference import parse_config
from snapcap.recon.nets.unfold import UNFOLD_PRESETS
from snapcap.recon.train import TrainReconConfig, net_training, train_recon

__all__ = ["add_parser", "captioner_options"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("train", help="train models: the deep reconstructor (recon) and the captioners")
    what = parser.add_subparsers(dest="what", metavar="MODEL")
    what.required = True
    _add_recon(what)
    _add_tower(what)
    for entry in trainable_captioners():
        verb = what.add_parser(entry.name, help=entry.help, description=entry.description or entry.help)
        _add_captioner_arguments(verb, entry)
        verb.set_defaults(func=run_captioner, captioner=entry.name)


# --- recon ---------------------------------------------------------------------------------------


def _add_recon(what: argparse._SubParsersAction) -> None:
    recon = what.add_parser(
        "recon",
        help="train a deep reconstructor (snapcap's unfolding net, BIRNAT, STFormer, EfficientSCI) on simulated snapshots",
        description="Train on dataset files with frames, or on snapshots simulated on the fly from a corpus with the "
        "target camera's masks (--mask random/shifting/..., --mask-file for a real one). Resumable; under torchrun "
        "every process takes its share of each batch (DistributedDataParallel).",
    )
    recon.add_argument("--data", type=Path, nargs="*", help="snapcap dataset file(s) with frames; default: simulate on the fly")
    add_corpus_options(recon, default="synthetic", num_videos=120, title="corpus for on-the-fly simulation")
    recon.add_argument("--limit", type=positive_int, help="at most this many training videos")
    add_camera_options(
        recon, B=8, T=2, size=(96, 96), mask_file=True, title="camera for on-the-fly simulation (gray unless a colour net)"
    )
    recon.add_argument(
        "--arch",
        default="unfold",
        choices=["unfold", *list_nets()],
        help="network: unfold (snapcap's, sized by --preset) or a published one / preset, trained with its authors' "
        "recipe (sqrt-MSE, Adam 1e-4, their crop size; see snapcap.recon.nets)",
    )
    recon.add_argument("--preset", default="tiny", choices=sorted(UNFOLD_PRESETS), help="unfold network size")
    recon.add_argument(
        "--net-config", default="", help="a published network's constructor arguments over its preset, e.g. units=2,dim=16"
    )
    recon.add_argument("--steps", type=positive_int, default=None, help="training steps (default 800)")
    recon.add_argument("--batch-size", type=positive_int, default=None, help="patches per step (unfold 8; else the recipe's)")
    recon.add_argument(
        "--patch", type=positive_int, default=None, help="training patch size (default: unfold 48, the recipe's crop)"
    )
    recon.add_argument("--lr", type=positive_float, default=None, help="learning rate (unfold 2e-3; else the recipe's)")
    recon.add_argument("--amp", action="store_true", help="bf16 autocast around each step (CUDA)")
    recon.add_argument("--seed", type=nonnegative_int, default=0, help="training seed")
    add_device_option(recon)
    recon.add_argument("--checkpoint-every", type=positive_int, default=100)
    recon.add_argument("--no-resume", action="store_true", help="start over even if OUT holds a checkpoint")
    recon.add_argument("--out", "-o", type=Path, required=True, help="output folder (checkpoint.pt, model.pt, log.jsonl)")
    recon.set_defaults(func=run_recon, split=None)


def run_recon(args: argparse.Namespace) -> int:
    check_output(args.out, folder=True)
    unfold = args.arch == "unfold"
    net = parse_config(args.net_config) if args.net_config else {}
    if unfold and net:
        raise ConfigError("--net-config is for a published network (--arch); the unfolding net is sized by --preset")
    colour = not unfold and is_colour(args.arch, **net)
    if args.data:
        train = MeasurementDataset(args.data, split="train")
        validation_source = MeasurementDataset(args.data, split="val")
        if len(train) == 0:
            train = MeasurementDataset(args.data)
    else:
        corpus = open_corpus_from_args(args)
        config = dataset_config_from_args(args, gray=not colour)
        if args.mask_file is not None:  # the target camera's real masks
            if args.mask is not None:
                raise ConfigError("--mask and --mask-file: give one (generated masks, or the camera's file)")
            params = {"path": str(args.mask_file), **({"key": args.mask_key} if args.mask_key else {})}
            config = dataclasses.replace(config, mask="file", mask_params=params)
        train = SimulatedDataset(corpus, config, split="train")
        validation_source = SimulatedDataset(corpus, config, split="val")
    samples = Limited(train, min(len(train), args.limit or len(train)))  # read as training asks: memory stays flat
    if len(samples) == 0:
        raise ConfigError("no training videos (a larger corpus, or dataset files with a train split)")
    validation = [validation_source[i] for i in range(min(len(validation_source), 4))] or None
    given = {
        key: value
        for key, value in (("steps", args.steps), ("batch_size", args.batch_size), ("patch", args.patch), ("lr", args.lr))
        if value is not None
    }
    runtime = {
        "seed": args.seed,
        "device": process_device(args.device),
        "checkpoint_every": args.checkpoint_every,
        "amp": args.amp,
    }
    if unfold:
        model = dataclasses.replace(UNFOLD_PRESETS[args.preset], B=int(samples[0]["masks"].shape[-3]))
        config = TrainReconConfig(model=model, **{**given, **runtime})
    else:
        config = net_training(args.arch, net=net, **{**given, **runtime})
    record = train_recon(samples, args.out, config, resume=not args.no_resume, validation=validation)
    last = [entry for entry in record["history"] if "psnr" in entry][-1:]
    val = [entry for entry in record["history"] if "val_psnr" in entry][-1:]
    print(f"trained {record['steps']} steps in {record['seconds']:.0f} s; model: {record['model']}")
    if last:
        print(
            f"last training batch PSNR {last[0]['psnr']:.2f} dB"
            + (f", validation PSNR {val[0]['val_psnr']:.2f} dB" if val else "")
        )
    return 0


# --- tower ---------------------------------------------------------------------------------------


def _add_tower(what: argparse._SubParsersAction) -> None:
    defaults = PretrainConfig()
    tower = what.add_parser(
        "tower",
        help="pretrain the tiny CLIP tower on procedural frames (the tiny preset's stand-in for CLIP's weights; resumable)",
        description=(
            "Pretrain a snapcap tower (default snapcap-tiny-vit) to read colours, shapes, centres, sizes and angles off "
            "single frames of fresh procedural scenes, and write its weights to OUT (loadable as a teacher checkpoint) "
            "with OUT.json (the recipe and held-out scores). The defaults remake the weights snapcap ships "
            "(pretrained='procedural')."
        ),
    )
    tower.add_argument("--model", default=defaults.model, help=f"snapcap tower config (default {defaults.model})")
    tower.add_argument("--steps", type=positive_int, default=defaults.steps, help=f"training steps (default {defaults.steps})")
    tower.add_argument("--batch-size", type=positive_int, default=defaults.batch_size)
    tower.add_argument("--lr", type=positive_float, default=defaults.lr, help=f"peak learning rate (default {defaults.lr})")
    tower.add_argument("--max-objects", type=positive_int, default=defaults.max_objects, help="objects per scene, at most")
    tower.add_argument("--seed", type=nonnegative_int, default=defaults.seed)
    tower.add_argument("--checkpoint-every", type=positive_int, default=defaults.checkpoint_every)
    add_device_option(tower)
    tower.add_argument("--out", "-o", type=Path, required=True, help="weights file to write (.pt)")
    tower.set_defaults(func=run_tower)


def run_tower(args: argparse.Namespace) -> int:
    check_output(args.out)
    config = PretrainConfig(
        model=args.model,
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        max_objects=args.max_objects,
        seed=args.seed,
        checkpoint_every=args.checkpoint_every,
        device=process_device(args.device),
    )
    scores = pretrain_tower(args.out, config, progress=not getattr(args, "no_progress", False))
    print(
        f"wrote {args.out}: held-out shape accuracy {scores['shape_accuracy']:.3f}, colours in view right "
        f"{scores['colour_accuracy']:.3f}, centre error {scores['position_error']:.3f} of the frame"
    )
    return 0


# --- captioners ----------------------------------------------------------------------------------


def _add_captioner_arguments(parser: argparse.ArgumentParser, entry: CaptionerEntry) -> None:
    data = parser.add_argument_group("data (dataset files, or simulation on the fly)")
    data.add_argument(
        "--data", type=Path, nargs="+", help="snapcap dataset file(s) with frames (default: simulate from --corpus)"
    )
    data.add_argument("--split", default="train", choices=SPLIT_CHOICES, help="split to train on (default train)")
    data.add_argument("--limit", type=positive_int, help="at most this many training videos")
    add_corpus_options(parser, default="synthetic", num_videos=200, title="corpus simulated on the fly")
    add_camera_options(parser, B=None, T=None, size=None, title="camera for simulation (default B, T and size: the model's)")
    model = parser.add_argument_group("model and optimisation (default: the model's own settings)")
    model.add_argument(
        "--preset",
        default=None,
        help=f"the model's preset (default tiny; the teacher: {', '.join(preset_names())}, from snapcap/caption/presets/; "
        "a student: its teacher's); unset options below take the preset's values",
    )
    model.add_argument(
        "--pretrained", default=None, help="override the preset's open_clip pretrained tag ('none': random initialisation)"
    )
    model.add_argument("--epochs", type=positive_int, default=None, help="epochs (students: of stage 2)")
    model.add_argument("--batch-size", type=positive_int, default=None)
    model.add_argument("--lr", type=positive_float, default=None, help="learning rate")
    model.add_argument("--warmup-epochs", type=nonnegative_int, default=None, help="linear warm-up epochs")
    model.add_argument("--min-count", type=positive_int, default=None, help="vocabulary: keep words seen at least this often")
    model.add_argument("--seed", type=nonnegative_int, default=0, help="training seed")
    model.add_argument(
        "--amp", action="store_true", help="mixed precision (bf16 autocast) for training; for CUDA (slower on most CPUs)"
    )
    model.add_argument(
        "--workers",
        type=nonnegative_int,
        default=None,
        help="DataLoader processes reading each step's samples ahead from --data files (default 0: in this process)",
    )
    add_device_option(model)
    model.add_argument(
        "--checkpoint-every", type=positive_int, default=None, help="steps between resumable checkpoints (default: the preset's)"
    )
    model.add_argument("--no-progress", action="store_true", help="no progress bars")
    try:
        extra = entry.arguments_fn()
    except ConfigError as exc:  # a broken plug-in must not take the whole command line down
        parser.set_defaults(entry_error=str(exc))
        extra = None
    if extra is not None:
        extra(parser.add_argument_group(f"{entry.name} options"))
    parser.add_argument("--out", "-o", type=Path, required=True, help="output folder")


def _is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def captioner_options(args: argparse.Namespace) -> dict:
    """The options a captioner's entry functions get from ``snapcap train NAME`` (before the data's B, T and size)."""
    options = {
        key: value for key, value in vars(args).items() if key not in ("func", "command", "what", "captioner", "entry_error")
    }
    options["device"] = process_device(args.device)
    return options


def run_captioner(args: argparse.Namespace) -> int:
    entry = captioner_entry(args.captioner)
    check_output(args.out, folder=True)
    if getattr(args, "entry_error", None):
        raise ConfigError(args.entry_error)
    options = captioner_options(args)
    B, T, image = entry.shape_for(options)
    if args.data:
        data = training_data(args.data, None if args.split == "all" else args.split, limit=args.limit)
    else:
        args.B, args.T = args.B or B, args.T or T
        args.size = args.size or (image, image)
        config: DatasetConfig = dataset_config_from_args(args, gray=args.corpus == "benchmark")
        data = training_data(
            None, None if args.split == "all" else args.split, corpus=open_corpus_from_args(args), config=config, limit=args.limit
        )
    got_b, got_t, size = data_shape(data.samples)
    entry.check(got_b, got_t, size, options)
    options.update(B=got_b, T=got_t, size=list(size))
    if _is_main_process():
        write_training_record(args.out, entry.file_stem, data.samples, data.description, data.config)
    print(
        f"train {entry.name}: {len(data.samples)} video(s), B={got_b}, T={got_t}, {size[0]}x{size[1]} -> {args.out}",
        file=sys.stderr,
    )
    path = entry.run_training(data.samples, args.out, options, not args.no_progress)
    if _is_main_process():
        print(f"wrote {path}")
    return 0
