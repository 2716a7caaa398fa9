"""``snapcap compare``: one- against two-stage captioning across compression ratios B (the main job)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from snapcap.caption.lm import add_decoder_argument
from snapcap.caption.metrics import metric_names
from snapcap.caption.registry import zoo_names
from snapcap.cli.options import (
    CORPUS_FLAGS,
    add_camera_options,
    add_corpus_options,
    add_device_option,
    add_recon_param_option,
    nonnegative_int,
    positive_int,
    recon_methods,
    recon_params_by_method,
)
from snapcap.compare.capture import compare_capture
from snapcap.compare.config import CAMERAS, COMPARE_PRESETS, STUDENT_PIPELINES, compare_preset
from snapcap.compare.report import table3
from snapcap.compare.run import run_compare
from snapcap.errors import ConfigError
from snapcap.fileio import check_output

__all__ = ["add_parser", "config_from_args"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "compare",
        help="one- against two-stage captioning across compression ratios B (the main job), or on a real capture",
        description=(
            "For each compression ratio B: simulate the corpus, train (or reuse) the teacher, SnapCap, its baseline and the deep "
            "reconstructor, caption the test split with every pipeline (traditional, two-stage per reconstructor, one-stage), "
            "and write results.json, results.csv, report.md, cider_vs_B.png, latency_memory.png and montages to OUT. "
            "Work is cached by content hash (OUT/cache, or --cache): a rerun reuses what matches and a killed run resumes. "
            "With --capture FILE --mask-file M it captions a real capture with the models of --checkpoints instead."
        ),
    )
    parser.add_argument(
        "--preset",
        default="tiny",
        choices=sorted(COMPARE_PRESETS),
        help="tiny (default: procedural corpus, tiny models, CPU), micro (tests), paper (MSR-VTT/MSVD, ViT-B/16, GPU) or "
        "paper-smoke (the paper's models and shapes on a few procedural videos, step-capped: every GPU code path in minutes)",
    )
    parser.add_argument("--out", "-o", type=Path, default=Path("compare_out"), help="report folder (default compare_out)")
    parser.add_argument("--cache", type=Path, help="cache folder of datasets, models and rows (default OUT/cache)")
    add_corpus_options(parser, default=None, num_videos=None, title="corpus (default: the preset's; tiny: synthetic, 400 videos)")
    add_camera_options(
        parser,
        B=None,
        T=None,
        size=None,
        B_many=True,
        mask_file=True,
        title="camera (default: the preset's; tiny: B 2 4 8 16, T 4, 64x64 RGGB)",
    )
    models = parser.add_argument_group("pipelines and training")
    models.add_argument(
        "--students",
        nargs="*",
        choices=STUDENT_PIPELINES,
        help="one-stage rows (default: snapcap baseline; tiny: also snapcap-temporal, the order-aware student, "
        "with the order-aware teacher's row)",
    )
    models.add_argument(
        "--cameras",
        nargs="*",
        choices=sorted(CAMERAS),
        help="camera controls: the students also trained and tested, at the reference B, on long exposures (every mask "
        "all ones) or single uncoded frames of the same videos (tiny: long-exposure)",
    )
    models.add_argument(
        "--order-aware",
        metavar="PRESET",
        help="captioner preset of the order-aware rows, at the reference B (tiny: tiny-temporal; else "
        "<captioner>-temporal with a *-temporal student)",
    )
    models.add_argument(
        "--camera-students", nargs="*", choices=STUDENT_PIPELINES, help="the students the --cameras train (default: all)"
    )
    models.add_argument(
        "--recon",
        nargs="*",
        choices=recon_methods(),
        help="two-stage reconstructors (tiny: gap-tv; paper: Table 3's birnat pnp-ffdnet pnp-fastdvdnet stformer efficientsci, "
        "each with --recon-param METHOD:weights=PATH)",
    )
    add_recon_param_option(models)
    models.add_argument("--zoo", nargs="*", choices=zoo_names(), help="other captioners as rows, trained per B")
    models.add_argument("--zoo-epochs", type=positive_int, help="training epochs of the --zoo captioners")
    models.add_argument("--unfold-steps", type=positive_int, help="training steps of the deep reconstructor per B")
    models.add_argument(
        "--unfold-batch-size", type=positive_int, help="patches per step of the deep reconstructor (under torchrun: >= processes)"
    )
    models.add_argument("--epochs", type=positive_int, help="students' stage-2 epochs")
    models.add_argument("--teacher-epochs", type=positive_int, help="teacher tower epochs")
    models.add_argument("--base-B", type=positive_int, help="the B the teacher tower trains at (default 8; micro: 4)")
    models.add_argument("--captioner", help="captioner preset: tiny, small or paper")
    add_decoder_argument(models, "the captioner preset's (tiny, small: native; paper: lm:gpt2-medium)")
    models.add_argument("--seed", type=nonnegative_int, help="training seed (the first, with --seeds)")
    models.add_argument(
        "--seeds", type=positive_int, help="train every model with K seeds and report the mean and spread (default 1)"
    )
    models.add_argument("--workers", type=nonnegative_int, help="DataLoader processes reading training samples ahead (default 0)")
    models.add_argument(
        "--amp",
        action="store_true",
        help="mixed precision (bf16 autocast) for every model's training (teacher, students, zoo rows, unfold); "
        "for CUDA (slower on most CPUs)",
    )
    evals = parser.add_argument_group("evaluation")
    evals.add_argument("--test-limit", type=positive_int, help="at most this many test videos")
    evals.add_argument("--metrics", help="comma-separated among BLEU,METEOR,ROUGE-L,CIDEr (default all four)")
    evals.add_argument(
        "--beam", type=positive_int, help="beam size of every row (default: greedy; under --captioner paper, VCCV beam 5)"
    )
    evals.add_argument(
        "--batch-size",
        type=positive_int,
        help="test videos captioned together for the scores (default 1); latency is then a separate batch-1 pass",
    )
    evals.add_argument(
        "--latency-videos", type=positive_int, help="videos of that timed pass (default: all; torchrun: rank 0's share)"
    )
    evals.add_argument("--montage-videos", type=nonnegative_int, help="test videos drawn in montages (default 3)")
    add_device_option(evals, default=None)
    evals.add_argument("--threads", type=nonnegative_int, help="torch CPU threads (default: torch's)")
    cap = parser.add_argument_group("real capture (no references: captions, reconstructions and timings)")
    cap.add_argument(
        "--capture", type=Path, help="a real capture (any layout of `snapcap capture info`); --mask-file gives its masks"
    )
    cap.add_argument(
        "--checkpoints",
        type=Path,
        help="the models: a training folder (teacher.pt, snapcap.pt, baseline.pt) or an earlier compare's OUT",
    )
    cap.add_argument(
        "--crop",
        default="center",
        choices=["center", "none"],
        help="crop a larger capture to the models' size around its centre (default) or refuse",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--quiet", action="store_true", help="no stage log")
    parser.set_defaults(func=run)


def _square(size: tuple[int, int] | None) -> int | None:
    if size is None:
        return None
    if size[0] != size[1]:
        raise ConfigError(
            f"--size {size[0]}x{size[1]}: compare works with square frames (the teacher's input size); give one number"
        )
    return int(size[0])


def config_from_args(args: argparse.Namespace):
    """The :class:`~snapcap.compare.config.CompareConfig` of a ``compare`` command line."""
    base = COMPARE_PRESETS[args.preset]
    corpus = dict(base.corpus)
    if args.corpus is not None and args.corpus != corpus.get("kind"):
        corpus = {"kind": args.corpus}
    for name, flag in CORPUS_FLAGS.items():
        value = getattr(args, flag[2:].replace("-", "_"), None)
        if value is not None:
            corpus[name] = (
                [str(v) for v in value] if isinstance(value, list) else (str(value) if isinstance(value, Path) else value)
            )
    if corpus.get("kind") != "synthetic" and args.num_videos is not None:
        raise ConfigError("--num-videos applies to the synthetic corpus only")
    if args.mask_file is not None:
        raise ConfigError("--mask-file goes with --capture; simulation uses --mask KIND")
    training = dict(base.training)
    if args.epochs is not None:
        training["epochs"] = args.epochs
    if args.teacher_epochs is not None:
        training["teacher_epochs"] = args.teacher_epochs
    if args.workers is not None:
        training["workers"] = args.workers
    if args.amp:
        training["amp"] = True
    recon_params = {method: dict(values) for method, values in base.recon_params.items()}
    for method, values in recon_params_by_method(args.recon_param).items():
        recon_params.setdefault(method, {}).update(values)
    unfold = dict(base.unfold)
    if args.unfold_steps is not None:
        unfold["steps"] = args.unfold_steps
    if args.unfold_batch_size is not None:
        unfold["batch_size"] = args.unfold_batch_size
    metrics = None if args.metrics is None else tuple(metric_names([m.strip() for m in args.metrics.split(",") if m.strip()]))
    return compare_preset(
        args.preset,
        B=None if args.B is None else tuple(args.B),
        corpus=corpus,
        T=args.T,
        size=_square(args.size),
        gray=args.gray,
        bayer=args.bayer,
        mask=args.mask,
        mask_seed=args.mask_seed,
        noise=args.noise,
        noise_seed=args.noise_seed,
        captioner=args.captioner,
        decoder=args.decoder,
        training=training,
        base_B=args.base_B,
        students=None if args.students is None else tuple(args.students),
        cameras=None if args.cameras is None else tuple(args.cameras),
        order_aware=args.order_aware,
        camera_students=None if args.camera_students is None else tuple(args.camera_students),
        recon=None if args.recon is None else tuple(args.recon),
        recon_params=recon_params,
        zoo=None if args.zoo is None else tuple(args.zoo),
        zoo_options=None if args.zoo_epochs is None else {name: {"epochs": args.zoo_epochs} for name in (args.zoo or base.zoo)},
        unfold=unfold,
        test_limit=args.test_limit,
        metrics=metrics,
        beam=args.beam,
        batch_size=args.batch_size,
        latency_videos=args.latency_videos,
        montage_videos=args.montage_videos,
        device=args.device,
        threads=args.threads,
        seed=args.seed,
        seeds=args.seeds,
    )


def run(args: argparse.Namespace) -> int:
    check_output(args.out, folder=True)
    if args.cache is not None:
        check_output(args.cache, folder=True, what="--cache")
    if args.capture is not None:
        if args.checkpoints is None:
            raise ConfigError("--capture needs --checkpoints (a training folder, or the OUT of an earlier `snapcap compare`)")
        if args.mask is not None:
            raise ConfigError(
                f"--mask {args.mask}: a capture is reconstructed with the masks it was taken with; pass --mask-file"
            )
        recon = args.recon if args.recon is not None else ["gap-tv"]
        params: dict[str, dict[str, Any]] = recon_params_by_method(args.recon_param)
        results = compare_capture(
            args.capture,
            args.mask_file,
            args.checkpoints,
            args.out,
            recon=recon,
            recon_params=params,
            students=args.students if args.students is not None else ("snapcap", "baseline"),
            crop=args.crop,
            mask_key=args.mask_key,
            B=args.B[0] if args.B else None,
            device=args.device or "cpu",
            progress=not args.no_progress,
        )
        for row in results["rows"]:
            first = next(iter(row["predictions"].values()), "")
            print(f"{row['label']:<36} {row['total_ms']:9.1f} ms/video  {first}")
        print(f"wrote {args.out / 'report.md'}", file=sys.stderr)
        return 0
    config = config_from_args(args)
    results = run_compare(config, args.out, cache=args.cache, progress=not args.no_progress, quiet=args.quiet)
    if not results:  # a torchrun rank other than 0: rank 0 reports
        return 0
    print(table3(results["rows"], results["config"]["reference_B"], results["config"]["pipelines"]))
    for line in results.get("findings", []) or []:
        print(f"- {line}")
    print(f"wrote {args.out / 'report.md'} ({results['wall_s']:.0f} s)", file=sys.stderr)
    return 0
