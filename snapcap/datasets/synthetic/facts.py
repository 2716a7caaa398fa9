"""Temporal facts of a scene, measured on the trajectory the renderer draws.

:func:`describe_scene` turns a :class:`~snapcap.datasets.synthetic.scene.Scene` into
:class:`SceneFacts`: per-object :class:`ObjectFacts` (direction, speed, spin, growth, bounces,
appearing / disappearing, entering / leaving, starting / stopping) and the :class:`Event` list in
time order; the thresholds are the module constants below.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from snapcap.datasets.synthetic.scene import SYMMETRY, Scene, SceneObject
from snapcap.errors import InvalidValueError

__all__ = [
    "SIZE_SMALL",
    "SIZE_LARGE",
    "SPEED_SLOW",
    "SPEED_FAST",
    "MOVE_MIN",
    "SPIN_MIN",
    "GROWTH_MIN",
    "ACCEL_RATIO",
    "Event",
    "ObjectFacts",
    "SceneFacts",
    "event_gap",
    "describe_scene",
]

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


def event_gap(frames: int) -> int:
    """Frames two events must be apart to be told in order (and a start / stop to count)."""
    return max(2, int(round(0.1 * frames)))


def _object_facts(obj: SceneObject, index: int, frames: int) -> tuple[ObjectFacts | None, list[Event]]:
    t = np.arange(frames, dtype=np.float64)
    ys, xs, sizes, angles = (np.atleast_1d(a) * np.ones(frames) for a in obj.states(t))
    shown = np.atleast_1d(obj.visible(t))
    inside = shown & (ys >= 0) & (ys <= 1) & (xs >= 0) & (xs <= 1)
    if not inside.any():
        return None, []
    gap = event_gap(frames)
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
    order = SYMMETRY[obj.shape]
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
