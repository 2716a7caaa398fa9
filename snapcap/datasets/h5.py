"""The measurement dataset file: HDF5, self-describing, sharded, resumable, verifiable.

Layout of a finished file (format ``snapcap-dataset``, version 1)::

    attrs   format, format_version, B, T, H, W, rgb, bayer, mask (JSON MaskSpec),
            per_sample_masks, noise (JSON), noise_seed, full_scale, snapcap_version,
            corpus (JSON), config (JSON), config_hash, shard, num_shards, num_samples,
            skipped (JSON list), complete
    meas      (N, T, H, W)  float32       chunk (1, T, H, W)
    masks     (B, H, W) or (N, B, H, W)  float32
    frames    (N, T, B, H, W[, 3]) uint8  chunk (1, 1, B, H, W[, 3])   (optional)
    index     (N,) int64   position of the video in the corpus (seeds use it)
    video_id, split, captions (JSON list)  (N,) strings
    done      (N,) uint8   completion marker per sample

Every dataset is compressed and fletcher32-checksummed. Noise of snapshot t of the video at
corpus position i is drawn from ``default_rng([noise_seed, i, t])``, so any sample can be
re-simulated bit for bit (:func:`verify_dataset`).

Crash safety: samples are written into part files of ``part_size`` samples in ``OUT.parts/``;
each part is written under a temporary name and renamed when complete, so after a kill (even
SIGKILL) a rerun of the same command finds only whole parts, skips them and redoes the rest.
When all parts exist they are consolidated into ``OUT`` (again temporary name, then rename) and
the parts are removed: ``OUT`` either does not exist or is complete.

Shards (``shard``/``num_shards``, or torchrun's RANK/WORLD_SIZE) take contiguous blocks of the
corpus and write ``OUT.shard-III-of-NNN.h5``; :func:`merge_shards` joins them through HDF5
virtual datasets without copying the arrays.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import itertools
import json
import multiprocessing
import os
import queue
import shutil
import signal
import threading
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

try:  # POSIX: writers of one output exclude each other
    import fcntl
except ImportError:  # pragma: no cover - Windows: no lock
    fcntl = None  # type: ignore[assignment]

import h5py
import hdf5plugin
import numpy as np
from tqdm.auto import tqdm

from snapcap import __version__
from snapcap.cacti.bayer import normalize_pattern
from snapcap.cacti.masks import MaskSpec, make_masks
from snapcap.cacti.noise import parse_noise
from snapcap.cacti.operator import CactiOperator
from snapcap.cacti.simulate import plan_simulation, simulate_iter
from snapcap.errors import ConfigError, DataFileError, InvalidValueError, ShapeError, SnapcapError
from snapcap.fileio import atomic_path, write_json
from snapcap.files import DATASET_FORMAT
from snapcap.matfile import HEAP_SCAN_LIMIT, check_global_heaps, check_hdf5_attrs, check_hdf5_layout

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "DatasetConfig",
    "DatasetReport",
    "make_dataset",
    "merge_shards",
    "verify_dataset",
    "dataset_info",
    "shard_path",
    "shard_from_env",
    "open_dataset",
    "READ_ERRORS",
    "dataset_read_errors",
    "read_captions",
    "sample_masks",
    "dataset_full_scale",
    "simulate_sample",
    "METADATA_HASH_ATTR",
]

FORMAT = DATASET_FORMAT
FORMAT_VERSION = 1
COMPRESSIONS = ("zstd", "lz4", "gzip", "lzf", "none")


def h5py_with_filters():
    """h5py with the Blosc/Zstd/LZ4 HDF5 filters of ``hdf5plugin`` registered (this module imports both)."""
    return h5py


def _string_dtype():
    return h5py.string_dtype("utf-8")


@dataclass(frozen=True)
class DatasetConfig:
    """How a corpus becomes measurements. Everything that changes the data is in here.

    Attributes:
        B: frames per snapshot; T: snapshots per video; size: (H, W) of the frames.
        gray: convert video to gray; otherwise RGB is Bayer-mosaicked with ``bayer``.
        mask: mask kind of :data:`snapcap.cacti.masks.MASK_KINDS`; mask_seed, mask_params.
        per_sample_masks: one mask set per video, seeded by ``[mask_seed, index]``.
        noise: noise spec string (:func:`snapcap.cacti.noise.parse_noise`); noise_seed.
        store_frames: keep the uint8 frames (needed for training with frame losses and for
            bit-exact verification).
        part_size: samples per crash-safe part file (and per worker task).
        compression: ``zstd`` (default: Blosc-Zstd level 1 with byte shuffle, through
            hdf5plugin: fast and small), ``lz4`` (Blosc-LZ4: fastest), ``gzip`` (level 4;
            readable without hdf5plugin, several times slower to write), ``lzf`` or ``none``.
            Every chunk carries a fletcher32 checksum either way.
    """

    B: int = 8
    T: int = 8
    size: tuple[int, int] = (224, 224)
    gray: bool = False
    bayer: str | None = "RGGB"
    mask: str = "random"
    mask_seed: int = 0
    mask_params: dict[str, Any] = field(default_factory=dict)
    per_sample_masks: bool = False
    noise: str = "none"
    noise_seed: int = 0
    store_frames: bool = True
    part_size: int = 8
    compression: str = "zstd"

    def __post_init__(self) -> None:
        if self.B < 1 or self.T < 1:
            raise InvalidValueError(f"B and T must be >= 1, got B={self.B}, T={self.T}")
        if len(self.size) != 2 or min(self.size) < 2:
            raise InvalidValueError(f"size must be (H, W) with H, W >= 2, got {self.size}")
        if self.part_size < 1:
            raise InvalidValueError(f"part_size must be >= 1, got {self.part_size}")
        if self.compression not in COMPRESSIONS:
            raise ConfigError(f"compression must be one of {', '.join(COMPRESSIONS)}, got {self.compression!r}")
        object.__setattr__(self, "size", (int(self.size[0]), int(self.size[1])))
        object.__setattr__(self, "bayer", None if self.gray else (normalize_pattern(self.bayer) or "RGGB"))
        parse_noise(self.noise)  # fail early on a bad spec

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["size"] = list(self.size)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DatasetConfig:
        data = dict(data)
        data["size"] = tuple(data["size"])
        return cls(**data)

    def data_hash(self, corpus: dict[str, Any]) -> str:
        """Content hash of what determines the data (not part_size or compression)."""
        relevant = {k: v for k, v in self.to_dict().items() if k not in ("part_size", "compression")}
        text = json.dumps({"config": relevant, "corpus": corpus}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class DatasetReport:
    """What a run did: where, how many samples, which videos were skipped and why."""

    path: Path
    written: int = 0
    reused: int = 0
    skipped: list[dict[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    complete: bool = False

    def summary(self) -> str:
        text = f"{self.path}: {self.written} sample(s) simulated, {self.reused} reused from an earlier run"
        if self.skipped:
            text += f", {len(self.skipped)} video(s) skipped:\n" + "\n".join(
                f"  {entry['video_id']}: {entry['error']}" for entry in self.skipped
            )
        return text


def shard_path(out: str | Path, shard: int, num_shards: int) -> Path:
    """Where shard ``shard`` of ``num_shards`` writes (``out`` itself when unsharded)."""
    out = Path(out)
    if num_shards == 1:
        return out
    return out.with_name(f"{out.stem}.shard-{shard:03d}-of-{num_shards:03d}{out.suffix or '.h5'}")


def shard_from_env() -> tuple[int, int] | None:
    """(rank, world size) from torchrun's environment variables, if set."""
    rank, world = os.environ.get("RANK"), os.environ.get("WORLD_SIZE")
    if rank is None or world is None:
        return None
    try:
        return int(rank), int(world)
    except ValueError:
        raise ConfigError(f"RANK={rank!r} and WORLD_SIZE={world!r} must be integers") from None


