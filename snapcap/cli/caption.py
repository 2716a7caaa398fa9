"""``snapcap caption``: caption a dataset file, a real capture or a video file with a trained captioner.

INPUT is a snapcap dataset file (``--samples 0:4``), a real capture (any layout of
:func:`snapcap.hardware.load_capture`, with ``--mask-file`` when the file holds no masks), or a
video file. A video is decoded at the model's image size (T·B frames) and simulated with the
camera of the captioner's training record (:func:`snapcap.caption.records.camera_for_video`):
the ``--mask-file`` if given, else the stored training masks, else the recorded mask
configuration. A teacher checkpoint captions dataset frames and videos directly; with
``--recon METHOD`` it captions snapshots (two-stage).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from snapcap.caption.records import camera_for_video, read_training_record
from snapcap.caption.registry import list_captioners, open_captioner
from snapcap.cli.options import (
    SPLIT_CHOICES,
    add_device_option,
    add_mask_file_options,
    add_recon_param_option,
    add_samples_option,
    positive_int,
    recon_methods,
    recon_params_by_method,
)
from snapcap.datasets.samples import capture_samples, video_samples
from snapcap.datasets.torch_data import MeasurementDataset
from snapcap.datasets.video import VIDEO_SUFFIXES
from snapcap.errors import ConfigError, DataFileError, ShapeError
from snapcap.files import is_snapcap_dataset
from snapcap.hardware.captures import load_capture
from snapcap.recon.inputs import parse_selection

__all__ = ["add_parser", "add_model_options", "captioner_from_args", "model_names_help", "recon_params_for"]


def model_names_help() -> str:
    """The captioner names ``--model`` takes, read from the registry now."""
    return ", ".join([*list_captioners(), "ensemble:A+B[+...][@cider|@bleu4]"])


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """``--checkpoints --recon-param --beam --device``: how captioners are opened and decode."""
    parser.add_argument("--checkpoints", type=Path, help="training folder, when --model is a captioner name")
    add_recon_param_option(parser)
    parser.add_argument("--beam", type=positive_int, default=1, help="beam size (1: greedy, the default)")
    add_device_option(parser)


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "caption",
        help="caption a dataset file, a real capture or a video file with a trained captioner",
        description="Caption snapshots or videos. INPUT: a snapcap dataset .h5 (--samples), a capture file "
        "(with --mask-file when it holds no masks) or a video file (simulated with --mask-file, else the training masks).",
    )
    parser.add_argument("input", type=Path)
    parser.add_argument(
        "--model",
        required=True,
        help=f"a checkpoint (teacher.pt, snapcap.pt...) or a captioner name with --checkpoints ({model_names_help()})",
    )
    parser.add_argument(
        "--recon",
        choices=recon_methods(),
        help="with a teacher checkpoint: caption snapshots through this reconstruction method (two-stage)",
    )
    add_mask_file_options(parser)
    parser.add_argument("--B", type=positive_int, default=None, help="frames per snapshot of a capture that does not say it")
    add_samples_option(parser)
    parser.add_argument("--split", default="all", choices=SPLIT_CHOICES, help="dataset split (default all)")
    parser.add_argument("--json", action="store_true", help="print one JSON object per video")
    add_model_options(parser)
    parser.set_defaults(func=run)


def _method_of(model: str, recon: str | None) -> str | None:
    return recon or (model.split(":", 1)[1] if model.startswith("two-stage:") else None)


def recon_params_for(models: list[str], args: argparse.Namespace, recon: str | None = None) -> dict[str, dict[str, Any]]:
    """``--recon-param`` grouped by method, checked against the methods the ``models`` reconstruct with.

    A bare ``NAME=VALUE`` (the old spelling) goes to the one method in use, if there is one.
    """
    methods = sorted({method for method in (_method_of(model, recon) for model in models) if method})
    grouped = recon_params_by_method(args.recon_param, default_method=methods[0] if len(methods) == 1 else None)
    unused = sorted(set(grouped) - set(methods))
    if unused:
        if not methods:
            raise ConfigError("--recon-param applies to two-stage captioning only (--recon METHOD or --model two-stage:METHOD)")
        raise ConfigError(
            f"--recon-param {unused[0]}:...: no captioner here reconstructs with {unused[0]} ({', '.join(methods)} do)"
        )
    return grouped


def captioner_from_args(
    model: str, args: argparse.Namespace, recon: str | None = None, params: dict[str, dict[str, Any]] | None = None
):
    """Open ``--model`` (a checkpoint or a registered name) with the command's model options."""
    if params is None:
        params = recon_params_for([model], args, recon)
    method = _method_of(model, recon)
    return open_captioner(
        model, args.checkpoints, recon=recon, recon_params=params.get(method) if method else None, device=args.device
    )


