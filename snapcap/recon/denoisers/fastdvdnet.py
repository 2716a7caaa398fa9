"""FastDVDnet (Tassano, Delon, Veit, CVPR 2020): a video denoiser for plug-and-play CACTI.

The modules keep the parameter names of the official implementation
(``m-tassano/fastdvdnet``, ``models.py``) so its ``model.pth`` (colour) and the gray variants
(``model_gray.pth``, e.g. from PnP-SCI_python) load strictly, with or without a ``module.`` prefix:
keys such as ``temp1.inc.convblock.0.weight``.

Two cascaded U-Net :class:`DenBlock` stages: ``temp1`` denoises the triples of frames
``(0, 1, 2)``, ``(1, 2, 3)``, ``(2, 3, 4)`` of a 5-frame window, ``temp2`` fuses the three
results into the centre frame. Each input frame (``C`` = 1 or 3 channels) is followed by a
one-channel noise map. Heights and widths are padded to multiples of 4 (reflect, or replicate
for images too small to reflect) and cropped back.

:class:`FastDVDnetDenoiser` applies it to a whole video in the snapcap denoiser protocol, and
:func:`train_fastdvdnet` trains it on clean clips with the paper's recipe.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from snapcap.backend import is_torch, to_numpy, torch_device
from snapcap.errors import ConfigError, DataFileError, InvalidValueError, ShapeError
from snapcap.recon.denoisers.ffdnet import (
    check_sigma,
    detect_layout,
    few_keys,
    from_torch_like,
    load_state_dict_checked,
    module_device,
    move_module,
    read_state_dict,
    require_float_frames,
    to_torch32,
)

__all__ = [
    "CvBlock",
    "InputCvBlock",
    "DownBlock",
    "UpBlock",
    "OutputCvBlock",
    "DenBlock",
    "FastDVDnet",
    "FastDVDnetDenoiser",
    "load_fastdvdnet",
    "train_fastdvdnet",
    "temporal_indices",
]


# --- modules (official layout) ---------------------------------------------------------------


class CvBlock(nn.Module):
    """(Conv2d => BN => ReLU) x 2."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.convblock = nn.Sequential(
            nn.Conv2d(in_ch, out_ch, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(out_ch),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_ch, out_ch, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(out_ch),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.convblock(x)


class InputCvBlock(nn.Module):
    """(Grouped conv, one group per frame => BN => ReLU) + (Conv => BN => ReLU).

    Args:
        num_in_frames: frames in the input (3); each brings ``ncolor`` channels and a noise map.
        out_ch: output channels.
        ncolor: colour channels per frame (1 gray, 3 RGB).
        interm_ch: intermediate channels per frame (30 in the paper).
    """

    def __init__(self, num_in_frames: int, out_ch: int, ncolor: int = 3, interm_ch: int = 30):
        super().__init__()
        self.interm_ch = interm_ch
        self.convblock = nn.Sequential(
            nn.Conv2d(
                num_in_frames * (ncolor + 1),
                num_in_frames * interm_ch,
                kernel_size=3,
                padding=1,
                groups=num_in_frames,
                bias=False,
            ),
            nn.BatchNorm2d(num_in_frames * interm_ch),
            nn.ReLU(inplace=True),
            nn.Conv2d(num_in_frames * interm_ch, out_ch, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(out_ch),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.convblock(x)


class DownBlock(nn.Module):
    """Strided conv (downscale by 2) => BN => ReLU, then a :class:`CvBlock`."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.convblock = nn.Sequential(
            nn.Conv2d(in_ch, out_ch, kernel_size=3, padding=1, stride=2, bias=False),
            nn.BatchNorm2d(out_ch),
            nn.ReLU(inplace=True),
            CvBlock(out_ch, out_ch),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.convblock(x)


class UpBlock(nn.Module):
    """A :class:`CvBlock`, then conv to ``4 * out_ch`` channels and pixel shuffle (upscale by 2)."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.convblock = nn.Sequential(
            CvBlock(in_ch, in_ch),
            nn.Conv2d(in_ch, out_ch * 4, kernel_size=3, padding=1, bias=False),
            nn.PixelShuffle(2),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.convblock(x)


class OutputCvBlock(nn.Module):
    """Conv2d => BN => ReLU => Conv2d."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.convblock = nn.Sequential(
            nn.Conv2d(in_ch, in_ch, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(in_ch),
            nn.ReLU(inplace=True),
            nn.Conv2d(in_ch, out_ch, kernel_size=3, padding=1, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.convblock(x)


class DenBlock(nn.Module):
    """One denoising stage: a two-scale U-Net on three frames, returning the denoised middle one.

    Args:
        num_input_frames: frames in (3).
        num_color_channels: channels per frame (1 or 3).
        channels: feature channels of the three scales (32, 64, 128 in the paper).
        interm_channels: per-frame channels of the grouped input convolution (30).
    """

    def __init__(
        self,
        num_input_frames: int = 3,
        num_color_channels: int = 3,
        channels: Sequence[int] = (32, 64, 128),
        interm_channels: int = 30,
    ):
        super().__init__()
        if num_input_frames != 3:
            raise ConfigError(f"DenBlock takes 3 frames, got num_input_frames={num_input_frames}")
        c0, c1, c2 = (int(c) for c in channels)
        self.chs_lyr0, self.chs_lyr1, self.chs_lyr2 = c0, c1, c2
        self.inc = InputCvBlock(num_in_frames=num_input_frames, out_ch=c0, ncolor=num_color_channels, interm_ch=interm_channels)
        self.downc0 = DownBlock(in_ch=c0, out_ch=c1)
        self.downc1 = DownBlock(in_ch=c1, out_ch=c2)
        self.upc2 = UpBlock(in_ch=c2, out_ch=c1)
        self.upc1 = UpBlock(in_ch=c1, out_ch=c0)
        self.outc = OutputCvBlock(in_ch=c0, out_ch=num_color_channels)
        self.reset_params()

    def reset_params(self) -> None:
        """Kaiming-normal initialisation of the convolutions (as the official code)."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")

    def forward(self, in0: torch.Tensor, in1: torch.Tensor, in2: torch.Tensor, noise_map: torch.Tensor) -> torch.Tensor:
        """Denoise ``in1`` given its neighbours; inputs (N, C, H, W) with H, W multiples of 4."""
        x0 = self.inc(torch.cat((in0, noise_map, in1, noise_map, in2, noise_map), dim=1))
        x1 = self.downc0(x0)
        x2 = self.downc1(x1)
        x2 = self.upc2(x2)
        x1 = self.upc1(x1 + x2)
        x = self.outc(x0 + x1)
        return in1 - x


def _pad4(x: torch.Tensor) -> torch.Tensor:
    """Pad H and W at the bottom/right to multiples of 4 (reflect; replicate when too small)."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % 4, (-w) % 4
    if not (ph or pw):
        return x
    mode = "reflect" if (ph < h and pw < w) else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode)


class FastDVDnet(nn.Module):
    """FastDVDnet: two cascaded :class:`DenBlock` stages, ``temp1`` and ``temp2``.

    Args:
        num_input_frames: frames per window; must be 5.
        num_color_channels: 1 (gray) or 3 (RGB, the official ``model.pth``).
        channels: feature channels of the three U-Net scales (default the paper's 32/64/128;
            smaller values give tiny models for tests; the key names do not change).
        interm_channels: per-frame channels of the input block (30).
    """

    def __init__(
        self,
        num_input_frames: int = 5,
        num_color_channels: int = 1,
        channels: Sequence[int] = (32, 64, 128),
        interm_channels: int = 30,
    ):
        super().__init__()
        if num_input_frames != 5:
            raise ConfigError(f"FastDVDnet takes 5-frame windows, got num_input_frames={num_input_frames}")
        if len(tuple(channels)) != 3:
            raise ConfigError(f"FastDVDnet channels must give 3 widths, got {channels!r}")
        self.num_input_frames = num_input_frames
        self.num_color_channels = int(num_color_channels)
        self.channels = tuple(int(c) for c in channels)
        self.interm_channels = int(interm_channels)
        self.temp1 = DenBlock(3, self.num_color_channels, self.channels, self.interm_channels)
        self.temp2 = DenBlock(3, self.num_color_channels, self.channels, self.interm_channels)

    def noise_map(self, sigma: Any, like: torch.Tensor) -> torch.Tensor:
        """A (N, 1, H, W) noise map for ``like`` (N, *, H, W) from a float or an (N,) tensor."""
        n, h, w = like.shape[0], like.shape[-2], like.shape[-1]
        s = torch.as_tensor(sigma, dtype=like.dtype, device=like.device).reshape(-1)
        if s.numel() not in (1, n):
            raise ShapeError(f"sigma must be a scalar or hold one value per window ({n}), got {s.numel()} values")
        return s.reshape(-1, 1, 1, 1).expand(n, 1, h, w)

    def forward(self, x: torch.Tensor, noise_map: Any) -> torch.Tensor:
        """Denoise the centre frame of each window.

        Args:
            x: (N, 5·C, H, W), frames in [0, 1] stacked on the channel axis (frame m is channels
                ``C·m .. C·m + C - 1``).
            noise_map: (N, 1, H, W) noise standard deviations, or a float / (N,) tensor.

        Returns:
            (N, C, H, W) the denoised centre frames (not clipped).
        """
        c = self.num_color_channels
        if not isinstance(x, torch.Tensor) or x.ndim != 4 or x.shape[1] != 5 * c:
            raise ShapeError(f"FastDVDnet expects x of shape (N, {5 * c}, H, W), got {tuple(getattr(x, 'shape', ()))}")
        h, w = x.shape[-2:]
        if isinstance(noise_map, torch.Tensor) and noise_map.ndim == 4:
            if noise_map.shape[0] != x.shape[0] or noise_map.shape[1] != 1 or tuple(noise_map.shape[-2:]) != (h, w):
                raise ShapeError(f"noise_map must be (N, 1, H, W) = {(x.shape[0], 1, h, w)}, got {tuple(noise_map.shape)}")
            nmap = _pad4(noise_map)
        else:
            nmap = None
        xp = _pad4(x)
        if nmap is None:
            nmap = self.noise_map(noise_map, xp)
        frames = [xp[:, c * m : c * m + c] for m in range(self.num_input_frames)]
        x20 = self.temp1(frames[0], frames[1], frames[2], nmap)
        x21 = self.temp1(frames[1], frames[2], frames[3], nmap)
        x22 = self.temp1(frames[2], frames[3], frames[4], nmap)
        out = self.temp2(x20, x21, x22, nmap)
        return out[..., :h, :w]

    def extra_repr(self) -> str:
        return f"num_color_channels={self.num_color_channels}, channels={self.channels}, interm_channels={self.interm_channels}"


# --- checkpoints -----------------------------------------------------------------------------


def load_fastdvdnet(path: str | Path, channels: int | None = None, device: Any = "cpu") -> FastDVDnet:
    """Load a FastDVDnet checkpoint (official ``model.pth``/``model_gray.pth`` layout) in eval mode.

    Args:
        path: a state dict file, possibly with a ``module.`` prefix or wrapped in
            ``{"state_dict": ...}`` / ``{"params": ...}``.
        channels: colour channels per frame, 1 or 3; inferred from ``temp1.inc.convblock.0.weight``
            when None. The U-Net widths are inferred from the shapes as well.
        device: torch device for the module.

    Returns:
        :class:`FastDVDnet` in eval mode, without gradients required.

    Raises:
        DataFileError: missing or unreadable file, a checkpoint of another network, or keys and
            shapes that do not match.
        ConfigError: bad ``channels`` or ``device``.
        BackendUnavailableError: ``device`` is not usable here (e.g. CUDA without a GPU).
    """
    if channels is not None and channels not in (1, 3):
        raise ConfigError(f"FastDVDnet channels must be 1 (gray) or 3 (colour), got {channels!r}")
    dev = torch_device(device)
    path, state = read_state_dict(path)
    layout = detect_layout(state)
    if layout != "fastdvdnet":
        other = {"ipol": "an IPOL FFDNet checkpoint", "kair": "a KAIR FFDNet checkpoint"}.get(layout or "", "a state dict")
        expected = FastDVDnet(num_color_channels=channels or 1).state_dict()
        missing = [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]
        raise DataFileError(
            f"{path} is {other}, not a FastDVDnet one: {len(missing)} missing key(s): {few_keys(missing)}; "
            f"{len(state)} unexpected key(s): {few_keys(sorted(state))}"
            + ("; use load_ffdnet" if layout in ("ipol", "kair") else "")
        )
    first = state.get("temp1.inc.convblock.0.weight")
    kwargs: dict[str, Any] = {}
    inferred = None
    if first is not None and first.ndim == 4:
        inferred = int(first.shape[1]) - 1
        widths = [
            state.get(k)
            for k in ("temp1.inc.convblock.3.weight", "temp1.downc0.convblock.0.weight", "temp1.downc1.convblock.0.weight")
        ]
        if all(wt is not None and wt.ndim == 4 for wt in widths) and first.shape[0] % 3 == 0:
            kwargs = {"channels": tuple(int(wt.shape[0]) for wt in widths), "interm_channels": int(first.shape[0]) // 3}
    if channels is None:
        channels = inferred if inferred in (1, 3) else 1
    if channels != inferred:
        kwargs = {}  # let the paper-size model report the mismatch
    model = FastDVDnet(num_color_channels=channels, **kwargs)
    load_state_dict_checked(model, state, path, f"FastDVDnet ({'gray' if channels == 1 else 'colour'})")
    return move_module(model, dev)


# --- the protocol wrapper --------------------------------------------------------------------


def temporal_indices(num_frames: int, offsets: Sequence[int]) -> np.ndarray:
    """Frame indices ``t + o`` reflected into ``[0, num_frames)`` without repeating the edge.

    ``-1 -> 1``, ``-2 -> 2``, ``B -> B - 2``, as the official ``denoise_seq_fastdvdnet``; for short
    videos the reflection is periodic (period ``2(B - 1)``), and a single frame maps to itself.

    Args:
        num_frames: B.
        offsets: absolute (unreflected) indices, any integers.

    Returns:
        int64 array of reflected indices, same length as ``offsets``.
    """
    idx = np.asarray(offsets, dtype=np.int64)
    if num_frames == 1:
        return np.zeros_like(idx)
    period = 2 * (num_frames - 1)
    idx = np.mod(idx, period)
    return np.where(idx >= num_frames, period - idx, idx)


class FastDVDnetDenoiser:
    """FastDVDnet as a snapcap denoiser on videos ``(..., B, H, W)`` (axis -3 is time).

    For every frame ``t`` the window ``t-2 .. t+2`` is denoised, with the temporal boundaries
    *reflected* without repeating the edge frame (``-1 -> 1``, ``-2 -> 2``, ``B -> B-2``; see
    :func:`temporal_indices`), exactly as the official ``denoise_seq_fastdvdnet``. The first stage
    is computed once per frame triple and shared between the windows that use it (three times
    less work than running each window separately, same result). Colour models
    (``num_color_channels=3``) take ``(..., B, H, W, 3)``. Runs under :func:`torch.inference_mode`
    on the module's device in float32; the output has the input's backend, device, dtype, shape.

    Args:
        model: a :class:`FastDVDnet` or a checkpoint path for :func:`load_fastdvdnet`.
        batch_size: triples/windows per forward pass of a stage (None: all at once).
        clip: clamp the output to [0, 1], as the official code does.
        device: device to load a checkpoint path onto (ignored for a module).
    """

    def __init__(self, model: FastDVDnet | str | Path, *, batch_size: int | None = None, clip: bool = True, device: Any = "cpu"):
        if isinstance(model, (str, Path)):
            model = load_fastdvdnet(model, device=device)
        if not isinstance(model, FastDVDnet):
            raise ConfigError(f"FastDVDnetDenoiser needs a FastDVDnet module or a checkpoint path, got {type(model).__name__}")
        if batch_size is not None and (int(batch_size) != batch_size or batch_size < 1):
            raise ConfigError(f"batch_size must be a positive integer or None, got {batch_size!r}")
        self.model = model.eval()
        self.batch_size = None if batch_size is None else int(batch_size)
        self.clip = bool(clip)

    @property
    def colour(self) -> bool:
        """Whether the module denoises RGB frames (input ``(..., B, H, W, 3)``)."""
        return self.model.num_color_channels == 3

    def __call__(self, x: Any, sigma: float) -> Any:
        require_float_frames(x)
        sigma = check_sigma(sigma)
        shape = tuple(x.shape)
        if self.colour:
            if len(shape) < 4 or shape[-1] != 3:
                raise ShapeError(f"the colour FastDVDnet expects RGB video frames (..., B, H, W, 3), got shape {shape}")
            b, h, w = shape[-4:-1]
        else:
            if len(shape) < 3:
                raise ShapeError(f"FastDVDnet expects video frames (..., B, H, W), got shape {shape}")
            b, h, w = shape[-3:]
        if math.prod(shape) == 0:
            return x * 1
        dev = module_device(self.model)
        c = self.model.num_color_channels
        t = to_torch32(x, dev)
        if self.colour:
            frames = t.reshape(-1, h, w, 3).permute(0, 3, 1, 2)
        else:
            frames = t.reshape(-1, 1, h, w)
        with torch.inference_mode():
            frames = _pad4(frames.contiguous())
        hp, wp = frames.shape[-2:]
        videos = frames.shape[0] // b
        frames = frames.reshape(videos, b, c, hp, wp)
        out = torch.empty((videos, b, c, h, w), dtype=torch.float32, device=dev)  # a normal tensor
        # Stage 1 on the triples centred at s = -1 .. B (indices reflected absolutely).
        centres = np.arange(-1, b + 1)
        triples = np.stack([temporal_indices(b, centres + k) for k in (-1, 0, 1)], axis=1)  # (B+2, 3)
        n1 = videos * (b + 2)
        step1 = n1 if self.batch_size is None else self.batch_size
        n2 = videos * b
        step2 = n2 if self.batch_size is None else self.batch_size
        with torch.inference_mode():
            stage1 = torch.empty((videos, b + 2, c, hp, wp), dtype=torch.float32, device=dev)
            flat1 = stage1.view(n1, c, hp, wp)
            for start in range(0, n1, step1):
                q = np.arange(start, min(start + step1, n1))
                v = torch.as_tensor(q // (b + 2), device=dev)
                tri = triples[q % (b + 2)]
                ins = [frames[v, torch.as_tensor(tri[:, k], device=dev)] for k in range(3)]
                flat1[start : start + len(q)] = self.model.temp1(*ins, self.model.noise_map(sigma, ins[0]))
            flat_out = out.view(n2, c, h, w)
            for start in range(0, n2, step2):
                q = np.arange(start, min(start + step2, n2))
                v = torch.as_tensor(q // b, device=dev)
                tt = q % b  # window t uses stage-1 triples at positions t, t+1, t+2 (centres t-1, t, t+1)
                ins = [stage1[v, torch.as_tensor(tt + k, device=dev)] for k in range(3)]
                y = self.model.temp2(*ins, self.model.noise_map(sigma, ins[0]))[..., :h, :w]
                if self.clip:
                    y = y.clamp_(0.0, 1.0)
                flat_out[start : start + len(q)] = y
        if self.colour:
            result = out.permute(0, 1, 3, 4, 2).reshape(shape)
        else:
            result = out.reshape(shape)
        return from_torch_like(result, x)

    def __repr__(self) -> str:
        m = self.model
        return (
            f"FastDVDnetDenoiser(channels={m.num_color_channels}, batch_size={self.batch_size}, "
            f"clip={self.clip}, device={module_device(m)})"
        )


# --- training --------------------------------------------------------------------------------


def _clips_tensor(clips: Any, colour: bool) -> torch.Tensor:
    """Clean clips as a float32 CPU tensor (N, F, C, H, W)."""
    require_float_frames(clips)
    t = (
        clips.detach().to("cpu", torch.float32)
        if is_torch(clips)
        else torch.from_numpy(np.array(to_numpy(clips), dtype=np.float32))
    )
    if colour:
        if t.ndim != 5 or t.shape[-1] != 3:
            raise ShapeError(f"colour FastDVDnet training clips must be (N, F, H, W, 3), got {tuple(t.shape)}")
        return t.permute(0, 1, 4, 2, 3).contiguous()
    if t.ndim != 4:
        raise ShapeError(f"gray FastDVDnet training clips must be (N, F, H, W), got {tuple(t.shape)}")
    return t.unsqueeze(2)


def train_fastdvdnet(
    model: FastDVDnet,
    clips: Any,
    sigma_range: tuple[float, float] = (5 / 255, 55 / 255),
    steps: int = 1000,
    batch_size: int = 16,
    lr: float = 1e-3,
    *,
    patch_size: int | None = 96,
    augment: bool = True,
    seed: int | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    callback: Callable[[int, float], None] | None = None,
) -> list[float]:
    """Train FastDVDnet on clean clips with additive Gaussian noise (the paper's recipe).

    Each step draws ``batch_size`` random 5-frame windows (clip, start frame, and a random
    ``patch_size`` square crop), optionally flipped, a noise level per window uniform in
    ``sigma_range``, adds white Gaussian noise, and minimises the L2 loss on the centre frame,
    ``sum((out - clean)^2) / (2 * batch_size)``, with Adam. The paper's learning-rate schedule and
    filter orthogonalisation are left to the caller (pass an ``optimizer``, or call again with a
    smaller ``lr``).

    Args:
        model: the network, trained in place on its own device (left in eval mode afterwards,
            with the parameters' ``requires_grad`` flags as they were).
        clips: clean gray clips (N, F, H, W) in [0, 1] with F >= 5 (colour models:
            (N, F, H, W, 3)), any backend.
        sigma_range: (low, high) noise standard deviations on the [0, 1] scale.
        steps: optimisation steps.
        batch_size: windows per step.
        lr: Adam learning rate (ignored when ``optimizer`` is given).
        patch_size: side of the square crops, a multiple of 4 (None: the whole frame, whose sides
            must be multiples of 4).
        augment: random horizontal and vertical flips per step.
        seed: seed of the sampling and the noise (None: torch's global generator state).
        optimizer: an optimizer over ``model``'s parameters to use instead of a fresh Adam.
        callback: called as ``callback(step, loss)`` after every step.

    Returns:
        The loss of every step (floats).
    """
    if not isinstance(model, FastDVDnet):
        raise ConfigError(f"train_fastdvdnet needs a FastDVDnet module, got {type(model).__name__}")
    if steps < 0 or batch_size < 1 or not lr > 0:
        raise ConfigError(f"steps must be >= 0, batch_size >= 1 and lr > 0, got {steps}, {batch_size}, {lr}")
    lo, hi = (float(s) for s in sigma_range)
    if not (0 <= lo <= hi and math.isfinite(hi)):
        raise ConfigError(f"sigma_range must be (low, high) with 0 <= low <= high, got {sigma_range!r}")
    data = _clips_tensor(clips, model.num_color_channels == 3)
    n, f, c, h, w = data.shape
    if f < 5:
        raise ShapeError(f"training clips need at least 5 frames, got {f}")
    p_h, p_w = (h, w) if patch_size is None else (int(patch_size), int(patch_size))
    if p_h % 4 or p_w % 4 or p_h > h or p_w > w or p_h < 4:
        raise ConfigError(f"patch size {p_h}x{p_w} must be a multiple of 4 and fit in the {h}x{w} frames")
    dev = module_device(model)
    gen = torch.Generator()
    if seed is not None:
        gen.manual_seed(int(seed))
    else:
        gen.seed()
    grad_flags = [p.requires_grad for p in model.parameters()]
    model.requires_grad_(True)
    opt = optimizer if optimizer is not None else torch.optim.Adam(model.parameters(), lr=lr)
    history: list[float] = []
    model.train()
    try:
        for step in range(steps):
            clip_idx = torch.randint(0, n, (batch_size,), generator=gen)
            starts = torch.randint(0, f - 4, (batch_size,), generator=gen)
            tops = torch.randint(0, h - p_h + 1, (batch_size,), generator=gen)
            lefts = torch.randint(0, w - p_w + 1, (batch_size,), generator=gen)
            windows = torch.stack(
                [
                    data[i, s : s + 5, :, y : y + p_h, x : x + p_w]
                    for i, s, y, x in zip(clip_idx.tolist(), starts.tolist(), tops.tolist(), lefts.tolist())
                ]
            )  # (batch, 5, C, p, p)
            if augment:
                if torch.rand((), generator=gen) < 0.5:
                    windows = windows.flip(-1)
                if torch.rand((), generator=gen) < 0.5:
                    windows = windows.flip(-2)
            sig = lo + (hi - lo) * torch.rand((batch_size,), generator=gen)
            noise = torch.randn(windows.shape, generator=gen) * sig.view(-1, 1, 1, 1, 1)
            clean = windows[:, 2].to(dev)
            noisy = (windows + noise).reshape(batch_size, 5 * c, p_h, p_w).to(dev)
            noise_map = sig.to(dev).view(-1, 1, 1, 1).expand(batch_size, 1, p_h, p_w)
            opt.zero_grad(set_to_none=True)
            out = model(noisy, noise_map)
            loss = F.mse_loss(out, clean, reduction="sum") / (2 * batch_size)
            loss.backward()
            opt.step()
            value = float(loss.detach())
            if not math.isfinite(value):
                raise InvalidValueError(f"training diverged at step {step} (loss {value}); lower lr or check the clips")
            history.append(value)
            if callback is not None:
                callback(step, value)
    finally:
        model.eval()
        for param, flag in zip(model.parameters(), grad_flags):
            param.requires_grad_(flag)
    return history
