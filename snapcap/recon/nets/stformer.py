"""STFormer: the Spatial-Temporal Transformer for video snapshot compressive imaging.

A reimplementation of Wang, Cao, Zhong, Yuan, "Spatial-Temporal Transformer for Video Snapshot
Compressive Imaging", IEEE TPAMI 45(7), 2023 (doi:10.1109/TPAMI.2022.3225382), written to be
interchangeable with the authors' code (github.com/ucaswangls/STFormer, ``cacti/models/stformer.py``,
and the copy in the CACTI toolbox, github.com/ucaswangls/cacti): the submodule names, parameter
shapes, buffers and the order of every floating-point operation are theirs, so their checkpoints load
with strict key matching and give the same output: bit-identical to both copies, float32 and float64,
one measurement at a time as their test script runs it; within 1e-5 (float32) when N measurements
are batched, which only changes the convolution kernels' summation order.

The network (``(B, H, W)`` frames per snapshot, ``frames = B``)::

    x0 = Aᵀy + Aᵀ((y − A Aᵀy) ⊘ Φs)            one GAP-style projection of Aᵀy (Φs = Σ_k C_k, zeros → 1)
    t  = token_gen(x0)                          3-D convs, 1 → 4·dim channels, H and W halved
    t  = layers[units − 1](… layers[0](t))      each: 2 STFormer blocks (the second with shifted windows)
    x  = conv2(t)                               transposed conv back to H × W, then 3-D convs → 1 (or 3) channels

Each STFormer block (on 4·dim channels, 4 heads)::

    z = LN(t)
    s = W-MSA(z) over (1, 7, 7) windows            (spatial self-attention, Swin-style relative bias)
    u = T-MSA(z) over all B frames of one pixel   (temporal self-attention on dim/2·4 channels)
    t = t + s + u
    t = t + GRFFN(LN(t))                           (two 3-D conv residual branches on the channel halves)

Colour (``color_channels=3``): the measurement is a Bayer RGGB mosaic; the initial estimate is computed
on the four Bayer planes separately and re-mosaicked (the authors' ``bayer_init``), and the last
convolution outputs R, G, B.

The toolbox copy builds one more convolution per block (``conv_cat``, a 1×1×1 Conv3d from 8·dim to
4·dim channels) that its forward never uses; the standalone repository (whose ``stformer_base.pth`` is
the paper's checkpoint) lacks it. This module has it, like the toolbox, so both kinds of checkpoint
load: a checkpoint may lack exactly the keys :func:`is_optional_key` accepts (see
:data:`OPTIONAL_KEYS`), and those weights never reach the output.

Only plain torch is used (no einops / timm); rearrangements are ``reshape``/``permute`` views in the
same places the original makes them, since a permuted (channels-last) tensor can select different
convolution kernels and so different rounding.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from snapcap.errors import ConfigError, ShapeError

__all__ = [
    "STFormer",
    "PRESETS",
    "PAPER_PARAMETERS",
    "PARAMETER_SOURCE",
    "OFFICIAL_PARAMETERS",
    "THOP_PARAMETERS",
    "OPTIONAL_KEYS",
    "TRAINING_RECIPES",
    "SIZE_MULTIPLE",
    "is_optional_key",
    "bias_table_parameters",
]

# --------------------------------------------------------------------------------------------------
# Constants
# --------------------------------------------------------------------------------------------------

PRESETS: dict[str, dict[str, int]] = {
    # ucaswangls/STFormer configs/STFormer/stformer_small.py: model=dict(color_channels=1, units=4, dim=16)
    "stformer-small": {"color_channels": 1, "units": 4, "dim": 16, "frames": 8},
    # configs/STFormer/stformer_base.py: model=dict(color_channels=1, units=4, dim=64); checkpoint stformer_base.pth.
    # (stformer_base_mid_color.py is the same with color_channels=3; stformer_base_real_cr10.py adds frames=10.)
    "stformer-base": {"color_channels": 1, "units": 4, "dim": 64, "frames": 8},
    # configs/STFormer/stformer_large.py: model=dict(color_channels=1, units=8, dim=64)
    "stformer-large": {"color_channels": 1, "units": 8, "dim": 64, "frames": 8},
}
"""Constructor arguments of the authors' three grayscale configurations (frames = 8, the benchmark's B)."""

PAPER_PARAMETERS: dict[str, float] = {
    # The figure quoted for STFormer-B. NOT checked against the paper's own table (its text was not
    # reachable from where this was written); it is what the authors' counting script gives, see THOP_PARAMETERS.
    # STFormer-S and STFormer-L figures as printed in the paper could not be sourced and are left out.
    "stformer-base": 19.48,
}
"""Parameter counts in millions as quoted for the paper (only what could be sourced; see PARAMETER_SOURCE)."""

THOP_PARAMETERS: dict[str, float] = {
    # Reproduced with the authors' method, CACTI toolbox tools/params_flops.py (thop.profile on a forward pass,
    # thop 0.1.1), on both copies of their model: thop counts the parameters of standard layers that run, so
    # it skips the relative-position-bias tables (owned by the attention modules themselves, see
    # bias_table_parameters) and the unused conv_cat. Same figures for the standalone and the toolbox copy.
    "stformer-small": 1.22,  # 1,224,609
    "stformer-base": 19.48,  # 19,484,289
    "stformer-large": 36.81,  # 36,811,393
}
"""Parameter counts in millions the way the authors count them (thop): OFFICIAL_PARAMETERS minus the bias tables."""

PARAMETER_SOURCE = (
    "stformer-base 19.48 M: the figure quoted for STFormer-B of Wang et al., TPAMI 2023; the paper's table itself "
    "was not checked here. The authors' counting script (ucaswangls/cacti tools/params_flops.py, thop) run on "
    "their code gives 19.48 M (19,484,289: all parameters except the relative-position-bias tables); "
    "sum(p.numel()) gives 19,490,177 (OFFICIAL_PARAMETERS)."
)

OFFICIAL_PARAMETERS: dict[str, int] = {
    # sum(p.numel()) of ucaswangls/STFormer cacti/models/stformer.py (no conv_cat), counted on the meta device.
    "stformer-small": 1_230_497,
    "stformer-base": 19_490_177,
    "stformer-large": 36_823_169,
}
"""Exact parameter counts of the authors' standalone model; this module has ``conv_cat`` on top (see ``conv_cat_parameters``)."""

