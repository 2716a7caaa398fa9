"""The files of a comparison: results.json, results.csv, report.md and the figures.

* ``results.json``: the configuration, every row (pipeline x B: scores, predictions, timings,
  memory, PSNR/SSIM), every stage (trained / reused, seconds) and the wall time.
* ``results.csv``: one line per row, no captions.
* ``report.md``: the SnapCap paper's Table 3 at the reference B (peak memory, reconstruction /
  caption / total time per video, BLEU-4, ROUGE-L, METEOR, CIDEr) and at every B, the CIDEr
  of every pipeline against B (its Fig. 6 as a table), the findings in numbers (how much each
  pipeline loses from the smallest to the largest B; how many times faster one-stage is), and
  the montages' captions.
* ``cider_vs_B.png`` (Fig. 6), ``latency_memory.png`` (time per video and peak memory of every
  pipeline against B) and ``montage_<video>.png`` (frames, snapshot, reconstructions, and every
  pipeline's caption against the references).
"""

from __future__ import annotations

import csv
import io
import json
import math
import textwrap
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from snapcap.fileio import write_text
from snapcap.recon.metrics import mean_psnr
from snapcap.viz import save_figure

__all__ = ["write_report", "report_markdown", "ROW_COLUMNS", "findings", "cell", "merge_seeds", "fact_table"]

ROW_COLUMNS = (
    "B",
    "pipeline",
    "label",
    "videos",
    "BLEU-4",
    "METEOR",
    "ROUGE-L",
    "CIDEr",
    "recon_ms",
    "caption_ms",
    "total_ms",
    "latency_videos",
    "peak_rss_mb",
    "peak_cuda_mb",
    "psnr",
    "ssim",
    "device",
)


def _flat(row: dict[str, Any]) -> dict[str, Any]:
    scores = row.get("scores") or {}
    flat = {key: row.get(key) for key in ROW_COLUMNS}
    for name in ("BLEU-4", "METEOR", "ROUGE-L", "CIDEr"):
        flat[name] = scores.get(name)
    return flat


def cell(value: Any, digits: int = 1) -> str:
    """A table cell: the number with ``digits`` decimals and thousands separators, or – when missing."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"{value:,.{digits}f}"
    return str(value)


def _mean(values: Sequence[Any]) -> float | None:
    numbers = [float(v) for v in values if v is not None]
    return float(np.mean(numbers)) if numbers else None


def _spread(values: Sequence[Any]) -> float | None:
    """Sample standard deviation over seeds (None under two values)."""
    numbers = [float(v) for v in values if v is not None]
    return float(np.std(numbers, ddof=1)) if len(numbers) >= 2 else None


_SEED_MEANS = (
    "recon_ms",
    "caption_ms",
    "total_ms",
    "total_ms_median",
    "peak_rss_mb",
    "peak_rss_increase_mb",
    "peak_cuda_mb",
    "psnr",
    "ssim",
)


def merge_seeds(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One comparison's results from its runs with several training seeds.

    Each row (pipeline x B) becomes the mean over seeds of its scores, per-video CIDEr (so the
    findings' intervals over test videos are those of the seed-averaged model), fact accuracies,
    timings and memory; ``seed_scores`` / ``seed_facts`` keep each seed's values for the spread,
    and ``seed_rows`` every seed's own rows (captions included). Captions and montages shown
    are the first seed's. One run is returned as it is.
    """
    first = runs[0]
    if len(runs) == 1:
        return dict(first, seeds=[first["config"].get("seed", 0)])
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for run in runs:
        for row in run["rows"]:
            groups.setdefault((row["pipeline"], int(row["B"])), []).append(row)
    merged = []
    for row in first["rows"]:
        group = groups[(row["pipeline"], int(row["B"]))]
        out = dict(row)
        out["seeds"] = [member.get("seed") for member in group]
        out["seed_scores"] = {
            name: [(member.get("scores") or {}).get(name) for member in group] for name in (row.get("scores") or {})
        }
        out["scores"] = {name: _mean(values) for name, values in out["seed_scores"].items()}
        for name in _SEED_MEANS:
            out[name] = _mean([member.get(name) for member in group])
        per_video = [member.get("per_video_cider") or {} for member in group]
        common = set.intersection(*(set(p) for p in per_video)) if per_video else set()
        out["per_video_cider"] = {vid: _mean([p[vid] for p in per_video]) for vid in sorted(common)} or None
        if row.get("facts"):
            out["seed_facts"] = {
                kind: [((member.get("facts") or {}).get(kind) or {}).get("accuracy") for member in group] for kind in row["facts"]
            }
            out["facts"] = {
                kind: {
                    "accuracy": _mean(out["seed_facts"][kind]),
                    "stated": _mean([((member.get("facts") or {}).get(kind) or {}).get("stated") for member in group]),
                    "videos": row["facts"][kind].get("videos"),
                }
                for kind in row["facts"]
            }
        merged.append(out)
    seeds = [run["config"].get("seed", 0) for run in runs]
    return {
        **first,
        "config": dict(first["config"], seed=seeds[0]),
        "rows": merged,
        "seed_rows": [row for run in runs for row in run["rows"]],
        "seeds": seeds,
        "stages": [stage for run in runs for stage in run.get("stages", [])],
        "wall_s": round(sum(float(run.get("wall_s") or 0.0) for run in runs), 1),
    }


