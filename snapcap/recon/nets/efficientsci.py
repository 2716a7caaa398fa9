"""EfficientSCI: a densely connected space-time network for video snapshot compressive imaging.

Our own implementation of the network of Wang, Cao and Yuan, "EfficientSCI: Densely Connected
Network with Space-time Factorization for Large-scale Video Snapshot Compressive Imaging"
(CVPR 2023). Submodule names, parameter shapes, module creation order and the order of every
floating-point operation follow the authors' release (github.com/ucaswangls/EfficientSCI,
``cacti/models/efficientsci.py``), so its checkpoints (``efficientsci_base.pth``,
``efficientsci_base_mid_color.pth``) load with ``load_state_dict(strict=True)`` and give the same
output, and a model built after ``torch.manual_seed(s)`` starts from the same weights as theirs.

The network, for a snapshot Y (H × W) of B frames coded by masks C_k:

    Φ_s = Σ_k C_k (zeros set to 1),   Ȳ = Y ⊘ Φ_s,   X_e[k] = Ȳ + C_k ⊙ Ȳ     (estimation module)
    F = fem(X_e)                        3-D convolutions, the last with spatial stride 2
    F ← F + ResDNet_n(F),  n = 1…N      N units (``units``), each split into S = ``group_num``
                                        densely connected CFormer groups
    X = vrm(PixelShuffle₂(up_conv(F)))  back to H × W, ``color_ch`` output channels

A CFormer block adds, to its input, a spatial branch (two 1×3×3 convolutions) and a temporal
self-attention branch (attention over the B frames at each pixel), then a 3×3×3 convolutional
feed-forward layer with a residual connection.

Color (``color_ch = 3``): the snapshot is the RGGB Bayer mosaic of the coded frames. The authors'
estimation module splits Y, C_k and Φ_s into the four Bayer planes, applies the formula above on
each plane and interleaves the planes back; every operation is elementwise, so this equals the
formula on the full mosaic, which is what we compute. The last layer then returns the three RGB
channels at every pixel (no separate demosaicking).

Shapes: H and W must be even (the feature extractor halves them and the pixel shuffle doubles
them back).
"""

from __future__ import annotations

import torch
from torch import nn

from snapcap.errors import InvalidValueError, ShapeError

__all__ = [
    "EfficientSCI",
    "PRESETS",
    "PAPER_PARAMETERS",
    "PARAMETER_SOURCE",
    "OPTIONAL_KEYS",
    "TRAINING_RECIPES",
    "SPATIAL_MULTIPLE",
]

SPATIAL_MULTIPLE = 2
"""H and W must be multiples of this (one stride-2 convolution, undone by a ×2 pixel shuffle)."""

ATTENTION_HEADS = 4
"""Heads of the temporal self-attention; fixed in the authors' code."""

# Sizes of the four variants T, S, B, L of the paper (Sec. 4, Table 1, grayscale simulation). The
# ResDNet width is C = 4 * in_ch (64, 128, 256, 256), N = ``units`` residual units, each split into
# S = ``group_num`` groups. The base entry is the authors' released config
# (configs/EfficientSCI/efficientsci_base.py). The release has no config for T, S and L: their
# entries are the only (in_ch, units, group_num) with in_ch a multiple of 8, units <= 24 and
# group_num in {1, 2, 4, 8} whose parameter count rounds to PAPER_PARAMETERS (for L the other
# match, in_ch = 80 with 7 units, breaks the family's fixed C = 256 of B).
PRESETS: dict[str, dict] = {
    "efficientsci-tiny": {"in_ch": 16, "units": 8, "group_num": 2, "color_ch": 1},
    "efficientsci-small": {"in_ch": 32, "units": 8, "group_num": 2, "color_ch": 1},
    "efficientsci-base": {"in_ch": 64, "units": 8, "group_num": 4, "color_ch": 1},
    "efficientsci-large": {"in_ch": 64, "units": 12, "group_num": 4, "color_ch": 1},
}

PAPER_PARAMETERS: dict[str, float] = {
    "efficientsci-tiny": 0.95,
    "efficientsci-small": 3.78,
    "efficientsci-base": 8.82,
    "efficientsci-large": 12.39,
}
"""Parameters in millions (two decimals), grayscale models, as quoted from the paper's Table 1.

The figures were not re-read from the paper's text when this module was written (it was not at
hand); the base figure agrees with the released config to 0.01 M."""

