"""Readers of the video corpora SnapCap trains and evaluates on.

Each reader is a :class:`~snapcap.datasets.base.Corpus`: it parses the corpus's own annotation
files into :class:`~snapcap.datasets.base.VideoItem` (id, split, captions, video path) and
decodes T snapshots of B frames of one item with :meth:`clip`.

* :class:`MSRVTT` — MSR-VTT (10,000 YouTube clips, 20 captions each, 6,513 / 497 / 2,990).
* :class:`MSVD` — the Microsoft Video Description corpus (1,970 clips, 1,200 / 100 / 670).
* :class:`VideoFolder` — any folder of videos plus a CSV or JSON caption file.
* :class:`SCIBenchmark` — the simulation benchmark scenes of video SCI (.mat ``orig`` + ``mask``).

Reading never decodes a video: a bad annotation file raises
:class:`~snapcap.errors.DataFileError` naming the file and the entry, but a video file that is
missing for an annotated id is not an error here (its expected ``path`` is recorded and
:meth:`FileCorpus.missing_videos` lists them); the dataset writer skips and reports those.

:func:`open_corpus` builds a corpus from a kind name (:data:`CORPORA`, the procedural corpus included).
"""

from __future__ import annotations

import csv
import inspect
import io
import json
import math
import os
import re
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from snapcap.cacti.masks import MASK_KEYS, load_masks
from snapcap.datasets.base import Corpus, VideoItem, split_counts
from snapcap.datasets.synthetic import SyntheticCorpus
from snapcap.datasets.video import VIDEO_SUFFIXES, checked_pixels, clip_indices, read_clip, resize_crop
from snapcap.errors import ConfigError, DataFileError, InvalidValueError, MissingKeyError, ShapeError
from snapcap.matfile import list_mat_variables, load_mat

__all__ = [
    "FileCorpus",
    "MSRVTT",
    "MSVD",
    "VideoFolder",
    "SCIBenchmark",
    "CORPORA",
    "open_corpus",
    "MSRVTT_SPLIT_SIZES",
    "MSVD_SPLIT_SIZES",
]

#: The official MSR-VTT split (train / val / test), from the ``split`` fields of the annotations.
MSRVTT_SPLIT_SIZES = {"train": 6513, "val": 497, "test": 2990}
#: The usual MSVD split (train / val / test) over vid1..vid1970.
MSVD_SPLIT_SIZES = {"train": 1200, "val": 100, "test": 670}

#: Names a split may be given under in annotation files, mapped to :data:`SPLITS`.
_SPLIT_ALIASES = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validate": "val",
    "validation": "val",
    "dev": "val",
    "test": "test",
    "testing": "test",
}


# --- helpers --------------------------------------------------------------------------------


def _existing_dir(root: str | Path, what: str) -> Path:
    root = Path(root).expanduser()
    if not root.exists():
        raise DataFileError(f"{root}: no such {what} folder")
    if not root.is_dir():
        raise DataFileError(f"{root}: not a folder (expected the {what} folder)")
    return root


def _existing_file(path: str | Path, what: str) -> Path:
    path = Path(path).expanduser()
    if not path.exists():
        raise DataFileError(f"{path}: no such {what} file")
    if not path.is_file():
        raise DataFileError(f"{path}: not a regular file (expected the {what} file)")
    return path


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataFileError(f"{path}: not UTF-8 text (byte {exc.start}: {exc.reason})") from exc
    except OSError as exc:
        raise DataFileError(f"{path}: cannot read ({exc})") from exc


