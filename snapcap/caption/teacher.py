"""The CLIP teacher T of SnapCap: an open_clip ViT image tower, frozen, with its patch embedding exposed.

For the B frames X_k of one snapshot the paper's distillation targets are

    f_t_conv = mean_k conv1(X_k)  ∈ R^{c×h×w}   (ViT-B/16 at 224×224: 768×14×14)
    f_t      = mean_k T(X_k)      ∈ R^d         (ViT-B/16: d = 512)

and the one-stage student reuses S, "the teacher's ViT blocks after conv1" (flatten to tokens,
class token, positional embedding, ln_pre, transformer, ln_post / pooling, proj), copied as its
initialisation. :class:`ClipTeacher` gives all three: :meth:`ClipTeacher.conv1_features`,
:meth:`ClipTeacher.encode` and :meth:`ClipTeacher.copy_vit_tail`, with
``from_conv1(conv1_features(x)) == encode(x)``.

Models are any open_clip ViT architecture (``ViT-B-16``, ...) plus the tiny configs shipped in
``snapcap/caption/model_configs/`` (``snapcap-tiny-vit``, ``snapcap-small-vit``), registered with
open_clip on first use. Weights come from an open_clip ``pretrained=`` tag, a ``pretrained=`` file
(a whole open_clip checkpoint, loaded by open_clip) or ``checkpoint=`` (a state dict of the whole
CLIP model, of the visual tower alone, or of anything holding one, e.g. a saved captioner). Without
either the tower is randomly initialised.

Nothing here downloads anything unless asked: a pretrained tag is looked up in the local caches
(Hugging Face hub cache, ``~/.cache/clip``) and a missing file is a :class:`DataFileError` at once;
pass ``allow_download=True`` to let open_clip fetch it. ``open_clip`` is imported inside functions
only (it is an optional dependency).
"""

from __future__ import annotations

import contextlib
import copy
import difflib
import logging
import math
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from snapcap.errors import BackendUnavailableError, ConfigError, DataFileError, DTypeError, ShapeError, SnapcapError

__all__ = [
    "CONFIG_DIR",
    "ClipTeacher",
    "ViTTail",
    "list_teacher_models",
    "snapcap_model_names",
    "open_clip_module",
    "resolve_pretrained",
    "quiet_random_init",
    "teacher_image_size",
]

CONFIG_DIR = Path(__file__).resolve().parent / "model_configs"
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"

SHIPPED_WEIGHTS: dict[tuple[str, str], str] = {("snapcap-tiny-vit", "procedural"): "snapcap-tiny-vit-procedural.pt"}
"""(model, pretrained tag) -> a tower's weights shipped with snapcap (in :data:`WEIGHTS_DIR`):
``procedural`` is the tiny tower pretrained on procedural frames (:mod:`snapcap.caption.pretrain`),
the tiny preset's stand-in for CLIP's pretrained weights."""
"""The folder of snapcap's own open_clip model configs (JSON, one model a file)."""

_OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
_OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)
_FITS = ("stretch", "crop")
_HF_HUB = "hf-hub:"
_LOCAL_DIR = "local-dir:"
_STATE_KEYS = ("state_dict", "state", "model", "model_state_dict")

_registered = False
_register_lock = threading.Lock()