OPTIONAL_KEYS: tuple[str, ...] = ("conv_cat.",)
"""State-dict key components a checkpoint may lack: ``layers.<i>.blocks.<j>.conv_cat.{weight,bias}``.

These name a dotted component *inside* the key, not its start: match with :func:`is_optional_key`
(``key.startswith(p) or "." + p in key``), not ``key.startswith(p)``.
"""

SIZE_MULTIPLE = 2
"""H and W must be multiples of this (the one stride-2 convolution and its transposed twin)."""

_COMMON_RECIPE = {
    # tools/train.py: loss = torch.sqrt(criterion(model_out[-1], gt)) with configs/_base_/default_runtime.py loss=MSELoss
    "loss": "RMSE: sqrt(MSELoss(final output, ground truth))",
    "optimizer": "Adam",  # default_runtime.py optimizer=dict(type='Adam', lr=0.0001)
    "lr": 1e-4,
    "schedule": "constant (tools/train.py builds no scheduler)",
    "epochs": 120,  # default_runtime.py runner=dict(max_epochs=120)
    # data=dict(samples_per_gpu=1); README trains with torch.distributed on 4 GPUs (4 samples per step)
    "batch_size": 1,
    "batch_size_note": "per GPU; the README's command uses 4 GPUs with DistributedDataParallel",
    "crop_size": (128, 128),  # stformer_*.py resize_h, resize_w = 128, 128
    "augmentation": "RandomResize(0.8-1.2, p=0.5), RandomCrop 128x128 (p=0.5, random size), horizontal and diagonal "
    "flips (p=0.5 each), Resize to 128x128",
    "data": "DAVIS 2017 480p, runs of B=8 consecutive frames; Y channel of YCrCb / 255 (GenerationGrayMeas)",
    "masks": "one random binary (128, 128, 8) mask drawn at start of training (train_data mask_path=None)",
    "source": "ucaswangls/STFormer configs/STFormer/stformer_{small,base,large}.py, configs/_base_/default_runtime.py, "
    "configs/_base_/davis.py, tools/train.py (the paper's text was not checked)",
}