def _shard_range(count: int, shard: int, num_shards: int) -> range:
    if num_shards < 1 or not 0 <= shard < num_shards:
        raise ConfigError(f"shard must satisfy 0 <= shard < num_shards, got shard={shard}, num_shards={num_shards}")
    lo = count * shard // num_shards
    hi = count * (shard + 1) // num_shards
    return range(lo, hi)


def sample_masks(config: DatasetConfig, index: int | None) -> np.ndarray:
    """The masks ``(B, H, W)`` of the video at corpus position ``index`` (None: the shared masks).

    Per-sample masks are seeded by ``[mask_seed, index]``, shared ones by ``mask_seed``.
    """
    seed = config.mask_seed if index is None else int(np.random.SeedSequence([config.mask_seed, index]).generate_state(1)[0])
    spec = MaskSpec(config.mask, config.B, config.size[0], config.size[1], seed=seed, params=dict(config.mask_params))
    return make_masks(spec)


def dataset_full_scale(config: DatasetConfig, shared_masks: np.ndarray | None) -> float:
    """The sensor's full scale: max_pixel Σ_k C_k of the shared masks, B with per-sample masks."""
    if shared_masks is None:
        return float(config.B)
    return float(np.max(np.sum(shared_masks.astype(np.float64), axis=0))) or 1.0


def simulate_sample(clip: np.ndarray, config: DatasetConfig, masks: np.ndarray, index: int, full_scale: float) -> np.ndarray:
    """Measurements (T, H, W) of one clip (T, B, H, W[, 3]) uint8, noise seeded by ``index``."""
    video = clip.reshape((1, config.T * config.B) + clip.shape[2:])
    plan = plan_simulation(
        video.shape, video.dtype, config.B, masks, config.bayer, config.noise, 0, config.noise_seed, True, full_scale
    )
    chunks = list(simulate_iter(video, chunk_size=config.T, plan=plan, index_offset=index))
    return np.asarray(chunks[0].meas, dtype=np.float32)


def _compression(config: DatasetConfig) -> dict[str, Any]:
    if config.compression == "zstd":
        return dict(hdf5plugin.Blosc(cname="zstd", clevel=1, shuffle=hdf5plugin.Blosc.SHUFFLE), fletcher32=True)
    if config.compression == "lz4":
        return dict(hdf5plugin.Blosc(cname="lz4", clevel=5, shuffle=hdf5plugin.Blosc.SHUFFLE), fletcher32=True)
    if config.compression == "lzf":
        return {"compression": "lzf", "shuffle": True, "fletcher32": True}
    if config.compression == "none":
        return {"fletcher32": True}
    return {"compression": "gzip", "compression_opts": 4, "shuffle": True, "fletcher32": True}


# --- parts -----------------------------------------------------------------------------------


def _frame_shape(config: DatasetConfig) -> tuple[int, ...]:
    base = (config.T, config.B, config.size[0], config.size[1])
    return base if config.gray else base + (3,)


def _create_sample_datasets(handle, count: int, config: DatasetConfig, per_sample_masks: bool) -> None:
    opts = _compression(config)
    height, width = config.size
    handle.create_dataset(
        "meas", shape=(count, config.T, height, width), dtype=np.float32, chunks=(1, config.T, height, width), **opts
    )
    if config.store_frames:
        shape = (count,) + _frame_shape(config)
        handle.create_dataset("frames", shape=shape, dtype=np.uint8, chunks=(1, 1) + shape[2:], **opts)
    if per_sample_masks:
        handle.create_dataset(
            "masks", shape=(count, config.B, height, width), dtype=np.float32, chunks=(1, config.B, height, width), **opts
        )
    handle.create_dataset("index", shape=(count,), dtype=np.int64)
    handle.create_dataset("done", shape=(count,), dtype=np.uint8)
    for name in ("video_id", "split", "captions"):
        handle.create_dataset(name, shape=(count,), dtype=_string_dtype())


