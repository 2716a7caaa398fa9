"""``snapcap capture``: inspect and preview real CACTI captures.

``capture info FILE [--mask M] [--mask-key K] [--json]`` prints the layout found, B, shapes,
value ranges, the normalisation and notes; it works without the mask a layout needs (the notes
then say what is missing). ``capture preview FILE [--mask M] -o out.png`` writes a montage of
all snapshots and, when the masks are known, a quick GAP-TV reconstruction of the first snapshot
(``<out>_recon.png``, :func:`snapcap.viz.reconstruction_montage`).

:func:`add_capture_parser` adds the command to a parser's sub-commands; errors are
:class:`~snapcap.errors.SnapcapError` subclasses, which the main CLI prints.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from snapcap.errors import ConfigError

__all__ = ["add_capture_parser", "snapshot_montage"]

_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".pdf", ".svg")


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, help="the capture: .mat, .npz/.npy, snapcap .npz/.h5, or a raw frame (.dng, .cr2...)")
    parser.add_argument("--mask", type=Path, default=None, help="mask file for captures without masks (e.g. real_mask.mat)")
    parser.add_argument("--mask-key", default=None, help="variable of the mask file (default: mask, masks, mask_bayer...)")
    parser.add_argument("--layout", default=None, help="force a layout (default: detected; see snapcap.hardware.LAYOUTS)")
    parser.add_argument("--B", type=int, default=None, help="frames per snapshot, when the file does not say it (raw frames)")
    parser.add_argument("--sample", type=int, default=0, help="sample of a snapcap dataset file")
    parser.add_argument("--normalisation", default=None, help="override: stored | scale:S | fullscale:F | peak")


def add_capture_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``capture info`` and ``capture preview`` to ``sub`` (from ``parser.add_subparsers()``)."""
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
    info.set_defaults(func=_cmd_info)
    preview = verbs.add_parser("preview", help="montage of the snapshots (and a quick GAP-TV preview with masks)")
    _common(preview)
    preview.add_argument("-o", "--out", type=Path, required=True, help="output image (.png, .jpg, .pdf, .svg)")
    preview.add_argument("--recon-out", type=Path, default=None, help="reconstruction preview (default: <out>_recon.png)")
    preview.add_argument("--iterations", type=int, default=30, help="GAP-TV iterations of the preview")
    preview.add_argument("--no-recon", action="store_true", help="do not reconstruct")
    preview.set_defaults(func=_cmd_preview)
    return parser


def _load(args: argparse.Namespace, require_mask: bool):
    from snapcap.hardware.captures import load_capture

    return load_capture(
        args.file,
        mask=args.mask,
        mask_key=args.mask_key,
        layout=args.layout,
        B=args.B,
        sample=args.sample,
        normalisation=args.normalisation,
        require_mask=require_mask,
    )


def _text(info: dict[str, Any]) -> str:
    lines = [
        f"file:          {info['path']}",
        f"layout:        {info['layout']}",
        f"B:             {info['B']}",
        f"bayer:         {info['bayer']}",
        f"snapshots:     {info['snapshots']}  (meas {tuple(info['meas_shape'])})",
        f"stored values: {info['raw_dtype']} in [{info['raw_range'][0]:g}, {info['raw_range'][1]:g}]",
        f"normalisation: {info['normalisation']}",
        f"meas range:    [{info['meas_range'][0]:.4g}, {info['meas_range'][1]:.4g}]",
        f"masks:         {'none' if info['masks_shape'] is None else tuple(info['masks_shape'])}"
        + (f" in [{info['masks_range'][0]:.3g}, {info['masks_range'][1]:.3g}] from {info['mask_source']}" if info["masks_shape"] else ""),
        f"truth:         {'none' if info['truth_shape'] is None else tuple(info['truth_shape'])}",
        "variables:     " + (", ".join(f"{name} {tuple(v['shape'])} {v['class']}" for name, v in info["variables"].items()) or "-"),
    ]
    lines += [f"note:          {note}" for note in info["notes"]]
    return "\n".join(lines)


def _cmd_info(args: argparse.Namespace) -> int:
    capture = _load(args, require_mask=False)
    info = capture.describe()
    print(json.dumps(info, indent=2) if args.json else _text(info))
    return 0


def snapshot_montage(meas: np.ndarray, path: str | Path, title: str | None = None, max_panels: int = 64) -> Path:
    """All snapshots ``(N, H, W)`` in one image, each scaled to its own range."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from snapcap.viz import save_figure

    meas = np.asarray(meas, dtype=np.float32)
    count = min(meas.shape[0], max_panels)
    columns = min(count, 4)
    rows = int(math.ceil(count / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(3.0 * columns, 3.1 * rows), squeeze=False)
    for index, ax in enumerate(axes.ravel()):
        ax.set_xticks([])
        ax.set_yticks([])
        if index >= count:
            ax.axis("off")
            continue
        image = meas[index]
        ax.imshow(image, cmap="gray", vmin=float(image.min()), vmax=float(image.max()) or 1.0, interpolation="nearest")
        ax.set_title(f"snapshot {index + 1}/{meas.shape[0]}  [{image.min():.3g}, {image.max():.3g}]", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    return save_figure(fig, path)


def _cmd_preview(args: argparse.Namespace) -> int:
    if args.out.suffix.lower() not in _IMAGE_SUFFIXES:
        raise ConfigError(f"-o {args.out}: the preview is an image; use one of {', '.join(_IMAGE_SUFFIXES)}")
    if args.iterations < 1:
        raise ConfigError(f"--iterations must be >= 1, got {args.iterations}")
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
    from snapcap.recon.api import reconstruct
    from snapcap.viz import reconstruction_montage

    op = capture.operator()
    if op.batch_shape:
        op = op.with_masks(op.masks.reshape((-1,) + op.masks.shape[-3:])[0])
    result = reconstruct(np.ascontiguousarray(capture.meas[0], dtype=np.float32), op, "gap-tv", iterations=int(args.iterations))
    truth = capture.truth[0] if capture.truth is not None and capture.truth.shape[0] > 0 else None
    target = args.recon_out or args.out.with_name(f"{args.out.stem}_recon.png")
    reconstruction_montage(result.frames, capture.meas[0], target, truth=truth, title=f"{capture.source.name} snapshot 1: GAP-TV ({args.iterations} iterations)")
    print(f"reconstruction: {target}")
    return 0
