"""Caption metrics: BLEU-1..4, METEOR, ROUGE-L and CIDEr with pycocoevalcap, in percent.

* :func:`caption_metrics` scores generated captions against references with pycocoevalcap
  (BLEU-1..4, METEOR, ROUGE-L, CIDEr) and reports them as percentages, like the papers do.
* :func:`metric_session` keeps one METEOR Java process for many :func:`caption_metrics` calls.
* :func:`metric_names` checks and normalises metric names (``"cider"``, ``"rouge_l"``...).
* :func:`java_status` says whether a Java runtime runs here (METEOR and the PTB tokenizer of the
  COCO toolkit are Java programs).

pycocoevalcap is imported inside the functions that need it.
"""

from __future__ import annotations

import math
import re
import shutil
import subprocess
import threading
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

from snapcap.caption.text import tokenize
from snapcap.errors import BackendUnavailableError, ConfigError, InvalidValueError

__all__ = [
    "METRICS",
    "MetricReport",
    "caption_metrics",
    "java_status",
    "metric_names",
    "metric_session",
]

# ---------------------------------------------------------------------------------------------
# Java
# ---------------------------------------------------------------------------------------------

_JAVA_OK: dict[str, str] = {}
_JAVA_HINT = "install a Java runtime, e.g. apt-get install default-jre-headless"


def java_status(timeout: float = 15.0) -> tuple[bool, str]:
    """Whether a Java runtime runs here (``java -version`` on the PATH's ``java``).

    Args:
        timeout: seconds to wait for ``java -version``.

    Returns:
        ``(True, "<path>: <version line>")`` when Java runs, else ``(False, reason)``.
    """
    path = shutil.which("java")
    if path is None:
        return False, f"java was not found on PATH ({_JAVA_HINT})"
    if path in _JAVA_OK:
        return True, _JAVA_OK[path]
    try:
        proc = subprocess.run([path, "-version"], capture_output=True, text=True, errors="replace", timeout=timeout)
    except subprocess.TimeoutExpired:
        return False, f"`{path} -version` did not answer within {timeout:g} s"
    except OSError as exc:
        return False, f"{path} could not be started ({exc})"
    lines = (proc.stderr or proc.stdout or "").strip().splitlines()
    first = lines[0].strip() if lines else ""
    if proc.returncode != 0:
        return False, f"`{path} -version` exited with status {proc.returncode}" + (f": {lines[-1].strip()}" if lines else "")
    _JAVA_OK[path] = f"{path}: {first}" if first else path
    return True, _JAVA_OK[path]


# ---------------------------------------------------------------------------------------------
# Caption metrics
# ---------------------------------------------------------------------------------------------

METRICS = ("BLEU", "METEOR", "ROUGE-L", "CIDEr")
_SCORE_ORDER = ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "METEOR", "ROUGE-L", "CIDEr")
_METRIC_ALIASES = {
    "bleu": "BLEU",
    "meteor": "METEOR",
    "rougel": "ROUGE-L",
    "rouge": "ROUGE-L",
    "cider": "CIDEr",
    "ciderd": "CIDEr",
}
_METEOR_TIMEOUT_S = 1800.0
_SENTINEL = ("\x00snapcap", "sentinel")
_SENTINEL_TEXT = "alignment check"


