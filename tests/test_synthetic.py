"""The procedural corpus: scenes, their temporal facts, captions, V2C annotations and clips."""

from __future__ import annotations

import json
import re
import time

import numpy as np
import pytest

from snapcap.datasets.base import SPLITS
from snapcap.datasets.synthetic import (
    DIRECTIONS,
    Scene,
    SceneFacts,
    SceneObject,
    SyntheticCorpus,
    caption_scene,
    commonsense,
    demo_video,
    describe_scene,
    random_scene,
    render,
    time_reversed,
)
from snapcap.errors import ConfigError, InvalidValueError

F = 32

# The direction a phrase names once "from A to B" is rewritten to B.
_FROM_TO = {
    "from left to right": "rightwards",
    "from right to left": "leftwards",
    "from bottom to top": "upwards",
    "from top to bottom": "downwards",
}
_FORBIDDEN = {
    "right": {"left", "leftwards"},
    "left": {"right", "rightwards"},
    "up": {"down", "downwards", "bottom", "lower"},
    "down": {"up", "upwards", "top", "upper"},
}
_REQUIRED = {
    "right": {"right", "rightwards"},
    "left": {"left", "leftwards"},
    "up": {"up", "upwards", "top"},
    "down": {"down", "downwards", "bottom"},
}
_APPEAR = r"(appears|comes into view|becomes visible|pops into view)"
_DISAPPEAR = r"(disappears|vanishes|goes away)"


def words(caption: str) -> set[str]:
    for phrase, replacement in _FROM_TO.items():
        caption = caption.replace(phrase, replacement)
    return set(re.findall(r"[a-z]+", caption))


def many_captions(facts: SceneFacts, seeds: int = 8, count: int = 5) -> list[str]:
    return [c for seed in range(seeds) for c in caption_scene(facts, np.random.default_rng(seed), count=count)]


def mover(direction: str, shape: str = "circle", color: str = "red", **kw) -> SceneObject:
    dy, dx = DIRECTIONS[direction]
    distance = 0.5
    start = (0.5 - dy * distance / 2, 0.5 - dx * distance / 2)
    return SceneObject(shape, color, 0.1, start, (dy * distance / (F - 1), dx * distance / (F - 1)), **kw)


def scene_of(*objects: SceneObject, seed: int = 3) -> Scene:
    return Scene(objects=tuple(objects), background=0.2, texture=0.08, seed=seed)


# --- rendering ------------------------------------------------------------------------------------


@pytest.mark.parametrize("frames,height,width", [(1, 2, 2), (5, 7, 33), (9, 40, 24), (3, 64, 64)])
def test_render_any_size_and_length(frames, height, width):
    scene = random_scene(11, frames=frames + 1)
    video = render(scene, frames, height, width)
    assert video.shape == (frames, height, width, 3) and video.dtype == np.float32
    assert 0.0 <= video.min() and video.max() <= 1.0
    gray = render(scene, frames, height, width, rgb=False)
    assert gray.shape == (frames, height, width) and gray.dtype == np.float32


def test_render_draws_the_object_where_it_is():
    scene = Scene(objects=(SceneObject("circle", "white", 0.1, (0.5, 0.25)),), background=0.0, texture=0.0)
    frame = render(scene, 1, 40, 40, rgb=False)[0]
    assert frame[20, 10] > 0.9 and frame[20, 30] < 0.05
    rim = frame[20, 10:20]  # anti-aliased: some pixel of the rim is partly covered
    assert ((rim > 0.02) & (rim < 0.98)).any()


def test_timeline_stretches_the_same_motion_over_any_length():
    scene = scene_of(mover("right"))
    full = render(scene, F, 24, 24)
    short = render(scene, 5, 24, 24, timeline=F)
    np.testing.assert_allclose(short[0], full[0], atol=1e-6)
    np.testing.assert_allclose(short[-1], full[-1], atol=1e-6)


