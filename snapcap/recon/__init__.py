"""Reconstruction of video frames from CACTI snapshots: ``reconstruct(y, op, method)``.

Methods (see :data:`snapcap.recon.api.METHODS`): ``gap-tv``, ``admm-tv``, ``pnp-ffdnet``,
``pnp-fastdvdnet`` and the trained ``unfold`` network; metrics in :mod:`snapcap.recon.metrics`.
"""

from snapcap.recon.api import METHODS, ReconResult, list_methods, make_params, reconstruct
from snapcap.recon.metrics import mean_psnr, mean_ssim, psnr, ssim

__all__ = ["reconstruct", "make_params", "list_methods", "METHODS", "ReconResult", "psnr", "ssim", "mean_psnr", "mean_ssim"]
