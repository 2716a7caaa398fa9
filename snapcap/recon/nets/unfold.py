"""A deep unfolding reconstructor (GAP-net family) built on the operator's data step.

Each of K stages does GAP's Euclidean projection onto {x : A x = y} with the closed-form data
step of :mod:`snapcap.cacti.functional` (the same routine GAP-TV uses), then a learned residual
U-Net denoiser that sees the B frames as channels (so it can use motion across them) and the
normalised measurement Ȳ = Y ⊘ Σ_k C_k (and, by default, the masks):

    x⁰ = GAP-TV(y) (or A⁺ y),   x^k = D_k(P(x^{k-1}), Ȳ),   P(z) = z + Aᵀ((y − A z) ⊘ D).

The initial estimate x⁰ is, by default, ``init_iterations`` iterations of accelerated GAP-TV
(snapcap's TV step: anisotropic Chambolle, weight ``tv_weight``, 3 iterations), computed without
gradients: it has no parameter. Each denoiser's last convolution starts at zero, so an untrained
network already returns (the projection of) the GAP-TV estimate, and training only has to learn
what GAP-TV misses; starting from A⁺y instead (``init_iterations = 0``, the first version of this
network) needs many more training steps to reach GAP-TV's quality.

Trained end to end on simulated snapshots with an L1 loss on every stage (Meng, Jalali, Yuan,
"GAP-net"). Frames are mosaic/gray ``(N, B, H, W)``; RGB data is reconstructed as its Bayer
mosaic and then demosaicked by the caller.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

from snapcap.cacti import functional as F
from snapcap.errors import ConfigError, ShapeError
from snapcap.recon.denoisers.tv import tv_denoise

__all__ = ["UnfoldConfig", "UNFOLD_PRESETS", "LEGACY_FIELDS", "UnfoldingNet"]


@dataclass(frozen=True)
class UnfoldConfig:
    """Architecture of :class:`UnfoldingNet`.

    Attributes:
        B: frames per snapshot the network is built for.
        stages: number of unfolded (projection, denoiser) stages.
        features: channels of the first U-Net level (doubled at each of ``levels``).
        levels: U-Net down-sampling levels (H and W must be multiples of 2**levels; inputs
            are padded otherwise).
        share_weights: one denoiser for every stage (fewer parameters) or one per stage.
        init_iterations: GAP-TV iterations of the initial estimate (0: A⁺y).
        tv_weight: the TV weight of those iterations (anisotropic Chambolle, 3 iterations).
        mask_input: the denoisers also see the B masks (which pixel each frame's measurement
            covers), as channels.
    """

    B: int = 8
    stages: int = 4
    features: int = 16
    levels: int = 2
    share_weights: bool = False
    init_iterations: int = 40
    tv_weight: float = 0.1
    mask_input: bool = True

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> UnfoldConfig:
        """The config of a checkpoint; fields it predates take the values of the first version (A⁺y start)."""
        return cls(**{**LEGACY_FIELDS, **data})


LEGACY_FIELDS = {"init_iterations": 0, "tv_weight": 0.1, "mask_input": False}
"""Values of the fields added after the first checkpoints were written (they started from A⁺y)."""

INIT_TV_ITERATIONS = 3


UNFOLD_PRESETS = {
    "tiny": UnfoldConfig(stages=3, features=16, levels=2),
    "small": UnfoldConfig(stages=5, features=32, levels=2),
    "paper": UnfoldConfig(stages=10, features=32, levels=3),
}


def _block(channels_in: int, channels_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(channels_in, channels_out, 3, padding=1),
        nn.LeakyReLU(0.1, inplace=True),
        nn.Conv2d(channels_out, channels_out, 3, padding=1),
        nn.LeakyReLU(0.1, inplace=True),
    )


class StageDenoiser(nn.Module):
    """Residual U-Net over the B frames (as channels) plus the normalised measurement."""

    def __init__(self, frames: int, features: int, levels: int, mask_input: bool = False):
        super().__init__()
        self.head = _block(2 * frames + 1 if mask_input else frames + 1, features)
        self.down = nn.ModuleList()
        self.up = nn.ModuleList()
        self.merge = nn.ModuleList()
        width = features
        for _ in range(levels):
            self.down.append(
                nn.Sequential(
                    nn.Conv2d(width, 2 * width, 3, stride=2, padding=1),
                    nn.LeakyReLU(0.1, inplace=True),
                    _block(2 * width, 2 * width),
                )
            )
            width *= 2
        for _ in range(levels):
            self.up.append(nn.ConvTranspose2d(width, width // 2, 2, stride=2))
            self.merge.append(_block(width, width // 2))
            width //= 2
        self.tail = nn.Conv2d(features, frames, 3, padding=1)
        nn.init.zeros_(self.tail.weight)
        nn.init.zeros_(self.tail.bias)

    def forward(self, frames: torch.Tensor, ybar: torch.Tensor, masks: torch.Tensor | None = None) -> torch.Tensor:
        inputs = [frames, ybar[:, None]] if masks is None else [frames, ybar[:, None], masks]
        skips = [self.head(torch.cat(inputs, dim=1))]
        for down in self.down:
            skips.append(down(skips[-1]))
        out = skips.pop()
        for up, merge in zip(self.up, self.merge):
            out = merge(torch.cat([up(out), skips.pop()], dim=1))
        return frames + self.tail(out)


class UnfoldingNet(nn.Module):
    """K × (GAP projection, learned denoiser); see the module docstring."""

    def __init__(self, config: UnfoldConfig = UnfoldConfig()):
        super().__init__()
        if (
            config.stages < 1
            or config.features < 1
            or config.levels < 0
            or config.B < 1
            or config.init_iterations < 0
            or not config.tv_weight >= 0
        ):
            raise ConfigError(f"invalid unfolding configuration {config}")
        self.config = config
        count = 1 if config.share_weights else config.stages
        self.denoisers = nn.ModuleList(
            StageDenoiser(config.B, config.features, config.levels, config.mask_input) for _ in range(count)
        )

    @torch.no_grad()
    def initial_estimate(self, meas: torch.Tensor, masks: torch.Tensor, diag: torch.Tensor) -> torch.Tensor:
        """x⁰: ``init_iterations`` of accelerated GAP-TV from Aᵀy, or A⁺y when there are none.

        y_acc ← y_acc + (y − A x);  x ← x + Aᵀ((y_acc − A x) ⊘ D);  x ← TV(x), as :func:`snapcap.recon.solvers.gap`.
        """

        if self.config.init_iterations == 0:
            return F.dagger(meas, masks, diag)
        x = F.adjoint(meas, masks)
        accumulated = torch.zeros_like(meas)
        for _ in range(self.config.init_iterations):
            forward = F.forward(x, masks)
            accumulated = accumulated + (meas - forward)
            x = x + F.adjoint(F.safe_divide(accumulated - forward, diag), masks)
            x = tv_denoise(x, self.config.tv_weight, INIT_TV_ITERATIONS, isotropic=False)
        return x

    def forward(self, meas: torch.Tensor, masks: torch.Tensor, return_stages: bool = False, initial: torch.Tensor | None = None):
        """Reconstruct mosaic/gray frames.

        Args:
            meas: ``(N, H, W)`` snapshots.
            masks: ``(B, H, W)`` shared or ``(N, B, H, W)`` per sample, same device/dtype.
            return_stages: also return every stage's estimate (for deep supervision).
            initial: ``(N, B, H, W)``, the initial estimate x⁰ when already computed (training
                caches :meth:`initial_estimate` of whole snapshots and crops it).

        Returns:
            ``(N, B, H, W)`` frames (and the list of stage outputs).
        """
        if meas.ndim != 3:
            raise ShapeError(f"meas must have shape (N, H, W), got {tuple(meas.shape)}")
        if masks.shape[-3] != self.config.B:
            raise ShapeError(f"this network was built for B={self.config.B}; masks have B={masks.shape[-3]}")
        if tuple(masks.shape[-2:]) != tuple(meas.shape[-2:]):
            raise ShapeError(f"masks {tuple(masks.shape)} and measurement {tuple(meas.shape)} differ in size")
        multiple = 2**self.config.levels
        height, width = meas.shape[-2:]
        pad_h, pad_w = (-height) % multiple, (-width) % multiple
        if initial is not None and tuple(initial.shape) != (meas.shape[0], self.config.B) + tuple(meas.shape[-2:]):
            raise ShapeError(
                f"initial must have shape {(meas.shape[0], self.config.B) + tuple(meas.shape[-2:])}, got {tuple(initial.shape)}"
            )
        if pad_h or pad_w:  # pad with zero measurement and closed masks: the data step ignores them
            meas = nn.functional.pad(meas, (0, pad_w, 0, pad_h))
            masks = nn.functional.pad(masks, (0, pad_w, 0, pad_h))
            if initial is not None:
                initial = nn.functional.pad(initial, (0, pad_w, 0, pad_h))
        masks = masks.to(meas.dtype)
        if masks.ndim == 3:
            masks = masks.expand(meas.shape[0], *masks.shape)
        diag = F.aat_diag(masks)
        ybar = F.safe_divide(meas, masks.sum(dim=-3))
        x = self.initial_estimate(meas, masks, diag) if initial is None else initial.to(meas.dtype)
        stages = []
        for index in range(self.config.stages):
            x = F.prox_l2(x, meas, masks, diag, math.inf)
            x = self.denoisers[0 if self.config.share_weights else index](x, ybar, masks if self.config.mask_input else None)
            stages.append(x[..., :height, :width])
        out = x[..., :height, :width]
        return (out, stages) if return_stages else out
