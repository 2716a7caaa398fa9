"""The one-stage SnapCap student: coded snapshot + masks -> language-related visual tokens.

Architecture (SnapCap paper, Sec. 3 and Fig. 8)::

    Ȳ = Y ⊘ Σ_k C_k,  X_e = Ȳ ⊙ C + Ȳ                       initialisation module (B channels)
    f_latent = f(Y, C)        stem + 4 stages of N1..N4 = 4, 6, 6, 6 residual blocks
                              (3×3 conv, Tanh, 3×3 conv, ReLU, skip), "D" down-sampling
                              so that the grid matches the teacher's patch grid (h, w)
    f_s_conv = Conv2(f_latent) ∈ R^{c×h×w}                   two convolutions
    f_s = S(f_s_conv) ∈ R^d   the teacher's ViT blocks after conv1, copied as initialisation
    t = Proj(f_s) ∈ R^D       one visual token per snapshot; T snapshots -> T tokens
    X̂ = g(f_latent)           decoder mirroring f, rebuilds the B frames (stage-1 loss)

Losses: L_reg = L1(X̂, X) (stage 1: f and g); L_dis = MSE(f_s_conv, f_t_conv) + α·MSE(f_s, f_t)
and L_cap (cross-entropy of the frozen caption decoder), L_total = L_dis + β·L_cap (stage 2:
f, Conv2, S, Proj). α = β = 0.001 in the paper.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

from snapcap.errors import ConfigError, ShapeError

__all__ = ["StudentConfig", "STUDENT_PRESETS", "SnapCapStudent", "initial_estimate"]


@dataclass(frozen=True)
class StudentConfig:
    """Sizes of the student (the teacher fixes c, h, w and d).

    Attributes:
        B: frames per snapshot.
        image_size: input size (H = W) the student works at (the teacher's image size).
        widths: channels of the four encoder stages.
        blocks: residual blocks per stage (N1..N4).
        token_dim: D, the width of the caption decoder the tokens feed.
    """

    B: int = 8  # noqa: N815
    image_size: int = 224
    widths: tuple[int, int, int, int] = (64, 128, 256, 256)
    blocks: tuple[int, int, int, int] = (4, 6, 6, 6)
    token_dim: int = 1024

    def to_dict(self) -> dict:
        data = asdict(self)
        data["widths"] = list(self.widths)
        data["blocks"] = list(self.blocks)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> StudentConfig:
        data = dict(data)
        data["widths"] = tuple(data["widths"])
        data["blocks"] = tuple(data["blocks"])
        return cls(**data)


STUDENT_PRESETS = {
    "paper": StudentConfig(),
    "tiny": StudentConfig(image_size=32, widths=(16, 24, 32, 48), blocks=(1, 1, 1, 1), token_dim=64),
}


def initial_estimate(meas: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """X_e = Ȳ ⊙ C + Ȳ with Ȳ = Y ⊘ Σ_k C_k (zero where no mask opens): (..., B, H, W)."""
    total = masks.sum(dim=-3)
    ybar = torch.where(total > 0, meas / torch.where(total > 0, total, torch.ones_like(total)), torch.zeros_like(meas))
    return ybar.unsqueeze(-3) * masks + ybar.unsqueeze(-3)


class ResidualBlock(nn.Module):
    """x + conv(ReLU(conv(Tanh(conv...)))): 3×3 conv, Tanh, 3×3 conv, ReLU, skip (Fig. 8c)."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), nn.Tanh(), nn.Conv2d(channels, channels, 3, padding=1))
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(x + self.body(x))


def _stage(channels_in: int, channels_out: int, blocks: int, down: bool) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(channels_in, channels_out, 3, stride=2 if down else 1, padding=1), nn.ReLU(inplace=True)]
    layers += [ResidualBlock(channels_out) for _ in range(blocks)]
    return nn.Sequential(*layers)