def _video(path: Path, captioner, args: argparse.Namespace) -> tuple[list[dict[str, Any]], list[str]]:
    B, T, size = captioner.B, captioner.T, captioner.image_size
    if args.B is not None and args.B != B and not captioner.two_stage:
        raise ShapeError(f"--B {args.B}: {captioner.checkpoint} was trained for B={B}")
    B = args.B or B
    camera = camera_for_video(
        captioner.checkpoint, B, T, size, needs_masks=captioner.kind != "frames", mask_file=args.mask_file, mask_key=args.mask_key
    )
    samples = video_samples(
        path, T, B, (size, size), masks=camera.masks, bayer=camera.bayer, noise=camera.noise, gray=camera.gray
    )
    return samples, camera.notes


def _capture(path: Path, captioner, args: argparse.Namespace) -> tuple[list[dict[str, Any]], list[str]]:
    if captioner.kind == "frames":
        raise ConfigError(
            f"{path}: a capture holds snapshots and the teacher captions true frames; "
            "add --recon METHOD (two-stage) or use a student checkpoint"
        )
    capture = load_capture(path, mask=args.mask_file, mask_key=args.mask_key, B=args.B)
    notes = [
        f"capture {capture.layout}: {capture.num_snapshots} snapshot(s) {capture.frame_shape[0]}x{capture.frame_shape[1]}, "
        f"B={capture.B}, bayer={capture.bayer}"
    ]
    record, _ = read_training_record(captioner.checkpoint)
    if record is not None and not captioner.two_stage and (record.get("bayer") or None) != (capture.bayer or None):
        notes.append(
            f"the captioner was trained on {record.get('bayer') or 'gray'} snapshots and this capture is "
            f"{capture.bayer or 'gray'}: expect poor captions"
        )
    samples, more = capture_samples(capture.meas, capture.masks, captioner.T, capture.bayer, path.stem)
    return samples, notes + more


def run(args: argparse.Namespace) -> int:
    path: Path = args.input
    if not path.exists():
        raise DataFileError(f"{path}: no such file")
    captioner = captioner_from_args(args.model, args, recon=args.recon)
    notes: list[str] = []
    if path.suffix.lower() in VIDEO_SUFFIXES:
        rows: Any
        rows, notes = _video(path, captioner, args)
        selection = list(range(len(rows)))
    elif is_snapcap_dataset(path):
        rows = MeasurementDataset(path, split=None if args.split == "all" else args.split, frames=captioner.kind == "frames")
        if captioner.kind == "frames" and not rows.info[0]["has_frames"]:
            raise DataFileError(
                f"{path}: holds no frames (made with --no-frames) and {captioner.name} captions frames; "
                "use a snapshot captioner or --recon METHOD"
            )
        selection = parse_selection(None if args.samples is None else args.samples.strip().lower(), len(rows), "samples")
    else:
        rows, notes = _capture(path, captioner, args)
        selection = list(range(len(rows)))
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    for index in selection:
        sample = rows[index]
        text = captioner.caption(sample, beam_size=args.beam)[0]
        video_id = str(sample.get("video_id", index))
        if args.json:
            record: dict[str, Any] = {
                "input": str(path),
                "video_id": video_id,
                "caption": text,
                "model": captioner.name,
                "latency_ms": 1000.0 * captioner.timings["total"],
            }
            if captioner.two_stage:
                record["recon_ms"] = 1000.0 * captioner.timings["recon"]
            if sample.get("captions"):
                record["references"] = list(sample["captions"])
            print(json.dumps(record))
        else:
            print(f"{video_id}\t{text}")
    return 0
