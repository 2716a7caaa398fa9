"""The simulator: real benchmark files, seeds, chunking, Bayer, backends, errors."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from helpers import data_path, to_backend

from snapcap.backend import backend_name, to_numpy
from snapcap.cacti import CactiOperator, MaskSpec, make_masks, mosaic, simulate, simulate_iter
from snapcap.cacti.noise import parse_noise
from snapcap.cacti.simulate import snapshot_rng
from snapcap.errors import BackendUnavailableError, ConfigError, DTypeError, InvalidValueError, ShapeError
from snapcap.matfile import load_mat


@pytest.mark.parametrize("scene", ["drop40", "runner40"])
def test_stored_measurements_are_reproduced_exactly(scene):
    data = load_mat(data_path(f"gray_benchmark/{scene}_cacti.mat"))
    orig = data["orig"].transpose(2, 0, 1)[None]  # (1, 40, 256, 256) uint8
    masks = data["mask"].transpose(2, 0, 1)
    stored = data["meas"].transpose(2, 0, 1)  # (5, 256, 256)
    raw = simulate(orig, masks=masks, normalize=False)
    assert raw.meas.shape == (1, 5, 256, 256)
    np.testing.assert_array_equal(raw.meas[0], stored)  # every snapshot, bit for bit
    scaled = simulate(orig, masks=masks)  # the field's 0..1 scale: meas / 255
    np.testing.assert_allclose(scaled.meas[0] * 255, stored, rtol=1e-6, atol=1e-3)
    # and the operator alone, in float64
    op = CactiOperator(masks)
    np.testing.assert_array_equal(op.A(orig[0].reshape(5, 8, 256, 256).astype(np.float64)), stored)


def test_noise_is_reproducible_from_the_record_whatever_the_chunking(rng):
    video = rng.random((3, 20, 16, 16)).astype(np.float32)
    noise = "poisson:photons=500+gaussian:sigma=0.01"
    a = simulate(video, B=4, noise=noise, seed=11, chunk_size=1)
    b = simulate(video, B=4, noise=noise, seed=11, chunk_size=7)
    np.testing.assert_array_equal(a.meas, b.meas)
    assert a.params["T"] == 5 and a.params["frames_dropped"] == 0
    # Re-simulate snapshot (video 2, snapshot 3) alone from the record.
    record = a.params
    masks = make_masks(MaskSpec.from_dict(record["masks"]))
    clean = CactiOperator(masks).A(video[2, 12:16])
    again = parse_noise(noise).apply(clean, snapshot_rng(record["noise_seed"], 2, 3), full_scale=record["full_scale"])
    np.testing.assert_array_equal(again, a.meas[2, 3])
    c = simulate(video, B=4, noise=noise, seed=12)
    assert not np.array_equal(a.meas, c.meas)


def test_trailing_frames_are_dropped_and_counted(rng):
    video = rng.random((1, 19, 8, 8)).astype(np.float32)
    result = simulate(video, B=8)
    assert result.meas.shape == (1, 2, 8, 8)
    assert result.params["frames_used"] == 16 and result.params["frames_dropped"] == 3


def test_rgb_video_is_mosaicked_then_coded(rng):
    video = (rng.random((2, 8, 8, 10, 3)) * 255).astype(np.uint8)
    result = simulate(video, B=4, bayer="GBRG", masks="shifting", seed=3)
    assert result.params["bayer"] == "GBRG" and result.meas.shape == (2, 2, 8, 10)
    frames = video.reshape(2, 2, 4, 8, 10, 3).astype(np.float32) / 255
    expected = CactiOperator(result.masks, bayer="GBRG").A(frames)
    np.testing.assert_allclose(result.meas, expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(result.meas, CactiOperator(result.masks).A(mosaic(frames, "GBRG")), atol=1e-6)
    assert simulate(video, B=4).params["bayer"] == "RGGB"  # RGB defaults to RGGB


def test_per_video_masks(rng):
    video = rng.random((3, 8, 6, 6)).astype(np.float32)
    masks = (rng.random((3, 4, 6, 6)) < 0.5).astype(np.float32)
    result = simulate(video, masks=masks)
    for n in range(3):
        np.testing.assert_allclose(result.meas[n], CactiOperator(masks[n]).A(video[n].reshape(2, 4, 6, 6)), atol=1e-6)
    assert result.params["per_video_masks"] is True


@pytest.mark.parametrize("backend", ["numpy", "torch", "array_api_strict"])
def test_backends_agree(backend, rng):
    video_np = rng.random((2, 8, 6, 8)).astype(np.float32)
    video = to_backend(video_np, backend)
    result = simulate(video, B=4, noise="gaussian:sigma=0.02", seed=5)
    assert backend_name(result.meas) == backend_name(video)
    reference = simulate(video_np, B=4, noise="gaussian:sigma=0.02", seed=5)
    np.testing.assert_allclose(to_numpy(result.meas), reference.meas, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(to_numpy(video), video_np)


def _device_cases():
    import torch

    return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", _device_cases())
def test_a_torch_device_gives_the_numpy_measurements(device, rng):
    """RGB uint8 video through the Bayer mosaic, shot and read noise: the arithmetic on a torch
    device gives numpy's measurements (noise is drawn on the host from the same seeds)."""
    import torch

    video = (rng.random((2, 12, 10, 12, 3)) * 255).astype(np.uint8)
    noise = "poisson:photons=500+gaussian:sigma=0.01"
    reference = simulate(video, B=4, noise=noise, seed=7, chunk_size=2)
    on_device = simulate(video, B=4, noise=noise, seed=7, chunk_size=2, device=device)
    assert isinstance(on_device.meas, np.ndarray) and on_device.meas.dtype == np.float32
    np.testing.assert_allclose(on_device.meas, reference.meas, rtol=1e-6, atol=1e-6)
    assert on_device.params["device"] == str(torch.device(device))
    assert {k: v for k, v in on_device.params.items() if k != "device"} == reference.params
    tensors = simulate(torch.from_numpy(video), B=4, noise=noise, seed=7, device=device)
    assert tensors.meas.device.type == torch.device(device).type
    np.testing.assert_allclose(to_numpy(tensors.meas), reference.meas, rtol=1e-6, atol=1e-6)
    chunks = list(simulate_iter(video, B=4, seed=7, chunk_size=2, device=device))
    assert all(chunk.meas.device.type == torch.device(device).type for chunk in chunks)