@dataclass
class MetricReport:
    """Corpus-level caption metrics, in percent.

    Attributes:
        scores: metric name -> score in percent (``BLEU-1`` .. ``BLEU-4``, ``METEOR``,
            ``ROUGE-L``, ``CIDEr``: those asked for), None where a metric could not be computed.
        notes: one line per thing a reader should know (tokenizer used, metrics left out).
        per_video: video id -> metric name -> that video's score in percent (CIDEr, ROUGE-L,
            sentence-level BLEU with pycocoevalcap's smoothing, and METEOR when computed).
        tokenizer: ``"ptb"`` (the Java PTB tokenizer of the COCO toolkit) or ``"regex"``
            (:func:`tokenize`).
        videos: the number of videos scored.
    """

    scores: dict[str, float | None]
    notes: list[str] = field(default_factory=list)
    per_video: dict[str, dict] = field(default_factory=dict)
    tokenizer: str = ""
    videos: int = 0

    def as_row(self) -> dict[str, Any]:
        """A flat dict for tables: the scores, then ``videos`` and ``tokenizer``."""
        row: dict[str, Any] = dict(self.scores)
        row["videos"] = self.videos
        row["tokenizer"] = self.tokenizer
        return row

    def to_markdown(self, digits: int = 2) -> str:
        """A Markdown table of the scores (``n/a`` for None), followed by the notes."""
        names = list(self.scores)
        cells = ["n/a" if self.scores[name] is None else f"{self.scores[name]:.{digits}f}" for name in names]
        lines = [
            "| " + " | ".join(names) + " |",
            "|" + "|".join("---:" for _ in names) + "|",
            "| " + " | ".join(cells) + " |",
        ]
        tokenizer = {"ptb": "PTB tokenizer (Java)", "regex": "snapcap regex tokenizer"}.get(self.tokenizer, self.tokenizer)
        lines += ["", f"{self.videos} videos, {tokenizer}; scores in percent."]
        lines += [f"- {note}" for note in self.notes]
        return "\n".join(lines) + "\n"


def metric_names(metrics: str | Iterable[str]) -> list[str]:
    """The metrics of :func:`caption_metrics` that ``metrics`` names, in canonical spelling.

    Args:
        metrics: one name or several among ``BLEU``, ``METEOR``, ``ROUGE-L``, ``CIDEr`` (case,
            spaces, ``-`` and ``_`` ignored; ``rouge`` and ``cider-d`` accepted).

    Returns:
        The canonical names, each once, in the order given.

    Raises:
        ConfigError: a name that is not a string, an unknown metric, SPICE, or no name at all.
    """
    if isinstance(metrics, str):
        metrics = (metrics,)
    chosen = []
    for name in metrics:
        if not isinstance(name, str):
            raise ConfigError(f"metric names must be strings, got {name!r}")
        key = re.sub(r"[\s_\-]", "", name).lower()
        if key == "spice":
            raise ConfigError(
                "SPICE is not offered: pycocoevalcap's SPICE downloads Stanford CoreNLP models on first use "
                f"and snapcap never goes to the network; choose from {', '.join(METRICS)}"
            )
        if key not in _METRIC_ALIASES:
            raise ConfigError(f"unknown caption metric {name!r}; choose from {', '.join(METRICS)}")
        if _METRIC_ALIASES[key] not in chosen:
            chosen.append(_METRIC_ALIASES[key])
    if not chosen:
        raise ConfigError(f"no caption metric asked for; choose from {', '.join(METRICS)}")
    return chosen


def _name_ids(ids: Sequence[Any], limit: int = 10) -> str:
    shown = ", ".join(repr(key) for key in ids[:limit])
    return shown + (f" and {len(ids) - limit} more" if len(ids) > limit else "")


