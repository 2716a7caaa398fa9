"""``snapcap compare --capture FILE --mask M``: one- and two-stage side by side on a real capture.

A real capture has no reference captions: the report gives every pipeline's caption of every
video (T consecutive snapshots), its time per video and peak memory, and a montage of the
snapshot beside each two-stage reconstruction. The models come from ``--checkpoints``: a
training folder (``teacher.pt``, ``snapcap.pt``, ``baseline.pt``) or the output folder of an
earlier ``snapcap compare`` (the models of the capture's B are taken from its results.json).

One-stage students work at one image size (the teacher's); a larger capture is cropped to that
size around its centre, masks and snapshots alike, which is exact for the CACTI forward model
(``crop="center"``; ``crop="none"`` refuses instead).
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from tqdm.auto import tqdm

from snapcap.caption.evaluate import MemoryMeter
from snapcap.caption.registry import create_captioner, load_captioner
from snapcap.compare.report import cell
from snapcap.compare.run import label_of
from snapcap.datasets.samples import capture_samples
from snapcap.errors import ConfigError, DataFileError, ShapeError
from snapcap.fileio import write_text
from snapcap.hardware import load_capture
from snapcap.viz import save_figure

__all__ = ["compare_capture", "capture_checkpoints"]


def capture_checkpoints(checkpoints: str | Path, B: int) -> dict[str, Path]:
    """Pipeline -> checkpoint for data of this B, from a training folder or a compare output."""
    folder = Path(checkpoints)
    if not folder.exists():
        raise DataFileError(
            f"--checkpoints {folder}: no such folder (a training folder with teacher.pt, or a `snapcap compare` output)"
        )
    results = folder / "results.json" if folder.is_dir() else None
    if results is not None and results.is_file():
        try:
            data = json.loads(results.read_text(encoding="utf-8"))
            found = {
                row["pipeline"]: Path(row["checkpoint"])
                for row in data.get("rows", [])
                if int(row.get("B", -1)) == B and row.get("checkpoint")
            }
            have = sorted({int(row["B"]) for row in data.get("rows", [])})
            unfold = [
                stage
                for stage in data.get("stages", [])
                if stage.get("stage") == "unfold" and stage.get("B") == B and stage.get("path")
            ]
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:  # damaged, or another structure
            raise DataFileError(
                f"{results}: not a readable results file of `snapcap compare` ({exc.__class__.__name__}: {exc}); "
                "expected rows of pipeline, B and checkpoint"
            ) from exc
        if "teacher" not in found:
            raise ConfigError(
                f"{results}: no models for B={B} (the capture's); that comparison has B = {have}; rerun it with --B {B} added"
            )
        out = {"teacher": found["teacher"]}
        for name in ("snapcap", "baseline"):
            if name in found:
                out[name] = found[name]
        if unfold:
            out["unfold"] = Path(unfold[-1]["path"])
        return out
    if folder.is_dir():
        out = {name: folder / f"{name}.pt" for name in ("teacher", "snapcap", "baseline") if (folder / f"{name}.pt").is_file()}
        if "teacher" not in out:
            raise DataFileError(f"--checkpoints {folder}: holds no teacher.pt and no results.json of `snapcap compare`")
        return out
    raise DataFileError(f"--checkpoints {folder}: expected a folder")


def _center_crop(array: np.ndarray, size: int) -> np.ndarray:
    height, width = array.shape[-2:]
    top, left = (height - size) // 2, (width - size) // 2
    return array[..., top : top + size, left : left + size]


def compare_capture(
    capture: str | Path,
    mask: str | Path | None,
    checkpoints: str | Path,
    out: str | Path,
    recon: Sequence[str] = ("gap-tv",),
    recon_params: dict[str, dict[str, Any]] | None = None,
    students: Sequence[str] = ("snapcap", "baseline"),
    crop: str = "center",
    mask_key: str | None = None,
    B: int | None = None,
    device: str = "cpu",
    progress: bool = True,
) -> dict[str, Any]:
    """Caption a real capture with one- and two-stage pipelines; writes results.json, report.md
    and montage PNGs into ``out``; returns the results."""
    import torch

    capture, out = Path(capture), Path(out)
    if not capture.exists():
        raise DataFileError(f"--capture {capture}: no such file")
    if crop not in ("center", "none"):
        raise ConfigError(f"--crop must be 'center' or 'none', got {crop!r}")

    loaded = load_capture(capture, mask=mask, mask_key=mask_key, B=B)
    models = capture_checkpoints(checkpoints, int(loaded.B))
    teacher = load_captioner(models["teacher"], device=device, name="teacher")
    size = teacher.image_size
    # Every model of the folder shares the teacher's T: the capture's snapshots become videos of T.
    samples, notes = capture_samples(loaded.meas, loaded.masks, int(teacher.T), loaded.bayer, capture.stem)
    notes.insert(
        0,
        f"capture {loaded.layout}: {loaded.num_snapshots} snapshot(s) {loaded.frame_shape[0]}x{loaded.frame_shape[1]}, "
        f"B={loaded.B}, bayer={loaded.bayer}",
    )
    height, width = samples[0]["meas"].shape[-2:]
    if (height, width) != (size, size):
        if crop == "none" or height < size or width < size:
            raise ShapeError(
                f"{capture}: snapshots are {height}x{width} and the one-stage models work at {size}x{size}"
                + ("" if crop == "none" else " (smaller than the models: cannot crop)")
            )
        for sample in samples:
            sample["meas"] = torch.from_numpy(np.ascontiguousarray(_center_crop(sample["meas"].numpy(), size)))
            sample["masks"] = torch.from_numpy(np.ascontiguousarray(_center_crop(sample["masks"].numpy(), size)))
        notes.append(
            f"snapshots and masks cropped from {height}x{width} to the central {size}x{size} "
            "(the models' size; exact for the forward model)"
        )
    pipelines: list[tuple[str, Any]] = []
    for name in students:
        if name in models:
            pipelines.append((name, create_captioner(name, {name: models[name]}, device=device)))
        else:
            notes.append(f"no {name} checkpoint in {checkpoints}: its row is left out")
    for method in recon:
        params = dict((recon_params or {}).get(method, {}))
        if method == "unfold":
            if "unfold" not in models and not params.get("checkpoint"):
                notes.append(f"no trained unfold network in {checkpoints}: two-stage:unfold is left out")
                continue
            params.setdefault("checkpoint", str(models.get("unfold")))
        pipelines.append(
            (
                f"two-stage:{method}",
                create_captioner(f"two-stage:{method}", {"teacher": models["teacher"]}, recon_params=params, device=device),
            )
        )
    if not pipelines:
        raise ConfigError("no pipeline to run on the capture (no student checkpoints and no --recon)")
    began = time.perf_counter()
    rows, recon_frames = [], {}
    for name, captioner in pipelines:
        captioner.caption(samples[0])  # warm-up
        predictions, totals, recons = {}, [], []
        meter = MemoryMeter(device).start()
        try:
            for sample in tqdm(samples, desc=f"capture {name}", unit="video", disable=not progress, leave=False):
                predictions[str(sample["video_id"])] = captioner.caption(sample)[0]
                totals.append(1000.0 * captioner.timings["total"])
                recons.append(1000.0 * captioner.timings["recon"])
                if captioner.two_stage and name not in recon_frames:
                    recon_frames[name] = captioner.model.last_frames[0, 0].cpu().numpy()
        finally:
            memory = meter.stop()
        rows.append(
            {
                "pipeline": name,
                "label": label_of(name),
                "B": int(loaded.B),
                "videos": len(predictions),
                "predictions": predictions,
                "recon_ms": statistics.fmean(recons) if captioner.two_stage else None,
                "caption_ms": statistics.fmean(totals) - statistics.fmean(recons),
                "total_ms": statistics.fmean(totals),
                "peak_rss_mb": memory.get("peak_rss_mb"),
                "peak_cuda_mb": memory.get("peak_cuda_mb"),
                "checkpoint": None if captioner.checkpoint is None else str(captioner.checkpoint),
            }
        )
    results = {
        "capture": str(capture),
        "layout": loaded.layout,
        "mask": None if mask is None else str(mask),
        "B": int(loaded.B),
        "bayer": loaded.bayer,
        "snapshots": int(loaded.num_snapshots),
        "T": teacher.T,
        "rows": rows,
        "notes": notes,
        "checkpoints": {k: str(v) for k, v in models.items()},
        "wall_s": round(time.perf_counter() - began, 1),
    }
    _write_capture_report(results, samples[0], recon_frames, out)
    return results


def _write_capture_report(results: dict[str, Any], first: dict[str, Any], recon_frames: dict[str, np.ndarray], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    figures = []
    meas = np.asarray(first["meas"][0], dtype=np.float32)
    if recon_frames:
        B = results["B"]
        shown = np.unique(np.linspace(0, B - 1, min(B, 8)).round().astype(int))
        fig, axes = plt.subplots(
            len(recon_frames), len(shown) + 1, figsize=(1.6 * (len(shown) + 1), 1.8 * len(recon_frames)), squeeze=False
        )
        for r, (name, video) in enumerate(recon_frames.items()):
            axes[r, 0].imshow(meas, cmap="gray")
            axes[r, 0].set_title("snapshot" if r == 0 else "", fontsize=7)
            axes[r, 0].set_ylabel(label_of(name), fontsize=7)
            for c, k in enumerate(shown, start=1):
                frame = np.clip(np.asarray(video[k], dtype=np.float32), 0, 1)
                axes[r, c].imshow(frame, cmap=None if frame.ndim == 3 else "gray", vmin=0, vmax=1)
                axes[r, c].set_title(f"{label_of(name)} {k + 1}" if c == 1 else f"{k + 1}", fontsize=7)
            for ax in axes[r]:
                ax.set_xticks([])
                ax.set_yticks([])
        save_figure(fig, out / "capture_montage.png")
        figures.append("capture_montage.png")
    lines = [
        f"# snapcap compare on a real capture: {Path(results['capture']).name}",
        "",
        f"Layout {results['layout']}, B = {results['B']}, {results['bayer'] or 'gray'}, {results['snapshots']} snapshot(s), "
        f"T = {results['T']} per video; masks {results['mask']}. No reference captions: captions, times and memory only.",
        "",
        "| pipeline | peak memory (MB) | recon ms | caption ms | total ms |",
        "|---|---:|---:|---:|---:|",
    ]
    for row in results["rows"]:
        memory = row.get("peak_cuda_mb") or row.get("peak_rss_mb")
        lines.append(
            f"| {row['label']} | {cell(memory, 0)} | {cell(row['recon_ms'])} | {cell(row['caption_ms'])} "
            f"| {cell(row['total_ms'])} |"
        )
    lines += ["", "## Captions", ""]
    videos = list(results["rows"][0]["predictions"]) if results["rows"] else []
    for vid in videos:
        lines.append(f"**{vid}**")
        lines += [f"- {row['label']}: “{row['predictions'].get(vid, '')}”" for row in results["rows"]]
        lines.append("")
    lines += [f"![{name}]({name})" for name in figures]
    if results["notes"]:
        lines += ["", "## Notes", ""] + [f"- {note}" for note in results["notes"]]
    write_text(out / "report.md", "\n".join(lines) + "\n")
    write_text(out / "results.json", json.dumps(results, indent=1, default=str))