def test_a_device_that_is_not_there_is_refused(rng):
    import torch

    video = rng.random((1, 8, 6, 8)).astype(np.float32)
    with pytest.raises(InvalidValueError, match="torch device"):
        simulate(video, B=4, device="gpu")
    if not torch.cuda.is_available():
        with pytest.raises(BackendUnavailableError, match="CUDA is not available"):
            simulate(video, B=4, device="cuda:0")
    with pytest.raises(ConfigError, match="device="):
        simulate(to_backend(video, "array_api_strict"), B=4, device="cpu")


def test_streams_into_an_hdf5_dataset(tmp_path, rng):
    frames = rng.random((2, 16, 8, 8)).astype(np.float32)
    with h5py.File(tmp_path / "in.h5", "w") as handle:
        handle["video"] = frames
        handle.create_dataset("meas", shape=(2, 4, 8, 8), dtype=np.float32)
        result = simulate(handle["video"], B=4, seed=2, out=handle["meas"], chunk_size=2)
        stored = handle["meas"][()]
    np.testing.assert_array_equal(stored, simulate(frames, B=4, seed=2).meas)
    assert result.meas is not None


def test_simulate_iter_bounds_each_chunk(rng):
    video = rng.random((2, 40, 4, 4)).astype(np.float32)
    chunks = list(simulate_iter(video, B=4, chunk_size=3))
    assert [c.meas.shape[0] for c in chunks] == [3, 3, 3, 1] * 2
    assert [(c.video, c.start) for c in chunks][:4] == [(0, 0), (0, 3), (0, 6), (0, 9)]


def test_bad_inputs(rng):
    with pytest.raises(ShapeError, match=r"\(N, F, H, W\)"):
        simulate(np.zeros((8, 4, 4), np.float32))
    with pytest.raises(ShapeError, match="fewer than B=8"):
        simulate(np.zeros((1, 5, 4, 4), np.float32))
    with pytest.raises(InvalidValueError, match="NaN"):
        video = np.zeros((1, 8, 4, 4), np.float32)
        video[0, 3, 1, 1] = np.nan
        simulate(video)
    with pytest.raises(DTypeError, match="uint8"):
        simulate(np.zeros((1, 8, 4, 4), np.int64))
    with pytest.raises(ShapeError, match="masks are 5x5"):
        simulate(np.zeros((1, 8, 4, 4), np.float32), masks=np.ones((8, 5, 5)))
    with pytest.raises(ShapeError, match="B=4 but the masks hold 8"):
        simulate(np.zeros((1, 8, 4, 4), np.float32), B=4, masks=np.ones((8, 4, 4)))
    with pytest.raises(ConfigError, match="noise"):
        simulate(np.zeros((1, 8, 4, 4), np.float32), noise="hiss:level=3")
    with pytest.raises(ShapeError, match="even"):
        simulate(np.zeros((1, 8, 5, 5, 3), np.float32))
