"""Procedural scenes: moving shapes over a textured background, deterministic from a seed.

A :class:`Scene` is a background texture and a list of :class:`SceneObject` (shape, colour,
size, start position, velocity, acceleration, spin, growth, the frames it appears and disappears
at, the frames its motion starts and stops at). :func:`render` draws it at any resolution and
length with anti-aliased edges; :func:`random_scene` draws a scene from a seed.

The point of the corpus is the *temporal* facts that a coded snapshot keeps and a long exposure
(the mean of the frames) blurs away: moving right and moving left smear an object the same way,
and so do appearing and disappearing, growing and shrinking, spinning clockwise and
counter-clockwise, speeding up and slowing down. :func:`time_reversed` builds the scene played
backwards (same long exposure, opposite facts). :func:`describe_scene` measures the facts on the
rendered trajectory (:class:`SceneFacts`), :func:`caption_scene` writes MSR-VTT style paraphrases
from them, :func:`commonsense` V2C style intention / effect / attribute phrases, and
:class:`SyntheticCorpus` is the default offline corpus built from all of that.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any, Sequence

import numpy as np

from snapcap.datasets.base import SPLITS, Corpus, VideoItem
from snapcap.errors import ConfigError, InvalidValueError

__all__ = [
    "COLORS",
    "SHAPES",
    "DIRECTIONS",
    "SceneObject",
    "Scene",
    "render",
    "render_times",
    "random_scene",
    "demo_video",
    "with_objects",
    "time_reversed",
    "Event",
    "ObjectFacts",
    "SceneFacts",
    "describe_scene",
    "caption_scene",
    "commonsense",
    "SyntheticCorpus",
    "NOMINAL_FRAMES",
]

COLORS: dict[str, tuple[float, float, float]] = {
    "red": (0.9, 0.15, 0.1),
    "green": (0.15, 0.75, 0.2),
    "blue": (0.15, 0.3, 0.9),
    "yellow": (0.95, 0.85, 0.1),
    "white": (0.95, 0.95, 0.95),
    "purple": (0.6, 0.2, 0.75),
    "orange": (0.95, 0.5, 0.05),
    "cyan": (0.1, 0.8, 0.85),
}
SHAPES = ("circle", "square", "triangle", "ring", "bar")

#: Rotational symmetry order of each shape (None: rotation is invisible).
_SYMMETRY: dict[str, int | None] = {"circle": None, "ring": None, "square": 4, "triangle": 3, "bar": 2}

#: Unit (dy, dx) vectors of the eight directions; y grows downwards (image rows).
DIRECTIONS: dict[str, tuple[float, float]] = {
    "right": (0.0, 1.0),
    "left": (0.0, -1.0),
    "up": (-1.0, 0.0),
    "down": (1.0, 0.0),
    "up-right": (-math.sqrt(0.5), math.sqrt(0.5)),
    "up-left": (-math.sqrt(0.5), -math.sqrt(0.5)),
    "down-right": (math.sqrt(0.5), math.sqrt(0.5)),
    "down-left": (math.sqrt(0.5), -math.sqrt(0.5)),
}

# Fact thresholds (frame fractions; speeds are path lengths per timeline, see describe_scene).
SIZE_SMALL = 0.09
SIZE_LARGE = 0.135
SPEED_SLOW = 0.3
SPEED_FAST = 0.58
MOVE_MIN = 0.05
SPIN_MIN = 0.3
GROWTH_MIN = 1.3
ACCEL_RATIO = 1.6


@dataclass(frozen=True)
class SceneObject:
    """One moving object; positions and sizes are fractions of the frame (0..1).

    The motion clock is ``tau = clip(t - start, 0, stop - start)``: before ``start`` the object
    rests at ``position``, after ``stop`` it rests where it got to. Position, angle and size
    follow ``tau``; visibility follows the frame ``t``.

    Attributes:
        shape: one of :data:`SHAPES`.
        color: a name of :data:`COLORS`.
        size: radius (half-width) as a fraction of min(H, W).
        position: (y, x) centre when the motion starts.
        velocity: (vy, vx) per frame, in frame fractions (y grows downwards).
        spin: rotation per frame, radians; positive is clockwise on screen.
        growth: relative size change per frame (size = size · (1 + growth)^tau).
        appear: first frame in which the object is visible.
        bounce: reflect off the frame edges instead of leaving the frame.
        disappear: first frame in which the object is no longer visible (None: never).
        start: frame at which the motion (translation, spin, growth) begins.
        stop: frame at which the motion ends (None: never).
        acceleration: (ay, ax) per frame², frame fractions.
        angle: orientation when the motion starts, radians.
    """

    shape: str
    color: str
    size: float = 0.12
    position: tuple[float, float] = (0.5, 0.5)
    velocity: tuple[float, float] = (0.0, 0.0)
    spin: float = 0.0
    growth: float = 0.0
    appear: int = 0
    bounce: bool = True
    disappear: int | None = None
    start: int = 0
    stop: int | None = None
    acceleration: tuple[float, float] = (0.0, 0.0)
    angle: float = 0.0

    def __post_init__(self) -> None:
        if self.shape not in SHAPES:
            raise ConfigError(f"shape must be one of {', '.join(SHAPES)}, got {self.shape!r}")
        if self.color not in COLORS:
            raise ConfigError(f"color must be one of {', '.join(COLORS)}, got {self.color!r}")
        if not 0 < self.size < 1:
            raise InvalidValueError(f"size must be in (0, 1), got {self.size!r}")
        if not self.growth > -1:
            raise InvalidValueError(f"growth must be > -1, got {self.growth!r}")
        if self.appear < 0 or self.start < 0:
            raise InvalidValueError(f"appear and start must be >= 0, got appear={self.appear}, start={self.start}")
        if self.disappear is not None and self.disappear <= self.appear:
            raise InvalidValueError(f"disappear must be > appear, got appear={self.appear}, disappear={self.disappear}")
        if self.stop is not None and self.stop < self.start:
            raise InvalidValueError(f"stop must be >= start, got start={self.start}, stop={self.stop}")
        for name in ("position", "velocity", "acceleration"):
            if len(getattr(self, name)) != 2:
                raise InvalidValueError(f"{name} must be a (y, x) pair, got {getattr(self, name)!r}")

    def motion_time(self, t: np.ndarray | float) -> np.ndarray:
        """The motion clock ``tau`` at frame(s) ``t`` (frames may be fractional)."""
        tau = np.maximum(np.asarray(t, dtype=np.float64) - self.start, 0.0)
        if self.stop is not None:
            tau = np.minimum(tau, float(self.stop - self.start))
        return tau

    def states(self, t: np.ndarray | float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Centre y, centre x, size and angle at frame(s) ``t`` (arrays shaped like ``t``)."""
        tau = self.motion_time(t)
        size = self.size * (1.0 + self.growth) ** tau
        coords = []
        for start, speed, accel in zip(self.position, self.velocity, self.acceleration):
            value = start + speed * tau + 0.5 * accel * tau * tau
            if self.bounce:
                lo, hi = size, 1.0 - size
                span = hi - lo
                ok = span > 0
                period = np.where(ok, 2 * span, 1.0)
                phase = np.mod(value - lo, period)
                folded = lo + np.where(phase <= span, phase, period - phase)
                value = np.where(ok, folded, value)
            coords.append(np.asarray(value, dtype=np.float64))
        angle = self.angle + self.spin * tau
        return coords[0], coords[1], np.asarray(size, dtype=np.float64), np.asarray(angle, dtype=np.float64)

    def state(self, t: float) -> tuple[float, float, float, float]:
        """Centre (y, x), size and angle at frame ``t``."""
        y, x, size, angle = self.states(float(t))
        return float(y), float(x), float(size), float(angle)

    def visible(self, t: np.ndarray | float) -> np.ndarray:
        """Whether the object is drawn at frame(s) ``t``."""
        t = np.asarray(t, dtype=np.float64)
        shown = t >= self.appear
        if self.disappear is not None:
            shown = shown & (t < self.disappear)
        return shown


