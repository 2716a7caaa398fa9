"""``snapcap dataset make|merge|verify|info``: measurement dataset files (HDF5)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from snapcap.cli.options import (
    add_camera_options,
    add_corpus_options,
    mask_spec_params,
    nonnegative_int,
    open_corpus_from_args,
    positive_int,
)
from snapcap.datasets.h5 import DatasetConfig, dataset_info, make_dataset, merge_shards, shard_from_env, verify_dataset
from snapcap.fileio import check_output

__all__ = ["add_parser"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("dataset", help="make, merge, verify and describe measurement dataset files (HDF5)")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB")
    verbs.required = True

    make = verbs.add_parser("make", help="simulate a video corpus into a dataset file (resumable, shardable)")
    add_corpus_options(make, default=None, required=True)
    make.add_argument("--split", choices=["train", "val", "test"], help="only this split")
    make.add_argument("--limit", type=positive_int, help="at most this many videos (after --split)")
    add_camera_options(make, B=8, T=8, size=(224, 224))
    make.add_argument("--per-sample-masks", action="store_true", help="a different mask set for every video")
    make.add_argument("--no-frames", action="store_true", help="do not store the frames (smaller; no bit-exact verify)")
    make.add_argument("--part-size", type=positive_int, default=16, help="samples per crash-safe part")
    make.add_argument("--compression", default="gzip", choices=["gzip", "lzf"])
    make.add_argument(
        "--shard", type=nonnegative_int, default=None, help="this process's shard (default: torchrun's RANK, else 0)"
    )
    make.add_argument(
        "--num-shards", type=positive_int, default=None, help="number of shards (default: torchrun's WORLD_SIZE, else 1)"
    )
    make.add_argument("--out", "-o", type=Path, required=True, help="output .h5 (shards write OUT.shard-III-of-NNN.h5)")
    make.set_defaults(func=run_make)

    merge = verbs.add_parser("merge", help="join shard files into one virtual dataset (no copying)")
    merge.add_argument("shards", type=Path, nargs="+")
    merge.add_argument("--out", "-o", type=Path, required=True)
    merge.set_defaults(func=run_merge)

    verify = verbs.add_parser("verify", help="checksums, completion markers, bit-exact re-simulation of sampled entries")
    verify.add_argument("path", type=Path)
    verify.add_argument(
        "--resimulate", type=nonnegative_int, default=4, help="entries to re-simulate (plus the first and last; default 4)"
    )
    verify.add_argument("--seed", type=nonnegative_int, default=0, help="seed of the choice of entries to re-simulate")
    verify.set_defaults(func=run_verify)

    info = verbs.add_parser("info", help="summary of a dataset file")
    info.add_argument("path", type=Path)
    info.add_argument("--json", action="store_true")
    info.set_defaults(func=run_info)


def dataset_config_from_args(args: argparse.Namespace, gray: bool = False) -> DatasetConfig:
    """The :class:`DatasetConfig` of the camera options (``gray`` forces gray video)."""
    defaults = DatasetConfig()
    return DatasetConfig(
        B=args.B,
        T=args.T,
        size=tuple(args.size),
        gray=bool(args.gray) or gray,
        bayer=args.bayer or defaults.bayer,
        mask=args.mask or defaults.mask,
        mask_seed=args.mask_seed or 0,
        mask_params=mask_spec_params(args),
        per_sample_masks=bool(getattr(args, "per_sample_masks", False)),
        noise=args.noise or "none",
        noise_seed=args.noise_seed or 0,
        store_frames=not getattr(args, "no_frames", False),
        part_size=getattr(args, "part_size", defaults.part_size),
        compression=getattr(args, "compression", defaults.compression),
    )


def run_make(args: argparse.Namespace) -> int:
    check_output(args.out)
    corpus = open_corpus_from_args(args)
    items = corpus.select(args.split, args.limit)
    config = dataset_config_from_args(args, gray=args.corpus == "benchmark")
    shard, num_shards = args.shard, args.num_shards
    if shard is None or num_shards is None:
        env = shard_from_env()
        shard = shard if shard is not None else (env[0] if env else 0)
        num_shards = num_shards if num_shards is not None else (env[1] if env else 1)
    report = make_dataset(corpus, args.out, config, items=items, shard=shard, num_shards=num_shards)
    print(report.summary())
    if num_shards > 1:
        print(
            f"shard {shard + 1} of {num_shards} done; when all are, join them with: "
            f"snapcap dataset merge --out {args.out} <shard files>"
        )
    return 0


def run_merge(args: argparse.Namespace) -> int:
    check_output(args.out)
    out = merge_shards(args.shards, args.out)
    print(f"wrote {out} (virtual datasets over {len(args.shards)} shard file(s); keep them beside it)")
    return 0


def run_verify(args: argparse.Namespace) -> int:
    report = verify_dataset(args.path, samples=args.resimulate, seed=args.seed, progress=True)
    print(report.summary())
    return 0 if report.ok else 1


def run_info(args: argparse.Namespace) -> int:
    info = dataset_info(args.path)
    if args.json:
        print(json.dumps(info, indent=2, default=str))
        return 0
    keys = (
        "format",
        "format_version",
        "num_samples",
        "B",
        "T",
        "H",
        "W",
        "rgb",
        "bayer",
        "mask",
        "noise",
        "noise_seed",
        "full_scale",
        "num_shards",
        "snapcap_version",
        "created",
    )
    for key in keys:
        if key in info:
            print(f"{key:>16}: {info[key]}")
    print(f"{'splits':>16}: {info['split_counts']}")
    print(f"{'corpus':>16}: {info.get('corpus')}")
    for name, meta in info["datasets"].items():
        print(f"{name:>16}: {tuple(meta['shape'])} {meta['dtype']}{' (virtual)' if meta['virtual'] else ''}")
    if info.get("skipped"):
        print(
            f"{'skipped':>16}: {len(info['skipped'])} video(s): " + ", ".join(entry["video_id"] for entry in info["skipped"][:10])
        )
    return 0