def _read_json(path: Path) -> Any:
    text = _read_text(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataFileError(f"{path}: malformed JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from exc


def _read_csv(path: Path, surplus_into: str | None = None) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """Header and ``(line number, row)`` pairs of a CSV file (line numbers are 1-based, the last
    physical line of the row).

    Args:
        surplus_into: when the header's last column has this name (a free-text column), a row
            with more fields than the header gets its surplus joined back into it with commas;
            otherwise such a row is an error naming its line.
    """
    text = _read_text(path)
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
        if header is None:
            raise DataFileError(f"{path}: empty CSV file; expected a header line")
        header = [name.strip() for name in header]
        rows = []
        for values in reader:
            line = reader.line_num
            if not any(value.strip() for value in values):
                continue
            if len(values) > len(header) and header and header[-1] == surplus_into:
                values = values[: len(header) - 1] + [",".join(values[len(header) - 1 :])]
            if len(values) > len(header):
                raise DataFileError(
                    f"{path}: line {line} has {len(values)} fields but the header names {len(header)} ({', '.join(header)})"
                )
            rows.append((line, {name: (values[i] if i < len(values) else "") for i, name in enumerate(header)}))
    except csv.Error as exc:
        raise DataFileError(f"{path}: malformed CSV at line {reader.line_num}: {exc}") from exc
    return header, rows


def _normalise_split(value: Any, where: str) -> str:
    if not isinstance(value, str) or value.strip().lower() not in _SPLIT_ALIASES:
        raise DataFileError(f"{where}: split {value!r}; expected one of train, val (validate) or test")
    return _SPLIT_ALIASES[value.strip().lower()]


def _scan_names(folder: Path) -> set[str]:
    """File names directly in ``folder`` (empty when it does not exist)."""
    try:
        with os.scandir(folder) as entries:
            return {entry.name for entry in entries if entry.is_file()}
    except (FileNotFoundError, NotADirectoryError):
        return set()
    except OSError as exc:
        raise DataFileError(f"{folder}: cannot list the folder ({exc})") from exc


def _find_videos(folders: Sequence[Path], ids: Iterable[str], suffixes: Sequence[str]) -> dict[str, Path]:
    """For each id the first ``folder/id+suffix`` that exists (folders first, then suffixes)."""
    listings = [(folder, _scan_names(folder)) for folder in folders]
    found: dict[str, Path] = {}
    for video_id in ids:
        for folder, names in listings:
            hit = next((video_id + suffix for suffix in suffixes if video_id + suffix in names), None)
            if hit is not None:
                found[video_id] = folder / hit
                break
    return found


def _ordered_suffixes(first: str) -> tuple[str, ...]:
    return (first,) + tuple(suffix for suffix in VIDEO_SUFFIXES if suffix != first)


def _proportional_splits(ids: Sequence[str]) -> dict[str, str]:
    """Sorted ids: the first round(0.8 n) train, up to round(0.9 n) val, the rest test (halves round up)."""
    ordered = sorted(ids)
    n = len(ordered)
    train_end = math.floor(0.8 * n + 0.5)
    val_end = math.floor(0.9 * n + 0.5)
    return {video_id: ("train" if i < train_end else "val" if i < val_end else "test") for i, video_id in enumerate(ordered)}


# --- video-file corpora ---------------------------------------------------------------------


class FileCorpus(Corpus):
    """A corpus whose items are video files, decoded with :func:`~snapcap.datasets.video.read_clip`."""

    name = "files"
    root: Path

    def __init__(self, root: Path, items: list[VideoItem]) -> None:
        self.root = root
        self.items: list[VideoItem] = items
        self._by_id = {item.video_id: item for item in items}

    def __getitem__(self, video_id: str) -> VideoItem:
        try:
            return self._by_id[video_id]
        except KeyError:
            raise KeyError(f"{self.name}: no video {video_id!r}") from None

    def __contains__(self, video_id: object) -> bool:
        return video_id in self._by_id

    def clip(self, item: VideoItem, T: int, B: int, size: tuple[int, int], gray: bool = False) -> np.ndarray:
        """Frames of T snapshots of B consecutive frames, uint8 ``(T, B, H, W[, 3])`` (RGB).

        The frames are those :func:`~snapcap.datasets.video.clip_indices` picks, resized to cover
        ``size = (H, W)`` and centre-cropped.

        Raises:
            DataFileError: the video file is missing, unreadable or corrupt.
        """
        if item.path is None:
            raise DataFileError(f"{self.name}: video {item.video_id!r} has no file path")
        import cv2

        try:
            return read_clip(item.path, T, B, size, gray=gray)
        except cv2.error as exc:
            raise DataFileError(f"{item.path}: OpenCV failed to decode video {item.video_id!r} ({exc})") from exc

    def missing_videos(self) -> list[VideoItem]:
        """Items whose video file does not exist (annotated but not downloaded)."""
        return [item for item in self.items if item.path is None or not item.path.is_file()]

    def describe(self) -> dict[str, Any]:
        """Name, root folder, number of videos and split sizes (JSON-serialisable)."""
        return {**super().describe(), "root": str(self.root)}


# --- MSR-VTT ----------------------------------------------------------------------------------

_MSRVTT_PAIR = ("train_val_videodatainfo.json", "test_videodatainfo.json")
_MSRVTT_COMBINED = ("videodatainfo.json", "MSRVTT_data.json")
_MSRVTT_VIDEO_DIRS = (("videos", "all"), ("TrainValVideo",), ("TestVideo",), ())


class MSRVTT(FileCorpus):
    """MSR-VTT: 10,000 web video clips with 20 captions each.

    Videos ``video0.mp4 … video9999.mp4`` are looked for in ``root/videos/all/``, then
    ``root/TrainValVideo/`` and ``root/TestVideo/``, then ``root/`` itself; the first hit wins for
    each id. An annotated id without a file keeps the path where it was expected (in the first of
    those folders that exists) and is listed by :meth:`missing_videos`.

    Annotations are the official JSON files: each holds ``videos`` (a list of
    ``{video_id, split, category, url, ...}`` with split ``train``, ``validate`` or ``test``) and
    ``sentences`` (a list of ``{video_id, caption, sen_id}``). The split comes from those fields
    (``validate`` becomes ``val``): 6,513 / 497 / 2,990 for the full corpus. Captions keep the
    annotation order, sorted by ``sen_id`` when every caption of the video has one. Items keep
    the order of the ``videos`` lists.

    Args:
        root: the MSR-VTT folder.
        annotations: one JSON file or several (e.g. ``train_val_videodatainfo.json`` and
            ``test_videodatainfo.json``), or a folder to search. By default ``root``,
            ``root/annotation`` and ``root/annotations`` are searched, in that order, for the pair
            ``train_val_videodatainfo.json`` + ``test_videodatainfo.json`` (either alone is used
            if the other is missing), else ``videodatainfo.json``, else ``MSRVTT_data.json``.

    Raises:
        DataFileError: the root folder or annotations are missing, or an entry is malformed
            (the message names the file, the list and index, and the video id).
    """

    name = "msrvtt"

    def __init__(self, root: str | Path, annotations: str | Path | Sequence[str | Path] | None = None) -> None:
        root = _existing_dir(root, "MSR-VTT")
        self.annotation_files = self._annotation_files(root, annotations)
        videos, sentences = self._parse(self.annotation_files)
        folders = [root.joinpath(*parts) for parts in _MSRVTT_VIDEO_DIRS]
        found = _find_videos(folders, videos, _ordered_suffixes(".mp4"))
        fallback = next((folder for folder in folders[:-1] if folder.is_dir()), folders[0])
        items = [
            VideoItem(
                video_id=video_id,
                split=info["split"],
                captions=tuple(sentences.get(video_id, ())),
                path=found.get(video_id, fallback / f"{video_id}.mp4"),
                extra=info["extra"],
            )
            for video_id, info in videos.items()
        ]
        super().__init__(root, items)

    @classmethod
    def from_path(cls, root: str | Path, annotations: str | Path | Sequence[str | Path] | None = None) -> MSRVTT:
        """The same as ``MSRVTT(root, annotations)``."""
        return cls(root, annotations)

    @staticmethod
    def _annotation_files(root: Path, annotations: str | Path | Sequence[str | Path] | None) -> list[Path]:
        if annotations is not None and not isinstance(annotations, (str, os.PathLike)):
            files = [_existing_file(path, "MSR-VTT annotation") for path in annotations]
            if not files:
                raise DataFileError(f"{root}: an empty list of MSR-VTT annotation files was given")
            return files
        if annotations is not None:
            path = Path(annotations).expanduser()
            if not path.is_dir():
                return [_existing_file(path, "MSR-VTT annotation")]
            places = [path]
        else:
            places = [root, root / "annotation", root / "annotations"]
        for place in places:
            pair = [place / name for name in _MSRVTT_PAIR if (place / name).is_file()]
            if pair:
                return pair
            for name in _MSRVTT_COMBINED:
                if (place / name).is_file():
                    return [place / name]
        looked = ", ".join(str(place) for place in places)
        names = " + ".join(_MSRVTT_PAIR) + ", " + ", ".join(_MSRVTT_COMBINED)
        raise DataFileError(f"no MSR-VTT annotations found in {looked}: looked for {names}; pass annotations=")

    @staticmethod
    def _parse(files: Sequence[Path]) -> tuple[dict[str, dict[str, Any]], dict[str, list[str]]]:
        videos: dict[str, dict[str, Any]] = {}
        raw_sentences: list[tuple[Path, int, dict[str, Any]]] = []
        for path in files:
            data = _read_json(path)
            if not isinstance(data, dict):
                raise DataFileError(
                    f"{path}: top level is a {type(data).__name__}; expected an object with 'videos' and 'sentences'"
                )
            for key in ("videos", "sentences"):
                if key not in data:
                    raise DataFileError(
                        f"{path}: no {key!r} list; expected an object with 'videos' and 'sentences' (MSR-VTT format)"
                    )
                if not isinstance(data[key], list):
                    raise DataFileError(f"{path}: {key!r} is a {type(data[key]).__name__}; expected a list")
            for index, entry in enumerate(data["videos"]):
                where = f"{path}: videos[{index}]"
                if not isinstance(entry, dict):
                    raise DataFileError(f"{where} is a {type(entry).__name__}; expected an object with video_id and split")
                video_id = entry.get("video_id")
                if not isinstance(video_id, str) or not video_id:
                    raise DataFileError(f"{where}: video_id {video_id!r}; expected a non-empty string such as 'video0'")
                where += f" ({video_id})"
                if "split" not in entry:
                    raise DataFileError(f"{where}: no 'split'; expected train, validate or test")
                split = _normalise_split(entry["split"], where)
                if video_id in videos:
                    if videos[video_id]["split"] != split:
                        raise DataFileError(
                            f"{where}: split {split!r} but {videos[video_id]['source']} gives {videos[video_id]['split']!r}"
                        )
                    continue
                extra = {key: value for key, value in entry.items() if key not in ("video_id", "split")}
                extra["annotation"] = str(path)
                videos[video_id] = {"split": split, "extra": extra, "source": f"{path}: videos[{index}]"}
            raw_sentences.extend((path, index, entry) for index, entry in enumerate(data["sentences"]))
        by_video: dict[str, list[tuple[Any, str]]] = {}
        for path, index, entry in raw_sentences:
            where = f"{path}: sentences[{index}]"
            if not isinstance(entry, dict):
                raise DataFileError(f"{where} is a {type(entry).__name__}; expected an object with video_id and caption")
            video_id, caption = entry.get("video_id"), entry.get("caption")
            if not isinstance(video_id, str) or not video_id:
                raise DataFileError(f"{where}: video_id {video_id!r}; expected a non-empty string")
            if video_id not in videos:
                raise DataFileError(f"{where}: video_id {video_id!r} is not in any 'videos' list of {', '.join(map(str, files))}")
            if not isinstance(caption, str):
                raise DataFileError(f"{where} ({video_id}): caption {caption!r}; expected a string")
            sen_id = entry.get("sen_id")
            if sen_id is not None and (isinstance(sen_id, bool) or not isinstance(sen_id, (int, float))):
                raise DataFileError(f"{where} ({video_id}): sen_id {sen_id!r}; expected a number")
            by_video.setdefault(video_id, []).append((sen_id, caption.strip()))
        sentences: dict[str, list[str]] = {}
        for video_id, entries in by_video.items():
            if all(sen_id is not None for sen_id, _ in entries):
                entries = sorted(entries, key=lambda pair: pair[0])  # stable: ties keep file order
            sentences[video_id] = [caption for _, caption in entries]
        for info in videos.values():
            del info["source"]
        return videos, sentences


# --- MSVD -------------------------------------------------------------------------------------

_MSVD_TXT = "AllVideoDescriptions.txt"
_MSVD_CSV = "MSR Video Description Corpus.csv"
_MSVD_CSV_COLUMNS = ("VideoID", "Start", "End", "Language", "Description")
_MSVD_MAPPING = "youtube_mapping.txt"
_VID_RE = re.compile(r"^vid(\d+)$")


class MSVD(FileCorpus):
    """MSVD (Microsoft Research Video Description corpus, "YouTube2Text"): 1,970 YouTube clips.

    Videos are ``root/YouTubeClips/<clip>.avi`` (or ``root/<clip>.avi``), where a clip name is
    ``<YouTube id>_<start>_<end>`` (e.g. ``-4wsuPCjDBc_5_15``).

    Captions come from ``AllVideoDescriptions.txt`` (lines ``<clip_name> <caption>``; ``#``
    lines are comments) or from Microsoft's ``MSR Video Description Corpus.csv`` (columns
    VideoID, Start, End, WorkerID, Source, AnnotationTime, Language, Description; only the
    English rows are kept, the clip name being ``f"{VideoID}_{Start}_{End}"``). Captions of clips
    outside the corpus (the CSV describes more clips than the 1,970) are ignored and counted in
    ``unmatched_captions``.

    Which clips, and the split:

    * with ``youtube_mapping.txt`` (lines ``<clip_name> vid<N>``): the corpus is the mapped
      clips, in N order; vid1..vid1200 are train, vid1201..vid1300 val, vid1301 and above test —
      the standard 1,200 / 100 / 670 split.
    * without it: the corpus is the ``.avi`` files found (or, when there are none, the clips
      named in the captions), sorted by clip name; the first 1,200 are train, the next 100 val
      and the rest test. The counts match the usual split but **the membership does not**: the
      standard split follows the mapping's order, not the alphabetical one. With fewer than
      1,970 clips the counts are not scaled: train fills first, then val, then test.

    Args:
        root: the MSVD folder.
        captions: the caption file (``.txt`` or ``.csv``). By default ``root`` (then
            ``root/annotations``) is searched for ``AllVideoDescriptions.txt``, then for
            ``MSR Video Description Corpus.csv``; with neither, clips get no captions.
        mapping: the ``youtube_mapping.txt`` file; by default it is used when it is in
            ``root`` (or ``root/annotations``).

    Raises:
        DataFileError: the root folder or a named file is missing, or a caption/mapping line is
            malformed (the message names the file and line number).
    """

    name = "msvd"

    def __init__(self, root: str | Path, captions: str | Path | None = None, mapping: str | Path | None = None) -> None:
        root = _existing_dir(root, "MSVD")
        places = [root, root / "annotations"]
        if captions is None:
            captions = next(
                (place / name for name in (_MSVD_TXT, _MSVD_CSV) for place in places if (place / name).is_file()), None
            )
        if mapping is None:
            mapping = next((place / _MSVD_MAPPING for place in places if (place / _MSVD_MAPPING).is_file()), None)
        self.captions_file = None if captions is None else _existing_file(captions, "MSVD caption")
        self.mapping_file = None if mapping is None else _existing_file(mapping, "MSVD mapping")
        by_clip: dict[str, list[str]] = {}
        if self.captions_file is not None:
            if self.captions_file.suffix.lower() == ".csv":
                by_clip = self._parse_csv(self.captions_file)
            else:
                by_clip = self._parse_txt(self.captions_file)
        folders = [root / "YouTubeClips", root]
        if self.mapping_file is not None:
            numbered = self._parse_mapping(self.mapping_file)
            clips = [clip for clip, _ in numbered]
            splits = {clip: ("train" if n <= 1200 else "val" if n <= 1300 else "test") for clip, n in numbered}
            extras = {clip: {"vid": f"vid{n}"} for clip, n in numbered}
        else:
            on_disk = {Path(name).stem for folder in folders for name in _scan_names(folder) if name.lower().endswith(".avi")}
            clips = sorted(on_disk if on_disk else by_clip)
            splits = {clip: ("train" if i < 1200 else "val" if i < 1300 else "test") for i, clip in enumerate(clips)}
            extras = {clip: {} for clip in clips}
        found = _find_videos(folders, clips, _ordered_suffixes(".avi"))
        fallback = folders[0] if folders[0].is_dir() else root
        known = set(clips)
        self.unmatched_captions = sum(len(texts) for clip, texts in by_clip.items() if clip not in known)
        items = [
            VideoItem(
                video_id=clip,
                split=splits[clip],
                captions=tuple(by_clip.get(clip, ())),
                path=found.get(clip, fallback / f"{clip}.avi"),
                extra=extras[clip],
            )
            for clip in clips
        ]
        super().__init__(root, items)

    @classmethod
    def from_path(cls, root: str | Path, captions: str | Path | None = None, mapping: str | Path | None = None) -> MSVD:
        """The same as ``MSVD(root, captions, mapping)``."""
        return cls(root, captions, mapping)

    @staticmethod
    def _parse_txt(path: Path) -> dict[str, list[str]]:
        by_clip: dict[str, list[str]] = {}
        for number, line in enumerate(_read_text(path).splitlines(), start=1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            parts = line.split(None, 1)
            if len(parts) < 2 or not parts[1].strip():
                raise DataFileError(f"{path}: line {number} ({line[:60]!r}) has no caption; expected '<clip_name> <caption>'")
            by_clip.setdefault(parts[0], []).append(parts[1].strip())
        return by_clip

    @staticmethod
    def _parse_csv(path: Path) -> dict[str, list[str]]:
        header, rows = _read_csv(path, surplus_into="Description")
        missing = [column for column in _MSVD_CSV_COLUMNS if column not in header]
        if missing:
            raise DataFileError(
                f"{path}: no column {', '.join(missing)}; the header is {', '.join(header) or '(empty)'}; expected the "
                "MSR Video Description Corpus columns "
                "VideoID, Start, End, WorkerID, Source, AnnotationTime, Language, Description"
            )
        by_clip: dict[str, list[str]] = {}
        for line, row in rows:
            if row["Language"].strip().lower() != "english":
                continue
            video, start, end = row["VideoID"].strip(), row["Start"].strip(), row["End"].strip()
            if not video or not start.lstrip("-").isdigit() or not end.lstrip("-").isdigit():
                raise DataFileError(
                    f"{path}: line {line}: VideoID {video!r}, Start {start!r}, End {end!r}; expected an id and integer seconds"
                )
            text = row["Description"].strip()
            if text:
                by_clip.setdefault(f"{video}_{int(start)}_{int(end)}", []).append(text)
        return by_clip

    @staticmethod
    def _parse_mapping(path: Path) -> list[tuple[str, int]]:
        numbered: list[tuple[str, int]] = []
        seen_clips: dict[str, int] = {}
        seen_numbers: dict[int, int] = {}
        for number, line in enumerate(_read_text(path).splitlines(), start=1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            parts = line.split()
            match = _VID_RE.match(parts[1]) if len(parts) == 2 else None
            if match is None or int(match.group(1)) < 1:
                raise DataFileError(f"{path}: line {number} ({line[:60]!r}); expected '<clip_name> vid<N>' with N >= 1")
            clip, vid = parts[0], int(match.group(1))
            if clip in seen_clips:
                raise DataFileError(f"{path}: line {number}: clip {clip!r} is already mapped on line {seen_clips[clip]}")
            if vid in seen_numbers:
                raise DataFileError(f"{path}: line {number}: vid{vid} is already used on line {seen_numbers[vid]}")
            seen_clips[clip], seen_numbers[vid] = number, number
            numbered.append((clip, vid))
        if not numbered:
            raise DataFileError(f"{path}: no mapping lines; expected '<clip_name> vid<N>' lines")
        return sorted(numbered, key=lambda pair: pair[1])


# --- any folder of videos ---------------------------------------------------------------------

_ID_COLUMNS = ("video_id", "video", "file")


def _normalise_id(value: str) -> str:
    """A caption file's video reference as a folder id: '/'-separated, no './', no video suffix."""
    value = value.strip().replace("\\", "/")
    while value.startswith("./"):
        value = value[2:]
    lowered = value.lower()
    for suffix in VIDEO_SUFFIXES:
        if lowered.endswith(suffix):
            return value[: -len(suffix)]
    return value


class VideoFolder(FileCorpus):
    """Any folder of videos with captions from a CSV or JSON file.

    Videos are the files under ``root`` (searched recursively; names starting with ``.`` are
    skipped) whose suffix is one of :data:`~snapcap.datasets.video.VIDEO_SUFFIXES` (any case).
    A video's id is its path relative to ``root`` without the suffix, ``/``-separated
    (``cats/cat01.mp4`` -> ``cats/cat01``). Items are sorted by id.

    Caption files (a video reference may carry the file suffix and a leading ``./``):

    * CSV with a header: a ``video_id`` (or ``video`` / ``file``) column, a ``caption`` column and
      optionally a ``split`` column (train / val / test; validate, validation, valid, dev mean val).
      Several rows for one video give several captions, in file order.
    * JSON: either ``{video_id: [caption, ...]}`` (a single string is one caption), or a list of
      ``{"video_id": ..., "caption": ...[, "split": ...]}`` objects.

    Videos without captions are kept with no captions. Videos whose split is not given get one
    deterministically: their ids, sorted, the first round(0.8 n) train, the next up to
    round(0.9 n) val and the rest test (about 80 / 10 / 10 %; halves round up).

    Args:
        root: the folder of videos.
        captions: the caption file (``.csv`` or ``.json``), or None for a corpus without captions.

    Raises:
        DataFileError: the folder or caption file is missing, a caption entry is malformed, it
            names a video that is not in the folder, or one video gets two different splits
            (the message names the file, the line or index, and the id).
    """

    name = "folder"

    def __init__(self, root: str | Path, captions: str | Path | None = None) -> None:
        root = _existing_dir(root, "video")
        videos = self._scan(root)
        self.captions_file = None if captions is None else _existing_file(captions, "caption")
        by_video: dict[str, list[str]] = {}
        given: dict[str, tuple[str, str]] = {}  # id -> (split, where it was given)
        if self.captions_file is not None:
            suffix = self.captions_file.suffix.lower()
            if suffix == ".csv":
                entries = self._entries_csv(self.captions_file)
            elif suffix == ".json":
                entries = self._entries_json(self.captions_file)
            else:
                raise DataFileError(f"{self.captions_file}: unknown caption file type {suffix!r}; expected .csv or .json")
            for where, video_id, caption, split in entries:
                if video_id not in videos:
                    raise DataFileError(f"{where}: video {video_id!r} is not in {root} (no such video file)")
                if caption:
                    by_video.setdefault(video_id, []).append(caption)
                else:
                    by_video.setdefault(video_id, [])
                if split is not None:
                    split = _normalise_split(split, f"{where} ({video_id})")
                    if video_id in given and given[video_id][0] != split:
                        raise DataFileError(
                            f"{where}: video {video_id!r} has split {split!r} "
                            f"but {given[video_id][1]} gives {given[video_id][0]!r}"
                        )
                    given.setdefault(video_id, (split, where))
        defaults = _proportional_splits([video_id for video_id in videos if video_id not in given])
        items = [
            VideoItem(
                video_id=video_id,
                split=given[video_id][0] if video_id in given else defaults[video_id],
                captions=tuple(by_video.get(video_id, ())),
                path=path,
                extra={"split_source": "captions" if video_id in given else "default"},
            )
            for video_id, path in sorted(videos.items())
        ]
        super().__init__(root, items)

    @classmethod
    def from_path(cls, root: str | Path, captions: str | Path | None = None) -> VideoFolder:
        """The same as ``VideoFolder(root, captions)``."""
        return cls(root, captions)

    @staticmethod
    def _scan(root: Path) -> dict[str, Path]:
        videos: dict[str, Path] = {}
        for folder, dirs, files in os.walk(root):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in sorted(files):
                if name.startswith(".") or not name.lower().endswith(VIDEO_SUFFIXES):
                    continue
                path = Path(folder) / name
                relative = path.relative_to(root)
                video_id = "/".join(relative.parent.parts + (relative.name[: -len(Path(name).suffix)],))
                if video_id in videos:
                    raise DataFileError(
                        f"{root}: two videos have the id {video_id!r}: {videos[video_id].name} and {name}; rename one"
                    )
                videos[video_id] = path
        return videos

    @staticmethod
    def _entries_csv(path: Path) -> list[tuple[str, str, str, str | None]]:
        header, rows = _read_csv(path)
        lowered = {name.lower(): name for name in header}
        id_column = next((lowered[name] for name in _ID_COLUMNS if name in lowered), None)
        if id_column is None or "caption" not in lowered:
            raise DataFileError(
                f"{path}: the header is {', '.join(header) or '(empty)'}; expected a video_id (or video / file) column "
                "and a caption column (and optionally split)"
            )
        caption_column, split_column = lowered["caption"], lowered.get("split")
        entries = []
        for line, row in rows:
            where = f"{path}: line {line}"
            video_id = _normalise_id(row[id_column])
            if not video_id:
                raise DataFileError(f"{where}: empty {id_column} field")
            split = row[split_column].strip() if split_column is not None else ""
            entries.append((where, video_id, row[caption_column].strip(), split or None))
        return entries

    @staticmethod
    def _entries_json(path: Path) -> list[tuple[str, str, str, str | None]]:
        data = _read_json(path)
        entries: list[tuple[str, str, str, str | None]] = []
        if isinstance(data, dict):
            for key, value in data.items():
                where = f"{path}: entry {key!r}"
                texts = [value] if isinstance(value, str) else value
                if not isinstance(texts, list) or not all(isinstance(text, str) for text in texts):
                    raise DataFileError(f"{where}: {type(value).__name__} value; expected a list of caption strings")
                video_id = _normalise_id(key)
                if not texts:
                    entries.append((where, video_id, "", None))
                entries.extend((where, video_id, text.strip(), None) for text in texts)
            return entries
        if not isinstance(data, list):
            raise DataFileError(
                f"{path}: top level is a {type(data).__name__}; expected {{video_id: [captions]}} or a list of "
                "{video_id, caption[, split]} objects"
            )
        for index, entry in enumerate(data):
            where = f"{path}: [{index}]"
            if not isinstance(entry, dict):
                raise DataFileError(f"{where} is a {type(entry).__name__}; expected an object with video_id and caption")
            key = next((name for name in _ID_COLUMNS if name in entry), None)
            raw_id = entry.get(key) if key else None
            if not isinstance(raw_id, str) or not _normalise_id(raw_id):
                raise DataFileError(f"{where}: video_id {raw_id!r}; expected a non-empty string (key video_id, video or file)")
            video_id = _normalise_id(raw_id)
            caption = entry.get("caption", "")
            if not isinstance(caption, str):
                raise DataFileError(f"{where} ({video_id}): caption {caption!r}; expected a string")
            split = entry.get("split")
            if split is not None and not isinstance(split, str):
                raise DataFileError(f"{where} ({video_id}): split {split!r}; expected train, val or test")
            entries.append((where, video_id, caption.strip(), split or None))
        return entries


# --- SCI benchmark scenes ---------------------------------------------------------------------

_BENCHMARK_VIDEO_KEY = "orig"


class SCIBenchmark(Corpus):
    """The video-SCI simulation benchmark: one scene per .mat file (``orig`` + ``mask``).

    Each file holds ``orig``, the ground-truth video H x W x F (or H x W x 3 x F for colour
    scenes), and usually ``mask``, the coding masks H x W x B (any key of
    :data:`snapcap.cacti.masks.MASK_KEYS`). ``orig`` is uint8 in the public files; other numeric
    types are rounded and clipped to 0..255 (float videos in [0, 1] are first scaled by 255).

    Items: video_id = the file stem, split ``test``, no captions; ``extra`` holds ``video_key``,
    ``mask_key`` (None when the file has no mask), ``frames`` (F), ``size`` ((H, W)) and ``rgb``.

    Args:
        paths: a .mat file, a folder (its ``*.mat`` files, sorted), or a list of either.

    Raises:
        DataFileError: a path is missing, or a file is unreadable or has no 3- or 4-axis ``orig``
            (:class:`~snapcap.errors.MissingKeyError` when the key is absent).
    """

    name = "benchmark"

    def __init__(self, paths: str | Path | Sequence[str | Path]) -> None:

        listed = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
        files: list[Path] = []
        for entry in listed:
            entry = Path(entry).expanduser()
            if entry.is_dir():
                found = sorted(entry.glob("*.mat"))
                if not found:
                    raise DataFileError(f"{entry}: no .mat files in this folder")
                files.extend(found)
            else:
                files.append(_existing_file(entry, "benchmark .mat"))
        if not files:
            raise DataFileError("SCIBenchmark: no .mat files were given")
        self.files = files
        items = []
        for path in files:
            variables = list_mat_variables(path)
            if _BENCHMARK_VIDEO_KEY not in variables:
                listing = ", ".join(f"{k} {v[0]}" for k, v in variables.items()) or "nothing"
                raise MissingKeyError(f"{path}: no variable 'orig' (the ground-truth video H x W x F); the file holds {listing}")
            shape = variables[_BENCHMARK_VIDEO_KEY][0]
            if not (len(shape) == 3 or (len(shape) == 4 and shape[2] == 3)):
                raise DataFileError(f"{path}: 'orig' has shape {shape}; expected H x W x F (or H x W x 3 x F for colour)")
            mask_key = next((key for key in MASK_KEYS if key in variables), None)
            extra = {
                "video_key": _BENCHMARK_VIDEO_KEY,
                "mask_key": mask_key,
                "frames": int(shape[-1]),
                "size": (int(shape[0]), int(shape[1])),
                "rgb": len(shape) == 4,
            }
            items.append(VideoItem(video_id=path.stem, split="test", captions=(), path=path, extra=extra))
        ids = [item.video_id for item in items]
        duplicates = sorted({video_id for video_id in ids if ids.count(video_id) > 1})
        if duplicates:
            raise DataFileError(f"SCIBenchmark: several files share the stem {', '.join(duplicates)}; ids must be unique")
        self.items: list[VideoItem] = items
        self._cache: tuple[Path, np.ndarray] | None = None

    @classmethod
    def from_path(cls, paths: str | Path | Sequence[str | Path]) -> SCIBenchmark:
        """The same as ``SCIBenchmark(paths)``."""
        return cls(paths)

    def _video(self, item: VideoItem) -> np.ndarray:
        """The stored video as ``(F, H, W)`` or ``(F, H, W, 3)`` uint8 (the last file is cached)."""

        if item.path is None:
            raise DataFileError(f"benchmark scene {item.video_id!r} has no file path")
        if self._cache is not None and self._cache[0] == item.path:
            return self._cache[1]
        key = item.extra.get("video_key", _BENCHMARK_VIDEO_KEY)
        array = load_mat(item.path, [key])[key]
        if array.ndim == 3:
            video = np.moveaxis(array, -1, 0)
        elif array.ndim == 4 and array.shape[2] == 3:
            video = np.transpose(array, (3, 0, 1, 2))
        else:
            raise DataFileError(f"{item.path}: {key!r} has shape {array.shape}; expected H x W x F (or H x W x 3 x F)")
        checked_pixels(video, f"{item.path}: {key!r}")
        if video.dtype != np.uint8:
            if video.dtype.kind == "f" and np.nanmax(video) <= 1.0:
                video = video * 255.0
            video = np.clip(np.rint(video), 0, 255).astype(np.uint8)
        video = np.ascontiguousarray(video)
        self._cache = (item.path, video)
        return video

    def clip(
        self,
        item: VideoItem,
        T: int,
        B: int,
        size: tuple[int, int] | None = None,
        gray: bool = True,
        resize: bool = False,
    ) -> np.ndarray:
        """T snapshots of B frames of the stored video, uint8 ``(T, B, H, W)`` (``(..., 3)`` unless gray).

        With F >= T·B stored frames, the first T·B frames make consecutive snapshots (snapshot
        k = frames kB .. kB+B−1, the benchmark's own protocol, so with the file's ``mask`` they
        reproduce its ``meas``); with fewer, :func:`~snapcap.datasets.video.clip_indices` picks
        overlapping windows (or repeats frames when F < B).

        Args:
            size: (H, W); None or the stored size keeps the frames as they are. Another size
                needs ``resize=True`` (resize to cover, then centre-crop).
            gray: gray frames; gray scenes asked for RGB get the gray level in all three channels.
            resize: allow a size other than the stored one.

        Raises:
            ShapeError: ``size`` differs from the stored size and ``resize`` is False.
            DataFileError: the file cannot be read.
        """
        if T < 1 or B < 1:
            raise InvalidValueError(f"T and B must be >= 1, got T={T}, B={B}")
        video = self._video(item)
        stored = video.shape[1:3]
        if size is not None and tuple(size) != stored and not resize:
            raise ShapeError(
                f"{item.path}: the scene is {stored[0]}x{stored[1]} but size {tuple(size)} was asked; pass resize=True to resize"
            )
        frames = video.shape[0]
        if frames >= T * B:
            indices = np.arange(T * B).reshape(T, B)
        else:
            indices = clip_indices(frames, T, B)
        picked = video[indices.ravel()]
        if gray and picked.ndim == 4:
            import cv2

            picked = np.stack([cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) for frame in picked])
        elif not gray and picked.ndim == 3:
            picked = np.repeat(picked[..., None], 3, axis=-1)
        if size is not None and tuple(size) != stored:
            picked = np.stack([resize_crop(frame, (int(size[0]), int(size[1]))) for frame in picked])
        return np.ascontiguousarray(picked.reshape((T, B) + picked.shape[1:]))

    def stored_masks(self, item: VideoItem, B: int | None = None) -> np.ndarray:
        """The scene file's own coding masks, float32 ``(B, H, W)`` (the first B when given).

        Raises:
            MissingKeyError: the file holds no mask.
            ShapeError: the file holds fewer than B masks.
        """

        if item.path is None:
            raise DataFileError(f"benchmark scene {item.video_id!r} has no file path")
        if item.extra.get("mask_key") is None:
            raise MissingKeyError(f"{item.path}: no mask variable (looked for {', '.join(MASK_KEYS)})")
        return load_masks(item.path, key=item.extra["mask_key"], B=B)

    def describe(self) -> dict[str, Any]:
        """Name, files, number of scenes and split sizes (JSON-serialisable)."""
        return {
            "name": self.name,
            "videos": len(self.items),
            "splits": split_counts(self.items),
            "files": [str(p) for p in self.files],
        }


# --- registry ---------------------------------------------------------------------------------

CORPORA: dict[str, type[Corpus]] = {
    "msrvtt": MSRVTT,
    "msvd": MSVD,
    "folder": VideoFolder,
    "benchmark": SCIBenchmark,
    "synthetic": SyntheticCorpus,
}
"""Corpus kind -> class: the one registry of corpora (the command line's ``--corpus`` reads it).

Add a corpus by adding its class here; its constructor's arguments named ``root``,
``annotations``, ``captions``, ``mapping``, ``paths``, ``num_videos`` or ``seed`` are filled from
the matching command-line flags (:data:`snapcap.cli.options.CORPUS_FLAGS`).
"""


def _corpus_class(kind: str) -> type[Corpus]:
    key = kind.strip().lower() if isinstance(kind, str) else kind
    if key in CORPORA:
        return CORPORA[key]
    raise ConfigError(f"unknown corpus kind {kind!r}; expected one of {', '.join(CORPORA)}")


def open_corpus(kind: str, **kwargs: Any) -> Corpus:
    """A corpus by kind name: ``msrvtt``, ``msvd``, ``folder``, ``benchmark`` or ``synthetic``.

    ``kwargs`` go to the class's constructor (e.g. ``open_corpus("msvd", root=..., mapping=...)``).

    Raises:
        ConfigError: an unknown kind, or arguments the corpus does not take.
        DataFileError: the corpus files are missing or malformed.
    """
    cls = _corpus_class(kind)
    try:
        inspect.signature(cls).bind(**kwargs)
    except TypeError as exc:
        params = ", ".join(name for name in inspect.signature(cls).parameters)
        raise ConfigError(f"corpus kind {kind!r} takes ({params}); got {', '.join(kwargs) or 'no arguments'}: {exc}") from None
    return cls(**kwargs)