@dataclass(frozen=True)
class Scene:
    """Background (base gray level, texture contrast and scale, seed) and moving objects."""

    objects: tuple[SceneObject, ...] = ()
    background: float = 0.2
    texture: float = 0.08
    texture_scale: float = 6.0
    seed: int = 0
    drift: tuple[float, float] = (0.0, 0.0)


def _coverage(shape: str, dy: np.ndarray, dx: np.ndarray, size: float, angle: float, softness: float) -> np.ndarray:
    """Anti-aliased coverage in [0, 1] of a shape centred at the origin (pixel offsets)."""
    cos, sin = math.cos(angle), math.sin(angle)
    u = cos * dx + sin * dy
    v = -sin * dx + cos * dy
    if shape == "circle":
        dist = np.hypot(u, v) - size
    elif shape == "ring":
        dist = np.abs(np.hypot(u, v) - 0.75 * size) - 0.25 * size
    elif shape == "square":
        dist = np.maximum(np.abs(u), np.abs(v)) - size
    elif shape == "bar":
        dist = np.maximum(np.abs(u) - size, np.abs(v) - 0.3 * size)
    else:  # triangle (equilateral, circumradius ``size``)
        k = math.sqrt(3.0)
        dist = np.maximum(np.abs(u) * k / 2 + v / 2, -v) - size / 2
    return np.clip(0.5 - dist / softness, 0.0, 1.0)


def _texture_components(scene: Scene) -> list[tuple[float, float, float]]:
    rng = np.random.default_rng(scene.seed)
    components = []
    for _ in range(4):
        fy, fx = rng.normal(0, scene.texture_scale, 2)
        phase = rng.uniform(0, 2 * math.pi)
        components.append((float(fy), float(fx), float(phase)))
    return components


def _texture(scene: Scene, height: int, width: int, t: float, components: list | None = None) -> np.ndarray:
    components = components if components is not None else _texture_components(scene)
    norm = max(height, width)
    yy = np.arange(height, dtype=np.float64)[:, None] / norm - scene.drift[0] * t
    xx = np.arange(width, dtype=np.float64)[None, :] / norm - scene.drift[1] * t
    field_ = np.zeros((height, width))
    for fy, fx, phase in components:
        field_ += np.cos(2 * math.pi * (fy * yy + fx * xx) + phase)
    return scene.background + scene.texture * field_ / 4


def _timeline_times(frames: int, timeline: int | None) -> np.ndarray:
    """Scene times of ``frames`` output frames: 0, 1, ... or ``timeline`` frames stretched over them."""
    if timeline is None:
        return np.arange(frames, dtype=np.float64)
    if timeline < 1:
        raise InvalidValueError(f"timeline must be >= 1 frame, got {timeline}")
    if frames == 1:
        return np.zeros(1)
    return np.linspace(0.0, timeline - 1.0, frames)


def render_times(scene: Scene, times: Sequence[float] | np.ndarray, height: int, width: int, rgb: bool = True) -> np.ndarray:
    """Draw the scene at the given (possibly fractional) scene times: float32 ``(len(times), H, W[, 3])``."""
    times = np.asarray(times, dtype=np.float64).reshape(-1)
    if times.size < 1 or height < 2 or width < 2:
        raise InvalidValueError(f"need at least one time and H, W >= 2, got {times.size} times, {height}, {width}")
    scale = min(height, width)
    components = _texture_components(scene)
    static = scene.drift[0] == 0 and scene.drift[1] == 0
    base_static = _texture(scene, height, width, 0.0, components) if static else None
    tracks = []
    for obj in scene.objects:
        ys, xs, sizes, angles = obj.states(times)
        tracks.append((obj, ys, xs, sizes, angles, obj.visible(times), np.asarray(COLORS[obj.color])))
    video = np.empty((times.size, height, width, 3), dtype=np.float32)
    rows = np.arange(height, dtype=np.float64)
    cols = np.arange(width, dtype=np.float64)
    for k, t in enumerate(times):
        base = base_static if static else _texture(scene, height, width, t, components)
        image = np.repeat(base[:, :, None], 3, axis=2)
        for obj, ys, xs, sizes, angles, shown, color in tracks:
            if not shown[k]:
                continue
            cy, cx, radius = ys[k] * height, xs[k] * width, sizes[k] * scale
            reach = 1.5 * radius + 2.0
            y0, y1 = max(0, int(math.floor(cy - reach))), min(height, int(math.ceil(cy + reach)) + 1)
            x0, x1 = max(0, int(math.floor(cx - reach))), min(width, int(math.ceil(cx + reach)) + 1)
            if y0 >= y1 or x0 >= x1:
                continue
            cover = _coverage(obj.shape, rows[y0:y1, None] - cy, cols[None, x0:x1] - cx, radius, float(angles[k]), softness=1.0)
            patch = image[y0:y1, x0:x1]
            patch *= 1 - cover[:, :, None]
            patch += cover[:, :, None] * color
        np.clip(image, 0.0, 1.0, out=image)
        video[k] = image
    if rgb:
        return video
    return (video @ np.asarray([0.299, 0.587, 0.114], dtype=np.float32)).astype(np.float32)


def render(scene: Scene, frames: int, height: int, width: int, rgb: bool = True, *, timeline: int | None = None) -> np.ndarray:
    """Draw ``frames`` frames: float32 ``(frames, H, W, 3)`` (or ``(frames, H, W)`` gray) in [0, 1].

    ``timeline``: the scene's own length in frames; when given, the ``frames`` output frames
    sample it uniformly from its first to its last frame (the whole motion is shown whatever
    ``frames`` is). Default: output frame ``t`` is scene frame ``t``.
    """
    if frames < 1 or height < 2 or width < 2:
        raise InvalidValueError(f"need frames >= 1 and H, W >= 2, got {frames}, {height}, {width}")
    return render_times(scene, _timeline_times(frames, timeline), height, width, rgb=rgb)


