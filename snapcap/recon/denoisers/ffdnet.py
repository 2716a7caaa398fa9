"""FFDNet (Zhang, Zuo, Zhang 2018) as a plug-and-play denoiser, in the two public PyTorch layouts.

Two module classes hold the same network in the parameter layouts of the public checkpoints:

* :class:`FFDNet` follows the IPOL implementation (Tassano, Delon, Veit; ``net_gray.pth``,
  ``net_rgb.pth``, also shipped by PnP-SCI_python). Keys ``intermediate_dncnn.itermediate_dncnn.{i}.*``
  (the typo is in the checkpoints), convolutions without bias, batch norm, and a *residual*
  output: the network predicts the noise and the module returns ``x - noise``. The noise map
  comes FIRST in the network input and has one channel per colour channel.
* :class:`FFDNetKAIR` follows KAIR (Kai Zhang; ``ffdnet_color.pth``). Keys ``model.{i}.weight/bias``,
  convolutions with bias, no batch norm, a single noise-map channel LAST in the input, and the
  clean image as output.

Both take ``x`` ``(N, C, H, W)`` in [0, 1] and ``sigma`` (a float or an ``(N,)`` tensor on the
[0, 1] scale) and return the denoised ``(N, C, H, W)``. Odd heights and widths are padded by
replicating the last row/column (as the IPOL test script does) and cropped back.

:func:`load_ffdnet` reads a checkpoint, infers the layout and the architecture from its keys and
shapes, and loads it strictly; :class:`FFDNetDenoiser` wraps a module in the snapcap denoiser
protocol (frames of any backend in, the same backend/dtype/shape out).

The checkpoint helpers :func:`read_state_dict` and :func:`load_state_dict_checked` and the
backend conversions are shared with :mod:`snapcap.recon.denoisers.fastdvdnet`.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from snapcap.backend import from_numpy, is_torch, require_float, to_numpy, torch_device
from snapcap.errors import BackendUnavailableError, ConfigError, DataFileError, DTypeError, InvalidValueError, ShapeError

__all__ = [
    "FFDNet",
    "FFDNetKAIR",
    "IntermediateDnCNN",
    "FFDNetDenoiser",
    "load_ffdnet",
    "read_state_dict",
    "load_state_dict_checked",
    "detect_layout",
    "few_keys",
    "move_module",
]

#: Paper defaults (num_features, num_conv_layers) per number of colour channels.
_IPOL_DEFAULTS = {1: (64, 15), 3: (96, 12)}

#: Keys that wrap a state dict inside a training checkpoint.
_WRAPPER_KEYS = ("state_dict", "params", "params_ema", "model_state_dict", "net", "model", "network")

_IPOL_PREFIX = "intermediate_dncnn.itermediate_dncnn."


# --- modules ---------------------------------------------------------------------------------


class IntermediateDnCNN(nn.Module):
    """The DnCNN body of the IPOL FFDNet (attribute ``itermediate_dncnn``, sic).

    Args:
        input_features: channels of the input (5 gray, 15 colour: noise map + 4 sub-images each).
        middle_features: feature maps of the hidden layers (64 gray, 96 colour).
        num_conv_layers: convolutions in total, head and tail included (15 gray, 12 colour).
        output_features: channels of the output (4 gray, 12 colour).
    """

    def __init__(self, input_features: int, middle_features: int, num_conv_layers: int, output_features: int):
        super().__init__()
        if num_conv_layers < 2:
            raise ConfigError(f"FFDNet needs at least 2 convolution layers, got {num_conv_layers}")
        layers: list[nn.Module] = [
            nn.Conv2d(input_features, middle_features, kernel_size=3, padding=1, bias=False),
            nn.ReLU(inplace=True),
        ]
        for _ in range(num_conv_layers - 2):
            layers += [
                nn.Conv2d(middle_features, middle_features, kernel_size=3, padding=1, bias=False),
                nn.BatchNorm2d(middle_features),
                nn.ReLU(inplace=True),
            ]
        layers.append(nn.Conv2d(middle_features, output_features, kernel_size=3, padding=1, bias=False))
        self.itermediate_dncnn = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.itermediate_dncnn(x)


def _sigma_vector(sigma: Any, n: int, like: torch.Tensor) -> torch.Tensor:
    """``sigma`` (float, 0-d or (N,) tensor) as an (N,) tensor on ``like``'s device and dtype."""
    s = torch.as_tensor(sigma, dtype=like.dtype, device=like.device).reshape(-1)
    if s.numel() == 1:
        return s.expand(n)
    if s.numel() != n:
        raise ShapeError(f"sigma must be a scalar or hold one value per image ({n}), got {s.numel()} values")
    return s


