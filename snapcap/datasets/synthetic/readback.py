"""Temporal facts read back out of a caption, and scored against the scene's true facts.

A caption of a procedural video states facts: an object's colour and shape, its direction of
motion, its spin, whether it speeds up or slows down, grows or shrinks, appears or disappears,
starts late or stops early, enters or leaves the frame, and the order of two objects' events.
:func:`caption_claims` parses them out of a caption written in the corpus's language
(:mod:`~snapcap.datasets.synthetic.language`: the same phrases, read the other way);
:func:`score_caption` checks each claim against the
:class:`~snapcap.datasets.synthetic.facts.SceneFacts`; :func:`fact_accuracy` sums that over many
videos: per fact type, how often a caption states it and how often what it states is true.

These are the facts a coded snapshot keeps and a long exposure loses (moving left and moving
right blur alike), which no n-gram metric isolates: a caption with every word right but the
direction reversed still scores a high CIDEr.

Every reference caption of the corpus scores 100 % on every fact it states (a test holds this on
hundreds of videos), so a claim marked wrong is a wrong claim, not a parsing slip.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

import numpy as np

from snapcap.datasets.synthetic.facts import ObjectFacts, SceneFacts
from snapcap.datasets.synthetic.language import LEXICON
from snapcap.datasets.synthetic.scene import COLORS

__all__ = [
    "FACT_TYPES",
    "Mention",
    "Claims",
    "caption_claims",
    "score_caption",
    "fact_accuracy",
    "direction_scores",
    "direction_interval",
]

FACT_TYPES = (
    "colour",
    "shape",
    "direction",
    "spin",
    "speed change",
    "grow/shrink",
    "appear/disappear",
    "start/stop",
    "enter/leave",
    "order",
)
"""The fact types scored, in report order."""


def _words(text: str) -> tuple[str, ...]:
    return tuple(re.sub(r"\s*-\s*", "-", text.lower()).replace(",", " ").split())


_SHAPE_OF = {noun: shape for shape, nouns in LEXICON["nouns"].items() for noun in nouns}
_SIZES = {word for words in LEXICON["sizes"].values() for word in words}
_ARTICLES = {"a", "an", "the"}


def _phrases(options: Iterable[str]) -> list[tuple[str, ...]]:
    """The word sequences of templates, up to their first ``{...}`` field."""
    out = []
    for option in options:
        head = option.split("{")[0].strip()
        if head:
            out.append(_words(head))
    return out


# phrase (as words) -> value, matched longest first at each position
_DIRECTIONS = sorted(((_words(p), d) for d, phrases in LEXICON["directions"].items() for p in phrases), key=lambda x: -len(x[0]))
_SPEED = sorted(
    [(_words(w), "accelerating") for w in ("gets faster", "faster and faster", "accelerates", "gains speed")]
    + [
        (_words(w), "decelerating")
        for w in ("slows to a crawl", "more and more slowly", "loses speed", "gets slower", "decelerates")
    ],
    key=lambda x: -len(x[0]),
)
_GROWTH = sorted(
    [(_words(w), "growing") for forms in LEXICON["grow"]["growing"] for w in forms if w]
    + [(_words(w), "shrinking") for forms in LEXICON["grow"]["shrinking"] for w in forms if w],
    key=lambda x: -len(x[0]),
)
_SPIN = [(("counter-clockwise",), "counter-clockwise"), (("counterclockwise",), "counter-clockwise")]
_SPIN += [(("anticlockwise",), "counter-clockwise"), (("clockwise",), "clockwise")]
_EVENTS = sorted(
    [(p, "appears") for p in _phrases(LEXICON["appear"])]
    + [(p, "disappears") for p in _phrases(LEXICON["disappear"])]
    + [(p, "enters") for p in _phrases(LEXICON["enter"]) + [("comes", "in")]]
    + [(p, "leaves") for p in _phrases(LEXICON["leave"])]
    + [(p, "starts") for p in _phrases(LEXICON["start"])]
    + [(p, "stops") for p in _phrases(LEXICON["stop"])],
    key=lambda x: -len(x[0]),
)


_FORWARD = (" then", " before", " and after that", " and later")
"""Connectors (as the text before the second event's noun phrase ends) telling events in order;
`` after`` tells them in reverse (``{B} after {A}``)."""


@dataclass
class Mention:
    """One object the caption talks about: its noun phrase and what the caption says it does."""

    shape: str
    color: str | None
    start: int  # word position of the noun phrase
    directions: list[str] = field(default_factory=list)
    spins: list[str] = field(default_factory=list)
    speed_changes: list[str] = field(default_factory=list)
    growths: list[str] = field(default_factory=list)
    events: list[tuple[int, str]] = field(default_factory=list)  # (word position, kind)


@dataclass
class Claims:
    """Everything a caption states: its object mentions, in order."""

    words: tuple[str, ...]
    mentions: list[Mention]


def _match(words: tuple[str, ...], at: int, table: list[tuple[tuple[str, ...], str]]) -> tuple[int, str] | None:
    for phrase, value in table:
        if words[at : at + len(phrase)] == phrase:
            return len(phrase), value
    return None


def caption_claims(text: str) -> Claims:
    """Parse a caption into object mentions and the facts stated about each.

    A mention is a noun phrase (``a large red ball``, ``the disc``); the words after it, up to the
    next noun phrase, are what the caption says about that object: direction phrases (``from
    left to right``, ``towards the top right corner``), spin (``clockwise``), speed change
    (``gets faster``), key events (``appears``, ``stops``, ``enters from the left``...). Sides and
    walls (``from the left``, ``off the right wall``) are not directions, as in the grammar.
    """
    words = _words(text)
    mentions: list[Mention] = []
    current: Mention | None = None
    i = 0
    while i < len(words):
        word = words[i]
        if word in _SHAPE_OF:
            start = i
            color = None
            while start > 0 and (words[start - 1] in COLORS or words[start - 1] in _SIZES):
                start -= 1
                if words[start] in COLORS:
                    color = words[start]
            if start > 0 and words[start - 1] in _ARTICLES:
                start -= 1
            current = Mention(shape=_SHAPE_OF[word], color=color, start=start)
            mentions.append(current)
            i += 1
            continue
        if current is None:
            i += 1
            continue
        for table, target in (
            (_SPEED, current.speed_changes),
            (_GROWTH, current.growths),
            (_SPIN, current.spins),
            (_DIRECTIONS, current.directions),
        ):
            found = _match(words, i, table)
            if found:
                target.append(found[1])
                i += found[0]
                break
        else:
            found = _match(words, i, _EVENTS)
            if found:
                current.events.append((i, found[1]))
                i += found[0]
            else:
                i += 1
    return Claims(words, mentions)


def _link(mention: Mention, facts: SceneFacts) -> ObjectFacts | None:
    """The scene object a mention names: by colour (unique in a scene), else by shape."""
    if mention.color is not None:
        for obj in facts.objects:
            if obj.color == mention.color:
                return obj
    for obj in facts.objects:
        if obj.shape == mention.shape:
            return obj
    return None


def _has_event(obj: ObjectFacts, kind: str, facts: SceneFacts) -> int | None:
    """The frame of the object's first event of this kind, None without one."""
    for event in facts.events:
        if event.object == obj.index and event.kind == kind:
            return event.frame
    return None


def score_caption(text: str, facts: SceneFacts | Mapping[str, Any]) -> dict[str, bool | None]:
    """Per fact type: None when the caption states no such fact, True when everything it states
    of that type is true of the scene, False otherwise.

    * colour / shape: every mentioned colour is one of the scene's, and the object of that colour
      (or, without a colour, of that shape) has the shape the caption names;
    * direction: every direction stated for an object is its direction of motion (or, after a
      bounce or turn, its final one);
    * spin: clockwise / counter-clockwise as the object turns; speed change: speeding up /
      slowing down as it does; grow/shrink: getting bigger / smaller as it does;
    * appear/disappear: the object does appear late / disappear early; start/stop: it does start
      moving late / stop early; enter/leave: it does come in through / go out through a side;
    * order: for two events of different objects joined by ``then``, ``before``, ``after``,
      ``later``, the first told happened first (``B after A``: A first).

    A mention that names no object of the scene makes every fact stated about it wrong.
    """
    if not isinstance(facts, SceneFacts):
        facts = SceneFacts.from_dict(dict(facts))
    claims = caption_claims(text)
    verdicts: dict[str, list[bool]] = {name: [] for name in FACT_TYPES}
    linked: list[ObjectFacts | None] = []
    for mention in claims.mentions:
        obj = _link(mention, facts)
        linked.append(obj)
        if mention.color is not None:
            verdicts["colour"].append(any(o.color == mention.color for o in facts.objects))
        verdicts["shape"].append(obj is not None and obj.shape == mention.shape)
        for direction in mention.directions:
            verdicts["direction"].append(obj is not None and direction in (obj.direction, obj.final_direction))
        for spin in mention.spins:
            verdicts["spin"].append(obj is not None and obj.spin == spin)
        for change in mention.speed_changes:
            verdicts["speed change"].append(obj is not None and obj.speed_change == change)
        for growth in mention.growths:
            verdicts["grow/shrink"].append(obj is not None and obj.growth == growth)
        for _, kind in mention.events:
            if kind == "appears":
                verdicts["appear/disappear"].append(obj is not None and obj.appear > 0)
            elif kind == "disappears":
                verdicts["appear/disappear"].append(obj is not None and obj.disappear is not None)
            elif kind in ("starts", "stops"):
                verdicts["start/stop"].append(obj is not None and (obj.start if kind == "starts" else obj.stop) is not None)
            else:
                verdicts["enter/leave"].append(obj is not None and (obj.enter if kind == "enters" else obj.leave) is not None)
    # order: consecutive key events of two different mentioned objects, joined by a sequence word
    told = sorted((pos, m, kind) for m, mention in enumerate(claims.mentions) for pos, kind in mention.events)
    for (pos_a, m_a, kind_a), (_, m_b, kind_b) in zip(told, told[1:]):
        obj_a, obj_b = linked[m_a], linked[m_b]
        if m_a == m_b or (obj_a is not None and obj_a is obj_b):
            continue
        # the connector is what ends the text before the second object's noun phrase
        before = " " + " ".join(claims.words[pos_a + 1 : claims.mentions[m_b].start])
        if before.endswith(_FORWARD):
            first, second = (obj_a, kind_a), (obj_b, kind_b)
        elif before.endswith(" after"):
            first, second = (obj_b, kind_b), (obj_a, kind_a)
        else:  # "and", "while", "as", a comma: no order stated
            continue
        frames = [None if obj is None else _has_event(obj, kind, facts) for obj, kind in (first, second)]
        verdicts["order"].append(frames[0] is not None and frames[1] is not None and frames[0] < frames[1])
    return {name: (all(found) if found else None) for name, found in verdicts.items()}


def fact_accuracy(
    captions: Mapping[str, str], facts: Mapping[str, SceneFacts | Mapping[str, Any]]
) -> dict[str, dict[str, float | int | None]]:
    """Per fact type over the videos of ``captions`` that have facts: ``stated`` (percent of the
    captions stating a fact of that type), ``accuracy`` (percent of those whose every such fact
    is true; None when none states one) and ``videos`` (how many captions were read)."""
    counts = {name: [0, 0] for name in FACT_TYPES}  # stated, right
    videos = 0
    for video_id, text in captions.items():
        truth = facts.get(video_id)
        if truth is None:
            continue
        videos += 1
        for name, verdict in score_caption(text, truth).items():
            if verdict is not None:
                counts[name][0] += 1
                counts[name][1] += int(verdict)
    return {
        name: {
            "stated": 100.0 * stated / videos if videos else None,
            "accuracy": 100.0 * right / stated if stated else None,
            "videos": videos,
        }
        for name, (stated, right) in counts.items()
    }


def direction_scores(
    captions: Mapping[str, str],
    facts: Mapping[str, SceneFacts | Mapping[str, Any]],
    pairs: Mapping[str, str | None] | None = None,
) -> dict[str, float | int | None]:
    """The direction-of-motion scores of captions (the arrow-of-time report and bench):

    * ``direction_accuracy``: percent of the captions stating a direction whose every stated
      direction is right (None when none states one);
    * ``direction_stated``: percent of the captions that state one;
    * ``reversal_pairs``: percent of the time-reversed pairs (``pairs``: video id -> its twin's,
      as :class:`~snapcap.datasets.synthetic.SyntheticCorpus` with ``temporal_pairs`` records
      them) whose videos both move, with no direction right for both (a bounce played backwards
      bounces the same way: those pairs are left out), and both of whose captions state the
      right direction (None without such pairs); ``pairs_counted``: how many pairs that is over.
    """
    verdicts: dict[str, bool | None] = {}
    for video_id, text in captions.items():
        if video_id in facts:
            verdicts[video_id] = score_caption(text, facts[video_id])["direction"]
    stated = [v for v in verdicts.values() if v is not None]
    counted = right = 0
    for video_id, twin in (pairs or {}).items():
        if twin is None or twin not in verdicts or video_id not in verdicts or video_id > twin:
            continue  # each pair once, both captioned
        truth = [facts[v] if isinstance(facts[v], SceneFacts) else SceneFacts.from_dict(dict(facts[v])) for v in (video_id, twin)]
        stated_right = [{d for o in t.objects for d in (o.direction, o.final_direction) if d is not None} for t in truth]
        if not all(stated_right) or stated_right[0] & stated_right[1]:
            continue  # no motion to state, or a caption right for both (a bounce reversed bounces the same way)
        counted += 1
        right += int(verdicts[video_id] is True and verdicts[twin] is True)
    return {
        "direction_accuracy": round(100.0 * sum(stated) / len(stated), 2) if stated else None,
        "direction_stated": round(100.0 * len(stated) / len(verdicts), 2) if verdicts else 0.0,
        "reversal_pairs": round(100.0 * right / counted, 2) if counted else None,
        "pairs_counted": counted,
    }


def direction_interval(
    captions: Mapping[str, str],
    facts: Mapping[str, SceneFacts | Mapping[str, Any]],
    draws: int = 1000,
    seed: int = 0,
) -> list[float] | None:
    """A 95 % bootstrap interval over the test videos of ``direction_accuracy`` (the percent of the
    captions stating a direction whose every stated direction is right); None when no caption
    states one. The videos are resampled with replacement ``draws`` times from ``seed``."""
    verdicts = [score_caption(text, facts[video_id])["direction"] for video_id, text in captions.items() if video_id in facts]
    stated = np.array([v is not None for v in verdicts])
    right = np.array([v is True for v in verdicts])
    if not stated.any():
        return None
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(verdicts), size=(draws, len(verdicts)))
    counts = stated[picks].sum(axis=1)
    rates = 100.0 * right[picks].sum(axis=1) / np.maximum(counts, 1)
    rates = rates[counts > 0]
    return [round(float(np.percentile(rates, 2.5)), 2), round(float(np.percentile(rates, 97.5)), 2)]
