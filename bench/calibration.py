"""Calibration benchmark: recover a rig's mismatch, and what it buys in reconstruction.

An emulated DMD rig (default 256 x 256, B = 8, mirror 7.56 µm on 3.45 µm pixels, 10-bit ADC
with shot and read noise) is misregistered and imperfect:

    dx = 0.6 px, dy = -0.4 px, rotation 0.3°, blur σ = 0.5 px, shutter duty cycle 0.9,
    clock offset 0.1 pattern period (sequence looping).

Two calibrations:

  estimated  estimate_mismatch: one capture of a known moving target (calibration_target,
             2 snapshots) fitted with the warped nominal pattern -> parameters -> masks
  measured   calibrate_masks: 16 white-field frames per pattern window, averaged

Then a moving test scene (the first 16 frames of gray_benchmark/drop40_cacti.mat `orig` when
the shared data is present, cropped/resized to the rig; otherwise the synthetic demo video) is
captured through the true effective masks and reconstructed with GAP-TV
(snapcap.recon.api.reconstruct, defaults) using the true, estimated, measured and nominal masks.

Targets (also checked at 64 x 64 in tests/test_hardware.py): every parameter within its
tolerance (dx, dy 0.05 px; rotation 0.05°; blur 0.1 px; duty cycle 0.02; clock offset 0.03),
calibrated masks within 0.5 dB of the true masks, nominal masks several dB worse.

Usage: python bench/calibration.py [--size 256] [--source dmd|piezo] [--data FOLDER]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

from snapcap.hardware import Rig, calibrate_masks, calibration_target, estimate_mismatch
from snapcap.recon.api import reconstruct
from snapcap.recon.metrics import psnr

MISMATCH = {"dx": 0.6, "dy": -0.4, "rotation": 0.3, "blur": 0.5, "duty_cycle": 0.9, "clock_offset": 0.1}
TOLERANCE = {"dx": 0.05, "dy": 0.05, "rotation": 0.05, "blur": 0.1, "duty_cycle": 0.02, "clock_offset": 0.03}
UNITS = {"dx": "px", "dy": "px", "rotation": "deg", "blur": "px", "duty_cycle": "", "clock_offset": "period"}


def test_scene(size: int, data: Path) -> tuple[np.ndarray, str]:
    """16 frames (F, H, W) in [0, 1] of a moving scene."""
    path = data / "gray_benchmark" / "drop40_cacti.mat"
    if path.exists():
        import cv2

        from snapcap.matfile import load_mat

        orig = np.transpose(load_mat(path, ["orig"])["orig"][:, :, :16], (2, 0, 1)).astype(np.float32) / 255
        if orig.shape[1:] != (size, size):
            orig = np.stack([cv2.resize(frame, (size, size), interpolation=cv2.INTER_AREA) for frame in orig])
        return orig, f"drop40_cacti.mat orig[:16] ({size}x{size})"
    from snapcap.datasets.synthetic import demo_video

    return demo_video(16, size, size, rgb=False), f"synthetic demo video ({size}x{size})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--source", choices=("dmd", "piezo"), default="dmd")
    parser.add_argument("--repeats", type=int, default=16, help="white-field frames per pattern")
    default_data = Path(os.environ.get("SNAPCAP_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
    parser.add_argument("--data", type=Path, default=default_data)
    args = parser.parse_args()

    size = args.size
    nominal = Rig(H=size, W=size, B=8, source=args.source, noise="poisson:photons=4000+gaussian:sigma=0.002", adc_bits=10)
    rig = nominal.with_mismatch(**MISMATCH)
    print(f"rig: {size}x{size}, B=8, {args.source}, noise {nominal.noise} + {nominal.adc_bits}-bit ADC")

    start = time.perf_counter()
    target = calibration_target(8, size, size, T=2, seed=1)
    estimate = estimate_mismatch(nominal, rig.capture(target.reshape(16, size, size), seed=3), target)
    fit_seconds = time.perf_counter() - start
    start = time.perf_counter()
    measured = calibrate_masks(rig.calibration_sequence(repeats=args.repeats, seed=5))
    measure_seconds = time.perf_counter() - start

    print()
    print(
        f"estimate_mismatch ({estimate.evaluations} model evaluations, {fit_seconds:.1f} s; "
        f"start dx, dy = {estimate.initial[0]:+.3f}, {estimate.initial[1]:+.3f} by phase correlation)"
    )
    print(f"| {'parameter':<19} | {'true':>8} | {'estimated':>9} | {'error':>8} | {'tolerance':>9} | ok  |")
    print(f"|{'-' * 21}|{'-' * 10}|{'-' * 11}|{'-' * 10}|{'-' * 11}|-----|")
    all_ok = True
    for name, true in MISMATCH.items():
        value = getattr(estimate, name)
        error = value - true
        ok = abs(error) <= TOLERANCE[name]
        all_ok &= ok
        unit = f" {UNITS[name]}" if UNITS[name] else ""
        print(
            f"| {name + unit:<19} | {true:>8.3f} | {value:>9.4f} | {error:>+8.4f} "
            f"| {TOLERANCE[name]:>9.3f} | {'yes' if ok else 'NO':<3} |"
        )
    print(f"relative residual of the fit: {estimate.relative_residual:.4f}")

    truth_masks = rig.effective_masks()
    estimated_masks = estimate.masks(nominal)
    print()
    print(
        f"calibrate_masks ({args.repeats} white frames per pattern, {measure_seconds:.1f} s): "
        f"mean |error| {np.abs(measured.masks - truth_masks).mean():.4f}, "
        f"noise σ per frame {measured.noise_sigma:.4f}; "
        f"estimated masks: mean |error| {np.abs(estimated_masks - truth_masks).mean():.4f}"
    )

    frames, label = test_scene(size, args.data)
    meas = rig.capture(frames, seed=9)
    truth = frames.reshape(2, 8, size, size)
    rows = [
        ("true effective", truth_masks),
        ("estimated", estimated_masks),
        ("measured", measured.masks),
        ("nominal", nominal.nominal_masks()),
    ]
    print()
    print(f"GAP-TV (snapcap.recon.api.reconstruct defaults) of {label}, 2 snapshots")
    print(f"| {'masks':<15} | {'PSNR dB':>8} | {'vs true':>8} | {'seconds':>7} |")
    print(f"|{'-' * 17}|{'-' * 10}|{'-' * 10}|{'-' * 9}|")
    scores = {}
    for name, masks in rows:
        start = time.perf_counter()
        result = reconstruct(np.ascontiguousarray(meas, dtype=np.float32), rig.operator(masks), "gap-tv")
        seconds = time.perf_counter() - start
        scores[name] = float(psnr(np.clip(result.frames, 0, 1), truth).mean())
        print(f"| {name:<15} | {scores[name]:>8.2f} | {scores[name] - scores['true effective']:>+8.2f} | {seconds:>7.1f} |")
    print()
    within = all(abs(scores[n] - scores["true effective"]) < 0.5 for n in ("estimated", "measured"))
    loss = scores["true effective"] - scores["nominal"]
    print(
        f"parameters within tolerance: {'yes' if all_ok else 'NO'}; calibrated masks within 0.5 dB: {'yes' if within else 'NO'}; "
        f"nominal masks lose {loss:.1f} dB"
    )


if __name__ == "__main__":
    main()