def demo_video(frames: int = 16, height: int = 128, width: int = 128, rgb: bool = True) -> np.ndarray:
    """The built-in demo scene: a red circle crossing left to right, a blue square falling,
    a yellow triangle spinning and a green ring appearing halfway."""
    scene = Scene(
        objects=(
            SceneObject("circle", "red", 0.11, (0.3, 0.15), (0.0, 0.7 / frames)),
            SceneObject("square", "blue", 0.09, (0.15, 0.75), (0.6 / frames, 0.0), spin=0.05),
            SceneObject("triangle", "yellow", 0.12, (0.72, 0.35), (0.0, 0.0), spin=0.25),
            SceneObject("ring", "green", 0.1, (0.75, 0.8), (0.0, 0.0), appear=frames // 2),
        ),
        background=0.22,
        seed=7,
    )
    return render(scene, frames, height, width, rgb=rgb)


def with_objects(scene: Scene, *objects: SceneObject) -> Scene:
    """A copy of ``scene`` with more objects."""
    return replace(scene, objects=tuple(scene.objects) + tuple(objects))


def time_reversed(scene: Scene, frames: int) -> Scene:
    """The scene played backwards over frames ``0 .. frames-1``: frame ``t`` of the result is frame
    ``frames-1-t`` of ``scene`` (exactly, bounces and growth included), so both have the same
    long exposure while every temporal fact flips (right <-> left, appear <-> disappear, grow <->
    shrink, clockwise <-> counter-clockwise, speeding up <-> slowing down, start <-> stop).

    Raises :class:`InvalidValueError` for a drifting background (its texture has no time offset).
    """
    if frames < 1:
        raise InvalidValueError(f"frames must be >= 1, got {frames}")
    if scene.drift != (0.0, 0.0) and tuple(scene.drift) != (0, 0):
        raise InvalidValueError("time_reversed: a drifting background cannot be reversed")
    last = frames - 1
    objects = []
    for obj in scene.objects:
        stop_eff = last if obj.stop is None else min(obj.stop, last)
        length = float(max(0, stop_eff - obj.start))
        pos = tuple(p + v * length + 0.5 * a * length * length for p, v, a in zip(obj.position, obj.velocity, obj.acceleration))
        vel = tuple(-(v + a * length) for v, a in zip(obj.velocity, obj.acceleration))
        start = max(0, last - stop_eff)
        stop = None if obj.start == 0 else max(start, last - obj.start)
        appear = 0 if obj.disappear is None else max(0, frames - obj.disappear)
        disappear = None if obj.appear == 0 else frames - obj.appear
        if obj.appear >= frames:  # never seen in these frames, nor backwards
            appear, disappear = frames, None
        objects.append(
            replace(
                obj,
                position=(float(pos[0]), float(pos[1])),
                velocity=(float(vel[0]), float(vel[1])),
                acceleration=(float(obj.acceleration[0]), float(obj.acceleration[1])),
                spin=-obj.spin,
                angle=obj.angle + obj.spin * length,
                size=float(min(0.999, obj.size * (1.0 + obj.growth) ** length)),
                growth=1.0 / (1.0 + obj.growth) - 1.0,
                appear=int(appear),
                disappear=None if disappear is None else int(disappear),
                start=int(start),
                stop=None if stop is None else int(stop),
            )
        )
    return replace(scene, objects=tuple(objects))


# --- facts ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    """Something that happens at one frame: ``kind`` is appears, disappears, enters, leaves,
    starts (starts moving), stops, bounces (``detail``: the wall) or turns (reverses away from a wall);
    ``detail`` is the side for enters/leaves, the wall for bounces, the direction for starts."""

    frame: int
    object: int
    kind: str
    detail: str | None = None


@dataclass(frozen=True)
class ObjectFacts:
    """What one object does, measured on its rendered trajectory.

    Attributes:
        index: position of the object in ``Scene.objects``.
        shape, color: as drawn.
        size: ``small``, ``medium`` or ``large`` (radius when first seen).
        motion: main motion: ``move``, ``spin``, ``grow``, ``shrink`` or ``still``.
        direction: direction of the first stretch of motion (before any bounce): one of
            :data:`DIRECTIONS` (``right``, ``up-left``...), None when not moving.
        final_direction: direction after the last bounce / turn (None without one).
        speed: ``slow``, ``medium`` or ``fast`` (path length per timeline), None when not moving.
        speed_change: ``accelerating``, ``decelerating`` or None.
        bounces: ``(frame, wall)`` of each reversal; wall is left/right/top/bottom or None (a turn).
        spin: ``clockwise``, ``counter-clockwise`` or None (also None for round shapes).
        growth: ``growing``, ``shrinking`` or None.
        appear: first visible frame; disappear: first frame no longer visible (None: visible to the end).
        start: frame the translation begins when it begins late, else None; stop likewise.
        enter: side the object comes into the frame from (None when on screen when it appears);
            leave: side it leaves the frame through.
        start_position, end_position: (y, x) centre when first and last seen.
    """

    index: int
    shape: str
    color: str
    size: str
    motion: str
    direction: str | None = None
    final_direction: str | None = None
    speed: str | None = None
    speed_change: str | None = None
    bounces: tuple[tuple[int, str | None], ...] = ()
    spin: str | None = None
    growth: str | None = None
    appear: int = 0
    disappear: int | None = None
    start: int | None = None
    stop: int | None = None
    enter: str | None = None
    leave: str | None = None
    start_position: tuple[float, float] = (0.5, 0.5)
    end_position: tuple[float, float] = (0.5, 0.5)


@dataclass(frozen=True)
class SceneFacts:
    """Structured temporal facts of a scene over ``frames`` frames: per-object facts (visible
    objects only, in scene order), the events in time order, and the background."""

    frames: int
    objects: tuple[ObjectFacts, ...]
    events: tuple[Event, ...] = ()
    background: str = "dark"
    textured: bool = True

    def obj(self, index: int) -> ObjectFacts:
        """The facts of scene object ``index``."""
        for item in self.objects:
            if item.index == index:
                return item
        raise InvalidValueError(f"no visible object {index} in these facts")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (lists for tuples)."""

        def plain(value: Any) -> Any:
            if isinstance(value, dict):
                return {k: plain(v) for k, v in value.items()}
            if isinstance(value, (list, tuple)):
                return [plain(v) for v in value]
            return value

        return plain(asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SceneFacts:
        """Inverse of :meth:`to_dict`."""
        objects = []
        for item in data["objects"]:
            item = dict(item)
            item["bounces"] = tuple((int(f), w) for f, w in item.get("bounces", ()))
            item["start_position"] = tuple(item.get("start_position", (0.5, 0.5)))
            item["end_position"] = tuple(item.get("end_position", (0.5, 0.5)))
            objects.append(ObjectFacts(**item))
        events = tuple(Event(**e) for e in data.get("events", ()))
        return cls(int(data["frames"]), tuple(objects), events, data.get("background", "dark"), bool(data.get("textured", True)))


def _direction_name(dy: float, dx: float) -> str | None:
    """One of :data:`DIRECTIONS` for a displacement (8 sectors of 45 degrees), None for zero."""
    ay, ax = abs(dy), abs(dx)
    if ay < 1e-12 and ax < 1e-12:
        return None
    ratio = math.tan(math.radians(67.5))
    if ax >= ratio * ay:
        return "right" if dx > 0 else "left"
    if ay >= ratio * ax:
        return "down" if dy > 0 else "up"
    return f"{'down' if dy > 0 else 'up'}-{'right' if dx > 0 else 'left'}"


def _side(y: float, x: float) -> str:
    """The frame side a centre outside [0, 1]² lies beyond (the farthest out)."""
    outside = {"left": -x, "right": x - 1.0, "top": -y, "bottom": y - 1.0}
    return max(outside, key=outside.get)


def _gap(frames: int) -> int:
    """Frames two events must be apart to be told in order (and a start / stop to count)."""
    return max(2, int(round(0.1 * frames)))


def _object_facts(obj: SceneObject, index: int, frames: int) -> tuple[ObjectFacts | None, list[Event]]:
    t = np.arange(frames, dtype=np.float64)
    ys, xs, sizes, angles = (np.atleast_1d(a) * np.ones(frames) for a in obj.states(t))
    shown = np.atleast_1d(obj.visible(t))
    inside = shown & (ys >= 0) & (ys <= 1) & (xs >= 0) & (xs <= 1)
    if not inside.any():
        return None, []
    gap = _gap(frames)
    shown_idx = np.flatnonzero(shown)
    first_vis, last_vis = int(shown_idx[0]), int(shown_idx[-1])
    seen = np.flatnonzero(inside)
    a, b = int(seen[0]), int(seen[-1])
    events: list[Event] = []
    if first_vis > 0:
        events.append(Event(first_vis, index, "appears"))
    enter = _side(ys[first_vis], xs[first_vis]) if a > first_vis else None
    leave = _side(ys[last_vis], xs[last_vis]) if b < last_vis else None
    if enter:
        events.append(Event(a, index, "enters", enter))
    disappear = last_vis + 1 if last_vis < frames - 1 else None

    py, px, ps, pa = ys[a : b + 1], xs[a : b + 1], sizes[a : b + 1], angles[a : b + 1]
    dy, dx = np.diff(py), np.diff(px)
    step = np.hypot(dy, dx)
    moving_idx = np.flatnonzero(step > 1e-5)
    path = float(step.sum())
    moving = path >= MOVE_MIN and moving_idx.size > 0

    direction = final_direction = speed = speed_change = None
    start = stop = None
    bounces: list[tuple[int, str | None]] = []
    if moving:
        turns: list[tuple[int, int, int]] = []  # (step index, axis, sign before)
        for axis, d in ((0, dy), (1, dx)):
            nz = np.flatnonzero(np.abs(d) > 1e-7)
            if nz.size < 2:
                continue
            signs = np.sign(d[nz])
            for f in np.flatnonzero(signs[1:] != signs[:-1]) + 1:
                turns.append((int(nz[f]), axis, int(signs[f - 1])))
        turns.sort()
        merged: list[tuple[int, int, int]] = []
        for turn in turns:
            if merged and turn[0] - merged[-1][0] <= 1:
                continue
            merged.append(turn)
        tolerance = 2 * float(step.max()) + 0.01
        for k, axis, sign in merged:
            coord = (py if axis == 0 else px)[k]
            size = ps[k]
            wall = None
            if obj.bounce and min(abs(coord - size), abs(coord - (1 - size))) < tolerance:
                wall = ("bottom" if sign > 0 else "top") if axis == 0 else ("right" if sign > 0 else "left")
            bounces.append((a + k, wall))
            events.append(Event(a + k, index, "bounces" if wall else "turns", wall))
        first_move, last_move = int(moving_idx[0]), int(moving_idx[-1]) + 1
        end = merged[0][0] if merged else last_move
        if end <= first_move:
            end = first_move + 1
        direction = _direction_name(py[end] - py[first_move], px[end] - px[first_move])
        if merged:
            k = merged[-1][0]
            final_direction = _direction_name(py[last_move] - py[k], px[last_move] - px[k]) or direction
        per_timeline = path / moving_idx.size * max(1, frames - 1)
        speed = "slow" if per_timeline < SPEED_SLOW else "fast" if per_timeline > SPEED_FAST else "medium"
        speeds = step[moving_idx]
        if speeds.size >= 6:
            third = speeds.size // 3
            ratio = float(speeds[-third:].mean() / max(speeds[:third].mean(), 1e-12))
            speed_change = "accelerating" if ratio > ACCEL_RATIO else "decelerating" if ratio < 1 / ACCEL_RATIO else None
        if first_move >= gap:
            start = a + first_move
            events.append(Event(start, index, "starts", direction))
        if (b - a) - last_move >= gap:
            stop = a + last_move
            events.append(Event(stop, index, "stops"))
    if leave:
        events.append(Event(b + 1, index, "leaves", leave))
    if disappear is not None:
        events.append(Event(disappear, index, "disappears"))

    spin = None
    order = _SYMMETRY[obj.shape]
    if order is not None and pa.size > 1:
        period = 2 * math.pi / order
        wrapped = np.mod(np.diff(pa) + period / 2, period) - period / 2
        total = float(wrapped.sum())
        spin = "clockwise" if total > SPIN_MIN else "counter-clockwise" if total < -SPIN_MIN else None
    ratio = float(ps[-1] / ps[0])
    growth = "growing" if ratio > GROWTH_MIN else "shrinking" if ratio < 1 / GROWTH_MIN else None
    size_class = "small" if ps[0] < SIZE_SMALL else "large" if ps[0] > SIZE_LARGE else "medium"
    motion = "move" if moving else "spin" if spin else {"growing": "grow", "shrinking": "shrink"}.get(growth or "", "still")
    facts = ObjectFacts(
        index=index,
        shape=obj.shape,
        color=obj.color,
        size=size_class,
        motion=motion,
        direction=direction,
        final_direction=final_direction,
        speed=speed,
        speed_change=speed_change,
        bounces=tuple(bounces),
        spin=spin,
        growth=growth,
        appear=first_vis,
        disappear=disappear,
        start=start,
        stop=stop,
        enter=enter,
        leave=leave,
        start_position=(round(float(py[0]), 4), round(float(px[0]), 4)),
        end_position=(round(float(py[-1]), 4), round(float(px[-1]), 4)),
    )
    return facts, events


_EVENT_ORDER = {"appears": 0, "enters": 1, "starts": 2, "bounces": 3, "turns": 3, "stops": 4, "leaves": 5, "disappears": 6}


def describe_scene(scene: Scene, frames: int) -> SceneFacts:
    """Measure the temporal facts of ``scene`` over frames ``0 .. frames-1``.

    Everything is read off the trajectory the renderer draws, over the frames where the object
    is visible with its centre inside the frame: the direction is that of the displacement up to
    the first reversal (a bouncing object keeps its initial direction plus ``bounces``), the
    speed class the path length per timeline, ``speeding up`` / ``slowing down`` the ratio of the
    mean step in the last and first thirds of the motion, the spin the summed frame-to-frame
    rotation (modulo the shape's symmetry, so a circle never spins), growth the size ratio.
    """
    if frames < 2:
        raise InvalidValueError(f"describe_scene needs at least 2 frames, got {frames}")
    objects, events = [], []
    for index, obj in enumerate(scene.objects):
        facts, found = _object_facts(obj, index, frames)
        if facts is not None:
            objects.append(facts)
            events.extend(found)
    events.sort(key=lambda e: (e.frame, _EVENT_ORDER[e.kind], e.object))
    return SceneFacts(
        frames=int(frames),
        objects=tuple(objects),
        events=tuple(events),
        background="dark" if scene.background < 0.2 else "gray",
        textured=scene.texture >= 0.06,
    )


# --- captions -------------------------------------------------------------------------------------
# Vocabulary: "up", "down", "left", "right", "top", "bottom" only ever name directions, sides or
# walls (no "shows up", "speeds up", "slows down"), so captions can be checked word by word.

_NOUNS = {
    "circle": ("circle", "ball", "disc"),
    "square": ("square", "box", "block"),
    "triangle": ("triangle",),
    "ring": ("ring", "hoop"),
    "bar": ("bar", "stick", "rectangle"),
}
_SIZE_WORDS = {"small": ("small", "little", "tiny"), "large": ("large", "big")}
_DIR_PHRASES = {
    "right": ("to the right", "from left to right", "rightwards", "towards the right", "to the right across the screen", "from left to right across the screen"),
    "left": ("to the left", "from right to left", "leftwards", "towards the left", "to the left across the screen", "from right to left across the screen"),
    "up": ("up", "upwards", "from bottom to top", "towards the top", "up the screen", "up towards the top"),
    "down": ("down", "downwards", "from top to bottom", "towards the bottom", "down the screen", "down towards the bottom"),
    "up-right": ("up and to the right", "diagonally up and to the right", "towards the top right corner", "to the upper right"),
    "up-left": ("up and to the left", "diagonally up and to the left", "towards the top left corner", "to the upper left"),
    "down-right": ("down and to the right", "diagonally down and to the right", "towards the bottom right corner", "to the lower right"),
    "down-left": ("down and to the left", "diagonally down and to the left", "towards the bottom left corner", "to the lower left"),
}
_MOVE_VERBS = (("moves", "moving"), ("slides", "sliding"), ("travels", "traveling"), ("goes", "going"), ("glides", "gliding"))
_SLOW_VERBS = (("drifts", "drifting"), ("creeps", "creeping"))
_FAST_VERBS = (("zooms", "zooming"), ("rushes", "rushing"), ("races", "racing"), ("shoots", "shooting"))
_ADVERBS = {"slow": ("slowly", "gently", "at a slow pace"), "fast": ("quickly", "fast", "rapidly", "at high speed"), "medium": ("steadily",)}
_PRE_ADVERBS = ("slowly", "gently", "quickly", "rapidly", "steadily")
_ACCEL = ("{v} {d} and gets faster", "{v} {d} faster and faster", "accelerates {d}", "gains speed as it {v} {d}", "{v} {d} and accelerates")
_DECEL = ("{v} {d} and slows to a crawl", "{v} {d} more and more slowly", "loses speed as it {v} {d}", "{v} {d} and gets slower", "decelerates as it {v} {d}")
_SPIN_WORDS = {"clockwise": ("clockwise",), "counter-clockwise": ("counter-clockwise", "counterclockwise", "anticlockwise")}
_SPIN_VERBS = (("spins {c}", "spinning {c}"), ("rotates {c}", "rotating {c}"), ("turns {c}", "turning {c}"), ("spins around {c}", "spinning around {c}"), ("rotates {c} in place", "rotating {c} in place"))
_SPIN_WHILE = ("while spinning {c}", "and spins {c}", "while rotating {c}", "turning {c} as it goes")
_GROW_VERBS = {
    "growing": (("grows", "growing"), ("gets bigger", "getting bigger"), ("grows larger", "growing larger"), ("expands", "expanding"), ("increases in size", "increasing in size")),
    "shrinking": (("shrinks", "shrinking"), ("gets smaller", "getting smaller"), ("becomes smaller", "becoming smaller"), ("decreases in size", "decreasing in size")),
}
_GROW_WHILE = {"growing": ("while growing", "and gets bigger", "while getting bigger"), "shrinking": ("while shrinking", "and gets smaller", "while getting smaller")}
_STILL_VERBS = (("stays still", "staying still"), ("sits still", "sitting still"), ("does not move", None), ("stays in place", "staying in place"), ("remains still", "resting"))
_APPEAR = ("appears", "comes into view", "becomes visible", "pops into view")
_DISAPPEAR = ("disappears", "vanishes", "goes away", "suddenly disappears")
_WAIT = ("stays still at first", "sits still for a moment", "waits for a moment", "stays in place for a while", "rests at first")
_START = ("starts moving {d}", "begins to move {d}", "starts to move {d}", "sets off {d}")
_STOP = ("stops", "comes to a stop", "stops moving", "comes to a halt")
_ENTER = ("enters from the {s}", "comes in from the {s}", "enters the frame from the {s}", "enters the screen from the {s}")
_LEAVE = ("leaves the frame", "goes off screen", "leaves the screen {at}", "exits the frame {at}", "moves out of view")
_BOUNCE = ("bounces off the {w} wall", "hits the {w} edge and bounces back", "bounces off the {w} side", "hits the {w} wall and comes back", "bounces back from the {w} edge")
_TURN = ("turns around", "changes direction", "turns back")
_ORDER = ("{A} and then {B}", "first {A} and then {B}", "{A} then {B}", "{B} after {A}", "{A} before {B}", "{A} and after that {B}", "{A} and later {B}")
_TIMES = (
    (0.2, ("at the start", "at the beginning")),
    (0.4, ("after a moment", "a little later", "after a short while")),
    (0.62, ("halfway through", "in the middle of the video", "midway through")),
    (2.0, ("near the end", "towards the end", "late in the video")),
)
_KEY_EVENTS = ("appears", "disappears", "starts", "stops", "enters", "leaves")


def _at_side(side: str) -> str:
    return f"on the {side}" if side in ("left", "right") else f"at the {side}"


def _pick(rng: np.random.Generator, options: Sequence[Any]) -> Any:
    return options[int(rng.integers(len(options)))]


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def _clean(text: str) -> str:
    return " ".join(text.lower().replace(" ,", ",").split()).rstrip(".,; ")


class _Phase:
    """One step of what an object does: the present-tense verb phrase and its -ing form."""

    def __init__(self, frame: int, rank: int, text: str, ing: str | None = None) -> None:
        self.frame, self.rank, self.text, self.ing = frame, rank, text, ing


class _Sentence:
    """Builds one caption; remembers which objects were already mentioned (a -> the)."""

    def __init__(self, facts: SceneFacts, rng: np.random.Generator) -> None:
        self.facts, self.rng = facts, rng
        self.single = len(facts.objects) == 1
        self.brevity = 1.0 if self.single else 0.5 if len(facts.objects) == 2 else 0.3
        self.nouns: dict[int, tuple[str, str]] = {}

    def chance(self, p: float) -> bool:
        return bool(self.rng.random() < p)

    def pick(self, options: Sequence[Any]) -> Any:
        return _pick(self.rng, options)

    def np(self, o: ObjectFacts, definite: bool | None = None) -> str:
        """``a small red ball`` on first mention, ``the red ball`` after."""
        mentioned = o.index in self.nouns
        if not mentioned:
            noun = self.pick(_NOUNS[o.shape])
            color = "" if self.single and self.chance(0.15) else o.color
            self.nouns[o.index] = (noun, color)
        noun, color = self.nouns[o.index]
        words = []
        if not mentioned and o.size in _SIZE_WORDS and self.chance(0.5 * self.brevity):
            words.append(self.pick(_SIZE_WORDS[o.size]))
        if color:
            words.append(color)
        words.append(noun)
        if definite is None:
            definite = mentioned
        return ("the" if definite else _article(words[0])) + " " + " ".join(words)

    def time(self, frame: int) -> str:
        fraction = frame / max(1, self.facts.frames - 1)
        for limit, options in _TIMES:
            if fraction < limit:
                return self.pick(options)
        return self.pick(_TIMES[-1][1])

    def direction(self, direction: str) -> str:
        phrases = _DIR_PHRASES[direction]
        if not self.single:  # the short phrases only ("to the right", not "... across the screen")
            phrases = tuple(p for p in phrases if len(p.split()) <= 5)
        return self.pick(phrases)

    def move(self, o: ObjectFacts) -> tuple[str, str | None]:
        d = self.direction(o.direction or "right")
        verbs = _MOVE_VERBS + (_SLOW_VERBS if o.speed == "slow" else _FAST_VERBS if o.speed == "fast" else ())
        if o.speed_change:
            verb = self.pick(_MOVE_VERBS)[0]
            text = self.pick(_ACCEL if o.speed_change == "accelerating" else _DECEL).format(v=verb, d=d)
            ing = None
        else:
            verb, verb_ing = self.pick(verbs)
            adverb = self.pick(_ADVERBS[o.speed or "medium"]) if self.chance((0.35 if o.speed == "medium" else 0.7) * self.brevity) else ""
            if adverb and adverb in _PRE_ADVERBS and self.chance(0.3):
                text, ing = f"{adverb} {verb} {d}", f"{verb_ing} {d} {adverb}"
            elif adverb and self.chance(0.5):
                text, ing = f"{verb} {adverb} {d}", f"{verb_ing} {adverb} {d}"
            else:
                text, ing = f"{verb} {d} {adverb}", f"{verb_ing} {d} {adverb}"
        extra = []
        if o.spin and self.chance(0.8):
            extra.append(self.pick(_SPIN_WHILE).format(c=self.pick(_SPIN_WORDS[o.spin])))
        if o.growth and self.chance(0.8):
            extra.append(self.pick(_GROW_WHILE[o.growth]))
        if extra:
            text = text + " " + " ".join(extra)
            ing = None
        return text, ing

    def motion(self, o: ObjectFacts) -> tuple[str, str | None]:
        """The main motion of an object (verb phrase, -ing phrase or None)."""
        if o.motion == "move":
            return self.move(o)
        if o.motion == "spin":
            text, ing = self.pick(_SPIN_VERBS)
            c = self.pick(_SPIN_WORDS[o.spin or "clockwise"])
            text, ing = text.format(c=c), ing.format(c=c)
            if o.growth and self.chance(0.8):
                return text + " " + self.pick(_GROW_WHILE[o.growth]), None
            return text, ing
        if o.motion in ("grow", "shrink"):
            text, ing = self.pick(_GROW_VERBS[o.growth or ("growing" if o.motion == "grow" else "shrinking")])
            return text, ing
        return self.pick(_STILL_VERBS)

    def phases(self, o: ObjectFacts) -> list[_Phase]:
        """What the object does, in time order."""
        events = [_Phase(max(o.appear, o.start or 0), 3, *self.motion(o))]
        if o.appear > 0:
            text = self.pick(_APPEAR) + (" " + self.time(o.appear) if self.chance(0.5 * self.brevity) else "")
            events.append(_Phase(o.appear, 0, text))
            if o.motion == "still" and not self.chance(0.3):
                events = [e for e in events if e.rank != 3]
        if o.enter:
            events.append(_Phase(o.appear, 1, self.pick(_ENTER).format(s=o.enter)))
        if o.start is not None and o.motion == "move":
            main = next(e for e in events if e.rank == 3)
            main.frame = o.start
            if self.chance(0.5):
                main.text = self.pick(_START).format(d=self.direction(o.direction or "right"))
                if self.chance(0.4):
                    main.text += " " + self.time(o.start)
                main.ing = None
            if not (o.appear > 0 or o.enter) or self.chance(0.5):
                events.append(_Phase(o.appear, 2, self.pick(_WAIT)))
        for frame, wall in o.bounces[:2]:
            events.append(_Phase(frame, 4, self.pick(_BOUNCE).format(w=wall) if wall else self.pick(_TURN)))
        if o.stop is not None:
            events.append(_Phase(o.stop, 5, self.pick(_STOP)))
        if o.leave:
            events.append(_Phase(o.disappear or self.facts.frames, 6, self.pick(_LEAVE).format(at=_at_side(o.leave))))
        if o.disappear is not None:
            text = self.pick(_DISAPPEAR) + (" " + self.time(o.disappear) if self.chance(0.4 * self.brevity) else "")
            if o.motion == "still" and not (o.appear > 0) and not self.chance(0.4):
                events = [e for e in events if e.rank != 3]
            events.append(_Phase(o.disappear, 7, text))
        events.sort(key=lambda e: (e.frame, e.rank))
        return events

    def join(self, phases: list[_Phase]) -> str:
        texts = [p.text for p in phases]
        if len(texts) == 1:
            return texts[0]
        if len(texts) == 2:
            return self.pick(("{0} and then {1}", "{0} and {1}", "{0} then {1}", "{0} and then {1}")).format(*texts)
        return ", ".join(texts[:-1]) + self.pick((" and then ", " and ")) + texts[-1]

    def clause(self, o: ObjectFacts, definite: bool | None = None) -> str:
        return f"{self.np(o, definite)} {self.join(self.phases(o))}"

    def ing(self, o: ObjectFacts) -> tuple[str, str] | None:
        """(noun phrase, -ing phrase) for ``a red ball moving to the right``; None when the object
        does several things in turn."""
        phases = self.phases(o)
        if len(phases) != 1 or not phases[0].ing:
            return None
        return self.np(o), phases[0].ing

    def event(self, e: Event, definite: bool | None = None) -> str:
        """A clause for one key event: ``a blue square appears``, ``the red ball starts moving to the right``."""
        o = self.facts.obj(e.object)
        subject = self.np(o, definite)
        if e.kind == "appears":
            text = self.pick(_APPEAR)
            if o.motion != "still" and o.start is None and self.chance(0.5):
                text += " and " + self.motion(o)[0]
        elif e.kind == "starts":
            text = self.pick(_START).format(d=self.direction(o.direction or "right"))
        elif e.kind == "stops":
            text = self.pick(_STOP)
        elif e.kind == "enters":
            text = self.pick(_ENTER).format(s=e.detail)
        elif e.kind == "leaves":
            text = self.pick(_LEAVE).format(at=_at_side(e.detail or "right"))
        else:
            text = self.pick(_DISAPPEAR)
        return f"{subject} {text}"

    def background(self) -> str:
        shade = self.facts.background
        texture = "textured " if self.facts.textured and self.chance(0.5) else ""
        return self.pick(("on a {s} {t}background", "over a {s} {t}background", "in front of a {s} {t}background")).format(s=shade, t=texture)


def _order_pair(facts: SceneFacts) -> tuple[Event, Event] | None:
    """The first two key events of different objects far enough apart to be told in order."""
    keyed = [e for e in facts.events if e.kind in _KEY_EVENTS]
    gap = _gap(facts.frames)
    for i, first in enumerate(keyed):
        for second in keyed[i + 1 :]:
            if second.object != first.object and second.frame - first.frame >= gap:
                return first, second
    return None


def _eventful(facts: SceneFacts) -> set[int]:
    """Objects with key events."""
    return {e.object for e in facts.events if e.kind in _KEY_EVENTS}


def _first_event(facts: SceneFacts, o: ObjectFacts) -> int:
    """Frame of the object's first key event (0 without one)."""
    return min((e.frame for e in facts.events if e.object == o.index and e.kind in _KEY_EVENTS), default=0)


def _caption_kinds(facts: SceneFacts) -> dict[str, float]:
    kinds = {"clauses": 0.5, "progressive": 0.25}
    if len(facts.objects) == 2:
        kinds["while"] = 0.15
    if len(facts.objects) > 1:
        kinds["main"] = 0.2
    if len(facts.objects) > 1 and (_order_pair(facts) or len(_eventful(facts)) == 1):
        kinds["order"] = 0.35
    return kinds


def _build_caption(facts: SceneFacts, rng: np.random.Generator, kind: str) -> str | None:
    s = _Sentence(facts, rng)
    objects = list(facts.objects)
    if kind == "progressive":
        parts = [s.ing(o) for o in objects]
        if any(part is None for part in parts):
            return None
        if len(objects) == 1:
            np_text, ing_text = parts[0]
            template = s.pick(("{np} is {ing}", "there is {np} {ing}", "{np} is seen {ing}"))
            return template.format(np=np_text, ing=ing_text)
        texts = [f"{n} {i}" for n, i in parts]
        lead = "there is " if s.chance(0.5) else "we see "
        return lead + (" and ".join(texts) if len(texts) == 2 else ", ".join(texts[:-1]) + " and " + texts[-1])
    if kind == "while" and len(objects) == 2:
        starts = [_first_event(facts, o) for o in objects]
        if starts[0] == starts[1]:
            first, second = objects if s.chance(0.6) else objects[::-1]
        else:  # the one whose events come first is told first
            first, second = objects if starts[0] < starts[1] else objects[::-1]
        return f"{s.clause(first)} {s.pick(('while', 'as', 'while'))} {s.clause(second)}"
    if kind == "order" and len(objects) > 1:
        pair = _order_pair(facts)
        if pair is not None:
            first, second = pair
            template = s.pick(_ORDER)
            later_definite = (lambda e: e.kind not in ("appears", "enters") and s.chance(0.4))
            if template.index("{A}") < template.index("{B}"):
                a_text = s.event(first)
                b_text = s.event(second, definite=later_definite(second) or None)
            else:
                b_text = s.event(second)
                a_text = s.event(first, definite=later_definite(first) or None)
            return template.format(A=a_text, B=b_text)
        # one object has events, the others none: "a blue square appears while a red ball moves ..."
        event = next(e for e in facts.events if e.kind in _KEY_EVENTS)
        other = next(o for o in objects if o.index not in _eventful(facts))
        if s.chance(0.5):
            e_text = s.event(event)
            return f"{e_text} {s.pick(('while', 'as'))} {s.clause(other)}"
        c_text = s.clause(other)
        return f"{c_text} and {s.time(event.frame)} {s.event(event)}"
    if kind == "main":
        objects = objects[:1]
    else:  # "a ... and a ..." reads as a sequence: tell the objects in the order their events start
        objects.sort(key=lambda o: _first_event(facts, o))
    clauses = [s.clause(o) for o in objects]
    if len(clauses) == 1:
        text = clauses[0]
    elif len(clauses) == 2:
        text = " and ".join(clauses)
    else:
        text = ", ".join(clauses[:-1]) + " and " + clauses[-1]
    if s.chance(0.15 * s.brevity):
        text += " " + s.background()
    return text


def caption_scene(facts: SceneFacts, rng: np.random.Generator | int | None = None, count: int = 5) -> list[str]:
    """``count`` paraphrased reference captions of a scene (MSR-VTT style: lower case, short, no
    final period), from a template grammar with synonyms (moves / slides / travels / goes,
    circle / ball / disc, to the right / from left to right / rightwards...), sentence forms for
    one to three objects and for the order of events (``first ... then ...``, ``... after ...``).

    Most captions state every object's main motion and its temporal events (appearing,
    disappearing, starting, stopping, entering, leaving, bouncing) in time order; with several
    objects some, as MSR-VTT references do, tell only the first object or only the order of two
    events. Nothing said is false: the direction words up, down, left, right, top and bottom
    appear only as directions, sides and walls, and ``then`` / ``before`` / ``after`` follow the
    event frames. Deterministic given ``rng`` (a Generator or a seed). If no new wording turns up
    after many tries, the list is topped up with repeats so it always has ``count`` entries.
    """
    if count < 1:
        raise InvalidValueError(f"count must be >= 1, got {count}")
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    if not facts.objects:
        empty = ("an empty {s} background", "nothing happens on a {s} background", "a {s} textured background with nothing moving", "an empty screen")
        order = rng.permutation(len(empty))
        return [_clean(empty[order[k % len(empty)]].format(s=facts.background)) for k in range(count)]
    kinds = _caption_kinds(facts)
    names = list(kinds)
    weights = np.asarray([kinds[k] for k in names])
    weights = weights / weights.sum()
    captions: list[str] = []
    attempts = 0
    while len(captions) < count and attempts < 30 * count:
        attempts += 1
        if len(captions) == 1 and "order" in kinds and attempts < 10:
            kind = "order"
        else:
            kind = names[int(rng.choice(len(names), p=weights))]
        text = _build_caption(facts, rng, kind)
        if text is None:
            continue
        text = _clean(text)
        if text and text not in captions:
            captions.append(text)
    if not captions:  # pragma: no cover - the plain clause form always succeeds
        captions.append(_clean(_build_caption(facts, rng, "clauses") or "shapes move on a background"))
    while len(captions) < count:
        captions.append(captions[len(captions) % max(1, len(captions))])
    return captions


# --- commonsense (V2C style) ----------------------------------------------------------------------

_EDGES = {
    "right": "the right edge",
    "left": "the left edge",
    "up": "the top of the screen",
    "down": "the bottom of the screen",
    "up-right": "the top right corner",
    "up-left": "the top left corner",
    "down-right": "the bottom right corner",
    "down-left": "the bottom left corner",
}
_FURTHER = {
    "right": "further to the right",
    "left": "further to the left",
    "up": "higher up",
    "down": "lower down",
    "up-right": "further up and to the right",
    "up-left": "further up and to the left",
    "down-right": "further down and to the right",
    "down-left": "further down and to the left",
}
_OPPOSITE = {"right": "left", "left": "right", "top": "bottom", "bottom": "top"}


def _near_edge(direction: str, end: tuple[float, float]) -> bool:
    dy, dx = DIRECTIONS[direction]
    y, x = end
    checks = []
    if dx:
        checks.append(x > 0.7 if dx > 0 else x < 0.3)
    if dy:
        checks.append(y > 0.7 if dy > 0 else y < 0.3)
    return all(checks)


def commonsense(facts: SceneFacts) -> dict[str, str]:
    """V2C style commonsense about the main (first visible) object: ``intention`` (why it
    does what it does, ``to reach the right edge``), ``effect`` (what comes of it, ``it ends up
    near the right edge``) and ``attribute`` (what it is like, ``fast``). Deterministic; like
    the captions, these depend on the temporal facts (direction, order, growth sign, spin sense)."""
    if not facts.objects:
        return {"intention": "to show an empty scene", "effect": "nothing happens", "attribute": "still"}
    o = facts.objects[0]
    speed_word = {"slow": "slow", "fast": "fast", "medium": "steady"}.get(o.speed or "", "steady")
    if o.motion == "move" and o.direction:
        if o.bounces:
            wall = o.bounces[0][1]
            if wall:
                return {"intention": f"to bounce off the {wall} wall", "effect": f"it heads back towards the {_OPPOSITE[wall]}", "attribute": "bouncy"}
            return {"intention": "to turn around", "effect": "it heads back the way it came", "attribute": "restless"}
        if o.leave:
            return {"intention": "to leave the screen", "effect": f"it goes out of view {_at_side(o.leave)}", "attribute": speed_word}
        if o.enter:
            return {"intention": "to enter the scene", "effect": f"it comes into view from the {o.enter}", "attribute": speed_word}
        place = "near " + _EDGES[o.direction] if _near_edge(o.direction, o.end_position) else _FURTHER[o.direction]
        intention = f"to reach {_EDGES[o.direction]}"
        if o.stop is not None:
            return {"intention": intention, "effect": f"it stops {place}", "attribute": "tired"}
        if o.start is not None:
            return {"intention": f"to set off towards {_EDGES[o.direction]}", "effect": f"it ends up {place}", "attribute": "hesitant"}
        if o.speed_change == "accelerating":
            return {"intention": intention, "effect": f"it ends up {place} moving fast", "attribute": "accelerating"}
        if o.speed_change == "decelerating":
            return {"intention": intention, "effect": f"it ends up {place} moving slowly", "attribute": "decelerating"}
        return {"intention": intention, "effect": f"it ends up {place}", "attribute": speed_word}
    if o.motion == "spin":
        sense = o.spin or "clockwise"
        return {"intention": f"to turn {sense}", "effect": f"it ends up rotated {sense}", "attribute": "spinning"}
    if o.motion == "grow":
        return {"intention": "to get bigger", "effect": "it ends up larger than before", "attribute": "growing"}
    if o.motion == "shrink":
        return {"intention": "to get smaller", "effect": "it ends up smaller than before", "attribute": "shrinking"}
    if o.appear > 0:
        return {"intention": "to join the scene", "effect": "it becomes visible", "attribute": "sudden"}
    if o.disappear is not None:
        return {"intention": "to leave the scene", "effect": "it is no longer visible", "attribute": "fleeting"}
    return {"intention": "to stay where it is", "effect": "nothing changes", "attribute": "still"}


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


def _random_object(rng: np.random.Generator, place: np.random.Generator, color: str, frames: int, main: bool, max_speed: float | None) -> SceneObject:
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
        return SceneObject(shape, color, size, position, spin=spin, growth=growth, appear=appear, disappear=disappear, start=start, stop=stop, angle=angle)

    # a moving object
    direction = str(rng.choice(["right", "left", "up", "down"] if rng.random() < 0.8 else ["up-right", "up-left", "down-right", "down-left"]))
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


def random_scene(seed: int, max_objects: int = 3, max_speed: float | None = None, *, frames: int = 16, min_objects: int = 1) -> Scene:
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

    def clip(self, item: VideoItem, T: int, B: int, size: tuple[int, int], gray: bool = False) -> np.ndarray:  # noqa: N803
        """The T·B frames of the item's scene at ``size = (H, W)``: uint8 ``(T, B, H, W[, 3])``."""
        if T < 1 or B < 1:
            raise InvalidValueError(f"T and B must be >= 1, got T={T}, B={B}")
        height, width = (int(v) for v in size)
        scene = self.scene(item)
        if self.frames is None:
            times = _timeline_times(T * B, self.timeline)
        else:
            from snapcap.datasets.video import clip_indices

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
