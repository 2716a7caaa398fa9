"""The mask library and mask files."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import scipy.io
from helpers import data_path

from snapcap.cacti.masks import MaskSpec, dmd, gray, load_masks, make_masks, pixel_overlap, random_binary, shifting
from snapcap.errors import ConfigError, DataFileError, InvalidValueError, MissingKeyError, ShapeError


def write_mat_v73(path, **variables):
    """Write variables the way MATLAB's -v7.3 does: an HDF5 file with a 512-byte MATLAB header,
    arrays stored with their axes reversed (column-major), and MATLAB_class attributes."""
    with h5py.File(path, "w", userblock_size=512) as handle:
        for name, value in variables.items():
            value = np.asarray(value)
            dataset = handle.create_dataset(name, data=value.transpose())
            dataset.attrs["MATLAB_class"] = np.bytes_(
                {"uint8": "uint8", "float32": "single", "float64": "double"}.get(value.dtype.name, "double")
            )
    header = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024 HDF5 schema 1.00 ."
    with open(path, "r+b") as handle:
        handle.write(header.ljust(116, b" ") + b"\x00" * 8 + b"\x00\x02IM")


def test_random_binary_duty_and_seed():
    masks = random_binary(8, 64, 64, duty=0.3, seed=5)
    assert masks.shape == (8, 64, 64) and masks.dtype == np.float32
    assert set(np.unique(masks)) <= {0.0, 1.0}
    assert abs(masks.mean() - 0.3) < 0.01
    np.testing.assert_array_equal(masks, random_binary(8, 64, 64, duty=0.3, seed=5))
    assert not np.array_equal(masks, random_binary(8, 64, 64, duty=0.3, seed=6))


@pytest.mark.parametrize("step", [1, 2, -1, -3])
@pytest.mark.parametrize("axis", [-1, -2])
def test_shifting_enter_convention(step, axis):
    masks = shifting(5, 12, 14, seed=1, step=step, axis=axis)
    for k in range(1, 5):
        s = k * step
        first, later = np.moveaxis(masks[0], axis, -1), np.moveaxis(masks[k], axis, -1)
        if s > 0:
            np.testing.assert_array_equal(later[:, s:], first[:, :-s])
        else:
            np.testing.assert_array_equal(later[:, :s], first[:, -s:])
    # new columns enter: the entering strip is not a copy of the leaving one
    assert not np.array_equal(masks[1], np.roll(masks[0], step, axis=axis))


def test_shifting_roll_convention():
    masks = shifting(6, 10, 10, seed=2, step=-1, boundary="roll")
    for k in range(6):
        np.testing.assert_array_equal(masks[k], np.roll(masks[0], -k, axis=1))


def test_benchmark_masks_follow_the_two_shift_conventions():
    bench = load_masks(data_path("gray_benchmark/drop40_cacti.mat"))
    for k in range(1, 8):
        np.testing.assert_array_equal(bench[k][:, k:], bench[0][:, :-k])
    deepnet = load_masks(data_path("masks/mask.mat"))
    for k in range(8):
        np.testing.assert_array_equal(deepnet[k], np.roll(deepnet[0], -k, axis=1))


def test_gray_masks_levels():
    masks = gray(4, 16, 16, levels=4, seed=3)
    assert set(np.round(np.unique(masks) * 3, 6)) <= {0.0, 1.0, 2.0, 3.0}
    smooth = gray(4, 64, 64, low=0.2, high=0.6, seed=3)
    assert 0.2 <= smooth.min() and smooth.max() <= 0.6


def test_pixel_overlap_conserves_light():
    overlap = pixel_overlap(10, 3.45, 8, 7.56)
    covered = overlap.sum(axis=1)
    np.testing.assert_allclose(covered[:7], 1.0)  # pixels fully inside the pattern see all of it
    np.testing.assert_allclose(overlap.sum() * 3.45, min(10 * 3.45, 8 * 7.56))


def test_dmd_aligned_binning_gives_binary_blocks():
    patterns = (np.random.default_rng(0).random((3, 4, 5)) < 0.5).astype(float)
    # cell = 2 mirrors of 5 µm = 10 µm = two 5 µm pixels: every cell covers 2x2 pixels exactly
    masks = dmd(3, 8, 10, patterns=patterns, mirror_pitch=5.0, pixel_pitch=5.0, binning=2)
    np.testing.assert_array_equal(masks, np.repeat(np.repeat(patterns, 2, axis=1), 2, axis=2).astype(np.float32))


def test_dmd_misaligned_pitch_gives_gray_values_and_keeps_mean():
    masks = dmd(4, 40, 40, duty=0.5, seed=1, mirror_pitch=7.56, pixel_pitch=5.5)
    values = np.unique(masks)
    assert len(values) > 2 and 0 <= values.min() and values.max() <= 1
    assert abs(masks.mean() - 0.5) < 0.05
    shifted = dmd(4, 40, 40, duty=0.5, seed=1, mirror_pitch=7.56, pixel_pitch=5.5, offset=(0.0, 2.0))
    assert not np.array_equal(masks, shifted)


def test_mask_spec_round_trip():
    spec = MaskSpec("shifting", 6, 16, 20, seed=9, params={"boundary": "roll", "step": -1})
    again = MaskSpec.from_dict(spec.to_dict())
    assert again == spec
    np.testing.assert_array_equal(make_masks(again), shifting(6, 16, 20, seed=9, step=-1, boundary="roll"))
    with pytest.raises(ConfigError, match="unknown mask kind"):
        make_masks(MaskSpec("zigzag", 2, 4, 4))
    with pytest.raises(ConfigError, match="parameters"):
        make_masks(MaskSpec("random", 2, 4, 4, params={"wobble": 1}))


@pytest.mark.parametrize("suffix", [".mat", ".mat73", ".npy", ".npz", ".h5"])
def test_load_masks_every_format(tmp_path, suffix):
    masks = random_binary(5, 6, 7, seed=4)
    if suffix == ".mat":
        path = tmp_path / "m.mat"
        scipy.io.savemat(path, {"mask": masks.transpose(1, 2, 0).astype(np.uint8)})
    elif suffix == ".mat73":
        path = tmp_path / "m73.mat"
        write_mat_v73(path, mask=masks.transpose(1, 2, 0).astype(np.uint8))
    elif suffix == ".npy":
        path = tmp_path / "m.npy"
        np.save(path, masks)
    elif suffix == ".npz":
        path = tmp_path / "m.npz"
        np.savez(path, masks=masks)
    else:
        path = tmp_path / "m.h5"
        with h5py.File(path, "w") as handle:
            handle["mask"] = masks
    loaded = load_masks(path)
    assert loaded.shape == (5, 6, 7) and loaded.dtype == np.float32
    np.testing.assert_array_equal(loaded, masks)
    np.testing.assert_array_equal(load_masks(path, B=3), masks[:3])


def test_load_masks_errors(tmp_path):
    masks = random_binary(4, 6, 6, seed=1)
    good = tmp_path / "good.mat"
    scipy.io.savemat(good, {"mask": masks.transpose(1, 2, 0)})
    with pytest.raises(MissingKeyError, match="'Phi2'.*mask"):
        load_masks(good, key="Phi2")
    with pytest.raises(ShapeError, match="holds 4 frames; B=8"):
        load_masks(good, B=8)
    other = tmp_path / "other.mat"
    scipy.io.savemat(other, {"orig": masks})
    with pytest.raises(MissingKeyError, match="looked for mask"):
        load_masks(other)
    truncated = tmp_path / "truncated.mat"
    truncated.write_bytes(good.read_bytes()[:300])
    with pytest.raises(DataFileError, match="truncated.mat"):
        load_masks(truncated)
    scaled = tmp_path / "scaled.npy"
    np.save(scaled, masks * 255)
    with pytest.raises(InvalidValueError, match=r"\[0, 1\]"):
        load_masks(scaled)
    nan = tmp_path / "nan.npy"
    np.save(nan, np.full((2, 3, 3), np.nan))
    with pytest.raises(InvalidValueError, match="NaN"):
        load_masks(nan)
    with pytest.raises(DataFileError, match="no such mask file"):
        load_masks(tmp_path / "missing.mat")
    with pytest.raises(DataFileError, match="unknown mask file type"):
        load_masks(_touch(tmp_path / "x.txt"))
    with pytest.raises(InvalidValueError, match="duty"):
        random_binary(2, 4, 4, duty=1.5)


def _touch(path):
    path.write_text("not masks")
    return path
