"""Single frames of random procedural scenes with what is in them: the pretraining data of the
tiny CLIP tower (:mod:`snapcap.caption.pretrain`).

Each frame is one instant of a :func:`~snapcap.datasets.synthetic.corpus.random_scene`; its labels
say, for each of the :data:`~snapcap.datasets.synthetic.scene.COLORS` (colours are unique within
a scene, so a colour names an object), whether an object of that colour is in view, its shape,
centre, size and, for shapes whose rotation shows, its angle. These are the things a caption of
the corpus is made of; a tower that reads them off one frame gives a video captioner what CLIP
gives the paper's: features that already know colours, shapes and where things are.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from snapcap.datasets.synthetic.corpus import NOMINAL_FRAMES, random_scene
from snapcap.datasets.synthetic.scene import COLORS, SHAPES, SYMMETRY, render_times
from snapcap.errors import InvalidValueError

__all__ = ["FrameLabels", "labelled_frames", "LABEL_COLORS"]

LABEL_COLORS = tuple(COLORS)
"""The colour slots of :class:`FrameLabels`, in order."""


@dataclass(frozen=True)
class FrameLabels:
    """What is in view in each of ``n`` frames, per colour slot (``(n, len(LABEL_COLORS))``).

    Attributes:
        present: 1 where an object of that colour is in view (its centre inside the frame).
        shape: index into :data:`~snapcap.datasets.synthetic.scene.SHAPES`, -1 where absent.
        geometry: ``(n, colours, 3)``: centre y, centre x (frame fractions) and 5 x the radius.
        angle: ``(n, colours, 2)``: cos and sin of the angle times the shape's symmetry order
            (what a rotation changes in the picture), 0 for round shapes.
        rotates: 1 where ``angle`` is defined (a present object whose rotation shows).
    """

    present: np.ndarray
    shape: np.ndarray
    geometry: np.ndarray
    angle: np.ndarray
    rotates: np.ndarray


def labelled_frames(
    seed: int | tuple[int, ...], count: int, size: int = 64, max_objects: int = 2
) -> tuple[np.ndarray, FrameLabels]:
    """``count`` frames (float32 ``(count, size, size, 3)`` in [0, 1]) of fresh random scenes, one
    instant each, and their labels. Deterministic given ``seed`` (an int or a tuple of ints)."""
    if count < 1 or size < 8 or max_objects < 1:
        raise InvalidValueError(f"need count >= 1, size >= 8, max_objects >= 1; got {count}, {size}, {max_objects}")
    rng = np.random.default_rng(seed)
    slots = len(LABEL_COLORS)
    frames = np.zeros((count, size, size, 3), np.float32)
    present = np.zeros((count, slots), np.float32)
    shape = np.full((count, slots), -1, np.int64)
    geometry = np.zeros((count, slots, 3), np.float32)
    angle = np.zeros((count, slots, 2), np.float32)
    rotates = np.zeros((count, slots), np.float32)
    for i in range(count):
        scene = random_scene(int(rng.integers(2**31 - 1)), max_objects, frames=NOMINAL_FRAMES)
        t = float(rng.uniform(0, NOMINAL_FRAMES - 1))
        frames[i] = render_times(scene, [t], size, size, rgb=True)[0]
        times = np.array([t])
        for obj in scene.objects:
            if not bool(np.atleast_1d(obj.visible(times))[0]):
                continue
            y, x, radius, turn = (float(np.atleast_1d(v)[0]) for v in obj.states(times))
            if not (0.0 <= y <= 1.0 and 0.0 <= x <= 1.0):
                continue
            k = LABEL_COLORS.index(obj.color)
            present[i, k] = 1.0
            shape[i, k] = SHAPES.index(obj.shape)
            geometry[i, k] = (y, x, 5.0 * radius)
            order = SYMMETRY[obj.shape]
            if order:
                angle[i, k] = (math.cos(order * turn), math.sin(order * turn))
                rotates[i, k] = 1.0
    return frames, FrameLabels(present, shape, geometry, angle, rotates)
