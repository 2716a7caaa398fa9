"""``snapcap compare``: one- against two-stage captioning across compression ratios B.

For each B of :class:`~snapcap.compare.config.CompareConfig`:

1. the corpus is simulated at that B into an HDF5 dataset (train and test splits; resumable,
   verified by its config hash);
2. the teacher's CLIP tower is trained once, at ``teacher_B`` (true frames), and carried to
   every B (``teacher_B`` too, so that every B goes through the same procedure) by retraining
   its projector and decoder on that B's snapshot features of the true frames
   (:func:`snapcap.caption.train.adapt_teacher`): the traditional pipeline's row, the
   two-stage pipelines' captioner (a teacher of true frames, as in the paper) and the
   students' distillation source;
3. the one-stage students (SnapCap, its baseline) are trained from that teacher, and the deep
   reconstructor (``unfold``) when it is among the two-stage methods;
4. every pipeline captions every test video alone (batch 1, as the SnapCap paper times them):
   captions, reconstruction/caption/total time per video, peak memory (RSS; CUDA peak on a
   GPU), and PSNR/SSIM of the reconstructions for two-stage rows;
5. the captions are scored (BLEU-4, METEOR, ROUGE-L, CIDEr; one METEOR Java process for the
   whole run, in the background while the next models train), with each video's CIDEr kept
   for paired statistics (the test videos are the same scenes at every B).

Everything lands in a cache folder under content hashes (:func:`content_hash`): a rerun reuses
what matches, one more B only does the new work, and a killed run resumes (datasets, training
checkpoints and finished rows are all written atomically). :func:`write_report` then writes
``results.json``, ``results.csv``, ``report.md`` and the figures.
"""

from __future__ import annotations

import json
import queue
import re
import statistics
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
from tqdm.auto import tqdm

from snapcap.caption.evaluate import MemoryMeter
from snapcap.caption.metrics import caption_metrics, metric_session
from snapcap.caption.native import teacher_config
from snapcap.caption.presets import captioner_preset, training_preset
from snapcap.caption.registry import Captioner, captioner_entry, create_captioner
from snapcap.caption.teacher import teacher_image_size
from snapcap.caption.train import adapt_teacher, train_student, train_teacher
from snapcap.compare.config import CAMERAS, TEMPORAL_STUDENTS, CompareConfig, camera_of, content_hash
from snapcap.compare.report import findings, merge_seeds, write_report
from snapcap.datasets.corpora import open_corpus
from snapcap.datasets.h5 import DatasetConfig, dataset_info, make_dataset
from snapcap.datasets.samples import Limited
from snapcap.datasets.synthetic.readback import direction_interval, direction_scores, fact_accuracy
from snapcap.datasets.torch_data import MeasurementDataset
from snapcap.distributed import distributed_context
from snapcap.errors import ConfigError, DataFileError
from snapcap.fileio import atomic_path, write_json
from snapcap.recon.metrics import mean_psnr, mean_ssim
from snapcap.recon.nets import NETS
from snapcap.recon.nets.unfold import UNFOLD_PRESETS
from snapcap.recon.train import TrainReconConfig, train_recon

__all__ = ["run_compare", "Comparison", "PIPELINE_LABELS", "label_of"]

PIPELINE_LABELS = {
    "teacher": "traditional (teacher on true frames)",
    "teacher-temporal": "order-aware teacher on true frames",
    "snapcap": "one-stage SnapCap",
    "baseline": "one-stage baseline",
    "snapcap-temporal": "one-stage order-aware SnapCap",
    "baseline-temporal": "one-stage order-aware baseline",
}


def label_of(pipeline: str) -> str:
    if pipeline.startswith("two-stage:"):
        return f"two-stage {pipeline.split(':', 1)[1]}"
    if "@" in pipeline:
        student, camera = pipeline.split("@", 1)
        return f"{label_of(student)} ({camera})"
    return PIPELINE_LABELS.get(pipeline, pipeline)


def _write_json(path: Path, payload: Any) -> None:
    write_json(path, payload, indent=1)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-")


class _Log:
    def __init__(self, quiet: bool):
        self.quiet = quiet
        self.began = time.perf_counter()

    def __call__(self, message: str) -> None:
        if not self.quiet:
            elapsed = time.perf_counter() - self.began
            print(f"[compare {elapsed:7.1f} s] {message}", file=sys.stderr, flush=True)


# --- background scoring ----------------------------------------------------------------------