def _pad_even(x: torch.Tensor) -> torch.Tensor:
    """Pad an odd height/width by replicating the last row/column (IPOL FFDNet convention)."""
    h, w = x.shape[-2:]
    pad_h, pad_w = h % 2, w % 2
    if pad_h or pad_w:
        x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
    return x


def _check_input(x: torch.Tensor, channels: int, name: str) -> None:
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        raise ShapeError(f"{name} expects a tensor (N, C, H, W), got {getattr(x, 'shape', type(x).__name__)}")
    if x.shape[1] != channels:
        raise ShapeError(f"{name} was built for {channels} colour channel(s), got input with {x.shape[1]}: {tuple(x.shape)}")


class FFDNet(nn.Module):
    """FFDNet in the IPOL layout (``net_gray.pth``, ``net_rgb.pth``).

    Args:
        channels: colour channels of the images, 1 (gray) or 3 (RGB).
        num_features: hidden feature maps (default 64 gray, 96 colour).
        num_conv_layers: convolution layers (default 15 gray, 12 colour).

    The network input is ``cat(noise map (N, C, H/2, W/2) filled with sigma,
    pixel_unshuffle(x, 2))``, the noise map first; the unshuffled channel of colour ``c`` and
    sub-pixel ``(i, j)`` is ``4c + 2i + j``. The predicted noise is ``pixel_shuffle`` of the DnCNN
    output and :meth:`forward` returns ``x - noise`` (not clipped).
    """

    layout = "ipol"

    def __init__(self, channels: int = 1, num_features: int | None = None, num_conv_layers: int | None = None):
        super().__init__()
        if channels not in (1, 3) and (num_features is None or num_conv_layers is None):
            raise ConfigError(
                "FFDNet channels must be 1 (gray) or 3 (colour) unless num_features and num_conv_layers are given, "
                f"got {channels}"
            )
        default_features, default_layers = _IPOL_DEFAULTS.get(channels, (64, 15))
        self.channels = int(channels)
        self.num_features = int(num_features or default_features)
        self.num_conv_layers = int(num_conv_layers or default_layers)
        self.intermediate_dncnn = IntermediateDnCNN(
            input_features=5 * self.channels,
            middle_features=self.num_features,
            num_conv_layers=self.num_conv_layers,
            output_features=4 * self.channels,
        )

    def predict_noise(self, x: torch.Tensor, sigma: Any) -> torch.Tensor:
        """The noise the network sees in ``x`` (the IPOL module's own output), same shape as ``x``."""
        _check_input(x, self.channels, "FFDNet")
        n, c, h, w = x.shape
        xp = _pad_even(x)
        hh, wh = xp.shape[-2] // 2, xp.shape[-1] // 2
        noise_map = _sigma_vector(sigma, n, x).view(n, 1, 1, 1).expand(n, c, hh, wh)
        features = torch.cat((noise_map, F.pixel_unshuffle(xp, 2)), dim=1)
        noise = F.pixel_shuffle(self.intermediate_dncnn(features), 2)
        return noise[..., :h, :w]

    def forward(self, x: torch.Tensor, sigma: Any) -> torch.Tensor:
        """Denoise ``x`` (N, C, H, W) in [0, 1] at noise level ``sigma`` (float or (N,) tensor)."""
        return x - self.predict_noise(x, sigma)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, num_features={self.num_features}, num_conv_layers={self.num_conv_layers}"


