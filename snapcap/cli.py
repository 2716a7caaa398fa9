"""The ``snapcap`` command (also ``python -m snapcap``)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Callable, Sequence

from snapcap.errors import ConfigError, SnapcapError

__all__ = ["main", "build_parser"]


def _size(text: str) -> tuple[int, int]:
    try:
        if "x" in text.lower():
            height, width = (int(v) for v in text.lower().split("x"))
        else:
            height = width = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must be N or HxW (e.g. 256 or 256x320), got {text!r}") from None
    if height < 1 or width < 1:
        raise argparse.ArgumentTypeError(f"size must be positive, got {text!r}")
    return height, width


# --- simulate -----------------------------------------------------------------------------------


def _add_simulate(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "simulate",
        help="simulate CACTI snapshots of a video",
        description="Code B frames per snapshot with masks, sum them, add noise; write the measurements, masks "
        "and every parameter (.npz or .h5) and a PNG montage.",
    )
    parser.add_argument("input", help="builtin:demo, builtin:scene:SEED, a video file, an .npy array or a benchmark .mat")
    parser.add_argument("--key", help="variable to read from a .mat input (default: orig)")
    parser.add_argument("--B", type=int, default=None, help="frames per snapshot (default 8, or the stored mask's)")
    parser.add_argument(
        "--mask",
        default="random",
        help="random | shifting | shifting-roll | gray | dmd | stored (the .mat input's own mask) | a mask file (.mat/.npy/.npz/.h5)",
    )
    parser.add_argument("--mask-key", help="variable of the mask file")
    parser.add_argument("--duty", type=float, default=0.5, help="fraction of open mask pixels (generated masks)")
    parser.add_argument("--bayer", default=None, help="RGGB, BGGR, GRBG or GBRG (RGB input is mosaicked; default RGGB), or none")
    parser.add_argument("--gray", action="store_true", help="convert RGB input to gray first")
    parser.add_argument("--noise", default="none", help="noise spec, e.g. 'poisson:photons=1000+gaussian:sigma=0.01' (default none)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the masks and the noise")
    parser.add_argument("--size", type=_size, default=None, help="resize frames to N or HxW (video and built-in input)")
    parser.add_argument("--max-frames", type=int, default=None, help="use at most this many frames per video")
    parser.add_argument("--raw", action="store_true", help="keep integer input values (0..255) instead of scaling to [0, 1]")
    parser.add_argument("--chunk-size", type=int, default=16, help="snapshots simulated at a time (memory bound)")
    parser.add_argument("--out", "-o", type=Path, default=Path("snapcap_meas.npz"), help="output .npz or .h5")
    parser.add_argument("--montage", type=Path, default=None, help="PNG montage path (default: next to --out)")
    parser.add_argument("--no-montage", action="store_true", help="do not write a montage")
    parser.add_argument("--save-frames", action="store_true", help="store the input frames in the output too")
    parser.set_defaults(func=_cmd_simulate)


def _masks_argument(args: argparse.Namespace, stored, height: int, width: int):
    from snapcap.cacti.masks import MaskSpec, load_masks

    kind = args.mask
    if kind == "stored":
        if stored is None:
            raise ConfigError(f"--mask stored: the input {args.input} holds no mask variable")
        return stored if args.B is None else stored[: args.B]
    generated = {"random": ("random", {}), "shifting": ("shifting", {}), "shifting-roll": ("shifting", {"boundary": "roll", "step": -1}), "gray": ("gray", {}), "dmd": ("dmd", {})}
    if kind in generated:
        name, params = generated[kind]
        if name != "gray":
            params = dict(params, duty=args.duty)
        return MaskSpec(name, args.B or 8, height, width, seed=args.seed, params=params)
    path = Path(kind)
    if path.suffix.lower() in (".mat", ".npy", ".npz", ".h5", ".hdf5") or path.exists():
        return load_masks(path, key=args.mask_key, B=args.B)
    raise ConfigError(f"--mask {kind!r}: expected random, shifting, shifting-roll, gray, dmd, stored or a mask file")


def _cmd_simulate(args: argparse.Namespace) -> int:
    import numpy as np

    from snapcap.cacti.simulate import simulate
    from snapcap.cacti.store import save_measurements
    from snapcap.datasets.sources import load_frames
    from snapcap.viz import simulation_montage

    source = load_frames(args.input, key=args.key, size=args.size, max_frames=args.max_frames, gray=args.gray)
    video = source.frames
    height, width = video.shape[2], video.shape[3]
    masks = _masks_argument(args, source.stored_masks, height, width)
    bayer = None if (args.bayer or "").lower() == "none" else args.bayer
    result = simulate(
        video,
        B=args.B if not hasattr(masks, "shape") else None,
        masks=masks,
        bayer=bayer,
        noise=args.noise,
        seed=args.seed,
        normalize=not args.raw,
        chunk_size=args.chunk_size,
        progress=True,
    )
    params = dict(result.params, source=source.description)
    out = save_measurements(args.out, result.meas, result.masks, params, frames=video if args.save_frames else None)
    print(f"wrote {out}: meas {tuple(result.meas.shape)} (N, T, H, W), B={params['B']}, bayer={params['bayer']}, noise={args.noise}")
    if params["frames_dropped"]:
        print(f"note: {params['frames_dropped']} trailing frame(s) per video did not fill a snapshot and were dropped")
    if not args.no_montage:
        montage = args.montage or out.with_name(out.stem + "_montage.png")
        b = params["B"]
        scale = params["input"]["scale"]
        first = np.asarray(video[0, :b], dtype=np.float32) / (scale if scale != 1.0 else max(float(video[0, :b].max()), 1.0))
        meas0 = np.asarray(result.meas[0, 0])
        norm = result.operator.normalized_measurement(meas0)
        title = f"{source.description}: B={b}, masks {params['masks']['kind']}, bayer {params['bayer']}, noise {args.noise}"
        simulation_montage(first, result.masks, meas0, montage, normalized=norm, title=title)
        print(f"wrote {montage}")
    return 0


# --- dataset ------------------------------------------------------------------------------------


def _add_dataset(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("dataset", help="make, merge, verify and describe measurement dataset files (HDF5)")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB")
    verbs.required = True

    make = verbs.add_parser("make", help="simulate a video corpus into a dataset file (resumable, shardable)")
    make.add_argument("--corpus", required=True, choices=["msrvtt", "msvd", "folder", "synthetic", "benchmark"])
    make.add_argument("--root", type=Path, help="corpus folder (msrvtt, msvd, folder)")
    make.add_argument("--annotations", type=Path, nargs="*", help="MSR-VTT annotation JSON file(s)")
    make.add_argument("--captions", type=Path, help="MSVD caption file, or the folder corpus's captions CSV/JSON")
    make.add_argument("--mapping", type=Path, help="MSVD youtube_mapping.txt (for the standard split)")
    make.add_argument("--paths", type=Path, nargs="*", help="benchmark .mat files")
    make.add_argument("--num-videos", type=int, default=200, help="synthetic corpus size")
    make.add_argument("--corpus-seed", type=int, default=0, help="synthetic corpus seed")
    make.add_argument("--split", choices=["train", "val", "test"], help="only this split")
    make.add_argument("--limit", type=int, help="at most this many videos (after --split)")
    make.add_argument("--B", type=int, default=8, help="frames per snapshot (default 8)")
    make.add_argument("--T", type=int, default=8, help="snapshots per video (default 8)")
    make.add_argument("--size", type=_size, default=(224, 224), help="frame size N or HxW (default 224)")
    make.add_argument("--gray", action="store_true", help="gray video (default: RGB through a Bayer mosaic)")
    make.add_argument("--bayer", default="RGGB", help="Bayer pattern of RGB video (default RGGB)")
    make.add_argument("--mask", default="random", choices=["random", "shifting", "gray", "dmd"], help="mask kind")
    make.add_argument("--mask-seed", type=int, default=0)
    make.add_argument("--duty", type=float, default=None, help="open fraction of binary masks")
    make.add_argument("--per-sample-masks", action="store_true", help="a different mask set for every video")
    make.add_argument("--noise", default="none", help="noise spec, e.g. 'poisson:photons=1000+gaussian:sigma=0.01'")
    make.add_argument("--noise-seed", type=int, default=0)
    make.add_argument("--no-frames", action="store_true", help="do not store the frames (smaller; no bit-exact verify)")
    make.add_argument("--part-size", type=int, default=16, help="samples per crash-safe part")
    make.add_argument("--compression", default="gzip", choices=["gzip", "lzf"])
    make.add_argument("--shard", type=int, default=None, help="this process's shard (default: torchrun's RANK, else 0)")
    make.add_argument("--num-shards", type=int, default=None, help="number of shards (default: torchrun's WORLD_SIZE, else 1)")
    make.add_argument("--out", "-o", type=Path, required=True, help="output .h5 (shards write OUT.shard-III-of-NNN.h5)")
    make.set_defaults(func=_cmd_dataset_make)

    merge = verbs.add_parser("merge", help="join shard files into one virtual dataset (no copying)")
    merge.add_argument("shards", type=Path, nargs="+")
    merge.add_argument("--out", "-o", type=Path, required=True)
    merge.set_defaults(func=_cmd_dataset_merge)

    verify = verbs.add_parser("verify", help="checksums, completion markers, bit-exact re-simulation of sampled entries")
    verify.add_argument("path", type=Path)
    verify.add_argument("--samples", type=int, default=4, help="entries to re-simulate (plus the first and last)")
    verify.add_argument("--seed", type=int, default=0)
    verify.set_defaults(func=_cmd_dataset_verify)

    info = verbs.add_parser("info", help="summary of a dataset file")
    info.add_argument("path", type=Path)
    info.add_argument("--json", action="store_true")
    info.set_defaults(func=_cmd_dataset_info)


def _open_corpus_from_args(args: argparse.Namespace):
    from snapcap.datasets import corpora

    def need(name: str):
        value = getattr(args, name)
        if not value:
            raise ConfigError(f"--corpus {args.corpus} needs --{name.replace('_', '-')}")
        return value

    if args.corpus == "msrvtt":
        return corpora.MSRVTT(need("root"), annotations=args.annotations or None)
    if args.corpus == "msvd":
        return corpora.MSVD(need("root"), captions=args.captions, mapping=args.mapping)
    if args.corpus == "folder":
        return corpora.VideoFolder(need("root"), captions=args.captions)
    if args.corpus == "benchmark":
        return corpora.SCIBenchmark(need("paths"))
    from snapcap.datasets.synthetic import SyntheticCorpus

    return SyntheticCorpus(num_videos=args.num_videos, seed=args.corpus_seed)


def _cmd_dataset_make(args: argparse.Namespace) -> int:
    from snapcap.datasets.h5 import DatasetConfig, make_dataset, shard_from_env

    corpus = _open_corpus_from_args(args)
    items = corpus.select(args.split, args.limit)
    params = {} if args.duty is None else {"duty": args.duty}
    config = DatasetConfig(
        B=args.B,
        T=args.T,
        size=args.size,
        gray=args.gray or args.corpus == "benchmark",
        bayer=args.bayer,
        mask=args.mask,
        mask_seed=args.mask_seed,
        mask_params=params,
        per_sample_masks=args.per_sample_masks,
        noise=args.noise,
        noise_seed=args.noise_seed,
        store_frames=not args.no_frames,
        part_size=args.part_size,
        compression=args.compression,
    )
    shard, num_shards = args.shard, args.num_shards
    if shard is None or num_shards is None:
        env = shard_from_env()
        shard = shard if shard is not None else (env[0] if env else 0)
        num_shards = num_shards if num_shards is not None else (env[1] if env else 1)
    report = make_dataset(corpus, args.out, config, items=items, shard=shard, num_shards=num_shards)
    print(report.summary())
    if num_shards > 1:
        print(f"shard {shard + 1} of {num_shards} done; when all are, join them with: snapcap dataset merge --out {args.out} <shard files>")
    return 0


def _cmd_dataset_merge(args: argparse.Namespace) -> int:
    from snapcap.datasets.h5 import merge_shards

    out = merge_shards(args.shards, args.out)
    print(f"wrote {out} (virtual datasets over {len(args.shards)} shard file(s); keep them beside it)")
    return 0


def _cmd_dataset_verify(args: argparse.Namespace) -> int:
    from snapcap.datasets.h5 import verify_dataset

    report = verify_dataset(args.path, samples=args.samples, seed=args.seed, progress=True)
    print(report.summary())
    return 0 if report.ok else 1


def _cmd_dataset_info(args: argparse.Namespace) -> int:
    from snapcap.datasets.h5 import dataset_info

    info = dataset_info(args.path)
    if args.json:
        print(json.dumps(info, indent=2, default=str))
        return 0
    keys = ("format", "format_version", "num_samples", "B", "T", "H", "W", "rgb", "bayer", "mask", "noise", "noise_seed", "full_scale", "num_shards", "snapcap_version", "created")
    for key in keys:
        if key in info:
            print(f"{key:>16}: {info[key]}")
    print(f"{'splits':>16}: {info['split_counts']}")
    print(f"{'corpus':>16}: {info.get('corpus')}")
    for name, meta in info["datasets"].items():
        print(f"{name:>16}: {tuple(meta['shape'])} {meta['dtype']}{' (virtual)' if meta['virtual'] else ''}")
    if info.get("skipped"):
        print(f"{'skipped':>16}: {len(info['skipped'])} video(s): " + ", ".join(entry["video_id"] for entry in info["skipped"][:10]))
    return 0


# --- reconstruct --------------------------------------------------------------------------------


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def _ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _add_reconstruct(sub: argparse._SubParsersAction) -> None:
    from snapcap.recon.api import METHODS

    parser = sub.add_parser(
        "reconstruct",
        help="reconstruct video frames from snapshots",
        description="Reconstruct benchmark .mat files, snapcap measurement/dataset files or real captures. "
        "Writes frames (.npy or .h5), an animation, a montage PNG and metrics.json (PSNR/SSIM when the truth is known).",
    )
    parser.add_argument("input", type=Path)
    parser.add_argument("--method", default="gap-tv", choices=list(METHODS), help="reconstruction method (default gap-tv)")
    parser.add_argument("--mask", type=Path, help="mask file (.mat/.npy/.npz/.h5) when the input has none, or to override it")
    parser.add_argument("--mask-key", help="variable of the mask file")
    parser.add_argument("--B", type=int, help="frames per snapshot of a capture that does not say it (raw camera frames)")
    parser.add_argument("--samples", help="dataset rows: 0,3,5 or 0:4 or all (default 0)")
    parser.add_argument("--snapshots", help="snapshots to reconstruct: 0,2 or 1:4 or all (default all)")
    parser.add_argument("--iterations", type=_ints, help="iterations (gap-tv/admm-tv: one number; pnp: one per sigma)")
    parser.add_argument("--tv-weight", type=float, help="TV weight (gap-tv, admm-tv; default 0.3)")
    parser.add_argument("--gamma", type=float, help="ADMM gamma (admm-tv; default 0.01)")
    parser.add_argument("--sigmas", type=_floats, help="PnP sigma schedule on the 0..255 scale (default 50,25,12,6)")
    parser.add_argument("--warm-start", type=int, help="GAP-TV iterations before a PnP schedule")
    parser.add_argument("--weights", type=Path, help="denoiser checkpoint (pnp-ffdnet, pnp-fastdvdnet)")
    parser.add_argument("--checkpoint", type=Path, help="trained reconstructor (unfold): model.pt")
    parser.add_argument("--device", help="torch device for network methods (default cpu)")
    parser.add_argument("--format", choices=["npy", "h5"], default="npy", help="frames file format")
    parser.add_argument("--video", choices=["gif", "mp4", "none"], default="gif", help="animation of the reconstruction")
    parser.add_argument("--out", "-o", type=Path, required=True, help="output folder")
    parser.set_defaults(func=_cmd_reconstruct)


def _recon_overrides(args: argparse.Namespace) -> dict:
    overrides: dict = {}
    method = args.method
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


def _cmd_reconstruct(args: argparse.Namespace) -> int:
    import dataclasses

    import numpy as np
    from tqdm.auto import tqdm

    from snapcap.recon.api import make_params, reconstruct
    from snapcap.recon.inputs import load_recon_input
    from snapcap.recon.metrics import psnr, ssim
    from snapcap.viz import reconstruction_montage, save_animation

    source = load_recon_input(args.input, mask=args.mask, mask_key=args.mask_key, samples=args.samples, snapshots=args.snapshots, B=args.B)
    params = make_params(args.method, **_recon_overrides(args))
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
    out.mkdir(parents=True, exist_ok=True)
    if args.format == "npy":
        tmp = out / ".frames.npy.tmp"
        with open(tmp, "wb") as handle:
            np.save(handle, stack)
        tmp.replace(out / "frames.npy")
    else:
        from snapcap.cacti.store import save_measurements

        save_measurements(out / "frames.h5", source.meas, op.masks, {"method": args.method, "labels": source.labels}, frames=stack)
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
    (out / "metrics.json").write_text(json.dumps(summary, indent=2))
    truth0 = None if source.truth is None else source.truth[0]
    title = f"{source.labels[0]} - {args.method}" + (f" - {np.mean(rows[0]['psnr']):.2f} dB" if truth0 is not None else "")
    reconstruction_montage(stack[0], source.meas[0], out / "montage.png", truth=truth0, title=title)
    if args.video != "none":
        save_animation(stack.reshape((-1,) + stack.shape[2:]), out / f"recon.{args.video}")
    line = f"{args.method}: {stack.shape[0]} snapshot(s), {np.mean(seconds):.2f} s per snapshot"
    if "mean_psnr" in summary:
        line += f", PSNR {summary['mean_psnr']:.2f} dB, SSIM {summary['mean_ssim']:.4f}"
    print(line)
    print(f"wrote {out}/frames.{args.format}, {out}/metrics.json, {out}/montage.png" + (f", {out}/recon.{args.video}" if args.video != "none" else ""))
    return 0


# --- train ---------------------------------------------------------------------------------------


def _add_train(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("train", help="train models: the deep reconstructor (recon) and the captioners")
    what = parser.add_subparsers(dest="what", metavar="MODEL")
    what.required = True
    recon = what.add_parser("recon", help="train the deep unfolding reconstructor on simulated snapshots (resumable)")
    recon.add_argument("--data", type=Path, nargs="*", help="snapcap dataset file(s) with frames; default: simulate on the fly")
    recon.add_argument("--corpus", default="synthetic", choices=["synthetic", "msrvtt", "msvd", "folder", "benchmark"], help="corpus for on-the-fly simulation")
    recon.add_argument("--root", type=Path)
    recon.add_argument("--annotations", type=Path, nargs="*")
    recon.add_argument("--captions", type=Path)
    recon.add_argument("--mapping", type=Path)
    recon.add_argument("--paths", type=Path, nargs="*")
    recon.add_argument("--num-videos", type=int, default=120, help="synthetic corpus size")
    recon.add_argument("--corpus-seed", type=int, default=0)
    recon.add_argument("--limit", type=int, help="at most this many training videos")
    recon.add_argument("--B", type=int, default=8)
    recon.add_argument("--T", type=int, default=2, help="snapshots per video for on-the-fly simulation")
    recon.add_argument("--size", type=_size, default=(96, 96), help="frame size for on-the-fly simulation")
    recon.add_argument("--mask", default="random", choices=["random", "shifting", "gray", "dmd"])
    recon.add_argument("--mask-seed", type=int, default=0)
    recon.add_argument("--noise", default="none")
    recon.add_argument("--preset", default="tiny", choices=["tiny", "small", "paper"], help="network size")
    recon.add_argument("--steps", type=int, default=None, help="training steps (default 800)")
    recon.add_argument("--batch-size", type=int, default=8)
    recon.add_argument("--patch", type=int, default=None, help="training patch size (default 48)")
    recon.add_argument("--lr", type=float, default=None, help="learning rate (default 2e-3)")
    recon.add_argument("--seed", type=int, default=0)
    recon.add_argument("--device", default="cpu")
    recon.add_argument("--checkpoint-every", type=int, default=100)
    recon.add_argument("--no-resume", action="store_true", help="start over even if OUT holds a checkpoint")
    recon.add_argument("--out", "-o", type=Path, required=True, help="output folder (checkpoint.pt, model.pt, log.jsonl)")
    recon.set_defaults(func=_cmd_train_recon, gray=True, split=None)


def _cmd_train_recon(args: argparse.Namespace) -> int:
    import dataclasses

    from snapcap.datasets.h5 import DatasetConfig
    from snapcap.datasets.torch_data import MeasurementDataset, SimulatedDataset
    from snapcap.recon.nets.unfold import UNFOLD_PRESETS
    from snapcap.recon.train import TrainReconConfig, train_recon

    if args.data:
        train = MeasurementDataset(args.data, split="train")
        validation_source = MeasurementDataset(args.data, split="val")
        if len(train) == 0:
            train = MeasurementDataset(args.data)
    else:
        corpus = _open_corpus_from_args(args)
        config = DatasetConfig(B=args.B, T=args.T, size=args.size, gray=True, mask=args.mask, mask_seed=args.mask_seed, noise=args.noise)
        train = SimulatedDataset(corpus, config, split="train")
        validation_source = SimulatedDataset(corpus, config, split="val")
    samples = [train[i] for i in range(min(len(train), args.limit or len(train)))]
    validation = [validation_source[i] for i in range(min(len(validation_source), 4))] or None
    model = dataclasses.replace(UNFOLD_PRESETS[args.preset], B=int(samples[0]["masks"].shape[-3]))
    defaults = TrainReconConfig()
    config = TrainReconConfig(
        model=model,
        steps=defaults.steps if args.steps is None else args.steps,
        batch_size=args.batch_size,
        patch=defaults.patch if args.patch is None else args.patch,
        lr=defaults.lr if args.lr is None else args.lr,
        seed=args.seed,
        device=args.device,
        checkpoint_every=args.checkpoint_every,
    )
    record = train_recon(samples, args.out, config, resume=not args.no_resume, validation=validation)
    last = [entry for entry in record["history"] if "psnr" in entry][-1:]
    val = [entry for entry in record["history"] if "val_psnr" in entry][-1:]
    print(f"trained {record['steps']} steps in {record['seconds']:.0f} s; model: {record['model']}")
    if last:
        print(f"last training batch PSNR {last[0]['psnr']:.2f} dB" + (f", validation PSNR {val[0]['val_psnr']:.2f} dB" if val else ""))
    return 0


# --- doctor -------------------------------------------------------------------------------------


def _add_doctor(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("doctor", help="report the installed backends and optional tools")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(func=_cmd_doctor)


def environment_report() -> dict[str, str]:
    """Versions of the array backends and what optional pieces are usable."""
    import platform
    import shutil

    import numpy as np

    from snapcap import __version__
    from snapcap.backend import cupy_available

    report = {"snapcap": __version__, "python": platform.python_version(), "numpy": np.__version__}
    try:
        import torch

        report["torch"] = f"{torch.__version__} (CUDA available: {torch.cuda.is_available()})"
    except ImportError as exc:
        report["torch"] = f"not importable ({exc})"
    ok, why = cupy_available()
    report["cupy"] = why if ok else f"unavailable: {why}"
    java = shutil.which("java")
    report["java"] = java or "not found (METEOR and the PTB tokenizer of caption metrics need it: apt-get install default-jre-headless)"
    return report


def _cmd_doctor(args: argparse.Namespace) -> int:
    report = environment_report()
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for name, value in report.items():
            print(f"{name:>8}: {value}")
    return 0


# --- entry point --------------------------------------------------------------------------------

def _add_captioning(sub: argparse._SubParsersAction) -> None:
    """`train teacher|snapcap|baseline|...` (added to the existing `train`), `caption`, `eval`."""
    from snapcap.caption.cli import add_caption_commands

    add_caption_commands(sub)


def _add_capture(sub: argparse._SubParsersAction) -> None:
    from snapcap.hardware.cli import add_capture_parser

    add_capture_parser(sub)


def _add_compare(sub: argparse._SubParsersAction) -> None:
    from snapcap.compare.cli import add_compare_parser

    add_compare_parser(sub)


_COMMANDS: tuple[Callable[[argparse._SubParsersAction], None], ...] = (
    _add_compare, _add_simulate, _add_dataset, _add_reconstruct, _add_train, _add_captioning, _add_capture, _add_doctor,
)


def build_parser() -> argparse.ArgumentParser:
    from snapcap import __version__

    parser = argparse.ArgumentParser(prog="snapcap", description="Video snapshot compressive imaging: simulate, reconstruct, caption.")
    parser.add_argument("--version", action="version", version=f"snapcap {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for add in _COMMANDS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except SnapcapError as exc:
        print(f"snapcap {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"snapcap {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