def _up_stage(channels_in: int, channels_out: int, blocks: int, up: bool) -> nn.Sequential:
    layers: list[nn.Module] = [ResidualBlock(channels_in) for _ in range(blocks)]
    if up:
        layers += [nn.ConvTranspose2d(channels_in, channels_out, 2, stride=2), nn.ReLU(inplace=True)]
    else:
        layers += [nn.Conv2d(channels_in, channels_out, 3, padding=1), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


class SnapCapStudent(nn.Module):
    """The student of the module docstring.

    Args:
        config: :class:`StudentConfig`.
        conv_channels, grid: the teacher's conv1 output c and (h, w).
        tail: S, the teacher's ViT after conv1 (a trainable copy); maps (M, c, h, w) -> (M, d).
        embed_dim: d.
    """

    def __init__(self, config: StudentConfig, conv_channels: int, grid: tuple[int, int], tail: nn.Module, embed_dim: int):
        super().__init__()
        if grid[0] != grid[1]:
            raise ConfigError(f"the teacher's patch grid must be square, got {grid}")
        downs = math.log2(config.image_size / grid[0])
        if downs != int(downs) or not 0 <= downs <= 4:
            raise ConfigError(f"image_size {config.image_size} / grid {grid[0]} must be a power of two up to 16 (got {config.image_size / grid[0]})")
        self.config = config
        self.grid = tuple(grid)
        downs = int(downs)
        down_flags = [index >= 4 - downs for index in range(4)]  # the last `downs` stages halve the size
        widths = config.widths
        self.stem = nn.Sequential(nn.Conv2d(config.B + 1, widths[0], 3, padding=1), nn.ReLU(inplace=True))
        self.encoder = nn.ModuleList(
            _stage(widths[max(i - 1, 0)], widths[i], config.blocks[i], down_flags[i]) for i in range(4)
        )
        self.conv2 = nn.Sequential(nn.Conv2d(widths[-1], widths[-1], 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(widths[-1], conv_channels, 1))
        self.tail = tail
        self.proj = nn.Sequential(nn.Linear(embed_dim, config.token_dim), nn.GELU(), nn.Linear(config.token_dim, config.token_dim))
        decoder = []
        for i in reversed(range(4)):
            decoder.append(_up_stage(widths[i], widths[max(i - 1, 0)], config.blocks[i], down_flags[i]))
        self.decoder = nn.ModuleList(decoder)
        self.head = nn.Conv2d(widths[0], config.B, 3, padding=1)

    def _check(self, meas: torch.Tensor, masks: torch.Tensor) -> None:
        size = self.config.image_size
        if tuple(meas.shape[-2:]) != (size, size):
            raise ShapeError(f"the student works at {size}x{size}; got measurements of {tuple(meas.shape[-2:])} (resize or simulate at that size)")
        if masks.shape[-3] != self.config.B:
            raise ShapeError(f"the student was built for B={self.config.B}; the masks have B={masks.shape[-3]}")

    def latent(self, meas: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """f(Y, C) for snapshots ``(M, H, W)`` and masks ``(M or 1, B, H, W)`` -> (M, w4, h, w)."""
        self._check(meas, masks)
        estimate = initial_estimate(meas, masks)
        total = masks.sum(dim=-3, keepdim=True).clamp_min(1.0)
        x = self.stem(torch.cat([estimate, meas.unsqueeze(-3) / total], dim=-3))
        for stage in self.encoder:
            x = stage(x)
        return x

    def reconstruct(self, latent: torch.Tensor) -> torch.Tensor:
        """g(f_latent): the B frames (M, B, H, W) (stage-1 regularisation)."""
        x = latent
        for stage in self.decoder:
            x = stage(x)
        return self.head(x)

    def features(self, latent: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(f_s_conv (M, c, h, w), f_s (M, d)) from f_latent."""
        conv = self.conv2(latent)
        return conv, self.tail(conv)

    def forward(self, meas: torch.Tensor, masks: torch.Tensor) -> dict[str, torch.Tensor]:
        """Snapshots ``(N, T, H, W)`` with masks ``(B, H, W)`` or ``(N, B, H, W)``.

        Returns a dict with ``tokens`` (N, T, D), ``f_s`` (N, T, d), ``f_s_conv``
        (N, T, c, h, w) and ``latent`` (N·T, ...).
        """
        if meas.ndim != 4:
            raise ShapeError(f"meas must have shape (N, T, H, W), got {tuple(meas.shape)}")
        count, snapshots = meas.shape[:2]
        flat = meas.reshape((count * snapshots,) + tuple(meas.shape[-2:]))
        if masks.ndim == 3:
            masks = masks.unsqueeze(0)
        elif masks.ndim == 4:
            masks = masks.repeat_interleave(snapshots, dim=0)
        else:
            raise ShapeError(f"masks must have shape (B, H, W) or (N, B, H, W), got {tuple(masks.shape)}")
        latent = self.latent(flat, masks.to(flat.dtype))
        conv, embedding = self.features(latent)
        tokens = self.proj(embedding)
        return {
            "tokens": tokens.reshape(count, snapshots, -1),
            "f_s": embedding.reshape(count, snapshots, -1),
            "f_s_conv": conv.reshape((count, snapshots) + tuple(conv.shape[1:])),
            "latent": latent,
        }