def _validate(predictions: Any, references: Any) -> list[Any]:
    if not isinstance(predictions, Mapping):
        raise InvalidValueError(f"predictions must be a dict video id -> caption, got {type(predictions).__name__}")
    if not isinstance(references, Mapping):
        raise InvalidValueError(f"references must be a dict video id -> list of captions, got {type(references).__name__}")
    if not predictions:
        raise InvalidValueError("predictions is empty: caption metrics need at least one video")
    ids = list(predictions)
    not_text = [key for key in ids if not isinstance(predictions[key], str)]
    if not_text:
        raise InvalidValueError(f"predictions must be strings (an empty string for no caption); not for {_name_ids(not_text)}")
    missing = [key for key in ids if key not in references]
    if missing:
        raise InvalidValueError(f"{len(missing)} predicted video(s) have no references: {_name_ids(missing)}")
    bad = [
        key
        for key in ids
        if isinstance(references[key], str)
        or not isinstance(references[key], Sequence)
        or not references[key]
        or not all(isinstance(text, str) for text in references[key])
    ]
    if bad:
        raise InvalidValueError(f"references must be non-empty lists of caption strings; not for {_name_ids(bad)}")
    blank = [key for key in ids if not any(text.strip() for text in references[key])]
    if blank:
        raise InvalidValueError(f"every reference caption is blank for {_name_ids(blank)}")
    return ids


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _ptb_tokenize(groups: dict[Any, list[str]]) -> dict[Any, list[str]]:
    """Tokenise with pycocoevalcap's Java PTBTokenizer, checking that lines did not shift."""
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    # Java splits lines on \r, \u2028... too: put every caption on one line, and end with a
    # known sentence so that a shifted or lost line is detected instead of scored.
    request = {key: [{"caption": _one_line(text)} for text in texts] for key, texts in groups.items()}
    request[_SENTINEL] = [{"caption": _SENTINEL_TEXT}]
    result = PTBTokenizer().tokenize(request)
    if result.get(_SENTINEL) != [_SENTINEL_TEXT] or any(len(result.get(key, ())) != len(texts) for key, texts in groups.items()):
        raise RuntimeError("the PTB tokenizer returned lines that do not match its input")
    return {key: [str(text) for text in result[key]] for key in groups}


def _close_meteor(meteor: Any) -> None:
    """Stop the METEOR Java process and leave the object safe to garbage-collect."""
    close = getattr(meteor, "close", None)
    if callable(close):
        try:
            close()
        except Exception:  # noqa: BLE001 - close() may fail in any way; fall through to killing the process ourselves
            pass
    process = getattr(meteor, "meteor_p", None)
    if process is not None:
        for stream in (process.stdin,):
            try:
                if stream is not None:
                    stream.close()
            except OSError:
                pass
        if process.poll() is None:
            process.kill()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:  # pragma: no cover - a process that ignores SIGKILL
            pass
        for stream in (process.stdout, process.stderr):
            try:
                if stream is not None:
                    stream.close()
            except OSError:
                pass
    # pycocoevalcap's Meteor.__del__ takes its lock; one left held by a failed compute_score
    # would hang the garbage collector, so give it a fresh one.
    if hasattr(meteor, "lock"):
        meteor.lock = threading.Lock()


_SESSION = threading.local()


class metric_session:  # lower case: used as a function, ``with metric_session():``
    """Keep one METEOR Java process for every :func:`caption_metrics` call inside the block.

    pycocoevalcap's METEOR loads its paraphrase tables at every start (15-20 s here); scoring
    many rows (``snapcap compare``: pipelines x compression ratios) pays that once in a session.
    Calls from the thread that opened the session use it; other threads start their own process.
    Scores are the same as without a session (METEOR scores each call's segments on their own).
    """

    def __enter__(self) -> metric_session:
        self._previous = getattr(_SESSION, "meteor", None)
        _SESSION.meteor = None  # started on first use
        _SESSION.active = True
        return self

    def __exit__(self, *exc: Any) -> None:
        meteor = getattr(_SESSION, "meteor", None)
        if meteor is not None:
            _close_meteor(meteor)
        _SESSION.meteor = self._previous
        _SESSION.active = self._previous is not None


