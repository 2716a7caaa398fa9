"""The tiny preset's recipe on a spread of cameras, not only the demo's.

The demo (`snapcap compare --preset tiny`) picks its teacher recipe (the shipped tiny tower,
frozen; projector + decoder 20 epochs; students 2 + 6 epochs, the baseline 8) on RGGB Bayer
snapshots without noise. This runs the same recipe, one compression ratio at a time, on RGGB and
gray frames, without noise and with Gaussian read noise, and prints side by side the teacher's
CIDEr on the true frames, SnapCap's, the baseline's and two-stage GAP-TV's, SnapCap's share of
the teacher's and the direction accuracy of each, all from the same run. The demo's targets:
teacher >= 100, SnapCap >= 90 % of it.

Usage: python bench/tiny_recipe.py [--B 8 24] [--work DIR]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import time
from pathlib import Path

from snapcap.compare.config import compare_preset
from snapcap.compare.run import run_compare

CASES = (
    ("RGGB, no noise (the demo)", {"gray": False, "noise": "none"}),
    ("gray, no noise", {"gray": True, "noise": "none"}),
    ("RGGB, gaussian sigma 0.02", {"gray": False, "noise": "gaussian:sigma=0.02"}),
    ("gray, gaussian sigma 0.02", {"gray": True, "noise": "gaussian:sigma=0.02"}),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--B", type=int, nargs="+", default=[8], help="compression ratios (default 8)")
    parser.add_argument("--work", type=Path, default=Path("bench_out/tiny_recipe"), help="report folders and shared cache")
    args = parser.parse_args()
    print(
        "| camera | B | teacher CIDEr | SnapCap | baseline | two-stage GAP-TV | SnapCap / teacher "
        "| direction % (teacher / SnapCap) | s |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for label, camera in CASES:
        began = time.perf_counter()
        config = compare_preset("tiny", B=tuple(args.B), montage_videos=0, **camera)
        name = label.split(" (")[0].replace(", ", "-").replace(" ", "_")
        results = run_compare(config, args.work / name, cache=args.work / "cache", progress=False, quiet=True)
        seconds = time.perf_counter() - began
        for B in args.B:
            rows = {row["pipeline"]: row for row in results["rows"] if row["B"] == B}
            cider = {name: rows[name]["scores"]["CIDEr"] for name in rows}
            direction = {name: (rows[name].get("facts") or {}).get("direction", {}).get("accuracy") for name in rows}
            share = cider["snapcap"] / cider["teacher"] if cider["teacher"] else float("nan")
            print(
                f"| {label} | {B} | {cider['teacher']:.1f} | {cider['snapcap']:.1f} | {cider['baseline']:.1f} "
                f"| {cider['two-stage:gap-tv']:.1f} | {100 * share:.0f} % "
                f"| {direction['teacher'] or 0:.0f} / {direction['snapcap'] or 0:.0f} | {seconds:.0f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