def _part_name(start: int) -> str:
    return f"part-{start:09d}.h5"


def _decode_ahead(
    corpus, items: Sequence, indices: Sequence[int], config: DatasetConfig, depth: int
) -> Iterator[tuple[int, Any]]:
    """Yield (index, clip or exception) in order, decoding up to ``depth`` clips ahead in threads."""
    results: queue.Queue = queue.Queue(maxsize=max(depth, 1))
    stop = threading.Event()

    def produce() -> None:
        for index in indices:
            if stop.is_set():
                return
            try:
                value: Any = corpus.clip(items[index], config.T, config.B, config.size, gray=config.gray)
            except SnapcapError as exc:
                value = exc
            except Exception as exc:  # noqa: BLE001 - a corrupt video must not stop the run
                where = f"{items[index].path}: " if getattr(items[index], "path", None) else ""
                value = DataFileError(f"{where}{exc.__class__.__name__}: {exc}")
            while not stop.is_set():
                try:
                    results.put((index, value), timeout=0.1)
                    break
                except queue.Full:
                    continue

    worker = threading.Thread(target=produce, name="snapcap-decode", daemon=True)
    worker.start()
    try:
        for _ in indices:
            yield results.get()
    finally:
        stop.set()
        worker.join(timeout=5)


def _write_part(
    path: Path, corpus, items: Sequence, indices: Sequence[int], config: DatasetConfig, shared_masks, full_scale: float, bar
) -> list[dict[str, str]]:
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    try:
        skipped = _fill_part(tmp, corpus, items, indices, config, shared_masks, full_scale, bar)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)
    return skipped


def _fill_part(
    tmp: Path, corpus, items: Sequence, indices: Sequence[int], config: DatasetConfig, shared_masks, full_scale: float, bar
) -> list[dict[str, str]]:
    skipped: list[dict[str, str]] = []
    with h5py.File(tmp, "w") as handle:
        _create_sample_datasets(handle, len(indices), config, config.per_sample_masks)
        handle.create_dataset("status", shape=(len(indices),), dtype=np.uint8)
        handle.create_dataset("error", shape=(len(indices),), dtype=_string_dtype())
        for row, (index, clip) in enumerate(_decode_ahead(corpus, items, indices, config, depth=2)):
            item = items[index]
            handle["index"][row] = index
            handle["video_id"][row] = item.video_id
            handle["split"][row] = item.split
            handle["captions"][row] = json.dumps(list(item.captions))
            if isinstance(clip, Exception):
                handle["status"][row] = 2
                handle["error"][row] = str(clip)
                skipped.append({"video_id": item.video_id, "error": str(clip)})
            else:
                expected = _frame_shape(config)
                if clip.shape != expected or clip.dtype != np.uint8:
                    raise ShapeError(
                        f"corpus {corpus.name}: clip of {item.video_id} is {clip.shape} {clip.dtype}, expected {expected} uint8"
                    )
                masks = sample_masks(config, index) if config.per_sample_masks else shared_masks
                handle["meas"][row] = simulate_sample(clip, config, masks, index, full_scale)
                if config.store_frames:
                    handle["frames"][row] = clip
                if config.per_sample_masks:
                    handle["masks"][row] = masks
                handle["status"][row] = 1
                handle["done"][row] = 1
            if bar is not None:
                bar.update(1)
    return skipped


def _copy_rows(source, target, rows, start: int) -> None:
    """Copy whole rows chunk by chunk, still compressed (same chunking and filters on both)."""
    inner = [range(0, size, step) for size, step in zip(source.shape[1:], source.chunks[1:])]
    for offset, row in enumerate(rows):
        for position in itertools.product(*inner):
            mask, data = source.id.read_direct_chunk((int(row),) + position)
            target.id.write_direct_chunk((start + offset,) + position, data, mask)


def _consolidate(final: Path, parts: list[Path], config: DatasetConfig, attrs: dict[str, Any], shared_masks) -> int:
    """Join finished parts (good samples only) into ``final``, atomically. Returns N."""
    statuses = []
    for part in parts:
        with h5py.File(part, "r") as handle:
            statuses.append(handle["status"][()])
    total = int(sum(int(np.sum(s == 1)) for s in statuses))
    # A fixed temporary name, not snapcap.fileio's random one: a rerun after a kill overwrites it
    # rather than leaving a second, dataset-sized hidden file beside the output.
    tmp = final.with_name(final.name + ".tmp")
    try:
        with h5py.File(tmp, "w") as out:
            _create_sample_datasets(out, total, config, config.per_sample_masks)
            if not config.per_sample_masks:
                out.create_dataset("masks", data=shared_masks, **_compression(config))
            row = 0
            for part, status in zip(parts, statuses):
                good = np.flatnonzero(status == 1)
                with h5py.File(part, "r") as src:
                    for name in ("index", "done", "video_id", "split", "captions"):
                        values = src[name][()]
                        out[name][row : row + len(good)] = values[good]
                    for name in ("meas", "frames", "masks"):
                        if name in src and (name != "masks" or config.per_sample_masks):
                            _copy_rows(src[name], out[name], good, row)
                row += len(good)
            for key, value in attrs.items():
                out.attrs[key] = value
            out.attrs["num_samples"] = total
            out.attrs["complete"] = 1
            out.attrs[METADATA_HASH_ATTR] = metadata_hash(out)
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return total


_WORKER: dict[str, Any] = {}


def _default_workers() -> int:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(cores, 4))


def _die_with_parent() -> None:
    """Make this worker exit when the process that started it dies (even by SIGKILL)."""
    parent = os.getppid()
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass

    def watch() -> None:
        while True:
            time.sleep(0.5)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="snapcap-parent-watch", daemon=True).start()
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def _init_worker(corpus, items, config, shared_masks, full_scale) -> None:
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the parent alone handles it
    _WORKER.update(corpus=corpus, items=items, config=config, shared_masks=shared_masks, full_scale=full_scale)