def _meteor(gts: dict[Any, list[str]], res: dict[Any, list[str]], timeout: float | None) -> tuple[float, list[float]]:
    from pycocoevalcap.meteor.meteor import Meteor

    # METEOR's stdio protocol separates fields with |||, so none may appear inside a caption.
    gts = {key: [text.replace("|||", " ") for text in texts] for key, texts in gts.items()}
    res = {key: [text.replace("|||", " ") for text in texts] for key, texts in res.items()}
    shared = bool(getattr(_SESSION, "active", False))
    meteor = getattr(_SESSION, "meteor", None) if shared else None
    if meteor is not None and getattr(meteor, "meteor_p", None) is not None and meteor.meteor_p.poll() is not None:
        meteor = None  # the session's process died: start another
    if meteor is None:
        meteor = Meteor()
        if shared:
            _SESSION.meteor = meteor
    timer = None
    expired = threading.Event()
    if timeout is not None:

        def stop() -> None:
            expired.set()
            process = getattr(meteor, "meteor_p", None)
            if process is not None and process.poll() is None:
                process.kill()

        timer = threading.Timer(timeout, stop)
        timer.daemon = True
        timer.start()
    try:
        score, scores = meteor.compute_score(gts, res)
        return float(score), [float(value) for value in scores]
    except Exception as exc:
        if expired.is_set():
            raise RuntimeError(f"METEOR did not finish within {timeout:g} s") from exc
        process = getattr(meteor, "meteor_p", None)
        detail = ""
        if process is not None:
            if process.poll() is None:
                process.kill()
            try:
                process.wait(timeout=30)
                lines = process.stderr.read().decode(errors="replace").strip().splitlines() if process.stderr else []
                detail = lines[-1].strip() if lines else ""
            except (OSError, ValueError, subprocess.TimeoutExpired):
                pass
        if shared:
            _SESSION.meteor = None
            _close_meteor(meteor)
        raise RuntimeError(detail or f"{type(exc).__name__}: {exc}") from exc
    finally:
        if timer is not None:
            timer.cancel()
        if not shared:
            _close_meteor(meteor)


