"""The CACTI camera model: operator, masks, Bayer mosaic, noise and the simulator."""

from __future__ import annotations

from snapcap.cacti.bayer import BayerMosaic, demosaic, from_planes, mosaic, mosaic_adjoint, to_planes
from snapcap.cacti.masks import MaskSpec, load_masks, make_masks
from snapcap.cacti.noise import noise_from_dict, parse_noise
from snapcap.cacti.operator import CactiOperator
from snapcap.cacti.simulate import SimulationResult, simulate, simulate_iter

__all__ = [
    "CactiOperator",
    "BayerMosaic",
    "mosaic",
    "mosaic_adjoint",
    "to_planes",
    "from_planes",
    "demosaic",
    "MaskSpec",
    "make_masks",
    "load_masks",
    "parse_noise",
    "noise_from_dict",
    "simulate",
    "simulate_iter",
    "SimulationResult",
]
