"""The arrow of time: does a caption state the direction of motion, and is it right?

A CACTI camera codes each frame's time into the snapshot with its masks; a long exposure (every
mask all ones: the plain sum of the frames) keeps a motion's streak but not its sense. This bench
asks whether the captions show the difference, on the procedural corpus
(:class:`snapcap.datasets.synthetic.SyntheticCorpus`: one object per video, 64×64 RGB through an
RGGB Bayer mosaic, B = 8) whose training *and* test splits hold time-reversed twins (video 2k+1
is video 2k played backwards: the same long exposure, the opposite direction).

For T = 4 and T = 1 snapshots per video it trains, with the ``tiny-temporal`` preset's recipe:

* the order-aware teacher (:mod:`snapcap.caption.temporal`: the frozen tiny tower's per-frame
  tokens, frame-in-snapshot and snapshot-in-video embeddings, a small temporal transformer) on
  the true frames (camera ``frames``);
* the order-aware SnapCap student (``snapcap-temporal``) and its baseline (the same network,
  caption loss only) on coded snapshots (camera ``coded``: random binary masks);
* the same SnapCap student trained and tested on long-exposure snapshots (camera
  ``long-exposure``), and with ``--single-frame`` on one uncoded frame per snapshot time;

then captions every test video (greedy) and reads each caption's facts back
(:func:`snapcap.datasets.synthetic.readback.score_caption`):

* ``direction_accuracy``: % of the captions stating a direction whose every stated direction is right;
* ``direction_stated``: % of the captions that state one;
* ``reversal_pairs``: % of the time-reversed test pairs (a moving object) in which both captions
  state the right direction; a long exposure is the same image for a video and its reversal, so
  its ceiling is 50 % accuracy on straight motions and 0 % of the pairs;
* ``cider``: CIDEr-D (pycocoevalcap) against the references; with an interval over test videos.

Targets (issue "the arrow of time"), checked for the corpus seed given: at T = 4 the teacher
states a right direction in >= 80 % of the captions that state one and SnapCap in >= 70 %, each
stating one in >= 50 % of its captions, the teacher's CIDEr >= 100 and SnapCap's >= 0.9 × the
teacher's; at T = 1 the order-aware teacher >= 80, the order-aware SnapCap >= 70 with
``reversal_pairs`` >= 50, and the long-exposure control ``reversal_pairs`` <= 5 and
``direction_accuracy`` <= 55 (a control above that would have a leak).

Usage: python bench/temporal.py [--seed S] [--json FILE] [--videos 1200] [--T 4 1] [--single-frame]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from snapcap.caption.metrics import caption_metrics  # noqa: E402
from snapcap.caption.presets import captioner_preset, training_preset  # noqa: E402
from snapcap.caption.train import load_native, train_student, train_teacher  # noqa: E402
from snapcap.datasets.h5 import DatasetConfig  # noqa: E402
from snapcap.datasets.synthetic import SyntheticCorpus  # noqa: E402
from snapcap.datasets.synthetic.readback import direction_scores  # noqa: E402
from snapcap.datasets.torch_data import SimulatedDataset  # noqa: E402

PRESET = "tiny-temporal"
CAMERAS = {"coded": "random", "long-exposure": "long-exposure", "single-frame": "single-frame"}
"""Camera -> mask kind of :data:`snapcap.cacti.masks.MASK_KINDS`."""


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def corpus_of(videos: int, seed: int) -> SyntheticCorpus:
    return SyntheticCorpus(num_videos=videos, seed=seed, splits=(0.75, 0.0, 0.25), max_objects=1, temporal_pairs=True)


def samples_of(corpus: SyntheticCorpus, split: str, B: int, T: int, camera: str) -> list[dict]:
    """Every sample of a split, frames kept as uint8 (a quarter of the memory; training widens them)."""
    dataset = SimulatedDataset(corpus, DatasetConfig(B=B, T=T, size=(64, 64), mask=CAMERAS[camera]), split=split)
    out = []
    for index in range(len(dataset)):
        sample = dataset[index]
        sample["frames"] = (sample["frames"] * 255.0).round_().to(torch.uint8)
        out.append(sample)
    return out


def caption_all(model, test: list[dict], vocab, frames: bool, batch: int = 32) -> dict[str, str]:
    out = {}
    with torch.no_grad():
        for start in range(0, len(test), batch):
            rows = test[start : start + batch]
            if frames:
                ids = model.caption(torch.stack([r["frames"] for r in rows]).float().div_(255.0))
            else:
                ids = model.caption(torch.stack([r["meas"] for r in rows]), rows[0]["masks"])
            out.update({r["video_id"]: vocab.decode(i) for r, i in zip(rows, ids)})
    return out


def row_of(pipeline: str, camera: str, T: int, B: int, captions: dict[str, str], corpus: SyntheticCorpus, test) -> dict:
    facts = {item.video_id: item.extra["facts"] for item in corpus.items if item.video_id in captions}
    pairs = {item.video_id: item.extra.get("pair") for item in corpus.items if item.video_id in captions}
    scores = direction_scores(captions, facts, pairs)
    references = {r["video_id"]: list(r["captions"]) for r in test}
    cider = caption_metrics(captions, references, metrics=("CIDEr",)).scores["CIDEr"]
    return {
        "pipeline": pipeline,
        "camera": camera,
        "T": T,
        "B": B,
        **scores,
        "cider": round(float(cider), 2),
        "distinct": len(set(captions.values())),
        "videos": len(captions),
    }


def run_T(T: int, args, corpus: SyntheticCorpus, work: Path) -> list[dict]:
    B = args.B
    training = training_preset(PRESET, seed=args.seed)
    config = captioner_preset(PRESET, B=B, T=T)
    rows = []
    cameras = ["coded", "long-exposure"] + (["single-frame"] if args.single_frame else [])
    mark = time.perf_counter()
    data = {camera: (samples_of(corpus, "train", B, T, camera), samples_of(corpus, "test", B, T, camera)) for camera in cameras}
    counts = f"{len(data['coded'][0])} train / {len(data['coded'][1])} test videos per camera"
    log(f"T={T}: data ({counts}): {time.perf_counter() - mark:.0f} s")
    folder = work / f"T{T}"
    mark = time.perf_counter()
    teacher_path = train_teacher(data["coded"][0], folder / "teacher", config, training, progress=False)
    log(f"T={T}: teacher {time.perf_counter() - mark:.0f} s")
    teacher, _, vocab = load_native(teacher_path, expect="teacher")
    test = data["coded"][1]
    rows.append(row_of("teacher", "frames", T, B, caption_all(teacher, test, vocab, frames=True), corpus, test))
    log(f"  {rows[-1]}")
    plan = [("snapcap", "snapcap-temporal", "coded"), ("baseline", "baseline-temporal", "coded")]
    plan += [("snapcap", "snapcap-temporal", camera) for camera in cameras[1:]]
    for pipeline, mode, camera in plan:
        mark = time.perf_counter()
        train, test = data[camera]
        # the distillation targets depend on the frames only, the same for every camera: cached once beside the teacher
        path = train_student(train, teacher_path, folder / camera, mode, training, progress=False)
        model, _, _ = load_native(path)
        rows.append(row_of(pipeline, camera, T, B, caption_all(model, test, vocab, frames=False), corpus, test))
        log(f"T={T}: {mode} on {camera} {time.perf_counter() - mark:.0f} s: {rows[-1]}")
    return rows


def targets(rows: list[dict]) -> list[tuple[str, bool]]:
    def find(pipeline, camera, T):
        return next((r for r in rows if (r["pipeline"], r["camera"], r["T"]) == (pipeline, camera, T)), None)

    checks = []
    teacher4, snap4 = find("teacher", "frames", 4), find("snapcap", "coded", 4)
    if teacher4 and snap4:
        checks += [
            ("T=4 teacher direction_accuracy >= 80", (teacher4["direction_accuracy"] or 0) >= 80),
            ("T=4 SnapCap direction_accuracy >= 70", (snap4["direction_accuracy"] or 0) >= 70),
            (
                "T=4 teacher and SnapCap state a direction in >= 50 %",
                min(teacher4["direction_stated"], snap4["direction_stated"]) >= 50,
            ),
            ("T=4 teacher CIDEr >= 100", teacher4["cider"] >= 100),
            ("T=4 SnapCap CIDEr >= 0.9 x teacher", snap4["cider"] >= 0.9 * teacher4["cider"]),
        ]
    teacher1, snap1, long1 = find("teacher", "frames", 1), find("snapcap", "coded", 1), find("snapcap", "long-exposure", 1)
    if teacher1 and snap1 and long1:
        checks += [
            ("T=1 order-aware teacher direction_accuracy >= 80", (teacher1["direction_accuracy"] or 0) >= 80),
            ("T=1 order-aware SnapCap direction_accuracy >= 70", (snap1["direction_accuracy"] or 0) >= 70),
            ("T=1 order-aware SnapCap reversal_pairs >= 50", (snap1["reversal_pairs"] or 0) >= 50),
            ("T=1 long-exposure reversal_pairs <= 5", (long1["reversal_pairs"] or 0) <= 5),
            ("T=1 long-exposure direction_accuracy <= 55", (long1["direction_accuracy"] or 0) <= 55),
        ]
    return checks


def fmt(value) -> str:
    return "-" if value is None else f"{value:.1f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0, help="corpus and training seed (default 0)")
    parser.add_argument("--json", type=Path, help="write the rows as JSON here")
    parser.add_argument("--videos", type=int, default=1200, help="corpus size, twins included (75%% train; default 1200)")
    parser.add_argument("--B", type=int, default=8, help="frames per snapshot (default 8)")
    parser.add_argument("--T", type=int, nargs="+", default=[4, 1], help="snapshots per video (default 4 1)")
    parser.add_argument(
        "--single-frame", action="store_true", help="also the single-frame camera (one uncoded frame per snapshot)"
    )
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--work", type=Path, help="folder for the checkpoints (default: a temporary folder)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    began = time.perf_counter()
    corpus = corpus_of(args.videos, args.seed)
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="snapcap-bench-temporal-") as tmp:
        work = args.work or Path(tmp)
        for T in args.T:
            rows += run_T(T, args, corpus, work)
    print(f"## Direction of motion, B = {args.B}, corpus seed {args.seed} ({args.videos} videos, twins in train and test)\n")
    print("| T | pipeline | camera | direction right % | direction stated % | reversal pairs % | CIDEr | distinct |")
    print("|---:|---|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['T']} | {r['pipeline']} | {r['camera']} | {fmt(r['direction_accuracy'])} | {fmt(r['direction_stated'])} "
            f"| {fmt(r['reversal_pairs'])} | {fmt(r['cider'])} | {r['distinct']}/{r['videos']} |"
        )
    print()
    for label, ok in targets(rows):
        print(f"- {'PASS' if ok else 'MISS'}: {label}")
    collapsed = [f"{r['pipeline']} ({r['camera']}, T={r['T']})" for r in rows if r["distinct"] <= max(1, 0.1 * r["videos"])]
    if collapsed:
        print(f"- collapsed (distinct captions for at most 10 % of the test videos): {', '.join(collapsed)}")
    print(f"\n{time.perf_counter() - began:.0f} s in all")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "seed": args.seed, "videos": args.videos}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