def _with_spread(row: dict[str, Any], name: str, digits: int = 1) -> str:
    """A score cell, ``mean ± sd`` over training seeds when the row has several."""
    value = (row.get("scores") or {}).get(name)
    spread = _spread((row.get("seed_scores") or {}).get(name, []))
    return cell(value, digits) if spread is None else f"{cell(value, digits)} ± {spread:.{digits}f}"


def _order(config: dict[str, Any]) -> list[str]:
    if config.get("pipelines"):
        return list(config["pipelines"])
    return ["teacher", *config.get("students", []), *(f"two-stage:{m}" for m in config.get("recon", [])), *config.get("zoo", [])]


def _rows_at(rows: Sequence[dict[str, Any]], B: int, order: list[str]) -> list[dict[str, Any]]:
    chosen = [row for row in rows if row["B"] == B]
    return sorted(chosen, key=lambda row: order.index(row["pipeline"]) if row["pipeline"] in order else len(order))


def table3(rows: Sequence[dict[str, Any]], B: int, order: list[str]) -> str:
    """The SnapCap paper's Table 3 at one B, plus reconstruction PSNR/SSIM."""
    lines = [
        "| pipeline | peak memory (MB) | recon ms | caption ms | total ms | BLEU-4 | ROUGE-L | METEOR | CIDEr | PSNR dB | SSIM |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in _rows_at(rows, B, order):
        flat = _flat(row)
        memory = flat["peak_cuda_mb"] if flat.get("peak_cuda_mb") else flat["peak_rss_mb"]
        lines.append(
            f"| {row['label']} | {cell(memory, 0)} | {cell(flat['recon_ms'])} | {cell(flat['caption_ms'])} "
            f"| {cell(flat['total_ms'])} "
            f"| {cell(flat['BLEU-4'])} | {cell(flat['ROUGE-L'])} | {cell(flat['METEOR'])} | {_with_spread(row, 'CIDEr')} "
            f"| {cell(flat['psnr'], 2)} | {cell(flat['ssim'], 3)} |"
        )
    return "\n".join(lines)


def _fact_cell(entry: Mapping[str, Any] | None) -> str:
    if not entry or entry.get("stated") is None:
        return "–"
    return f"{cell(entry.get('accuracy'), 0)} ({cell(entry.get('stated'), 0)})"


def fact_table(rows: Sequence[dict[str, Any]], B: int, order: list[str], reference: Mapping[str, Any] | None = None) -> str:
    """Per pipeline at one B: each fact type's accuracy in percent of the captions stating one,
    with the percent of captions stating one in brackets (:mod:`snapcap.datasets.synthetic.readback`);
    the first reference caption of each video as the first line when given. Empty without facts."""
    chosen = [row for row in _rows_at(rows, B, order) if row.get("facts")]
    if not chosen:
        return ""
    kinds = list(chosen[0]["facts"])
    lines = ["| captions | " + " | ".join(kinds) + " |", "|---|" + "---:|" * len(kinds)]
    if reference:
        lines.append("| references (the first of each video) | " + " | ".join(_fact_cell(reference.get(k)) for k in kinds) + " |")
    for row in chosen:
        lines.append(f"| {row['label']} | " + " | ".join(_fact_cell(row["facts"].get(k)) for k in kinds) + " |")
    return "\n".join(lines)


def direction_table(rows: Sequence[dict[str, Any]], B: int, order: list[str], T: int | None = None) -> str:
    """The direction of motion per pipeline and camera at one B: the percent of the captions stating
    a direction whose every stated direction is right (95 % interval over test videos), the percent
    stating one, and the percent of time-reversed test pairs that both state the right direction
    (:func:`snapcap.datasets.synthetic.readback.direction_scores`). Empty without facts."""
    chosen = [row for row in _rows_at(rows, B, order) if row.get("direction")]
    if not chosen:
        return ""
    lines = [
        "| captions | camera | T | direction right % [95% interval] | states a direction % | reversal pairs both right % |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for row in chosen:
        scores, interval = row["direction"], row.get("direction_interval")
        right = cell(scores.get("direction_accuracy"), 0)
        if interval:
            right += f" [{interval[0]:.0f}, {interval[1]:.0f}]"
        pairs = scores.get("reversal_pairs")
        pair_cell = "–" if pairs is None else f"{pairs:.0f} (of {scores.get('pairs_counted', 0)})"
        camera = "frames" if row["pipeline"].startswith("teacher") else row.get("camera", "coded")
        lines.append(
            f"| {row['label']} | {camera} | {row.get('T', T)} | {right} "
            f"| {cell(scores.get('direction_stated'), 0)} | {pair_cell} |"
        )
    return "\n".join(lines)


def direction_findings(rows: Sequence[dict[str, Any]], B: int) -> list[str]:
    """What the direction table shows at one B, stated only where the intervals separate the rows."""
    out = []
    by_name = {row["pipeline"]: row for row in rows if row["B"] == B and row.get("direction")}
    for student in ("snapcap-temporal", "snapcap"):
        coded = by_name.get(student)
        if coded is None or _collapsed(coded):
            continue
        for camera in ("long-exposure", "single-frame"):
            control = by_name.get(f"{student}@{camera}")
            if control is None or _collapsed(control):
                continue
            a, b = coded.get("direction_interval"), control.get("direction_interval")
            ra, rb = coded["direction"].get("direction_accuracy"), control["direction"].get("direction_accuracy")
            if a is None or b is None or ra is None or rb is None:
                continue
            pa, pb = coded["direction"].get("reversal_pairs"), control["direction"].get("reversal_pairs")
            pairs = "" if pa is None or pb is None else f"; time-reversed pairs both right {pa:.0f} % against {pb:.0f} %"
            if a[0] > b[1]:
                verdict = "the coding keeps the direction that the control loses"
            elif b[0] > a[1]:
                verdict = "the control states it better than the coded camera"
            else:
                verdict = "no difference beyond the test-set noise (the intervals overlap)"
            out.append(
                f"Direction of motion at B = {B}, {coded['label']}: {ra:.0f} % right [{a[0]:.0f}, {a[1]:.0f}] on coded "
                f"snapshots against {rb:.0f} % [{b[0]:.0f}, {b[1]:.0f}] on {camera} snapshots of the same videos{pairs}: "
                f"{verdict}."
            )
    return out


def _collapsed(row: Mapping[str, Any]) -> bool:
    """A row whose captions collapsed: one distinct caption, or distinct captions for at most 10 % of its videos."""
    predictions = list((row.get("predictions") or {}).values())
    distinct = len(set(predictions))
    return distinct <= 1 or distinct <= 0.1 * len(predictions)


def metric_by_B(
    rows: Sequence[dict[str, Any]], order: list[str], metric: str = "CIDEr"
) -> tuple[list[int], dict[str, dict[int, float | None]]]:
    ratios = sorted({int(row["B"]) for row in rows})
    table: dict[str, dict[int, float | None]] = {}
    for row in rows:
        table.setdefault(row["pipeline"], {})[int(row["B"])] = (row.get("scores") or {}).get(metric)
    ordered = {name: table[name] for name in order if name in table}
    ordered.update({name: values for name, values in table.items() if name not in ordered})
    return ratios, ordered


_BOOTSTRAP = 2000
"""Resamples of the test videos behind the findings' intervals."""


def _paired_cider(
    rows: Sequence[dict[str, Any]], ratios: list[int], names: list[str]
) -> tuple[list[str], dict[str, np.ndarray]] | None:
    """Per-video CIDEr ``(len(ratios), videos)`` of each pipeline over the videos every row scored.

    The test videos are the same scenes at every B, so a video's scores pair up across B and
    pipelines. None when a row lacks per-video scores (rows cached by an older snapcap)."""
    table: dict[tuple[str, int], dict[str, float]] = {}
    for row in rows:
        per = row.get("per_video_cider")
        if per:
            table[(row["pipeline"], int(row["B"]))] = {str(k): float(v) for k, v in per.items() if v is not None}
    wanted = [(name, b) for name in names for b in ratios]
    if not wanted or any(key not in table for key in wanted):
        return None
    common = sorted(set.intersection(*(set(table[key]) for key in wanted)))
    if len(common) < 2:
        return None
    return common, {name: np.array([[table[(name, b)][vid] for vid in common] for b in ratios]) for name in names}


def _slopes(scores: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Least-squares slope of the mean over videos against x; scores ``(..., len(x), videos)``."""
    means = scores.mean(axis=-1)
    xc = x - x.mean()
    return (means * xc).sum(axis=-1) / (xc * xc).sum()


def _interval(values: np.ndarray) -> tuple[float, float]:
    low, high = np.percentile(values, [2.5, 97.5])
    return float(low), float(high)


def findings(results: dict[str, Any]) -> list[str]:
    """What the numbers say about the paper's two claims (in kind), one line each.

    Quality against B: each pipeline's CIDEr trend is the least-squares slope of its CIDEr
    against log2 B (CIDEr per doubling of B, every B counted, not just the two ends), with a
    95% interval from resampling the test videos, paired across B and pipelines (the same
    scenes at every B). SnapCap "degrades least" only where its slope is above every
    two-stage pipeline's by more than that noise; otherwise the line says the difference is
    within it. The intervals cover the choice of test videos, not the training's randomness.
    """
    rows = results["rows"]
    config = results["config"]
    order = _order(config)
    labels = {row["pipeline"]: row["label"] for row in rows}
    ratios, cider = metric_by_B(rows, order)
    out: list[str] = []
    if len(ratios) >= 2:
        low, high = ratios[0], ratios[-1]
        full = [name for name, values in cider.items() if all(values.get(b) is not None for b in ratios)]
        paired = _paired_cider(rows, ratios, full)
        if paired is None:  # no per-video scores (or under two videos): the ends of the curves only
            drops = {
                name: values[low] - values[high]
                for name, values in cider.items()
                if values.get(low) is not None and values.get(high) is not None
            }
            if drops:
                parts = ", ".join(
                    f"{labels.get(name, name)} {cider[name][low]:.1f} → {cider[name][high]:.1f} ({-drop:+.1f})"
                    for name, drop in drops.items()
                    if name != "teacher"
                )
                out.append(f"CIDEr from B = {low} to B = {high}: {parts}.")
            snap = drops.get("snapcap")
            others = {name: drop for name, drop in drops.items() if name.startswith("two-stage:")}
            if snap is not None and others:
                least = all(snap <= drop for drop in others.values())
                out.append(
                    f"SnapCap {'degrades less' if least else 'does not degrade less'} than the two-stage pipelines "
                    f"from B = {low} to B = {high} "
                    f"(CIDEr change {-snap:+.1f}; {', '.join(f'{labels.get(n, n)} {-d:+.1f}' for n, d in others.items())}); "
                    "without per-video scores the noise of the test split is not known: "
                    "compare with the teacher's own changes across B."
                )
        else:
            videos, scores = paired
            x = np.log2(np.asarray(ratios, dtype=np.float64))
            rng = np.random.default_rng(0)
            picks = rng.integers(0, len(videos), size=(_BOOTSTRAP, len(videos)))
            slope = {name: float(_slopes(values, x)) for name, values in scores.items()}
            boot = {name: _slopes(np.moveaxis(values[:, picks], 0, 1), x) for name, values in scores.items()}  # (resamples,)
            parts = []
            for name in scores:
                lo, hi = _interval(boot[name])
                parts.append(
                    f"{labels.get(name, name)} {cider[name][low]:.1f} → {cider[name][high]:.1f}, "
                    f"{slope[name]:+.1f} per doubling [{lo:+.1f}, {hi:+.1f}]"
                )
            out.append(
                f"CIDEr from B = {low} to B = {high} on the same {len(videos)} test videos, "
                "with its least-squares trend per doubling of B "
                f"(all {len(ratios)} ratios; 95% interval over resampled test videos): " + "; ".join(parts) + "."
            )
            if "teacher" in scores:
                gaps = []
                for name in scores:
                    if name == "teacher":
                        continue
                    gap = scores[name].mean(axis=1) - scores["teacher"].mean(axis=1)
                    gaps.append(f"{labels.get(name, name)} " + ", ".join(f"{g:+.1f}" for g in gap))
                if gaps:
                    out.append(
                        f"CIDEr against the traditional pipeline at the same B (B = {', '.join(str(b) for b in ratios)}; "
                        "the teacher's decoder is the one SnapCap and the two-stage rows use at that B): " + "; ".join(gaps) + "."
                    )
            two = [name for name in scores if name.startswith("two-stage:")]
            if "snapcap" in scores and two:
                verdicts, least = [], True
                for name in two:
                    diff = slope["snapcap"] - slope[name]
                    lo, hi = _interval(boot["snapcap"] - boot[name])
                    what = (
                        f"SnapCap's trend minus {labels.get(name, name)}'s: "
                        f"{diff:+.1f} CIDEr per doubling of B [{lo:+.1f}, {hi:+.1f}]"
                    )
                    if lo > 0:
                        verdicts.append(f"{what}, above 0 beyond the test-set noise")
                    elif hi < 0:
                        least = False
                        verdicts.append(f"{what}: SnapCap degrades more")
                    else:
                        least = False
                        verdicts.append(f"{what}, an interval that includes 0 (within the test-set noise)")
                claim = (
                    "SnapCap degrades least as B grows, as the paper claims"
                    if least
                    else "The paper's claim that SnapCap degrades least as B grows is not shown by this run"
                )
                out.append(
                    f"{claim}: "
                    + "; ".join(verdicts)
                    + ". The intervals cover the choice of test videos, not the randomness of training each model."
                )
            if "baseline" in scores and "snapcap" in scores:
                gap = float((scores["snapcap"] - scores["baseline"]).mean())
                lo, hi = _interval((scores["snapcap"] - scores["baseline"])[:, picks].mean(axis=(0, 2)))
                out.append(
                    f"SnapCap over its baseline (caption loss only), averaged over B: {gap:+.1f} CIDEr [{lo:+.1f}, {hi:+.1f}]."
                )
    if len(ratios) >= 2 and any(row.get("facts") for row in rows):
        low, high = ratios[0], ratios[-1]
        accuracy = {
            (row["pipeline"], int(row["B"])): ((row.get("facts") or {}).get("direction") or {}).get("accuracy") for row in rows
        }
        parts = [
            f"{labels.get(name, name)} {cell(accuracy.get((name, low)), 0)} → {cell(accuracy.get((name, high)), 0)}"
            for name in cider
            if accuracy.get((name, low)) is not None or accuracy.get((name, high)) is not None
        ]
        if parts:
            out.append(
                f"Direction of motion stated in the captions, % right of those stating one, B = {low} → B = {high} "
                "(chance among the 8 directions is about 12 %): " + "; ".join(parts) + "."
            )
    psnr: dict[str, dict[int, float]] = {}
    for row in rows:
        if row["pipeline"].startswith("two-stage:") and row.get("psnr") is not None:
            psnr.setdefault(row["pipeline"], {})[int(row["B"])] = float(row["psnr"])
    for name, values in psnr.items():
        if len(values) >= 2:
            out.append(
                f"{labels.get(name, name)} reconstruction PSNR: "
                + ", ".join(f"{values[b]:.1f} dB (B = {b})" for b in sorted(values))
                + "."
            )
    by_b: dict[int, dict[str, dict[str, Any]]] = {}
    for row in rows:
        by_b.setdefault(int(row["B"]), {})[row["pipeline"]] = row
    speedups = []
    for B in sorted(by_b):
        entry = by_b[B]
        one = entry.get("snapcap")
        two = [row for name, row in entry.items() if name.startswith("two-stage:")]
        if one and two and one.get("total_ms"):
            fastest = min(two, key=lambda row: row["total_ms"])
            speedups.append(f"B = {B}: {fastest['total_ms'] / one['total_ms']:.1f}x ({fastest['label']})")
    if speedups:
        out.append("One-stage SnapCap is faster per video than the fastest two-stage pipeline by " + "; ".join(speedups) + ".")
    reference = config.get("reference_B")
    if reference is not None:
        out += direction_findings(rows, int(reference))
    return out


def report_markdown(results: dict[str, Any], figures: Sequence[str] = ()) -> str:
    config = results["config"]
    rows = results["rows"]
    order = _order(config)
    reference = int(config.get("reference_B") or sorted({row["B"] for row in rows})[0])
    corpus = config.get("corpus", {})
    lines = [
        "# snapcap compare: one- against two-stage captioning across compression ratios",
        "",
        f"Corpus {corpus.get('kind')} ({', '.join(f'{k}={v}' for k, v in corpus.items() if k != 'kind')}); "
        f"{rows[0]['videos'] if rows else 0} test videos; T = {config['T']} snapshots per video, "
        f"{config['size']}x{config['size']}, "
        f"{'gray' if config['gray'] else config['bayer'] + ' Bayer'}, {config['mask']} masks, noise {config['noise']}; "
        f"captioners: {config['captioner']} preset; device {config['device']}; preset {config['preset']}. "
        f"Times are per video (T snapshots), batch size 1 after a warm-up, over {_latency_videos(rows)}, "
        f"{_decoding(config, rows)}. "
        f"Wall time of this run: {results.get('wall_s', 0):.0f} s.",
        "",
        *_setup_lines(results),
        f"## All pipelines at B = {reference} (the shape of the SnapCap paper's Table 3)",
        "",
        table3(rows, reference, order),
        "",
    ]
    ratios, cider = metric_by_B(rows, order)
    lines += ["## CIDEr against the compression ratio B (the paper's Fig. 6)", ""]
    lines.append("| pipeline | " + " | ".join(f"B = {b}" for b in ratios) + " |")
    lines.append("|---|" + "---:|" * len(ratios))
    labels = {row["pipeline"]: row["label"] for row in rows}
    by_key = {(row["pipeline"], int(row["B"])): row for row in rows}
    for name in cider:
        cells = [_with_spread(by_key[(name, b)], "CIDEr") if (name, b) in by_key else "–" for b in ratios]
        lines.append(f"| {labels.get(name, name)} | " + " | ".join(cells) + " |")
    lines.append("")
    facts = fact_table(rows, reference, order, results.get("reference_facts"))
    if facts:
        lines += [
            f"## Temporal facts read back from the captions (B = {reference})",
            "",
            "Each caption is parsed back into the facts it states (colour, shape, direction of motion, spin, "
            "speeding up or slowing down, growing or shrinking, appearing or disappearing, starting late or "
            "stopping early, entering or leaving the frame, the order of two objects' events) and each is "
            "checked against the scene's true facts. A cell is the percent of the captions stating a fact of "
            "that type whose every such fact is true; in brackets, the percent of captions that state one at all.",
            "",
            facts,
            "",
        ]
        _, direction = metric_by_B(
            [dict(row, scores={"d": ((row.get("facts") or {}).get("direction") or {}).get("accuracy")}) for row in rows],
            order,
            "d",
        )
        table = direction_table(rows, reference, order, config.get("T"))
        if table:
            lines += [
                f"### Direction of motion (B = {reference})",
                "",
                "Right: the percent of the captions stating a direction whose every stated direction is true (95 % "
                "interval over resampled test videos). Reversal pairs: the test split holds each video's time-reversal "
                "where the corpus has twins (`temporal_pairs`); the percent of those pairs (objects that move, and "
                "no bounce that reads the same both ways) in which both captions state the right direction. A long "
                "exposure is the same image for a video and its reversal: its ceiling is about 50 % right and 0 % of "
                "the pairs.",
                "",
                table,
                "",
            ]
        lines += ["Direction of motion, accuracy (%) against B:", ""]
        lines.append("| pipeline | " + " | ".join(f"B = {b}" for b in ratios) + " |")
        lines.append("|---|" + "---:|" * len(ratios))
        for name, values in direction.items():
            lines.append(f"| {labels.get(name, name)} | " + " | ".join(cell(values.get(b), 0) for b in ratios) + " |")
        lines.append("")
    found = findings(results)
    if found:
        lines += ["## Findings", ""] + [f"- {line}" for line in found] + [""]
    for figure in figures:
        lines.append(f"![{figure}]({figure})")
    if figures:
        lines.append("")
    others = [b for b in ratios if b != reference]
    if others:
        lines += ["## Every B", ""]
        for B in others:
            lines += [f"### B = {B}", "", table3(rows, B, order), ""]
            facts = fact_table(rows, B, order, results.get("reference_facts"))
            if facts:
                lines += ["Temporal facts (accuracy %, stated % in brackets):", "", facts, ""]
    montage = results.get("montage_captions") or []
    if montage:
        lines += [f"## Captions of a few test videos (B = {reference})", ""]
        for entry in montage:
            lines.append(f"**{entry['video_id']}** — references: " + " / ".join(f"“{c}”" for c in entry["references"][:3]))
            lines.append("")
            for name, text in entry["captions"].items():
                lines.append(f"- {labels.get(name, name)}: “{text}”")
            lines.append("")
    notes = sorted({note for row in rows for note in row.get("notes", [])})
    if notes:
        lines += ["## Notes", ""] + [f"- {note}" for note in notes] + [""]
    stages = results.get("stages") or []
    if stages:
        reused = sum(1 for stage in stages if stage["status"].startswith("reused"))
        lines += [f"Stages: {len(stages)}, of which {reused} reused from the cache ({results.get('cache')}).", ""]
    return "\n".join(lines)


def _setup_lines(results: dict[str, Any]) -> list[str]:
    """The report's second paragraph: what the one-stage rows got, and what the intervals cover."""
    config = results["config"]
    training = config.get("effective_training") or {}
    student = config.get("student") or {}
    lines = []
    tower = config.get("tower") or {}
    if tower.get("model"):
        pretrained = tower.get("pretrained")
        weights = {
            None: "randomly initialised",
            "procedural": "pretrained on procedural frames (snapcap's stand-in for CLIP's weights)",
        }.get(pretrained, f"with the {pretrained} weights")
        how = (
            "frozen as the paper's CLIP; its projector and decoder are trained on the true frames' features"
            if tower.get("frozen")
            else "trained end to end with the caption loss on the true frames"
        )
        lines.append(f"Teacher: the {tower['model']} tower, {weights}, {how}.")
    students = list(config.get("students") or [])
    if {"snapcap", "baseline"} <= set(students) and training:
        stage1, stage2 = int(training.get("stage1_epochs", 0)), int(training.get("epochs", 0))
        baseline = stage2 + (stage1 if training.get("match_epochs") else 0)
        if student.get("shortcut"):
            init = {
                "teacher": "P copied for both from the teacher's patch embedding, through the Bayer pattern",
                "zero": "P zero for both",
                "fit": "P fitted in closed form to the teacher's conv features for SnapCap only and zero for the "
                "baseline: **not the same start**",
            }.get(str(training.get("shortcut_init")), f"P: {training.get('shortcut_init')}")
            network = f"the student with a linear shortcut P from the normalised snapshot ({init})"
        else:
            network = "the paper's student (no shortcut)"
        budget = (
            f"SnapCap {stage1} epochs of L_reg, then {stage2} of L_dis + β·L_cap; the baseline {baseline} of the caption loss"
        )
        same = "the same number of passes over the data" if stage1 + stage2 == baseline else "**not the same number of passes**"
        lines.append(
            f"One-stage rows: SnapCap and its baseline are the same network, {network}; every other shared part starts "
            f"from the same weights (seed {config.get('seed', 0)}: the teacher's decoder and tail, the same random "
            f"encoder), and they train for {same} ({budget})."
        )
    seeds = results.get("seeds") or [config.get("seed", 0)]
    if len(seeds) > 1:
        lines.append(
            f"Every model was trained with {len(seeds)} seeds ({', '.join(str(s) for s in seeds)}): scores are means over "
            "the seeds and ± is their standard deviation (the training's randomness); the findings' intervals, from "
            "resampling the test videos, cover the choice of test videos. Captions shown are the first seed's."
        )
    else:
        lines.append(
            f"One training seed ({seeds[0]}): the findings' intervals cover the choice of test videos, not the "
            "training's randomness (`--seeds K` trains every model K times and reports the spread)."
        )
    return [line for text in lines for line in (text, "")]


def _plot_cider(results: dict[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = results["rows"]
    order = _order(results["config"])
    labels = {row["pipeline"]: row["label"] for row in rows}
    ratios, cider = metric_by_B(rows, order)
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    markers = "os^Dvxp*"
    for position, (name, values) in enumerate(cider.items()):
        xs = [b for b in ratios if values.get(b) is not None]
        ys = [values[b] for b in xs]
        if xs:
            ax.plot(
                xs,
                ys,
                marker=markers[position % len(markers)],
                linestyle="--" if name == "teacher" else "-",
                label=labels.get(name, name),
            )
    ax.set_xlabel("compression ratio B")
    ax.set_ylabel("CIDEr")
    ax.set_xticks(ratios)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("Captioning quality against B")
    return save_figure(fig, path)


def _plot_latency_memory(results: dict[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = results["rows"]
    order = _order(results["config"])
    labels = {row["pipeline"]: row["label"] for row in rows}
    ratios, latency = metric_by_B([dict(row, scores={"t": row.get("total_ms")}) for row in rows], order, "t")
    _, memory = metric_by_B(
        [dict(row, scores={"m": row.get("peak_cuda_mb") or row.get("peak_rss_mb")}) for row in rows], order, "m"
    )
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    markers = "os^Dvxp*"
    for position, name in enumerate(latency):
        xs = [b for b in ratios if latency[name].get(b)]
        left.plot(xs, [latency[name][b] for b in xs], marker=markers[position % len(markers)], label=labels.get(name, name))
        xs = [b for b in ratios if memory[name].get(b)]
        right.plot(xs, [memory[name][b] for b in xs], marker=markers[position % len(markers)], label=labels.get(name, name))
    left.set_yscale("log")
    left.set_ylabel("time per video (ms, log scale)")
    right.set_ylabel("peak memory (MB" + (", CUDA)" if any(row.get("peak_cuda_mb") for row in rows) else ", process RSS)"))
    for ax in (left, right):
        ax.set_xlabel("compression ratio B")
        ax.set_xticks(ratios)
        ax.grid(alpha=0.3)
    left.legend(fontsize=8)
    left.set_title("Latency per video (batch 1)")
    right.set_title("Peak memory while captioning")
    return save_figure(fig, path)


def _as_rgb(frame: np.ndarray) -> np.ndarray:
    frame = np.asarray(frame, dtype=np.float32)
    return np.clip(frame, 0.0, 1.0)


def _plot_montage(entry: dict[str, Any], labels: dict[str, str], path: Path, max_frames: int = 8) -> Path:
    """Frames of the first snapshot, the snapshot, each reconstruction, and every caption."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    frames = np.asarray(entry["frames"], dtype=np.float32)  # (B, H, W[, 3]) of the first snapshot
    B = frames.shape[0]
    shown = np.unique(np.linspace(0, B - 1, min(B, max_frames)).round().astype(int))
    recon = entry.get("recon", {})
    image_rows = 1 + len(recon)
    columns = len(shown) + 1
    # the references and captions, wrapped to the figure's width (7 pt monospace: ~15 characters an inch)
    width = max(40, int(1.6 * columns * 15))
    text = [f"{entry['video_id']} references: " + " / ".join(entry["references"][:3])]
    text += [f"{labels.get(name, name)}: {caption}" for name, caption in entry["captions"].items()]
    text = [wrapped for line in text for wrapped in textwrap.wrap(line, width, subsequent_indent="    ") or [""]]
    text_lines = 1 + len(text)
    fig = plt.figure(figsize=(1.6 * columns, 1.7 * image_rows + 0.22 * text_lines + 0.4))
    grid = fig.add_gridspec(image_rows + 1, columns, height_ratios=[1.0] * image_rows + [0.14 * text_lines + 0.1])

    def show(r: int, c: int, image: np.ndarray, title: str, cmap: str | None = None) -> None:
        ax = fig.add_subplot(grid[r, c])
        ax.imshow(image, cmap=cmap, vmin=0.0, vmax=1.0 if cmap is None else float(np.max(image)) or 1.0)
        ax.set_title(title, fontsize=7)
        ax.axis("off")

    meas = np.asarray(entry["meas"], dtype=np.float32)
    show(0, 0, meas, f"snapshot (B = {B})", cmap="gray")
    for column, k in enumerate(shown, start=1):
        show(0, column, _as_rgb(frames[k]), f"frame {k + 1}", cmap=None if frames.ndim == 4 else "gray")
    for row, (name, video) in enumerate(recon.items(), start=1):
        video = np.asarray(video, dtype=np.float32)
        ax = fig.add_subplot(grid[row, 0])
        ax.axis("off")
        psnr = entry.get("psnr", {}).get(name)
        ax.text(
            0.5,
            0.5,
            labels.get(name, name) + ("" if psnr is None else f"\n{psnr:.1f} dB"),
            ha="center",
            va="center",
            fontsize=7,
            wrap=True,
        )
        for column, k in enumerate(shown, start=1):
            show(row, column, _as_rgb(video[k]), f"frame {k + 1}", cmap=None if video.ndim == 4 else "gray")
    ax = fig.add_subplot(grid[image_rows, :])
    ax.axis("off")
    ax.text(0.0, 1.0, "\n".join(text), ha="left", va="top", fontsize=7, family="monospace", transform=ax.transAxes)
    return save_figure(fig, path)


def _montage_entries(results: dict[str, Any]) -> list[dict[str, Any]]:
    montage = results.get("montage") or {}
    entries = []
    for sample in montage.get("samples", []):
        vid = str(sample["video_id"])
        frames = np.asarray(sample["frames"], dtype=np.float32)[0] if sample.get("frames") is not None else None
        if frames is None:
            continue
        entries.append(
            {
                "video_id": vid,
                "frames": frames,
                "meas": np.asarray(sample["meas"], dtype=np.float32)[0],
                "references": [str(c) for c in sample.get("captions", [])],
                "captions": {name: values.get(vid, "") for name, values in montage.get("captions", {}).items()},
                "recon": {name: values[vid] for name, values in montage.get("recon", {}).items() if vid in values},
            }
        )

    for entry in entries:
        truth = entry["frames"]
        axis = -1 if truth.ndim == 4 else None
        entry["psnr"] = {
            name: mean_psnr(np.clip(video, 0, 1), truth, channel_axis=axis)
            for name, video in entry["recon"].items()
            if np.shape(video) == truth.shape
        }
    return entries


def write_report(results: dict[str, Any], out: str | Path) -> list[Path]:
    """Write every report file of a comparison into ``out``; returns their paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    config = results["config"]
    rows = results["rows"]
    labels = {row["pipeline"]: row["label"] for row in rows}
    written: list[Path] = []
    figures: list[str] = []
    if rows:
        written.append(_plot_cider(results, out / "cider_vs_B.png"))
        written.append(_plot_latency_memory(results, out / "latency_memory.png"))
        figures += ["cider_vs_B.png", "latency_memory.png"]
    entries = _montage_entries(results)
    montage_captions = []
    for entry in entries:
        name = f"montage_{''.join(ch if ch.isalnum() else '_' for ch in entry['video_id'])}.png"
        written.append(_plot_montage(entry, labels, out / name))
        figures.append(name)
        montage_captions.append({"video_id": entry["video_id"], "references": entry["references"], "captions": entry["captions"]})
    public = {key: value for key, value in results.items() if key != "montage"}
    public["montage_captions"] = montage_captions
    public["findings"] = findings(results)
    public["config"] = dict(config)
    json_path = out / "results.json"
    write_text(json_path, json.dumps(public, indent=1, default=str))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(ROW_COLUMNS))
    writer.writeheader()
    for row in rows:
        writer.writerow({key: ("" if value is None else value) for key, value in _flat(row).items()})
    write_text(out / "results.csv", buffer.getvalue())
    write_text(out / "report.md", report_markdown(public, figures))
    written += [json_path, out / "results.csv", out / "report.md"]
    return written


def _latency_videos(rows: list[dict[str, Any]]) -> str:
    """How many test videos each row's latency is the mean of: one phrase of the first lines."""
    counts = sorted({int(row["latency_videos"]) for row in rows if row.get("latency_videos")})
    if not counts:
        return "the test videos"
    if len(counts) == 1:
        return f"{counts[0]} test video{'s' if counts[0] != 1 else ''}"
    return f"{counts[0]} to {counts[-1]} test videos (see latency_videos in results.csv)"


def _decoding(config: Mapping[str, Any], rows: list[dict[str, Any]]) -> str:
    """How the rows decode, and each zoo row's preset: one phrase of the report's first lines."""
    beams = {row["pipeline"]: int(row.get("beam") or 1) for row in rows}
    if config.get("beam") is not None:
        text = f"beam {config['beam']}" if int(config["beam"]) > 1 else "greedy decoding"
    elif any(beam > 1 for beam in beams.values()):
        wide = sorted(f"{name} beam {beam}" for name, beam in beams.items() if beam > 1)
        text = "greedy decoding except " + ", ".join(wide) + " (as their papers)"
    else:
        text = "greedy decoding"
    zoo = {row["pipeline"]: row.get("preset") for row in rows if row["pipeline"] in config.get("zoo", ())}
    if zoo:
        text += "; zoo rows: " + ", ".join(f"{name} {preset} preset" for name, preset in sorted(zoo.items()))
    return text