def test_old_entry_points_still_work():
    from snapcap.datasets.sources import load_frames

    assert demo_video(8, 32, 48).shape == (8, 32, 48, 3)
    assert load_frames("builtin:scene:3", size=(24, 32), max_frames=6).frames.shape == (1, 6, 24, 32, 3)
    capped = random_scene(5, 3, 0.004, frames=40)
    assert all(np.hypot(*o.velocity) <= 0.004 + 1e-12 for o in capped.objects)
    y, x, size, angle = SceneObject("square", "blue").state(3)
    assert (y, x, size, angle) == (0.5, 0.5, 0.12, 0.0)
    with pytest.raises(ConfigError):
        SceneObject("hexagon", "red")
    with pytest.raises(InvalidValueError):
        SceneObject("circle", "red", appear=5, disappear=3)


# --- facts ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("direction", list(DIRECTIONS))
def test_direction_fact_from_the_trajectory(direction):
    facts = describe_scene(scene_of(mover(direction)), F)
    (obj,) = facts.objects
    assert obj.motion == "move" and obj.direction == direction and obj.bounces == ()


def test_bounce_speed_spin_growth_facts():
    bouncing = SceneObject("circle", "red", 0.1, (0.5, 0.6), (0.0, 0.9 / (F - 1)))
    (b,) = describe_scene(scene_of(bouncing), F).objects
    assert b.direction == "right" and b.bounces and b.bounces[0][1] == "right" and b.final_direction == "left"
    slow = describe_scene(scene_of(SceneObject("circle", "red", 0.1, (0.5, 0.4), (0.0, 0.15 / (F - 1)))), F).objects[0]
    fast = describe_scene(
        scene_of(SceneObject("circle", "red", 0.1, (0.5, 0.15), (0.0, 0.7 / (F - 1)), bounce=False)), F
    ).objects[0]
    assert slow.speed == "slow" and fast.speed == "fast"
    cw = describe_scene(scene_of(SceneObject("bar", "red", 0.15, spin=3.0 / F)), F).objects[0]
    ccw = describe_scene(scene_of(SceneObject("square", "red", 0.15, spin=-3.0 / F)), F).objects[0]
    round_ = describe_scene(scene_of(SceneObject("circle", "red", 0.15, spin=3.0 / F)), F).objects[0]
    assert (cw.motion, cw.spin, ccw.spin, round_.spin, round_.motion) == ("spin", "clockwise", "counter-clockwise", None, "still")
    grows = describe_scene(scene_of(SceneObject("ring", "red", 0.08, growth=2.0 ** (1 / (F - 1)) - 1)), F).objects[0]
    assert grows.motion == "grow" and grows.growth == "growing"


def test_clockwise_is_clockwise_on_screen():
    # a horizontal bar turning by a positive angle lowers its right end (rows grow downwards)
    scene = Scene(objects=(SceneObject("bar", "white", 0.3, spin=0.3),), background=0.0, texture=0.0)
    video = render(scene, 2, 64, 64, rgb=False)
    rows = [np.nonzero(video[k][:, 45:56] > 0.5)[0].mean() for k in range(2)]
    assert rows[1] > rows[0] + 1
    assert describe_scene(scene, 2).objects[0].spin == "clockwise"


def test_facts_are_json_and_round_trip():
    facts = describe_scene(random_scene(4, frames=F), F)
    data = json.loads(json.dumps(facts.to_dict()))
    assert SceneFacts.from_dict(data) == facts


def test_random_scenes_balance_temporal_facts():
    directions, flips = {}, {}
    for seed in range(300):
        facts = describe_scene(random_scene(seed, max_objects=2, frames=F), F)
        for o in facts.objects:
            if o.direction in ("right", "left", "up", "down"):
                directions[o.direction] = directions.get(o.direction, 0) + 1
            for value in (o.spin, o.growth, o.speed_change):
                if value:
                    flips[value] = flips.get(value, 0) + 1
        for e in facts.events:
            flips[e.kind] = flips.get(e.kind, 0) + 1
    total = sum(directions.values())
    assert all(directions[d] > 0.15 * total for d in ("right", "left", "up", "down")), directions
    for a, b in [
        ("clockwise", "counter-clockwise"),
        ("growing", "shrinking"),
        ("accelerating", "decelerating"),
        ("appears", "disappears"),
        ("starts", "stops"),
    ]:
        assert flips.get(a, 0) > 5 and flips.get(b, 0) > 5, flips
        assert 0.5 < flips[a] / flips[b] < 2.0, flips
    assert flips.get("bounces", 0) > 5 and flips.get("enters", 0) + flips.get("leaves", 0) > 5


