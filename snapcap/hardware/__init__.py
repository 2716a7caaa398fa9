"""Real CACTI rigs: capture drivers, rig emulation and calibration.

* :mod:`snapcap.hardware.captures`: :func:`load_capture` reads the public real-data layouts
  (Qiao et al. 2020 DMD captures, Bayer captures, the benchmark files), snapcap's own files and
  raw camera frames into a :class:`Capture` with a stated normalisation (:data:`LAYOUTS`); the
  containers themselves are sniffed and opened by :mod:`snapcap.files`.
* :mod:`snapcap.hardware.emulate`: :class:`Rig`, a CACTI camera with misregistration, blur,
  shutter duty cycle, clock offset, gain and sensor noise, and :func:`write_capture`, which
  writes its captures in the real layouts.
* :mod:`snapcap.hardware.calibrate`: :func:`calibrate_masks` (masks from white-field frames)
  and :func:`estimate_mismatch` (the rig's parameters from one capture of a known scene).
* ``snapcap capture info|preview`` (:mod:`snapcap.cli.capture`) reads captures through :func:`load_capture`.
"""

from __future__ import annotations

from snapcap.hardware.calibrate import (
    CalibratedMasks,
    MismatchEstimate,
    calibrate_masks,
    calibration_target,
    estimate_mismatch,
    phase_correlation,
)
from snapcap.hardware.captures import (
    LAYOUT_NAMES,
    LAYOUTS,
    Capture,
    Layout,
    MaskRequiredError,
    Normalisation,
    UnknownLayoutError,
    b_from_name,
    detect_layout,
    layouts_table,
    load_capture,
    parse_normalisation,
)
from snapcap.hardware.emulate import (
    WRITE_LAYOUTS,
    PatternPlane,
    Rig,
    WrittenCapture,
    mix_clock,
    write_capture,
    write_dng,
    write_mask_file,
    write_mat_v5,
    write_mat_v73,
)

__all__ = [
    "Capture",
    "Layout",
    "LAYOUTS",
    "LAYOUT_NAMES",
    "Normalisation",
    "parse_normalisation",
    "load_capture",
    "detect_layout",
    "b_from_name",
    "layouts_table",
    "MaskRequiredError",
    "UnknownLayoutError",
    "Rig",
    "PatternPlane",
    "mix_clock",
    "WrittenCapture",
    "WRITE_LAYOUTS",
    "write_capture",
    "write_dng",
    "write_mask_file",
    "write_mat_v5",
    "write_mat_v73",
    "CalibratedMasks",
    "MismatchEstimate",
    "calibrate_masks",
    "calibration_target",
    "estimate_mismatch",
    "phase_correlation",
]
