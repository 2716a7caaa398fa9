"""Evaluate a captioner on a set of videos: caption metrics, latency and peak memory.

:func:`evaluate` runs video by video (batch size 1, as the SnapCap paper measures latency),
collects the predictions and references, the latency of every video (and, for two-stage
captioners, its reconstruction and captioning parts), the peak memory, and the COCO caption
metrics of :func:`snapcap.caption.metrics.caption_metrics`. :func:`results_markdown` formats the
rows of several :class:`EvalResult` as the paper's Table 3.

Peak memory:

* host: the peak resident set size during the evaluation. On Linux the kernel's high-water
  mark (``VmHWM``) is reset at the start (``/proc/self/clear_refs``) and read at the end: the
  true peak. Elsewhere ``psutil`` samples the RSS every 5 ms when it is installed; otherwise
  ``resource.getrusage``'s ``ru_maxrss`` (the process's lifetime peak: coarse, it includes what
  ran before). ``memory["host_method"]`` says which.
* GPU: ``torch.cuda.max_memory_allocated`` (reset at the start) when the captioner runs on CUDA.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from snapcap.caption.metrics import caption_metrics
from snapcap.errors import InvalidValueError

__all__ = ["EvalResult", "evaluate", "results_markdown", "MemoryMeter"]

_MB = 1024.0 * 1024.0


# --- memory -------------------------------------------------------------------------------------


def _vm_hwm_bytes() -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _maxrss_bytes() -> int | None:
    try:
        import resource
    except ImportError:  # pragma: no cover - Windows
        return None
    value = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(value if sys.platform == "darwin" else value * 1024)


class MemoryMeter:
    """Peak host RSS (and CUDA allocation) between :meth:`start` and :meth:`stop`."""

    def __init__(self, device: str = "cpu"):
        self.device = str(device)
        self.method = ""
        self._start_rss: int | None = None
        self._peak = 0
        self._thread: threading.Thread | None = None
        self._done = threading.Event()
        self._process: Any = None

    def start(self) -> MemoryMeter:
        self.method = "getrusage-maxrss"
        if _vm_hwm_bytes() is not None:
            try:
                with open("/proc/self/clear_refs", "w", encoding="ascii") as handle:
                    handle.write("5")  # resets VmHWM to the current RSS (Linux >= 4.0)
                self.method = "linux-vmhwm"
            except OSError:
                pass
        if self.method != "linux-vmhwm":
            try:
                import psutil

                self._process = psutil.Process()
                self.method = "psutil-sampled"
            except ImportError:
                pass
        self._start_rss = self._current_rss()
        self._peak = self._start_rss or 0
        if self.method == "psutil-sampled":
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        if self.device.startswith("cuda"):
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        return self

    def _current_rss(self) -> int | None:
        if self.method == "psutil-sampled":
            return int(self._process.memory_info().rss)
        if self.method == "linux-vmhwm":
            return _vm_hwm_bytes()
        return _maxrss_bytes()

    def _sample(self) -> None:
        while not self._done.wait(0.005):
            self._peak = max(self._peak, int(self._process.memory_info().rss))

    def stop(self) -> dict[str, Any]:
        self._done.set()
        if self._thread is not None:
            self._thread.join()
        end = self._current_rss()
        peak = max(self._peak, end or 0)
        report: dict[str, Any] = {
            "host_method": self.method,
            "peak_rss_mb": None if not peak else peak / _MB,
            "peak_rss_increase_mb": None if self._start_rss is None else max(0, peak - self._start_rss) / _MB,
            "peak_cuda_mb": None,
        }
        if self.device.startswith("cuda"):
            torch.cuda.synchronize(self.device)
            report["peak_cuda_mb"] = torch.cuda.max_memory_allocated(self.device) / _MB
        return report


# --- results ----------------------------------------------------------------------------------


@dataclass
class EvalResult:
    """What :func:`evaluate` measured.

    Attributes:
        model: the captioner's name; checkpoint: its file.
        scores: metric name -> score in percent (``BLEU-1``..``BLEU-4``, ``METEOR``, ``ROUGE-L``,
            ``CIDEr``; None where it could not be computed).
        predictions: video id -> caption; references: video id -> reference captions.
        videos: per video: ``video_id``, ``prediction``, ``latency_ms`` and, for two-stage,
            ``recon_ms`` and ``caption_ms``.
        memory: see :class:`MemoryMeter` (``peak_rss_mb``, ``peak_cuda_mb``...).
        B, T, image_size, beam_size, device, tokenizer, notes: the setting.
    """

    model: str
    scores: dict[str, float | None]
    predictions: dict[str, str]
    references: dict[str, list[str]]
    videos: list[dict[str, Any]]
    memory: dict[str, Any]
    B: int
    T: int
    beam_size: int = 1
    device: str = "cpu"
    checkpoint: str | None = None
    kind: str = "snapshot"
    tokenizer: str = ""
    notes: list[str] = field(default_factory=list)
    per_video_scores: dict[str, dict] = field(default_factory=dict)

    @property
    def latency_ms(self) -> float:
        """Mean latency per video (ms)."""
        return float(np.mean([v["latency_ms"] for v in self.videos])) if self.videos else float("nan")

    def _mean(self, key: str) -> float | None:
        values = [v[key] for v in self.videos if v.get(key) is not None]
        return float(np.mean(values)) if values else None

    def to_row(self) -> dict[str, Any]:
        """One flat table row: model, B, the scores, latencies (ms per video) and peak memory."""
        row: dict[str, Any] = {"model": self.model, "B": self.B, "T": self.T, "beam": self.beam_size}
        row.update(self.scores)
        row["latency_ms"] = self.latency_ms
        row["recon_ms"] = self._mean("recon_ms")
        row["caption_ms"] = self._mean("caption_ms")
        row["peak_rss_mb"] = self.memory.get("peak_rss_mb")
        row["peak_cuda_mb"] = self.memory.get("peak_cuda_mb")
        row["videos"] = len(self.videos)
        row["device"] = self.device
        return row

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["row"] = self.to_row()
        return data

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, default=_json_default)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def _cell(value: Any, digits: int) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def results_markdown(rows: Iterable[dict[str, Any] | EvalResult], digits: int = 2) -> str:
    """A Markdown table of :meth:`EvalResult.to_row` rows (Table 3 of the paper).

    Columns: model, B, BLEU-4, METEOR, ROUGE-L, CIDEr, latency (ms per video, batch size 1),
    and, when any row has them, the reconstruction / captioning split and the peak memory.
    """
    rows = [row.to_row() if isinstance(row, EvalResult) else dict(row) for row in rows]
    columns = [
        ("model", "model"),
        ("B", "B"),
        ("BLEU-4", "BLEU-4"),
        ("METEOR", "METEOR"),
        ("ROUGE-L", "ROUGE-L"),
        ("CIDEr", "CIDEr"),
        ("latency_ms", "latency (ms)"),
    ]
    if any(row.get("recon_ms") is not None for row in rows):
        columns += [("recon_ms", "recon (ms)"), ("caption_ms", "caption (ms)")]
    if any(row.get("peak_cuda_mb") is not None for row in rows):
        columns.append(("peak_cuda_mb", "peak GPU (MB)"))
    if any(row.get("peak_rss_mb") is not None for row in rows):
        columns.append(("peak_rss_mb", "peak RSS (MB)"))
    lines = [
        "| " + " | ".join(title for _, title in columns) + " |",
        "|" + "|".join(":---" if key == "model" else "---:" for key, _ in columns) + "|",
    ]
    for row in rows:
        lines.append("| " + " | ".join(_cell(row.get(key), 1 if key.endswith("_mb") else digits) for key, _ in columns) + " |")
    return "\n".join(lines) + "\n"


# --- the evaluation loop ----------------------------------------------------------------------


def _length(samples: Any) -> int | None:
    try:
        return len(samples)
    except TypeError:
        return None


def _iterate(samples: Any) -> Iterable[dict[str, Any]]:
    count = _length(samples)
    if count is not None and hasattr(samples, "__getitem__"):
        for index in range(count):
            yield samples[index]
    else:
        yield from samples


def _frames_per_snapshot(sample: dict[str, Any]) -> int | None:
    masks = sample.get("masks")
    if masks is not None and getattr(masks, "ndim", 0) >= 3:
        return int(masks.shape[-3])
    frames = sample.get("frames")
    if frames is not None and getattr(frames, "ndim", 0) >= 4:
        return int(frames.shape[-4] if frames.shape[-1] == 3 else frames.shape[-3])
    return None


def evaluate(
    captioner,
    samples: Sequence[dict[str, Any]] | Iterable[dict[str, Any]],
    beam_size: int = 1,
    metrics: Sequence[str] | str = ("BLEU", "METEOR", "ROUGE-L", "CIDEr"),
    tokenizer: str = "auto",
    warmup: int = 1,
    progress: bool = False,
    generate: dict[str, Any] | None = None,
) -> EvalResult:
    """Caption every video (batch size 1), time it, and score the captions.

    Args:
        captioner: a :class:`snapcap.caption.registry.Captioner`.
        samples: sample dicts (a :class:`~snapcap.datasets.torch_data.MeasurementDataset`,
            :class:`~snapcap.datasets.torch_data.SimulatedDataset` or a list).
        beam_size: 1 for greedy decoding, more for beam search.
        metrics: names among BLEU, METEOR, ROUGE-L, CIDEr.
        tokenizer: see :func:`snapcap.caption.metrics.caption_metrics`.
        warmup: videos captioned once before timing starts (not counted), so one-off costs
            (lazy initialisation, CUDA kernels) do not land on the first video.
        progress: show a progress bar.
        generate: more options of the decoder's ``generate``.

    Returns:
        :class:`EvalResult`.
    """
    if beam_size < 1:
        raise InvalidValueError(f"beam_size must be >= 1, got {beam_size}")
    options = dict(generate or {})
    total = _length(samples)
    if total == 0:
        raise InvalidValueError("no videos to evaluate")
    if warmup and total:
        first = samples[0] if hasattr(samples, "__getitem__") else None
        if first is not None:
            for _ in range(int(warmup)):
                captioner.caption(first, beam_size=beam_size, **options)
    data_b: int | None = None
    predictions: dict[str, str] = {}
    references: dict[str, list[str]] = {}
    videos: list[dict[str, Any]] = []
    notes: list[str] = []
    meter = MemoryMeter(captioner.device).start()
    try:
        for position, sample in enumerate(
            tqdm(_iterate(samples), total=total, desc=f"eval {captioner.name}", unit="video", disable=not progress)
        ):
            caption = captioner.caption(sample, beam_size=beam_size, **options)[0]
            if data_b is None:
                data_b = _frames_per_snapshot(sample)
            video_id = str(sample.get("video_id", position))
            if video_id in predictions:
                video_id = f"{video_id}#{position}"
            timing = captioner.timings
            entry: dict[str, Any] = {"video_id": video_id, "prediction": caption, "latency_ms": 1000.0 * timing["total"]}
            if getattr(captioner, "two_stage", False):
                entry["recon_ms"] = 1000.0 * timing["recon"]
                entry["caption_ms"] = 1000.0 * timing["caption"]
            videos.append(entry)
            predictions[video_id] = caption
            refs = [str(c) for c in sample.get("captions", []) if str(c).strip()]
            if refs:
                references[video_id] = refs
    finally:
        memory = meter.stop()
    if not videos:
        raise InvalidValueError("no videos to evaluate")
    scored = {key: predictions[key] for key in predictions if key in references}
    if len(scored) < len(predictions):
        notes.append(f"{len(predictions) - len(scored)} video(s) without reference captions were not scored")
    scores: dict[str, float | None] = {}
    tokenizer_used = ""
    per_video: dict[str, dict] = {}
    if scored:
        report = caption_metrics(scored, {key: references[key] for key in scored}, metrics=metrics, tokenizer=tokenizer)
        scores, tokenizer_used, per_video = dict(report.scores), report.tokenizer, dict(report.per_video)
        notes += list(report.notes)
    else:
        notes.append("no video has reference captions: no metric computed")
    if os.environ.get("WORLD_SIZE", "1") not in ("", "1"):
        notes.append("evaluated in one process of a distributed job")
    return EvalResult(
        model=captioner.name,
        scores=scores,
        predictions=predictions,
        references=references,
        videos=videos,
        memory=memory,
        B=int(data_b or captioner.B),
        T=int(captioner.T),
        beam_size=int(beam_size),
        device=str(captioner.device),
        checkpoint=None if captioner.checkpoint is None else str(captioner.checkpoint),
        kind=captioner.kind,
        tokenizer=tokenizer_used,
        notes=notes,
        per_video_scores=per_video,
    )