# --- captions -------------------------------------------------------------------------------------


@pytest.mark.parametrize("direction", ["right", "left", "up", "down"])
def test_captions_name_the_right_direction(direction):
    for shape in ("circle", "square"):
        facts = describe_scene(scene_of(mover(direction, shape)), F)
        for caption in many_captions(facts):
            found = words(caption)
            assert not (found & _FORBIDDEN[direction]), caption
            assert found & _REQUIRED[direction], caption


def test_two_objects_each_get_their_own_direction():
    facts = describe_scene(scene_of(mover("right", "circle", "red"), mover("up", "square", "blue")), F)
    for caption in many_captions(facts):
        assert caption == caption.lower() and "left" not in words(caption) and "down" not in words(caption)


def _order_claims(caption: str) -> list[tuple[str, str]]:
    """(earlier colour, later colour) that a caption asserts with then / later / before / after."""
    text = re.sub(r"after a (moment|short while)", "", caption)
    colours = ("red", "blue")

    def only(part: str) -> str | None:
        present = [c for c in colours if c in part.split()]
        return present[0] if len(present) == 1 else None

    for marker, reverse in (
        (" and after that ", False),
        (" and then ", False),
        (" then ", False),
        (" and later ", False),
        (" before ", False),
        (" after ", True),
    ):
        if marker in text:
            left, right = text.split(marker, 1)
            a, b = only(left), only(right)
            if a and b and a != b:
                return [(b, a)] if reverse else [(a, b)]
            return []
    return []


def test_event_order_captions_for_a_late_appearance():
    # the blue square (object 0) appears at frame 24; the red circle waits and starts moving at frame 8
    blue = SceneObject("square", "blue", 0.1, (0.25, 0.75), appear=24)
    red = SceneObject("circle", "red", 0.1, (0.7, 0.2), (0.0, 0.5 / (F - 1 - 8)), start=8)
    facts = describe_scene(scene_of(blue, red), F)
    assert [(e.kind, e.object) for e in facts.events] == [("starts", 1), ("appears", 0)]
    claims = [claim for caption in many_captions(facts, seeds=12) for claim in _order_claims(caption)]
    assert claims and all(claim == ("red", "blue") for claim in claims), claims
    for caption in many_captions(facts, seeds=12):
        assert not re.search(r"red (circle|ball|disc) " + _APPEAR, caption), caption


def test_near_simultaneous_events_are_never_told_in_the_wrong_order():
    # blue (object 0) vanishes at frame 21, one frame after red: too close to order, never reversed
    blue = SceneObject("square", "blue", 0.1, (0.25, 0.75), disappear=21)
    red = SceneObject("circle", "red", 0.1, (0.8, 0.3), (-0.5 / 19, 0.0), disappear=20, stop=19)
    facts = describe_scene(scene_of(blue, red), F)
    assert [(e.kind, e.object) for e in facts.events] == [("disappears", 1), ("disappears", 0)]
    for caption in many_captions(facts, seeds=12):
        assert all(claim == ("red", "blue") for claim in _order_claims(caption)), caption


def test_single_object_appears_then_moves_and_reverse_moves_then_disappears():
    scene = scene_of(SceneObject("circle", "red", 0.1, (0.5, 0.25), (0.0, 0.5 / (F - 1 - 14)), appear=14, start=14))
    facts = describe_scene(scene, F)
    assert facts.objects[0].appear == 14 and facts.objects[0].direction == "right"
    for caption in many_captions(facts):
        appear = re.search(_APPEAR, caption)
        moves = re.search(r"right|rightwards", caption)
        assert appear and moves and appear.start() < moves.start(), caption
    backwards = describe_scene(time_reversed(scene, F), F)
    assert backwards.objects[0].disappear == F - 14 and backwards.objects[0].direction == "left"
    for caption in many_captions(backwards):
        gone = re.search(_DISAPPEAR, caption)
        moves = re.search(r"left|leftwards", caption)
        assert gone and moves and moves.start() < gone.start(), caption


