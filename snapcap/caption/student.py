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
from typing import Iterable

import numpy as np
import torch
from torch import nn

from snapcap.cacti.bayer import mosaic
from snapcap.errors import ConfigError, ShapeError

__all__ = ["StudentConfig", "SnapCapStudent", "initial_estimate", "normalized_measurement"]


@dataclass(frozen=True)
class StudentConfig:
    """Sizes of the student (the teacher fixes c, h, w and d).

    Attributes:
        B: frames per snapshot.
        image_size: input size (H = W) the student works at (the teacher's image size).
        widths: channels of the four encoder stages.
        blocks: residual blocks per stage (N1..N4).
        token_dim: D, the width of the caption decoder the tokens feed.
        unshuffle: space-to-depth factor r applied to the input (the B + 1 channel maps become
            (B + 1)·r² maps of (H/r, W/r)) before the stem, undone by a depth-to-space after the
            decoder's head. 1 (the paper) works at full resolution; 2 keeps each 2×2 Bayer cell
            of a mosaicked snapshot in one position; larger factors make the encoder r²-times
            cheaper (the tiny CPU preset uses 4: the targets are 8×8 patch maps anyway).
        shortcut: add a linear patch embedding of Ȳ = Y ⊘ Σ_k C_k to Conv2's output,
            f_s_conv = Conv2(f_latent) + P(Ȳ), with P a p×p stride-p convolution (p the
            teacher's patch size) and Conv2's last layer starting at zero. Ȳ is close to the
            Bayer mosaic of the snapshot's mean frame and f_t_conv is conv1 of the mean frame (a
            linear map of it), so a linear P can carry most of L_conv and f learns the rest.
            P starts at zero; training decides how it is initialised
            (``CaptionTrainConfig.shortcut_init``): :meth:`SnapCapStudent.fit_shortcut` (the
            exact minimiser of L_conv, for the variants with L_dis) or
            :meth:`SnapCapStudent.init_shortcut` (a copy of the teacher's conv1). Off in the
            paper's configuration.
        bayer: the colour-filter pattern of the snapshots (None: gray). Only the order-aware
            student (:class:`snapcap.caption.temporal.OrderAwareStudent`) reads it: it
            demosaics g's rebuilt frames before the tower sees them.
    """

    B: int = 8
    image_size: int = 224
    widths: tuple[int, int, int, int] = (64, 128, 256, 256)
    blocks: tuple[int, int, int, int] = (4, 6, 6, 6)
    token_dim: int = 1024
    unshuffle: int = 1
    shortcut: bool = False
    bayer: str | None = None

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


