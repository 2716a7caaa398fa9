"""The ``snapcap compare`` command."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from snapcap.errors import ConfigError

__all__ = ["add_compare_parser"]

_MASK_KINDS = ("random", "shifting", "gray", "dmd")


def _recon_param(text: str) -> tuple[str, str, Any]:
    if ":" not in text or "=" not in text.split(":", 1)[1]:
        raise argparse.ArgumentTypeError(f"expected METHOD:NAME=VALUE (e.g. gap-tv:iterations=60 or pnp-ffdnet:weights=net_gray.pth), got {text!r}")
    method, rest = text.split(":", 1)
    name, value = rest.split("=", 1)
    try:
        parsed: Any = json.loads(value)
    except ValueError:
        parsed = value
    return method.strip(), name.strip(), parsed


def add_compare_parser(sub: argparse._SubParsersAction) -> None:
    from snapcap.compare.config import COMPARE_PRESETS, RECON_CHOICES, STUDENT_PIPELINES

    parser = sub.add_parser(
        "compare",
        help="one- against two-stage captioning across compression ratios B (the main job), or on a real capture",
        description=(
            "For each compression ratio B: simulate the corpus, train (or reuse) the teacher, SnapCap, its baseline and the deep "
            "reconstructor, caption the test split with every pipeline (traditional, two-stage per reconstructor, one-stage), "
            "and write results.json, results.csv, report.md, cider_vs_B.png, latency_memory.png and montages to OUT. "
            "Work is cached by content hash (OUT/cache, or --cache): a rerun reuses what matches and a killed run resumes. "
            "With --capture FILE --mask M it captions a real capture with the models of --checkpoints instead."
        ),
    )
    parser.add_argument("--preset", default="tiny", choices=sorted(COMPARE_PRESETS), help="tiny (default: procedural corpus, tiny models, CPU), micro (tests) or paper (MSR-VTT/MSVD, ViT-B/16, GPU)")
    parser.add_argument("--out", "-o", type=Path, default=Path("compare_out"), help="report folder (default compare_out)")
    parser.add_argument("--cache", type=Path, help="cache folder of datasets, models and rows (default OUT/cache)")
    sim = parser.add_argument_group("corpus and camera (default: the preset's)")
    sim.add_argument("--B", type=int, nargs="+", help="compression ratios (tiny/paper: 2 4 8 16 24)")
    sim.add_argument("--corpus", choices=["synthetic", "msrvtt", "msvd", "folder"], help="corpus (tiny: synthetic; paper: msrvtt)")
    sim.add_argument("--root", type=Path, help="corpus folder (msrvtt, msvd, folder)")
    sim.add_argument("--annotations", type=Path, nargs="*", help="MSR-VTT annotation JSON file(s)")
    sim.add_argument("--captions", type=Path, help="MSVD caption file, or the folder corpus's captions CSV/JSON")
    sim.add_argument("--mapping", type=Path, help="MSVD youtube_mapping.txt")
    sim.add_argument("--num-videos", type=int, help="synthetic corpus size (tiny: 400: 256 train, 144 test)")
    sim.add_argument("--corpus-seed", type=int, help="synthetic corpus seed")
    sim.add_argument("--T", type=int, help="snapshots per video (tiny: 4; paper: 8)")
    sim.add_argument("--size", type=int, help="frame size S (S x S; the teacher's input size)")
    sim.add_argument("--gray", action="store_true", default=None, help="gray video (default: RGB through a Bayer mosaic)")
    sim.add_argument("--bayer", help="Bayer pattern (default RGGB)")
    sim.add_argument("--mask", help=f"mask kind for simulation ({', '.join(_MASK_KINDS)}; default random); with --capture: the capture's mask file")
    sim.add_argument("--mask-seed", type=int)
    sim.add_argument("--noise", help="noise spec, e.g. 'poisson:photons=1000+gaussian:sigma=0.01' (default none)")
    sim.add_argument("--noise-seed", type=int)
    models = parser.add_argument_group("pipelines and training")
    models.add_argument("--students", nargs="*", choices=STUDENT_PIPELINES, help="one-stage rows (default: snapcap baseline)")
    models.add_argument("--recon", nargs="*", choices=RECON_CHOICES, help="two-stage reconstructors (tiny: gap-tv; paper: gap-tv pnp-ffdnet unfold)")
    models.add_argument("--recon-param", action="append", type=_recon_param, metavar="METHOD:NAME=VALUE", help="a reconstruction parameter (repeatable), e.g. pnp-ffdnet:weights=net_gray.pth")
    models.add_argument("--zoo", nargs="*", help="other captioners as rows, trained per B: clip4caption, clip4videocap, vccv")
    models.add_argument("--zoo-epochs", type=int, help="training epochs of the --zoo captioners")
    models.add_argument("--unfold-steps", type=int, help="training steps of the deep reconstructor per B")
    models.add_argument("--epochs", type=int, help="students' stage-2 epochs")
    models.add_argument("--teacher-epochs", type=int, help="teacher tower epochs")
    models.add_argument("--base-B", type=int, help="the B the teacher tower trains at (default 8; micro: 4)")
    models.add_argument("--captioner", help="captioner preset: tiny, small or paper")
    models.add_argument("--seed", type=int)
    evals = parser.add_argument_group("evaluation")
    evals.add_argument("--test-limit", type=int, help="at most this many test videos")
    evals.add_argument("--metrics", help="comma-separated among BLEU,METEOR,ROUGE-L,CIDEr (default all four)")
    evals.add_argument("--beam", type=int, help="beam size (default 1: greedy)")
    evals.add_argument("--montage-videos", type=int, help="test videos drawn in montages (default 3)")
    evals.add_argument("--device", help="cpu, cuda or cuda:N")
    evals.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    cap = parser.add_argument_group("real capture (no references: captions, reconstructions and timings)")
    cap.add_argument("--capture", type=Path, help="a real capture (any layout of `snapcap capture info`); --mask gives its mask file")
    cap.add_argument("--mask-key", help="variable of the mask file, when it holds several")
    cap.add_argument("--checkpoints", type=Path, help="the models: a training folder (teacher.pt, snapcap.pt, baseline.pt) or an earlier compare's OUT")
    cap.add_argument("--crop", default="center", choices=["center", "none"], help="crop a larger capture to the models' size around its centre (default) or refuse")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--quiet", action="store_true", help="no stage log")
    parser.set_defaults(func=_cmd_compare)


def _config_from_args(args: argparse.Namespace):
    from snapcap.compare.config import compare_preset

    from snapcap.compare.config import COMPARE_PRESETS

    base = COMPARE_PRESETS[args.preset]
    corpus = dict(base.corpus)
    if args.corpus is not None and args.corpus != corpus.get("kind"):
        corpus = {"kind": args.corpus}
    for key, value in (("root", args.root), ("annotations", args.annotations), ("captions", args.captions), ("mapping", args.mapping),
                       ("num_videos", args.num_videos), ("seed", args.corpus_seed)):
        if value is not None:
            corpus[key] = [str(v) for v in value] if isinstance(value, list) else (str(value) if isinstance(value, Path) else value)
    if corpus.get("kind") != "synthetic" and ("num_videos" in corpus and args.num_videos is not None):
        raise ConfigError("--num-videos applies to the synthetic corpus only")
    training = dict(base.training)
    if args.epochs is not None:
        training["epochs"] = args.epochs
    if args.teacher_epochs is not None:
        training["teacher_epochs"] = args.teacher_epochs
    recon_params = {method: dict(values) for method, values in base.recon_params.items()}
    for method, name, value in args.recon_param or []:
        recon_params.setdefault(method, {})[name] = value
    unfold = dict(base.unfold)
    if args.unfold_steps is not None:
        unfold["steps"] = args.unfold_steps
    mask = args.mask
    if mask is not None and mask not in _MASK_KINDS:
        raise ConfigError(f"--mask {mask!r}: for simulation, one of {', '.join(_MASK_KINDS)} (a mask file goes with --capture)")
    metrics = None if args.metrics is None else tuple(m.strip() for m in args.metrics.split(",") if m.strip())
    if metrics is not None:
        from snapcap.caption.text import _metric_names

        metrics = tuple(_metric_names(metrics))
    return compare_preset(
        args.preset,
        B=None if args.B is None else tuple(args.B),
        corpus=corpus,
        T=args.T,
        size=args.size,
        gray=args.gray,
        bayer=args.bayer,
        mask=mask,
        mask_seed=args.mask_seed,
        noise=args.noise,
        noise_seed=args.noise_seed,
        captioner=args.captioner,
        training=training,
        base_B=args.base_B,
        students=None if args.students is None else tuple(args.students),
        recon=None if args.recon is None else tuple(args.recon),
        recon_params=recon_params,
        zoo=None if args.zoo is None else tuple(args.zoo),
        zoo_options=None if args.zoo_epochs is None else {name: {"epochs": args.zoo_epochs} for name in (args.zoo or base.zoo)},
        unfold=unfold,
        test_limit=args.test_limit,
        metrics=metrics,
        beam=args.beam,
        montage_videos=args.montage_videos,
        device=args.device,
        threads=args.threads,
        seed=args.seed,
    )


def _cmd_compare(args: argparse.Namespace) -> int:
    if args.capture is not None:
        from snapcap.compare.capture import compare_capture

        if args.checkpoints is None:
            raise ConfigError("--capture needs --checkpoints (a training folder, or the OUT of an earlier `snapcap compare`)")
        recon = args.recon if args.recon is not None else ["gap-tv"]
        params: dict[str, dict[str, Any]] = {}
        for method, name, value in args.recon_param or []:
            params.setdefault(method, {})[name] = value
        results = compare_capture(
            args.capture, args.mask, args.checkpoints, args.out, recon=recon, recon_params=params,
            students=args.students if args.students is not None else ("snapcap", "baseline"), crop=args.crop,
            mask_key=args.mask_key, B=args.B[0] if args.B else None, device=args.device or "cpu", progress=not args.no_progress,
        )
        for row in results["rows"]:
            first = next(iter(row["predictions"].values()), "")
            print(f"{row['label']:<36} {row['total_ms']:9.1f} ms/video  {first}")
        print(f"wrote {args.out / 'report.md'}", file=sys.stderr)
        return 0
    from snapcap.compare.run import run_compare

    config = _config_from_args(args)
    results = run_compare(config, args.out, cache=args.cache, progress=not args.no_progress, quiet=args.quiet)
    from snapcap.compare.report import table3

    print(table3(results["rows"], results["config"]["reference_B"], results["config"]["pipelines"]))
    for line in results.get("findings", []) or []:
        print(f"- {line}")
    print(f"wrote {args.out / 'report.md'} ({results['wall_s']:.0f} s)", file=sys.stderr)
    return 0