class _Scorer:
    """Scores rows in one background thread with one METEOR process for the whole run."""

    def __init__(self, metrics: tuple[str, ...]):
        self.metrics = metrics
        self.jobs: queue.Queue = queue.Queue()
        self.idle = threading.Event()
        self.idle.set()
        self.error: BaseException | None = None
        self.pending = 0
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._work, name="snapcap-compare-scorer", daemon=True)
        self.thread.start()

    def submit(self, path: Path, row: dict[str, Any]) -> None:
        with self.lock:
            self.pending += 1
            self.idle.clear()
        self.jobs.put((path, row))

    def _work(self) -> None:

        with metric_session():
            while True:
                job = self.jobs.get()
                if job is None:
                    return
                path, row = job
                try:
                    if self.error is None:
                        scored = {vid: text for vid, text in row["predictions"].items() if row["references"].get(vid)}
                        if scored:
                            report = caption_metrics(
                                scored, {vid: row["references"][vid] for vid in scored}, metrics=self.metrics
                            )
                            row["scores"] = dict(report.scores)
                            # per-video CIDEr (their mean is the corpus CIDEr): paired statistics across B and pipelines
                            row["per_video_cider"] = {
                                vid: scores.get("CIDEr") for vid, scores in (report.per_video or {}).items()
                            }
                            row["tokenizer"] = report.tokenizer
                            row["notes"] = sorted(set(row.get("notes", [])) | set(report.notes))
                        else:
                            row["scores"] = {}
                            row["notes"] = sorted(set(row.get("notes", [])) | {"no reference captions: not scored"})
                        row["scored_metrics"] = list(self.metrics)
                        _write_json(path, row)
                except BaseException as exc:  # noqa: BLE001 - re-raised in the main thread
                    self.error = exc
                finally:
                    with self.lock:
                        self.pending -= 1
                        if self.pending == 0:
                            self.idle.set()

    def wait_idle(self) -> None:
        self.idle.wait()
        if self.error is not None:
            raise self.error

    def close(self) -> None:
        self.jobs.put(None)
        self.thread.join()
        if self.error is not None:
            raise self.error


# --- data --------------------------------------------------------------------------------------


class _Data:
    """The simulated dataset of one B, its splits read lazily from the file on first use.

    The splits are :class:`~snapcap.datasets.torch_data.MeasurementDataset` views: a sample is
    read when a trainer or the captioning loop asks for it (through DataLoader workers with
    ``training.workers``), so memory does not grow with the corpus.
    """

    def __init__(self, path: Path, key: str, config, test_limit: int | None):
        self.path = path
        self.key = key
        self.config = config
        self.test_limit = test_limit
        self._splits: dict[str, Limited] = {}

    def _split(self, split: str, limit: int | None = None) -> Limited:
        if split not in self._splits:
            dataset = MeasurementDataset(self.path, split=split)
            if not len(dataset):
                raise ConfigError(f"{self.path}: no {'training' if split == 'train' else split} videos (use a larger corpus)")
            self._splits[split] = Limited(dataset, len(dataset) if limit is None else limit)
        return self._splits[split]

    @property
    def train(self) -> Limited:
        return self._split("train")

    @property
    def test(self) -> Limited:
        return self._split("test", self.test_limit)

    def close(self) -> None:
        for split in self._splits.values():
            split.samples.close()
        self._splits = {}


# --- the comparison ----------------------------------------------------------------------------


WEIGHTED_METHODS = ("pnp-ffdnet", "pnp-fastdvdnet", *NETS)
"""Two-stage methods that run the user's checkpoint (``--recon-param METHOD:weights=PATH``)."""