class _QuietRandomInit(logging.Filter):
    """Drops open_clip's "No pretrained weights loaded ... initialized randomly" warning: snapcap
    asks for a randomly initialised model on purpose (its own checkpoint is loaded next)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "No pretrained weights loaded" not in record.getMessage()


@contextlib.contextmanager
def quiet_random_init(source: Any):
    """While building with ``pretrained=source``: silence that warning when ``source`` is None."""
    if source is not None:
        yield
        return
    root = logging.getLogger()
    quiet = _QuietRandomInit()
    root.addFilter(quiet)
    try:
        yield
    finally:
        root.removeFilter(quiet)


def open_clip_module() -> Any:
    """The ``open_clip`` module, with snapcap's model configs registered (once).

    Raises:
        BackendUnavailableError: open_clip is not installed.
    """
    global _registered
    try:
        import open_clip
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise BackendUnavailableError("the CLIP teacher needs open_clip; install it with `pip install open_clip_torch`") from exc
    with _register_lock:
        if not _registered:
            open_clip.add_model_config(CONFIG_DIR)
            _registered = True
    return open_clip


def teacher_image_size(name: str) -> int:
    """The input size S (S x S) of an open_clip ViT config, without building the model.

    Raises:
        ConfigError: ``name`` is not an open_clip or snapcap model config.
    """
    config = open_clip_module().get_model_config(name)
    if not config:
        raise ConfigError(f"unknown teacher model {name!r} (not an open_clip or snapcap model config)")
    size = config.get("vision_cfg", {}).get("image_size", 224)
    return int(size[0] if isinstance(size, (tuple, list)) else size)


def snapcap_model_names() -> list[str]:
    """The model configs shipped with snapcap (``snapcap-tiny-vit``, ``snapcap-small-vit``, ...)."""
    return sorted(path.stem for path in CONFIG_DIR.glob("*.json"))


def _is_plain_vit_config(config: Mapping[str, Any] | None) -> bool:
    """Whether an open_clip model config builds an open_clip ``VisionTransformer`` image tower."""
    if not config:
        return False
    vision = config.get("vision_cfg", {})
    return not vision.get("timm_model_name") and isinstance(vision.get("layers", 12), int)


def list_teacher_models(include_open_clip: bool = True) -> list[str]:
    """The model names :meth:`ClipTeacher.create` accepts.

    Args:
        include_open_clip: also list open_clip's own ViT architectures (after snapcap's).

    Returns:
        snapcap's shipped configs first, then (optionally) every open_clip config whose image tower
        is an open_clip ViT (timm and ResNet towers have no ``conv1`` patch embedding to distil).
    """
    open_clip = open_clip_module()
    ours = snapcap_model_names()
    if not include_open_clip:
        return ours
    others = [
        name for name in open_clip.list_models() if name not in ours and _is_plain_vit_config(open_clip.get_model_config(name))
    ]
    return ours + others


def _short_list(items: list[str], limit: int = 8) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f", ... ({len(items)} in all)" if len(items) > limit else "")


def _hf_offline() -> bool:
    try:
        from huggingface_hub import constants
    except ImportError:  # pragma: no cover - huggingface_hub comes with open_clip
        return False
    return bool(getattr(constants, "HF_HUB_OFFLINE", False))


# --- the ViT after conv1 ------------------------------------------------------------------------


def _vit_after_conv1(vit: nn.Module, features: torch.Tensor) -> torch.Tensor:
    """An open_clip ``VisionTransformer`` applied to its own patch-embedding maps ``(M, c, h, w)``.

    Mirrors ``VisionTransformer._embeds`` after ``conv1`` and ``VisionTransformer.forward``
    (open_clip 3.x): tokens, class token, positional embedding, patch dropout, ln_pre,
    transformer, pooling (with ln_post) and proj.
    """
    count, channels, height, width = features.shape
    x = features.reshape(count, channels, height * width).permute(0, 2, 1)
    cls = vit.class_embedding.to(x.dtype).view(1, 1, -1).expand(count, -1, -1)
    x = torch.cat([cls, x], dim=1) + vit.positional_embedding.to(x.dtype)
    x = vit.patch_dropout(x)
    x = vit.ln_pre(x)
    x = vit.transformer(x)
    pooled, _ = vit._pool(x)
    if vit.proj is not None:
        pooled = pooled @ vit.proj
    return pooled


def _check_features(features: torch.Tensor, channels: int, grid: tuple[int, int], what: str) -> None:
    expected = (channels, *grid)
    if features.ndim < 3 or tuple(features.shape[-3:]) != expected:
        raise ShapeError(f"{what} must have shape (..., {channels}, {grid[0]}, {grid[1]}), got {tuple(features.shape)}")


class ViTTail(nn.Module):
    """S: the part of an open_clip ViT image tower after ``conv1``, mapping ``(M, c, h, w)`` to ``(M, d)``.

    Holds the class embedding, positional embedding, ln_pre, transformer, ln_post / pooling and
    proj of the tower (as ``self.vit``, whose ``conv1`` is removed). Made by
    :meth:`ClipTeacher.copy_vit_tail`.

    Args:
        vit: an open_clip ``VisionTransformer``; its ``conv1`` is dropped.
    """

    def __init__(self, vit: nn.Module):
        super().__init__()
        self._channels = int(vit.class_embedding.shape[0])
        self._grid = (int(vit.grid_size[0]), int(vit.grid_size[1]))
        vit.conv1 = None
        self.vit = vit

    @property
    def in_channels(self) -> int:
        """c, the channels of the feature maps this takes."""
        return self._channels

    @property
    def grid(self) -> tuple[int, int]:
        """(h, w), the size of the feature maps this takes."""
        return self._grid

    @property
    def embed_dim(self) -> int:
        """d, the size of the embeddings this gives."""
        proj = self.vit.proj
        return int(proj.shape[1]) if proj is not None else self._channels

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Embeddings ``(M, d)`` of feature maps ``(M, c, h, w)``."""
        _check_features(features, self._channels, self._grid, "features")
        if features.ndim != 4:
            raise ShapeError(f"features must have shape (M, c, h, w), got {tuple(features.shape)}")
        return _vit_after_conv1(self.vit, features)


# --- checkpoints ---------------------------------------------------------------------------------


