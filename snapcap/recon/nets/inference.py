"""Running the published networks on real data: loading once per process, and tiling.

A 512 x 512 capture does not fit every network at once (BIRNAT's attention alone is
((H/2)(W/2))² floats per sample: 16 GiB at 512²). :func:`tiled` reconstructs overlapping
windows and blends them with weights that fall linearly to the window's edges.
"""

from __future__ import annotations

import functools

import torch
from torch import nn

from snapcap.errors import ConfigError, ShapeError
from snapcap.recon.nets.registry import (
    create_net,
    infer_config,
    is_colour,
    load_checkpoint,
    net_config,
    net_entry,
    recorded_config,
)

__all__ = ["parse_config", "cached_net", "window_starts", "tiled"]


def parse_config(text: str) -> dict[str, int]:
    """``"units=2,dim=16"`` -> ``{"units": 2, "dim": 16}`` (integer constructor arguments)."""
    config = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, value = part.partition("=")
        try:
            config[name.strip()] = int(value)
        except ValueError:
            raise ConfigError(f"config {text!r}: expected NAME=INTEGER pairs separated by commas, got {part!r}") from None
    return config


@functools.lru_cache(maxsize=4)
def cached_net(name: str, weights: str, preset: str, config: str, device: str) -> tuple[nn.Module, str, bool]:
    """(network with the checkpoint's weights on ``device``, in eval mode; its preset (or
    name); whether it is the colour variant: Bayer mosaic in, RGB out).

    Without ``config`` the sizes and the colour variant are read from the checkpoint's shapes,
    among ``preset``'s variants when it is given (a preset of another network than ``name`` is
    refused). ``config`` (:func:`parse_config`) gives the constructor arguments of a checkpoint
    of other sizes, over ``preset``'s.
    """
    if preset and net_entry(preset).name != name:
        raise ConfigError(f"preset {preset!r} is a {net_entry(preset).name} preset, not a {name} one")
    net_entry(name)  # an unknown name fails here
    recorded = None if config or preset else recorded_config(weights)
    if recorded is not None:  # trained by snapcap: its constructor keywords are in the file
        preset, arguments = recorded[0] or name, recorded[1]
        if net_entry(preset).name != name:
            raise ConfigError(f"{weights}: a {net_entry(preset).name} checkpoint, not a {name} one")
    elif config:
        preset, arguments = preset or name, net_config(preset or name, **parse_config(config))
    else:
        try:
            preset, arguments = infer_config(name, weights, preset or None)
        except ConfigError as exc:
            raise ConfigError(f"{weights}: {exc}") from None
    net = create_net(name, **arguments)
    load_checkpoint(net, weights, name=preset)
    colour = is_colour(name, **arguments)
    return net.to(device).eval(), preset, colour


def window_starts(length: int, tile: int, overlap: int, align: int = 2) -> list[int]:
    """Start offsets of windows of ``tile`` covering ``length`` with at least ``overlap`` in
    common, each a multiple of ``align`` (the Bayer cell), the last ending at ``length``."""
    if tile >= length:
        return [0]
    stride = max(align, (tile - overlap) // align * align)
    starts = list(range(0, length - tile, stride)) + [length - tile]
    if (length - tile) % align:
        raise ShapeError(f"tile {tile} on a side of {length}: the last window would start off the {align}-pixel grid")
    return sorted(set(starts))


def _ramp(size: int, overlap: int, device) -> torch.Tensor:
    index = torch.arange(size, device=device, dtype=torch.float32)
    edge = float(overlap + 1)
    return torch.clamp(torch.minimum((index + 1) / edge, (size - index) / edge), max=1.0)


def tiled(net: nn.Module, meas: torch.Tensor, masks: torch.Tensor, tile: int, overlap: int) -> torch.Tensor:
    """``net(meas, masks)`` over overlapping ``tile`` x ``tile`` windows (``tile`` 0: at once).

    Args:
        meas: (N, H, W); masks: (B, H, W) or (N, B, H, W).

    Returns:
        The network's output for the whole frame, (N, B, H, W[, 3]).
    """
    height, width = meas.shape[-2:]
    if not tile or (tile >= height and tile >= width):
        return net(meas, masks)
    if tile % 2:
        raise ConfigError(f"tile {tile}: an even size expected (windows start on the Bayer cell grid)")
    rows, cols = window_starts(height, tile, overlap), window_starts(width, tile, overlap)
    total = weights = None
    for top in rows:
        for left in cols:
            h, w = min(tile, height), min(tile, width)
            window = (slice(top, top + h), slice(left, left + w))
            out = net(meas[(..., *window)], masks[(..., *window)]).float()
            if total is None:
                shape = list(out.shape)
                shape[2], shape[3] = height, width
                total = out.new_zeros(shape)
                weights = out.new_zeros((height, width))
            weight = _ramp(h, overlap, out.device)[:, None] * _ramp(w, overlap, out.device)[None, :]
            view = weight if out.ndim == 4 else weight[..., None]
            total[:, :, top : top + h, left : left + w] += out * view
            weights[top : top + h, left : left + w] += weight
    assert total is not None and weights is not None
    return total / (weights if total.ndim == 4 else weights[..., None])
