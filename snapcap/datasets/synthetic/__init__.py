"""Procedural scenes: moving shapes over a textured background, deterministic from a seed.

The point of the corpus is the *temporal* facts that a coded snapshot keeps and a long exposure
(the mean of the frames) blurs away: moving right and moving left smear an object the same way,
and so do appearing and disappearing, growing and shrinking, spinning clockwise and
counter-clockwise, speeding up and slowing down.

Modules (each depends only on the ones above it):

- :mod:`~snapcap.datasets.synthetic.scene`: the data model (:class:`Scene`, :class:`SceneObject`,
  :data:`COLORS`, :data:`SHAPES`, :data:`DIRECTIONS`) and rendering (:func:`render`,
  :func:`render_times`, :func:`demo_video`), :func:`with_objects` and :func:`time_reversed` (the
  scene played backwards: same long exposure, opposite facts).
- :mod:`~snapcap.datasets.synthetic.facts`: :func:`describe_scene` measures the facts on the
  rendered trajectory (:class:`SceneFacts`, :class:`ObjectFacts`, :class:`Event`).
- :mod:`~snapcap.datasets.synthetic.language`: :func:`caption_scene` writes MSR-VTT style
  paraphrases from the facts, :func:`commonsense` V2C style intention / effect / attribute phrases.
- :mod:`~snapcap.datasets.synthetic.corpus`: :func:`random_scene` draws a scene from a seed, and
  :class:`SyntheticCorpus` is the default offline corpus built from all of the above.

The public names of all four are re-exported here.
"""

from __future__ import annotations

from snapcap.datasets.synthetic.corpus import NOMINAL_FRAMES, SyntheticCorpus, random_scene
from snapcap.datasets.synthetic.facts import Event, ObjectFacts, SceneFacts, describe_scene
from snapcap.datasets.synthetic.language import caption_scene, commonsense
from snapcap.datasets.synthetic.scene import (
    COLORS,
    DIRECTIONS,
    SHAPES,
    Scene,
    SceneObject,
    demo_video,
    render,
    render_times,
    time_reversed,
    with_objects,
)

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