def _read_state_dict(path: Path) -> Mapping[str, Any]:
    """The state dict stored in ``path`` (torch file or safetensors), unwrapped from its container."""
    if not path.is_file():
        raise DataFileError(f"checkpoint {str(path)!r} does not exist or is not a file")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            loaded: Any = load_file(str(path), device="cpu")
        else:
            loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise DataFileError(f"cannot read checkpoint {str(path)!r}: {exc}") from exc
    for _ in range(3):  # {"state_dict": {...}}, {"state": {...}}, {"model": {...}}, ...
        if isinstance(loaded, Mapping) and loaded and all(torch.is_tensor(v) for v in loaded.values()):
            return loaded
        if isinstance(loaded, Mapping):
            inner = next((loaded[k] for k in _STATE_KEYS if isinstance(loaded.get(k), Mapping)), None)
            if inner is not None:
                loaded = inner
                continue
        break
    if isinstance(loaded, Mapping) and loaded:
        tensors = {k: v for k, v in loaded.items() if torch.is_tensor(v)}
        if tensors:
            return tensors
    raise DataFileError(f"checkpoint {str(path)!r} holds no state dict of tensors (got {type(loaded).__name__})")


def _visual_prefix(state: Mapping[str, Any], path: Path) -> str:
    """The key prefix of the ViT image tower in a state dict: ``''``, ``'visual.'``, ``'module.visual.'``..."""
    prefixes = sorted(
        key[: -len("conv1.weight")]
        for key in state
        if key.endswith("conv1.weight") and key[: -len("conv1.weight")] + "class_embedding" in state
    )
    if len(prefixes) == 1:
        return prefixes[0]
    for preferred in ("visual.", ""):
        if preferred in prefixes:
            return preferred
    if not prefixes:
        raise DataFileError(
            f"checkpoint {str(path)!r} holds no ViT image tower (no 'conv1.weight' with a 'class_embedding' "
            f"beside it); first keys: {_short_list(list(state), 6)}"
        )
    raise DataFileError(f"checkpoint {str(path)!r} holds several ViT towers (key prefixes {prefixes}); save just one")


# --- the teacher -------------------------------------------------------------------------------


