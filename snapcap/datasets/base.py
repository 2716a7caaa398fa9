"""What every corpus gives the dataset writer: items (id, split, captions) and their frames.

A corpus is a list of :class:`VideoItem` plus a way to turn one item into the frames of T
snapshots of B consecutive frames each, ``(T, B, H, W)`` gray or ``(T, B, H, W, 3)`` RGB, uint8.
Video-file corpora decode with :func:`snapcap.datasets.video.read_clip`; the procedural corpus
renders exactly those frames; the SCI benchmark corpus slices its stored video.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

__all__ = ["SPLITS", "VideoItem", "Corpus", "split_counts"]

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class VideoItem:
    """One video of a corpus.

    Attributes:
        video_id: the corpus's own identifier (``video7010``, ``-4wsuPCjDBc_5_15``...).
        split: ``train``, ``val`` or ``test``.
        captions: reference captions (may be empty, e.g. SCI benchmark scenes).
        path: the video file, when the corpus has files.
        extra: corpus-specific facts (procedural scene seed, .mat key, annotations...).
    """

    video_id: str
    split: str
    captions: tuple[str, ...] = ()
    path: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)


class Corpus:
    """Base class of corpora: ``items`` and :meth:`clip`.

    Subclasses set ``name`` and ``items`` and implement :meth:`clip`.
    """

    name: str = "corpus"
    items: Sequence[VideoItem] = ()

    def __len__(self) -> int:
        return len(self.items)

    def clip(self, item: VideoItem, T: int, B: int, size: tuple[int, int], gray: bool = False) -> np.ndarray:
        """Frames of T snapshots of B consecutive frames: uint8 ``(T, B, H, W[, 3])``.

        Raises :class:`snapcap.errors.DataFileError` for an unreadable or corrupt video.
        """
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """A JSON-serialisable description recorded in dataset files."""
        return {"name": self.name, "videos": len(self.items), "splits": split_counts(self.items)}

    def select(self, split: str | None = None, limit: int | None = None) -> list[VideoItem]:
        """Items of one split (all when None), at most ``limit`` of them, in corpus order."""
        chosen = [item for item in self.items if split is None or item.split == split]
        return chosen if limit is None else chosen[:limit]


def split_counts(items: Sequence[VideoItem]) -> dict[str, int]:
    counts = {name: 0 for name in SPLITS}
    for item in items:
        counts[item.split] = counts.get(item.split, 0) + 1
    return counts