REVERSIBLE = {
    "direction": (scene_of(mover("right")), "direction"),
    "vertical + acceleration": (
        scene_of(SceneObject("square", "green", 0.1, (0.2, 0.5), (0.1 / (F - 1), 0.0), acceleration=(0.8 / (F - 1) ** 2, 0.0))),
        "speed_change",
    ),
    "spin": (scene_of(SceneObject("bar", "yellow", 0.2, spin=2.5 / F)), "spin"),
    "growth": (scene_of(SceneObject("triangle", "purple", 0.08, growth=2.2 ** (1 / (F - 1)) - 1)), "growth"),
    "appearance": (
        scene_of(mover("down", "ring", "cyan"), SceneObject("square", "white", 0.08, (0.2, 0.8), appear=20)),
        "appear",
    ),
    "late start": (scene_of(SceneObject("circle", "orange", 0.1, (0.5, 0.2), (0.0, 0.5 / 20), start=11)), "start"),
    "entering": (scene_of(SceneObject("square", "red", 0.1, (0.5, -0.15), (0.0, 0.8 / (F - 1)), bounce=False)), "enter"),
}


@pytest.mark.parametrize("name", list(REVERSIBLE))
def test_time_reversal_keeps_the_long_exposure_and_changes_the_captions(name):
    scene, field = REVERSIBLE[name]
    backwards = time_reversed(scene, F)
    video, reverse = render(scene, F, 40, 40), render(backwards, F, 40, 40)
    np.testing.assert_allclose(reverse, video[::-1], atol=1e-4)  # exactly the same frames backwards
    assert np.abs(video.mean(axis=0) - reverse.mean(axis=0)).max() < 1e-4  # same long exposure
    assert np.abs(video[0] - reverse[0]).max() > 0.3  # but not the same video
    facts, facts_back = describe_scene(scene, F), describe_scene(backwards, F)
    assert [getattr(o, field) for o in facts.objects] != [getattr(o, field) for o in facts_back.objects]
    captions, captions_back = set(many_captions(facts, seeds=3)), set(many_captions(facts_back, seeds=3))
    assert not captions & captions_back
    assert commonsense(facts) != commonsense(facts_back)


def test_caption_form_and_determinism():
    for seed in range(40):
        facts = describe_scene(random_scene(seed, frames=F), F)
        first = caption_scene(facts, np.random.default_rng(seed), count=5)
        assert first == caption_scene(facts, np.random.default_rng(seed), count=5)
        assert len(first) == 5 and len(set(first)) >= 3
        for caption in first:
            assert caption and caption == caption.lower() and caption == caption.strip()
            assert not caption.endswith((".", ",")) and "  " not in caption
        notes = commonsense(facts)
        assert notes["intention"].startswith("to ") and notes["effect"] and notes["attribute"]


# --- the corpus -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def corpus() -> SyntheticCorpus:
    return SyntheticCorpus(num_videos=40, seed=2)


def test_corpus_items(corpus):
    assert corpus.name == "synthetic" and len(corpus) == 40
    for index, item in enumerate(corpus.items):
        assert item.video_id == f"synth{index:05d}" and item.path is None and item.split in SPLITS
        assert len(item.captions) == 5 and all(c and c == c.lower() and not c.endswith(".") for c in item.captions)
        extra = item.extra
        assert {"scene_seed", "facts", "intention", "effect", "attribute"} <= set(extra)
        assert all(isinstance(extra[k], str) and extra[k] for k in ("intention", "effect", "attribute"))
        json.dumps(extra)
        assert SceneFacts.from_dict(extra["facts"]).objects
    info = corpus.describe()
    json.dumps(info)
    assert info["seed"] == 2 and info["videos"] == 40 and info["splits"] == {"train": 32, "val": 4, "test": 4}