class Comparison:
    """Runs a :class:`CompareConfig` in a cache folder; see the module docstring."""

    def __init__(self, config: CompareConfig, cache: str | Path, progress: bool = True, quiet: bool = False, corpus: Any = None):
        self.config = config
        self.cache = Path(cache)
        # under torchrun: every rank trains and captions its share; rank 0 alone writes (datasets,
        # checkpoints, rows, the report) and speaks; the others wait for it where they read
        self.dist = distributed_context(config.device)
        self.progress = progress and self.dist.main
        self.log = _Log(quiet or not self.dist.main)
        self._corpus = corpus
        self.stages: list[dict[str, Any]] = []
        self._teacher_base: dict[bool, tuple[Path, str]] = {}  # the tower's teacher, mean and order-aware

    # -- helpers ------------------------------------------------------------------------------

    def _stage(self, what: str, B: int | None, status: str, seconds: float, path: Path | None = None) -> None:
        self.stages.append(
            {"stage": what, "B": B, "status": status, "seconds": round(seconds, 2), "path": None if path is None else str(path)}
        )
        self.log(f"{what}{'' if B is None else f' B={B}'}: {status} ({seconds:.1f} s)")

    def _cached(self, what: str, B: int, path: Path, make: Callable[[], Any], made: str = "trained") -> None:
        """Reuse ``path`` when it exists, else ``make()`` it (which writes it atomically)."""
        start = time.perf_counter()
        if self.dist.broadcast(path.is_file()):
            self._stage(what, B, "reused", time.perf_counter() - start, path)
        else:
            make()  # every rank trains (DistributedDataParallel); rank 0 writes
            self.dist.barrier()
            if self.dist.main:
                _drop_resume_state(path.parent)
            self._stage(what, B, made, time.perf_counter() - start, path)

    @property
    def corpus(self):
        if self._corpus is None:
            self._corpus = corpus_from_spec(self.config.corpus)
        return self._corpus

    def captioner_config(self, B: int, temporal: bool = False):
        """The captioner preset's :class:`~snapcap.caption.models.CaptionerConfig` at this B and the
        comparison's T and decoder (:func:`~snapcap.caption.presets.captioner_preset`: what
        ``snapcap train teacher --preset`` builds too); ``temporal``: the order-aware preset's."""

        cfg = self.config
        preset = cfg.order_aware_preset if temporal else cfg.captioner
        config = captioner_preset(preset, B=B, T=cfg.T, decoder=cfg.decoder)
        image = teacher_image_size(config.teacher)
        if image != cfg.size:
            raise ConfigError(
                f"--size {cfg.size}: the {cfg.captioner} captioner's teacher ({config.teacher}) "
                f"works at {image}x{image}; use --size {image}"
            )
        return config

    def training(self, temporal: bool = False):
        """The captioner preset's recipe (:func:`~snapcap.caption.presets.training_preset`), the
        comparison's ``training`` over it, at its seed and device; ``temporal``: the order-aware preset's."""

        cfg = self.config
        preset = cfg.order_aware_preset if temporal else cfg.captioner
        return training_preset(preset, **{**dict(cfg.training), "seed": cfg.seed, "device": cfg.device})

    # -- stages -------------------------------------------------------------------------------

    def data(self, B: int, camera: str = "coded") -> _Data:
        """The simulated dataset of this B, through the coded camera (``--mask``) or a camera
        control of :data:`~snapcap.compare.config.CAMERAS`."""

        cfg = self.config
        config = DatasetConfig(
            B=B,
            T=cfg.T,
            size=(cfg.size, cfg.size),
            gray=cfg.gray,
            bayer=cfg.bayer,
            mask=cfg.mask if camera == "coded" else CAMERAS[camera],
            mask_seed=cfg.mask_seed,
            noise=cfg.noise,
            noise_seed=cfg.noise_seed,
            store_frames=True,
        )
        corpus = self.corpus
        describe = corpus.describe()
        key = content_hash("data", config.to_dict(), describe)
        path = self.cache / "data" / f"B{B:02d}{'' if camera == 'coded' else '-' + camera}-{key}.h5"
        start = time.perf_counter()
        done = False
        if path.is_file():
            try:
                done = bool(dataset_info(path).get("complete", False))
            except Exception:  # noqa: BLE001 - damaged: remade below (make_dataset resumes or refuses)
                done = False
        what = "dataset" if camera == "coded" else f"dataset ({camera})"
        if self.dist.broadcast(done):
            self._stage(what, B, "reused", time.perf_counter() - start, path)
        else:
            items = corpus.select("train") + corpus.select("test")
            if not items:
                raise ConfigError(f"corpus {corpus.name}: no train or test videos")
            skipped = None
            if self.dist.main:  # one writer; the other ranks wait, then read the finished file
                path.parent.mkdir(parents=True, exist_ok=True)
                report = make_dataset(corpus, path, config, items=items, progress=self.progress)
                skipped = getattr(report, "skipped", None)
            self.dist.barrier()
            self._stage(
                what,
                B,
                f"simulated ({len(items)} videos" + (f", {len(skipped)} unreadable skipped" if skipped else "") + ")",
                time.perf_counter() - start,
                path,
            )
        return _Data(path, key, config, cfg.test_limit)

    def teacher(self, B: int, data: Callable[[int], _Data], temporal: bool = False) -> tuple[Path, str]:
        """(teacher.pt for this B, its key); ``temporal``: the order-aware teacher's.

        The CLIP tower is trained once, at ``teacher_B``; then at *every* B, ``teacher_B``
        included, its projector and decoder are retrained on that B's f_t
        (:func:`~snapcap.caption.train.adapt_teacher`), so every B's teacher (and the decoder
        its students and two-stage rows share) comes out of the same procedure.
        """

        cfg = self.config
        training = self.training(temporal)
        kind = "temporal-" if temporal else ""
        if temporal not in self._teacher_base:
            base_b = cfg.teacher_B
            base_data = data(base_b)
            captioner = self.captioner_config(base_b, temporal)
            key = content_hash("teacher", base_data.key, captioner.to_dict(), training.model_settings())
            folder = self.cache / "models" / f"{kind}tower-B{base_b:02d}-{key}"
            path = folder / "teacher.pt"
            preset = cfg.order_aware_preset if temporal else cfg.captioner
            self._cached(
                f"{kind}teacher",
                base_b,
                path,
                lambda: train_teacher(base_data.train, folder, captioner, training, progress=self.progress, preset=preset),
                "tower trained" if captioner.train_encoder else "projector + decoder trained on the frozen tower",
            )
            self._teacher_base[temporal] = (path, key)
        base_path, base_key = self._teacher_base[temporal]
        this = data(B)
        key = content_hash("teacher-adapt", base_key, this.key, cfg.adapt_epochs, training.model_settings())
        folder = self.cache / "models" / f"{kind}teacher-B{B:02d}-{key}"
        path = folder / "teacher.pt"
        self._cached(
            f"{kind}teacher (adapted)",
            B,
            path,
            lambda: adapt_teacher(this.train, base_path, folder, training, head_epochs=cfg.adapt_epochs, progress=self.progress),
            f"projector + decoder retrained from the B={cfg.teacher_B} tower",
        )
        return path, key

    def student(self, mode: str, B: int, data: _Data, teacher: tuple[Path, str], camera: str = "coded") -> tuple[Path, str]:

        training = self.training(mode in TEMPORAL_STUDENTS)
        key = content_hash("student", mode, teacher[1], data.key, training.model_settings())
        folder = self.cache / "models" / f"{mode}-B{B:02d}{'' if camera == 'coded' else '-' + camera}-{key}"
        path = folder / f"{mode}.pt"
        what = mode if camera == "coded" else f"{mode} ({camera})"
        self._cached(what, B, path, lambda: train_student(data.train, teacher[0], folder, mode, training, progress=self.progress))
        return path, key

    def zoo(self, name: str, B: int, data: _Data, teacher: tuple[Path, str]) -> tuple[Path, str]:
        """A captioner of :mod:`snapcap.caption.zoo` trained on this B's data (its frames)."""

        cfg = self.config
        options = {
            "preset": cfg.zoo_preset,
            "seed": cfg.seed,
            "device": cfg.device,
            "teacher": str(teacher[0]),
            **({"amp": True} if cfg.training.get("amp") else {}),  # as the teacher and students train
            **dict(cfg.zoo_options.get(name, {})),
        }
        key = content_hash("zoo", name, teacher[1], data.key, options)
        folder = self.cache / "models" / f"{name}-B{B:02d}-{key}"
        path = folder / f"{name}.pt"
        running = dict(options, workers=int(cfg.training.get("workers", 0) or 0))  # how it reads, not what it learns
        self._cached(name, B, path, lambda: captioner_entry(name).run_training(data.train, folder, running, self.progress))
        return path, key

    def unfold(self, B: int, data: _Data) -> tuple[Path, str]:

        cfg = self.config
        spec = dict(cfg.unfold)
        preset = spec.pop("preset", "tiny")
        if preset not in UNFOLD_PRESETS:
            raise ConfigError(f"unfold preset {preset!r}: expected one of {', '.join(UNFOLD_PRESETS)}")
        spec.setdefault("patch", cfg.size)
        spec["patch"] = min(int(spec["patch"]), cfg.size)
        if cfg.training.get("amp"):
            spec.setdefault("amp", True)  # --amp: every model's training, the deep reconstructor's too
        train_config = TrainReconConfig(model=replace(UNFOLD_PRESETS[preset], B=B), seed=cfg.seed, device=cfg.device, **spec)
        key = content_hash("unfold", data.key, train_config.to_dict())
        folder = self.cache / "models" / f"unfold-B{B:02d}-{key}"
        path = folder / "model.pt"
        self._cached(
            "unfold",
            B,
            path,
            lambda: train_recon(data.train, folder, train_config, progress=self.progress),
            f"trained ({train_config.steps} steps)",
        )
        return path, key

    # -- rows ---------------------------------------------------------------------------------

    def recon_params(self, method: str, unfold: tuple[Path, str] | None) -> dict[str, Any]:
        params = dict(self.config.recon_params.get(method, {}))
        if method == "unfold" and unfold is not None:
            params["checkpoint"] = str(unfold[0])
        if self.config.device.startswith("cuda") and method in (*WEIGHTED_METHODS, "unfold"):
            params.setdefault("device", self.config.device)
        return params

    def caption_row(
        self, pipeline: str, B: int, captioner, samples: list[dict[str, Any]], montage_ids: set[str]
    ) -> tuple[dict[str, Any], dict[str, np.ndarray]] | None:
        """Caption every test video; time, memory and (two-stage) PSNR/SSIM.

        With ``batch_size`` 1 in one process every video is captioned alone and timed. With more,
        the videos are captioned ``batch_size`` at a time for the scores, and the latency is a
        separate pass over ``latency_videos`` of them, one at a time (batch 1, after a warm-up,
        CUDA synchronised).

        Under torchrun each rank captions its share of the test videos (every ``world``-th one)
        and rank 0 gathers them into the row, in the test split's order (the other ranks return
        ``None``). The latency is then always the separate pass, on rank 0 alone while the others
        wait (over as many videos as rank 0's share unless ``latency_videos`` says): processes
        captioning side by side would time each other's contention.
        """

        cfg = self.config
        beam = cfg.row_beam(pipeline)
        captioner.caption(samples[0], beam_size=beam)  # warm-up: lazy initialisation is not timed
        ssim_videos = cfg.ssim_videos
        size = max(1, int(cfg.batch_size))
        mine = list(self.dist.shard(len(samples)))
        videos: list[dict[str, Any]] = []  # one record per test video this rank captions
        meter = MemoryMeter(captioner.device).start()
        try:
            chunks = [mine[i : i + size] for i in range(0, len(mine), size)]
            for chunk in tqdm(chunks, desc=f"B={B} {pipeline}", unit="batch", disable=not self.progress, leave=False):
                batch = [samples[i] for i in chunk]
                texts = captioner.caption(batch[0] if size == 1 else batch, beam_size=beam)
                for offset, (index, sample, text) in enumerate(zip(chunk, batch, texts)):
                    video_id = str(sample.get("video_id"))
                    video = {
                        "index": index,
                        "video_id": video_id,
                        "prediction": text,
                        "references": [str(c) for c in sample.get("captions", []) if str(c).strip()],
                    }
                    if size == 1:
                        video["total_ms"] = 1000.0 * captioner.timings["total"]
                        video["recon_ms"] = 1000.0 * captioner.timings["recon"]
                    if captioner.two_stage and sample.get("frames") is not None:
                        frames = captioner.model.last_frames[offset].cpu().numpy()
                        truth = np.asarray(sample["frames"], dtype=np.float32)
                        if frames.shape == truth.shape:
                            axis = -1 if truth.shape[-1] == 3 and truth.ndim == 5 else None
                            flat = (-1,) + truth.shape[-3:] if axis is not None else (-1,) + truth.shape[-2:]
                            video["psnr"] = mean_psnr(frames.reshape(flat), truth.reshape(flat), channel_axis=axis)
                            if ssim_videos is None or index < ssim_videos:
                                video["ssim"] = mean_ssim(frames.reshape(flat), truth.reshape(flat), channel_axis=axis)
                        if video_id in montage_ids:
                            video["recon"] = frames[0]
                    videos.append(video)
            latency = []
            separate = size > 1 or self.dist.active
            if separate and self.dist.main:  # the timed pass: batch 1, as the paper measures latency
                # by default over every test video, or under torchrun over as many as rank 0's share
                # (rank 0 would otherwise caption the whole split a second time while the rest wait)
                for sample in samples[: cfg.latency_videos or len(mine)]:
                    captioner.caption(sample, beam_size=beam)
                    latency.append((1000.0 * captioner.timings["total"], 1000.0 * captioner.timings["recon"]))
        finally:
            memory = meter.stop()
        shares = self.dist.gather((videos, memory))
        if shares is None:
            return None
        videos = sorted((video for part, _ in shares for video in part), key=lambda video: video["index"])
        if not separate:
            latency = [(video["total_ms"], video["recon_ms"]) for video in videos]
        memory = max((part for _, part in shares), key=lambda part: part.get("peak_rss_mb") or 0.0)
        totals = [total for total, _ in latency]
        recons = [recon for _, recon in latency]
        psnrs = [video["psnr"] for video in videos if "psnr" in video]
        ssims = [video["ssim"] for video in videos if "ssim" in video]
        total = statistics.fmean(totals)
        recon = statistics.fmean(recons)
        row = {
            "pipeline": pipeline,
            "label": label_of(pipeline),
            "B": int(B),
            "T": int(self.config.T),
            "videos": len(videos),
            "predictions": {video["video_id"]: video["prediction"] for video in videos},
            "references": {video["video_id"]: video["references"] for video in videos},
            "recon_ms": recon if captioner.two_stage else None,
            "caption_ms": total - recon,
            "total_ms": total,
            "total_ms_median": statistics.median(totals),
            "peak_rss_mb": memory.get("peak_rss_mb"),
            "peak_rss_increase_mb": memory.get("peak_rss_increase_mb"),
            "peak_cuda_mb": memory.get("peak_cuda_mb"),
            "memory_method": memory.get("host_method"),
            "psnr": statistics.fmean(psnrs) if psnrs else None,
            "ssim": statistics.fmean(ssims) if ssims else None,
            "ssim_videos": len(ssims) if ssims else None,
            "device": captioner.device,
            "beam": beam,
            "batch_size": size,
            "latency_videos": len(totals),
            "processes": self.dist.world,
            "preset": self.config.zoo_preset if pipeline in self.config.zoo else self.config.captioner,
            "checkpoint": None if captioner.checkpoint is None else str(captioner.checkpoint),
            "notes": [f"SSIM of the reconstructions over the first {len(ssims)} of the {len(psnrs)} test videos (PSNR over all)"]
            if 0 < len(ssims) < len(psnrs)
            else [],
        }
        if self.dist.world > 1:
            row["notes"].append(
                f"captioned by {self.dist.world} processes (each its share of the test videos); peak memory is the largest "
                f"one process's; latency on rank 0 alone, batch 1, over {len(totals)} videos"
            )
        return row, {video["video_id"]: video["recon"] for video in videos if "recon" in video}

    def test_facts(self) -> dict[str, Any]:
        """Video id -> the true temporal facts of each test video, where the corpus knows them
        (the procedural corpus does; file corpora do not, and their report has no fact table)."""
        facts = {}
        for item in self.corpus.select("test"):
            known = (item.extra or {}).get("facts")
            if known:
                facts[item.video_id] = known
        return facts

    def token_width(self, captioner) -> int | None:
        """D, the width of the tokens the students feed the decoder: the preset's in-house decoder's, or
        the frozen language model's as the trained teacher recorded it (None before any teacher)."""
        width = captioner.decoder.get("width")
        if width is None and False in self._teacher_base:
            width = teacher_config(self._teacher_base[False][0]).decoder.get("width")
        return None if width is None else int(width)

    # -- the whole run ------------------------------------------------------------------------

    def check_checkpoints(self) -> None:
        """Refuse, before any work, two-stage rows whose checkpoint is not given or not there
        (found at row time, that would be after hours of training)."""
        cfg = self.config
        needed = [m for m in cfg.recon if m in WEIGHTED_METHODS]
        missing = [m for m in needed if not cfg.recon_params.get(m, {}).get("weights")]
        if missing:
            raise ConfigError(
                f"two-stage row(s) {', '.join(missing)} need their checkpoints: "
                + " ".join(f"--recon-param {m}:weights=PATH" for m in missing)
                + " (snapcap downloads nothing; --recon chooses the rows)"
            )
        for method in needed:
            weights = Path(str(cfg.recon_params[method]["weights"])).expanduser()
            if not weights.is_file():
                raise ConfigError(f"--recon-param {method}:weights={weights}: no such file")
        batch = int(dict(cfg.unfold).get("batch_size", TrainReconConfig.batch_size))  # what unfold() will train with
        if "unfold" in cfg.recon and self.dist.world > batch:
            raise ConfigError(
                f"the unfolding network trains {batch} patches a step, fewer than the {self.dist.world} processes: "
                f"give it --unfold-batch-size >= {self.dist.world} or run fewer processes"
            )

    def run(self) -> dict[str, Any]:

        cfg = self.config
        self.check_checkpoints()
        began = time.perf_counter()
        if cfg.threads:
            import torch

            torch.set_num_threads(int(cfg.threads))
        datasets: dict[int, _Data] = {}

        def data(B: int) -> _Data:
            if B not in datasets:
                datasets[B] = self.data(B)
            return datasets[B]

        rows: list[dict[str, Any]] = []
        scorer = _Scorer(cfg.metrics) if self.dist.main else None  # rank 0 scores
        montage: dict[str, Any] = {}
        try:
            order = [cfg.teacher_B] + [b for b in cfg.B if b != cfg.teacher_B] if cfg.teacher_B in cfg.B else list(cfg.B)
            for B in order:
                this = data(B)
                teacher = self.teacher(B, data)
                models: dict[str, tuple[Path, str]] = {"teacher": teacher}
                reference = B == cfg.reference_B
                if cfg.temporal and reference:  # the order-aware rows: at the reference B
                    models["teacher-temporal"] = self.teacher(B, data, temporal=True)
                tests: dict[str, _Data] = {}  # rows tested on another camera's snapshots of the same videos
                for mode in cfg.students:
                    if mode in TEMPORAL_STUDENTS and not reference:
                        continue
                    models[mode] = self.student(
                        mode, B, this, models["teacher-temporal" if mode in TEMPORAL_STUDENTS else "teacher"]
                    )
                if reference:
                    for camera in cfg.cameras:
                        control = self.data(B, camera)
                        for mode in cfg.students if cfg.camera_students is None else cfg.camera_students:
                            taught = models["teacher-temporal" if mode in TEMPORAL_STUDENTS else "teacher"]
                            models[f"{mode}@{camera}"] = self.student(mode, B, control, taught, camera)
                            tests[f"{mode}@{camera}"] = control
                for name in cfg.zoo:
                    models[name] = self.zoo(name, B, this, teacher)
                unfold = self.unfold(B, this) if "unfold" in cfg.recon else None
                montage_ids: set[str] = set()
                if B == cfg.reference_B and cfg.montage_videos > 0:
                    montage_ids = {str(s["video_id"]) for s in this.test[: cfg.montage_videos]}
                    montage = {"B": B, "samples": this.test[: cfg.montage_videos], "recon": {}, "captions": {}}
                to_score: list[tuple[Path, dict[str, Any]]] = []
                for pipeline in cfg.pipelines():
                    if pipeline not in models and not pipeline.startswith("two-stage:") and pipeline not in cfg.zoo:
                        continue  # an order-aware row or a camera control: at the reference B only
                    source = tests.get(pipeline, this)
                    if pipeline.startswith("two-stage:"):
                        method = pipeline.split(":", 1)[1]
                        params = self.recon_params(method, unfold)
                        model_key = content_hash(
                            teacher[1],
                            method,
                            {k: v for k, v in params.items() if k != "checkpoint"},
                            unfold[1] if method == "unfold" and unfold else None,
                        )
                        if cfg.ssim_videos is not None:
                            model_key = content_hash(model_key, "ssim", cfg.ssim_videos)
                    else:
                        params = None
                        model_key = models[pipeline][1]
                    beam = cfg.row_beam(pipeline)
                    batching = () if cfg.batch_size == 1 else (cfg.batch_size, cfg.latency_videos)
                    row_key = content_hash("row", pipeline, model_key, source.key, cfg.test_limit, beam, cfg.device, *batching)
                    row_path = self.cache / "rows" / f"{_slug(pipeline)}-B{B:02d}-{row_key}.json"
                    recon_path = row_path.with_suffix(".recon.npz")
                    row = _read_json(row_path)
                    start = time.perf_counter()
                    reuse = row is not None and (not montage_ids or not pipeline.startswith("two-stage:") or recon_path.is_file())
                    if self.dist.broadcast(reuse):
                        status = "reused"
                    else:
                        if scorer is not None:
                            scorer.wait_idle()  # latencies measured with nothing else running
                        if pipeline in cfg.zoo:
                            captioner = create_captioner(pipeline, models[pipeline][0], device=cfg.device)
                        elif pipeline in ("teacher", "teacher-temporal"):
                            captioner = create_captioner("teacher", {"teacher": models[pipeline][0]}, device=cfg.device)
                        elif pipeline in models:
                            mode = pipeline.split("@", 1)[0]
                            captioner = create_captioner(mode, {mode: models[pipeline][0]}, device=cfg.device)
                        else:
                            captioner = create_captioner(
                                pipeline, {"teacher": teacher[0]}, recon_params=params, device=cfg.device
                            )
                        assert isinstance(captioner, Captioner)
                        captioned = self.caption_row(pipeline, B, captioner, source.test, montage_ids)
                        if captioned is None:  # another rank's row: rank 0 writes it
                            continue
                        row, recon_frames = captioned
                        row["row_key"], row["model_key"], row["dataset"] = row_key, model_key, str(source.path)
                        row["camera"] = camera_of(pipeline)
                        if recon_frames:
                            arrays = {_slug(k): v for k, v in recon_frames.items()}
                            with atomic_path(recon_path) as tmp:
                                np.savez_compressed(tmp, **arrays)
                        _write_json(row_path, row)
                        status = f"captioned {row['videos']} videos, {row['total_ms']:.1f} ms per video"
                    if scorer is None:
                        continue
                    if set(row.get("scored_metrics", [])) != set(cfg.metrics) or (
                        "CIDEr" in cfg.metrics and "per_video_cider" not in row
                    ):
                        to_score.append((row_path, row))
                    rows.append({"path": row_path, "row": row})
                    self._stage(f"row {pipeline}", B, status, time.perf_counter() - start, row_path)
                    if montage_ids:
                        montage["captions"][pipeline] = {vid: row["predictions"].get(vid, "") for vid in montage_ids}
                        if pipeline.startswith("two-stage:") and recon_path.is_file():
                            with np.load(recon_path) as stored:
                                montage["recon"][pipeline] = {
                                    vid: stored[_slug(vid)] for vid in montage_ids if _slug(vid) in stored
                                }
                # scored once every row of this B is captioned: in the background while the next
                # B simulates and trains (each captioning row still waits for the scorer to be idle)
                for row_path, row in to_score:
                    assert scorer is not None
                    scorer.submit(row_path, row)
                for loaded in [*datasets.values(), *tests.values()]:
                    loaded.close()
                datasets.clear()  # free the frames of this B (and of the tower's B: trained first, no longer needed)
            if scorer is not None:
                self.log("waiting for the caption metrics")
                scorer.wait_idle()
        finally:
            if scorer is not None:
                scorer.close()
        if not self.dist.main:
            return {}
        facts = self.test_facts()
        pairs = {item.video_id: (item.extra or {}).get("pair") for item in self.corpus.select("test")}
        captioner = self.captioner_config(cfg.reference_B)
        finished = []
        for entry in rows:
            stored = _read_json(entry["path"]) or entry["row"]
            stored.pop("references", None)
            stored["seed"] = cfg.seed
            stored.setdefault("camera", camera_of(stored["pipeline"]))
            stored["label"] = label_of(stored["pipeline"])  # this version's wording, for rows read from the cache too
            if facts:
                stored["facts"] = fact_accuracy(stored["predictions"], facts)
                stored["direction"] = direction_scores(stored["predictions"], facts, pairs)
                stored["direction_interval"] = direction_interval(stored["predictions"], facts, seed=cfg.seed)
            finished.append(stored)
        reference_facts = None
        if facts and finished:
            first = {item.video_id: item.captions[0] for item in self.corpus.select("test") if item.captions}
            reference_facts = fact_accuracy({vid: first[vid] for vid in finished[0]["predictions"] if vid in first}, facts)
        return {
            "config": dict(
                cfg.to_dict(),
                teacher_B=cfg.teacher_B,
                reference_B=cfg.reference_B,
                pipelines=cfg.pipelines(),
                effective_training=self.training().model_settings(),
                # the student's settings with its token width D: the decoder's (a frozen lm's: as its teacher recorded it)
                student=dict(captioner.student, token_dim=self.token_width(captioner)),
                tower={"model": captioner.teacher, "pretrained": captioner.pretrained, "frozen": not captioner.train_encoder},
            ),
            "rows": finished,
            "reference_facts": reference_facts,
            "stages": self.stages,
            "wall_s": round(time.perf_counter() - began, 1),
            "montage": montage,
            "cache": str(self.cache),
        }


