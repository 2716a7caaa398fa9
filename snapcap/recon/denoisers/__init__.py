"""Denoisers for plug-and-play reconstruction: ``denoise(x, sigma)`` on frames (..., B, H, W).

:class:`~snapcap.recon.denoisers.tv.TVDenoiser` (array API), and the torch networks
:class:`~snapcap.recon.denoisers.ffdnet.FFDNetDenoiser` and
:class:`~snapcap.recon.denoisers.fastdvdnet.FastDVDnetDenoiser` (official checkpoints load).
"""

from snapcap.recon.denoisers.base import Denoiser, Identity
from snapcap.recon.denoisers.tv import TVDenoiser, tv_denoise

__all__ = ["Denoiser", "Identity", "TVDenoiser", "tv_denoise"]
