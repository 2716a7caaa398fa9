"""reconstruct() and its registry, the deep reconstructor's training, and the reconstruct CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import data_path
from recon_fixtures import samples, train_config

from snapcap.cacti import CactiOperator, simulate
from snapcap.cacti.masks import random_binary
from snapcap.errors import ConfigError, DataFileError, ShapeError
from snapcap.matfile import load_mat
from snapcap.recon.api import GAP_TV_FAST, METHODS, make_params, reconstruct
from snapcap.recon.denoisers.tv import TVDenoiser
from snapcap.recon.metrics import mean_psnr
from snapcap.recon.solvers import GapParams, gap
from snapcap.recon.train import load_reconstructor, train_recon


def benchmark(scene: str):
    data = load_mat(data_path(f"gray_benchmark/{scene}_cacti.mat"))
    meas = data["meas"][:, :, 0].astype(np.float32) / 255
    masks = data["mask"].transpose(2, 0, 1)
    truth = data["orig"][:, :, :8].transpose(2, 0, 1) / 255
    return meas, CactiOperator(masks), truth


def test_registry_and_parameters():
    assert {"gap-tv", "admm-tv", "pnp-ffdnet", "pnp-fastdvdnet", "unfold"} <= set(METHODS)
    params = make_params("gap-tv", iterations=12, tv_weight=0.2)
    assert params.iterations == 12 and params.tv_weight == 0.2
    with pytest.raises(ConfigError, match="no parameter"):
        make_params("gap-tv", sigma=3)
    with pytest.raises(ConfigError, match="unknown reconstruction method"):
        make_params("magic")
    op = CactiOperator(random_binary(4, 8, 8, seed=0))
    with pytest.raises(ConfigError, match="weights="):
        reconstruct(np.zeros((8, 8), np.float32), op, "pnp-ffdnet")
    with pytest.raises(ShapeError, match="masks"):
        reconstruct(np.zeros((9, 8), np.float32), op)
    with pytest.raises(Exception, match="NaN"):
        reconstruct(np.full((8, 8), np.nan, np.float32), op)


def test_gap_tv_through_the_registry_equals_the_solver(rng):
    frames = rng.random((2, 4, 16, 16)).astype(np.float32)
    op = CactiOperator(random_binary(4, 16, 16, seed=1))
    y = op.A(frames)
    via_api = reconstruct(y, op, "gap-tv", iterations=7, tv_weight=0.1)
    direct = gap(y, op, TVDenoiser(weight=0.1, n_iter=5, isotropic=True), GapParams(iterations=(7,)))  # the default step
    np.testing.assert_array_equal(via_api.frames, direct.frames)
    assert via_api.frames.shape == (2, 4, 16, 16) and via_api.seconds > 0


@pytest.mark.parametrize("scene,floor", [("drop40", 34.95), ("runner40", 29.81)])
def test_gap_tv_meets_the_public_reference(scene, floor):
    meas, op, truth = benchmark(scene)
    result = reconstruct(meas, op, "gap-tv")
    assert mean_psnr(result.frames, truth) >= floor - 0.005


@pytest.mark.slow
@pytest.mark.parametrize("scene,floor", [("drop40", 39.68), ("runner40", 32.44)])
def test_pnp_ffdnet_meets_the_public_reference(scene, floor):
    """The default (TV warm start + 12 FFDNet passes) at least matches PnP-SCI's GAP-FFDNet (40 passes)."""
    meas, op, truth = benchmark(scene)
    result = reconstruct(meas, op, "pnp-ffdnet", weights=str(data_path("weights/net_gray.pth")))
    assert mean_psnr(result.frames, truth) >= floor
    assert len(result.history) == 40 + 12


@pytest.mark.slow
def test_pnp_ffdnet_reproduces_the_public_protocol():
    from snapcap.recon.api import PNP_SCI_SCHEDULE

    meas, op, truth = benchmark("runner40")
    result = reconstruct(meas, op, "pnp-ffdnet", weights=str(data_path("weights/net_gray.pth")), **PNP_SCI_SCHEDULE)
    assert abs(mean_psnr(result.frames, truth) - 32.44) < 0.02


