"""One- against two-stage captioning across compression ratios (``snapcap compare``).

:func:`run_compare` runs a :class:`CompareConfig` (presets in :data:`COMPARE_PRESETS`) with
content-hash caching and resumption; :func:`compare_capture` puts the pipelines side by side on
a real capture. See :mod:`snapcap.compare.run` for what a comparison does.
"""

from snapcap.compare.capture import compare_capture
from snapcap.compare.config import COMPARE_PRESETS, CompareConfig, compare_preset, content_hash
from snapcap.compare.run import Comparison, run_compare

__all__ = ["COMPARE_PRESETS", "CompareConfig", "compare_preset", "content_hash", "Comparison", "run_compare", "compare_capture"]
