"""The published video-SCI networks by name: build them, load their official checkpoints.

::

    net = create_net("efficientsci-base")              # a preset: the paper's sizes
    net = create_net("stformer", color_channels=3, units=4, dim=64)   # the official arguments
    load_checkpoint(net, "efficientsci_base.pth")      # the official file, as it is
    frames = net(meas, masks)                          # (N, H, W), (B, H, W) -> (N, B, H, W[, 3])

Names are the networks (``birnat``, ``stformer``, ``efficientsci``) and their presets
(:func:`list_nets`). Keyword arguments are the official constructors' argument names.
:func:`infer_config` reads a checkpoint's shapes and names the preset (and colour variant) it
was trained as, so a user holding only the file does not have to know its sizes.
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Mapping

import torch
from torch import nn

from snapcap.errors import ConfigError, DataFileError
from snapcap.recon.nets import birnat, efficientsci, stformer

__all__ = [
    "NetEntry",
    "NETS",
    "list_nets",
    "net_entry",
    "create_net",
    "net_config",
    "is_colour",
    "parameter_count",
    "read_state_dict",
    "load_checkpoint",
    "infer_config",
    "is_optional",
    "NET_CHECKPOINT_KIND",
    "recorded_config",
]


@dataclass(frozen=True)
class NetEntry:
    """One network: its class, its module's constants and the name of its colour argument."""

    name: str
    cls: type[nn.Module]
    module: ModuleType
    color_argument: str | None
    colors: tuple[int, ...]
    paper: str

    @property
    def presets(self) -> dict[str, dict[str, Any]]:
        return dict(self.module.PRESETS)

    @property
    def optional_keys(self) -> tuple[str, ...]:
        return tuple(getattr(self.module, "OPTIONAL_KEYS", ()))

    @property
    def arguments(self) -> list[str]:
        return [p.name for p in inspect.signature(self.cls.__init__).parameters.values() if p.name != "self"]


NETS: dict[str, NetEntry] = {
    "birnat": NetEntry("birnat", birnat.BIRNAT, birnat, None, (1,), "Cheng et al., BIRNAT, ECCV 2020"),
    "stformer": NetEntry("stformer", stformer.STFormer, stformer, "color_channels", (1, 3), "Wang et al., STFormer, TPAMI 2023"),
    "efficientsci": NetEntry(
        "efficientsci", efficientsci.EfficientSCI, efficientsci, "color_ch", (1, 3), "Wang et al., EfficientSCI, CVPR 2023"
    ),
}


def _presets() -> dict[str, tuple[str, dict[str, Any]]]:
    table = {}
    for entry in NETS.values():
        for preset, config in entry.presets.items():
            table[preset] = (entry.name, dict(config))
    return table


def list_nets() -> list[str]:
    """Every name :func:`create_net` takes: the networks, then their presets."""
    return list(NETS) + [name for name in _presets() if name not in NETS]


def net_entry(name: str) -> NetEntry:
    """The :class:`NetEntry` of a network or preset name."""
    if name in NETS:
        return NETS[name]
    presets = _presets()
    if name in presets:
        return NETS[presets[name][0]]
    raise ConfigError(f"unknown network {name!r}; expected one of {', '.join(list_nets())}")


def net_config(name: str, **config: Any) -> dict[str, Any]:
    """Every constructor keyword of ``name``: the constructor's defaults, a preset's sizes over
    them, then ``config``."""
    entry = net_entry(name)
    defaults = {
        p.name: p.default
        for p in inspect.signature(entry.cls.__init__).parameters.values()
        if p.name != "self" and p.default is not inspect.Parameter.empty
    }
    base = dict(_presets()[name][1]) if name not in NETS else {}
    unknown = sorted(set(config) - set(entry.arguments))
    if unknown:
        raise ConfigError(f"{entry.name}: unknown argument(s) {', '.join(unknown)}; it takes {', '.join(entry.arguments)}")
    return {**defaults, **base, **config}