class ClipTeacher(nn.Module):
    """The CLIP image encoder T: an open_clip ViT image tower and its preprocessing constants.

    Only the visual tower is kept (the text tower is dropped after creation). By default the
    teacher is frozen (``requires_grad`` False) and stays in eval mode even when a parent module
    calls ``train()``, as open_clip's distillation keeps its teacher; :meth:`unfreeze` makes it
    trainable (and lets ``train()`` reach it again), :meth:`freeze` undoes that. Setting
    ``requires_grad`` on its parameters directly has the same effect.

    Frames are floats in [0, 1] (``uint8`` is scaled by 1/255), ``(..., H, W, 3)`` RGB or
    ``(..., H, W)`` gray (replicated to the three channels), with any leading axes; they are
    resized to the model's image size S (bilinear with antialiasing) and normalised with the
    model's mean and std. Embeddings are NOT L2-normalised unless ``normalize=True``.

    Args:
        visual: an open_clip ``VisionTransformer`` (``model.visual`` of an open_clip CLIP model).
        name: the model name, for display and records.
        pretrained: where the weights came from, for display and records.
        mean, std: per-channel normalisation; default the tower's ``preprocess_cfg`` (set by
            ``open_clip.create_model``), else OpenAI CLIP's.
        frozen: freeze the tower (and keep it in eval mode).

    Use :meth:`create` to build one from an open_clip model name.
    """

    def __init__(
        self,
        visual: nn.Module,
        *,
        name: str = "custom",
        pretrained: str | None = None,
        mean: tuple[float, ...] | None = None,
        std: tuple[float, ...] | None = None,
        frozen: bool = True,
    ):
        super().__init__()
        open_clip_module()
        from open_clip.transformer import VisionTransformer

        if not isinstance(visual, VisionTransformer):
            raise ConfigError(
                f"the teacher needs an open_clip VisionTransformer image tower (with a conv1 patch embedding); "
                f"got {type(visual).__name__}"
            )
        image, patch = tuple(visual.image_size), tuple(visual.patch_size)
        if image[0] != image[1] or patch[0] != patch[1]:
            raise ConfigError(f"the teacher needs square images and patches, got image_size {image}, patch_size {patch}")
        if visual.conv1.in_channels != 3:
            raise ConfigError(f"the teacher's conv1 must take 3 channels, got {visual.conv1.in_channels}")
        preprocess_cfg = getattr(visual, "preprocess_cfg", None) or {}
        mean = tuple(mean if mean is not None else preprocess_cfg.get("mean", _OPENAI_MEAN))
        std = tuple(std if std is not None else preprocess_cfg.get("std", _OPENAI_STD))
        if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
            raise ConfigError(f"mean and std must be three numbers (std > 0), got mean {mean}, std {std}")
        self.visual = visual
        self.name = str(name)
        self.pretrained = pretrained
        self.register_buffer("pixel_mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        # parameters open_clip means to train (sin-cos positional embeddings are fixed)
        self._trainable = frozenset(n for n, p in visual.named_parameters() if p.requires_grad)
        if frozen:
            self.freeze()
        self.eval()

    # -- construction ---------------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        name: str = "snapcap-tiny-vit",
        pretrained: str | None = None,
        checkpoint: str | os.PathLike[str] | None = None,
        device: str | torch.device = "cpu",
        *,
        cache_dir: str | os.PathLike[str] | None = None,
        allow_download: bool = False,
        frozen: bool = True,
    ) -> ClipTeacher:
        """Build a teacher from an open_clip model name.

        Args:
            name: an open_clip model name (``ViT-B-16``; see :func:`list_teacher_models`), one of
                snapcap's configs (``snapcap-tiny-vit``), ``local-dir:PATH`` (a folder holding
                ``open_clip_config.json`` and weights) or ``hf-hub:ORG/REPO`` (needs
                ``allow_download=True`` or ``HF_HUB_OFFLINE=1`` with the files cached).
            pretrained: an open_clip pretrained tag of ``name`` (``openai``, ``laion2b_s34b_b88k``...),
                a tag of weights shipped with snapcap (:data:`SHIPPED_WEIGHTS`: ``procedural`` for
                ``snapcap-tiny-vit``) or the path of a whole open_clip checkpoint; None for random
                initialisation. A tag that needs QuickGELU (OpenAI's) gets it.
            checkpoint: a state dict file loaded into the visual tower after ``pretrained``: the
                whole CLIP model's, the visual tower's, or any checkpoint holding exactly one ViT
                tower under some key prefix (``visual.``, ``teacher.visual.``...); keys and shapes
                must match exactly.
            device: where the tower lives.
            cache_dir: where pretrained weights are cached (default: the Hugging Face cache and
                ``~/.cache/clip``, as open_clip).
            allow_download: let open_clip download missing pretrained weights. Off by default: a
                tag whose weights are not cached raises :class:`DataFileError` at once.
            frozen: freeze the teacher (default) or leave it trainable.

        Returns:
            The teacher, in eval mode.

        Raises:
            ConfigError: unknown model name or pretrained tag, or a non-ViT image tower.
            DataFileError: weights missing from the cache, or a bad ``pretrained``/``checkpoint`` file.
            BackendUnavailableError: open_clip is not installed.
        """
        open_clip = open_clip_module()
        if not isinstance(name, str) or not name:
            raise ConfigError(f"name must be an open_clip model name, got {name!r}")
        shipped = SHIPPED_WEIGHTS.get((name, pretrained)) if isinstance(pretrained, str) else None
        if shipped is not None:
            if not (WEIGHTS_DIR / shipped).is_file():
                raise DataFileError(
                    f"pretrained={pretrained!r} of {name!r}: {WEIGHTS_DIR / shipped} is missing from this installation "
                    "(`snapcap train tower` remakes it)"
                )
            source, extra = None, {}
        else:
            source, extra = resolve_pretrained(open_clip, name, pretrained, cache_dir, allow_download)
        try:
            with quiet_random_init(source):
                model = open_clip.create_model(
                    name,
                    pretrained=source,
                    device=device,
                    cache_dir=None if cache_dir is None else str(cache_dir),
                    **extra,
                )
        except SnapcapError:
            raise
        except Exception as exc:
            if source is not None or name.startswith((_HF_HUB, _LOCAL_DIR)):
                raise DataFileError(f"cannot load the weights of {name!r} (pretrained={pretrained!r}): {exc}") from exc
            raise ConfigError(f"open_clip cannot build {name!r} on device {device!r}: {exc}") from exc
        visual = model.visual
        del model  # drops the text tower
        teacher = cls(visual, name=name, pretrained=pretrained, frozen=frozen)
        if shipped is not None:
            teacher.load_checkpoint(WEIGHTS_DIR / shipped)
        if checkpoint is not None:
            teacher.load_checkpoint(checkpoint)
        return teacher.to(device)

    def load_checkpoint(self, path: str | os.PathLike[str]) -> ClipTeacher:
        """Load the visual tower's weights from a state dict file (see ``checkpoint`` of :meth:`create`).

        Args:
            path: a torch (``torch.save``) or safetensors file.

        Returns:
            self.

        Raises:
            DataFileError: the file is missing or unreadable, holds no ViT tower, or its keys or
                shapes differ from this tower's (the message names them).
        """
        path = Path(path)
        state = _read_state_dict(path)
        prefix = _visual_prefix(state, path)
        tower = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
        own = self.visual.state_dict()
        missing = [k for k in own if k not in tower]
        unexpected = [k for k in tower if k not in own]
        wrong = [
            f"{k} {tuple(tower[k].shape)} (expected {tuple(own[k].shape)})"
            for k in own
            if k in tower and tuple(tower[k].shape) != tuple(own[k].shape)
        ]
        if missing or unexpected or wrong:
            kind = f"under prefix {prefix!r}" if prefix else "(visual tower only)"
            problems = []
            if wrong:
                problems.append(f"wrong shapes: {_short_list(wrong, 6)}")
            if missing:
                problems.append(f"missing keys: {_short_list(missing)}")
            if unexpected:
                problems.append(f"unexpected keys: {_short_list(unexpected)}")
            raise DataFileError(
                f"checkpoint {str(path)!r} {kind} does not fit the visual tower of {self.name!r} "
                f"(image {self.image_size}, patch {self.patch_size}, width {self.conv_channels}, embed_dim {self.embed_dim}); "
                + "; ".join(problems)
            )
        with torch.no_grad():
            self.visual.load_state_dict(tower, strict=True)
        return self

    # -- training state -------------------------------------------------------------------------

    @property
    def frozen(self) -> bool:
        """Whether no parameter of the teacher requires a gradient."""
        return not any(p.requires_grad for p in self.parameters())

    def freeze(self) -> ClipTeacher:
        """Stop all gradients to the teacher's parameters and put it in eval mode; returns self."""
        for parameter in self.parameters():
            parameter.requires_grad_(False)
        return self.eval()

    def unfreeze(self) -> ClipTeacher:
        """Make the teacher trainable (fine-tuning); its mode is left as it is; returns self."""
        for key, parameter in self.visual.named_parameters():
            parameter.requires_grad_(key in self._trainable)
        return self

    def train(self, mode: bool = True) -> ClipTeacher:
        """Set the training mode; a frozen teacher stays in eval mode."""
        return super().train(bool(mode) and not self.frozen)

    # -- sizes ----------------------------------------------------------------------------------

    @property
    def embed_dim(self) -> int:
        """d, the size of the image embeddings."""
        proj = self.visual.proj
        return int(proj.shape[1]) if proj is not None else self.conv_channels

    @property
    def conv_channels(self) -> int:
        """c, the channels of the conv1 patch-embedding maps (the ViT width)."""
        return int(self.visual.conv1.out_channels)

    @property
    def grid(self) -> tuple[int, int]:
        """(h, w), the patch grid: the size of the conv1 maps."""
        return (int(self.visual.grid_size[0]), int(self.visual.grid_size[1]))

    @property
    def image_size(self) -> int:
        """S, the (square) input size frames are resized to."""
        return int(self.visual.image_size[0])

    @property
    def patch_size(self) -> int:
        """The (square) patch size: the stride and kernel of conv1."""
        return int(self.visual.patch_size[0])

    @property
    def device(self) -> torch.device:
        """Where the tower's parameters live."""
        return self.visual.conv1.weight.device

    @property
    def dtype(self) -> torch.dtype:
        """The dtype of the tower's parameters."""
        return self.visual.conv1.weight.dtype

    def extra_repr(self) -> str:
        return (
            f"name={self.name!r}, pretrained={self.pretrained!r}, image_size={self.image_size}, "
            f"patch_size={self.patch_size}, conv=({self.conv_channels}, {self.grid[0]}, {self.grid[1]}), "
            f"embed_dim={self.embed_dim}, frozen={self.frozen}"
        )

    # -- frames ---------------------------------------------------------------------------------

    @staticmethod
    def _flatten(frames: Any, rgb: bool | None) -> tuple[Any, tuple[int, ...], bool]:
        """Frames as ``(M, H, W)`` or ``(M, H, W, 3)`` (a view where possible), their leading axes, rgb."""
        if not (isinstance(frames, np.ndarray) or torch.is_tensor(frames)):
            frames = np.asarray(frames)
        shape = tuple(int(s) for s in frames.shape)
        if rgb is None:
            rgb = len(shape) >= 3 and shape[-1] == 3
        if rgb and (len(shape) < 3 or shape[-1] != 3):
            raise ShapeError(f"RGB frames must have shape (..., H, W, 3), got {shape}")
        if not rgb and len(shape) < 2:
            raise ShapeError(f"gray frames must have shape (..., H, W), got {shape}")
        lead = shape[: -3 if rgb else -2]
        pixel = shape[len(lead) :]
        if min(pixel[:2]) < 1:
            raise ShapeError(f"frames must not be empty in H or W, got {shape}")
        dtype = frames.dtype
        if isinstance(frames, np.ndarray):
            ok = dtype == np.uint8 or np.issubdtype(dtype, np.floating)
        else:
            ok = dtype == torch.uint8 or dtype.is_floating_point
        if not ok:
            raise DTypeError(f"frames must be floats in [0, 1] or uint8, got dtype {dtype}")
        return frames.reshape((math.prod(lead),) + pixel), lead, bool(rgb)

    def _prepare(self, chunk: Any, rgb: bool, fit: str) -> torch.Tensor:
        """Flat frames ``(n, H, W[, 3])`` -> normalised ``(n, 3, S, S)`` on the teacher's device and dtype."""
        if isinstance(chunk, np.ndarray):
            if chunk.dtype != np.uint8:
                chunk = chunk.astype(np.float32, copy=False)
            if not chunk.flags.writeable or not chunk.flags.c_contiguous:
                chunk = np.array(chunk)
            chunk = torch.from_numpy(chunk)
        x = chunk.to(self.device)
        x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
        x = x.permute(0, 3, 1, 2) if rgb else x.unsqueeze(1)
        x = self._resize(x, fit)
        if not rgb:
            x = x.expand(-1, 3, -1, -1)
        x = (x - self.pixel_mean) / self.pixel_std
        return x.to(self.dtype)

    def _resize(self, x: torch.Tensor, fit: str) -> torch.Tensor:
        size = self.image_size
        height, width = int(x.shape[-2]), int(x.shape[-1])
        if (height, width) == (size, size):
            return x
        if fit == "crop":
            scale = size / min(height, width)
            target = (max(size, round(height * scale)), max(size, round(width * scale)))
            if target != (height, width):
                x = F.interpolate(x, size=target, mode="bilinear", align_corners=False, antialias=True)
            top, left = (target[0] - size) // 2, (target[1] - size) // 2
            return x[..., top : top + size, left : left + size]
        return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)

    @staticmethod
    def _check_options(fit: str, chunk_size: int) -> None:
        if fit not in _FITS:
            raise ConfigError(f"fit must be one of {_FITS}, got {fit!r}")
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1:
            raise ConfigError(f"chunk_size must be a positive integer, got {chunk_size!r}")

    def preprocess(self, frames: Any, *, rgb: bool | None = None, fit: str = "stretch") -> torch.Tensor:
        """Frames -> the tower's input.

        Args:
            frames: ``(..., H, W, 3)`` RGB or ``(..., H, W)`` gray, floats in [0, 1] or ``uint8``;
                numpy array or tensor.
            rgb: whether the last axis is the colour axis; None: when it has size 3.
            fit: ``"stretch"`` resizes the whole frame to S×S; ``"crop"`` resizes the shorter side
                to S and crops the centre (CLIP's own preprocessing).

        Returns:
            ``(M, 3, S, S)`` normalised images, M the product of the leading axes, on the teacher's
            device.
        """
        self._check_options(fit, 1)
        flat, _, rgb = self._flatten(frames, rgb)
        if flat.shape[0] == 0:
            return torch.empty((0, 3, self.image_size, self.image_size), device=self.device, dtype=self.dtype)
        return self._prepare(flat, rgb, fit)

    def _tower(self, x: torch.Tensor) -> torch.Tensor:
        out = self.visual(x)
        return out[0] if isinstance(out, tuple) else out

    def encode(
        self,
        frames: Any,
        *,
        normalize: bool = False,
        rgb: bool | None = None,
        fit: str = "stretch",
        chunk_size: int = 256,
    ) -> torch.Tensor:
        """T(X): one embedding per frame.

        Gradients flow as usual (nothing is wrapped in ``no_grad``; a frozen teacher simply has no
        parameter gradients).

        Args:
            frames: see :meth:`preprocess`.
            normalize: L2-normalise the embeddings (CLIP's cosine space); off by default, as the
                paper's f_t = mean_k T(X_k) averages the raw embeddings.
            rgb, fit: see :meth:`preprocess`.
            chunk_size: frames per forward pass (bounds memory).

        Returns:
            ``(..., d)`` embeddings (the leading axes of ``frames``).
        """
        self._check_options(fit, chunk_size)
        flat, lead, rgb = self._flatten(frames, rgb)
        count = flat.shape[0]
        parts = [self._tower(self._prepare(flat[i : i + chunk_size], rgb, fit)) for i in range(0, count, chunk_size)]
        out = torch.cat(parts) if parts else torch.empty((0, self.embed_dim), device=self.device, dtype=self.dtype)
        if normalize:
            out = F.normalize(out, dim=-1)
        return out.reshape(lead + (self.embed_dim,))

    def conv1_features(
        self, frames: Any, *, rgb: bool | None = None, fit: str = "stretch", chunk_size: int = 256
    ) -> torch.Tensor:
        """conv1(X): the patch-embedding maps of each frame.

        Args:
            frames, rgb, fit: see :meth:`preprocess`.
            chunk_size: frames per forward pass.

        Returns:
            ``(..., c, h, w)`` feature maps (c = :attr:`conv_channels`, (h, w) = :attr:`grid`).
        """
        self._check_options(fit, chunk_size)
        flat, lead, rgb = self._flatten(frames, rgb)
        count = flat.shape[0]
        parts = [self.visual.conv1(self._prepare(flat[i : i + chunk_size], rgb, fit)) for i in range(0, count, chunk_size)]
        shape = (self.conv_channels, *self.grid)
        out = torch.cat(parts) if parts else torch.empty((0, *shape), device=self.device, dtype=self.dtype)
        return out.reshape(lead + shape)

    def from_conv1(self, features: Any, *, normalize: bool = False) -> torch.Tensor:
        """The rest of the ViT after conv1: ``from_conv1(conv1_features(x)) == encode(x)``.

        Args:
            features: ``(..., c, h, w)`` patch-embedding maps (tensor or numpy array).
            normalize: L2-normalise the embeddings.

        Returns:
            ``(..., d)`` embeddings.
        """
        if not torch.is_tensor(features):
            features = torch.as_tensor(np.asarray(features))
        _check_features(features, self.conv_channels, self.grid, "features")
        lead = tuple(features.shape[:-3])
        x = features.reshape((-1, self.conv_channels, *self.grid)).to(self.device, self.dtype)
        if x.shape[0] == 0:
            out = torch.empty((0, self.embed_dim), device=self.device, dtype=self.dtype)
        else:
            out = _vit_after_conv1(self.visual, x)
        if normalize:
            out = F.normalize(out, dim=-1)
        return out.reshape(lead + (self.embed_dim,))

    def snapshot_targets(
        self,
        frames: Any,
        *,
        fit: str = "stretch",
        chunk_size: int = 256,
        out_device: str | torch.device | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The distillation targets of each snapshot: means over its B frames.

        Runs under ``torch.no_grad``, in chunks of whole snapshots of at most ``chunk_size`` frames
        (at least one snapshot).

        Args:
            frames: ``(N, T, B, H, W)`` gray or ``(N, T, B, H, W, 3)`` RGB frames in [0, 1].
            fit: see :meth:`preprocess`.
            chunk_size: frames per forward pass.
            out_device: where the targets go (default the teacher's device).

        Returns:
            ``(f_t_conv, f_t)``: ``(N, T, c, h, w)`` = mean_k conv1(X_k) and ``(N, T, d)`` = mean_k T(X_k).
        """
        self._check_options(fit, chunk_size)
        shape = tuple(int(s) for s in frames.shape)
        if len(shape) == 5:
            rgb = False
        elif len(shape) == 6 and shape[-1] == 3:
            rgb = True
        else:
            raise ShapeError(f"frames must have shape (N, T, B, H, W) or (N, T, B, H, W, 3), got {shape}")
        count, snapshots, per = shape[:3]
        if per < 1:
            raise ShapeError(f"frames must hold at least one frame per snapshot (B >= 1), got {shape}")
        flat, _, _ = self._flatten(frames, rgb)
        total = count * snapshots
        conv_shape = (self.conv_channels, *self.grid)
        step = max(1, chunk_size // per)
        device = self.device if out_device is None else torch.device(out_device)
        convs: list[torch.Tensor] = []
        embeds: list[torch.Tensor] = []
        with torch.no_grad():
            for start in range(0, total, step):
                stop = min(total, start + step)
                x = self._prepare(flat[start * per : stop * per], rgb, fit)
                conv = self.visual.conv1(x)
                embed = _vit_after_conv1(self.visual, conv)
                convs.append(conv.reshape((stop - start, per, *conv_shape)).mean(dim=1).to(device))
                embeds.append(embed.reshape(stop - start, per, -1).mean(dim=1).to(device))
        if not convs:
            empty = dict(device=device, dtype=self.dtype)
            return torch.empty((count, snapshots, *conv_shape), **empty), torch.empty((count, snapshots, self.embed_dim), **empty)
        return (
            torch.cat(convs).reshape((count, snapshots, *conv_shape)),
            torch.cat(embeds).reshape(count, snapshots, self.embed_dim),
        )

    # -- the student's initialisation -----------------------------------------------------------

    def copy_vit_tail(self) -> ViTTail:
        """A trainable deep copy of S, the tower after conv1, for the student's initialisation.

        Returns:
            A :class:`ViTTail` (in train mode, gradients on) mapping ``(M, c, h, w)`` to ``(M, d)``
            exactly as :meth:`from_conv1`; it shares no parameter with the teacher.
        """
        vit = copy.deepcopy(self.visual)
        for key, parameter in vit.named_parameters():
            parameter.requires_grad_(key in self._trainable)
        tail = ViTTail(vit)
        return tail.train()


# --- name and weight resolution ----------------------------------------------------------------


def resolve_pretrained(
    open_clip: Any,
    name: str,
    pretrained: str | None,
    cache_dir: str | os.PathLike[str] | None,
    allow_download: bool,
) -> tuple[str | None, dict[str, Any]]:
    """What to pass to ``open_clip.create_model``: ``(pretrained, extra keyword arguments)``.

    Checks the model name and the pretrained tag, and (unless ``allow_download``) swaps a tag for
    the cached file of its weights, so that open_clip never reaches the network.

    Args:
        open_clip: the module of :func:`open_clip_module`.
        name: an open_clip model name (``ViT-B-16``, ``snapcap-tiny-vit``, ``hf-hub:...``,
            ``local-dir:...``).
        pretrained: a pretrained tag, a weights file, or None (random initialisation).
        cache_dir: where open_clip caches downloaded weights (None: its default).
        allow_download: let open_clip fetch a tag's weights.

    Returns:
        ``(pretrained, extra)``: the ``pretrained=`` argument (a tag, a file or None) and extra
        keyword arguments of ``open_clip.create_model``.

    Raises:
        ConfigError: unknown model, a non-ViT image tower, or an unknown pretrained tag.
        DataFileError: the tag's weights are not in the local cache (without ``allow_download``).
    """
    if pretrained is not None and (not isinstance(pretrained, str) or not pretrained):
        raise ConfigError(f"pretrained must be a tag, a file path or None, got {pretrained!r}")
    if name.startswith((_HF_HUB, _LOCAL_DIR)):
        if pretrained is not None:
            raise ConfigError(
                f"pretrained= is not used with {name!r} (the weights come from there); use checkpoint= to override them"
            )
        if name.startswith(_HF_HUB) and not (allow_download or _hf_offline()):
            raise ConfigError(
                f"{name!r} is fetched from the Hugging Face Hub; pass allow_download=True, or set HF_HUB_OFFLINE=1 "
                "to use the local cache, or use 'local-dir:PATH'"
            )
        if name.startswith(_LOCAL_DIR):
            folder = Path(name[len(_LOCAL_DIR) :])
            if not (folder / "open_clip_config.json").is_file():
                raise DataFileError(f"{name!r}: {str(folder / 'open_clip_config.json')!r} does not exist")
        return None, {}
    cleaned = name.replace("/", "-")
    config = open_clip.get_model_config(cleaned)
    if config is None:
        known = list_teacher_models()
        close = difflib.get_close_matches(cleaned, known, n=4, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ConfigError(f"unknown CLIP model {name!r}{hint} Known ViT models: {_short_list(known)}")
    if not _is_plain_vit_config(config):
        raise ConfigError(
            f"{name!r} has a {'timm' if config.get('vision_cfg', {}).get('timm_model_name') else 'ResNet'} image tower; "
            "the teacher needs an open_clip ViT (conv1 patch embedding), e.g. ViT-B-16"
        )
    if pretrained is None:
        return None, {}
    tag_cfg = open_clip.get_pretrained_cfg(cleaned, pretrained)
    if not tag_cfg:
        if os.path.isfile(pretrained):
            return pretrained, {}
        tags = open_clip.list_pretrained_tags_by_model(cleaned)
        known = f"its tags: {_short_list(tags)}" if tags else "it has no published weights (train it, or pass checkpoint=)"
        raise ConfigError(f"pretrained={pretrained!r} is neither a pretrained tag of {cleaned!r} ({known}) nor an existing file")
    extra: dict[str, Any] = {}
    if tag_cfg.get("quick_gelu", False) and not config.get("quick_gelu", False):
        extra["force_quick_gelu"] = True  # OpenAI's weights were trained with QuickGELU
    if allow_download:
        return pretrained, extra
    extra["force_preprocess_cfg"] = {k: tag_cfg[k] for k in ("mean", "std", "interpolation", "resize_mode") if k in tag_cfg}
    return _cached_weights(cleaned, pretrained, tag_cfg, cache_dir), extra


def _cached_weights(name: str, tag: str, tag_cfg: Mapping[str, Any], cache_dir: str | os.PathLike[str] | None) -> str:
    """The local file of a pretrained tag's weights, looked up without any network access."""
    looked: list[str] = []
    if tag_cfg.get("file"):
        if os.path.isfile(tag_cfg["file"]):
            return str(tag_cfg["file"])
        looked.append(str(tag_cfg["file"]))
    hub = tag_cfg.get("hf_hub", "")
    if hub:
        from open_clip.constants import HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME

        repo, filename = os.path.split(hub)
        filename = filename or HF_WEIGHTS_NAME
        candidates = [filename]
        if filename == HF_WEIGHTS_NAME:
            candidates.insert(0, HF_SAFE_WEIGHTS_NAME)
        elif filename.endswith((".bin", ".pth")):
            candidates.insert(0, filename[:-4] + ".safetensors")
        try:
            from huggingface_hub import hf_hub_download
        except ImportError:  # pragma: no cover - huggingface_hub comes with open_clip
            hf_hub_download = None
        for candidate in candidates:
            looked.append(f"hf-hub {repo}/{candidate}")
            if hf_hub_download is None:
                continue
            try:
                return hf_hub_download(
                    repo_id=repo,
                    filename=candidate,
                    cache_dir=None if cache_dir is None else str(cache_dir),
                    local_files_only=True,
                )
            except Exception:  # noqa: BLE001 - a hub cache lookup may fail in any way; try the next candidate
                continue
    url = tag_cfg.get("url", "")
    if url:
        target = Path(cache_dir) if cache_dir is not None else Path("~/.cache/clip").expanduser()
        target = target / os.path.basename(url)
        if target.is_file():
            return str(target)
        looked.append(str(target))
    raise DataFileError(
        f"the weights of {name}:{tag} are not in the local cache (looked for {'; '.join(looked) or 'nothing to look for'}); "
        "snapcap does not download by default: pass allow_download=True once, or give pretrained=PATH / checkpoint=PATH"
    )
