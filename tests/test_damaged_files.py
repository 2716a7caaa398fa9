"""Damaged file contents: every file reader ends in a SnapcapError naming the file, or in a valid result.

Each reader gets a small valid file made by the toolkit itself, then damaged copies of it: cut
short (0 bytes, the header only, half, all but the last byte), one byte flipped at offsets drawn
from a fixed seed (dense over the header, spread over the rest), and containers that are valid
but wrong (wrong keys, dtype, shape, NaN, empty arrays, a missing dataset, JSON of another
structure, a ``.pt`` of another kind). Each damaged file is either refused with a
:class:`~snapcap.errors.SnapcapError` whose message names the file, or read into a result that is
valid: the right shapes, finite values in range and, where the container checksums its contents
(zip CRC-32, zlib, HDF5 fletcher32), the values that were written. For dataset files,
``verify_dataset`` must report any damage that reading lets through.

A representative subset also runs through the command line: exit status 2 with one
``snapcap CMD: error:`` line naming the file (or a normal run when the damage is harmless), no
traceback, and no temporary file, ``.parts`` folder or ``.lock`` left in the output folder.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import h5py
import hdf5plugin  # noqa: F401 - the Blosc filter of dataset files
import numpy as np
import pytest
import torch
from dataset_fixtures import TinyCorpus

from snapcap.cli.main import main
from snapcap.errors import SnapcapError

H = W = 16
B = 4
T = 2
SEED = 20240611
H5_ERRORS = (OSError, RuntimeError, KeyError, ValueError, TypeError)  # what h5py raises on damage


# --- damage ------------------------------------------------------------------------------------


class Hang(BaseException):
    """A reader took too long (a BaseException, so that no reader's ``except Exception`` hides it)."""


@contextlib.contextmanager
def deadline(seconds: float = 30.0):
    def alarm(signum, frame):
        raise Hang(f"no answer within {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def cut_lengths(size: int, header: int) -> list[int]:
    """0 bytes, the header only, half, and all but the last byte."""
    return sorted({n for n in (0, min(header, size - 1), size // 2, size - 1) if 0 <= n < size})


def flip_offsets(size: int, header: int, count: int, seed: int) -> list[tuple[int, int]]:
    """``count`` (offset, xor) pairs: a third in the header, the rest anywhere; fixed by ``seed``."""
    rng = np.random.default_rng([SEED, seed])
    head = max(1, min(header, size))
    offsets = list(rng.integers(0, head, size=count // 3)) + list(rng.integers(0, size, size=count - count // 3))
    xors = rng.integers(1, 256, size=count)
    return [(int(offset), int(xor)) for offset, xor in zip(offsets, xors)]


def flipped(data: bytes, offset: int, xor: int) -> bytes:
    damaged = bytearray(data)
    damaged[offset] ^= xor
    return bytes(damaged)


def _seed_of(name: str) -> int:
    return sum(name.encode()) * 131 + len(name)


def damaged_copies(original: Path, folder: Path, header: int, flips: int) -> list[tuple[str, Path]]:
    """Damaged copies of ``original``, each under its own name in a folder of its own (same file name)."""
    data = original.read_bytes()
    copies = [(f"cut to {n} of {len(data)} bytes", data[:n]) for n in cut_lengths(len(data), header)]
    copies += [
        (f"byte {offset} ^ {xor:#04x}", flipped(data, offset, xor))
        for offset, xor in flip_offsets(len(data), header, flips, _seed_of(original.name))
    ]
    out = []
    for index, (label, content) in enumerate(copies):
        target = folder / f"case{index:03d}" / original.name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
        for companion in original.parent.glob("companion-*"):  # what a reader needs beside it (masks, videos)
            if companion.is_dir():
                shutil.copytree(companion, target.parent / companion.name)
            else:
                shutil.copy(companion, target.parent / companion.name)
        out.append((label, target))
    return out


# --- outcomes ----------------------------------------------------------------------------------


@dataclass
class Outcome:
    label: str
    kind: str  # "error" (a SnapcapError naming the file), "read" (a valid result), "crash", "garbage"
    detail: str = ""


def attempt(read: Callable[[Path], Any], check: Callable[[Any], str | None], path: Path, label: str) -> Outcome:
    """Read ``path``; classify what happens."""
    try:
        with deadline():
            result = read(path)
    except SnapcapError as exc:
        message = " ".join(str(exc).split())
        if path.name not in message:
            return Outcome(label, "crash", f"{type(exc).__name__} does not name the file: {message}")
        return Outcome(label, "error", message)
    except Exception as exc:  # noqa: BLE001 - anything else is what this suite looks for: it fails the test, with its origin
        origin = traceback.format_exception(exc)[-3:]
        return Outcome(label, "crash", f"{type(exc).__name__}: {exc} ({''.join(origin).strip()[-400:]})")
    except Hang as exc:
        return Outcome(label, "crash", f"hang: {exc}")
    problem = check(result)
    return Outcome(label, "garbage" if problem else "read", problem or "")


def assert_clean(outcomes: list[Outcome]) -> None:
    bad = [f"{o.label}: {o.kind}: {o.detail}" for o in outcomes if o.kind in ("crash", "garbage")]
    assert not bad, f"{len(bad)} of {len(outcomes)} damaged files:\n" + "\n".join(bad)


# --- checks of what a reader returned ----------------------------------------------------------


def _finite(array: Any, what: str, low: float | None = None, high: float | None = None) -> str | None:
    array = np.asarray(array.detach() if isinstance(array, torch.Tensor) else array)
    if array.dtype.kind not in "biuf":
        return f"{what} has dtype {array.dtype}"
    if array.size == 0:
        return f"{what} is empty"
    if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
        return f"{what} holds NaN or infinite values"
    if low is not None and float(array.min()) < low:
        return f"{what} has values below {low} ({float(array.min()):g})"
    if high is not None and float(array.max()) > high:
        return f"{what} has values above {high} ({float(array.max()):g})"
    return None


def _same(array: Any, reference: Any, what: str) -> str | None:
    array = np.asarray(array)
    reference = np.asarray(reference)
    if array.shape != reference.shape:
        return f"{what} has shape {array.shape}, written {reference.shape}"
    if not np.array_equal(array, reference):
        return f"{what} differs from what was written (its container checksums it)"
    return None


def first_problem(*problems: str | None) -> str | None:
    return next((p for p in problems if p), None)


# --- the valid files ---------------------------------------------------------------------------


def _video() -> np.ndarray:
    rng = np.random.default_rng(SEED)
    return (rng.random((1, B * T, H, W)) * 255).round().astype(np.uint8)


def _masks() -> np.ndarray:
    return (np.random.default_rng(SEED + 1).random((B, H, W)) > 0.5).astype(np.float32)


def make_measurements(folder: Path, suffix: str) -> Path:
    from snapcap.cacti import simulate
    from snapcap.cacti.store import save_measurements

    video = _video()
    result = simulate(video, masks=_masks(), noise="gaussian:sigma=0.01", noise_seed=1)
    return save_measurements(folder / f"meas{suffix}", result.meas, result.masks, result.params, frames=video)


def make_masks(folder: Path, suffix: str) -> Path:
    from snapcap.hardware.emulate import write_mask_file

    masks = _masks()
    path = folder / f"masks{suffix}"
    if suffix == ".npy":
        np.save(path, masks)
    elif suffix == ".npz":
        np.savez(path, mask=masks)
    elif suffix == ".mat":
        write_mask_file(path, masks, version="v5")
    elif suffix == ".mat73":
        path = write_mask_file(folder / "masks73.mat", masks, version="v7.3")
    else:
        with h5py.File(path, "w") as handle:
            handle.create_dataset("mask", data=masks)
    return path


def make_scene(folder: Path, version: str) -> Path:
    from snapcap.cacti import simulate
    from snapcap.hardware.emulate import write_mat_v5, write_mat_v73

    video = _video()
    masks = _masks()
    meas = simulate(video, masks=masks, normalize=False).meas[0]  # (T, H, W) in 8-bit units
    orig = np.transpose(video[0], (1, 2, 0))
    writer = write_mat_v5 if version == "v5" else write_mat_v73
    name = "scene.mat" if version == "v5" else "scene73.mat"
    return writer(
        folder / name, orig=orig, mask=np.transpose(masks, (1, 2, 0)).astype(np.float64), meas=np.transpose(meas, (1, 2, 0))
    )


def make_video(folder: Path, suffix: str) -> Path:
    from snapcap.viz import save_animation

    frames = _video()[0].astype(np.float32) / 255.0
    rgb = np.repeat(frames[..., None], 3, axis=-1)
    rgb[..., 0] = frames[::-1]  # some colour, so that chroma damage shows
    return save_animation(rgb, folder / f"video{suffix}", fps=8)


def make_video_npy(folder: Path) -> Path:
    path = folder / "video.npy"
    np.save(path, _video())
    return path


def make_dataset_file(folder: Path) -> Path:
    from snapcap.datasets.h5 import DatasetConfig, make_dataset

    config = DatasetConfig(B=B, T=T, size=(H, W), noise="gaussian:sigma=0.01", part_size=2)
    return make_dataset(TinyCorpus(3), folder / "data.h5", config, progress=False, workers=1).path


def _rig(bayer: str | None = None):
    from snapcap.hardware.emulate import Rig

    return Rig(H=H * 2, W=W * 2, B=B, seed=3, bayer=bayer)


def make_capture(folder: Path, layout: str) -> Path:
    from snapcap.datasets.synthetic import demo_video
    from snapcap.hardware.emulate import write_capture

    rgb = layout in ("bayer-midscale", "raw-frame")
    rig = _rig("RGGB" if rgb else None)
    video = demo_video(B * T, rig.H, rig.W, rgb=rgb).astype(np.float32)
    meas = rig.capture(video)
    name = {"gray-benchmark": "bench.mat", "qiao2020-dmd": "qiao_cr_4.mat", "bayer-midscale": "mid_bayer.mat"}.get(
        layout, "frame.dng"
    )
    if layout == "raw-frame":
        meas = meas[:1]
    truth = video.reshape((T, B) + video.shape[1:]) if layout in ("gray-benchmark", "bayer-midscale") else None
    mask_path = folder / "companion-mask.mat" if layout in ("qiao2020-dmd", "raw-frame") else None
    return write_capture(folder / name, rig, meas, layout, truth=truth, mask_path=mask_path).path


def make_recon_checkpoint(folder: Path) -> Path:
    from snapcap.recon.nets.unfold import UnfoldConfig, UnfoldingNet
    from snapcap.recon.train import save_checkpoint

    torch.manual_seed(0)
    config = UnfoldConfig(B=B, stages=1, features=4, levels=1, init_iterations=0)
    path = folder / "model.pt"
    save_checkpoint(path, {"kind": "snapcap-unfold", "model": UnfoldingNet(config).state_dict(), "config": config.to_dict()})
    return path


def make_ffdnet_weights(folder: Path) -> Path:
    from snapcap.recon.denoisers.ffdnet import FFDNet

    torch.manual_seed(0)
    path = folder / "net_gray.pth"
    torch.save(FFDNet(1, num_features=8, num_conv_layers=3).state_dict(), path)
    return path


def make_captioner_checkpoint(folder: Path) -> Path:
    from caption_helpers import tiny_config

    from snapcap.caption.text import Vocabulary
    from snapcap.caption.train import atomic_save, build_teacher

    config = tiny_config(B=B, T=T)
    vocab = Vocabulary.build(["a red circle moves left", "a blue square spins"], min_count=1)
    torch.manual_seed(0)
    model = build_teacher(config, vocab)
    path = folder / "teacher.pt"
    payload = {"kind": "snapcap-captioner", "name": "teacher", "config": config.to_dict(), "vocab": vocab.to_dict()}
    atomic_save(path, {**payload, "state": model.state_dict(), "history": []})
    return path


MSRVTT_ANNOTATIONS = {
    "videos": [
        {"video_id": "video0", "split": "train", "category": 1},
        {"video_id": "video1", "split": "validate", "category": 2},
        {"video_id": "video2", "split": "test", "category": 3},
    ],
    "sentences": [
        {"video_id": "video0", "caption": "a man is cooking", "sen_id": 0},
        {"video_id": "video0", "caption": "someone cooks food", "sen_id": 1},
        {"video_id": "video1", "caption": "a dog runs in a park", "sen_id": 2},
        {"video_id": "video2", "caption": "a car drives on a road", "sen_id": 3},
    ],
}

FOLDER_CAPTIONS = [
    {"video_id": "clip_a", "caption": "a cat sleeps on a sofa", "split": "train"},
    {"video_id": "clip_a", "caption": "a sleeping cat", "split": "train"},
    {"video_id": "clip_b", "caption": "people walk down a street", "split": "test"},
]


def make_json(folder: Path, kind: str) -> Path:
    from snapcap.fileio import write_json

    if kind == "msrvtt":
        return write_json(folder / "videodatainfo.json", MSRVTT_ANNOTATIONS)
    root = folder / "companion-clips"
    root.mkdir(exist_ok=True)
    for name in ("clip_a", "clip_b"):
        (root / f"{name}.mp4").write_bytes(b"")  # never decoded: the corpus only lists them
    return write_json(folder / "captions.json", FOLDER_CAPTIONS)


# --- readers: how each is called and what a valid result is -----------------------------------


def read_measurements(path: Path):
    from snapcap.cacti.store import load_measurements

    return load_measurements(path)


def check_measurements(reference: dict, checksummed: bool) -> Callable[[dict], str | None]:
    def check(data: dict) -> str | None:
        if not isinstance(data.get("params"), dict):
            return f"params is a {type(data.get('params')).__name__}"
        if set(data) != set(reference):
            return f"holds {sorted(data)}, written {sorted(reference)}"
        problem = first_problem(
            _finite(data.get("meas"), "meas"),
            _finite(data.get("masks"), "masks", 0.0, 1.0),
            _finite(data.get("frames"), "frames", 0, 255),
        )
        if problem:
            return problem
        for name in ("meas", "masks", "frames"):
            if np.shape(data[name]) != np.shape(reference[name]):
                return f"{name} has shape {np.shape(data[name])}, written {np.shape(reference[name])}"
            if checksummed and (problem := _same(data[name], reference[name], name)):
                return problem
        if checksummed and data["params"] != reference["params"]:
            return "params differ from what was written"
        return None

    return check


def read_masks(path: Path):
    from snapcap.cacti.masks import load_masks

    return load_masks(path)


def check_masks(reference: np.ndarray, checksummed: bool) -> Callable[[np.ndarray], str | None]:
    def check(masks: np.ndarray) -> str | None:
        problem = _finite(masks, "masks", 0.0, 1.0)
        if problem or masks.shape != reference.shape:
            return problem or f"masks have shape {masks.shape}, written {reference.shape}"
        return _same(masks, reference, "masks") if checksummed else None

    return check


def read_frames(path: Path):
    from snapcap.datasets.sources import load_frames

    return load_frames(path)


def check_frames(reference, checksummed: bool, exact_shape: bool = True) -> Callable[[Any], str | None]:
    def check(source) -> str | None:
        frames = np.asarray(source.frames)
        if frames.dtype != reference.frames.dtype:
            return f"frames have dtype {frames.dtype}, written {reference.frames.dtype}"
        if problem := _finite(frames, "frames"):
            return problem
        if exact_shape and frames.shape != reference.frames.shape:
            return f"frames have shape {frames.shape}, written {reference.frames.shape}"
        if not exact_shape and (frames.ndim != reference.frames.ndim or frames.shape[1] > reference.frames.shape[1]):
            return f"frames have shape {frames.shape}, written {reference.frames.shape}"
        if source.stored_masks is not None:
            if problem := _finite(source.stored_masks, "stored masks", 0.0, 1.0):
                return problem
            if checksummed and (problem := _same(source.stored_masks, reference.stored_masks, "stored masks")):
                return problem
        elif reference.stored_masks is not None:
            return "the stored masks were lost"
        return _same(frames, reference.frames, "frames") if checksummed else None

    return check


def read_benchmark(path: Path):
    from snapcap.datasets.corpora import SCIBenchmark

    corpus = SCIBenchmark(path)
    item = corpus.items[0]
    return corpus.clip(item, T, B), corpus.stored_masks(item, B)


def check_benchmark(reference) -> Callable[[Any], str | None]:
    def check(result) -> str | None:
        clip, masks = result
        return first_problem(_same(clip, reference[0], "clip"), _same(masks, reference[1], "masks"))

    return check


def read_clip(path: Path):
    from snapcap.datasets.video import read_clip as decode

    return decode(path, T, B, (H, W))


def check_clip(reference: np.ndarray) -> Callable[[np.ndarray], str | None]:
    def check(clip: np.ndarray) -> str | None:
        if clip.dtype != np.uint8 or clip.shape != reference.shape:
            return f"clip {clip.shape} {clip.dtype}, expected {reference.shape} uint8"
        return None  # decoded pixels of a damaged stream may legitimately differ

    return check


def read_capture(path: Path):
    from snapcap.hardware import load_capture

    companion = path.parent / "companion-mask.mat"
    return load_capture(path, mask=companion if companion.exists() else None, B=B if path.suffix == ".dng" else None)


def check_capture(reference, checksummed: bool) -> Callable[[Any], str | None]:
    def check(capture) -> str | None:
        problem = first_problem(
            _finite(capture.meas, "meas"),
            None if capture.masks is None else _finite(capture.masks, "masks", 0.0, 1.0),
            None if capture.truth is None else _finite(capture.truth, "truth", 0.0, 1.0),
        )
        if problem:
            return problem
        if capture.meas.shape != reference.meas.shape or capture.layout != reference.layout:
            return f"{capture.layout} meas {capture.meas.shape}, written {reference.layout} {reference.meas.shape}"
        if (capture.masks is None) != (reference.masks is None):
            return "the masks were lost"
        if checksummed:
            return first_problem(_same(capture.meas, reference.meas, "meas"), _same(capture.masks, reference.masks, "masks"))
        return None

    return check


def read_dataset_info(path: Path):
    from snapcap.datasets.h5 import dataset_info

    return dataset_info(path)


def check_dataset_info(reference: dict) -> Callable[[dict], str | None]:
    def check(info: dict) -> str | None:
        for key in ("num_samples", "B", "T", "datasets", "split_counts"):
            if key not in info:
                return f"no {key!r} in the summary"
        return None  # what info shows of a damaged file is for verify to judge (test_dataset_verify_reports_damage)

    return check


def read_dataset_samples(path: Path):
    from snapcap.datasets.samples import captions_of, dataset_config_of
    from snapcap.datasets.torch_data import MeasurementDataset

    dataset = MeasurementDataset(path)
    samples = [dataset[i] for i in range(len(dataset))]
    dataset.close()
    return samples, captions_of(dataset), dataset_config_of(path)


def check_dataset_samples(reference) -> Callable[[Any], str | None]:
    def check(result) -> str | None:
        samples, captions, config = result
        if len(samples) != len(reference[0]):
            return f"{len(samples)} samples, written {len(reference[0])}"
        for sample, written in zip(samples, reference[0]):
            if set(sample) != set(written):
                return f"sample holds {sorted(sample)}, written {sorted(written)}"
            problem = first_problem(
                _finite(sample["meas"], "meas"),
                _finite(sample["masks"], "masks", 0.0, 1.0),
                _finite(sample["frames"], "frames", 0.0, 1.0),
            )
            if problem:
                return problem
            for name in ("meas", "masks", "frames"):
                if tuple(sample[name].shape) != tuple(written[name].shape):
                    return f"{name} has shape {tuple(sample[name].shape)}, written {tuple(written[name].shape)}"
            if not (isinstance(sample["captions"], list) and all(isinstance(c, str) for c in sample["captions"])):
                return f"captions {sample['captions']!r} are not a list of strings"
        if not all(isinstance(c, list) and all(isinstance(s, str) for s in c) for c in captions):
            return "captions_of gave something else than lists of strings"
        return None if config is not None else "the dataset configuration was lost"

    return check


def read_recon_checkpoint(path: Path):
    from snapcap.recon.train import load_reconstructor

    return load_reconstructor(path)


def read_ffdnet(path: Path):
    from snapcap.recon.denoisers.ffdnet import load_ffdnet

    return load_ffdnet(path)


def read_captioner(path: Path):
    from snapcap.caption.registry import load_captioner

    return load_captioner(path)


def check_module(reference) -> Callable[[Any], str | None]:
    def check(loaded) -> str | None:
        module = getattr(loaded, "model", loaded)
        state = module.state_dict()
        expected = reference.state_dict() if hasattr(reference, "state_dict") else reference.model.state_dict()
        if set(state) != set(expected):
            return "other parameters than were written"
        for name, value in state.items():
            if value.is_floating_point() and not torch.isfinite(value).all():
                return f"parameter {name} holds NaN or infinite values"
            if tuple(value.shape) != tuple(expected[name].shape):
                return f"parameter {name} has shape {tuple(value.shape)}"
        return None  # a flipped weight may legitimately change a finite value

    return check


def read_msrvtt(path: Path):
    from snapcap.datasets.corpora import MSRVTT

    return MSRVTT(path.parent, annotations=path)


def read_folder_corpus(path: Path):
    from snapcap.datasets.corpora import VideoFolder

    return VideoFolder(path.parent / "companion-clips", captions=path)


def check_corpus(reference) -> Callable[[Any], str | None]:
    def check(corpus) -> str | None:
        for item in corpus.items:
            if not (isinstance(item.video_id, str) and item.video_id):
                return f"video id {item.video_id!r}"
            if item.split not in ("train", "val", "test"):
                return f"split {item.split!r}"
            if not all(isinstance(caption, str) for caption in item.captions):
                return f"captions {item.captions!r}"
        return None

    return check


def read_compare_results(path: Path):
    from snapcap.compare.capture import capture_checkpoints

    return capture_checkpoints(path.parent, B)


def make_compare_results(folder: Path) -> Path:
    from snapcap.fileio import write_json

    rows = [
        {"pipeline": "teacher", "B": B, "checkpoint": str(folder / "teacher.pt")},
        {"pipeline": "snapcap", "B": B, "checkpoint": str(folder / "snapcap.pt")},
    ]
    return write_json(folder / "results.json", {"rows": rows, "stages": [{"stage": "unfold", "B": B, "path": "m.pt"}]})


def check_compare_results(reference: dict) -> Callable[[dict], str | None]:
    def check(found: dict) -> str | None:
        if "teacher" not in found or not all(isinstance(value, Path) for value in found.values()):
            return f"checkpoints {found!r}"
        return None

    return check


@dataclass
class Reader:
    make: Callable[[Path], Path]
    read: Callable[[Path], Any]
    check: Callable[[Any], Callable[[Any], str | None]]
    header: int
    flips: int = 24


READERS: dict[str, Reader] = {
    "measurements .npz": Reader(
        lambda d: make_measurements(d, ".npz"), read_measurements, lambda ref: check_measurements(ref, True), 64
    ),
    "measurements .h5": Reader(
        lambda d: make_measurements(d, ".h5"), read_measurements, lambda ref: check_measurements(ref, False), 800
    ),
    "masks .npy": Reader(lambda d: make_masks(d, ".npy"), read_masks, lambda ref: check_masks(ref, False), 128),
    "masks .npz": Reader(lambda d: make_masks(d, ".npz"), read_masks, lambda ref: check_masks(ref, True), 64),
    "masks .mat v5": Reader(lambda d: make_masks(d, ".mat"), read_masks, lambda ref: check_masks(ref, True), 128),
    "masks .mat v7.3": Reader(lambda d: make_masks(d, ".mat73"), read_masks, lambda ref: check_masks(ref, False), 1024),
    "masks .h5": Reader(lambda d: make_masks(d, ".h5"), read_masks, lambda ref: check_masks(ref, False), 800),
    "scene .mat v5 (load_frames)": Reader(lambda d: make_scene(d, "v5"), read_frames, lambda ref: check_frames(ref, True), 128),
    "scene .mat v7.3 (load_frames)": Reader(
        lambda d: make_scene(d, "v7.3"), read_frames, lambda ref: check_frames(ref, False), 1024
    ),
    "scene .mat (benchmark corpus)": Reader(lambda d: make_scene(d, "v5"), read_benchmark, check_benchmark, 128),
    "video .npy (load_frames)": Reader(make_video_npy, read_frames, lambda ref: check_frames(ref, False), 128),
    "video .mp4 (load_frames)": Reader(
        lambda d: make_video(d, ".mp4"), read_frames, lambda ref: check_frames(ref, False, exact_shape=False), 64
    ),
    "video .gif (read_clip)": Reader(lambda d: make_video(d, ".gif"), read_clip, check_clip, 64),
    "video .mp4 (read_clip)": Reader(lambda d: make_video(d, ".mp4"), read_clip, check_clip, 64),
    "capture gray-benchmark .mat": Reader(
        lambda d: make_capture(d, "gray-benchmark"), read_capture, lambda ref: check_capture(ref, True), 128
    ),
    "capture qiao2020-dmd .mat": Reader(
        lambda d: make_capture(d, "qiao2020-dmd"), read_capture, lambda ref: check_capture(ref, True), 128
    ),
    "capture bayer-midscale .mat v7.3": Reader(
        lambda d: make_capture(d, "bayer-midscale"), read_capture, lambda ref: check_capture(ref, True), 1024
    ),
    "capture raw-frame .dng": Reader(
        lambda d: make_capture(d, "raw-frame"), read_capture, lambda ref: check_capture(ref, False), 256
    ),
    "capture snapcap .npz": Reader(
        lambda d: make_measurements(d, ".npz"), read_capture, lambda ref: check_capture(ref, True), 64
    ),
    "capture snapcap dataset .h5": Reader(make_dataset_file, read_capture, lambda ref: check_capture(ref, False), 800),
    "dataset .h5 (info)": Reader(make_dataset_file, read_dataset_info, check_dataset_info, 800),
    "dataset .h5 (training samples)": Reader(make_dataset_file, read_dataset_samples, check_dataset_samples, 800),
    "reconstructor checkpoint .pt": Reader(make_recon_checkpoint, read_recon_checkpoint, check_module, 64),
    "FFDNet weights .pth": Reader(make_ffdnet_weights, read_ffdnet, check_module, 64),
    "captioner checkpoint .pt": Reader(make_captioner_checkpoint, read_captioner, check_module, 64, flips=12),
    "MSR-VTT annotations .json": Reader(lambda d: make_json(d, "msrvtt"), read_msrvtt, check_corpus, 16),
    "folder captions .json": Reader(lambda d: make_json(d, "folder"), read_folder_corpus, check_corpus, 16),
    "compare results .json": Reader(make_compare_results, read_compare_results, check_compare_results, 16),
}


@pytest.fixture(scope="module")
def valid(tmp_path_factory) -> Callable[[str], tuple[Path, Any]]:
    """Reader name -> (its valid file, what reading it gives), made once per module."""
    made: dict[str, tuple[Path, Any]] = {}

    def get(name: str) -> tuple[Path, Any]:
        if name not in made:
            folder = tmp_path_factory.mktemp("valid")
            folder = folder / "valid"
            folder.mkdir()
            reader = READERS[name]
            path = reader.make(folder)
            made[name] = (path, reader.read(path))
        return made[name]

    return get


def run_damage(name: str, valid, tmp_path: Path, kinds: str) -> list[Outcome]:
    reader = READERS[name]
    original, reference = valid(name)
    copies = damaged_copies(original, tmp_path, reader.header, reader.flips)
    if kinds == "cut":
        copies = [c for c in copies if c[0].startswith("cut")]
    else:
        copies = [c for c in copies if not c[0].startswith("cut")]
    check = reader.check(reference)
    return [attempt(reader.read, check, path, label) for label, path in copies]


@pytest.mark.parametrize("name", list(READERS))
def test_truncated(name, valid, tmp_path):
    assert_clean(run_damage(name, valid, tmp_path, "cut"))


@pytest.mark.parametrize("name", list(READERS))
def test_flipped_bytes(name, valid, tmp_path):
    assert_clean(run_damage(name, valid, tmp_path, "flip"))


# --- dataset files: verify reports what reading lets through -----------------------------------


def _contents(path: Path) -> dict[str, Any]:
    """Every dataset's values and every root attribute of an HDF5 file (a read error is a value too)."""
    out: dict[str, Any] = {}
    with h5py.File(path, "r") as handle:
        for key in handle.attrs:
            try:
                out[f"attr {key}"] = handle.attrs[key]
            except H5_ERRORS as exc:  # damage shows as a difference
                out[f"attr {key}"] = f"unreadable: {exc}"
        for name in handle:
            try:
                out[name] = handle[name][()]
            except H5_ERRORS as exc:  # damage shows as a difference
                out[name] = f"unreadable: {exc}"
    return out


def _differences(first: dict[str, Any], second: dict[str, Any]) -> list[str]:
    names = sorted(set(first) | set(second))
    return [
        name
        for name in names
        if name not in first
        or name not in second
        or type(first[name]) is not type(second[name])
        or not np.array_equal(np.asarray(first[name]), np.asarray(second[name]))
    ]


def read_verify(path: Path):
    from snapcap.datasets.h5 import verify_dataset

    return verify_dataset(path, samples=2)


def test_dataset_verify_reports_damage(valid, tmp_path):
    """``verify_dataset`` on every damaged copy: a SnapcapError, a report of the damage, or a file that reads the same."""
    original, _ = valid("dataset .h5 (info)")
    written = _contents(original)
    reader = READERS["dataset .h5 (info)"]
    outcomes = []
    for label, path in damaged_copies(original, tmp_path, reader.header, reader.flips):

        def check(report, path=path) -> str | None:
            if not report.ok:
                return None if report.problems else "a failed report without problems"
            try:
                changed = _differences(_contents(path), written)
            except OSError as exc:
                return f"verify passed a file h5py cannot open ({exc})"
            return f"verify passed a file whose {', '.join(changed)} changed" if changed else None

        outcomes.append(attempt(read_verify, check, path, label))
    assert_clean(outcomes)
    assert any(o.kind == "read" for o in outcomes) and any(o.kind == "error" for o in outcomes)


# --- valid containers holding the wrong thing --------------------------------------------------


def _simulated():
    from snapcap.cacti import simulate

    video = _video()
    result = simulate(video, masks=_masks())
    return np.asarray(result.meas), np.asarray(result.masks), dict(result.params)


def _measurements(folder: Path, suffix: str = ".npz", **changes: Any) -> Path:
    """A measurement file through save_measurements with some of its arrays or its record replaced."""
    from snapcap.cacti.store import save_measurements

    meas, masks, params = _simulated()
    arrays = {"meas": meas, "masks": masks, "params": params, "frames": None, **changes}
    return save_measurements(
        folder / f"wrong{suffix}", arrays["meas"], arrays["masks"], arrays["params"], frames=arrays["frames"]
    )


def _npz(folder: Path, name: str = "wrong.npz", **arrays: Any) -> Path:
    path = folder / name
    np.savez(path, **arrays)
    return path


def _npy(folder: Path, array: np.ndarray, name: str = "wrong.npy") -> Path:
    path = folder / name
    np.save(path, array)
    return path


def _h5_edit(path: Path, remove: str | None = None, replace: dict[str, np.ndarray] | None = None, **attrs: Any) -> Path:
    """Change an HDF5 file in place: remove a dataset, replace datasets' values, set or (None) delete root attributes."""
    with h5py.File(path, "r+") as handle:
        if remove is not None:
            del handle[remove]
        for name, value in (replace or {}).items():
            kwargs = {"dtype": handle[name].dtype} if h5py.check_string_dtype(handle[name].dtype) else {}
            del handle[name]
            handle.create_dataset(name, data=value, **kwargs)
        for key, value in attrs.items():
            if value is None:
                del handle.attrs[key]
            else:
                handle.attrs[key] = value
    return path


def _h5_values(path: Path, name: str) -> np.ndarray:
    with h5py.File(path, "r") as handle:
        return handle[name][()]


def _mat(folder: Path, name: str = "wrong.mat", **variables: Any) -> Path:
    from snapcap.hardware.emulate import write_mat_v5

    return write_mat_v5(folder / name, **variables)


def _scene_vars(**changes: Any) -> dict[str, Any]:
    video = _video()[0]
    variables = {"orig": np.transpose(video, (1, 2, 0)), "mask": np.transpose(_masks(), (1, 2, 0)).astype(np.float64)}
    variables.update(changes)
    return {k: v for k, v in variables.items() if v is not None}


def _nan(array: np.ndarray, value: float = np.nan) -> np.ndarray:
    array = np.array(array, dtype=np.float32)
    array.flat[3] = value
    return array


def _recon_payload(**changes: Any) -> dict[str, Any]:
    from snapcap.recon.nets.unfold import UnfoldConfig, UnfoldingNet

    torch.manual_seed(0)
    config = UnfoldConfig(B=B, stages=1, features=4, levels=1, init_iterations=0)
    payload = {"kind": "snapcap-unfold", "model": UnfoldingNet(config).state_dict(), "config": config.to_dict()}
    payload.update(changes)
    return payload


def _poisoned(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    state = {k: v.clone() for k, v in state.items()}
    first = next(k for k, v in state.items() if v.is_floating_point())
    state[first].view(-1)[0] = float("nan")
    return state


def _pt(folder: Path, payload: Any, name: str = "model.pt") -> Path:
    path = folder / name
    torch.save(payload, path)
    return path


def _captioner_payload(valid, **changes: Any) -> dict[str, Any]:
    path, _ = valid("captioner checkpoint .pt")
    payload = torch.load(path, map_location="cpu", weights_only=False)
    payload.update(changes)
    return {k: v for k, v in payload.items() if v is not None}


def _dataset(valid) -> Path:
    return valid("dataset .h5 (info)")[0]


def _json(folder: Path, name: str, payload: Any, clips: bool = False) -> Path:
    path = folder / name
    path.write_text(json.dumps(payload))
    if clips:
        (folder / "companion-clips").mkdir(exist_ok=True)
        for clip in ("clip_a", "clip_b"):
            (folder / "companion-clips" / f"{clip}.mp4").write_bytes(b"")
    return path


def _text(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _resume(folder: Path, payload: Any) -> Path:
    """A training folder whose checkpoint.pt holds ``payload``."""
    run = folder / "run"
    run.mkdir()
    torch.save(payload, run / "checkpoint.pt")
    return run / "checkpoint.pt"


def read_resumed_training(path: Path):
    from recon_fixtures import train_config

    from snapcap.recon.train import train_recon

    return train_recon([], path.parent, train_config(steps=4), progress=False)


def _resume_payload(**changes: Any) -> dict[str, Any]:
    from recon_fixtures import train_config

    from snapcap.recon.nets.unfold import UnfoldingNet

    config = train_config(steps=4)
    model = UnfoldingNet(config.model)
    optimizer = torch.optim.Adam(model.parameters())
    payload = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": {}, "step": 4, "history": []}
    return {"config": config.to_dict(), **payload, **changes}


def read_partial_run(path: Path):
    from snapcap.datasets.h5 import DatasetConfig, make_dataset

    config = DatasetConfig(B=B, T=T, size=(H, W), part_size=2)
    return make_dataset(TinyCorpus(3), path.parent.parent / "data.h5", config, progress=False, workers=1)


def _stamp(folder: Path, text: str) -> Path:
    parts = folder / "data.h5.parts"
    parts.mkdir()
    (parts / "config.json").write_text(text)
    return parts / "config.json"


WRONG_CASES: dict[str, Callable[[Path, Any], tuple[Path, Callable[[Path], Any]]]] = {
    # measurement files (snapcap simulate)
    "measurements: npz without meas": lambda d, v: (_npz(d, x=np.zeros(3)), read_measurements),
    "measurements: meas of 3 axes": lambda d, v: (_measurements(d, meas=_simulated()[0][0]), read_measurements),
    "measurements: NaN in meas": lambda d, v: (_measurements(d, meas=_nan(_simulated()[0])), read_measurements),
    "measurements: inf in meas (.h5)": lambda d, v: (
        _measurements(d, ".h5", meas=_nan(_simulated()[0], np.inf)),
        read_measurements,
    ),
    "measurements: empty meas": lambda d, v: (_measurements(d, meas=np.zeros((1, 0, H, W), np.float32)), read_measurements),
    "measurements: string meas": lambda d, v: (_measurements(d, meas=np.array([["a"]])), read_measurements),
    "measurements: masks above 1": lambda d, v: (_measurements(d, masks=_simulated()[1] * 255), read_measurements),
    "measurements: masks of another size": lambda d, v: (
        _measurements(d, masks=np.ones((B, H, W + 2), np.float32)),
        read_measurements,
    ),
    "measurements: frames of another size": lambda d, v: (
        _measurements(d, frames=np.zeros((1, B * T, H + 1, W), np.uint8)),
        read_measurements,
    ),
    "measurements: params a JSON list": lambda d, v: (
        _npz(d, meas=_simulated()[0], masks=_masks(), params=np.array("[1, 2]"), format=np.array("snapcap-measurements")),
        read_measurements,
    ),
    "measurements: params not JSON": lambda d, v: (
        _npz(d, meas=_simulated()[0], masks=_masks(), params=np.array("{oops"), format=np.array("snapcap-measurements")),
        read_measurements,
    ),
    "measurements: h5 without masks": lambda d, v: (_h5_edit(_measurements(d, ".h5"), "masks"), read_measurements),
    "measurements: h5 without params": lambda d, v: (_h5_edit(_measurements(d, ".h5"), params=None), read_measurements),
    "capture: snapcap npz whose params are a list": lambda d, v: (
        _npz(d, meas=_simulated()[0], masks=_masks(), params=np.array("[1, 2]"), format=np.array("snapcap-measurements")),
        read_capture,
    ),
    # mask files
    "masks: complex .npy": lambda d, v: (_npy(d, _masks().astype(np.complex64)), read_masks),
    "masks: .npy of 4 axes": lambda d, v: (_npy(d, _masks()[None]), read_masks),
    "masks: .npy of 1 axis": lambda d, v: (_npy(d, _masks().ravel()), read_masks),
    "masks: NaN in .npy": lambda d, v: (_npy(d, _nan(_masks())), read_masks),
    "masks: inf in .npy": lambda d, v: (_npy(d, _nan(_masks(), np.inf)), read_masks),
    "masks: empty .npy": lambda d, v: (_npy(d, np.zeros((0, H, W), np.float32)), read_masks),
    "masks: 8-bit .npy": lambda d, v: (_npy(d, (_masks() * 255).astype(np.uint8)), read_masks),
    "masks: text .npy": lambda d, v: (_npy(d, np.array(["mask"])), read_masks),
    "masks: .npz with other keys": lambda d, v: (_npz(d, weights=_masks()), read_masks),
    "masks: .h5 without a mask dataset": lambda d, v: (_h5_edit(make_masks(d, ".h5"), "mask"), read_masks),
    "masks: empty .mat": lambda d, v: (_mat(d, mask=np.zeros((H, W, 0))), read_masks),
    "masks: 0x0 .mat": lambda d, v: (_mat(d, mask=np.zeros((0, 0))), read_masks),
    # benchmark scenes and videos
    "scene: empty orig (load_frames)": lambda d, v: (_mat(d, **_scene_vars(orig=np.zeros((H, W, 0), np.uint8))), read_frames),
    "scene: empty orig (benchmark corpus)": lambda d, v: (
        _mat(d, **_scene_vars(orig=np.zeros((H, W, 0), np.uint8))),
        read_benchmark,
    ),
    "scene: NaN in orig (benchmark corpus)": lambda d, v: (
        _mat(d, **_scene_vars(orig=_nan(_scene_vars()["orig"]))),
        read_benchmark,
    ),
    "scene: empty mask (load_frames)": lambda d, v: (_mat(d, **_scene_vars(mask=np.zeros((H, W, 0)))), read_frames),
    "scene: orig of 5 axes": lambda d, v: (_mat(d, **_scene_vars(orig=np.zeros((H, W, 3, 2, 2), np.uint8))), read_frames),
    "scene: text orig": lambda d, v: (_mat(d, **_scene_vars(orig="not a video")), read_frames),
    "video: NaN in .npy": lambda d, v: (_npy(d, _nan(_video() / 255.0)), read_frames),
    "video: complex .npy": lambda d, v: (_npy(d, _video().astype(np.complex64)), read_frames),
    "video: empty .npy": lambda d, v: (_npy(d, np.zeros((1, 0, H, W), np.uint8)), read_frames),
    "video: .npy of 2 axes": lambda d, v: (_npy(d, np.zeros((H, W), np.uint8)), read_frames),
    # checkpoints
    "reconstructor: a plain tensor": lambda d, v: (_pt(d, torch.zeros(3)), read_recon_checkpoint),
    "reconstructor: FFDNet weights": lambda d, v: (
        _pt(d, torch.load(make_ffdnet_weights(d), weights_only=True)),
        read_recon_checkpoint,
    ),
    "reconstructor: unknown config field": lambda d, v: (
        _pt(d, _recon_payload(config={**_recon_payload()["config"], "depth": 3})),
        read_recon_checkpoint,
    ),
    "reconstructor: config a list": lambda d, v: (_pt(d, _recon_payload(config=[1, 2])), read_recon_checkpoint),
    "reconstructor: weights of another size": lambda d, v: (
        _pt(d, _recon_payload(config={**_recon_payload()["config"], "features": 8})),
        read_recon_checkpoint,
    ),
    "reconstructor: NaN weights": lambda d, v: (
        _pt(d, _recon_payload(model=_poisoned(_recon_payload()["model"]))),
        read_recon_checkpoint,
    ),
    "FFDNet: a plain tensor": lambda d, v: (_pt(d, torch.zeros(3), "net.pth"), read_ffdnet),
    "FFDNet: a reconstructor checkpoint": lambda d, v: (_pt(d, _recon_payload(), "net.pth"), read_ffdnet),
    "FFDNet: NaN weights": lambda d, v: (
        _pt(d, _poisoned(torch.load(make_ffdnet_weights(d), weights_only=True)), "net.pth"),
        read_ffdnet,
    ),
    "captioner: a plain tensor": lambda d, v: (_pt(d, torch.zeros(3), "teacher.pt"), read_captioner),
    "captioner: a reconstructor checkpoint": lambda d, v: (_pt(d, _recon_payload(), "teacher.pt"), read_captioner),
    "captioner: no config": lambda d, v: (_pt(d, _captioner_payload(v, config=None), "teacher.pt"), read_captioner),
    "captioner: config of another model": lambda d, v: (
        _pt(d, _captioner_payload(v, config={"layers": 3}), "teacher.pt"),
        read_captioner,
    ),
    "captioner: NaN weights": lambda d, v: (
        _pt(d, _captioner_payload(v, state=_poisoned(_captioner_payload(v)["state"])), "teacher.pt"),
        read_captioner,
    ),
    # JSON caption and annotation files
    "MSR-VTT: top level a list": lambda d, v: (_json(d, "videodatainfo.json", [1, 2]), read_msrvtt),
    "MSR-VTT: videos an object": lambda d, v: (_json(d, "videodatainfo.json", {"videos": {}, "sentences": []}), read_msrvtt),
    "MSR-VTT: caption a number": lambda d, v: (
        _json(d, "videodatainfo.json", {**MSRVTT_ANNOTATIONS, "sentences": [{"video_id": "video0", "caption": 3}]}),
        read_msrvtt,
    ),
    "folder captions: a number": lambda d, v: (_json(d, "captions.json", 3, clips=True), read_folder_corpus),
    "folder captions: captions an object": lambda d, v: (
        _json(d, "captions.json", {"clip_a": {"x": 1}}, clips=True),
        read_folder_corpus,
    ),
    "folder captions: NaN caption": lambda d, v: (
        _json(d, "captions.json", [{"video_id": "clip_a", "caption": float("nan")}], clips=True),
        read_folder_corpus,
    ),
    # compare results, a partial dataset run's record, a resumed training's checkpoint
    "compare results: not JSON": lambda d, v: (_text(d / "results.json", "{rows"), read_compare_results),
    "compare results: rows a number": lambda d, v: (_json(d, "results.json", {"rows": 3}), read_compare_results),
    "compare results: B not a number": lambda d, v: (
        _json(d, "results.json", {"rows": [{"pipeline": "teacher", "B": "four", "checkpoint": "t.pt"}]}),
        read_compare_results,
    ),
    "partial dataset run: record not JSON": lambda d, v: (_stamp(d, '{"config_hash": '), read_partial_run),
    "partial dataset run: record a list": lambda d, v: (_stamp(d, "[1, 2]"), read_partial_run),
    "resumed training: a plain tensor": lambda d, v: (_resume(d, torch.zeros(3)), read_resumed_training),
    "resumed training: no optimizer": lambda d, v: (_resume(d, _resume_payload(optimizer=None)), read_resumed_training),
    "resumed training: weights of another network": lambda d, v: (
        _resume(d, _resume_payload(model=_recon_payload()["model"])),
        read_resumed_training,
    ),
}


@pytest.mark.parametrize("case", list(WRONG_CASES))
def test_wrong_container_is_refused(case, valid, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    path, read = WRONG_CASES[case](folder, valid)
    with deadline(), pytest.raises(SnapcapError) as raised:
        read(path)
    assert path.name in str(raised.value), raised.value


def _dataset_copy(valid, folder: Path, **edits: Any) -> Path:
    path = folder / "data.h5"
    shutil.copy(valid("dataset .h5 (info)")[0], path)
    return _h5_edit(path, **edits)


DATASET_CASES: dict[str, Callable[[Any, Path], Path]] = {
    "without captions": lambda v, d: _dataset_copy(v, d, remove="captions"),
    "without meas": lambda v, d: _dataset_copy(v, d, remove="meas"),
    "config attribute not JSON": lambda v, d: _dataset_copy(v, d, config="{oops"),
    "complete attribute not a number": lambda v, d: _dataset_copy(v, d, complete="yes"),
    "num_samples attribute missing": lambda v, d: _dataset_copy(v, d, num_samples=None),
    "captions not lists of text": lambda v, d: _dataset_copy(
        v, d, replace={"captions": np.array(['"one"', "{}", "[3]"], dtype=object)}
    ),
    "NaN in meas": lambda v, d: _dataset_copy(v, d, replace={"meas": _nan(_h5_values(_dataset(v), "meas"))}),
    "masks above 1": lambda v, d: _dataset_copy(v, d, replace={"masks": _h5_values(_dataset(v), "masks") * 255}),
    "a damaged dataset name": lambda v, d: _h5_rename(_dataset_copy(v, d), "frames", "framez"),
}


def _h5_rename(path: Path, old: str, new: str) -> Path:
    with h5py.File(path, "r+") as handle:
        handle.move(old, new)
    return path


@pytest.mark.parametrize("case", list(DATASET_CASES))
def test_wrong_dataset_contents(case, valid, tmp_path):
    """A dataset file with wrong contents: training refuses it, verify reports it, info at most summarises it."""
    path = DATASET_CASES[case](valid, tmp_path)
    with deadline():
        try:
            read_dataset_info(path)
        except SnapcapError as exc:
            assert path.name in str(exc), exc
        with pytest.raises(SnapcapError) as raised:
            read_dataset_samples(path)
        assert path.name in str(raised.value), raised.value
        try:
            report = read_verify(path)
        except SnapcapError as exc:
            assert path.name in str(exc), exc
        else:
            assert not report.ok and report.problems, report.summary()


# --- the command line: one line, exit status 2, nothing left behind ----------------------------

CLI_CASES: dict[str, tuple[str, list[str], set[int]]] = {
    "simulate a .npy video": (
        "video .npy (load_frames)",
        ["simulate", "{file}", "--B", "4", "--no-montage", "-o", "{out}/m.npz"],
        {0, 2},
    ),
    "simulate a .mat scene": (
        "scene .mat v5 (load_frames)",
        ["simulate", "{file}", "--stored-mask", "--no-montage", "-o", "{out}/m.h5"],
        {0, 2},
    ),
    "simulate with a mask file": (
        "masks .npz",
        ["simulate", "{video}", "--mask-file", "{file}", "--no-montage", "-o", "{out}/m.npz"],
        {0, 2},
    ),
    "capture info of a .mat capture": ("capture gray-benchmark .mat", ["capture", "info", "{file}"], {0, 2}),
    "capture info of a raw frame": ("capture raw-frame .dng", ["capture", "info", "{file}", "--B", "4"], {0, 2}),
    "reconstruct measurements": (
        "measurements .h5",
        ["reconstruct", "{file}", "--iterations", "2", "--video", "none", "-o", "{out}/r"],
        {0, 2},
    ),
    "reconstruct with a reconstructor checkpoint": (
        "reconstructor checkpoint .pt",
        ["reconstruct", "{meas}", "--method", "unfold", "--checkpoint", "{file}", "--video", "none", "-o", "{out}/r"],
        {0, 2},
    ),
    "dataset info": ("dataset .h5 (info)", ["dataset", "info", "{file}"], {0, 2}),
    "dataset verify": ("dataset .h5 (info)", ["dataset", "verify", "{file}", "--resimulate", "1"], {0, 1, 2}),
    "caption with a captioner checkpoint": (
        "captioner checkpoint .pt",
        ["caption", "{dataset}", "--model", "{file}", "--samples", "0"],
        {0, 2},
    ),
}


def _error_lines(err: str) -> list[str]:
    """The error, without deprecation notes and progress bars of work done before the failure."""
    return [
        line
        for line in err.replace("\r", "\n").splitlines()
        if line.strip() and not line.startswith("snapcap: ") and "deprecated" not in line and "%|" not in line
    ]


@pytest.mark.parametrize("case", list(CLI_CASES))
def test_command_line_on_damaged_files(case, valid, tmp_path, capfd):
    name, argv, codes = CLI_CASES[case]
    reader = READERS[name]
    original, _ = valid(name)
    others = {
        "video": valid("video .npy (load_frames)")[0],
        "meas": valid("measurements .npz")[0],
        "dataset": valid("dataset .h5 (info)")[0],
    }
    copies = damaged_copies(original, tmp_path, reader.header, flips=6)
    seen = set()
    for label, path in copies:
        out = path.parent / "out"
        out.mkdir()
        capfd.readouterr()
        with deadline(60):
            code = main([token.format(file=path, out=out, **others) for token in argv])
        captured = capfd.readouterr()
        err = captured.err
        where = f"{case}, {label}:\n{err}"
        assert code in codes, where
        assert "Traceback" not in err, where
        if code == 2:
            lines = _error_lines(err)
            assert len(lines) == 1 and lines[0].startswith(f"snapcap {argv[0]}: error: "), where
            assert path.name in lines[0], where
        leftovers = [p.name for p in path.parent.rglob("*") if p.name.startswith(".tmp-") or p.suffix in (".parts", ".lock")]
        assert not leftovers, f"{where}\nleft behind: {leftovers}"
        seen.add(code)
    assert 2 in seen, "no damaged copy was refused: the damage does not reach the reader"


# --- a property over the container reader: any one flipped byte or any cut ---------------------

CONTAINER_FILES = {  # reader whose valid file is used -> whether its container checksums the values
    "masks .npy": False,
    "masks .npz": True,
    "masks .mat v5": True,
    "masks .mat v7.3": False,
    "scene .mat v7.3 (load_frames)": False,
    "capture gray-benchmark .mat": True,
}


def read_container(path: Path) -> dict[str, np.ndarray]:
    from snapcap.files import open_container

    container = open_container(path)
    return {name: container.get(name) for name in container.variables}


def test_any_flipped_byte_or_cut_of_a_container(valid, tmp_path_factory):
    """``snapcap.files`` (the one sniffer and container reader, under every capture and frame reader) on
    any single flipped byte or any cut of npy, npz and MATLAB v5/v7.3 files."""
    hypothesis = pytest.importorskip("hypothesis")
    from hypothesis import strategies as st

    files = {name: valid(name)[0] for name in CONTAINER_FILES}
    references = {name: read_container(path) for name, path in files.items()}
    work = tmp_path_factory.mktemp("container")
    counter = iter(range(10**6))

    @hypothesis.settings(
        max_examples=150, deadline=None, derandomize=True, database=None, suppress_health_check=list(hypothesis.HealthCheck)
    )
    @hypothesis.given(
        st.sampled_from(sorted(CONTAINER_FILES)), st.floats(0, 1, exclude_max=True), st.integers(1, 255), st.booleans()
    )
    def check(name, where, xor, cut):
        data = files[name].read_bytes()
        offset = int(where * len(data))
        path = work / f"case{next(counter)}" / files[name].name
        path.parent.mkdir()
        path.write_bytes(data[:offset] if cut else flipped(data, offset, xor))

        def valid_read(arrays: dict[str, np.ndarray]) -> str | None:
            for variable, array in arrays.items():
                if array.dtype.kind not in "biuf" or (array.dtype.kind == "f" and not np.all(np.isfinite(array))):
                    return f"{variable}: {array.dtype} with NaN or not real"
                written = references[name].get(variable)  # a damaged name is a new variable: readers then miss the old one
                if written is not None and array.shape != written.shape:
                    return f"{variable} has shape {array.shape}, written {written.shape}"
                if written is not None and CONTAINER_FILES[name] and not np.array_equal(array, written):
                    return f"{variable} differs from what was written (its container checksums it)"
            return None

        outcome = attempt(read_container, valid_read, path, f"{name}: {'cut at' if cut else 'flip at'} {offset}")
        assert outcome.kind in ("error", "read"), f"{outcome.label}: {outcome.kind}: {outcome.detail}"

    check()


# --- damage that made HDF5 itself loop forever: checked in a child process with a time limit ------


def _empty_free_space(data: bytes) -> bytes:
    """The file with the free-space object of its first global heap (where strings live) claiming 0 bytes."""
    import struct

    start = data.find(b"GCOL\x01\x00\x00\x00")
    assert start >= 0, "no global heap: the file holds no variable-length strings"
    (size,) = struct.unpack_from("<Q", data, start + 8)
    position = start + 16
    while struct.unpack_from("<H", data, position)[0] != 0:  # walk to object 0, the free space
        (length,) = struct.unpack_from("<Q", data, position + 8)
        position += 16 + -(-length // 8) * 8
    assert position < start + size
    damaged = bytearray(data)
    damaged[position + 8 : position + 16] = bytes(8)
    return bytes(damaged)


@pytest.mark.parametrize(
    "name, argv",
    [
        ("dataset .h5 (info)", ["dataset", "verify", "{file}"]),
        ("measurements .h5", ["capture", "info", "{file}"]),
    ],
    ids=["dataset verify", "capture info of measurements"],
)
def test_a_damaged_string_heap_is_refused_not_looped_on(name, argv, valid, tmp_path):
    import subprocess
    import sys

    original, _ = valid(name)
    path = tmp_path / original.name
    path.write_bytes(_empty_free_space(original.read_bytes()))
    command = [sys.executable, "-m", "snapcap", *[token.format(file=path) for token in argv]]
    run = subprocess.run(command, capture_output=True, text=True, timeout=120)
    lines = _error_lines(run.stderr)
    assert run.returncode == 2 and "Traceback" not in run.stderr, run.stderr
    assert len(lines) == 1 and "global heap" in lines[0] and path.name in lines[0], run.stderr