PARAMETER_SOURCE = "Wang, Cao, Yuan, EfficientSCI (CVPR 2023), Table 1 (grayscale simulation benchmark), column Params (M)"

OPTIONAL_KEYS: tuple[str, ...] = ()
"""State-dict key prefixes a checkpoint may lack: none, the network has no optional part."""

# The authors' training recipe, from their configs (configs/_base_/default_runtime.py,
# configs/_base_/davis.py, configs/EfficientSCI/efficientsci_base*.py) and tools/train.py:
# DAVIS 2017 480p frames, random resize / random crop / horizontal and diagonal flips, then resize to
# the crop size; one random binary mask of the crop size, drawn when training starts
# (mask_shape = (128, 128, 8)); Adam at a constant lr of 1e-4 (no scheduler in tools/train.py);
# loss = sqrt(MSE) of the last output (``torch.sqrt(MSELoss(out[-1], gt))``); 120 epochs; 1 sample
# per GPU (the README launches 4 GPUs).
# The release has a config for the base model only; the other variants are assumed to share it.
_RECIPE: dict = {
    "loss": "rmse",
    "loss_detail": "torch.sqrt(nn.MSELoss()(outputs[-1], gt))",
    "optimizer": "adam",
    "lr": 1e-4,
    "schedule": "constant",
    "epochs": 120,
    "batch_size_per_gpu": 1,
    "gpus": 4,  # the README's multi-GPU launch line
    "crop_size": (128, 128),
    "frames": 8,
    "mask": "one random binary mask of the crop size, fixed for the run",
    "train_data": "DAVIS 2017 480p",
    "augmentation": ("random_resize", "random_crop", "flip_horizontal", "flip_diagonal"),
    "source": "ucaswangls/EfficientSCI configs/_base_/default_runtime.py, "
    "configs/EfficientSCI/efficientsci_base.py, tools/train.py",
}
TRAINING_RECIPES: dict[str, dict] = {name: dict(_RECIPE) for name in PRESETS}