class FFDNetKAIR(nn.Module):
    """FFDNet in the KAIR layout (``ffdnet_color.pth``: keys ``model.{0..22}.weight/bias``).

    Args:
        channels: colour channels, 1 or 3.
        num_features: hidden feature maps (default 64 gray, 96 colour).
        num_conv_layers: convolution layers (default 15 gray, 12 colour).

    The network input is ``cat(pixel_unshuffle(x, 2), sigma map (N, 1, H/2, W/2))``, the single
    noise-map channel LAST; convolutions have a bias and there is no batch norm; the output is
    ``pixel_shuffle`` of the network output, the clean image itself (not a residual).
    """

    layout = "kair"

    def __init__(self, channels: int = 1, num_features: int | None = None, num_conv_layers: int | None = None):
        super().__init__()
        default_features, default_layers = _IPOL_DEFAULTS.get(channels, (64, 15))
        self.channels = int(channels)
        self.num_features = int(num_features or default_features)
        self.num_conv_layers = int(num_conv_layers or default_layers)
        if self.num_conv_layers < 2:
            raise ConfigError(f"FFDNet needs at least 2 convolution layers, got {self.num_conv_layers}")
        nc = self.num_features
        layers: list[nn.Module] = [nn.Conv2d(4 * self.channels + 1, nc, 3, padding=1, bias=True), nn.ReLU(inplace=True)]
        for _ in range(self.num_conv_layers - 2):
            layers += [nn.Conv2d(nc, nc, 3, padding=1, bias=True), nn.ReLU(inplace=True)]
        layers.append(nn.Conv2d(nc, 4 * self.channels, 3, padding=1, bias=True))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, sigma: Any) -> torch.Tensor:
        """Denoise ``x`` (N, C, H, W) in [0, 1] at noise level ``sigma`` (float or (N,) tensor)."""
        _check_input(x, self.channels, "FFDNetKAIR")
        n, _, h, w = x.shape
        xp = _pad_even(x)
        down = F.pixel_unshuffle(xp, 2)
        noise_map = _sigma_vector(sigma, n, x).view(n, 1, 1, 1).expand(n, 1, down.shape[-2], down.shape[-1])
        out = F.pixel_shuffle(self.model(torch.cat((down, noise_map), dim=1)), 2)
        return out[..., :h, :w]

    def extra_repr(self) -> str:
        return f"channels={self.channels}, num_features={self.num_features}, num_conv_layers={self.num_conv_layers}"


# --- checkpoints -----------------------------------------------------------------------------


def few_keys(keys: list[str], limit: int = 5) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f", ... ({len(keys) - limit} more)" if len(keys) > limit else "")


def read_state_dict(path: str | Path) -> tuple[Path, dict[str, torch.Tensor]]:
    """Read a PyTorch state dict file safely (``weights_only=True``) onto the CPU.

    Unwraps ``{"state_dict": ...}``, ``{"params": ...}`` and similar training checkpoints and strips
    a ``module.`` (DataParallel) prefix.

    Args:
        path: the checkpoint file.

    Returns:
        ``(path, state)`` with ``state`` a dict name -> tensor.

    Raises:
        DataFileError: the file is missing, is not a torch checkpoint, or holds no state dict.
    """
    path = Path(path)
    if not path.exists():
        raise DataFileError(f"checkpoint {path} does not exist")
    if not path.is_file():
        raise DataFileError(f"checkpoint {path} is not a file")
    try:
        with warnings.catch_warnings():  # torch warns about what damaged bytes look like; the error says it
            warnings.simplefilter("ignore")
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise DataFileError(
            f"{path} is not a readable PyTorch checkpoint ({type(exc).__name__}: {reason[:200]}); "
            "expected a state dict saved with torch.save"
        ) from exc
    for _ in range(3):  # nested wrappers such as {"model": {"state_dict": ...}}
        if isinstance(obj, Mapping):
            inner = next((obj[k] for k in _WRAPPER_KEYS if k in obj and isinstance(obj[k], Mapping)), None)
            if inner is not None and not any(isinstance(v, torch.Tensor) for v in obj.values()):
                obj = inner
                continue
        break
    if not isinstance(obj, Mapping):
        raise DataFileError(f"{path} holds a {type(obj).__name__}, not a state dict (a mapping of parameter names to tensors)")
    tensors = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise DataFileError(f"{path} holds no tensors; keys found: {few_keys([str(k) for k in obj])}")
    state: dict[str, torch.Tensor] = {}
    for key, value in tensors.items():
        state[key[len("module.") :] if key.startswith("module.") else key] = value
    return path, state


def detect_layout(state: Mapping[str, torch.Tensor]) -> str | None:
    """Name the network a state dict belongs to: ``'ipol'``, ``'kair'``, ``'fastdvdnet'`` or None."""
    keys = list(state)
    if any(k.startswith(_IPOL_PREFIX) for k in keys):
        return "ipol"
    if any(k.startswith(("temp1.", "temp2.")) for k in keys):
        return "fastdvdnet"
    if any(re.fullmatch(r"model\.\d+\.weight", k) for k in keys):
        return "kair"
    return None


def _shape(shape: torch.Size) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ")"