def caption_metrics(
    predictions: Mapping[Any, str],
    references: Mapping[Any, Sequence[str]],
    metrics: str | Iterable[str] = METRICS,
    tokenizer: str = "auto",
    meteor_timeout: float | None = _METEOR_TIMEOUT_S,
) -> MetricReport:
    """BLEU-1..4, METEOR, ROUGE-L and CIDEr of generated captions, in percent, with pycocoevalcap.

    The scores are corpus-level, computed as the COCO caption toolkit does (pycocoevalcap's
    ``Bleu(4)``, ``Meteor()``, ``Rouge()`` and ``Cider()`` ``compute_score``) and multiplied by
    100 as in video-captioning papers. BLEU uses the closest reference length for the brevity
    penalty and pycocoevalcap's tiny smoothing constants (1e-15 / 1e-9); CIDEr is
    pycocoevalcap's CIDEr-D (document frequencies from the references of the videos scored, so
    it needs several videos to be meaningful); ROUGE-L is the mean over videos (beta = 1.2).

    Captions are tokenised by the toolkit's Java PTB tokenizer when Java runs here, otherwise by
    :func:`tokenize` (a close approximation; a note says so). METEOR needs Java: without it, or
    if the METEOR process fails, ``scores["METEOR"]`` is None and a note gives the reason.
    pycocoevalcap's METEOR starts one Java process per call; it is stopped before returning.

    SPICE is not offered: pycocoevalcap's SPICE downloads Stanford CoreNLP models on first use,
    and snapcap never goes to the network.

    Args:
        predictions: video id -> generated caption (an empty string is allowed).
        references: video id -> reference captions (at least one non-blank per predicted
            video). Videos without a prediction are left out (a note says how many).
        metrics: names among ``BLEU``, ``METEOR``, ``ROUGE-L``, ``CIDEr`` (case and ``-``/``_``
            ignored).
        tokenizer: ``"auto"`` (PTB when Java runs, else regex), ``"ptb"`` (fail without it) or
            ``"regex"`` (always :func:`tokenize`).
        meteor_timeout: seconds after which a METEOR process that has not answered is stopped
            (METEOR is then None with a note); None waits for ever.

    Returns:
        A :class:`MetricReport`.

    Raises:
        InvalidValueError: no videos, a predicted video without references, or captions that
            are not strings.
        ConfigError: an unknown metric (or SPICE) or tokenizer.
        BackendUnavailableError: pycocoevalcap is not installed, or ``tokenizer="ptb"`` and the
            PTB tokenizer cannot run.
    """
    chosen = metric_names(metrics)
    if tokenizer not in ("auto", "ptb", "regex"):
        raise ConfigError(f"tokenizer must be 'auto', 'ptb' or 'regex', got {tokenizer!r}")
    ids = _validate(predictions, references)
    try:
        from pycocoevalcap.bleu.bleu import Bleu
        from pycocoevalcap.cider.cider import Cider
        from pycocoevalcap.rouge.rouge import Rouge
    except ImportError as exc:
        raise BackendUnavailableError(f"caption metrics need pycocoevalcap (pip install pycocoevalcap): {exc}") from exc

    notes: list[str] = []
    extra = len(set(references) - set(ids))
    if extra:
        notes.append(f"{extra} reference video(s) without a prediction were left out")
    java_ok, java_reason = (False, "not needed") if tokenizer == "regex" and "METEOR" not in chosen else java_status()

    # -- tokenisation -------------------------------------------------------------------------
    groups: dict[Any, list[str]] = {}
    for position, key in enumerate(ids):
        groups[("ref", position)] = list(references[key])
        groups[("hyp", position)] = [predictions[key]]
    tokenized = None
    used = "regex"
    if tokenizer in ("auto", "ptb"):
        if java_ok:
            try:
                tokenized = _ptb_tokenize(groups)
                used = "ptb"
            except Exception as exc:  # any failure of the Java tokenizer falls back
                if tokenizer == "ptb":
                    raise BackendUnavailableError(f"the PTB tokenizer failed: {type(exc).__name__}: {exc}") from exc
                reason = f"{type(exc).__name__}: {_one_line(str(exc))}"
                notes.append(f"PTB tokenizer failed ({reason}); captions tokenised with snapcap's regex tokenizer")
        elif tokenizer == "ptb":
            raise BackendUnavailableError(f"the PTB tokenizer needs Java: {java_reason}")
        else:
            notes.append(
                f"Java unavailable ({java_reason}); captions tokenised with snapcap's regex tokenizer, "
                "an approximation of the PTB tokenizer"
            )
    if tokenized is None:
        tokenized = {key: [" ".join(tokenize(text)) for text in texts] for key, texts in groups.items()}
    gts = {position: tokenized[("ref", position)] for position in range(len(ids))}
    res = {position: tokenized[("hyp", position)] for position in range(len(ids))}

    # -- scores -------------------------------------------------------------------------------
    scores: dict[str, float | None] = {}
    per_video: dict[Any, dict[str, float]] = {key: {} for key in ids}

    def record(name: str, corpus: float, each: Sequence[float]) -> None:
        scores[name] = 100.0 * float(corpus)
        for key, value in zip(ids, each):
            per_video[key][name] = 100.0 * float(value)

    if "BLEU" in chosen:
        bleu, bleu_each = Bleu(4).compute_score(gts, res, verbose=0)
        for order in range(4):
            record(f"BLEU-{order + 1}", bleu[order], bleu_each[order])
    if "METEOR" in chosen:
        if not java_ok:
            scores["METEOR"] = None
            notes.append(f"METEOR not computed: it needs Java ({java_reason})")
        else:
            try:
                meteor, meteor_each = _meteor(gts, res, meteor_timeout)
                record("METEOR", meteor, meteor_each)
            except Exception as exc:  # noqa: BLE001 - the Java process may fail in any way: report, never crash, never guess
                scores["METEOR"] = None
                notes.append(f"METEOR not computed: the METEOR Java process failed ({_one_line(str(exc))})")
    if "ROUGE-L" in chosen:
        rouge, rouge_each = Rouge().compute_score(gts, res)
        record("ROUGE-L", rouge, rouge_each)
    if "CIDEr" in chosen:
        cider, cider_each = Cider().compute_score(gts, res)
        record("CIDEr", cider, cider_each)
        if len(ids) == 1:
            notes.append("CIDEr of a single video is 0 by construction (its document frequencies come from the videos scored)")
    for value in scores.values():
        if value is not None and not math.isfinite(value):  # pragma: no cover - defensive
            raise InvalidValueError(f"a caption metric came out non-finite: {scores}")

    ordered = {name: scores[name] for name in _SCORE_ORDER if name in scores}
    return MetricReport(scores=ordered, notes=notes, per_video=per_video, tokenizer=used, videos=len(ids))