def test_corpus_is_deterministic_and_seeded(corpus):
    again = SyntheticCorpus(num_videos=40, seed=2)
    other = SyntheticCorpus(num_videos=40, seed=3)
    assert [i.captions for i in again.items] == [i.captions for i in corpus.items]
    assert [i.extra for i in again.items] == [i.extra for i in corpus.items]
    assert [i.captions for i in other.items] != [i.captions for i in corpus.items]
    item = corpus.items[3]
    clip = corpus.clip(item, 2, 4, (24, 32))
    np.testing.assert_array_equal(clip, again.clip(again.items[3], 2, 4, (24, 32)))
    assert not np.array_equal(clip, other.clip(other.items[3], 2, 4, (24, 32)))
    prefix = SyntheticCorpus(num_videos=10, seed=2)  # adding videos keeps the first ones
    assert [i.captions for i in prefix.items] == [i.captions for i in corpus.items[:10]]


@pytest.mark.parametrize("T,B,size", [(1, 1, (9, 13)), (2, 3, (17, 40)), (4, 8, (64, 64)), (8, 8, (32, 20))])
def test_clip_shapes_and_values(corpus, T, B, size):
    item = corpus.items[5]
    clip = corpus.clip(item, T, B, size)
    assert clip.shape == (T, B, *size, 3) and clip.dtype == np.uint8
    gray = corpus.clip(item, T, B, size, gray=True)
    assert gray.shape == (T, B, *size) and gray.dtype == np.uint8
    assert clip.max() > clip.min()


def test_clip_motion_spans_any_number_of_frames(corpus):
    item = corpus.items[0]
    short, long_ = corpus.clip(item, 1, 8, (32, 32)), corpus.clip(item, 8, 8, (32, 32))
    np.testing.assert_array_equal(short[0, 0], long_[0, 0])
    np.testing.assert_array_equal(short[0, -1], long_[-1, -1])
    # a mover crosses a good part of the frame in 8 frames as in 64
    facts = SceneFacts.from_dict(item.extra["facts"])
    start, end = np.asarray(facts.objects[0].start_position), np.asarray(facts.objects[0].end_position)
    if facts.objects[0].motion == "move":
        assert np.hypot(*(end - start)) > 0.1


def test_fixed_length_videos_sample_like_files():
    from snapcap.datasets.video import clip_indices

    corpus = SyntheticCorpus(num_videos=3, seed=1, frames=40)
    item = corpus.items[1]
    clip = corpus.clip(item, 2, 4, (16, 16))
    frames = render(corpus.scene(item), 40, 16, 16)
    expected = np.rint(frames[clip_indices(40, 2, 4)] * 255).astype(np.uint8)
    np.testing.assert_array_equal(clip, expected)


def test_clip_is_fast(corpus):
    item = corpus.items[1]
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        corpus.clip(item, 8, 8, (64, 64))
        best = min(best, time.perf_counter() - start)
    assert best < 0.5


def test_splits_by_index_fractions():
    corpus = SyntheticCorpus(num_videos=20, seed=0, splits=(0.5, 0.25, 0.25))
    splits = [item.split for item in corpus.items]
    assert splits == ["train"] * 10 + ["val"] * 5 + ["test"] * 5
    assert [i.split for i in SyntheticCorpus(num_videos=200).items].count("train") == 160
    for bad in [(0.5, 0.5, 0.5), (1.2, -0.1, -0.1), (0.5, 0.5)]:
        with pytest.raises(InvalidValueError):
            SyntheticCorpus(num_videos=5, splits=bad)
    with pytest.raises(InvalidValueError):
        corpus.clip(SyntheticCorpus(num_videos=30).items[25], 1, 1, (8, 8))


def test_temporal_pairs_share_the_long_exposure():
    corpus = SyntheticCorpus(num_videos=8, seed=4, temporal_pairs=True)
    differ = 0
    for k in range(0, 8, 2):
        forward, backward = corpus.items[k], corpus.items[k + 1]
        assert forward.split == backward.split and backward.extra["reversed"] and backward.extra["pair"] == forward.video_id
        a, b = corpus.clip(forward, 4, 4, (24, 24)).astype(float), corpus.clip(backward, 4, 4, (24, 24)).astype(float)
        assert np.abs(a.mean(axis=(0, 1)) - b.mean(axis=(0, 1))).max() < 1.0  # uint8 rounding only
        differ += forward.captions != backward.captions
    assert differ >= 3
