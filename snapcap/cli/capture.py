"""``snapcap capture info|preview``: inspect and preview real CACTI captures.

``capture info FILE [--mask-file M] [--mask-key K] [--json]`` prints the layout found, B, shapes,
value ranges, the normalisation and notes; it works without the mask a layout needs (the notes
then say what is missing). ``capture preview FILE [--mask-file M] -o out.png`` writes a montage of
all snapshots and, when the masks are known, a quick GAP-TV reconstruction of the first snapshot
(``<out>_recon.png``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from snapcap.cli.options import add_mask_file_options, nonnegative_int, positive_int
from snapcap.errors import ConfigError
from snapcap.fileio import check_output
from snapcap.hardware.captures import LAYOUT_NAMES, load_capture
from snapcap.recon.api import reconstruct
from snapcap.viz import IMAGE_SUFFIXES, reconstruction_montage, snapshot_montage

__all__ = ["add_parser"]


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, help="the capture: .mat, .npz/.npy, snapcap .npz/.h5, or a raw frame (.dng, .cr2...)")
    add_mask_file_options(parser)
    parser.add_argument("--layout", default=None, choices=list(LAYOUT_NAMES), help="force a layout (default: detected)")
    parser.add_argument(
        "--B", type=positive_int, default=None, help="frames per snapshot, when the file does not say it (raw frames)"
    )
    parser.add_argument("--sample", type=nonnegative_int, default=0, help="sample of a snapcap dataset file")
    parser.add_argument("--normalisation", default=None, help="override: stored | scale:S | fullscale:F | peak")


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = sub.add_parser(
        "capture",
        help="inspect and preview real CACTI captures",
        description="Read real captures (Qiao et al. DMD files, Bayer captures, benchmark files, raw frames): "
        "show the layout and normalisation found, or preview the snapshots.",
    )
    verbs = parser.add_subparsers(dest="verb", metavar="VERB")
    verbs.required = True
    info = verbs.add_parser("info", help="layout, B, shapes, value ranges, normalisation, notes")
    _common(info)
    info.add_argument("--json", action="store_true", help="print JSON")
    info.set_defaults(func=run_info)
    preview = verbs.add_parser("preview", help="montage of the snapshots (and a quick GAP-TV preview with masks)")
    _common(preview)
    preview.add_argument("-o", "--out", type=Path, required=True, help="output image (.png, .jpg, .pdf, .svg)")
    preview.add_argument("--recon-out", type=Path, default=None, help="reconstruction preview (default: <out>_recon.png)")
    preview.add_argument("--iterations", type=positive_int, default=30, help="GAP-TV iterations of the preview")
    preview.add_argument("--no-recon", action="store_true", help="do not reconstruct")
    preview.set_defaults(func=run_preview)
    return parser


def _load(args: argparse.Namespace, require_mask: bool):
    return load_capture(
        args.file,
        mask=args.mask_file,
        mask_key=args.mask_key,
        layout=args.layout,
        B=args.B,
        sample=args.sample,
        normalisation=args.normalisation,
        require_mask=require_mask,
    )


def _text(info: dict[str, Any]) -> str:
    masks = "none" if info["masks_shape"] is None else str(tuple(info["masks_shape"]))
    if info["masks_shape"]:
        masks += f" in [{info['masks_range'][0]:.3g}, {info['masks_range'][1]:.3g}] from {info['mask_source']}"
    lines = [
        f"file:          {info['path']}",
        f"layout:        {info['layout']}",
        f"B:             {info['B']}",
        f"bayer:         {info['bayer']}",
        f"snapshots:     {info['snapshots']}  (meas {tuple(info['meas_shape'])})",
        f"stored values: {info['raw_dtype']} in [{info['raw_range'][0]:g}, {info['raw_range'][1]:g}]",
        f"normalisation: {info['normalisation']}",
        f"meas range:    [{info['meas_range'][0]:.4g}, {info['meas_range'][1]:.4g}]",
        f"masks:         {masks}",
        f"truth:         {'none' if info['truth_shape'] is None else tuple(info['truth_shape'])}",
        "variables:     "
        + (", ".join(f"{name} {tuple(v['shape'])} {v['class']}" for name, v in info["variables"].items()) or "-"),
    ]
    lines += [f"note:          {note}" for note in info["notes"]]
    return "\n".join(lines)


def run_info(args: argparse.Namespace) -> int:
    capture = _load(args, require_mask=False)
    info = capture.describe()
    print(json.dumps(info, indent=2) if args.json else _text(info))
    return 0


def run_preview(args: argparse.Namespace) -> int:
    for flag, path in (("-o", args.out), ("--recon-out", args.recon_out)):
        if path is not None and path.suffix.lower() not in IMAGE_SUFFIXES:
            raise ConfigError(f"{flag} {path}: the preview is an image; use one of {', '.join(IMAGE_SUFFIXES)}")
    check_output(args.out)
    if args.recon_out is not None:
        check_output(args.recon_out, what="--recon-out")
    capture = _load(args, require_mask=False)
    title = f"{capture.source.name}: {capture.layout}, B={capture.B}, {capture.normalisation}"
    written = snapshot_montage(capture.meas, args.out, title=title)
    print(f"snapshots: {written}")
    if capture.masks is None:
        reason = capture.mask_help or "no masks"
        print(f"no reconstruction preview: {reason}")
        return 0
    if args.no_recon:
        return 0
    op = capture.operator()
    if op.batch_shape:
        op = op.with_masks(op.masks.reshape((-1,) + op.masks.shape[-3:])[0])
    result = reconstruct(np.ascontiguousarray(capture.meas[0], dtype=np.float32), op, "gap-tv", iterations=int(args.iterations))
    truth = capture.truth[0] if capture.truth is not None and capture.truth.shape[0] > 0 else None
    target = args.recon_out or args.out.with_name(f"{args.out.stem}_recon.png")
    reconstruction_montage(
        result.frames,
        capture.meas[0],
        target,
        truth=truth,
        title=f"{capture.source.name} snapshot 1: GAP-TV ({args.iterations} iterations)",
    )
    print(f"reconstruction: {target}")
    return 0
