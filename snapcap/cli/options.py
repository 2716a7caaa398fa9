"""The options every command shares, defined once and built from the registries.

Each flag has one meaning in every command that takes it:

``--corpus KIND`` and its arguments
    a corpus of :data:`snapcap.datasets.corpora.CORPORA`; ``--root``, ``--annotations``,
    ``--captions``, ``--mapping``, ``--paths``, ``--num-videos`` and ``--corpus-seed`` go to the
    corpus's constructor when it takes them (:func:`open_corpus_from_args`).
``--mask KIND``
    generated masks of a kind of :data:`snapcap.cacti.masks.MASK_KINDS`, seeded by
    ``--mask-seed``; ``--mask-file PATH`` (with ``--mask-key``) reads them from a file instead.
``--mask-seed``, ``--noise-seed``, ``--seed``
    the masks, the noise, and training (or any other random draw of the command), kept apart.
``--size N|HxW``
    frame size, square or not, in every command.
``--recon-param METHOD:NAME=VALUE``
    a parameter of a reconstruction method of :data:`snapcap.recon.api.METHODS` (repeatable).
``--device cpu|cuda|cuda:N``
    the torch device, checked when the command line is read.
``--samples SELECTION``
    dataset rows ``0,3,5``, ``0:4``, ``2:`` or ``all``; ``all`` by default.

Choices are read from the registries when the parser is built, so a new mask kind, corpus,
reconstruction method or captioner appears in every command that takes one.
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
from pathlib import Path
from typing import Any, Iterable

from snapcap.cacti.masks import MASK_FILE_SUFFIXES, MASK_KINDS, MaskSpec
from snapcap.datasets import corpora
from snapcap.errors import ConfigError
from snapcap.recon.api import METHODS

__all__ = [
    "size_type",
    "floats_type",
    "ints_type",
    "positive_floats_type",
    "positive_ints_type",
    "nonnegative_float",
    "positive_float",
    "device_type",
    "recon_param_type",
    "positive_int",
    "nonnegative_int",
    "deprecated",
    "add_corpus_options",
    "open_corpus_from_args",
    "add_camera_options",
    "add_mask_file_options",
    "add_recon_param_option",
    "recon_params_by_method",
    "add_device_option",
    "add_samples_option",
    "mask_kinds",
    "corpus_kinds",
    "recon_methods",
    "SPLIT_CHOICES",
    "CORPUS_FLAGS",
]

SPLIT_CHOICES = ("train", "val", "test", "all")

CORPUS_FLAGS: dict[str, str] = {
    "root": "--root",
    "annotations": "--annotations",
    "captions": "--captions",
    "mapping": "--mapping",
    "paths": "--paths",
    "num_videos": "--num-videos",
    "seed": "--corpus-seed",
}
"""Corpus constructor argument -> the flag that gives it."""


def mask_kinds() -> list[str]:
    """Mask kinds of the registry, as the parser offers them now."""
    return list(MASK_KINDS)


def corpus_kinds() -> list[str]:
    """Corpus kinds of the registry, as the parser offers them now."""
    return list(corpora.CORPORA)


def recon_methods() -> list[str]:
    """Reconstruction methods of the registry, as the parser offers them now."""
    return list(METHODS)


# --- value types ---------------------------------------------------------------------------------


def size_type(text: str) -> tuple[int, int]:
    """``N`` or ``HxW`` -> ``(H, W)``."""
    try:
        if "x" in text.lower():
            height, width = (int(v) for v in text.lower().split("x"))
        else:
            height = width = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must be N or HxW (e.g. 256 or 256x320), got {text!r}") from None
    if height < 1 or width < 1:
        raise argparse.ArgumentTypeError(f"size must be positive, got {text!r}")
    return height, width


def floats_type(text: str) -> tuple[float, ...]:
    """Comma-separated numbers."""
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def ints_type(text: str) -> tuple[int, ...]:
    """Comma-separated integers."""
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def positive_floats_type(text: str) -> tuple[float, ...]:
    """Comma-separated numbers, each > 0 (noise levels, schedules)."""
    values = floats_type(text)
    if not all(value > 0 for value in values):  # NaN fails too
        raise argparse.ArgumentTypeError(f"expected numbers > 0, got {text!r}")
    return values


def positive_ints_type(text: str) -> tuple[int, ...]:
    """Comma-separated integers, each >= 1 (iteration counts)."""
    values = ints_type(text)
    if not all(value >= 1 for value in values):
        raise argparse.ArgumentTypeError(f"expected integers >= 1, got {text!r}")
    return values


def _finite_float(text: str, minimum: float, inclusive: bool) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (value >= minimum if inclusive else value > minimum) or value == float("inf"):  # NaN fails too
        raise argparse.ArgumentTypeError(f"must be a finite number {'>=' if inclusive else '>'} {minimum:g}, got {text!r}")
    return value


def positive_float(text: str) -> float:
    """A finite number > 0 (learning rates)."""
    return _finite_float(text, 0.0, inclusive=False)


def nonnegative_float(text: str) -> float:
    """A finite number >= 0 (weights)."""
    return _finite_float(text, 0.0, inclusive=True)


def _int_at_least(text: str, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
    return value


def positive_int(text: str) -> int:
    """An integer >= 1 (counts, sizes)."""
    return _int_at_least(text, 1)


def nonnegative_int(text: str) -> int:
    """An integer >= 0 (seeds, indices)."""
    return _int_at_least(text, 0)


def device_type(text: str) -> str:
    """``cpu``, ``cuda``, ``cuda:N`` (or ``mps``), checked against this machine."""
    device = text.strip().lower()
    if device.startswith("cuda"):
        import torch  # heavy: imported only when a CUDA device is asked for

        index = device[5:] if device.startswith("cuda:") else ""
        if device != "cuda" and not index.isdigit():
            raise argparse.ArgumentTypeError(f"expected cpu, cuda or cuda:N, got {text!r}")
        if not torch.cuda.is_available():
            raise argparse.ArgumentTypeError(
                f"{text}: CUDA is not available on this machine (torch {torch.__version__}); use cpu"
            )
        if index and int(index) >= torch.cuda.device_count():
            raise argparse.ArgumentTypeError(f"{text}: this machine has {torch.cuda.device_count()} CUDA device(s)")
        return device
    if device not in ("cpu", "mps"):
        raise argparse.ArgumentTypeError(f"expected cpu, cuda or cuda:N, got {text!r}")
    return device


def _json_value(text: str) -> Any:
    try:
        value: Any = json.loads(text)
    except ValueError:
        value = text
    return tuple(value) if isinstance(value, list) else value


def recon_param_type(text: str) -> tuple[str, str, Any]:
    """``METHOD:NAME=VALUE`` -> ``(method, name, value)``; VALUE is JSON when it parses as JSON.

    The method part may be left out (``NAME=VALUE``) in commands with a single ``--recon``
    method; the command then fills it in (:func:`recon_params_by_method`).
    """
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected METHOD:NAME=VALUE (e.g. gap-tv:iterations=60), got {text!r}")
    left, value = text.split("=", 1)
    method, _, name = left.rpartition(":")
    method, name = method.strip(), name.strip().replace("-", "_")
    if not name:
        raise argparse.ArgumentTypeError(f"expected METHOD:NAME=VALUE, got {text!r}")
    if method and method not in METHODS:
        raise argparse.ArgumentTypeError(f"{method!r} is not a reconstruction method ({', '.join(METHODS)})")
    return method, name, _json_value(value)


def recon_params_by_method(
    items: Iterable[tuple[str, str, Any]] | None, default_method: str | None = None
) -> dict[str, dict[str, Any]]:
    """``--recon-param`` values grouped by method; a bare ``NAME=VALUE`` goes to ``default_method``."""
    grouped: dict[str, dict[str, Any]] = {}
    for method, name, value in items or ():
        if not method:
            if default_method is None:
                raise ConfigError(f"--recon-param {name}={value}: say which method it is for, as METHOD:{name}=VALUE")
            deprecated(f"--recon-param {name}=VALUE", f"--recon-param {default_method}:{name}=VALUE")
            method = default_method
        grouped.setdefault(method, {})[name] = value
    return grouped


# --- deprecated spellings ------------------------------------------------------------------------


def deprecated(old: str, new: str) -> None:
    """Tell the user (stderr) that ``old`` still works for this release and ``new`` replaces it."""
    print(f"snapcap: {old} is deprecated and will be removed in the next release; use {new}", file=sys.stderr)


# --- corpus --------------------------------------------------------------------------------------


def add_corpus_options(
    parser: argparse.ArgumentParser,
    default: str | None = "synthetic",
    num_videos: int | None = 200,
    title: str = "corpus",
    required: bool = False,
) -> argparse._ArgumentGroup:
    """``--corpus`` (the corpus registry) and the arguments corpora take."""
    group = parser.add_argument_group(title)
    kinds = corpus_kinds()
    group.add_argument(
        "--corpus",
        default=default,
        required=required,
        choices=kinds,
        help=f"corpus ({', '.join(kinds)}" + ("" if required or default is None else f"; default {default}") + ")",
    )
    group.add_argument("--root", type=Path, help="corpus folder (msrvtt, msvd, folder)")
    group.add_argument("--annotations", type=Path, nargs="*", help="MSR-VTT annotation JSON file(s)")
    group.add_argument("--captions", type=Path, help="MSVD caption file, or the folder corpus's captions CSV/JSON")
    group.add_argument("--mapping", type=Path, help="MSVD youtube_mapping.txt (for the standard split)")
    group.add_argument("--paths", type=Path, nargs="*", help="benchmark .mat files")
    group.add_argument(
        "--num-videos", type=positive_int, default=num_videos, help=f"synthetic corpus size (default {num_videos})"
    )
    group.add_argument("--corpus-seed", type=nonnegative_int, default=None, help="synthetic corpus seed (default 0)")
    return group


def corpus_arguments(args: argparse.Namespace, kind: str) -> dict[str, Any]:
    """The constructor arguments of corpus ``kind`` that the command line gives."""
    cls = corpora.CORPORA[kind]
    signature = inspect.signature(cls)
    kwargs: dict[str, Any] = {}
    for name, parameter in signature.parameters.items():
        flag = CORPUS_FLAGS.get(name)
        value = None if flag is None else getattr(args, flag[2:].replace("-", "_"), None)
        if value in (None, []):
            if parameter.default is inspect.Parameter.empty and parameter.kind not in (
                parameter.VAR_KEYWORD,
                parameter.VAR_POSITIONAL,
            ):
                raise ConfigError(f"--corpus {kind} needs {flag or name}")
            continue
        kwargs[name] = value
    return kwargs


def open_corpus_from_args(args: argparse.Namespace):
    """The corpus that ``--corpus`` and its arguments name."""
    return corpora.open_corpus(args.corpus, **corpus_arguments(args, args.corpus))


# --- camera --------------------------------------------------------------------------------------


def add_camera_options(
    parser: argparse.ArgumentParser,
    *,
    B: Any = 8,
    T: Any = 8,
    size: Any = (224, 224),
    B_many: bool = False,
    title: str = "camera",
    mask_file: bool = False,
    stored_mask: bool = False,
    noise: bool = True,
) -> argparse._ArgumentGroup:
    """``--B --T --size --gray --bayer --mask --mask-seed --duty --noise --noise-seed``.

    ``mask_file=True`` adds ``--mask-file``/``--mask-key`` to the same group (and the old
    spelling ``--mask FILE`` keeps working, with a deprecation message); ``stored_mask=True`` adds
    ``--stored-mask`` (the input file's own masks; old spelling ``--mask stored``).
    """
    group = parser.add_argument_group(title)
    kinds = mask_kinds()
    if B_many:
        group.add_argument("--B", type=positive_int, nargs="+", default=B, help="compression ratios: frames per snapshot")
    else:
        group.add_argument(
            "--B", type=positive_int, default=B, help="frames per snapshot" + ("" if B is None else f" (default {B})")
        )
    if T is not False:
        group.add_argument(
            "--T", type=positive_int, default=T, help="snapshots per video" + ("" if T is None else f" (default {T})")
        )
    group.add_argument(
        "--size",
        type=size_type,
        default=size,
        help="frame size N or HxW" + ("" if size is None else f" (default {size[0]}x{size[1]})"),
    )
    group.add_argument("--gray", action="store_true", default=None, help="gray video (default: RGB through a Bayer mosaic)")
    group.add_argument("--bayer", default=None, help="Bayer pattern of RGB video: RGGB (default), BGGR, GRBG, GBRG, or none")
    group.add_argument(
        "--mask",
        default=None,
        action=_MaskKind,
        metavar="{" + ",".join(kinds) + "}",
        file_ok=mask_file,
        stored_ok=stored_mask,
        help=f"generated mask kind ({', '.join(kinds)}; default random)",
    )
    group.add_argument("--mask-seed", type=nonnegative_int, default=None, help="seed of the generated masks (default 0)")
    group.add_argument("--duty", type=float, default=None, help="open fraction of binary masks (default: the kind's, 0.5)")
    if mask_file:
        _mask_file_arguments(group)
    if stored_mask:
        group.add_argument("--stored-mask", action="store_true", help="use the masks stored in the input file (benchmark .mat)")
    if noise:
        group.add_argument(
            "--noise", default=None, help="noise spec, e.g. 'poisson:photons=1000+gaussian:sigma=0.01' (default none)"
        )
        group.add_argument("--noise-seed", type=nonnegative_int, default=None, help="seed of the noise (default 0)")
    return group


def mask_spec_params(args: argparse.Namespace) -> dict[str, Any]:
    """Parameters of the generated masks that the command line sets (``--duty``)."""
    return {} if getattr(args, "duty", None) is None else {"duty": float(args.duty)}


def generated_mask_spec(args: argparse.Namespace, B: int, height: int, width: int) -> MaskSpec:
    """The :class:`MaskSpec` of ``--mask``, ``--mask-seed`` and ``--duty``."""
    kind = args.mask or "random"
    return MaskSpec(kind, B, height, width, seed=args.mask_seed or 0, params=mask_spec_params(args))


def _mask_file_arguments(group: argparse._ArgumentGroup) -> None:
    group.add_argument("--mask-file", type=Path, default=None, help="mask file (.mat/.npy/.npz/.h5), H x W x B or (B, H, W)")
    group.add_argument("--mask-key", default=None, help="variable of the mask file, when it holds several")


class _MaskKind(argparse.Action):
    """``--mask KIND`` checked against the registry when used; old spellings (a file, ``stored``) redirected."""

    def __init__(self, option_strings, dest, file_ok: bool = False, stored_ok: bool = False, **kwargs):
        self.file_ok, self.stored_ok = file_ok, stored_ok
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        kinds = mask_kinds()
        if values in kinds:
            setattr(namespace, self.dest, values)
            return
        if self.stored_ok and values == "stored":
            deprecated("--mask stored", "--stored-mask")
            namespace.stored_mask = True
            return
        if self.file_ok and (Path(values).suffix.lower() in MASK_FILE_SUFFIXES or Path(values).exists()):
            deprecated("--mask FILE", "--mask-file FILE")
            namespace.mask_file = Path(values)
            return
        parser.error(
            f"argument --mask: invalid choice: {values!r} (choose from {', '.join(kinds)}"
            + ("; a mask file goes with --mask-file" if self.file_ok else "")
            + ")"
        )


class _LegacyMaskFile(argparse.Action):
    def __call__(self, parser, namespace, values, option_string=None):
        deprecated("--mask FILE", "--mask-file FILE")
        namespace.mask_file = Path(values)


def add_mask_file_options(parser: argparse.ArgumentParser | argparse._ArgumentGroup, legacy_mask: bool = True) -> None:
    """``--mask-file PATH --mask-key KEY`` for commands that read the masks a capture was taken with.

    ``legacy_mask`` keeps the old spelling ``--mask FILE`` working, with a deprecation message.
    """
    _mask_file_arguments(parser)
    if legacy_mask:
        parser.add_argument("--mask", action=_LegacyMaskFile, metavar="FILE", dest="mask_file_legacy", help=argparse.SUPPRESS)


# --- reconstruction, device, samples -------------------------------------------------------------


def add_recon_param_option(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """``--recon-param METHOD:NAME=VALUE`` (repeatable)."""
    parser.add_argument(
        "--recon-param",
        action="append",
        type=recon_param_type,
        metavar="METHOD:NAME=VALUE",
        help="a reconstruction parameter (repeatable), e.g. gap-tv:iterations=60 or pnp-ffdnet:weights=net_gray.pth",
    )


def add_device_option(parser: argparse.ArgumentParser | argparse._ArgumentGroup, default: str | None = "cpu") -> None:
    """``--device cpu|cuda|cuda:N``, checked when parsed."""
    parser.add_argument(
        "--device",
        type=device_type,
        default=default,
        help="torch device: cpu, cuda or cuda:N (under torchrun, cuda is cuda:LOCAL_RANK)"
        + (f"; default {default}" if default else ""),
    )


def add_samples_option(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """``--samples SELECTION`` over dataset rows (default all)."""
    parser.add_argument("--samples", default=None, help="dataset rows: 0,3,5 or 0:4 or 2: or all (default all)")
