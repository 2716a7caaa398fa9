"""Procedural scenes: moving shapes over a textured background, deterministic from a seed.

A :class:`Scene` is a background texture and a list of :class:`SceneObject` (shape, colour,
size, start position, velocity, spin, growth, the frame it appears at). :func:`render` draws
it at any resolution and length with anti-aliased edges; :func:`random_scene` draws a scene
from a seed. The objects' motions are what coded snapshots keep and a long exposure blurs away.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from snapcap.errors import ConfigError, InvalidValueError

__all__ = ["COLORS", "SHAPES", "SceneObject", "Scene", "render", "random_scene", "demo_video"]

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


@dataclass(frozen=True)
class SceneObject:
    """One moving object; positions and sizes are fractions of the frame (0..1).

    Attributes:
        shape: one of :data:`SHAPES`.
        color: a name of :data:`COLORS`.
        size: radius (half-width) as a fraction of min(H, W).
        position: (y, x) centre at frame 0.
        velocity: (vy, vx) per frame, in frame fractions.
        spin: rotation per frame, radians.
        growth: relative size change per frame (size_t = size · (1 + growth)^t).
        appear: first frame in which the object is visible.
        bounce: reflect off the frame edges instead of leaving the frame.
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

    def __post_init__(self) -> None:
        if self.shape not in SHAPES:
            raise ConfigError(f"shape must be one of {', '.join(SHAPES)}, got {self.shape!r}")
        if self.color not in COLORS:
            raise ConfigError(f"color must be one of {', '.join(COLORS)}, got {self.color!r}")
        if not 0 < self.size < 1:
            raise InvalidValueError(f"size must be in (0, 1), got {self.size!r}")

    def state(self, t: int) -> tuple[float, float, float, float]:
        """Centre (y, x), size and angle at frame ``t``."""
        size = self.size * (1.0 + self.growth) ** t
        coords = []
        for start, speed in zip(self.position, self.velocity):
            value = start + speed * t
            if self.bounce:
                lo, hi = size, 1.0 - size
                if hi > lo:
                    period = 2 * (hi - lo)
                    phase = (value - lo) % period
                    value = lo + (phase if phase <= hi - lo else period - phase)
            coords.append(value)
        return coords[0], coords[1], size, self.spin * t


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
    else:  # triangle (equilateral, pointing up before rotation)
        k = math.sqrt(3.0)
        dist = np.maximum(np.abs(u) * k / 2 + v / 2, -v) - size / 2
    return np.clip(0.5 - dist / softness, 0.0, 1.0)


def _texture(scene: Scene, height: int, width: int, t: int) -> np.ndarray:
    rng = np.random.default_rng(scene.seed)
    yy, xx = np.mgrid[0:height, 0:width] / max(height, width)
    yy = yy - scene.drift[0] * t
    xx = xx - scene.drift[1] * t
    field_ = np.zeros((height, width))
    for _ in range(4):
        fy, fx = rng.normal(0, scene.texture_scale, 2)
        phase = rng.uniform(0, 2 * math.pi)
        field_ += np.cos(2 * math.pi * (fy * yy + fx * xx) + phase)
    return scene.background + scene.texture * field_ / 4


def render(scene: Scene, frames: int, height: int, width: int, rgb: bool = True) -> np.ndarray:
    """Draw ``frames`` frames: float32 ``(frames, H, W, 3)`` (or ``(frames, H, W)`` gray) in [0, 1]."""
    if frames < 1 or height < 2 or width < 2:
        raise InvalidValueError(f"need frames >= 1 and H, W >= 2, got {frames}, {height}, {width}")
    scale = min(height, width)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    video = np.empty((frames, height, width, 3), dtype=np.float32)
    for t in range(frames):
        base = _texture(scene, height, width, t)
        image = np.repeat(base[:, :, None], 3, axis=2)
        for obj in scene.objects:
            if t < obj.appear:
                continue
            cy, cx, size, angle = obj.state(t)
            cover = _coverage(obj.shape, yy - cy * height, xx - cx * width, size * scale, angle, softness=1.0)
            image = image * (1 - cover[:, :, None]) + cover[:, :, None] * np.asarray(COLORS[obj.color])
        video[t] = np.clip(image, 0.0, 1.0)
    if rgb:
        return video
    return (video @ np.asarray([0.299, 0.587, 0.114], dtype=np.float32)).astype(np.float32)


def random_scene(seed: int, max_objects: int = 3, max_speed: float = 0.02) -> Scene:
    """A scene with 1..max_objects objects of random shape, colour, size and motion."""
    rng = np.random.default_rng(seed)
    count = int(rng.integers(1, max_objects + 1))
    colors = list(COLORS)
    objects = []
    for _ in range(count):
        speed = rng.uniform(0.3, 1.0) * max_speed
        direction = rng.uniform(0, 2 * math.pi)
        objects.append(
            SceneObject(
                shape=str(rng.choice(SHAPES)),
                color=str(colors[int(rng.integers(len(colors)))]),
                size=float(rng.uniform(0.08, 0.18)),
                position=(float(rng.uniform(0.25, 0.75)), float(rng.uniform(0.25, 0.75))),
                velocity=(speed * math.sin(direction), speed * math.cos(direction)),
                spin=float(rng.choice([0.0, rng.uniform(-0.15, 0.15)])),
            )
        )
    return Scene(objects=tuple(objects), background=float(rng.uniform(0.1, 0.35)), seed=int(seed))


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