def load_state_dict_checked(
    module: nn.Module, state: Mapping[str, torch.Tensor], path: Path, what: str, hint: str = ""
) -> nn.Module:
    """Load ``state`` into ``module`` strictly, raising :class:`DataFileError` on any mismatch.

    BatchNorm ``num_batches_tracked`` counters (absent from older checkpoints) are not required.

    Args:
        module: the module to fill.
        state: name -> tensor, prefixes already stripped.
        path: the file, named in messages.
        what: the network, named in messages (e.g. "the IPOL FFDNet (gray)").
        hint: an extra sentence appended to a mismatch message.

    Returns:
        ``module``.
    """
    expected = module.state_dict()
    missing = [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in expected]
    mismatched = [
        f"{k}: expected {_shape(expected[k].shape)}, found {_shape(state[k].shape)}"
        for k in expected
        if k in state and tuple(expected[k].shape) != tuple(state[k].shape)
    ]
    if missing or unexpected or mismatched:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing key(s): {few_keys(missing)}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected key(s): {few_keys(unexpected)}")
        if mismatched:
            parts.append(f"{len(mismatched)} shape mismatch(es): {few_keys(mismatched, 3)}")
        message = f"{path} does not match {what}: " + "; ".join(parts)
        raise DataFileError(message + (f". {hint}" if hint else ""))
    bad = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise DataFileError(f"{path}: the weights {few_keys(bad)} hold NaN or infinite values; the file is damaged")
    full = dict(state)
    for key, value in expected.items():
        if key.endswith("num_batches_tracked") and key not in full:
            full[key] = value
    try:
        module.load_state_dict(full, strict=True)
    except RuntimeError as exc:  # pragma: no cover - everything is checked above
        raise DataFileError(f"{path} does not load into {what}: {exc}") from exc
    return module


def _conv_weights(state: Mapping[str, torch.Tensor], pattern: str) -> list[torch.Tensor]:
    """4-D weights whose key matches ``pattern`` (one group: the layer index), in layer order."""
    found = []
    for key, value in state.items():
        match = re.fullmatch(pattern, key)
        if match and value.ndim == 4:
            found.append((int(match.group(1)), value))
    return [value for _, value in sorted(found, key=lambda item: item[0])]


def move_module(module: nn.Module, device: torch.device) -> nn.Module:
    """``module`` on ``device`` in eval mode without gradients, or BackendUnavailableError."""
    try:
        module.to(device)
    except (RuntimeError, AssertionError) as exc:  # torch without CUDA raises AssertionError
        raise BackendUnavailableError(f"cannot move the network to {device}: {exc}") from exc
    module.eval()
    module.requires_grad_(False)
    return module


def _build_ffdnet(layout: str, state: Mapping[str, torch.Tensor], channels: int | None) -> nn.Module:
    """An empty module of ``layout`` sized from the checkpoint's shapes (or the paper defaults)."""
    if layout == "ipol":
        convs = _conv_weights(state, re.escape(_IPOL_PREFIX) + r"(\d+)\.weight")
        per_channel = 5
        cls: type[nn.Module] = FFDNet
    else:
        convs = _conv_weights(state, r"model\.(\d+)\.weight")
        per_channel = None
        cls = FFDNetKAIR
    inferred = None
    if convs:
        in_ch = convs[0].shape[1]
        if per_channel is not None and in_ch % per_channel == 0:
            inferred = in_ch // per_channel
        elif per_channel is None and (in_ch - 1) % 4 == 0 and in_ch > 1:
            inferred = (in_ch - 1) // 4
    if channels is None:
        channels = inferred if inferred in (1, 3) else (inferred or 1)
    if channels not in (1, 3) and inferred != channels:
        raise ConfigError(f"FFDNet channels must be 1 (gray) or 3 (colour), got {channels}")
    if convs and inferred == channels:
        return cls(channels, num_features=convs[0].shape[0], num_conv_layers=len(convs))
    return cls(channels)


