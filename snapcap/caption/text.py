"""Caption text: tokenisation, the word vocabulary, and the COCO caption metrics.

* :func:`tokenize` splits a caption into lower-case words the way the COCO caption toolkit's
  PTB tokenizer does (clitics split off, punctuation dropped), in pure Python.
* :class:`Vocabulary` maps words to integer ids (``<pad>`` 0, ``<bos>`` 1, ``<eos>`` 2,
  ``<unk>`` 3, then the training words by count), encodes captions into padded id tensors and
  decodes ids back into text; it saves to and loads from JSON.
* :func:`caption_metrics` scores generated captions against references with pycocoevalcap
  (BLEU-1..4, METEOR, ROUGE-L, CIDEr) and reports them as percentages, like the papers do.
* :func:`java_status` says whether a Java runtime runs here (METEOR and the PTB tokenizer of the
  COCO toolkit are Java programs).
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import tempfile
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

from snapcap.errors import BackendUnavailableError, ConfigError, DataFileError, InvalidValueError, ShapeError

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = [
    "tokenize",
    "Vocabulary",
    "PAD_TOKEN",
    "BOS_TOKEN",
    "EOS_TOKEN",
    "UNK_TOKEN",
    "SPECIAL_TOKENS",
    "METRICS",
    "MetricReport",
    "caption_metrics",
    "java_status",
    "metric_session",
]

# ---------------------------------------------------------------------------------------------
# Tokenisation
# ---------------------------------------------------------------------------------------------

# Characters that make up the punctuation tokens the COCO toolkit removes after PTB tokenisation
# ('' ' `` ` . ? ! , : - -- ... ; and the brackets). A token made only of these is dropped.
_PUNCT_CHARS = frozenset(".?!,:;-'\"`()[]{}")
_TYPOGRAPHY = str.maketrans(
    {
        "\u2018": "'",
        "\u2019": "'",
        "\u201a": "'",
        "\u201b": "'",
        "\u2032": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u201e": '"',
        "\u2033": '"',
        "\u2013": " -- ",
        "\u2014": " -- ",
        "\u2026": " ... ",
    }
)
_ELLIPSIS = re.compile(r"\.{2,}")
_DASHES = re.compile(r"-{2,}")
_ALWAYS_SPLIT = re.compile(r"[?!;\"`()\[\]{}$%]")
_SPLIT_UNLESS_IN_NUMBER = re.compile(r"(?<!\d)[,:]|[,:](?!\d)")  # 10:30 and 1,000 stay whole
_CLITICS = frozenset({"n't", "'s", "'m", "'d", "'re", "'ve", "'ll"})
_CLITIC = re.compile(r"(.+?)(n't|'s|'m|'d|'re|'ve|'ll)")
_DOTTED_ABBREVIATION = re.compile(r"(?:[a-z]\.){2,}")  # u.s. e.g. a.m.
_TITLES = frozenset({"mr.", "mrs.", "ms.", "dr.", "st.", "jr.", "sr.", "vs.", "prof.", "mt.", "etc."})
_SPLIT_WORDS = {
    "cannot": ("can", "not"),
    "gonna": ("gon", "na"),
    "gotta": ("got", "ta"),
    "wanna": ("wan", "na"),
    "gimme": ("gim", "me"),
    "lemme": ("lem", "me"),
}


def _split_chunk(chunk: str) -> list[str]:
    """PTB-style pieces of one whitespace-free chunk (punctuation pieces included)."""
    head: list[str] = []
    while len(chunk) > 1 and chunk[0] in "'-" and chunk not in _CLITICS:
        head.append(chunk[0])
        chunk = chunk[1:]
    tail: list[str] = []
    while len(chunk) > 1:
        last = chunk[-1]
        if last == ".":
            if _DOTTED_ABBREVIATION.fullmatch(chunk) or chunk in _TITLES:
                break
        elif last not in "-'":
            break
        tail.insert(0, last)
        chunk = chunk[:-1]
    match = _CLITIC.fullmatch(chunk)
    if match:
        core = [match.group(1), match.group(2)]
    else:
        core = list(_SPLIT_WORDS.get(chunk, (chunk,)))
    return head + core + tail


def tokenize(caption: str) -> list[str]:
    """Lower-case words of a caption, the way the COCO caption toolkit tokenises it.

    A pure-Python approximation of the Stanford PTB tokenizer run by pycocoevalcap
    (``-lowerCase``) followed by its removal of punctuation tokens: clitics are split off
    (``man's`` -> ``man 's``, ``doesn't`` -> ``does n't``, ``cannot`` -> ``can not``), ``$`` and
    ``%`` become tokens, numbers such as ``3.5``, ``10:30`` and ``1,000``, hyphenated words,
    dotted abbreviations (``u.s.``) and common titles (``mr.``) stay whole, and punctuation
    (``. , ; : ? ! - -- ... ' " ` ( ) [ ] { }``) is dropped.

    Known differences from the Java tokenizer: brackets are dropped (the toolkit keeps them as
    ``-lrb-``/``-rrb-`` because it lower-cases before filtering), repeated marks such as ``!!``
    are dropped (the toolkit keeps them), and its full abbreviation list is not reproduced.

    Args:
        caption: the caption text.

    Returns:
        The tokens, e.g. ``"A man's car, red."`` -> ``["a", "man", "'s", "car", "red"]``.

    Raises:
        InvalidValueError: ``caption`` is not a string.
    """
    if not isinstance(caption, str):
        raise InvalidValueError(f"caption must be a string, got {type(caption).__name__}")
    text = caption.lower().translate(_TYPOGRAPHY)
    text = _ELLIPSIS.sub(" ... ", text)
    text = _DASHES.sub(" -- ", text)
    text = _ALWAYS_SPLIT.sub(r" \g<0> ", text)
    text = _SPLIT_UNLESS_IN_NUMBER.sub(r" \g<0> ", text)
    tokens: list[str] = []
    for chunk in text.split():
        for piece in _split_chunk(chunk):
            if piece and not all(char in _PUNCT_CHARS for char in piece):
                tokens.append(piece)
    return tokens


# ---------------------------------------------------------------------------------------------
# Vocabulary
# ---------------------------------------------------------------------------------------------

PAD_TOKEN = "<pad>"
BOS_TOKEN = "<bos>"
EOS_TOKEN = "<eos>"
UNK_TOKEN = "<unk>"
SPECIAL_TOKENS = (PAD_TOKEN, BOS_TOKEN, EOS_TOKEN, UNK_TOKEN)
_VOCAB_FORMAT = "snapcap-vocabulary"
_VOCAB_VERSION = 1


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


class Vocabulary:
    """Word <-> id mapping of captions with four special tokens.

    Ids: ``<pad>`` = 0 (:attr:`PAD`), ``<bos>`` = 1 (:attr:`BOS`), ``<eos>`` = 2 (:attr:`EOS`),
    ``<unk>`` = 3 (:attr:`UNK`), then the words. :meth:`build` orders the words by training
    count (most frequent first), ties alphabetically, so the same captions always give the same
    ids. Words are those of :func:`tokenize`.

    Args:
        words: the regular words in id order (ids 4, 5, ...), without the special tokens.
        counts: optional training counts of the words (kept for information and saved).

    Raises:
        InvalidValueError: a word is not a non-empty string without whitespace, repeats, or is
            a special token.
    """

    PAD = 0
    BOS = 1
    EOS = 2
    UNK = 3

    def __init__(self, words: Iterable[str], counts: Mapping[str, int] | None = None) -> None:
        itos = list(SPECIAL_TOKENS)
        stoi = {token: index for index, token in enumerate(itos)}
        for word in words:
            if not isinstance(word, str) or not word or word != word.strip() or len(word.split()) != 1:
                raise InvalidValueError(f"vocabulary words must be non-empty strings without whitespace, got {word!r}")
            if word in stoi:
                kind = "a special token" if word in SPECIAL_TOKENS else "repeated"
                raise InvalidValueError(f"vocabulary word {word!r} is {kind}")
            stoi[word] = len(itos)
            itos.append(word)
        self._itos = itos
        self._stoi = stoi
        self._counts = {word: int(counts[word]) for word in itos[4:] if word in counts} if counts else {}

    # -- construction ---------------------------------------------------------------------------

    @classmethod
    def build(cls, captions: Iterable[str], min_count: int = 1, max_size: int | None = None) -> Vocabulary:
        """The vocabulary of training captions.

        Args:
            captions: caption strings (tokenised with :func:`tokenize`).
            min_count: keep only words seen at least this many times.
            max_size: keep at most this many words (the most frequent), not counting the four
                special tokens; None keeps all.

        Returns:
            The vocabulary, words ordered by count (descending) then alphabetically.

        Raises:
            InvalidValueError: ``captions`` is a single string or holds a non-string, or the
                limits are not integers (``min_count`` >= 1, ``max_size`` >= 0).
        """
        min_count = _check_int("min_count", min_count, 1)
        if max_size is not None:
            max_size = _check_int("max_size", max_size, 0)
        if isinstance(captions, str):
            raise InvalidValueError("captions must be an iterable of caption strings, not one string")
        counter: Counter[str] = Counter()
        for index, caption in enumerate(captions):
            if not isinstance(caption, str):
                raise InvalidValueError(f"captions[{index}] must be a string, got {type(caption).__name__}")
            counter.update(token for token in tokenize(caption) if token not in SPECIAL_TOKENS)
        ranked = sorted((item for item in counter.items() if item[1] >= min_count), key=lambda item: (-item[1], item[0]))
        if max_size is not None:
            ranked = ranked[:max_size]
        return cls([word for word, _ in ranked], counts=dict(ranked))

    # -- lookup ---------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._itos)

    def __contains__(self, token: object) -> bool:
        return isinstance(token, str) and token in self._stoi

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Vocabulary):
            return NotImplemented
        return self._itos == other._itos

    def __hash__(self) -> int:
        return hash(tuple(self._itos))

    def __repr__(self) -> str:
        preview = ", ".join(self._itos[4:9])
        more = ", ..." if len(self._itos) > 9 else ""
        return f"Vocabulary({len(self)} tokens: {preview}{more})"

    @property
    def tokens(self) -> list[str]:
        """All tokens in id order, the four special tokens first."""
        return list(self._itos)

    @property
    def counts(self) -> dict[str, int]:
        """Training counts of the words (empty when the vocabulary was not built from captions)."""
        return dict(self._counts)

    def token_to_id(self, token: str) -> int:
        """The id of a token; :attr:`UNK` for a word not in the vocabulary."""
        return self._stoi.get(token, self.UNK) if isinstance(token, str) else self.UNK

    def id_to_token(self, index: int) -> str:
        """The token of an id.

        Raises:
            InvalidValueError: ``index`` is not an integer in ``[0, len(self))``.
        """
        try:
            position = int(index)
        except (TypeError, ValueError):
            raise InvalidValueError(f"token id must be an integer, got {index!r}") from None
        if isinstance(index, bool) or position != index or not 0 <= position < len(self._itos):
            raise InvalidValueError(f"token id must be an integer in [0, {len(self._itos)}), got {index!r}")
        return self._itos[position]

    # -- encoding -------------------------------------------------------------------------------

    def encode(self, caption: str | Sequence[str], max_length: int = 30) -> list[int]:
        """Ids of a caption: ``[BOS, w1, ..., wn, EOS]``.

        Args:
            caption: caption text (tokenised with :func:`tokenize`) or a sequence of tokens
                used as they are.
            max_length: the most ids returned, BOS and EOS included (>= 2); longer captions
                lose their last words, never the EOS.

        Returns:
            The ids, unknown words as :attr:`UNK`.

        Raises:
            InvalidValueError: ``max_length`` < 2 or ``caption`` is neither a string nor a
                sequence of strings.
        """
        max_length = _check_int("max_length", max_length, 2)
        if isinstance(caption, str):
            tokens = tokenize(caption)
        elif isinstance(caption, Sequence) and all(isinstance(token, str) for token in caption):
            tokens = list(caption)
        else:
            raise InvalidValueError(f"caption must be a string or a sequence of token strings, got {type(caption).__name__}")
        ids = []
        for token in tokens[: max_length - 2]:
            index = self._stoi.get(token, self.UNK)
            ids.append(self.UNK if index in (self.PAD, self.BOS, self.EOS) else index)
        return [self.BOS, *ids, self.EOS]

    def encode_batch(self, captions: Sequence[str | Sequence[str]], max_length: int = 30) -> torch.Tensor:
        """Ids of several captions as one padded tensor.

        Args:
            captions: captions (see :meth:`encode`).
            max_length: the most ids per caption, BOS and EOS included.

        Returns:
            ``torch.int64`` tensor ``(N, L)``, L the longest encoding (<= ``max_length``), rows
            padded with :attr:`PAD` after their EOS.

        Raises:
            InvalidValueError: no captions, a single string instead of a sequence, or a bad
                caption or ``max_length``.
        """
        import torch

        if isinstance(captions, str):
            raise InvalidValueError("captions must be a sequence of captions, not one string")
        encoded = [self.encode(caption, max_length) for caption in captions]
        if not encoded:
            raise InvalidValueError("encode_batch needs at least one caption")
        width = max(len(ids) for ids in encoded)
        batch = torch.full((len(encoded), width), self.PAD, dtype=torch.long)
        for row, ids in enumerate(encoded):
            batch[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        return batch

    def decode(self, ids: Any) -> str:
        """Text of one id sequence: stops at the first EOS, skips PAD and BOS.

        Args:
            ids: a list or tuple of ints, or a 1-D tensor or array.

        Returns:
            The tokens joined by single spaces (unknown words appear as ``<unk>``).

        Raises:
            ShapeError: a tensor or array that is not 1-D.
            InvalidValueError: an id outside the vocabulary.
        """
        values = self._as_id_list(ids)
        words = []
        for index in values:
            if index == self.EOS:
                break
            if index in (self.PAD, self.BOS):
                continue
            words.append(self.id_to_token(index))
        return " ".join(words)

    def decode_batch(self, ids: Any) -> list[str]:
        """Texts of the rows of a 2-D id tensor or array (or a list of id sequences)."""
        if hasattr(ids, "ndim") and hasattr(ids, "tolist"):
            if ids.ndim != 2:
                raise ShapeError(f"decode_batch expects ids of shape (N, L), got shape {tuple(ids.shape)}")
            ids = ids.tolist()
        return [self.decode(row) for row in ids]

    @staticmethod
    def _as_id_list(ids: Any) -> list[Any]:
        if hasattr(ids, "ndim") and hasattr(ids, "tolist"):
            if ids.ndim != 1:
                raise ShapeError(f"decode expects a 1-D id sequence, got shape {tuple(ids.shape)}")
            return list(ids.tolist())
        if isinstance(ids, (str, bytes)):
            raise InvalidValueError("decode expects a sequence of token ids, not a string")
        return list(ids)

    # -- persistence ----------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable description (:meth:`from_dict` reads it back)."""
        return {
            "format": _VOCAB_FORMAT,
            "version": _VOCAB_VERSION,
            "special_tokens": list(SPECIAL_TOKENS),
            "words": self._itos[4:],
            "counts": [self._counts.get(word, 0) for word in self._itos[4:]] if self._counts else None,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Vocabulary:
        """The vocabulary described by :meth:`to_dict`.

        Raises:
            InvalidValueError: not a snapcap vocabulary, another version, other special tokens,
                or malformed words or counts.
        """
        if not isinstance(data, Mapping) or data.get("format") != _VOCAB_FORMAT:
            raise InvalidValueError(f"not a snapcap vocabulary (expected format {_VOCAB_FORMAT!r})")
        if data.get("version") != _VOCAB_VERSION:
            version = data.get("version")
            raise InvalidValueError(f"unsupported vocabulary version {version!r} (this snapcap reads {_VOCAB_VERSION})")
        if data.get("special_tokens") != list(SPECIAL_TOKENS):
            raise InvalidValueError(f"special tokens must be {list(SPECIAL_TOKENS)}, got {data.get('special_tokens')!r}")
        words = data.get("words")
        if not isinstance(words, list):
            raise InvalidValueError("vocabulary 'words' must be a list of strings")
        counts = data.get("counts")
        if counts is not None:
            if (
                not isinstance(counts, list)
                or len(counts) != len(words)
                or not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in counts)
            ):
                raise InvalidValueError("vocabulary 'counts' must be a list of non-negative integers, one per word")
            return cls(words, counts=dict(zip(words, counts)))
        return cls(words)

    def save(self, path: str | Path) -> Path:
        """Write the vocabulary as JSON, atomically (temporary file in the same folder, then rename).

        Returns:
            The path written.
        """
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=path.parent)
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as stream:
                json.dump(self.to_dict(), stream, ensure_ascii=False, indent=1)
                stream.write("\n")
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
        return path

    @classmethod
    def load(cls, path: str | Path) -> Vocabulary:
        """Read a vocabulary written by :meth:`save`.

        Raises:
            DataFileError: the file is missing, unreadable, not JSON or not a snapcap vocabulary
                (the message names the file).
        """
        path = Path(path)
        try:
            with open(path, encoding="utf-8") as stream:
                data = json.load(stream)
        except FileNotFoundError:
            raise DataFileError(f"{path}: vocabulary file not found") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise DataFileError(f"{path}: cannot read vocabulary JSON ({exc})") from exc
        try:
            return cls.from_dict(data)
        except InvalidValueError as exc:
            raise DataFileError(f"{path}: {exc}") from exc


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


def _metric_names(metrics: str | Iterable[str]) -> list[str]:
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
        except Exception:  # fall through to killing the process ourselves
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


class metric_session:  # noqa: N801 - used as a function: ``with metric_session():``
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
    chosen = _metric_names(metrics)
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
                f"Java unavailable ({java_reason}); captions tokenised with snapcap's regex tokenizer, an approximation of the PTB tokenizer"
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
            except Exception as exc:  # report, never crash, never guess
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