class TimesAttention3D(nn.Module):
    """Multi-head self-attention along the frame axis, at half the channel width.

    Queries, keys and values have ``dim // 2`` channels; the projection returns to ``dim``. The
    scale is ``(dim // num_heads) ** -0.5``, from the full width, as in the authors' code.

    Args:
        dim: input and output channels.
        num_heads: attention heads; ``dim // 2`` must be a multiple of it.
        qkv_bias: bias of the query/key/value projection.
        qk_scale: scale of the dot products (default ``(dim // num_heads) ** -0.5``).
    """

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = False, qk_scale: float | None = None) -> None:
        super().__init__()
        self.dim = dim
        self.num_heads = num_heads
        self.scale = qk_scale or (dim // num_heads) ** -0.5
        self.qkv = nn.Linear(dim, (dim // 2) * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim // 2, dim)
        self.softmax = nn.Softmax(dim=-1)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Attend over the sequence axis.

        Args:
            tokens: (S, T, dim), S independent sequences of T tokens.

        Returns:
            (S, T, dim).
        """
        seqs, length, channels = tokens.shape
        half = channels // 2
        qkv = self.qkv(tokens).reshape(seqs, length, 3, self.num_heads, half // self.num_heads)
        qkv = qkv.permute(2, 0, 3, 1, 4)
        query, key, value = qkv[0], qkv[1], qkv[2]
        query = query * self.scale
        weights = self.softmax(query @ key.transpose(-2, -1))
        out = (weights @ value).transpose(1, 2).reshape(seqs, length, half)
        return self.proj(out)


class CFormerBlock(nn.Module):
    """Space-time factorised block: spatial convolutions + temporal attention, then a 3-D FFN.

    ``u = x + scb(x) + tsab(x)``, ``out = u + ffn(u)``.

    Args:
        dim: channels.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.scb = nn.Sequential(
            nn.Conv3d(dim, dim, (1, 3, 3), padding=(0, 1, 1)),
            nn.LeakyReLU(inplace=True),
            nn.Conv3d(dim, dim, (1, 3, 3), padding=(0, 1, 1)),
        )
        self.tsab = TimesAttention3D(dim, num_heads=ATTENTION_HEADS)
        self.ffn = nn.Sequential(
            nn.Conv3d(dim, dim, 3, 1, 1),
            nn.LeakyReLU(inplace=True),
            nn.Conv3d(dim, dim, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the block.

        Args:
            x: (N, dim, T, H, W).

        Returns:
            (N, dim, T, H, W).
        """
        batch, channels, frames, height, width = x.shape
        spatial = self.scb(x)
        tokens = x.permute(0, 3, 4, 2, 1).reshape(batch * height * width, frames, channels)
        temporal = self.tsab(tokens)
        temporal = temporal.reshape(batch, height, width, frames, channels).permute(0, 4, 3, 1, 2)
        mixed = spatial + temporal + x
        return self.ffn(mixed) + mixed


class ResDNetBlock(nn.Module):
    """Residual unit of ``group_num`` densely connected CFormer groups.

    The input is split into S channel groups x_1..x_S. Group 1 goes through CFormer 1; group i > 1
    is concatenated with the outputs of groups 1..i-1, fused by a 1×1×1 convolution + LeakyReLU,
    then goes through CFormer i. The S outputs are concatenated, mixed by a 1×1×1 convolution, and
    added to the input.

    Args:
        dim: channels (a multiple of ``group_num``).
        group_num: number of groups S.
    """

    def __init__(self, dim: int, group_num: int) -> None:
        super().__init__()
        self.cformer_list = nn.ModuleList()
        self.group_num = group_num
        group_dim = dim // group_num
        self.dense_conv = nn.ModuleList()
        for index in range(group_num):
            self.cformer_list.append(CFormerBlock(group_dim))
            if index > 0:
                self.dense_conv.append(
                    nn.Sequential(
                        nn.Conv3d(group_dim * (index + 1), group_dim, 1),
                        nn.LeakyReLU(inplace=True),
                    )
                )
        self.last_conv = nn.Conv3d(dim, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the unit.

        Args:
            x: (N, dim, T, H, W).

        Returns:
            (N, dim, T, H, W).
        """
        groups = torch.chunk(x, chunks=self.group_num, dim=1)
        outputs = [self.cformer_list[0](groups[0])]
        for index in range(1, self.group_num):
            dense_in = torch.cat([*outputs, groups[index]], dim=1)
            outputs.append(self.cformer_list[index](self.dense_conv[index - 1](dense_in)))
        return x + self.last_conv(torch.cat(outputs, dim=1))


class EfficientSCI(nn.Module):
    """The EfficientSCI reconstruction network (one stage).

    Args:
        in_ch: base width; the feature extractor outputs ``4 * in_ch`` channels (the paper's C).
        units: number of ResDNet units (the paper's N).
        group_num: groups per ResDNet unit (the paper's S); ``4 * in_ch`` must be a multiple of
            it, and ``2 * in_ch / group_num`` a multiple of 4 (the attention heads).
        color_ch: 1 for grayscale, 3 for an RGGB Bayer snapshot reconstructed to RGB.

    Raises:
        InvalidValueError: on sizes the network cannot be built with.
    """

    def __init__(self, in_ch: int = 64, units: int = 8, group_num: int = 4, color_ch: int = 1) -> None:
        super().__init__()
        for name, value in (("in_ch", in_ch), ("units", units), ("group_num", group_num)):
            if int(value) != value or value < 1:
                raise InvalidValueError(f"EfficientSCI: {name} must be a positive integer, got {value!r}")
        if color_ch not in (1, 3):
            raise InvalidValueError(f"EfficientSCI: color_ch must be 1 or 3, got {color_ch!r}")
        width = in_ch * 4
        if width % group_num or (width // group_num // 2) % ATTENTION_HEADS:
            raise InvalidValueError(
                f"EfficientSCI: 4*in_ch = {width} must split into group_num = {group_num} groups whose "
                f"half width is a multiple of {ATTENTION_HEADS} (the attention heads)"
            )
        self.color_ch = color_ch
        self.fem = nn.Sequential(
            nn.Conv3d(1, in_ch, kernel_size=(3, 7, 7), stride=1, padding=(1, 3, 3)),
            nn.LeakyReLU(inplace=True),
            nn.Conv3d(in_ch, in_ch * 2, kernel_size=3, stride=1, padding=1),
            nn.LeakyReLU(inplace=True),
            nn.Conv3d(in_ch * 2, width, kernel_size=3, stride=(1, 2, 2), padding=1),
            nn.LeakyReLU(inplace=True),
        )
        self.up_conv = nn.Conv3d(width, in_ch * 8, 1, 1)
        self.up = nn.PixelShuffle(2)
        self.vrm = nn.Sequential(
            nn.Conv3d(in_ch * 2, in_ch * 2, kernel_size=3, stride=1, padding=1),
            nn.LeakyReLU(inplace=True),
            nn.Conv3d(in_ch * 2, in_ch, kernel_size=1, stride=1),
            nn.LeakyReLU(inplace=True),
            nn.Conv3d(in_ch, color_ch, kernel_size=3, stride=1, padding=1),
        )
        self.resdnet_list = nn.ModuleList(ResDNetBlock(width, group_num=group_num) for _ in range(units))

    @staticmethod
    def initial_estimate(y: torch.Tensor, Phi: torch.Tensor, Phi_s: torch.Tensor) -> torch.Tensor:
        """The estimation module: X_e[k] = Ȳ + C_k ⊙ Ȳ with Ȳ = Y ⊘ Φ_s.

        Also the color estimate: the authors compute it per Bayer plane, which is the same
        elementwise formula.

        Args:
            y: (N, 1, H, W) snapshots.
            Phi: (N, B, H, W) masks.
            Phi_s: (N, 1, H, W) sum of the masks with zeros set to 1.

        Returns:
            (N, 1, B, H, W).
        """
        normalised = torch.div(y, Phi_s)
        return (normalised + Phi.mul(normalised)).unsqueeze(1)

    def forward_official(
        self,
        y: torch.Tensor,
        Phi: torch.Tensor,
        Phi_s: torch.Tensor,
    ) -> list[torch.Tensor]:
        """The authors' forward: their argument layout, and a list of the stage outputs.

        Args:
            y: (N, 1, H, W) snapshots, unscaled (Σ_k C_k X_k with X in [0, 1]).
            Phi: (N, B, H, W) masks.
            Phi_s: (N, 1, H, W) Σ_k C_k with zeros set to 1.

        Returns:
            A one-element list (EfficientSCI has one stage): (N, B, H, W) for grayscale,
            (N, 3, B, H, W) RGB for ``color_ch = 3``.
        """
        out = self.fem(self.initial_estimate(y, Phi, Phi_s))
        for unit in self.resdnet_list:
            out = unit(out)
        out = self.up_conv(out).transpose(1, 2)
        out = self.up(out).transpose(1, 2)
        out = self.vrm(out)
        if self.color_ch != 3:
            out = out.squeeze(1)
        return [out]

    def forward(self, meas: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """Reconstruct the B frames of each snapshot.

        Args:
            meas: (N, H, W) snapshots, unscaled: Σ_k C_k ⊙ X_k with frames X_k in [0, 1]
                (the RGGB mosaic for ``color_ch = 3``).
            masks: (B, H, W), shared by all snapshots, or (N, B, H, W).

        Returns:
            (N, B, H, W) for grayscale, (N, B, H, W, 3) RGB for ``color_ch = 3``, in the
            dtype and on the device of the network's parameters.

        Raises:
            ShapeError: on shapes that do not agree, or H, W not multiples of 2.
        """
        if meas.ndim != 3:
            raise ShapeError(f"EfficientSCI: meas must be (N, H, W), got shape {tuple(meas.shape)}")
        if masks.ndim not in (3, 4):
            raise ShapeError(f"EfficientSCI: masks must be (B, H, W) or (N, B, H, W), got shape {tuple(masks.shape)}")
        count, height, width = meas.shape
        if tuple(masks.shape[-2:]) != (height, width) or (masks.ndim == 4 and masks.shape[0] != count):
            raise ShapeError(f"EfficientSCI: masks {tuple(masks.shape)} do not match meas {tuple(meas.shape)}")
        if height % SPATIAL_MULTIPLE or width % SPATIAL_MULTIPLE:
            raise ShapeError(f"EfficientSCI: H and W must be multiples of {SPATIAL_MULTIPLE}, got {height}x{width}")
        reference = next(self.parameters())
        y = meas.to(device=reference.device, dtype=reference.dtype).unsqueeze(1)
        phi = masks.to(device=reference.device, dtype=reference.dtype)
        if phi.ndim == 3:
            phi = phi.unsqueeze(0).expand(count, -1, -1, -1)
        phi_s = phi.sum(dim=1, keepdim=True)
        phi_s = torch.where(phi_s == 0, torch.ones_like(phi_s), phi_s)
        out = self.forward_official(y, phi, phi_s)[-1]
        if self.color_ch == 3:
            out = out.permute(0, 2, 3, 4, 1).contiguous()
        return out