TRAINING_RECIPES: dict[str, dict] = {name: dict(_COMMON_RECIPE) for name in PRESETS}
"""Training settings of each preset, from the authors' configs and training script (identical for all three)."""


def is_optional_key(key: str) -> bool:
    """Whether a checkpoint may lack ``key`` (the toolbox's unused ``conv_cat`` weights).

    Args:
        key: A state-dict key of :class:`STFormer`.

    Returns:
        True when one of :data:`OPTIONAL_KEYS` is a dotted component of ``key``.
    """
    return any(key.startswith(part) or "." + part in key for part in OPTIONAL_KEYS)


def bias_table_parameters(units: int, frames: int = 8) -> int:
    """Parameters in the relative-position-bias tables (which thop, the authors' counter, leaves out).

    Args:
        units: Number of STFormer layers (2 blocks each).
        frames: Frames per snapshot.

    Returns:
        The count: per block, 13·13·4 (spatial, window 1×7×7) + (2·frames − 1)·4 (temporal).
    """
    return units * 2 * (13 * 13 * _HEADS + (2 * frames - 1) * _HEADS)


# --------------------------------------------------------------------------------------------------
# Building blocks
# --------------------------------------------------------------------------------------------------

_HEADS = 4
_WINDOW = (1, 7, 7)
_MASK_FILL = -100.0


def _relative_position_index(window: tuple[int, int, int]) -> torch.Tensor:
    """Index into a ``(2Wd−1)(2Wh−1)(2Ww−1)``-row bias table for every token pair of a 3-D window.

    Args:
        window: Window size ``(Wd, Wh, Ww)``.

    Returns:
        ``(Wd·Wh·Ww, Wd·Wh·Ww)`` int64 tensor.
    """
    grid = torch.stack(torch.meshgrid(*(torch.arange(n) for n in window), indexing="ij"))
    flat = grid.flatten(1)
    rel = (flat[:, :, None] - flat[:, None, :]).permute(1, 2, 0).contiguous()
    for axis, size in enumerate(window):
        rel[:, :, axis] += size - 1
    rel[:, :, 0] *= (2 * window[1] - 1) * (2 * window[2] - 1)
    rel[:, :, 1] *= 2 * window[2] - 1
    return rel.sum(-1)


def _effective_window(
    size: tuple[int, int, int], window: tuple[int, int, int], shift: tuple[int, int, int]
) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """Window and shift actually used: an axis no longer than the window is one whole window, unshifted."""
    use_window = list(window)
    use_shift = list(shift)
    for axis in range(3):
        if size[axis] <= window[axis]:
            use_window[axis] = size[axis]
            use_shift[axis] = 0
    return tuple(use_window), tuple(use_shift)