def _worker_part(path: Path, block: list[int]) -> list[dict[str, str]]:
    state = _WORKER
    return _write_part(
        path, state["corpus"], state["items"], block, state["config"], state["shared_masks"], state["full_scale"], None
    )


def _physical_memory() -> int | None:
    try:
        return int(os.sysconf("SC_PHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):  # pragma: no cover - not POSIX
        return None


def check_memory(config: DatasetConfig, workers: int = 1, available: int | None = None) -> int:
    """Refuse, before any work, a configuration whose videos cannot be held in memory.

    A worker holds a clip being decoded, two decoded ahead and the one it simulates: T·B frames
    each as uint8, plus float32 working copies of the one being simulated. Returns the estimate in
    bytes.

    Raises:
        ConfigError: the estimate exceeds 80% of ``available`` (default: this machine's memory).
    """
    channels = 1 if config.gray else 3
    frame = config.size[0] * config.size[1]
    clip = config.T * config.B * frame * channels
    per_worker = 3 * clip + clip * 4 * 2 + config.T * frame * 4
    estimate = max(1, workers) * per_worker
    available = _physical_memory() if available is None else available
    if available and estimate > 0.8 * available:
        gib = 2**30
        raise ConfigError(
            f"B={config.B}, T={config.T}, size {config.size[0]}x{config.size[1]}: one video is {config.T * config.B} frames "
            f"({clip / gib:.1f} GiB as uint8) and {max(1, workers)} worker(s) need about {estimate / gib:.1f} GiB, more than "
            f"this machine's {available / gib:.1f} GiB allow; lower B, T, --size or the number of workers"
        )
    return estimate


@contextlib.contextmanager
def output_lock(final: Path, grace: float = 1.0) -> Iterator[None]:
    """Hold an exclusive lock on ``final`` (a hidden ``.NAME.lock`` beside it) for a whole run.

    A writer killed a moment ago still holds the lock until the kernel has closed its files (its
    worker processes too): the lock is retried for ``grace`` seconds before giving up.

    Raises:
        DataFileError: another process holds it (a second writer of the same output).
    """
    lock_path = final.with_name(f".{final.name}.lock")
    try:
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(lock_path, "a+")  # held open (and locked) for the whole run
    except OSError as exc:
        raise DataFileError(f"{final}: cannot create its lock file {lock_path} ({exc.strerror or exc})") from exc
    try:
        if fcntl is not None:
            deadline = time.monotonic() + grace
            while True:
                try:
                    fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() < deadline:
                        time.sleep(0.05)
                        continue
                    raise DataFileError(
                        f"{final}: another snapcap process is writing it now; wait for it to finish (a rerun then reuses "
                        "its work) or choose another --out"
                    ) from None
        try:
            yield
        finally:
            lock_path.unlink(missing_ok=True)
    finally:
        handle.close()


def _scan_parts(parts_dir: Path, selection: range) -> dict[int, tuple[Path, np.ndarray]]:
    """Finished part files by first index, each with its sample indices (checked against the plan).

    A part is trusted by its contents, not its name: its ``index`` rows must be consecutive corpus
    indices inside ``selection`` that no other part holds. Anything else (a damaged file, a part
    of another plan) is removed, so its samples are simulated again.
    """
    found: dict[int, tuple[Path, np.ndarray]] = {}
    covered: set[int] = set()
    for path in sorted(parts_dir.glob("part-*.h5")):
        try:
            with h5py.File(path, "r") as handle:
                indices = np.asarray(handle["index"][()], dtype=np.int64)
                status = np.asarray(handle["status"][()])
        except READ_ERRORS:
            path.unlink(missing_ok=True)
            continue
        consecutive = len(indices) > 0 and np.array_equal(indices, np.arange(indices[0], indices[0] + len(indices)))
        inside = consecutive and selection.start <= int(indices[0]) and int(indices[-1]) < selection.stop
        fresh = inside and not covered.intersection(indices.tolist()) and bool(np.all(np.isin(status, (1, 2))))
        if not fresh:
            path.unlink(missing_ok=True)
            continue
        covered.update(indices.tolist())
        found[int(indices[0])] = (path, indices)
    return found


def _part_indices(path: Path) -> np.ndarray:
    with h5py.File(path, "r") as handle:
        return np.asarray(handle["index"][()], dtype=np.int64)


def _runs(indices: Sequence[int], size: int) -> list[list[int]]:
    """Consecutive runs of ``indices`` cut into blocks of at most ``size``."""
    blocks: list[list[int]] = []
    for index in indices:
        if blocks and blocks[-1][-1] == index - 1 and len(blocks[-1]) < size:
            blocks[-1].append(index)
        else:
            blocks.append([index])
    return blocks


METADATA_HASH_ATTR = "metadata_sha256"
"""Root attribute: sha256 of the per-sample metadata and every other attribute (see :func:`metadata_hash`)."""

_DATASETS = frozenset({"meas", "frames", "masks", "index", "done", "video_id", "split", "captions"})
"""The datasets of a finished dataset file."""

_ATTRS = frozenset(
    "format format_version B T H W rgb bayer mask per_sample_masks noise noise_seed noise_rng full_scale snapcap_version "
    "corpus config config_hash shard num_shards index_range skipped created num_samples complete merged_from".split()
    + [METADATA_HASH_ATTR]
)
"""The root attributes snapcap writes (:func:`verify_dataset` reports others when the checksum is missing)."""


def metadata_hash(handle) -> str:
    """sha256 over ``index``, ``video_id``, ``split``, ``captions``, ``done`` and the root attributes.

    The arrays carry fletcher32 checksums only per chunk of the big datasets; this covers what
    they do not (captions, ids, attributes), so :func:`verify_dataset` catches a flip there.
    """
    digest = hashlib.sha256()
    for name in ("index", "done", "video_id", "split", "captions"):
        values = handle[name][()]
        digest.update(name.encode())
        if values.dtype.kind in "OSU":
            for value in values:
                digest.update(value if isinstance(value, bytes) else str(value).encode())
                digest.update(b"\0")
        else:
            digest.update(np.ascontiguousarray(values).tobytes())
    for key in sorted(handle.attrs):
        if key == METADATA_HASH_ATTR:
            continue
        value = handle.attrs[key]
        digest.update(key.encode())
        digest.update(repr(_attr_text(value.item() if isinstance(value, np.generic) else value)).encode())
    return digest.hexdigest()


def make_dataset(
    corpus,
    out: str | Path,
    config: DatasetConfig = DatasetConfig(),
    items: Sequence | None = None,
    shard: int = 0,
    num_shards: int = 1,
    progress: bool = True,
    workers: int | None = None,
) -> DatasetReport:
    """Simulate a corpus into a dataset file (one shard of it when ``num_shards`` > 1).

    Rerunning the same command after an interruption resumes where it stopped; rerunning it
    on a finished file does nothing. A different configuration for an existing partial run is
    refused rather than mixed in.

    Args:
        corpus: a :class:`snapcap.datasets.base.Corpus`.
        out: the output path; shards write :func:`shard_path` names next to it.
        items: the videos to simulate (default: all of the corpus), in this order; their
            position in this list is the index that seeds their noise.
        workers: processes writing parts in parallel (default: the CPU cores, at most 4);
            the corpus must be picklable for more than one. Results do not depend on it.
    """
    start_time = time.perf_counter()
    items = list(corpus.items if items is None else items)
    if not items:
        raise InvalidValueError(f"corpus {corpus.name} selected no videos")
    final = shard_path(out, shard, num_shards)
    check_memory(config, workers if workers is not None else _default_workers())
    with output_lock(final):
        return _make_locked(corpus, items, final, config, shard, num_shards, progress, workers, start_time)


def _make_locked(
    corpus,
    items: list,
    final: Path,
    config: DatasetConfig,
    shard: int,
    num_shards: int,
    progress: bool,
    workers: int | None,
    start_time: float,
) -> DatasetReport:
    selection = _shard_range(len(items), shard, num_shards)
    corpus_info = dict(corpus.describe(), selected=len(items), first_id=items[0].video_id, last_id=items[-1].video_id)
    config_hash = config.data_hash(corpus_info)
    report = DatasetReport(path=final)
    if final.exists():
        try:
            with h5py.File(final, "r") as handle:
                check_hdf5_attrs(handle, str(final))
                same = handle.attrs.get("config_hash") == config_hash and int(handle.attrs.get("complete", 0)) == 1
                reused = int(handle.attrs.get("num_samples", 0))
                skipped = json.loads(handle.attrs.get("skipped", "[]"))
        except READ_ERRORS as exc:
            raise DataFileError(f"{final}: exists but is not a readable dataset ({exc}); remove it to regenerate") from exc
        if not same:
            raise ConfigError(
                f"{final}: exists and was made from a different configuration or corpus; choose another --out or remove it"
            )
        report.reused, report.skipped, report.complete = reused, skipped, True
        report.seconds = time.perf_counter() - start_time
        return report

    # the camera is checked before anything is written: bad masks (all zero, wrong size) fail here
    shared_masks = None if config.per_sample_masks else sample_masks(config, None)
    CactiOperator(shared_masks if shared_masks is not None else sample_masks(config, selection.start))
    full_scale = dataset_full_scale(config, shared_masks)
    parts_dir = final.with_name(final.name + ".parts")
    parts_dir.mkdir(parents=True, exist_ok=True)
    stamp = parts_dir / "config.json"
    if stamp.exists():
        try:
            previous = json.loads(stamp.read_text(encoding="utf-8"))
            previous_hash = previous.get("config_hash")
        except (OSError, ValueError, AttributeError) as exc:
            raise DataFileError(
                f"{stamp}: the record of a partial run is damaged ({exc.__class__.__name__}: {_one_line(exc)}); "
                f"remove {parts_dir} to start again"
            ) from exc
        if previous_hash != config_hash:
            raise ConfigError(
                f"{parts_dir}: a partial run with a different configuration or corpus is here; "
                "rerun with its options or remove the folder"
            )
    else:
        write_json(stamp, {"config_hash": config_hash, "config": config.to_dict(), "corpus": corpus_info}, indent=1)
    for leftover in parts_dir.glob("*.tmp*"):
        leftover.unlink(missing_ok=True)

    existing = _scan_parts(parts_dir, selection)
    covered = {int(index) for _, indices in existing.values() for index in indices}
    blocks = _runs([index for index in selection if index not in covered], config.part_size)
    todo = [(parts_dir / _part_name(block[0]), block) for block in blocks]
    report.reused = len(covered)
    workers = max(1, min(workers if workers is not None else _default_workers(), len(todo)))
    with tqdm(
        total=len(selection), initial=report.reused, desc=f"dataset {final.name}", unit="video", disable=not progress
    ) as bar:
        if workers == 1:
            for path, block in todo:
                report.skipped.extend(_write_part(path, corpus, items, block, config, shared_masks, full_scale, bar))
                report.written += len(block)
        else:
            method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
            with ProcessPoolExecutor(
                workers,
                mp_context=multiprocessing.get_context(method),
                initializer=_init_worker,
                initargs=(corpus, items, config, shared_masks, full_scale),
            ) as pool:
                futures = {pool.submit(_worker_part, path, block): block for path, block in todo}
                try:
                    for future in as_completed(futures):
                        report.skipped.extend(future.result())
                        report.written += len(futures[future])
                        bar.update(len(futures[future]))
                except BaseException:  # interrupted or failed: stop the workers now (finished parts are kept)
                    processes = list((getattr(pool, "_processes", None) or {}).values())  # shutdown() forgets them
                    pool.shutdown(wait=False, cancel_futures=True)
                    for process in processes:
                        process.terminate()
                    raise
    parts = [path for _, path in sorted([(block[0], path) for path, block in todo] + [(s, p) for s, (p, _) in existing.items()])]
    written = np.concatenate([_part_indices(path) for path in parts]) if parts else np.zeros(0, np.int64)
    if not np.array_equal(written, np.arange(selection.start, selection.stop)):
        missing = sorted(set(selection) - set(written.tolist()))
        raise DataFileError(
            f"{final}: the parts in {parts_dir} do not cover samples {selection.start}..{selection.stop - 1} exactly "
            f"(missing {missing[:10]}); nothing was published: rerun the command"
        )
    written_now = {path for path, _ in todo}
    for path in parts:  # videos skipped by an earlier, interrupted run are recorded in its parts
        if path not in written_now:
            with h5py.File(path, "r") as handle:
                for status, video_id, error in zip(handle["status"][()], handle["video_id"][()], handle["error"][()]):
                    if status == 2:
                        report.skipped.append({"video_id": video_id.decode(), "error": error.decode()})
    attrs = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "B": config.B,
        "T": config.T,
        "H": config.size[0],
        "W": config.size[1],
        "rgb": int(not config.gray),
        "bayer": config.bayer or "none",
        "mask": json.dumps(
            {"kind": config.mask, "seed": config.mask_seed, "params": config.mask_params, "per_sample": config.per_sample_masks}
        ),
        "per_sample_masks": int(config.per_sample_masks),
        "noise": json.dumps(parse_noise(config.noise).to_dict()),
        "noise_seed": config.noise_seed,
        "noise_rng": "numpy.random.default_rng([noise_seed, index, snapshot])",
        "full_scale": full_scale,
        "snapcap_version": __version__,
        "corpus": json.dumps(corpus_info),
        "config": json.dumps(config.to_dict()),
        "config_hash": config_hash,
        "shard": shard,
        "num_shards": num_shards,
        "index_range": json.dumps([selection.start, selection.stop]),
        "skipped": json.dumps(report.skipped),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    if len(report.skipped) >= len(selection):  # nothing to publish, and nothing worth resuming
        shutil.rmtree(parts_dir, ignore_errors=True)
        first = report.skipped[0]
        raise DataFileError(
            f"{final}: every video of the selection failed, so there is nothing to write "
            f"(first: {first['video_id']}: {first['error']})"
        )
    _consolidate(final, parts, config, attrs, shared_masks)
    shutil.rmtree(parts_dir, ignore_errors=True)
    report.complete = True
    report.seconds = time.perf_counter() - start_time
    return report


# --- merge ---------------------------------------------------------------------------------


def merge_shards(shards: Sequence[str | Path], out: str | Path) -> Path:
    """Join finished shard files into ``out`` through HDF5 virtual datasets (no array copies).

    The big arrays (meas, frames, per-sample masks, index, done) are virtual, pointing at the
    shard files by relative path (keep them beside ``out``); small metadata is copied.
    """
    out = Path(out)
    if not shards:
        raise InvalidValueError("merge needs at least one shard file")
    infos = []
    for path in sorted(Path(p) for p in shards):
        if not path.is_file():
            raise DataFileError(f"{path}: no such shard file")
        if out.exists() and os.path.samefile(out, path):
            raise ConfigError(f"-o {out}: is one of the shards being merged; the merged file must be a new name")
        try:
            with h5py.File(path, "r") as handle:
                check_hdf5_attrs(handle, str(path))
                if handle.attrs.get("format") != FORMAT:
                    raise DataFileError(f"{path}: not a snapcap dataset (format attribute {handle.attrs.get('format')!r})")
                if int(handle.attrs.get("complete", 0)) != 1:
                    raise DataFileError(f"{path}: shard is not complete; finish it (rerun its command) before merging")
                infos.append(
                    {
                        "path": path,
                        "attrs": dict(handle.attrs),
                        "n": int(handle["meas"].shape[0]),
                        "datasets": {name: (handle[name].shape, handle[name].dtype) for name in handle},
                    }
                )
        except READ_ERRORS as exc:
            raise DataFileError(f"{path}: cannot read shard ({exc})") from exc
    first = infos[0]["attrs"]
    for info in infos[1:]:
        for key in ("config_hash", "num_shards"):
            if info["attrs"].get(key) != first.get(key):
                raise ConfigError(
                    f"{info['path']}: {key} differs from {infos[0]['path']}; shards of different runs cannot be merged"
                )
    shard_ids = sorted(int(info["attrs"]["shard"]) for info in infos)
    if shard_ids != list(range(int(first["num_shards"]))):
        raise DataFileError(f"merge needs every shard 0..{int(first['num_shards']) - 1}; got {shard_ids}")
    infos.sort(key=lambda info: int(info["attrs"]["shard"]))
    total = sum(info["n"] for info in infos)
    with atomic_path(out) as tmp, h5py.File(tmp, "w", libver="latest") as handle:
        for name, (shape, dtype) in infos[0]["datasets"].items():
            if name == "masks" and len(shape) == 3:
                with h5py.File(infos[0]["path"], "r") as src:
                    handle.create_dataset("masks", data=src["masks"][()])
                continue
            if h5py.check_string_dtype(dtype) is not None:
                values = []
                for info in infos:
                    with h5py.File(info["path"], "r") as src:
                        values.append(src[name][()])
                handle.create_dataset(name, data=np.concatenate(values), dtype=_string_dtype())
                continue
            layout = h5py.VirtualLayout(shape=(total,) + tuple(shape[1:]), dtype=dtype)
            row = 0
            for info in infos:
                relative = os.path.relpath(info["path"], out.parent)
                source = h5py.VirtualSource(relative, name, shape=(info["n"],) + tuple(shape[1:]))
                layout[row : row + info["n"]] = source
                row += info["n"]
            handle.create_virtual_dataset(name, layout)
        for key, value in first.items():
            handle.attrs[key] = value
        skipped = []
        for info in infos:
            skipped.extend(json.loads(info["attrs"].get("skipped", "[]")))
        handle.attrs["skipped"] = json.dumps(skipped)
        handle.attrs["num_samples"] = total
        handle.attrs["shard"] = -1
        handle.attrs["merged_from"] = json.dumps([os.path.relpath(info["path"], out.parent) for info in infos])
        ranges = [json.loads(_attr_text(info["attrs"].get("index_range", "null")) or "null") for info in infos]
        if all(ranges):
            handle.attrs["index_range"] = json.dumps([min(r[0] for r in ranges), max(r[1] for r in ranges)])
        handle.attrs["complete"] = 1
        handle.attrs[METADATA_HASH_ATTR] = metadata_hash(handle)
    return out


# --- reading, info, verify -----------------------------------------------------------------

READ_ERRORS = (OSError, RuntimeError, KeyError, ValueError, TypeError)
"""What h5py (and json, on the stored strings) raise on a damaged dataset file."""


@contextlib.contextmanager
def dataset_read_errors(path: str | Path, what: str = "read it") -> Iterator[None]:
    """Turn a read error of a damaged dataset file into a :class:`DataFileError` naming the file.

    SnapcapErrors that name the file pass unchanged, others get its name; ``what`` says what was
    being done ("read sample 3").
    """
    try:
        yield
    except SnapcapError as exc:
        if str(path) in str(exc):
            raise
        raise DataFileError(f"{path}: cannot {what}: {_one_line(exc)}") from exc
    except READ_ERRORS as exc:
        raise DataFileError(
            f"{path}: cannot {what} ({exc.__class__.__name__}: {_one_line(exc)}); the dataset file is damaged "
            "(`snapcap dataset verify` lists what)"
        ) from exc


def read_captions(handle, row: int, path: str | Path) -> list[str]:
    """The captions of sample ``row``: the stored JSON list of strings, checked."""
    with dataset_read_errors(path, f"read the captions of sample {row}"):
        captions = json.loads(handle["captions"][row])
    if not isinstance(captions, list) or not all(isinstance(caption, str) for caption in captions):
        raise DataFileError(f"{path}: the captions of sample {row} are {captions!r}; expected a JSON list of strings")
    return captions


def open_dataset(path: str | Path):
    """Open a dataset file read-only, checking it is a complete snapcap dataset."""
    path = Path(path)
    if not path.is_file():
        raise DataFileError(f"{path}: no such dataset file")
    check_global_heaps(path, HEAP_SCAN_LIMIT)  # its attributes are strings: HDF5 may never return from a damaged heap
    try:
        handle = h5py.File(path, "r")
    except READ_ERRORS as exc:
        raise DataFileError(f"{path}: not a readable HDF5 file ({exc}); it may be truncated") from exc
    try:
        with dataset_read_errors(path, "read its format attributes"):
            check_hdf5_attrs(handle, str(path))  # before any value is read: HDF5 may crash on a damaged type
            found = _attr_text(handle.attrs.get("format"))
            if found != FORMAT:
                raise DataFileError(f"{path}: not a snapcap dataset (format attribute {found!r}, expected {FORMAT!r})")
            if int(handle.attrs.get("complete", 0)) != 1:
                raise DataFileError(f"{path}: the dataset is incomplete; rerun the command that makes it")
            lacking = [key for key in ("num_samples", "B", "T", "H", "W") if key not in handle.attrs]
            if lacking:
                raise DataFileError(f"{path}: lacks the attribute(s) {', '.join(lacking)}; the file is damaged")
            for name, item in handle.items():  # before anything reads a row: a damaged shape may be huge
                if name not in _DATASETS or not isinstance(item, h5py.Dataset):
                    raise DataFileError(
                        f"{path}: holds {name!r} ({type(item).__name__}), which snapcap does not write; the file is damaged"
                    )
                check_hdf5_layout(item, f"{path}: dataset {name!r}")
    except BaseException:
        handle.close()
        raise
    return handle


def _attr_text(value: Any) -> Any:
    return value.decode() if isinstance(value, bytes) else value


def dataset_info(path: str | Path) -> dict[str, Any]:
    """A JSON-serialisable summary: attributes, shapes, split counts, skipped videos."""
    with open_dataset(path) as handle, dataset_read_errors(path, "summarise the dataset"):
        info: dict[str, Any] = {}
        for key, value in handle.attrs.items():
            value = _attr_text(value)
            if isinstance(value, np.generic):
                value = value.item()
            if isinstance(value, str) and value[:1] in "[{":
                try:
                    value = json.loads(value)
                except json.JSONDecodeError:
                    pass
            info[key] = value
        info["datasets"] = {
            name: {"shape": list(handle[name].shape), "dtype": str(handle[name].dtype), "virtual": bool(handle[name].is_virtual)}
            for name in handle
        }
        splits = [s.decode() if isinstance(s, bytes) else s for s in handle["split"][()]]
        info["split_counts"] = {name: splits.count(name) for name in sorted(set(splits))}
    return info


@dataclass
class VerifyReport:
    path: Path
    ok: bool
    checked_chunks: int
    resimulated: list[int]
    problems: list[str]
    notes: list[str]

    def summary(self) -> str:
        status = "OK" if self.ok else "FAILED"
        lines = [
            f"{self.path}: {status}; {self.checked_chunks} chunk(s) read and checksummed, "
            f"{len(self.resimulated)} sample(s) re-simulated bit for bit"
        ]
        lines += [f"  problem: {p}" for p in self.problems]
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


def verify_dataset(path: str | Path, samples: int = 4, seed: int = 0, progress: bool = False) -> VerifyReport:
    """Check a dataset: every checksum, every completion marker, coverage, metadata, and re-simulate some samples.

    * every chunk of every array is read (fletcher32 checksums);
    * the samples present against the corpus selection recorded in the file (``index_range``):
      every index stored once or listed as skipped, none outside;
    * captions, ids, splits, markers and attributes against :data:`METADATA_HASH_ATTR` (files
      written before it existed get a note);
    * re-simulation needs the stored frames; it rebuilds each sampled entry's measurements from
      its frames, the masks and the recorded noise spec and seed, and compares bit for bit.

    Every read error is a problem of the report, never an exception.
    """
    if samples < 0:
        raise InvalidValueError(f"samples (entries to re-simulate) must be >= 0, got {samples}")
    path = Path(path)
    problems: list[str] = []
    notes: list[str] = []
    checked = 0
    resimulated: list[int] = []

    def attempt(what: str, fn, default=None):
        try:
            return fn()
        except (*READ_ERRORS, SnapcapError) as exc:
            problems.append(f"{what}: unreadable or damaged ({exc.__class__.__name__}: {_one_line(exc)})")
            return default

    if path.is_file():  # HDF5 may never return from a damaged heap of strings, and verify reads everything anyway
        check_global_heaps(path)
    with open_dataset(path) as handle:
        count = attempt("attribute num_samples", lambda: int(handle.attrs["num_samples"]), 0)
        config = attempt("attribute config", lambda: DatasetConfig.from_dict(json.loads(handle.attrs["config"])))
        names = attempt("the list of datasets", lambda: set(handle), set())
        for name in ("meas", "frames", "masks", "index", "done", "video_id", "split", "captions"):
            if name not in names:
                if name not in ("frames",):
                    problems.append(f"dataset {name!r} is missing")
                continue
            data = attempt(f"dataset {name!r}", lambda name=name: handle[name])
            if data is None:
                continue
            if data.shape[:1] != (count,) and not (name == "masks" and data.ndim == 3):
                problems.append(f"{name} has {data.shape[0]} rows, expected {count}")
            if data.ndim <= 1:
                if attempt(name, lambda data=data: data[()]) is not None:
                    checked += 1
                continue
            for row in tqdm(range(data.shape[0]), desc=f"verify {name}", disable=not progress):
                try:
                    data[row]
                    checked += 1
                except READ_ERRORS as exc:
                    problems.append(f"{name}[{row}]: checksum or read error ({_one_line(exc)})")
        done = attempt("done", lambda: handle["done"][()])
        if done is not None and not np.all(done == 1):
            problems.append(
                f"{int(np.sum(done != 1))} sample(s) lack their completion marker: {np.flatnonzero(done != 1)[:10].tolist()}"
            )
        indices = attempt("index", lambda: np.asarray(handle["index"][()], dtype=np.int64))
        if indices is not None:
            if len(np.unique(indices)) != len(indices):
                problems.append("duplicate corpus indices: some videos were written twice")
            _check_coverage(handle, indices, problems, notes)
        stored_hash = attempt("attribute metadata_sha256", lambda: handle.attrs.get(METADATA_HASH_ATTR), "")
        if stored_hash is None:
            foreign = sorted(key for key in attempt("the attribute names", lambda: list(handle.attrs), []) if key not in _ATTRS)
            if foreign:  # a damaged name of the checksum itself is one of them
                problems.append(f"no metadata checksum, and attributes snapcap does not write: {foreign[:5]} (damaged names?)")
            else:
                notes.append(
                    "no metadata checksum (a file written before it existed): captions, ids and attributes are not checked"
                )
        else:
            again = attempt("metadata", lambda: metadata_hash(handle))
            if again is not None and again != _attr_text(stored_hash):
                problems.append(
                    "captions, ids, splits, markers or attributes differ from their recorded checksum (metadata_sha256)"
                )
        if "frames" not in names:
            notes.append("frames are not stored: measurements cannot be re-simulated from the file alone")
        elif count and config is not None and indices is not None:
            rng = np.random.default_rng(seed)
            picks = sorted(set([0, count - 1] + rng.choice(count, size=min(samples, count), replace=False).tolist()))
            shared = attempt("masks", lambda: handle["masks"][()] if handle["masks"].ndim == 3 else None)
            full_scale = attempt("attribute full_scale", lambda: float(handle.attrs["full_scale"]))
            for row in picks:
                if full_scale is None or row >= len(indices):
                    break

                def resimulate(row: int = row) -> None:
                    masks = shared if shared is not None else handle["masks"][row]
                    index = int(indices[row])
                    expected_masks = sample_masks(config, index if config.per_sample_masks else None)
                    if not np.array_equal(masks, expected_masks):
                        problems.append(f"sample {row}: stored masks differ from the masks their seed makes")
                    again = simulate_sample(handle["frames"][row], config, masks, index, full_scale)
                    if not np.array_equal(again, handle["meas"][row]):
                        problems.append(f"sample {row} (index {index}): re-simulation differs from the stored measurement")
                    resimulated.append(row)

                attempt(f"sample {row} (re-simulation)", resimulate)
    return VerifyReport(path, not problems, checked, resimulated, problems, notes)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def _check_coverage(handle, indices: np.ndarray, problems: list[str], notes: list[str]) -> None:
    """The stored indices against the recorded corpus selection: each once, or listed as skipped."""
    try:
        start, stop = json.loads(_attr_text(handle.attrs["index_range"]))
        skipped = json.loads(_attr_text(handle.attrs.get("skipped", "[]")))
    except READ_ERRORS:
        notes.append("no readable index_range attribute: sample coverage is not checked")
        return
    outside = indices[(indices < start) | (indices >= stop)]
    if len(outside):
        problems.append(f"{len(outside)} sample(s) outside the corpus selection {start}..{stop - 1}: {outside[:10].tolist()}")
    expected = stop - start - len(skipped)
    present = len(np.unique(indices[(indices >= start) & (indices < stop)]))
    if present < expected:
        missing = sorted(set(range(start, stop)) - set(indices.tolist()))
        problems.append(
            f"{expected - present} sample(s) of the corpus selection {start}..{stop - 1} are neither stored nor listed as "
            f"skipped (e.g. indices {missing[:10]}): the file is short"
        )