def load_ffdnet(path: str | Path, channels: int | None = None, layout: str | None = None, device: Any = "cpu") -> nn.Module:
    """Load an FFDNet checkpoint into a module in eval mode.

    Args:
        path: a ``.pth`` state dict (IPOL ``net_gray.pth``/``net_rgb.pth`` or KAIR
            ``ffdnet_color.pth``), possibly with a ``module.`` prefix or wrapped in
            ``{"state_dict": ...}`` / ``{"params": ...}``.
        channels: 1 or 3; inferred from the first convolution when None.
        layout: ``"ipol"`` (:class:`FFDNet`) or ``"kair"`` (:class:`FFDNetKAIR`); inferred from the
            keys when None.
        device: torch device for the module.

    Returns:
        :class:`FFDNet` or :class:`FFDNetKAIR`, in eval mode, without gradients required.

    Raises:
        DataFileError: missing or unreadable file, a checkpoint of another network, or keys and
            shapes that do not match (a few missing/unexpected keys and the expected and found
            shapes are listed).
        ConfigError: an unknown ``layout``, ``channels`` or ``device``.
        BackendUnavailableError: ``device`` is not usable here (e.g. CUDA without a GPU).
    """
    if layout is not None and layout not in ("ipol", "kair"):
        raise ConfigError(f"FFDNet layout must be 'ipol' or 'kair', got {layout!r}")
    if channels is not None and channels not in (1, 3):
        raise ConfigError(f"FFDNet channels must be 1 (gray) or 3 (colour), got {channels!r}")
    dev = torch_device(device)
    path, state = read_state_dict(path)
    detected = detect_layout(state)
    hint = ""
    if layout is None:
        if detected == "fastdvdnet":
            raise DataFileError(f"{path} is a FastDVDnet checkpoint (keys temp1.*, temp2.*), not FFDNet; use load_fastdvdnet")
        if detected not in ("ipol", "kair"):
            raise DataFileError(
                f"{path} is not an FFDNet checkpoint: expected keys like {_IPOL_PREFIX}0.weight (IPOL) "
                f"or model.0.weight (KAIR), found {few_keys(sorted(state))}"
            )
        layout = detected
    elif detected is not None and detected != layout:
        hint = f"The keys look like the {detected!r} layout, not {layout!r}"
    module = _build_ffdnet(layout, state, channels)
    name = f"the {'IPOL' if layout == 'ipol' else 'KAIR'} FFDNet ({'gray' if module.channels == 1 else 'colour'})"
    load_state_dict_checked(module, state, path, name, hint)
    return move_module(module, dev)


# --- backend conversion (shared with fastdvdnet) ---------------------------------------------


def module_device(module: nn.Module) -> torch.device:
    """The device of a module's first parameter (CPU for a module without parameters)."""
    for param in module.parameters():
        return param.device
    return torch.device("cpu")


def check_sigma(sigma: Any) -> float:
    """``sigma`` as a finite non-negative float, or :class:`InvalidValueError`."""
    if is_torch(sigma) or isinstance(sigma, np.ndarray):
        if getattr(sigma, "ndim", 0) != 0 and int(np.prod(sigma.shape)) != 1:
            raise InvalidValueError(f"sigma must be a single number, got an array of shape {tuple(sigma.shape)}")
        sigma = float(to_numpy(sigma).reshape(()))
    try:
        value = float(sigma)
    except (TypeError, ValueError) as exc:
        raise InvalidValueError(f"sigma must be a number, got {sigma!r}") from exc
    if not math.isfinite(value) or value < 0:
        raise InvalidValueError(f"sigma must be finite and >= 0 (on the [0, 1] intensity scale), got {value}")
    return value


def to_torch32(x: Any, device: torch.device) -> torch.Tensor:
    """``x`` of any backend as a float32 torch tensor on ``device`` (it may share memory: never write to it)."""
    if is_torch(x):
        return x.detach().to(device=device, dtype=torch.float32)
    host = np.ascontiguousarray(to_numpy(x), dtype=np.float32)
    if not host.flags.writeable:
        host = host.copy()
    return torch.from_numpy(host).to(device)


def from_torch_like(y: torch.Tensor, like: Any) -> Any:
    """``y`` moved to the backend, device and dtype of ``like``."""
    if is_torch(like):
        return y.to(device=like.device, dtype=like.dtype)
    return from_numpy(y.detach().cpu().numpy(), like)


def require_float_frames(x: Any) -> None:
    """Raise :class:`DTypeError` unless ``x`` is a floating array of a known backend."""
    try:
        require_float(x, "x")
    except DTypeError:
        raise
    except Exception as exc:
        raise DTypeError(f"x must be a floating array (numpy, torch, cupy), got {type(x).__name__}") from exc


# --- the protocol wrapper --------------------------------------------------------------------