def _window_partition(x: torch.Tensor, window: tuple[int, int, int]) -> torch.Tensor:
    """``(B, D, H, W, C)`` → ``(B·nW, Wd·Wh·Ww, C)``."""
    b, d, h, w, c = x.shape
    x = x.view(b, d // window[0], window[0], h // window[1], window[1], w // window[2], window[2], c)
    return x.permute(0, 1, 3, 5, 2, 4, 6, 7).contiguous().view(-1, window[0] * window[1] * window[2], c)


def _window_reverse(windows: torch.Tensor, window: tuple[int, int, int], b: int, d: int, h: int, w: int) -> torch.Tensor:
    """``(B·nW, Wd, Wh, Ww, C)`` → ``(B, D, H, W, C)``."""
    x = windows.view(b, d // window[0], h // window[1], w // window[2], window[0], window[1], window[2], -1)
    return x.permute(0, 1, 4, 2, 5, 3, 6, 7).contiguous().view(b, d, h, w, -1)


def _shift_mask(
    d: int, h: int, w: int, window: tuple[int, int, int], shift: tuple[int, int, int], device: torch.device
) -> torch.Tensor:
    """Additive attention mask (0 / −100, float32) of shifted windows over a padded ``(d, h, w)`` volume.

    Labels the regions a cyclic shift brings together (the authors' slicing, including its behaviour
    for a zero shift) and forbids attention between different labels.

    Returns:
        ``(nW, N, N)`` with ``N = Wd·Wh·Ww``.
    """
    labels = torch.zeros((1, d, h, w, 1), device=device)
    count = 0
    slices = [(slice(-win), slice(-win, -sh), slice(-sh, None)) for win, sh in zip(window, shift)]
    for sd in slices[0]:
        for sh in slices[1]:
            for sw in slices[2]:
                labels[:, sd, sh, sw, :] = count
                count += 1
    flat = _window_partition(labels, window).squeeze(-1)
    mask = flat.unsqueeze(1) - flat.unsqueeze(2)
    return mask.masked_fill(mask != 0, _MASK_FILL).masked_fill(mask == 0, 0.0)


class SpaceAttention(nn.Module):
    """Multi-head self-attention inside 3-D windows with a learned relative-position bias.

    Attributes (names as the original, for state-dict compatibility): ``relative_position_bias_table``,
    ``relative_position_index`` (buffer), ``qkv``, ``proj``.
    """

    def __init__(self, dim: int, window: tuple[int, int, int], heads: int, qkv_bias: bool = True) -> None:
        """Build the layer.

        Args:
            dim: Token channels.
            window: Window size ``(Wd, Wh, Ww)``.
            heads: Attention heads.
            qkv_bias: Bias in the q/k/v projection.
        """
        super().__init__()
        self.dim = dim
        self.window_size = window
        self.num_heads = heads
        self.scale = (dim // heads) ** -0.5
        rows = (2 * window[0] - 1) * (2 * window[1] - 1) * (2 * window[2] - 1)
        self.relative_position_bias_table = nn.Parameter(torch.zeros(rows, heads))
        self.register_buffer("relative_position_index", _relative_position_index(window))
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Attend within each window.

        Args:
            x: ``(B·nW, N, C)`` window tokens.
            mask: ``(nW, N, N)`` additive mask of shifted windows, or None.

        Returns:
            ``(B·nW, N, C)``.
        """
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = (q * self.scale) @ k.transpose(-2, -1)
        bias = self.relative_position_bias_table[self.relative_position_index[:n, :n].reshape(-1)].reshape(n, n, -1)
        attn = attn + bias.permute(2, 0, 1).contiguous().unsqueeze(0)
        if mask is not None:
            windows = mask.shape[0]
            attn = attn.view(b // windows, windows, self.num_heads, n, n) + mask.unsqueeze(1).unsqueeze(0)
            attn = attn.view(-1, self.num_heads, n, n)
        attn = torch.softmax(attn, dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(b, n, c))


class TimeAttention(nn.Module):
    """Multi-head self-attention along the frame axis of each pixel, on half the channels.

    q, k, v have ``dim // 2`` channels; the scale is still ``(dim // heads) ** -0.5`` as in the original.
    """

    def __init__(self, dim: int, heads: int, qkv_bias: bool = True, frames: int = 8) -> None:
        """Build the layer.

        Args:
            dim: Token channels (in and out).
            heads: Attention heads.
            qkv_bias: Bias in the q/k/v projection.
            frames: Frames per snapshot (size of the relative-position table: ``2·frames − 1`` rows).
        """
        super().__init__()
        self.dim = dim
        self.num_heads = heads
        self.scale = (dim // heads) ** -0.5
        window = (frames, 1, 1)
        self.window_size = list(window)
        self.relative_position_bias_table = nn.Parameter(torch.zeros(2 * frames - 1, heads))
        self.register_buffer("relative_position_index", _relative_position_index(window))
        self.qkv = nn.Linear(dim, (dim // 2) * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim // 2, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Attend across frames.

        Args:
            x: ``(B·H·W, D, C)`` per-pixel frame sequences.

        Returns:
            ``(B·H·W, D, C)``.
        """
        b, n, c = x.shape
        c = c // 2
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = (q * self.scale) @ k.transpose(-2, -1)
        bias = self.relative_position_bias_table[self.relative_position_index[:n, :n].reshape(-1)].reshape(n, n, -1)
        attn = torch.softmax(attn + bias.permute(2, 0, 1).contiguous().unsqueeze(0), dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(b, n, c))


class GRFFNet(nn.Module):
    """Gated-residual feed-forward: two 3-D conv branches on the channel halves, the second fed by the first."""

    def __init__(self, dim: int) -> None:
        """Build the layer.

        Args:
            dim: Channels of each half (the block's channels / 2).
        """
        super().__init__()
        self.part1 = nn.Sequential(
            nn.Conv3d(dim, dim, 3, padding=1), nn.LeakyReLU(inplace=True), nn.Conv3d(dim, dim, 3, padding=1)
        )
        self.part2 = nn.Sequential(
            nn.Conv3d(dim, dim, 3, padding=1), nn.LeakyReLU(inplace=True), nn.Conv3d(dim, dim, 3, padding=1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 2·dim, D, H, W)`` → same shape."""
        x1, x2 = torch.chunk(x, 2, dim=1)
        y1 = x1 + self.part1(x1)
        x2 = x2 + y1
        y2 = x2 + self.part2(x2)
        return torch.cat([y1, y2], dim=1)


class STFormerBlock(nn.Module):
    """Spatial + temporal self-attention (summed, with a residual), then the GRFFN (with a residual)."""

    def __init__(
        self,
        dim: int,
        heads: int,
        window: tuple[int, int, int] = _WINDOW,
        shift: tuple[int, int, int] = (0, 0, 0),
        frames: int = 8,
    ) -> None:
        """Build the block.

        Args:
            dim: Token channels.
            heads: Attention heads (both branches).
            window: Spatial attention window ``(Wd, Wh, Ww)``.
            shift: Cyclic shift of the windows (each axis below its window size).
            frames: Frames per snapshot.
        """
        super().__init__()
        if not all(0 <= s < w for s, w in zip(shift, window)):
            raise ConfigError(f"shift {shift} must lie in [0, window {window})")
        self.dim = dim
        self.num_heads = heads
        self.window_size = window
        self.shift_size = shift
        self.norm1 = nn.LayerNorm(dim)
        self.attn = SpaceAttention(dim, window, heads, qkv_bias=True)
        self.norm2 = nn.LayerNorm(dim)
        self.ff = GRFFNet(dim // 2)
        self.time_attn = TimeAttention(dim, heads, qkv_bias=True, frames=frames)
        self.conv_cat = nn.Conv3d(dim * 2, dim, 1)  # the toolbox's; unused by forward (see the module docstring)

    def _attention(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Sum of the spatial and temporal branches on ``LN(x)``, ``(B, D, H, W, C)``."""
        b, d, h, w, c = x.shape
        window, shift = _effective_window((d, h, w), self.window_size, self.shift_size)
        x = self.norm1(x)
        pad_d = (window[0] - d % window[0]) % window[0]
        pad_h = (window[1] - h % window[1]) % window[1]
        pad_w = (window[2] - w % window[2]) % window[2]
        x = F.pad(x, (0, 0, 0, pad_w, 0, pad_h, 0, pad_d))
        _, dp, hp, wp, _ = x.shape

        shifted = any(s > 0 for s in shift)
        if shifted:
            rolled = torch.roll(x, shifts=(-shift[0], -shift[1], -shift[2]), dims=(1, 2, 3))
        else:
            rolled = x
        windows = self.attn(_window_partition(rolled, window), mask=mask if shifted else None)
        rolled = _window_reverse(windows.view(-1, *window, c), window, b, dp, hp, wp)
        space = torch.roll(rolled, shifts=shift, dims=(1, 2, 3)) if shifted else rolled

        seq = x.permute(0, 2, 3, 1, 4).reshape(b * hp * wp, dp, c)
        time = self.time_attn(seq).reshape(b, hp, wp, dp, c).permute(0, 3, 1, 2, 4)

        x = time + space
        if pad_d > 0 or pad_h > 0 or pad_w > 0:
            x = x[:, :d, :h, :w, :].contiguous()
        return x

    def _feed_forward(self, x: torch.Tensor) -> torch.Tensor:
        """GRFFN on ``LN(x)``, ``(B, D, H, W, C)`` in and out (channels-first views around the convs)."""
        x = self.norm2(x).permute(0, 4, 1, 2, 3)
        return self.ff(x).permute(0, 2, 3, 4, 1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Apply the block.

        Args:
            x: ``(B, D, H, W, C)`` tokens.
            mask: The shifted-window attention mask of the (padded) volume (used only when shifting).

        Returns:
            ``(B, D, H, W, C)``.
        """
        x = x + self._attention(x, mask)
        return x + self._feed_forward(x)


class STFormerLayer(nn.Module):
    """``depth`` STFormer blocks, every second one with windows shifted by half their size."""

    def __init__(self, dim: int, depth: int, heads: int, window: tuple[int, int, int] = _WINDOW, frames: int = 8) -> None:
        """Build the layer.

        Args:
            dim: Token channels.
            depth: Number of blocks.
            heads: Attention heads.
            window: Spatial attention window.
            frames: Frames per snapshot.
        """
        super().__init__()
        self.window_size = window
        self.shift_size = tuple(i // 2 for i in window)
        self.depth = depth
        self.blocks = nn.ModuleList(
            STFormerBlock(dim, heads, window, (0, 0, 0) if i % 2 == 0 else self.shift_size, frames) for i in range(depth)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, D, H, W)`` → same shape."""
        b, c, d, h, w = x.shape
        window, shift = _effective_window((d, h, w), self.window_size, self.shift_size)
        x = x.permute(0, 2, 3, 4, 1)
        dp = -(-d // window[0]) * window[0]
        hp = -(-h // window[1]) * window[1]
        wp = -(-w // window[2]) * window[2]
        mask = _shift_mask(dp, hp, wp, window, shift, x.device)
        for block in self.blocks:
            x = block(x, mask)
        return x.view(b, d, h, w, -1).permute(0, 4, 1, 2, 3)


# --------------------------------------------------------------------------------------------------
# The network
# --------------------------------------------------------------------------------------------------

_BAYER = ((0, 0), (0, 1), (1, 0), (1, 1))  # R, G1, G2, B of an RGGB mosaic


def _sense(x: torch.Tensor, phi: torch.Tensor) -> torch.Tensor:
    """A: Σ_k Φ_k x_k, keeping the frame axis (size 1)."""
    return torch.sum(x * phi, dim=1, keepdim=True)


def _spread(y: torch.Tensor, phi: torch.Tensor) -> torch.Tensor:
    """Aᵀ: Φ_k y for every frame k."""
    return y * phi


class STFormer(nn.Module):
    """The STFormer network; see the module docstring.

    Submodules (names of the original): ``token_gen``, ``layers`` (``STFormerLayer`` × units), ``conv2``.
    """

    def __init__(self, color_channels: int = 1, units: int = 4, dim: int = 64, frames: int = 8) -> None:
        """Build the network (arguments and their order as the original; it has no defaults for the first two).

        Args:
            color_channels: 1 for grayscale; 3 for a Bayer-RGGB measurement reconstructed as RGB.
            units: Number of STFormer layers (2 blocks each).
            dim: Base channels (the transformer works on ``4·dim``; must be even).
            frames: Frames per snapshot the temporal attention is built for.
        """
        super().__init__()
        if color_channels not in (1, 3):
            raise ConfigError(f"color_channels must be 1 or 3, got {color_channels}")
        if units < 1 or dim < 2 or dim % 2 or frames < 1:
            raise ConfigError(f"need units >= 1, an even dim >= 2 and frames >= 1; got units={units}, dim={dim}, frames={frames}")
        self.color_channels = color_channels
        self.frames = frames
        self.token_gen = nn.Sequential(
            nn.Conv3d(1, dim, kernel_size=5, stride=1, padding=2),
            nn.LeakyReLU(inplace=True),
            nn.Conv3d(dim, dim * 2, kernel_size=1, stride=1),
            nn.LeakyReLU(inplace=True),
            nn.Conv3d(dim * 2, dim * 2, kernel_size=3, stride=1, padding=1),
            nn.LeakyReLU(inplace=True),
            nn.Conv3d(dim * 2, dim * 4, kernel_size=3, stride=(1, 2, 2), padding=1),
            nn.LeakyReLU(inplace=True),
            nn.Conv3d(dim * 4, dim * 4, kernel_size=1, stride=1),
            nn.LeakyReLU(inplace=True),
        )
        self.conv2 = nn.Sequential(
            nn.ConvTranspose3d(
                dim * 4, dim * 2, kernel_size=(1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1), output_padding=(0, 1, 1)
            ),
            nn.LeakyReLU(inplace=True),
            nn.Conv3d(dim * 2, dim * 2, kernel_size=3, stride=1, padding=1),
            nn.LeakyReLU(inplace=True),
            nn.Conv3d(dim * 2, dim, kernel_size=1, stride=1),
            nn.LeakyReLU(inplace=True),
            nn.Conv3d(dim, color_channels, kernel_size=3, stride=1, padding=1),
        )
        self.layers = nn.ModuleList(STFormerLayer(dim * 4, 2, _HEADS, _WINDOW, frames) for _ in range(units))

    def conv_cat_parameters(self) -> int:
        """Parameters of the unused ``conv_cat`` convolutions (absent from the standalone code and its checkpoints)."""
        return sum(p.numel() for name, p in self.named_parameters() if is_optional_key(name))

    def bayer_init(self, y: torch.Tensor, Phi: torch.Tensor, Phi_s: torch.Tensor) -> torch.Tensor:
        """The initial estimate of an RGGB mosaic, computed per Bayer plane (the original's ``bayer_init``).

        Args:
            y: ``(N, 1, H, W)`` mosaic measurement.
            Phi: ``(N, B, H, W)`` masks.
            Phi_s: ``(N or 1, 1, H, W)`` Σ_k masks with zeros set to 1.

        Returns:
            ``(N, 1, B, H, W)`` mosaic estimate.
        """
        b, f, h, w = Phi.shape
        kw = {"dtype": y.dtype, "device": y.device}
        y_planes = torch.zeros(b, 1, h // 2, w // 2, 4, **kw)
        phi_planes = torch.zeros(b, f, h // 2, w // 2, 4, **kw)
        phis_planes = torch.zeros(b, 1, h // 2, w // 2, 4, **kw)
        for i, (r, c) in enumerate(_BAYER):
            y_planes[..., i] = y[:, :, r::2, c::2]
            phi_planes[..., i] = Phi[:, :, r::2, c::2]
            phis_planes[..., i] = Phi_s[:, :, r::2, c::2]
        y_planes = y_planes.permute(0, 4, 1, 2, 3).reshape(b * 4, 1, h // 2, w // 2)
        phi_planes = phi_planes.permute(0, 4, 1, 2, 3).reshape(b * 4, f, h // 2, w // 2)
        phis_planes = phis_planes.permute(0, 4, 1, 2, 3).reshape(b * 4, 1, h // 2, w // 2)

        x = _spread(y_planes, phi_planes)
        yb = _sense(x, phi_planes)
        x = x + _spread(torch.div(y_planes - yb, phis_planes), phi_planes)
        x = x.reshape(b, 4, f, h // 2, w // 2).permute(0, 2, 3, 4, 1)
        mosaic = torch.zeros(b, f, h, w, **kw)
        for i, (r, c) in enumerate(_BAYER):
            mosaic[:, :, r::2, c::2] = x[..., i]
        return mosaic.unsqueeze(1)

    def forward_official(self, y: torch.Tensor, Phi: torch.Tensor, Phi_s: torch.Tensor) -> list[torch.Tensor]:
        """The original forward: signature, inputs and return value as the authors' training/test scripts use them.

        Args:
            y: ``(N, 1, H, W)`` measurement (sum of masked frames in [0, 1], not normalised).
            Phi: ``(N or 1, B, H, W)`` masks (``N`` for colour).
            Phi_s: ``(N or 1, 1, H, W)`` Σ_k masks with zeros set to 1.

        Returns:
            One-element list: ``(N, B, H, W)`` gray frames, or ``(N, 3, B, H, W)`` RGB.
        """
        if self.color_channels == 3:
            x = self.bayer_init(y, Phi, Phi_s)
        else:
            x = _spread(y, Phi)
            yb = _sense(x, Phi)
            x = x + _spread(torch.div(y - yb, Phi_s), Phi)
            x = x.unsqueeze(1)
        out = self.token_gen(x)
        for layer in self.layers:
            out = layer(out)
        out = self.conv2(out)
        if self.color_channels != 3:
            out = out.squeeze(1)
        return [out]

    def forward(self, meas: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """Reconstruct the frames of each snapshot.

        Args:
            meas: ``(N, H, W)`` measurements as simulated (Σ_k C_k x_k with x in [0, 1]; no scaling), a
                Bayer RGGB mosaic when ``color_channels == 3``.
            masks: ``(B, H, W)`` shared or ``(N, B, H, W)`` per-snapshot masks.

        Returns:
            ``(N, B, H, W)`` gray frames, or ``(N, B, H, W, 3)`` RGB, in the parameters' dtype.

        Raises:
            ShapeError: On wrong ranks, disagreeing sizes, B above ``frames``, or H or W not a
                multiple of :data:`SIZE_MULTIPLE`.
        """
        if meas.ndim != 3:
            raise ShapeError(f"meas must have shape (N, H, W), got {tuple(meas.shape)}")
        if masks.ndim not in (3, 4):
            raise ShapeError(f"masks must have shape (B, H, W) or (N, B, H, W), got {tuple(masks.shape)}")
        n, height, width = meas.shape
        if tuple(masks.shape[-2:]) != (height, width) or (masks.ndim == 4 and masks.shape[0] != n):
            raise ShapeError(f"masks {tuple(masks.shape)} do not match measurement {tuple(meas.shape)}")
        frames = masks.shape[-3]
        if frames > self.frames:
            raise ShapeError(f"STFormer was built for at most frames={self.frames} per snapshot; masks have B={frames}")
        if height % SIZE_MULTIPLE or width % SIZE_MULTIPLE:
            raise ShapeError(f"STFormer needs H and W to be multiples of {SIZE_MULTIPLE}; got {height}x{width}")
        reference = next(self.parameters())
        meas = meas.to(device=reference.device, dtype=reference.dtype)
        masks = masks.to(device=reference.device, dtype=reference.dtype)
        if masks.ndim == 3:
            masks = masks.unsqueeze(0)
        phi = masks.expand(n, frames, height, width)
        phi_s = masks.sum(dim=1, keepdim=True)
        phi_s = torch.where(phi_s == 0, torch.ones_like(phi_s), phi_s)
        out = self.forward_official(meas.unsqueeze(1), phi, phi_s)[-1]
        if self.color_channels == 3:
            out = out.permute(0, 2, 3, 4, 1)
        return out.contiguous()