def test_bayer_reconstruction_through_the_registry():
    from snapcap.datasets.synthetic import demo_video

    video = demo_video(frames=8, height=32, width=32)[None]
    sim = simulate(video, B=8, bayer="RGGB", seed=2)
    op = CactiOperator(sim.masks, bayer="RGGB")
    result = reconstruct(sim.meas[0, 0], op, "gap-tv", tv_weight=0.05, iterations=10)
    tv = TVDenoiser(weight=0.05, n_iter=5, isotropic=True)
    direct = gap(sim.meas[0, 0], op, tv, GapParams(iterations=(10,), demosaic="bilinear"))  # the defaults
    fast = reconstruct(sim.meas[0, 0], op, "gap-tv", iterations=10, **dict(GAP_TV_FAST, tv_weight=0.05))
    previous = gap(sim.meas[0, 0], op, TVDenoiser(weight=0.05, n_iter=3, isotropic=False), GapParams(iterations=(10,)))
    np.testing.assert_array_equal(fast.frames, previous.frames)
    assert result.frames.shape == (8, 32, 32, 3) and result.frames.dtype == np.float32
    np.testing.assert_array_equal(result.frames, direct.frames)


def test_unfolding_network_trains_loads_and_reconstructs(tmp_path):
    train = samples()
    record = train_recon(train, tmp_path / "run", train_config(steps=24), progress=False, validation=samples("val", 2))
    losses = [entry["loss"] for entry in record["history"] if "loss" in entry]
    assert record["steps"] == 24 and losses[-1] < losses[0]
    assert (tmp_path / "run" / "model.pt").exists() and (tmp_path / "run" / "log.jsonl").read_text().count("\n") >= 6
    model = load_reconstructor(tmp_path / "run" / "model.pt")
    sample = train[0]
    op = CactiOperator(sample["masks"].numpy())
    result = reconstruct(sample["meas"].numpy(), op, "unfold", checkpoint=str(tmp_path / "run" / "model.pt"))
    assert result.frames.shape == (2, 4, 32, 32)
    with torch.inference_mode():
        direct = model(sample["meas"], sample["masks"])
    np.testing.assert_allclose(result.frames, direct.numpy(), atol=1e-6)
    wrong = CactiOperator(random_binary(8, 32, 32, seed=0))
    with pytest.raises(ShapeError, match="B=4"):
        reconstruct(np.zeros((32, 32), np.float32), wrong, "unfold", checkpoint=str(tmp_path / "run" / "model.pt"))
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(DataFileError, match="junk.pt"):
        load_reconstructor(tmp_path / "junk.pt")


def test_unfolding_network_starts_from_gap_tv(rng):
    """Untrained (zero last convolutions), the network returns the projection of GAP-TV's estimate."""
    from snapcap.recon.nets.unfold import UnfoldConfig, UnfoldingNet

    frames = rng.random((2, 4, 16, 16)).astype(np.float32)
    op = CactiOperator(random_binary(4, 16, 16, seed=1))
    y = op.A(frames)
    config = UnfoldConfig(B=4, stages=2, features=4, levels=1, init_iterations=6, tv_weight=0.1)
    model = UnfoldingNet(config)
    expected = gap(y, op, TVDenoiser(weight=0.1, n_iter=3, isotropic=False), GapParams(iterations=(6,))).frames
    masks = torch.as_tensor(np.array(op.masks))
    with torch.inference_mode():
        initial = model.initial_estimate(torch.as_tensor(y), masks.expand(2, 4, 16, 16), torch.as_tensor(np.array(op.AAt_diag())))
        out = model(torch.as_tensor(y), masks)
        given = model(torch.as_tensor(y), masks, initial=torch.zeros(2, 4, 16, 16))
    np.testing.assert_allclose(initial.numpy(), expected, atol=1e-5)
    np.testing.assert_allclose(out.numpy(), op.prox_l2(expected, y), atol=1e-5)
    np.testing.assert_allclose(given.numpy(), op.A_dagger(y), atol=1e-5)  # a given x⁰ = 0 projects to A⁺y
    assert UnfoldConfig.from_dict({"B": 4, "stages": 2, "features": 8, "levels": 1, "share_weights": False}).init_iterations == 0


