"""``snapcap eval``: caption metrics, latency and peak memory of captioners on a dataset file (Table 3)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from snapcap.caption.evaluate import evaluate, results_markdown
from snapcap.cli.caption import add_model_options, captioner_from_args, model_names_help, recon_params_for
from snapcap.cli.options import SPLIT_CHOICES, nonnegative_int, positive_int
from snapcap.datasets.h5 import dataset_info
from snapcap.datasets.samples import Limited
from snapcap.datasets.torch_data import MeasurementDataset
from snapcap.errors import ConfigError, DataFileError
from snapcap.fileio import check_output, write_json, write_text

__all__ = ["add_parser"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "eval",
        help="caption metrics, latency and peak memory of captioners on a dataset file (Table 3)",
        description="Caption every video of a dataset split with each captioner (batch size 1) and report BLEU-4, METEOR, "
        "ROUGE-L, CIDEr, the latency per video and the peak memory.",
    )
    parser.add_argument("--data", type=Path, nargs="+", required=True, help="snapcap dataset file(s)")
    parser.add_argument("--split", default="test", choices=SPLIT_CHOICES, help="split to evaluate (default test)")
    parser.add_argument("--limit", type=positive_int, help="at most this many videos")
    parser.add_argument(
        "--model", nargs="+", required=True, help=f"captioner name(s) ({model_names_help()}) or checkpoint file(s)"
    )
    parser.add_argument(
        "--metrics", default="BLEU,METEOR,ROUGE-L,CIDEr", help="comma-separated (default BLEU,METEOR,ROUGE-L,CIDEr)"
    )
    parser.add_argument(
        "--tokenizer",
        default="auto",
        choices=["auto", "ptb", "regex"],
        help="caption tokenizer of the metrics (default auto: PTB when Java runs)",
    )
    parser.add_argument("--warmup", type=nonnegative_int, default=1, help="untimed warm-up captions before timing (default 1)")
    parser.add_argument(
        "--out", "-o", type=Path, help="write results.json and results.md in this folder (or OUT.json and OUT.md)"
    )
    add_model_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.out is not None:
        check_output(args.out, folder=args.out.suffix.lower() != ".json")
    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()]
    split = None if args.split == "all" else args.split
    results = []
    params = recon_params_for(args.model, args)
    for model in args.model:
        captioner = captioner_from_args(model, args, params=params)
        dataset = MeasurementDataset(args.data, split=split, frames=captioner.kind == "frames")
        if len(dataset) == 0:
            raise ConfigError(
                f"{args.data[0]}: no {args.split!r} videos (splits: {dataset_info(args.data[0])['split_counts']}); pass --split"
            )
        if captioner.kind == "frames" and not all(info["has_frames"] for info in dataset.info):
            raise DataFileError(f"{args.data[0]}: holds no frames (made with --no-frames); the teacher row needs them")
        samples: Any = dataset if args.limit is None else Limited(dataset, args.limit)
        result = evaluate(
            captioner, samples, beam_size=args.beam, metrics=metrics, tokenizer=args.tokenizer, warmup=args.warmup, progress=True
        )
        results.append(result)
        print(f"{model}: {len(result.videos)} video(s), {result.latency_ms:.1f} ms per video", file=sys.stderr)
    table = results_markdown(results)
    notes = sorted({note for result in results for note in result.notes})
    markdown = (
        f"Evaluation on {', '.join(str(p) for p in args.data)} (split {args.split}, beam {args.beam}, batch size 1, "
        f"device {args.device}).\n\n" + table
    )
    if notes:
        markdown += "\n" + "\n".join(f"- {note}" for note in notes) + "\n"
    print(markdown, end="")
    if args.out is not None:
        if args.out.suffix.lower() == ".json":
            json_path, md_path = args.out, args.out.with_suffix(".md")
        else:
            json_path, md_path = args.out / "results.json", args.out / "results.md"
        payload = {
            "data": [str(p) for p in args.data],
            "split": args.split,
            "rows": [r.to_row() for r in results],
            "results": [r.to_dict() for r in results],
        }
        write_json(json_path, payload)
        write_text(md_path, markdown)
        print(f"wrote {json_path} and {md_path}", file=sys.stderr)
    return 0
