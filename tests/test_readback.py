"""Temporal facts read back out of captions (snapcap.datasets.synthetic.readback)."""

from __future__ import annotations

import pytest

from snapcap.datasets.synthetic import ObjectFacts, SceneFacts, SyntheticCorpus
from snapcap.datasets.synthetic.facts import Event
from snapcap.datasets.synthetic.readback import FACT_TYPES, caption_claims, fact_accuracy, score_caption


@pytest.mark.parametrize("max_objects", [1, 2, 3])
def test_every_reference_caption_states_only_true_facts(max_objects):
    corpus = SyntheticCorpus(num_videos=150, seed=11, max_objects=max_objects)
    stated = dict.fromkeys(FACT_TYPES, 0)
    for item in corpus.items:
        for caption in item.captions:
            for kind, verdict in score_caption(caption, item.extra["facts"]).items():
                assert verdict is not False, (kind, caption, item.extra["facts"])
                stated[kind] += verdict is not None
    expected = [k for k in FACT_TYPES if k != "order"] + (["order"] if max_objects > 1 else [])
    assert all(stated[k] > 0 for k in expected), stated


def test_captions_of_the_time_reversed_video_are_wrong_about_time():
    """Video 2k+1 is video 2k played backwards: its (true) captions are false of video 2k in every
    temporal fact (a bounce is its own reversal, so direction is not always wrong), and true in
    colour and shape."""
    corpus = SyntheticCorpus(num_videos=240, seed=3, temporal_pairs=True, max_objects=1)
    forward = {item.video_id: item.extra["facts"] for item in corpus.items[0::2]}
    reversed_captions = {item.extra["pair"]: item.captions[0] for item in corpus.items[1::2] if item.extra["pair"] in forward}
    scores = fact_accuracy(reversed_captions, forward)
    assert scores["colour"]["accuracy"] == 100.0 and scores["shape"]["accuracy"] == 100.0
    assert scores["direction"]["stated"] > 20 and scores["direction"]["accuracy"] < 30
    for kind in ("spin", "speed change", "grow/shrink", "appear/disappear", "start/stop", "enter/leave"):
        assert scores[kind]["stated"] > 0 and scores[kind]["accuracy"] == 0.0, (kind, scores[kind])
    same = fact_accuracy({vid: c for vid, c in reversed_captions.items()}, {vid: forward[vid] for vid in reversed_captions})
    assert same == scores  # deterministic


def _facts(*objects: ObjectFacts, events: tuple[Event, ...] = ()) -> SceneFacts:
    return SceneFacts(frames=64, objects=objects, events=events)


RED_BALL = ObjectFacts(index=0, shape="circle", color="red", size="medium", motion="move", direction="right")


def test_sides_and_walls_are_not_directions():
    claims = caption_claims("a red ball enters from the left then moves to the right and bounces off the left wall")
    assert [m.directions for m in claims.mentions] == [["right"]]
    assert caption_claims("a red disc leaves the screen on the right").mentions[0].directions == []
    assert caption_claims("a box goes towards the top right corner").mentions[0].directions == ["up-right"]
    assert caption_claims("a box goes up and to the left").mentions[0].directions == ["up-left"]


def test_scores_of_hand_written_captions():
    facts = _facts(RED_BALL)
    assert score_caption("a red ball moves from left to right", facts) == {
        "colour": True,
        "shape": True,
        "direction": True,
        "spin": None,
        "speed change": None,
        "grow/shrink": None,
        "appear/disappear": None,
        "start/stop": None,
        "enter/leave": None,
        "order": None,
    }
    wrong = score_caption("a red ball moves from right to left and gets faster", facts)
    assert wrong["direction"] is False and wrong["speed change"] is False and wrong["shape"] is True
    assert score_caption("a red ball moves to the right while getting bigger", facts)["grow/shrink"] is False
    grows = _facts(ObjectFacts(index=0, shape="ring", color="red", size="small", motion="grow", growth="growing"))
    assert score_caption("a red ring grows larger", grows)["grow/shrink"] is True
    assert score_caption("a red ring is seen getting smaller", grows)["grow/shrink"] is False
    ghost = score_caption("a blue square spins clockwise", facts)  # no blue object, no square
    assert ghost["colour"] is False and ghost["shape"] is False and ghost["spin"] is False
    assert score_caption("a red square moves to the right", facts)["shape"] is False
    assert score_caption("", facts) == dict.fromkeys(FACT_TYPES)
    assert score_caption("a red ball moves to the right", facts.to_dict())["direction"] is True  # dict facts too


def test_order_of_two_objects_events():
    blue = ObjectFacts(index=1, shape="square", color="blue", size="medium", motion="still", appear=30)
    red = ObjectFacts(index=0, shape="circle", color="red", size="medium", motion="still", disappear=10)
    facts = _facts(red, blue, events=(Event(10, 0, "disappears"), Event(30, 1, "appears")))
    assert score_caption("a red ball disappears and then a blue square appears", facts)["order"] is True
    assert score_caption("a blue square appears and then a red ball disappears", facts)["order"] is False
    assert score_caption("a blue square appears after a red ball disappears", facts)["order"] is True
    assert score_caption("a red ball disappears after a blue square appears", facts)["order"] is False
    assert score_caption("a red ball disappears while a blue square appears", facts)["order"] is None
    # a time phrase is not a connector
    assert score_caption("a red ball disappears a little later and a blue square appears", facts)["order"] is None


def test_fact_accuracy_counts_stated_and_right():
    facts = {"a": _facts(RED_BALL), "b": _facts(RED_BALL), "c": _facts(RED_BALL)}
    captions = {"a": "a red ball moves to the right", "b": "a red ball moves to the left", "c": "a red ball", "x": "?"}
    table = fact_accuracy(captions, facts)
    assert table["direction"] == {"stated": pytest.approx(200 / 3), "accuracy": 50.0, "videos": 3}
    assert table["spin"] == {"stated": 0.0, "accuracy": None, "videos": 3}
    assert fact_accuracy({}, facts)["colour"] == {"stated": None, "accuracy": None, "videos": 0}
