"""``snapcap reconstruct``: video frames from snapshots, with metrics, a montage and an animation."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from snapcap.cacti.store import save_measurements
from snapcap.cli.options import (
    add_device_option,
    add_mask_file_options,
    add_recon_param_option,
    add_samples_option,
    nonnegative_float,
    nonnegative_int,
    positive_floats_type,
    positive_int,
    positive_ints_type,
    recon_methods,
    recon_params_by_method,
)
from snapcap.errors import ConfigError
from snapcap.fileio import atomic_path, check_output, write_json
from snapcap.recon.api import make_params, reconstruct
from snapcap.recon.inputs import load_recon_input
from snapcap.recon.metrics import psnr, ssim
from snapcap.viz import reconstruction_montage, save_animation

__all__ = ["add_parser", "recon_overrides"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "reconstruct",
        help="reconstruct video frames from snapshots",
        description="Reconstruct benchmark .mat files, snapcap measurement/dataset files or real captures. "
        "Writes frames (.npy or .h5), an animation, a montage PNG and metrics.json (PSNR/SSIM when the truth is known).",
    )
    methods = recon_methods()
    parser.add_argument("input", type=Path)
    parser.add_argument("--method", default="gap-tv", choices=methods, help="reconstruction method (default gap-tv)")
    add_mask_file_options(parser)
    parser.add_argument(
        "--B", type=positive_int, help="frames per snapshot of a capture that does not say it (raw camera frames)"
    )
    add_samples_option(parser)
    parser.add_argument("--snapshots", help="snapshots to reconstruct: 0,2 or 1:4 or all (default all)")
    add_recon_param_option(parser)
    short = parser.add_argument_group("shortcuts for common parameters (the same as --recon-param METHOD:NAME=VALUE)")
    short.add_argument(
        "--iterations", type=positive_ints_type, help="iterations (gap-tv/admm-tv: one number; pnp: one per sigma)"
    )
    short.add_argument("--tv-weight", type=nonnegative_float, help="TV weight (gap-tv, admm-tv)")
    short.add_argument("--gamma", type=nonnegative_float, help="ADMM gamma (admm-tv)")
    short.add_argument("--sigmas", type=positive_floats_type, help="PnP sigma schedule on the 0..255 scale (e.g. 50,25,12,6)")
    short.add_argument("--warm-start", type=nonnegative_int, help="GAP-TV iterations before a PnP schedule")
    short.add_argument(
        "--weights",
        type=Path,
        help="checkpoint: the denoiser's (pnp-ffdnet, pnp-fastdvdnet) or the network's (birnat, stformer, efficientsci)",
    )
    short.add_argument("--checkpoint", type=Path, help="trained reconstructor (unfold): model.pt")
    add_device_option(parser, default=None)
    parser.add_argument("--format", choices=["npy", "h5"], default="npy", help="frames file format")
    parser.add_argument("--video", choices=["gif", "mp4", "none"], default="gif", help="animation of the reconstruction")
    parser.add_argument("--out", "-o", type=Path, required=True, help="output folder")
    parser.set_defaults(func=run)


def recon_overrides(args: argparse.Namespace) -> dict:
    """Parameters of ``args.method`` from ``--recon-param`` and the shortcut flags."""
    method = args.method
    grouped = recon_params_by_method(args.recon_param, default_method=method)
    others = sorted(set(grouped) - {method})
    if others:
        raise ConfigError(f"--recon-param {others[0]}:...: this run reconstructs with --method {method}")
    overrides: dict = dict(grouped.get(method, {}))
    if args.iterations is not None:
        overrides["iterations"] = args.iterations[0] if method in ("gap-tv", "admm-tv") else args.iterations
    for name in ("tv_weight", "gamma", "warm_start", "device"):
        value = getattr(args, name)
        if value is not None:
            overrides[name] = value
    if args.sigmas is not None:
        overrides["sigmas"] = tuple(v / 255.0 for v in args.sigmas)
        if args.iterations is None and method.startswith("pnp"):
            overrides["iterations"] = (10,) * len(args.sigmas)
    if args.weights is not None:
        overrides["weights"] = str(args.weights)
    if args.checkpoint is not None:
        overrides["checkpoint"] = str(args.checkpoint)
    return overrides


def run(args: argparse.Namespace) -> int:
    check_output(args.out, folder=True)
    params = make_params(args.method, **recon_overrides(args))
    source = load_recon_input(
        args.input, mask=args.mask_file, mask_key=args.mask_key, samples=args.samples or "all", snapshots=args.snapshots, B=args.B
    )
    op = source.operator
    per_sample = bool(op.batch_shape)
    frames, seconds, rows = [], [], []
    for index in tqdm(range(source.meas.shape[0]), desc=f"reconstruct ({args.method})", unit="snapshot"):
        snapshot_op = op.with_masks(op.masks[index]) if per_sample else op
        result = reconstruct(source.meas[index], snapshot_op, args.method, params=params)
        estimate = np.asarray(result.frames, dtype=np.float32)
        frames.append(estimate)
        seconds.append(result.seconds)
        row = {"snapshot": source.labels[index], "seconds": result.seconds}
        if source.truth is not None:
            channel = -1 if estimate.ndim == 4 else None
            clipped = np.clip(estimate, 0, 1)
            row["psnr"] = [float(v) for v in psnr(clipped, source.truth[index], channel_axis=channel)]
            row["ssim"] = [float(v) for v in ssim(clipped, source.truth[index], channel_axis=channel)]
        rows.append(row)
    stack = np.stack(frames)
    out = args.out
    if args.format == "npy":
        with atomic_path(out / "frames.npy") as tmp:
            with open(tmp, "wb") as handle:
                np.save(handle, stack)
    else:
        save_measurements(
            out / "frames.h5", source.meas, op.masks, {"method": args.method, "labels": source.labels}, frames=stack
        )
    summary = {
        "input": source.description,
        "method": args.method,
        "params": dataclasses.asdict(params),
        "snapshots": rows,
        "seconds_per_snapshot": float(np.mean(seconds)),
        "frames_shape": list(stack.shape),
    }
    if source.truth is not None:
        summary["mean_psnr"] = float(np.mean([np.mean(r["psnr"]) for r in rows]))
        summary["mean_ssim"] = float(np.mean([np.mean(r["ssim"]) for r in rows]))
    write_json(out / "metrics.json", summary)
    truth0 = None if source.truth is None else source.truth[0]
    title = f"{source.labels[0]} - {args.method}" + (f" - {np.mean(rows[0]['psnr']):.2f} dB" if truth0 is not None else "")
    reconstruction_montage(stack[0], source.meas[0], out / "montage.png", truth=truth0, title=title)
    if args.video != "none":
        save_animation(stack.reshape((-1,) + stack.shape[2:]), out / f"recon.{args.video}")
    line = f"{args.method}: {stack.shape[0]} snapshot(s), {np.mean(seconds):.2f} s per snapshot"
    if "mean_psnr" in summary:
        line += f", PSNR {summary['mean_psnr']:.2f} dB, SSIM {summary['mean_ssim']:.4f}"
    print(line)
    written = f"{out}/frames.{args.format}, {out}/metrics.json, {out}/montage.png" + (
        f", {out}/recon.{args.video}" if args.video != "none" else ""
    )
    print(f"wrote {written}")
    return 0