def is_colour(name: str, **config: Any) -> bool:
    """Whether ``name`` built with ``config`` is a colour variant (Bayer mosaic in, RGB out)."""
    entry = net_entry(name)
    return bool(entry.color_argument) and net_config(name, **config).get(entry.color_argument, 1) == 3


def create_net(name: str, **config: Any) -> nn.Module:
    """A network by name (``birnat``, ``stformer-base``, ``efficientsci-tiny``...), built with
    the official constructor's keywords ``config`` over the preset's; random weights until
    :func:`load_checkpoint`. In eval mode."""
    entry = net_entry(name)
    try:
        net = entry.cls(**net_config(name, **config))
    except TypeError as exc:
        raise ConfigError(f"{entry.name}: {exc}") from None
    return net.eval()


def parameter_count(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


_STATE_KEYS = ("model_state_dict", "state_dict", "model", "net", "params")

NET_CHECKPOINT_KIND = "snapcap-net"
"""``kind`` of the ``model.pt`` that ``snapcap train recon --arch NET`` writes: the official
layout (``model_state_dict``) plus ``arch`` and ``config``, the constructor keywords."""


def recorded_config(path: str | Path) -> tuple[str, dict[str, Any]] | None:
    """(arch, constructor keywords) recorded in a checkpoint snapcap trained, else None."""
    try:
        payload = torch.load(Path(path), map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - not ours (or not readable): read_state_dict says why
        return None
    if isinstance(payload, Mapping) and payload.get("kind") == NET_CHECKPOINT_KIND and isinstance(payload.get("config"), Mapping):
        return str(payload.get("arch", "")), dict(payload["config"])
    return None


def _numpy_globals(path: Path) -> list[Any]:
    """The numpy types a checkpoint pickles beside its tensors (a logged PSNR as ``np.float64``, an
    array of metrics): data, not code, so ``weights_only`` may rebuild them. Anything else the
    file names stays refused."""
    try:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception:  # noqa: BLE001 - not a zip checkpoint: torch.load says what it is
        return []
    found = []
    for name in names:
        module, _, attribute = name.rpartition(".")
        if module.split(".")[0] != "numpy":
            continue
        try:
            found.append(getattr(importlib.import_module(module), attribute))
        except (ImportError, AttributeError):
            continue
    if found:  # the dtype of a pickled scalar or array is rebuilt from its DType class
        import numpy

        found += [cls for cls in vars(numpy.dtypes).values() if isinstance(cls, type) and issubclass(cls, numpy.dtype)]
    return found


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The weights of a checkpoint file in any official layout, ``module.`` prefixes removed.

    Accepted: the cacti toolbox's training files (``{"epoch", "model_state_dict",
    "optim_state_dict"}``), a ``state_dict`` (or ``model``) key, or a bare state dict. Read with
    ``weights_only`` (no code in the file runs; numpy scalars and arrays saved beside the
    weights, such as a logged PSNR, are allowed).

    Raises:
        DataFileError: missing or unreadable file, or no state dict in it.
    """
    path = Path(path)
    if not path.is_file():
        raise DataFileError(f"{path}: no such checkpoint file")
    try:
        with torch.serialization.safe_globals(_numpy_globals(path)):
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - every failure becomes one line naming the file
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        message = next((line for line in lines if "invalid load key" in line or "Errno" in line), lines[0] if lines else "")
        if "Unsupported global" in str(exc):
            raise DataFileError(
                f"{path}: holds pickled code, not only weights (e.g. a whole saved module); "
                "load it with its own code and save its state_dict()"
            ) from None
        raise DataFileError(f"{path}: not a readable torch checkpoint ({exc.__class__.__name__}: {message})") from None
    state = payload
    if isinstance(payload, Mapping):
        for key in _STATE_KEYS:
            if isinstance(payload.get(key), Mapping):
                state = payload[key]
                break
    if not isinstance(state, Mapping) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        keys = ", ".join(sorted(map(str, payload))[:8]) if isinstance(payload, Mapping) else type(payload).__name__
        expected = ", ".join(_STATE_KEYS)
        raise DataFileError(f"{path}: no state dict found (top level: {keys}); expected one of {expected} or bare weights")
    return {(key[len("module.") :] if key.startswith("module.") else key): value for key, value in state.items()}


def is_optional(key: str, optional: tuple[str, ...]) -> bool:
    """Whether ``key`` has one of the ``optional`` dotted components (``conv_cat.`` matches
    ``conv_cat.weight`` and ``layers.0.blocks.1.conv_cat.weight``)."""
    return any(key.startswith(part) or f".{part}" in key for part in optional)


def _mismatch(net: nn.Module, state: Mapping[str, torch.Tensor], optional: tuple[str, ...]) -> tuple[list, list, list]:
    own = net.state_dict()
    missing = [k for k in own if k not in state and not is_optional(k, optional)]
    unexpected = [k for k in state if k not in own]
    shapes = [
        f"{k} {tuple(state[k].shape)} (network {tuple(own[k].shape)})"
        for k in own
        if k in state and tuple(state[k].shape) != tuple(own[k].shape)
    ]
    return missing, unexpected, shapes


def _listed(keys: list[str], limit: int = 6) -> str:
    return ", ".join(keys[:limit]) + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


def load_checkpoint(net: nn.Module, path: str | Path, name: str | None = None) -> nn.Module:
    """Load an official checkpoint into ``net``, strictly: every key present with its shape.

    The only keys a checkpoint may lack are its network's ``OPTIONAL_KEYS`` (STFormer's
    ``conv_cat``, which the standalone STFormer repository's files do not have and the forward
    pass never uses); they keep their initial values.

    Raises:
        DataFileError: unreadable file.
        ConfigError: keys missing, unexpected, or of another shape, listed (the official test
            scripts print "load model error!" and go on with random weights: snapcap stops).
    """
    entry = next((e for e in NETS.values() if isinstance(net, e.cls)), None)
    optional = entry.optional_keys if entry is not None else ()
    state = read_state_dict(path)
    missing, unexpected, shapes = _mismatch(net, state, optional)
    if missing or unexpected or shapes:
        what = name or (entry.name if entry else type(net).__name__)
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} key(s): {_listed(missing)}")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)} key(s): {_listed(unexpected)}")
        if shapes:
            parts.append(f"{len(shapes)} of another shape: {_listed(shapes, 3)}")
        hint = ""
        if entry is not None:
            try:
                hint = f"; the file looks like {infer_config(entry.name, state)[0]}"
            except ConfigError:
                hint = ""
        raise ConfigError(f"{path}: not a checkpoint of this {what} ({'; '.join(parts)}){hint}")
    net.load_state_dict(state, strict=False)
    return net


def infer_config(
    name: str, state: Mapping[str, torch.Tensor] | str | Path, preset: str | None = None
) -> tuple[str, dict[str, Any]]:
    """(preset, constructor keywords) of the preset and colour variant of network ``name``
    whose keys and shapes are exactly those of ``state`` (a state dict or a checkpoint path);
    with ``preset``, only its gray and colour variants are tried.

    Raises:
        ConfigError: no preset matches (sizes outside the published ones: pass them).
    """
    entry = net_entry(name)
    if not isinstance(state, Mapping):
        state = read_state_dict(state)
    if preset is not None and preset not in entry.presets:
        raise ConfigError(f"preset {preset!r} is not a {entry.name} preset ({', '.join(entry.presets)})")
    tried = []
    for preset_name, config in entry.presets.items():
        if preset is not None and preset_name != preset:
            continue
        for color in entry.colors:
            candidate = dict(config, **({entry.color_argument: color} if entry.color_argument else {}))
            with torch.device("meta"):
                try:
                    net = entry.cls(**candidate)
                except Exception:  # noqa: BLE001 - a variant the network does not support
                    continue
            missing, unexpected, shapes = _mismatch(net, state, entry.optional_keys)
            if not (missing or unexpected or shapes):
                return preset_name, candidate
            tried.append(preset_name)
    raise ConfigError(
        f"the checkpoint matches no {entry.name} preset ({', '.join(dict.fromkeys(tried))}, gray and colour); "
        f"give its constructor arguments ({', '.join(entry.arguments)})"
    )
