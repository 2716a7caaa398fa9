"""BIRNAT: a bidirectional recurrent reconstructor for video snapshot compressive imaging.

Cheng, Lu, Wang, Zhang, Chen, Meng, Yuan, "BIRNAT: Bidirectional Recurrent Neural Networks with
Adversarial Training for Video Snapshot Compressive Imaging", ECCV 2020 (extended as "Recurrent
Neural Networks for Snapshot Compressive Imaging", TPAMI 2022).

The network reconstructs the B frames of a snapshot one after the other:

1. the normalised measurement ``Ȳ = Y ⊘ Φ_s`` (``Φ_s = Σ_k C_k`` with zeros set to 1) and the B
   products ``C_k ⊙ Ȳ`` go through a CNN with residual blocks and a feature-map self-attention
   (``first_frame_net``), which returns the first frame;
2. a forward RNN (``forward_rnn``) predicts frames 2..B. At step t its input is Ȳ and the
   measurement residual ``Y − Σ_{k≤t} C_k ⊙ x_k − Σ_{k>t+1} C_k ⊙ Ȳ`` (frames not yet
   reconstructed are stood in for by Ȳ), the previous frame and the hidden state;
3. a backward RNN (``backrnn``) starts from the forward RNN's last frame and hidden state and
   re-predicts frames B−1..1 the same way, in reverse order. Its B frames are the output.

This is our own implementation of the network of the CACTI toolbox (``ucaswangls/cacti``,
``cacti/models/birnat.py``), which wraps the three networks of the authors' code
(``BoChenGroup/BIRNAT``, ``models.py``: ``cnn1``, ``forward_rnn``, ``backrnn``) as submodules.
Submodule names, parameter shapes and the order of every floating-point operation are those of
that code, so toolbox checkpoints load with ``strict=True`` and give the same output (to float
rounding); :func:`state_dict_from_original` maps the authors' three state dicts to ours.

Constraints (all from the official code):

* B is baked into the network (``first_frame_net`` takes B+1 channels): ``in_ch = B + 1``.
* Grayscale (or Bayer mosaic treated as gray) only; the toolbox has no colour BIRNAT.
* H and W must be even (a stride-2 convolution is undone by a transposed convolution with
  ``output_padding=1``). The official code also needs H == W (it allocates ``block_size²``
  buffers); ours accepts H != W and agrees with it on square inputs.
* The self-attention of ``first_frame_net`` works on all (H/2)·(W/2) positions at once: it
  holds an ((H/2)·(W/2))² matrix per sample (1 GiB in float32 at 256×256, 16 GiB at 512×512).
  The official models were trained and tested on 256×256 crops.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn
from torch.nn import functional as F

from snapcap.errors import ConfigError, ShapeError

__all__ = [
    "BIRNAT",
    "PRESETS",
    "PAPER_PARAMETERS",
    "PARAMETER_SOURCE",
    "OPTIONAL_KEYS",
    "TRAINING_RECIPES",
    "state_dict_from_original",
]

# Sizes of the released models: B = 8 frames, so first_frame_net takes in_ch = B + 1 = 9 channels
# (cacti configs/BIRNAT/birnat.py builds BIRNAT() with its default in_ch=8+1; BoChenGroup/BIRNAT
# test.py builds cnn1(compress_rate + 1) with compress_rate = 8, block_size = 256).
PRESETS: dict[str, dict[str, int]] = {"birnat": {"in_ch": 9}}

# Parameters in millions. 4.13 M is what the Q-SCI paper's comparison table lists for BIRNAT
# (Cao et al., "A Simple Low-bit Quantization Framework for Video Snapshot Compressive Imaging",
# ECCV 2024, arXiv:2407.21517: BIRNAT 33.31 dB / 0.951, 4.13 M params, 390.56 G OPs); the
# official code has 4,131,640 parameters (first_frame_net 3,367,138 + 2 × 382,251).
PAPER_PARAMETERS: dict[str, float] = {"birnat": 4.13}
PARAMETER_SOURCE = (
    "Q-SCI (Cao et al., ECCV 2024, arXiv:2407.21517) comparison table: BIRNAT 4.13 M parameters, 390.56 G OPs "
    "(read through a paper summary of that table; the ECCV 2020 BIRNAT paper's own count was not checked); "
    "equals the 4,131,640 parameters of the official code (ucaswangls/cacti cacti/models/birnat.py)"
)

# Every key of the official state dict is required: the network has no buffers or optional parts.
OPTIONAL_KEYS: tuple[str, ...] = ()

TRAINING_RECIPES: dict[str, dict] = {
    "birnat": {
        # The authors' recipe (BoChenGroup/BIRNAT train.py and train_at.py, readme.md).
        "loss": "0.5 * MSE(forward RNN frames, gt) + 0.5 * MSE(backward RNN frames, gt) + 0.001 * adversarial",
        "adversarial": (
            "train_at.py: GAN_stability ResNet discriminator Discriminator(8, 1, 256, 64, 1024) on the B frames as "
            "channels; generator term binary_cross_entropy_with_logits(D(backward frames), 1) weighted 0.001; the "
            "discriminator step uses BCE on real clips plus an R1 gradient penalty of weight 10 (its fake-clip term "
            "is commented out); train.py is the same recipe without the adversarial term"
        ),
        "optimizer": "Adam (default betas), generator and discriminator alike; re-created at every epoch",
        "lr": 3e-4,
        "lr_schedule": "multiply by 0.95 every 5 epochs",
        "epochs": 100,
        "batch_size": 3,
        "crop_size": 256,
        "frames": 8,
        "data": (
            "DAVIS 2017 480p, luminance (Y of YCbCr), 256×256×8 blocks with the largest temporal variance on a "
            "stride-128 grid, plus augmentation: about 26,000 pairs (train/data_generation.m); measurements / 255"
        ),
        "mask": "one fixed 256×256×8 binary mask (train/mask.mat, identical to cacti test_datasets/mask/mask.mat)",
        "source": "github.com/BoChenGroup/BIRNAT train.py, train_at.py, gan_resnet.py, readme.md",
        "toolbox": {
            # The CACTI toolbox re-training recipe: no adversarial term, only the final output is supervised.
            "loss": "sqrt(MSELoss(backward RNN frames, gt)) (RMSE on outputs[-1] only; no GAN, no forward-RNN term)",
            "optimizer": "Adam",
            "lr": 1e-4,
            "lr_schedule": None,
            "epochs": 120,
            "batch_size": 1,
            "crop_size": 256,
            "frames": 8,
            "data": "DAVIS 2017 blocks generated as above (BirnatDavisData), mask test_datasets/mask/mask.mat",
            "source": (
                "github.com/ucaswangls/cacti configs/BIRNAT/birnat.py, configs/_base_/default_runtime.py, "
                "configs/_base_/birnat_davis.py, tools/train.py"
            ),
        },
    }
}

_HIDDEN_CHANNELS = 20  # channels of the RNN hidden state (h0 in the official code)


class SelfAttention(nn.Module):
    """Self-attention over feature-map positions (the official ``self_attention``).

    Args:
        ch: feature channels (a multiple of 8).
    """

    def __init__(self, ch: int):
        super().__init__()
        self.conv1 = nn.Conv2d(ch, ch // 8, 1)
        self.conv2 = nn.Conv2d(ch, ch // 8, 1)
        self.conv3 = nn.Conv2d(ch, ch, 1)
        self.conv4 = nn.Conv2d(ch, ch, 1)
        self.gamma1 = nn.Parameter(torch.zeros(1))
        self.ch = ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``x + γ · conv4(attention(x))`` for features ``x`` of shape (N, C, h, w)."""
        batch = x.shape[0]
        query = self.conv1(x).reshape(batch, self.ch // 8, -1)
        key = self.conv2(x).reshape(batch, self.ch // 8, -1)
        value = self.conv3(x).reshape(batch, self.ch, -1)
        weights = F.softmax(torch.matmul(query.permute(0, 2, 1), key), dim=-1)
        attended = torch.matmul(value, weights).reshape(x.shape)
        return self.gamma1 * self.conv4(attended) + x


def _residual_branch(in_ch: int, out_ch: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_ch, in_ch, 3, padding=1),
        nn.LeakyReLU(inplace=True),
        nn.Conv2d(in_ch, out_ch, 1),
        nn.LeakyReLU(inplace=True),
        nn.Conv2d(in_ch, in_ch, 3, padding=1),
    )


class ResPart(nn.Module):
    """Three residual blocks in a row (the official ``res_part``; ``in_ch == out_ch`` in use)."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.conv1 = _residual_branch(in_ch, out_ch)
        self.conv2 = _residual_branch(in_ch, out_ch)
        self.conv3 = _residual_branch(in_ch, out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply ``x ← branch(x) + x`` for the three branches."""
        x = self.conv1(x) + x
        x = self.conv2(x) + x
        return self.conv3(x) + x


class DownFeature(nn.Module):
    """Feature extractor of the previous frame (the official ``down_feature``)."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(in_ch, 20, 5, stride=1, padding=2),
            nn.Conv2d(20, 20, 1),
            nn.LeakyReLU(inplace=True),
            nn.Conv2d(20, 20, 3, stride=1, padding=1),
            nn.Conv2d(20, 40, 1),
            nn.LeakyReLU(inplace=True),
            nn.Conv2d(40, out_ch, 3, stride=1, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map a (N, in_ch, H, W) frame to (N, out_ch, H, W) features."""
        return self.conv(x)


class UpFeature(nn.Module):
    """Frame decoder of the RNN state (the official ``up_feature``)."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(in_ch, 40, 3, stride=1, padding=1),
            nn.Conv2d(40, 30, 1),
            nn.LeakyReLU(inplace=True),
            nn.Conv2d(30, 20, 3, stride=1, padding=1),
            nn.Conv2d(20, 20, 1),
            nn.LeakyReLU(inplace=True),
            nn.Conv2d(20, 20, 3, padding=1),
            nn.Conv2d(20, out_ch, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map (N, in_ch, H, W) features to an (N, out_ch, H, W) frame."""
        return self.conv(x)


class FirstFrameNet(nn.Module):
    """CNN that reconstructs the first frame (the official ``cnn1``).

    Args:
        in_ch: input channels, B + 1 (Ȳ and the B products C_k ⊙ Ȳ).
    """

    def __init__(self, in_ch: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, 32, kernel_size=5, stride=1, padding=2)
        self.relu1 = nn.LeakyReLU(inplace=True)
        self.conv2 = nn.Conv2d(32, 64, kernel_size=3, stride=1, padding=1)
        self.relu2 = nn.LeakyReLU(inplace=True)
        self.conv3 = nn.Conv2d(64, 64, kernel_size=1, stride=1)
        self.relu3 = nn.LeakyReLU(inplace=True)
        self.conv4 = nn.Conv2d(64, 128, kernel_size=3, stride=2, padding=1)
        self.relu4 = nn.LeakyReLU(inplace=True)
        self.conv5 = nn.ConvTranspose2d(128, 64, kernel_size=3, stride=2, padding=1, output_padding=1)
        self.relu5 = nn.LeakyReLU(inplace=True)
        self.conv51 = nn.Conv2d(64, 32, kernel_size=3, stride=1, padding=1)
        self.relu51 = nn.LeakyReLU(inplace=True)
        self.conv52 = nn.Conv2d(32, 16, kernel_size=1, stride=1)
        self.relu52 = nn.LeakyReLU(inplace=True)
        self.conv6 = nn.Conv2d(16, 1, kernel_size=3, stride=1, padding=1)
        self.res_part1 = ResPart(128, 128)
        self.res_part2 = ResPart(128, 128)
        self.res_part3 = ResPart(128, 128)
        self.conv7 = nn.Conv2d(128, 128, kernel_size=3, stride=1, padding=1)
        self.relu7 = nn.LeakyReLU(inplace=True)
        self.conv8 = nn.Conv2d(128, 128, kernel_size=1, stride=1)
        self.conv9 = nn.Conv2d(128, 128, kernel_size=3, stride=1, padding=1)
        self.relu9 = nn.LeakyReLU(inplace=True)
        self.conv10 = nn.Conv2d(128, 128, kernel_size=1, stride=1)
        self.att1 = SelfAttention(128)

    def forward(self, mask: torch.Tensor, meas_re: torch.Tensor) -> torch.Tensor:
        """First frame from the masks and the normalised measurement.

        Args:
            mask: (B, H, W) masks.
            meas_re: (N, 1, H, W) normalised measurement Ȳ.

        Returns:
            (N, 1, H, W) first frame.
        """
        batch = meas_re.shape[0]
        masked = mask.expand(batch, *mask.shape).mul(meas_re)
        out = self.relu1(self.conv1(torch.cat([meas_re, masked], dim=1)))
        out = self.relu2(self.conv2(out))
        out = self.relu3(self.conv3(out))
        out = self.relu4(self.conv4(out))
        out = self.res_part1(out)
        out = self.conv8(self.relu7(self.conv7(out)))
        out = self.res_part2(out)
        out = self.conv10(self.relu9(self.conv9(out)))
        out = self.res_part3(out)
        out = self.att1(out)
        out = self.relu5(self.conv5(out))
        out = self.relu51(self.conv51(out))
        out = self.relu52(self.conv52(out))
        return self.conv6(out)


class _RecurrentStep(nn.Module):
    """Layers shared by the forward and the backward RNN (same names and shapes in both)."""

    def __init__(self):
        super().__init__()
        self.extract_feature1 = DownFeature(1, 20)
        self.up_feature1 = UpFeature(50, 1)
        self.conv_x = nn.Sequential(
            nn.Conv2d(2, 20, 5, stride=1, padding=2),
            nn.Conv2d(20, 20, 1),
            nn.LeakyReLU(inplace=True),
            nn.Conv2d(20, 80, 3, stride=2, padding=1),
            nn.Conv2d(80, 40, 1),
            nn.LeakyReLU(inplace=True),
            nn.Conv2d(40, 40, 3, stride=1, padding=1),
            nn.LeakyReLU(inplace=True),
            nn.ConvTranspose2d(40, 10, kernel_size=3, stride=2, padding=1, output_padding=1),
        )
        self.h_h = nn.Sequential(
            nn.Conv2d(50, 30, 3, padding=1),
            nn.Conv2d(30, 20, 1),
            nn.LeakyReLU(inplace=True),
            nn.Conv2d(20, 20, 3, padding=1),
        )
        self.res_part1 = ResPart(50, 50)
        self.res_part2 = ResPart(50, 50)

    def step(
        self,
        residual: torch.Tensor,
        meas_re: torch.Tensor,
        previous: torch.Tensor,
        hidden: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One RNN step.

        Args:
            residual: (N, H, W) measurement minus the masked frames already known or stood in for.
            meas_re: (N, 1, H, W) normalised measurement Ȳ.
            previous: (N, 1, H, W) previous frame.
            hidden: (N, 20, H, W) hidden state.

        Returns:
            The new (N, 1, H, W) frame and (N, 20, H, W) hidden state.
        """
        x1 = self.conv_x(torch.cat([meas_re, residual.unsqueeze(1)], dim=1))
        x2 = self.extract_feature1(previous)
        state = torch.cat([hidden, x1, x2], dim=1)
        state = self.res_part1(state)
        state = self.res_part2(state)
        hidden = self.h_h(state)
        return self.up_feature1(state), hidden


def _masked_sum(mask: torch.Tensor, frames: list[torch.Tensor], order: range, template: torch.Tensor) -> torch.Tensor:
    """``0 + Σ_k mask[k] ⊙ frames[k]`` over ``order``, added in that order (as the official loops do)."""
    total = torch.zeros_like(template)
    for k in order:
        total = total + torch.mul(mask[k], frames[k])
    return total


class ForwardRNN(_RecurrentStep):
    """Forward RNN: frames 2..B from the first frame (the official ``forward_rnn``)."""

    def forward(
        self,
        xt1: torch.Tensor,
        meas: torch.Tensor,
        mask: torch.Tensor,
        h: torch.Tensor,
        meas_re: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Run the B − 1 forward steps.

        Args:
            xt1: (N, 1, H, W) first frame.
            meas: (N, H, W) measurement Y.
            mask: (B, H, W) masks.
            h: (N, 20, H, W) initial hidden state.
            meas_re: (N, 1, H, W) normalised measurement Ȳ.

        Returns:
            The (N, B, H, W) frames and the last (N, 20, H, W) hidden state.
        """
        frames = mask.shape[0]
        stand_in = [meas_re[:, 0]] * frames  # Ȳ stands in for the frames not yet reconstructed
        outputs = [xt1]
        known: list[torch.Tensor] = [xt1[:, 0]]
        previous, hidden = xt1, h
        for i in range(frames - 1):
            done = _masked_sum(mask, known, range(i + 1), meas)
            ahead = _masked_sum(mask, stand_in, range(i + 2, frames), meas)
            previous, hidden = self.step(meas - done - ahead, meas_re, previous, hidden)
            outputs.append(previous)
            known.append(previous[:, 0])
        return torch.cat(outputs, dim=1), hidden


class BackwardRNN(_RecurrentStep):
    """Backward RNN: frames B−1..1 from the forward RNN's last frame (the official ``backrnn``)."""

    def forward(
        self,
        xt8: torch.Tensor,
        meas: torch.Tensor,
        mask: torch.Tensor,
        h: torch.Tensor,
        meas_re: torch.Tensor,
    ) -> torch.Tensor:
        """Run the B − 1 backward steps.

        Args:
            xt8: (N, B, H, W) forward RNN frames (only the last one is used).
            meas: (N, H, W) measurement Y.
            mask: (B, H, W) masks.
            h: (N, 20, H, W) forward RNN's last hidden state.
            meas_re: (N, 1, H, W) normalised measurement Ȳ.

        Returns:
            The (N, B, H, W) frames.
        """
        frames = mask.shape[0]
        stand_in = [meas_re[:, 0]] * frames
        previous, hidden = xt8[:, frames - 1 : frames], h
        known: list[torch.Tensor | None] = [None] * frames
        known[frames - 1] = previous[:, 0]
        for i in range(frames - 1):
            done = _masked_sum(mask, known, range(frames - 1, frames - 2 - i, -1), meas)
            ahead = _masked_sum(mask, stand_in, range(frames - 3 - i, -1, -1), meas)
            previous, hidden = self.step(meas - done - ahead, meas_re, previous, hidden)
            known[frames - 2 - i] = previous[:, 0]
        return torch.stack(known, dim=1)


class BIRNAT(nn.Module):
    """BIRNAT video SCI reconstructor, numerically the CACTI toolbox's ``BIRNAT``.

    Args:
        in_ch: input channels of ``first_frame_net``, B + 1 (the toolbox's argument; default 9, B = 8).
        color_ch: 1 only: BIRNAT is a grayscale network (RGB data must be reconstructed as its
            Bayer mosaic); any other value raises :class:`~snapcap.errors.ConfigError`.

    Attributes:
        first_frame_net: CNN for the first frame (official ``cnn1``).
        forward_rnn: forward RNN (official ``forward_rnn``).
        backrnn: backward RNN (official ``backrnn``), whose frames are the output.
    """

    def __init__(self, in_ch: int = 8 + 1, *, color_ch: int = 1):
        super().__init__()
        if isinstance(in_ch, bool) or not isinstance(in_ch, int) or in_ch < 3:
            raise ConfigError(f"BIRNAT in_ch must be an int B + 1 >= 3 (B >= 2 frames), got {in_ch!r}")
        if color_ch != 1:
            raise ConfigError(
                f"BIRNAT is grayscale only (the official code has no colour variant); got color_ch={color_ch!r}. "
                "Reconstruct RGB data as its Bayer mosaic with color_ch=1."
            )
        self.first_frame_net = FirstFrameNet(in_ch)
        self.forward_rnn = ForwardRNN()
        self.backrnn = BackwardRNN()

    @property
    def frames(self) -> int:
        """B, the number of frames per snapshot the network is built for."""
        return self.first_frame_net.conv1.in_channels - 1

    def _check_masks(self, shape: tuple[int, ...], name: str) -> None:
        if shape[-3] != self.frames:
            raise ShapeError(f"BIRNAT was built for B={self.frames} frames (in_ch={self.frames + 1}); {name} has B={shape[-3]}")
        height, width = shape[-2:]
        if height % 2 or width % 2:
            raise ShapeError(f"BIRNAT needs even H and W (stride-2 layers); {name} is {height}x{width}")

    def forward_official(self, y: torch.Tensor, Phi: torch.Tensor, Phi_s: torch.Tensor) -> list[torch.Tensor]:
        """The toolbox's forward: ``[forward RNN frames, backward RNN frames]``.

        Every sample uses the masks of sample 0 (``Phi[0]``), as in the official code.

        Args:
            y: (N, 1, H, W) measurements, unscaled (Σ_k C_k ⊙ x_k with frames in [0, 1]).
            Phi: (N, B, H, W) masks (the toolbox repeats one mask set over the batch).
            Phi_s: (N, 1, H, W) or (1, 1, H, W) ``Σ_k C_k`` with zeros set to 1.

        Returns:
            ``[out_forward, out_backward]``, each (N, B, H, W); the toolbox's test and training
            scripts use ``outputs[-1]``.

        Raises:
            ShapeError: wrong number of axes, another B than the network's, or odd H or W.
        """
        if y.ndim != 4 or y.shape[1] != 1:
            raise ShapeError(f"y must have shape (N, 1, H, W), got {tuple(y.shape)}")
        if Phi.ndim != 4 or tuple(Phi.shape[-2:]) != tuple(y.shape[-2:]):
            raise ShapeError(f"Phi must have shape (N, B, H, W) matching y {tuple(y.shape)}, got {tuple(Phi.shape)}")
        self._check_masks(tuple(Phi.shape), "Phi")
        meas_re = torch.div(y, Phi_s)
        meas = y.squeeze(1)
        mask = Phi[0]
        h0 = meas.new_zeros(meas.shape[0], _HIDDEN_CHANNELS, *meas.shape[-2:])
        xt1 = self.first_frame_net(mask, meas_re)
        out_forward, h1 = self.forward_rnn(xt1, meas, mask, h0, meas_re)
        out_backward = self.backrnn(out_forward, meas, mask, h1, meas_re)
        return [out_forward, out_backward]

    def forward(self, meas: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """Reconstruct grayscale frames.

        Args:
            meas: (N, H, W) snapshots, unscaled (Σ_k C_k ⊙ x_k with frames in [0, 1]), as the
                official test script feeds them.
            masks: (B, H, W) shared or (N, B, H, W) per-sample masks. Samples whose masks differ
                are run one at a time (the official forward uses one mask set per batch).

        Returns:
            (N, B, H, W) frames: the backward RNN's output, in the network's dtype.

        Raises:
            ShapeError: wrong number of axes, sizes that do not agree, another B than the
                network's, or odd H or W.
        """
        if meas.ndim != 3:
            hint = " (BIRNAT is grayscale only)" if meas.ndim == 4 and meas.shape[-1] == 3 else ""
            raise ShapeError(f"meas must have shape (N, H, W), got {tuple(meas.shape)}{hint}")
        if masks.ndim not in (3, 4):
            raise ShapeError(f"masks must have shape (B, H, W) or (N, B, H, W), got {tuple(masks.shape)}")
        if tuple(masks.shape[-2:]) != tuple(meas.shape[-2:]):
            raise ShapeError(f"masks {tuple(masks.shape)} and meas {tuple(meas.shape)} differ in H, W")
        if masks.ndim == 4 and masks.shape[0] != meas.shape[0]:
            raise ShapeError(f"masks {tuple(masks.shape)} and meas {tuple(meas.shape)} differ in N")
        self._check_masks(tuple(masks.shape), "masks")
        dtype = self.first_frame_net.conv1.weight.dtype
        meas = meas.to(dtype)
        masks = masks.to(dtype)
        if masks.ndim == 3:
            masks = masks.unsqueeze(0)
        elif bool((masks == masks[:1]).all()):
            masks = masks[:1]
        y = meas.unsqueeze(1)
        phi_s = _mask_sum(masks)
        if masks.shape[0] == 1:
            return self.forward_official(y, masks, phi_s)[-1]
        return torch.cat([self.forward_official(y[n : n + 1], masks[n : n + 1], phi_s[n : n + 1])[-1] for n in range(y.shape[0])])


def _mask_sum(masks: torch.Tensor) -> torch.Tensor:
    """``Φ_s = Σ_k C_k`` of (N, B, H, W) masks as (N, 1, H, W), summed in frame order, zeros set to 1."""
    total = masks[:, 0]
    for k in range(1, masks.shape[1]):
        total = total + masks[:, k]
    return torch.where(total == 0, torch.ones_like(total), total).unsqueeze(1)


def state_dict_from_original(
    first_frame_net_sd: Mapping[str, torch.Tensor],
    rnn1_sd: Mapping[str, torch.Tensor],
    rnn2_sd: Mapping[str, torch.Tensor],
) -> dict[str, torch.Tensor]:
    """Our (toolbox) state dict from the state dicts of the authors' three networks.

    BoChenGroup/BIRNAT saves ``cnn1``, ``forward_rnn`` and ``backrnn`` as three whole pickled
    modules (``first_frame_net_model_epoch_100.pth``, ``rnn1_...``, ``rnn2_...``); unpickling them
    needs the authors' ``models`` module and is not done here. Their ``state_dict()`` s are the
    toolbox's submodules ``first_frame_net``, ``forward_rnn`` and ``backrnn`` under the same names,
    so the mapping is a prefix.

    Args:
        first_frame_net_sd: ``state_dict()`` of the original ``cnn1`` (``first_frame_net``).
        rnn1_sd: ``state_dict()`` of the original ``forward_rnn`` (``rnn1``).
        rnn2_sd: ``state_dict()`` of the original ``backrnn`` (``rnn2``).

    Returns:
        A state dict that :class:`BIRNAT` loads with ``strict=True``.
    """
    mapped: dict[str, torch.Tensor] = {}
    for prefix, state in (("first_frame_net.", first_frame_net_sd), ("forward_rnn.", rnn1_sd), ("backrnn.", rnn2_sd)):
        for key, value in state.items():
            mapped[prefix + key.removeprefix("module.")] = value
    return mapped