def _drop_resume_state(folder: Path) -> None:
    """Remove a finished model's resumable training state (``*.ckpt``, ``checkpoint.pt``: weights
    and optimiser moments, several times the model's size); its final file stays."""
    for pattern in ("*.ckpt", "checkpoint.pt"):
        for stale in folder.glob(pattern):
            stale.unlink(missing_ok=True)


def corpus_from_spec(spec: Any):
    """The corpus of a comparison's spec: ``kind`` and the corpus class's arguments
    (:func:`snapcap.datasets.corpora.open_corpus`); file corpora need ``root``."""

    spec = dict(spec)
    kind = spec.pop("kind", "synthetic")
    if kind != "synthetic" and not spec.get("root"):
        raise ConfigError(f"--corpus {kind} needs --root")
    return open_corpus(kind, **{key: value for key, value in spec.items() if value is not None})


def run_compare(
    config: CompareConfig, out: str | Path, cache: str | Path | None = None, progress: bool = True, quiet: bool = False
) -> dict[str, Any]:
    """Run a comparison and write its report into ``out``; returns the results (as results.json).

    ``cache`` (default ``out/cache``) holds datasets, models and evaluated rows by content hash;
    point several runs at one cache to share their work.
    """

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise DataFileError(f"{out}: exists and is not a folder (--out is the report folder)")
    out.mkdir(parents=True, exist_ok=True)
    cache = Path(cache) if cache is not None else out / "cache"
    runs = []
    corpus = None
    for seed in range(config.seed, config.seed + config.seeds):
        comparison = Comparison(replace(config, seed=seed), cache, progress=progress, quiet=quiet, corpus=corpus)
        if config.seeds > 1:
            comparison.log(f"training seed {seed} ({seed - config.seed + 1} of {config.seeds})")
        runs.append(comparison.run())
        corpus = comparison._corpus  # built once, shared by every seed
    dist = comparison.dist
    if not dist.main:  # rank 0 writes the report; the others are done once it has
        dist.barrier()
        return {}
    results = merge_seeds(runs)
    write_report(results, out)
    dist.barrier()

    results["findings"] = findings(results)
    return results
