"""Caption text: tokenisation and the word vocabulary.

* :func:`tokenize` splits a caption into lower-case words the way the COCO caption toolkit's
  PTB tokenizer does (clitics split off, punctuation dropped), in pure Python.
* :class:`Vocabulary` maps words to integer ids (``<pad>`` 0, ``<bos>`` 1, ``<eos>`` 2,
  ``<unk>`` 3, then the training words by count), encodes captions into padded id tensors and
  decodes ids back into text; it saves to and loads from JSON.

The caption metrics (BLEU, METEOR, ROUGE-L, CIDEr) are in :mod:`snapcap.caption.metrics`. This
module imports neither torch nor pycocoevalcap (``encode_batch`` imports torch when called).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

from snapcap.errors import DataFileError, InvalidValueError, ShapeError
from snapcap.fileio import write_text

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
        return write_text(path, json.dumps(self.to_dict(), ensure_ascii=False, indent=1) + "\n")

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