def normalized_measurement(meas: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Ȳ = Y ⊘ Σ_k C_k, completed where no mask opens: ``(..., H, W)``.

    At a pixel that no mask opens (Σ_k C_k = 0) the quotient is undefined and Y holds nothing
    of the scene. Such pixels are a (1 - duty)^B share of random masks: 0.4 % at B = 8, but 25 % at
    B = 2 and 6 % at B = 4, where leaving them at zero darkens a quarter of Ȳ and of the initial
    estimate (and so the patch features the student must match). They take the mean of Ȳ over
    the opened pixels two steps away in each direction (the same colour of a 2×2 Bayer mosaic;
    zero when none is open).
    """
    total = masks.to(meas.dtype).sum(dim=-3)
    opened = total > 0
    ybar = torch.where(opened, meas / torch.where(opened, total, torch.ones_like(total)), torch.zeros_like(meas))
    if bool(opened.all()):
        return ybar
    shape = torch.broadcast_shapes(ybar.shape, opened.shape)
    height, width = shape[-2:]
    if opened.ndim > 2 and opened.shape[:-2].numel() > 1:  # masks per sample: a plan per mask set
        flat_open = opened.expand(shape).reshape(-1, height * width)
        values = ybar.expand(shape).reshape(-1, height * width)
        rows = [_fill(values[i], flat_open[i].reshape(height, width)) for i in range(values.shape[0])]
        return torch.stack(rows).reshape(shape)
    flat = ybar.expand(shape).reshape(shape[:-2] + (height * width,))
    return _fill(flat, opened.reshape(height, width)).reshape(shape)


def _fill(flat: torch.Tensor, opened: torch.Tensor) -> torch.Tensor:
    """``flat`` (..., H·W) with its closed pixels (``opened`` (H, W) False) set to the mean of the
    opened ones two steps away (zero when none is): a gather over the closed pixels only."""
    height, width = opened.shape
    closed = (~opened).nonzero()  # (K, 2)
    offsets = torch.tensor([(dy, dx) for dy in (-2, 0, 2) for dx in (-2, 0, 2) if dy or dx], device=opened.device)
    near = closed[:, None, :] + offsets[None]  # (K, 8, 2)
    inside = (near[..., 0] >= 0) & (near[..., 0] < height) & (near[..., 1] >= 0) & (near[..., 1] < width)
    near_y, near_x = near[..., 0].clamp(0, height - 1), near[..., 1].clamp(0, width - 1)
    weight = (inside & opened[near_y, near_x]).to(flat.dtype)  # (K, 8)
    counts = weight.sum(dim=-1)
    gathered = flat[..., near_y * width + near_x]  # (..., K, 8)
    values = torch.where(counts > 0, (gathered * weight).sum(dim=-1) / counts.clamp_min(1.0), torch.zeros_like(counts))
    index = (closed[:, 0] * width + closed[:, 1]).expand(flat.shape[:-1] + (closed.shape[0],))
    return flat.scatter(-1, index, values)


def initial_estimate(meas: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """X_e = Ȳ ⊙ C + Ȳ with Ȳ = :func:`normalized_measurement`: (..., B, H, W)."""
    ybar = normalized_measurement(meas, masks)
    return ybar.unsqueeze(-3) * masks + ybar.unsqueeze(-3)


class ResidualBlock(nn.Module):
    """x + conv(ReLU(conv(Tanh(conv...)))): 3×3 conv, Tanh, 3×3 conv, ReLU, skip (Fig. 8c)."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1), nn.Tanh(), nn.Conv2d(channels, channels, 3, padding=1)
        )
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
        factor = int(config.unshuffle)
        if factor < 1 or config.image_size % factor:
            raise ConfigError(f"unshuffle {config.unshuffle} must be a positive divisor of image_size {config.image_size}")
        downs = math.log2(config.image_size / factor / grid[0])
        if downs != int(downs) or not 0 <= downs <= 4:
            raise ConfigError(
                f"image_size {config.image_size} / unshuffle {factor} / grid {grid[0]} must be a power of two up to 16 "
                f"(got {config.image_size / factor / grid[0]})"
            )
        self.config = config
        self.grid = tuple(grid)
        downs = int(downs)
        down_flags = [index >= 4 - downs for index in range(4)]  # the last `downs` stages halve the size
        widths = config.widths
        self.factor = factor
        self.stem = nn.Sequential(nn.Conv2d((config.B + 1) * factor * factor, widths[0], 3, padding=1), nn.ReLU(inplace=True))
        self.encoder = nn.ModuleList(_stage(widths[max(i - 1, 0)], widths[i], config.blocks[i], down_flags[i]) for i in range(4))
        self.conv2 = nn.Sequential(
            nn.Conv2d(widths[-1], widths[-1], 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(widths[-1], conv_channels, 1)
        )
        self.tail = tail
        self.patch: nn.Conv2d | None = None
        if config.shortcut:
            size = config.image_size // grid[0]
            if size * grid[0] != config.image_size:
                raise ConfigError(f"shortcut: image_size {config.image_size} is not a multiple of the grid {grid[0]}")
            self.patch = nn.Conv2d(1, conv_channels, size, stride=size)
            nn.init.zeros_(self.patch.weight)
            nn.init.zeros_(self.patch.bias)
            nn.init.zeros_(self.conv2[-1].weight)
            nn.init.zeros_(self.conv2[-1].bias)
        self.proj = nn.Sequential(
            nn.Linear(embed_dim, config.token_dim), nn.GELU(), nn.Linear(config.token_dim, config.token_dim)
        )
        decoder = []
        for i in reversed(range(4)):
            decoder.append(_up_stage(widths[i], widths[max(i - 1, 0)], config.blocks[i], down_flags[i]))
        self.decoder = nn.ModuleList(decoder)
        self.head = nn.Conv2d(widths[0], config.B * factor * factor, 3, padding=1)

    def _check(self, meas: torch.Tensor, masks: torch.Tensor) -> None:
        size = self.config.image_size
        if tuple(meas.shape[-2:]) != (size, size):
            raise ShapeError(
                f"the student works at {size}x{size}; got measurements of {tuple(meas.shape[-2:])} "
                "(resize or simulate at that size)"
            )
        if masks.shape[-3] != self.config.B:
            raise ShapeError(f"the student was built for B={self.config.B}; the masks have B={masks.shape[-3]}")

    def latent(self, meas: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """f(Y, C) for snapshots ``(M, H, W)`` and masks ``(M or 1, B, H, W)`` -> (M, w4, h, w)."""
        self._check(meas, masks)
        ybar = normalized_measurement(meas, masks)
        x = torch.cat([ybar.unsqueeze(-3) * masks + ybar.unsqueeze(-3), ybar.unsqueeze(-3)], dim=-3)  # X_e and Ȳ
        if self.factor > 1:
            x = nn.functional.pixel_unshuffle(x, self.factor)
        x = self.stem(x)
        for stage in self.encoder:
            x = stage(x)
        return x

    def reconstruct(self, latent: torch.Tensor) -> torch.Tensor:
        """g(f_latent): the B frames (M, B, H, W) (stage-1 regularisation)."""
        x = latent
        for stage in self.decoder:
            x = stage(x)
        x = self.head(x)
        return nn.functional.pixel_shuffle(x, self.factor) if self.factor > 1 else x

    def features(self, latent: torch.Tensor, ybar: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(f_s_conv (M, c, h, w), f_s (M, d)) from f_latent (and Ȳ (M, H, W) for the shortcut)."""
        conv = self.conv2(latent)
        if self.patch is not None and ybar is not None:
            conv = conv + self.patch(ybar.unsqueeze(-3))
        return conv, self.tail(conv)

    @torch.no_grad()
    def fit_shortcut(self, chunks: Iterable[tuple[torch.Tensor, torch.Tensor]], ridge: float = 1e-3) -> float:
        """P ← argmin_P ||P(Ȳ) - f_t_conv||² + ridge·||W||² (closed form; P is linear).

        With Conv2's output at its initial zero this is L_conv minimised exactly over P: a
        ridge regression from each p×p patch of Ȳ (plus a constant) to the teacher's c features
        of that patch. ``chunks`` yields ``(ybar (M, H, W), targets (M, c, h, w))`` pieces of the
        training set; only the (p² + 1)-square normal equations are kept between them, so memory
        does not grow with the corpus. Returns the MSE after.
        """
        if self.patch is None:
            raise ConfigError("this student has no shortcut (StudentConfig.shortcut is False)")
        size = self.patch.kernel_size[0]
        gram = xty = None
        squares, rows = 0.0, 0
        for ybar, targets in chunks:
            x = nn.functional.unfold(ybar.unsqueeze(1).double(), size, stride=size)  # (M, p², h·w)
            x = x.transpose(1, 2).reshape(-1, size * size)
            x = torch.cat([x, torch.ones(x.shape[0], 1, dtype=x.dtype)], dim=1)
            y = targets.double().flatten(2).transpose(1, 2).reshape(-1, targets.shape[1])
            gram = x.T @ x if gram is None else gram + x.T @ x
            xty = x.T @ y if xty is None else xty + x.T @ y
            squares += float((y * y).sum())
            rows += x.shape[0]
        if gram is None:
            raise ConfigError("fit_shortcut: no training samples")
        penalty = ridge * rows * torch.diag((torch.arange(gram.shape[0]) < size * size).double())
        solution = torch.linalg.solve(gram + penalty, xty)  # (p² + 1, c)
        self.patch.weight.copy_(solution[:-1].T.reshape(self.patch.weight.shape).to(self.patch.weight))
        self.patch.bias.copy_(solution[-1].to(self.patch.bias))
        # ||XS - Y||² = ΣY² - 2·<S, XᵀY> + <S, XᵀX S>
        residual = squares - 2 * float((solution * xty).sum()) + float((solution * (gram @ solution)).sum())
        return max(residual, 0.0) / (rows * xty.shape[1])

    def init_shortcut(self, conv1_weight: torch.Tensor, mean, std, bayer: str | None) -> None:
        """P from the teacher's patch embedding: P(Ȳ) ≈ conv1((demosaic(Ȳ) - mean) / std).

        The demosaic is the nearest one within each 2×2 colour-filter cell (a colour missing at
        a pixel takes the cell's value of it, G the mean of the cell's two); gray data (no
        ``bayer``) is replicated to the three channels as the teacher does.
        """
        if self.patch is None:
            raise ConfigError("this student has no shortcut (StudentConfig.shortcut is False)")
        weight = conv1_weight.detach().float().cpu()  # (c, 3, p, p)
        size = weight.shape[-1]
        mean = torch.as_tensor(mean, dtype=torch.float32).reshape(3)
        std = torch.as_tensor(std, dtype=torch.float32).reshape(3)
        scaled = weight / std.view(1, 3, 1, 1)
        bias = -(scaled * mean.view(1, 3, 1, 1)).sum(dim=(1, 2, 3))
        if bayer is None:
            kernel = scaled.sum(dim=1, keepdim=True)
        else:
            if size % 2:
                raise ConfigError(f"the shortcut needs an even patch size with a Bayer mosaic, got {size}")
            index = torch.arange(3, dtype=torch.float32).view(1, 1, 3).expand(size, size, 3).contiguous()
            channel = torch.as_tensor(np.asarray(mosaic(index.numpy(), bayer))).round().long()  # (p, p) colour of each pixel
            kernel = torch.zeros(weight.shape[0], 1, size, size)
            for i in range(size):
                for j in range(size):
                    cell = (slice(i - i % 2, i - i % 2 + 2), slice(j - j % 2, j - j % 2 + 2))
                    colour = int(channel[i, j])
                    share = int((channel[cell] == colour).sum())
                    kernel[:, 0, i, j] = scaled[:, colour][(slice(None),) + cell].sum(dim=(1, 2)) / share
        with torch.no_grad():
            self.patch.weight.copy_(kernel.to(self.patch.weight))
            self.patch.bias.copy_(bias.to(self.patch.bias))

    def video_latent(self, meas: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """f(Y, C) of every snapshot of videos ``(N, T, H, W)`` -> ``(N·T, w4, h, w)`` (stage 1 needs no more)."""
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
        return self.latent(flat, masks.to(flat.dtype))

    def forward(self, meas: torch.Tensor, masks: torch.Tensor) -> dict[str, torch.Tensor]:
        """Snapshots ``(N, T, H, W)`` with masks ``(B, H, W)`` or ``(N, B, H, W)``.

        Returns a dict with ``tokens`` (N, T, D), ``f_s`` (N, T, d), ``f_s_conv``
        (N, T, c, h, w) and ``latent`` (N·T, ...).
        """
        count, snapshots = meas.shape[:2] if meas.ndim == 4 else (0, 0)
        latent = self.video_latent(meas, masks)
        ybar = None
        if self.patch is not None:
            flat = meas.reshape((count * snapshots,) + tuple(meas.shape[-2:]))
            masks = masks.to(flat.dtype)
            masks = masks.unsqueeze(0) if masks.ndim == 3 else masks.repeat_interleave(snapshots, dim=0)
            ybar = normalized_measurement(flat, masks)
        conv, embedding = self.features(latent, ybar)
        tokens = self.proj(embedding)
        return {
            "tokens": tokens.reshape(count, snapshots, -1),
            "f_s": embedding.reshape(count, snapshots, -1),
            "f_s_conv": conv.reshape((count, snapshots) + tuple(conv.shape[1:])),
            "latent": latent,
        }
