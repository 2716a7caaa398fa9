"""The scene model and its rendering: moving shapes over a textured background.

A :class:`Scene` is a background texture and a list of :class:`SceneObject` (shape, colour,
size, start position, velocity, acceleration, spin, growth, the frames it appears and disappears
at, the frames its motion starts and stops at). :func:`render` draws it at any resolution and
length with anti-aliased edges (:func:`render_times` at any scene times), :func:`demo_video` is
the built-in demo clip, and :func:`time_reversed` builds the scene played backwards (same long
exposure, opposite temporal facts).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np

from snapcap.errors import ConfigError, InvalidValueError

__all__ = [
    "COLORS",
    "SHAPES",
    "SYMMETRY",
    "DIRECTIONS",
    "SceneObject",
    "Scene",
    "render",
    "render_times",
    "timeline_times",
    "demo_video",
    "with_objects",
    "time_reversed",
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
SYMMETRY: dict[str, int | None] = {"circle": None, "ring": None, "square": 4, "triangle": 3, "bar": 2}

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


def timeline_times(frames: int, timeline: int | None) -> np.ndarray:
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
    return render_times(scene, timeline_times(frames, timeline), height, width, rgb=rgb)


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