def test_training_resumes_after_a_kill(tmp_path):
    """SIGKILL a training run after a checkpoint; the rerun continues and ends where an
    uninterrupted run ends."""
    out = tmp_path / "killed"
    script = Path(__file__).with_name("recon_fixtures.py")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(script.parent), str(script.parent.parent)]))
    process = subprocess.Popen([sys.executable, str(script), str(out)], env=env)
    deadline = time.time() + 120
    while time.time() < deadline and not (out / "checkpoint.pt").exists():
        time.sleep(0.05)
    time.sleep(0.1)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert (out / "checkpoint.pt").exists() and not (out / "model.pt").exists()
    saved = torch.load(out / "checkpoint.pt", weights_only=True)
    assert 0 < saved["step"] < 24
    torch.set_num_threads(1)
    try:
        resumed = train_recon(samples(), out, train_config(), progress=False)
        clean = train_recon(samples(), tmp_path / "clean", train_config(), progress=False)
    finally:
        torch.set_num_threads(max(1, os.cpu_count() or 1))
    assert resumed["steps"] == clean["steps"] == 24
    a = torch.load(out / "model.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "clean" / "model.pt", weights_only=True)["model"]
    for name in b:
        torch.testing.assert_close(a[name], b[name], rtol=1e-4, atol=1e-5)
    with pytest.raises(ConfigError, match="another configuration"):
        train_recon(samples(), out, train_config(steps=30), progress=False)


def test_reconstruct_cli_on_benchmark_and_dataset(tmp_path):
    from snapcap.cli import main
    from snapcap.datasets.h5 import DatasetConfig, make_dataset
    from snapcap.datasets.synthetic import SyntheticCorpus

    source = data_path("gray_benchmark/runner8_cacti.mat")
    assert main(["reconstruct", str(source), "--snapshots", "0", "--iterations", "10", "-o", str(tmp_path / "bench")]) == 0
    metrics = json.loads((tmp_path / "bench" / "metrics.json").read_text())
    assert metrics["frames_shape"] == [1, 8, 256, 256] and metrics["mean_psnr"] > 20
    for name in ("frames.npy", "montage.png", "recon.gif"):
        assert (tmp_path / "bench" / name).stat().st_size > 0
    dataset = make_dataset(
        SyntheticCorpus(num_videos=3, seed=1),
        tmp_path / "d.h5",
        DatasetConfig(B=4, T=2, size=(32, 32)),
        progress=False,
        workers=1,
    ).path
    assert (
        main(
            [
                "reconstruct",
                str(dataset),
                "--samples",
                "0:2",
                "--tv-weight",
                "0.05",
                "--format",
                "h5",
                "--video",
                "mp4",
                "-o",
                str(tmp_path / "ds"),
            ]
        )
        == 0
    )
    metrics = json.loads((tmp_path / "ds" / "metrics.json").read_text())
    assert metrics["frames_shape"] == [4, 4, 32, 32, 3] and "mean_ssim" in metrics
    assert (tmp_path / "ds" / "recon.mp4").stat().st_size > 0
    wrong_mask = tmp_path / "wrong.npy"
    np.save(wrong_mask, random_binary(8, 16, 16, seed=0))
    assert main(["reconstruct", str(source), "--mask-file", str(wrong_mask), "-o", str(tmp_path / "bad")]) == 2


@pytest.mark.parametrize("bayer", [None, "RGGB"])
def test_two_stage_reconstructs_on_the_snapshots_own_tensors(bayer):
    """The two-stage captioner's torch path (used on GPUs) gives the numpy path's frames, on the input's device."""
    import torch

    from snapcap.cacti import simulate
    from snapcap.caption.models import TwoStageCaptioner

    rng = np.random.default_rng(3)
    video = rng.random((2, 8, 16, 16, 3) if bayer else (2, 8, 16, 16)).astype(np.float32)
    result = simulate(video, B=4, bayer=bayer, seed=1)
    meas = torch.from_numpy(np.asarray(result.meas, dtype=np.float32))
    masks = torch.from_numpy(result.masks)
    host = TwoStageCaptioner(None, "gap-tv", params={"iterations": 8}, bayer=bayer, arrays="numpy").reconstruct(meas, masks)
    device = TwoStageCaptioner(None, "gap-tv", params={"iterations": 8}, bayer=bayer, arrays="torch").reconstruct(meas, masks)
    assert device.device == meas.device and device.shape == host.shape
    np.testing.assert_allclose(device.numpy(), host.numpy(), atol=2e-4)
