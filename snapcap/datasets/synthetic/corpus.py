"""Random scenes and the procedural corpus built from them.

:func:`random_scene` draws a scene from a seed, with every temporal fact and its time-reversed
twin equally likely; :class:`SyntheticCorpus` is the default offline corpus: random scenes,
their captions and V2C annotations, and clips rendered at any size.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from snapcap.datasets.base import SPLITS, Corpus, VideoItem
from snapcap.datasets.synthetic.facts import describe_scene
from snapcap.datasets.synthetic.language import caption_scene, commonsense
from snapcap.datasets.synthetic.scene import (
    COLORS,
    DIRECTIONS,
    SHAPES,
    Scene,
    SceneObject,
    render_times,
    time_reversed,
    timeline_times,
)
from snapcap.datasets.video import clip_indices
from snapcap.errors import InvalidValueError

__all__ = ["NOMINAL_FRAMES", "random_scene", "SyntheticCorpus"]

# --- random scenes --------------------------------------------------------------------------------

_SIZE_RANGES = {"small": (0.06, 0.085), "medium": (0.095, 0.125), "large": (0.14, 0.18)}
_SPEED_RANGES = {"slow": (0.16, 0.26), "medium": (0.36, 0.5), "fast": (0.65, 0.85)}
_ROTATING = ("square", "triangle", "bar")


def _fit_start(rng: np.random.Generator, shift: float, lo: float, hi: float) -> tuple[float, float]:
    """A start coordinate so that start and start + shift lie in [lo, hi]; the shift is shrunk to fit."""
    room = max(hi - lo, 0.0)
    if abs(shift) > room:
        shift = math.copysign(room * 0.98, shift)
    first = lo - min(shift, 0.0)
    last = hi - max(shift, 0.0)
    return float(rng.uniform(first, max(first, last))), shift


def _random_object(
    rng: np.random.Generator, place: np.random.Generator, color: str, frames: int, main: bool, max_speed: float | None
) -> SceneObject:
    """One object: ``rng`` draws what it does (kind, timing, direction, speed), ``place`` where it is
    (so redrawing a placement that overlaps another object keeps the mix of facts unbiased)."""
    last = frames - 1
    events = frames >= 8
    kind = str(rng.choice(["move", "spin", "grow", "still"], p=[0.6, 0.2, 0.2, 0.0] if main else [0.45, 0.15, 0.15, 0.25]))
    shape = str(rng.choice(_ROTATING if kind == "spin" else SHAPES))
    grow_sign = 0
    if kind == "grow":
        grow_sign = 1 if rng.random() < 0.5 else -1
        size_class = str(rng.choice(["small", "medium"] if grow_sign > 0 else ["medium", "large"]))
    else:
        size_class = str(rng.choice(["small", "medium", "large"]))
    size = float(rng.uniform(*_SIZE_RANGES[size_class]))
    angle = float(rng.uniform(0, 2 * math.pi)) if kind == "spin" else float(rng.uniform(-0.3, 0.3))
    appear, disappear, start, stop = 0, None, 0, None
    if events:
        r = float(rng.random())
        if kind == "still":
            if r < 0.5:
                appear = int(round(rng.uniform(0.25, 0.55) * frames))
            else:
                disappear = int(round(rng.uniform(0.45, 0.75) * frames))
        elif r < 0.15:
            appear = int(round(rng.uniform(0.25, 0.55) * frames))
        elif r < 0.3:
            disappear = int(round(rng.uniform(0.45, 0.75) * frames))
    if kind != "move":
        if kind == "still":
            margin = size + 0.03
            position = (float(place.uniform(margin, 1 - margin)), float(place.uniform(margin, 1 - margin)))
            return SceneObject(shape, color, size, position, angle=angle, appear=appear, disappear=disappear)
        start = appear
        stop = None if disappear is None else disappear - 1
        length = max(1, (last if stop is None else stop) - start)
        spin = growth = 0.0
        peak = size
        if kind == "spin":
            spin = float(rng.uniform(0.6, 1.4) * math.pi * rng.choice([-1.0, 1.0]) / length)
        else:
            factor = float(rng.uniform(1.7, 2.3) if grow_sign > 0 else 1.0 / rng.uniform(1.7, 2.3))
            growth = factor ** (1.0 / length) - 1.0
            peak = size * max(1.0, factor)
        margin = peak + 0.03
        position = (float(place.uniform(margin, 1 - margin)), float(place.uniform(margin, 1 - margin)))
        return SceneObject(
            shape,
            color,
            size,
            position,
            spin=spin,
            growth=growth,
            appear=appear,
            disappear=disappear,
            start=start,
            stop=stop,
            angle=angle,
        )

    # a moving object
    straight = rng.random() < 0.8
    directions = ["right", "left", "up", "down"] if straight else ["up-right", "up-left", "down-right", "down-left"]
    direction = str(rng.choice(directions))
    unit = DIRECTIONS[direction]
    speed_class = str(rng.choice(["slow", "medium", "fast"], p=[0.3, 0.35, 0.35]))
    mode = float(rng.random())
    if not events:
        mode = 1.0
    start = appear  # an object that appears late starts moving as it appears
    stop = None if disappear is None else disappear - 1  # and one that disappears stops as it goes
    if appear == 0 and disappear is None and events:
        timing = float(rng.random())
        if timing < 0.12:
            start = int(round(rng.uniform(0.25, 0.45) * frames))
        elif timing < 0.24:
            stop = int(round(rng.uniform(0.55, 0.75) * frames))
    length = max(1, (last if stop is None else stop) - start)
    spin = 0.0
    if shape in _ROTATING and rng.random() < 0.2:
        spin = float(rng.uniform(0.6, 1.2) * math.pi * rng.choice([-1.0, 1.0]) / length)
    bounce = True
    accel = (0.0, 0.0)
    margin = size + 0.03
    if mode < 0.18 and appear == 0 and disappear is None:  # bounces off a wall
        axis = 1 if abs(unit[1]) >= abs(unit[0]) else 0
        total = float(rng.uniform(0.6, 0.95))
        before = float(rng.uniform(0.3, 0.55))
        total = min(total, (1 - 2 * size - 0.05) / (1 - before) / abs(unit[axis]))
        shift = [total * unit[0], total * unit[1]]
        position = [0.0, 0.0]
        to_wall = before * abs(shift[axis])
        position[axis] = (1 - size) - to_wall if shift[axis] > 0 else size + to_wall
        other = 1 - axis
        position[other], shift[other] = _fit_start(place, shift[other], margin, 1 - margin)
        velocity = (shift[0] / length, shift[1] / length)
    elif mode < 0.3 and appear == 0 and disappear is None and direction in ("right", "left", "up", "down"):  # enters or leaves
        bounce = False
        axis = 0 if unit[0] else 1
        sign = unit[axis]
        total = float(rng.uniform(0.55, 0.85))
        out = size + 0.02
        position = [0.0, 0.0]
        if rng.random() < 0.5:  # enters
            position[axis] = -out if sign > 0 else 1 + out
        else:  # leaves
            position[axis] = (1 + out - total) if sign > 0 else (total - out)
        position[1 - axis] = float(place.uniform(margin, 1 - margin))
        velocity = (unit[0] * total / length, unit[1] * total / length)
    else:
        total = float(rng.uniform(*_SPEED_RANGES[speed_class])) * length / max(1, last)
        shift = [total * unit[0], total * unit[1]]
        position = [0.0, 0.0]
        for axis in (0, 1):
            position[axis], shift[axis] = _fit_start(place, shift[axis], margin, 1 - margin)
        if stop is None and start == 0 and mode < 0.55:  # speeds up or slows down
            ratio = float(rng.uniform(2.5, 4.5))
            ratio = ratio if rng.random() < 0.5 else 1.0 / ratio
            v0 = 2.0 / (length * (1 + ratio))
            velocity = (shift[0] * v0, shift[1] * v0)
            accel = (velocity[0] * (ratio - 1) / length, velocity[1] * (ratio - 1) / length)
        else:
            velocity = (shift[0] / length, shift[1] / length)
    if max_speed is not None:
        peak = max(math.hypot(*velocity), math.hypot(velocity[0] + accel[0] * length, velocity[1] + accel[1] * length))
        if peak > max_speed > 0:
            factor = max_speed / peak
            velocity = (velocity[0] * factor, velocity[1] * factor)
            accel = (accel[0] * factor, accel[1] * factor)
    return SceneObject(
        shape,
        color,
        size,
        (float(position[0]), float(position[1])),
        (float(velocity[0]), float(velocity[1])),
        spin=spin,
        appear=appear,
        bounce=bounce,
        disappear=disappear,
        start=start,
        stop=stop,
        acceleration=(float(accel[0]), float(accel[1])),
        angle=angle,
    )


def _overlapping(a: SceneObject, b: SceneObject, frames: int) -> bool:
    times = np.linspace(0, frames - 1, 9)
    ya, xa, sa, _ = a.states(times)
    yb, xb, sb, _ = b.states(times)
    both = a.visible(times) & b.visible(times)
    close = np.hypot(ya - yb, xa - xb) < 0.9 * (sa + sb) + 0.02
    return int(np.count_nonzero(both & close)) >= 2


def random_scene(
    seed: int, max_objects: int = 3, max_speed: float | None = None, *, frames: int = 16, min_objects: int = 1
) -> Scene:
    """A scene of ``min_objects .. max_objects`` objects (distinct colours) whose temporal facts
    vary over a timeline of ``frames`` frames.

    The first object always does something (moves, spins, grows or shrinks); others may also sit
    still and only appear or disappear. Directions are drawn evenly from right / left / up / down
    (a fifth of the time a diagonal); every fact comes with its time-reversed twin equally often:
    appearing / disappearing late, entering / leaving the frame, starting late / stopping early,
    speeding up / slowing down, growing / shrinking, clockwise / counter-clockwise; some moving
    objects bounce off a wall. Speeds are slow / medium / fast: about 0.2, 0.4 and 0.75 of the
    frame per timeline, so render with ``timeline=frames`` to show the whole motion at any length.

    Args:
        seed: the scene (same seed, same scene).
        max_speed: cap on the speed in frame fractions per frame (None: no cap).
        frames: the timeline the motions and events are laid out on.
    """
    if max_objects < 1 or min_objects < 1 or min_objects > max_objects:
        raise InvalidValueError(f"need 1 <= min_objects <= max_objects, got {min_objects}, {max_objects}")
    if frames < 2:
        raise InvalidValueError(f"frames must be >= 2, got {frames}")
    rng = np.random.default_rng(seed)
    count = int(rng.integers(min_objects, max_objects + 1))
    background = float(rng.uniform(0.08, 0.35))
    texture = float(rng.uniform(0.03, 0.12))
    texture_scale = float(rng.uniform(3.0, 12.0))
    names = [str(c) for c in rng.permutation(list(COLORS))]
    objects: list[SceneObject] = []
    for index in range(count):
        color = names[index % len(names)]
        plan = int(rng.integers(2**62))
        for _ in range(30):
            obj = _random_object(np.random.default_rng(plan), rng, color, frames, index == 0, max_speed)
            if not any(_overlapping(obj, other, frames) for other in objects):
                break
        objects.append(obj)
    return Scene(objects=tuple(objects), background=background, texture=texture, texture_scale=texture_scale, seed=int(seed))


# --- the corpus -----------------------------------------------------------------------------------

#: Timeline (frames) on which the facts of a ``frames=None`` corpus are measured.
NOMINAL_FRAMES = 64


class SyntheticCorpus(Corpus):
    """The default offline corpus: procedurally rendered videos with paraphrased captions.

    Video ``i`` is :func:`random_scene` of a seed derived from ``(seed, i)`` (adding videos does
    not change the earlier ones); its captions (:func:`caption_scene`) and V2C annotations
    (:func:`commonsense`) come from :func:`describe_scene`. Splits are by index fractions: the
    first ``splits[0]`` of the videos are train, the next ``splits[1]`` val, the rest test.

    Args:
        num_videos: corpus size.
        seed: the corpus.
        frames: None: each video is one continuous motion (facts measured on a
            :data:`NOMINAL_FRAMES` timeline) that :meth:`clip` stretches over exactly T·B frames,
            so the motion spans the clip whatever T·B is. An int: each video is ``frames`` frames
            long, and :meth:`clip` takes the T·B frames :func:`snapcap.datasets.video.clip_indices`
            picks, as from a video file.
        splits: train / val / test fractions (sum 1).
        max_objects, min_objects: objects per video.
        captions_per_video: reference captions per video.
        temporal_pairs: video ``2k+1`` is video ``2k`` played backwards (:func:`time_reversed`):
            same long exposure, opposite temporal facts; pairs never straddle splits.
        max_speed: cap on speeds (frame fractions per timeline frame), see :func:`random_scene`.
    """

    name = "synthetic"

    def __init__(
        self,
        num_videos: int = 200,
        seed: int = 0,
        frames: int | None = None,
        splits: tuple[float, float, float] = (0.8, 0.1, 0.1),
        max_objects: int = 2,
        *,
        min_objects: int = 1,
        captions_per_video: int = 5,
        temporal_pairs: bool = False,
        max_speed: float | None = None,
    ) -> None:
        if num_videos < 1:
            raise InvalidValueError(f"num_videos must be >= 1, got {num_videos}")
        if seed < 0:
            raise InvalidValueError(f"seed must be >= 0, got {seed}")
        if frames is not None and frames < 2:
            raise InvalidValueError(f"frames must be >= 2 or None, got {frames}")
        splits = tuple(float(f) for f in splits)
        if len(splits) != len(SPLITS) or any(f < 0 for f in splits) or abs(sum(splits) - 1.0) > 1e-6:
            raise InvalidValueError(f"splits must be {len(SPLITS)} non-negative fractions summing to 1, got {splits}")
        if captions_per_video < 1:
            raise InvalidValueError(f"captions_per_video must be >= 1, got {captions_per_video}")
        self.num_videos = int(num_videos)
        self.seed = int(seed)
        self.frames = frames
        self.timeline = NOMINAL_FRAMES if frames is None else int(frames)
        self.splits = splits
        self.max_objects = int(max_objects)
        self.min_objects = int(min_objects)
        self.captions_per_video = int(captions_per_video)
        self.temporal_pairs = bool(temporal_pairs)
        self.max_speed = max_speed
        units = (self.num_videos + 1) // 2 if self.temporal_pairs else self.num_videos
        bounds = np.round(np.cumsum(splits) * units).astype(int)
        self._scenes: list[Scene] = []
        self._index: dict[str, int] = {}
        items = []
        for index in range(self.num_videos):
            unit = index // 2 if self.temporal_pairs else index
            scene_seed = self.scene_seed(unit)
            scene = random_scene(scene_seed, self.max_objects, self.max_speed, frames=self.timeline, min_objects=self.min_objects)
            extra: dict[str, Any] = {"index": index, "scene_seed": scene_seed, "timeline": self.timeline}
            if self.temporal_pairs:
                reverse = index % 2 == 1
                if reverse:
                    scene = time_reversed(scene, self.timeline)
                partner = index - 1 if reverse else index + 1
                extra["reversed"] = reverse
                extra["pair"] = f"synth{partner:05d}" if partner < self.num_videos else None
            facts = describe_scene(scene, self.timeline)
            captions = caption_scene(facts, np.random.default_rng([self.seed, index, 1]), count=self.captions_per_video)
            extra["facts"] = facts.to_dict()
            extra.update(commonsense(facts))
            split = SPLITS[min(int(np.searchsorted(bounds, unit, side="right")), len(SPLITS) - 1)]
            video_id = f"synth{index:05d}"
            items.append(VideoItem(video_id=video_id, split=split, captions=tuple(captions), path=None, extra=extra))
            self._scenes.append(scene)
            self._index[video_id] = index
        self.items = items

    def scene_seed(self, index: int) -> int:
        """The :func:`random_scene` seed of video (or pair) ``index``."""
        return int(np.random.SeedSequence([self.seed, int(index)]).generate_state(1)[0] & 0x7FFFFFFF)

    def scene(self, item: VideoItem | str | int) -> Scene:
        """The scene of an item (or of a video id, or an index)."""
        if isinstance(item, VideoItem):
            item = item.video_id
        if isinstance(item, str):
            if item not in self._index:
                raise InvalidValueError(f"{item!r} is not a video of this synthetic corpus")
            item = self._index[item]
        if not 0 <= int(item) < len(self._scenes):
            raise InvalidValueError(f"video index {item} out of range 0..{len(self._scenes) - 1}")
        return self._scenes[int(item)]

    def clip(self, item: VideoItem, T: int, B: int, size: tuple[int, int], gray: bool = False) -> np.ndarray:
        """The T·B frames of the item's scene at ``size = (H, W)``: uint8 ``(T, B, H, W[, 3])``."""
        if T < 1 or B < 1:
            raise InvalidValueError(f"T and B must be >= 1, got T={T}, B={B}")
        height, width = (int(v) for v in size)
        scene = self.scene(item)
        if self.frames is None:
            times = timeline_times(T * B, self.timeline)
        else:
            times = clip_indices(self.timeline, T, B).reshape(-1).astype(np.float64)
        video = render_times(scene, times, height, width, rgb=not gray)
        frames = np.rint(video * 255.0).astype(np.uint8)
        return frames.reshape((T, B) + frames.shape[1:])

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info.update(
            seed=self.seed,
            frames=self.frames,
            timeline=self.timeline,
            split_fractions=list(self.splits),
            max_objects=self.max_objects,
            min_objects=self.min_objects,
            captions_per_video=self.captions_per_video,
            temporal_pairs=self.temporal_pairs,
            max_speed=self.max_speed,
        )
        return info