def inference_copy(model: nn.Module) -> nn.Module:
    """A copy for inference: every Conv2d+BatchNorm2d pair folded into one convolution
    (:func:`torch.nn.utils.fusion.fuse_conv_bn_eval`) and weights in channels-last layout,
    which oneDNN runs about 1.7x faster on CPU. The loaded module is left untouched."""
    import copy

    from torch.nn.utils.fusion import fuse_conv_bn_eval

    fast = copy.deepcopy(model).eval()
    for parent in list(fast.modules()):
        if not isinstance(parent, nn.Sequential):
            continue
        layers, merged, index = list(parent), [], 0
        while index < len(layers):
            if index + 1 < len(layers) and isinstance(layers[index], nn.Conv2d) and isinstance(layers[index + 1], nn.BatchNorm2d):
                merged.append(fuse_conv_bn_eval(layers[index], layers[index + 1]))
                index += 2
            else:
                merged.append(layers[index])
                index += 1
        if len(merged) != len(layers):
            for name in list(parent._modules):  # rebuilding the Sequential in place
                del parent._modules[name]
            for position, layer in enumerate(merged):
                parent.add_module(str(position), layer)
    return fast.to(memory_format=torch.channels_last)


class FFDNetDenoiser:
    """FFDNet as a snapcap denoiser: ``denoiser(x, sigma)`` on frames of any backend.

    Gray models take frames ``(..., B, H, W)`` (any number of leading axes, at least ``(H, W)``);
    colour models (``channels=3``) take RGB frames with a trailing colour axis,
    ``(..., B, H, W, 3)``. All frames are denoised independently, as one batch (or in chunks of
    ``batch_size`` frames), under :func:`torch.inference_mode` on the module's device in float32.
    The result has the input's backend, device, dtype and shape; the input is not modified.

    Args:
        model: an :class:`FFDNet` / :class:`FFDNetKAIR` module, or a checkpoint path for
            :func:`load_ffdnet`.
        batch_size: frames per forward pass (None: all at once).
        clip: clamp the output to [0, 1], as the IPOL and PnP-SCI reference code does.
        device: device to load a checkpoint path onto (ignored for a module).
    """

    def __init__(self, model: nn.Module | str | Path, *, batch_size: int | None = None, clip: bool = True, device: Any = "cpu"):
        if isinstance(model, (str, Path)):
            model = load_ffdnet(model, device=device)
        if not isinstance(model, (FFDNet, FFDNetKAIR)):
            raise ConfigError(
                f"FFDNetDenoiser needs an FFDNet or FFDNetKAIR module or a checkpoint path, got {type(model).__name__}"
            )
        if batch_size is not None and (int(batch_size) != batch_size or batch_size < 1):
            raise ConfigError(f"batch_size must be a positive integer or None, got {batch_size!r}")
        self.model = model.eval()
        self.batch_size = None if batch_size is None else int(batch_size)
        self.clip = bool(clip)
        self._fast = inference_copy(self.model)

    @property
    def colour(self) -> bool:
        """Whether the module denoises RGB frames (input ``(..., B, H, W, 3)``)."""
        return self.model.channels == 3

    def __call__(self, x: Any, sigma: float) -> Any:
        require_float_frames(x)
        sigma = check_sigma(sigma)
        shape = tuple(x.shape)
        if self.colour:
            if len(shape) < 3 or shape[-1] != 3:
                raise ShapeError(f"the colour FFDNet expects RGB frames (..., H, W, 3), got shape {shape}")
            h, w = shape[-3], shape[-2]
        else:
            if len(shape) < 2:
                raise ShapeError(f"FFDNet expects frames (..., B, H, W), got shape {shape}")
            h, w = shape[-2], shape[-1]
        if math.prod(shape) == 0:
            return x * 1
        dev = module_device(self.model)
        t = to_torch32(x, dev)
        c = self.model.channels
        if self.colour:
            frames = t.reshape(-1, h, w, 3).permute(0, 3, 1, 2)
        else:
            frames = t.reshape(-1, 1, h, w)
        n = frames.shape[0]
        step = n if self.batch_size is None else self.batch_size
        out = torch.empty((n, c, h, w), dtype=torch.float32, device=dev)  # a normal tensor, usable after
        with torch.inference_mode():
            for start in range(0, n, step):
                chunk = frames[start : start + step].contiguous(memory_format=torch.channels_last)
                y = self._fast(chunk, sigma)
                if self.clip:
                    y = y.clamp_(0.0, 1.0)
                out[start : start + step] = y
        if self.colour:
            out = out.permute(0, 2, 3, 1)
        return from_torch_like(out.reshape(shape), x)

    def __repr__(self) -> str:
        m = self.model
        return (
            f"FFDNetDenoiser({type(m).__name__}(channels={m.channels}), batch_size={self.batch_size}, "
            f"clip={self.clip}, device={module_device(m)})"
        )
