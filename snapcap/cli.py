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

_COMMANDS: tuple[Callable[[argparse._SubParsersAction], None], ...] = (_add_simulate, _add_doctor)


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
