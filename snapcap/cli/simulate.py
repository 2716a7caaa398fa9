"""``snapcap simulate``: code a video into CACTI snapshots and write them with every parameter."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from snapcap.cacti.masks import load_masks
from snapcap.cacti.simulate import simulate
from snapcap.cacti.store import MEASUREMENT_SUFFIXES, save_measurements
from snapcap.cli.options import (
    add_camera_options,
    add_device_option,
    deprecated,
    generated_mask_spec,
    nonnegative_int,
    positive_int,
)
from snapcap.datasets.sources import load_frames
from snapcap.distributed import process_device
from snapcap.errors import ConfigError, DataFileError
from snapcap.fileio import check_output
from snapcap.viz import IMAGE_SUFFIXES, simulation_montage

__all__ = ["add_parser"]


class _LegacySeed(argparse.Action):
    def __call__(self, parser, namespace, values, option_string=None):
        deprecated("simulate --seed N", "--mask-seed N --noise-seed N")
        namespace.legacy_seed = values


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "simulate",
        help="simulate CACTI snapshots of a video",
        description="Code B frames per snapshot with masks, sum them, add noise; write the measurements, masks "
        "and every parameter (.npz or .h5) and a PNG montage.",
    )
    parser.add_argument("input", help="builtin:demo, builtin:scene:SEED, a video file, an .npy array or a benchmark .mat")
    parser.add_argument("--key", help="variable to read from a .mat input (default: orig)")
    add_camera_options(
        parser,
        B=None,
        T=False,
        size=None,
        mask_file=True,
        stored_mask=True,
        title="camera (default B: the mask file's or the stored mask's, else 8; size: the input's)",
    )
    parser.add_argument("--seed", type=nonnegative_int, action=_LegacySeed, dest="legacy_seed", help=argparse.SUPPRESS)
    parser.add_argument("--max-frames", type=positive_int, default=None, help="use at most this many frames per video")
    parser.add_argument("--raw", action="store_true", help="keep integer input values (0..255) instead of scaling to [0, 1]")
    parser.add_argument("--chunk-size", type=positive_int, default=16, help="snapshots simulated at a time (memory bound)")
    add_device_option(parser, default=None)
    parser.add_argument("--out", "-o", type=Path, default=Path("snapcap_meas.npz"), help="output .npz or .h5")
    parser.add_argument("--montage", type=Path, default=None, help="PNG montage path (default: next to --out)")
    parser.add_argument("--no-montage", action="store_true", help="do not write a montage")
    parser.add_argument("--save-frames", action="store_true", help="store the input frames in the output too")
    parser.set_defaults(func=run, legacy_seed=None)


def _masks(args: argparse.Namespace, stored, height: int, width: int):
    if args.stored_mask:
        if stored is None:
            raise ConfigError(f"--stored-mask: the input {args.input} holds no mask variable")
        return stored if args.B is None else stored[: args.B]
    if args.mask_file is not None:
        if args.mask is not None:
            raise ConfigError("--mask KIND and --mask-file PATH: give one")
        return load_masks(args.mask_file, key=args.mask_key, B=args.B)
    return generated_mask_spec(args, args.B or 8, height, width)


def run(args: argparse.Namespace) -> int:
    if args.out.suffix.lower() not in MEASUREMENT_SUFFIXES:  # before any work
        raise DataFileError(f"-o {args.out}: output must end in {', '.join(MEASUREMENT_SUFFIXES)}")
    if args.montage is not None and args.montage.suffix.lower() not in IMAGE_SUFFIXES:
        raise DataFileError(f"--montage {args.montage}: the montage is an image; use one of {', '.join(IMAGE_SUFFIXES)}")
    check_output(args.out)
    if args.montage is not None:
        check_output(args.montage, what="--montage")
    if args.legacy_seed is not None:
        args.mask_seed = args.legacy_seed if args.mask_seed is None else args.mask_seed
        args.noise_seed = args.legacy_seed if args.noise_seed is None else args.noise_seed
    source = load_frames(args.input, key=args.key, size=args.size, max_frames=args.max_frames, gray=bool(args.gray))
    video = source.frames
    height, width = video.shape[2], video.shape[3]
    masks = _masks(args, source.stored_masks, height, width)
    bayer = None if (args.bayer or "").lower() == "none" else args.bayer
    noise = args.noise or "none"
    result = simulate(
        video,
        B=args.B if not hasattr(masks, "shape") else None,
        masks=masks,
        bayer=bayer,
        noise=noise,
        seed=args.mask_seed or 0,
        noise_seed=args.noise_seed or 0,
        normalize=not args.raw,
        chunk_size=args.chunk_size,
        progress=True,
        device=None if args.device is None else process_device(args.device),
    )
    params = dict(result.params, source=source.description)
    out = save_measurements(args.out, result.meas, result.masks, params, frames=video if args.save_frames else None)
    print(f"wrote {out}: meas {tuple(result.meas.shape)} (N, T, H, W), B={params['B']}, bayer={params['bayer']}, noise={noise}")
    if params["frames_dropped"]:
        print(f"note: {params['frames_dropped']} trailing frame(s) per video did not fill a snapshot and were dropped")
    if not args.no_montage:
        montage = args.montage or out.with_name(out.stem + "_montage.png")
        b = params["B"]
        scale = params["input"]["scale"]
        first = np.asarray(video[0, :b], dtype=np.float32) / (scale if scale != 1.0 else max(float(video[0, :b].max()), 1.0))
        meas0 = np.asarray(result.meas[0, 0])
        norm = result.operator.normalized_measurement(meas0)
        title = f"{source.description}: B={b}, masks {params['masks']['kind']}, bayer {params['bayer']}, noise {noise}"
        simulation_montage(first, result.masks, meas0, montage, normalized=norm, title=title)
        print(f"wrote {montage}")
    return 0
