"""Words for scene facts: MSR-VTT style captions and V2C style commonsense phrases.

:func:`caption_scene` writes paraphrased reference captions of a
:class:`~snapcap.datasets.synthetic.facts.SceneFacts` from a template grammar with synonyms;
:func:`commonsense` writes the intention / effect / attribute phrases of its main object.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from snapcap.datasets.synthetic.facts import Event, ObjectFacts, SceneFacts, event_gap
from snapcap.datasets.synthetic.scene import DIRECTIONS
from snapcap.errors import InvalidValueError

__all__ = ["caption_scene", "commonsense", "LEXICON"]

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
    "right": (
        "to the right",
        "from left to right",
        "rightwards",
        "towards the right",
        "to the right across the screen",
        "from left to right across the screen",
    ),
    "left": (
        "to the left",
        "from right to left",
        "leftwards",
        "towards the left",
        "to the left across the screen",
        "from right to left across the screen",
    ),
    "up": ("up", "upwards", "from bottom to top", "towards the top", "up the screen", "up towards the top"),
    "down": ("down", "downwards", "from top to bottom", "towards the bottom", "down the screen", "down towards the bottom"),
    "up-right": ("up and to the right", "diagonally up and to the right", "towards the top right corner", "to the upper right"),
    "up-left": ("up and to the left", "diagonally up and to the left", "towards the top left corner", "to the upper left"),
    "down-right": (
        "down and to the right",
        "diagonally down and to the right",
        "towards the bottom right corner",
        "to the lower right",
    ),
    "down-left": (
        "down and to the left",
        "diagonally down and to the left",
        "towards the bottom left corner",
        "to the lower left",
    ),
}
_MOVE_VERBS = (("moves", "moving"), ("slides", "sliding"), ("travels", "traveling"), ("goes", "going"), ("glides", "gliding"))
_SLOW_VERBS = (("drifts", "drifting"), ("creeps", "creeping"))
_FAST_VERBS = (("zooms", "zooming"), ("rushes", "rushing"), ("races", "racing"), ("shoots", "shooting"))
_ADVERBS = {
    "slow": ("slowly", "gently", "at a slow pace"),
    "fast": ("quickly", "fast", "rapidly", "at high speed"),
    "medium": ("steadily",),
}
_PRE_ADVERBS = ("slowly", "gently", "quickly", "rapidly", "steadily")
_ACCEL = (
    "{v} {d} and gets faster",
    "{v} {d} faster and faster",
    "accelerates {d}",
    "gains speed as it {v} {d}",
    "{v} {d} and accelerates",
)
_DECEL = (
    "{v} {d} and slows to a crawl",
    "{v} {d} more and more slowly",
    "loses speed as it {v} {d}",
    "{v} {d} and gets slower",
    "decelerates as it {v} {d}",
)
_SPIN_WORDS = {"clockwise": ("clockwise",), "counter-clockwise": ("counter-clockwise", "counterclockwise", "anticlockwise")}
_SPIN_VERBS = (
    ("spins {c}", "spinning {c}"),
    ("rotates {c}", "rotating {c}"),
    ("turns {c}", "turning {c}"),
    ("spins around {c}", "spinning around {c}"),
    ("rotates {c} in place", "rotating {c} in place"),
)
_SPIN_WHILE = ("while spinning {c}", "and spins {c}", "while rotating {c}", "turning {c} as it goes")
_GROW_VERBS = {
    "growing": (
        ("grows", "growing"),
        ("gets bigger", "getting bigger"),
        ("grows larger", "growing larger"),
        ("expands", "expanding"),
        ("increases in size", "increasing in size"),
    ),
    "shrinking": (
        ("shrinks", "shrinking"),
        ("gets smaller", "getting smaller"),
        ("becomes smaller", "becoming smaller"),
        ("decreases in size", "decreasing in size"),
    ),
}
_GROW_WHILE = {
    "growing": ("while growing", "and gets bigger", "while getting bigger"),
    "shrinking": ("while shrinking", "and gets smaller", "while getting smaller"),
}
_STILL_VERBS = (
    ("stays still", "staying still"),
    ("sits still", "sitting still"),
    ("does not move", None),
    ("stays in place", "staying in place"),
    ("remains still", "resting"),
)
_APPEAR = ("appears", "comes into view", "becomes visible", "pops into view")
_DISAPPEAR = ("disappears", "vanishes", "goes away", "suddenly disappears")
_WAIT = ("stays still at first", "sits still for a moment", "waits for a moment", "stays in place for a while", "rests at first")
_START = ("starts moving {d}", "begins to move {d}", "starts to move {d}", "sets off {d}")
_STOP = ("stops", "comes to a stop", "stops moving", "comes to a halt")
_ENTER = ("enters from the {s}", "comes in from the {s}", "enters the frame from the {s}", "enters the screen from the {s}")
_LEAVE = ("leaves the frame", "goes off screen", "leaves the screen {at}", "exits the frame {at}", "moves out of view")
_BOUNCE = (
    "bounces off the {w} wall",
    "hits the {w} edge and bounces back",
    "bounces off the {w} side",
    "hits the {w} wall and comes back",
    "bounces back from the {w} edge",
)
_TURN = ("turns around", "changes direction", "turns back")
_ORDER = (
    "{A} and then {B}",
    "first {A} and then {B}",
    "{A} then {B}",
    "{B} after {A}",
    "{A} before {B}",
    "{A} and after that {B}",
    "{A} and later {B}",
)
_TIMES = (
    (0.2, ("at the start", "at the beginning")),
    (0.4, ("after a moment", "a little later", "after a short while")),
    (0.62, ("halfway through", "in the middle of the video", "midway through")),
    (2.0, ("near the end", "towards the end", "late in the video")),
)
_KEY_EVENTS = ("appears", "disappears", "starts", "stops", "enters", "leaves")

LEXICON: dict[str, Any] = {
    "nouns": _NOUNS,
    "sizes": _SIZE_WORDS,
    "directions": _DIR_PHRASES,
    "grow": _GROW_VERBS,
    "appear": _APPEAR,
    "disappear": _DISAPPEAR,
    "enter": _ENTER,
    "leave": _LEAVE,
    "start": _START,
    "stop": _STOP,
}
"""The phrases the captions are written with, by what they say (read back by
:mod:`snapcap.datasets.synthetic.readback`)."""


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
            with_adverb = self.chance((0.35 if o.speed == "medium" else 0.7) * self.brevity)
            adverb = self.pick(_ADVERBS[o.speed or "medium"]) if with_adverb else ""
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
        template = self.pick(("on a {s} {t}background", "over a {s} {t}background", "in front of a {s} {t}background"))
        return template.format(s=shade, t=texture)


def _order_pair(facts: SceneFacts) -> tuple[Event, Event] | None:
    """The first two key events of different objects far enough apart to be told in order."""
    keyed = [e for e in facts.events if e.kind in _KEY_EVENTS]
    gap = event_gap(facts.frames)
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

            def later_definite(e: Event) -> bool:
                return e.kind not in ("appears", "enters") and s.chance(0.4)

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
        empty = (
            "an empty {s} background",
            "nothing happens on a {s} background",
            "a {s} textured background with nothing moving",
            "an empty screen",
        )
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
                effect = f"it heads back towards the {_OPPOSITE[wall]}"
                return {"intention": f"to bounce off the {wall} wall", "effect": effect, "attribute": "bouncy"}
            return {"intention": "to turn around", "effect": "it heads back the way it came", "attribute": "restless"}
        if o.leave:
            effect = f"it goes out of view {_at_side(o.leave)}"
            return {"intention": "to leave the screen", "effect": effect, "attribute": speed_word}
        if o.enter:
            effect = f"it comes into view from the {o.enter}"
            return {"intention": "to enter the scene", "effect": effect, "attribute": speed_word}
        place = "near " + _EDGES[o.direction] if _near_edge(o.direction, o.end_position) else _FURTHER[o.direction]
        intention = f"to reach {_EDGES[o.direction]}"
        if o.stop is not None:
            return {"intention": intention, "effect": f"it stops {place}", "attribute": "tired"}
        if o.start is not None:
            set_off = f"to set off towards {_EDGES[o.direction]}"
            return {"intention": set_off, "effect": f"it ends up {place}", "attribute": "hesitant"}
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
