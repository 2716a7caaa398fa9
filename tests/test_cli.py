"""End-to-end runs of the snapcap command on small inputs."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from helpers import data_path

from snapcap.cacti.store import load_measurements
from snapcap.cli import main
from snapcap.matfile import load_mat

PNG = b"\x89PNG\r\n\x1a\n"


def test_builtin_demo(tmp_path):
    out = tmp_path / "demo.npz"
    assert (
        main(
            [
                "simulate",
                "builtin:demo",
                "--B",
                "8",
                "--bayer",
                "RGGB",
                "--mask",
                "shifting",
                "--noise",
                "poisson:photons=2000",
                "-o",
                str(out),
            ]
        )
        == 0
    )
    data = load_measurements(out)
    assert data["meas"].shape == (1, 2, 128, 128)
    assert data["masks"].shape == (8, 128, 128)
    assert data["params"]["bayer"] == "RGGB" and data["params"]["noise"]["kind"] == "poisson"
    montage = tmp_path / "demo_montage.png"
    assert montage.read_bytes()[:8] == PNG and montage.stat().st_size > 10_000


def test_npy_input_h5_output(tmp_path):
    video = (np.random.default_rng(0).random((2, 12, 16, 16)) * 255).astype(np.uint8)
    np.save(tmp_path / "video.npy", video)
    out = tmp_path / "meas.h5"
    assert (
        main(
            [
                "simulate",
                str(tmp_path / "video.npy"),
                "--B",
                "4",
                "--mask",
                "gray",
                "--mask-seed",
                "3",
                "--noise-seed",
                "3",
                "-o",
                str(out),
                "--montage",
                str(tmp_path / "m.png"),
                "--save-frames",
            ]
        )
        == 0
    )
    data = load_measurements(out)
    assert data["meas"].shape == (2, 3, 16, 16)
    np.testing.assert_array_equal(data["frames"], video)
    assert data["params"]["masks"] == {"kind": "gray", "B": 4, "H": 16, "W": 16, "seed": 3, "params": {}}
    assert (tmp_path / "m.png").read_bytes()[:8] == PNG


def test_benchmark_mat_with_its_stored_mask(tmp_path):
    source = data_path("gray_benchmark/runner40_cacti.mat")
    out = tmp_path / "runner.npz"
    assert main(["simulate", str(source), "--stored-mask", "--raw", "-o", str(out), "--no-montage"]) == 0
    stored = load_mat(source, ["meas"])["meas"].transpose(2, 0, 1)
    np.testing.assert_array_equal(load_measurements(out)["meas"][0], stored)


def test_video_file_input(tmp_path):
    cv2 = pytest.importorskip("cv2")
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (32, 24))
    for t in range(17):
        frame = np.zeros((24, 32, 3), np.uint8)
        frame[:, 2 * t : 2 * t + 4] = 255
        writer.write(frame)
    writer.release()
    out = tmp_path / "clip.npz"
    assert main(["simulate", str(path), "--B", "8", "--size", "16x20", "--gray", "-o", str(out)]) == 0
    data = load_measurements(out)
    assert data["meas"].shape == (1, 2, 16, 20)
    assert data["params"]["frames_dropped"] == 1


def test_simulate_on_a_torch_device(tmp_path, capsys):
    import torch

    video = (np.random.default_rng(1).random((2, 8, 12, 12, 3)) * 255).astype(np.uint8)
    np.save(tmp_path / "video.npy", video)
    common = ["simulate", str(tmp_path / "video.npy"), "--B", "4", "--noise", "poisson:photons=800", "--no-montage"]
    assert main([*common, "-o", str(tmp_path / "host.npz")]) == 0
    assert main([*common, "--device", "cpu", "-o", str(tmp_path / "torch.npz")]) == 0
    host, device = load_measurements(tmp_path / "host.npz"), load_measurements(tmp_path / "torch.npz")
    np.testing.assert_allclose(device["meas"], host["meas"], rtol=1e-6, atol=1e-6)
    assert device["params"]["device"] == "cpu" and "device" not in host["params"]
    if not torch.cuda.is_available():
        capsys.readouterr()
        with pytest.raises(SystemExit) as stop:
            main([*common, "--device", "cuda", "-o", str(tmp_path / "cuda.npz")])
        assert stop.value.code == 2 and "CUDA is not available" in capsys.readouterr().err
        assert not (tmp_path / "cuda.npz").exists()


def test_errors_are_reported_not_raised(tmp_path, capsys):
    assert main(["simulate", str(tmp_path / "missing.npy")]) == 2
    assert "missing.npy: no such file" in capsys.readouterr().err
    np.save(tmp_path / "v.npy", np.zeros((1, 8, 4, 4), np.float32))
    assert main(["simulate", str(tmp_path / "v.npy"), "--stored-mask"]) == 2
    assert "holds no mask" in capsys.readouterr().err
    assert main(["simulate", str(tmp_path / "v.npy"), "--noise", "poisson:photons=-1"]) == 2
    assert "photons" in capsys.readouterr().err
    assert main(["simulate", str(tmp_path / "v.npy"), "-o", str(tmp_path / "out.txt")]) == 2
    assert ".npz, .h5" in capsys.readouterr().err
    assert not (tmp_path / "out.txt").exists()


def test_module_entry_point_and_doctor():
    run = subprocess.run([sys.executable, "-m", "snapcap", "--version"], capture_output=True, text=True, check=True)
    assert run.stdout.startswith("snapcap ")
    doctor = subprocess.run([sys.executable, "-m", "snapcap", "doctor", "--json"], capture_output=True, text=True, check=True)
    assert '"numpy"' in doctor.stdout and '"cupy"' in doctor.stdout and "numba" in doctor.stdout


def test_old_spellings_work_with_a_deprecation_message(tmp_path, capsys):
    source = data_path("gray_benchmark/runner8_cacti.mat")
    new, old = tmp_path / "new.npz", tmp_path / "old.npz"
    assert main(["simulate", str(source), "--stored-mask", "--raw", "-o", str(new), "--no-montage"]) == 0
    assert "deprecated" not in capsys.readouterr().err
    assert main(["simulate", str(source), "--mask", "stored", "--raw", "-o", str(old), "--no-montage"]) == 0
    assert "--mask stored is deprecated" in capsys.readouterr().err
    np.testing.assert_array_equal(load_measurements(new)["meas"], load_measurements(old)["meas"])
    video = np.random.default_rng(0).random((1, 8, 16, 16)).astype(np.float32)
    np.save(tmp_path / "v.npy", video)
    np.save(tmp_path / "m.npy", np.ones((8, 16, 16), np.float32))
    seeds = tmp_path / "seeds.npz"
    assert (
        main(
            [
                "simulate",
                str(tmp_path / "v.npy"),
                "--mask-seed",
                "4",
                "--noise-seed",
                "4",
                "--noise",
                "gaussian:sigma=0.1",
                "-o",
                str(seeds),
                "--no-montage",
            ]
        )
        == 0
    )
    legacy = tmp_path / "legacy.npz"
    assert (
        main(
            [
                "simulate",
                str(tmp_path / "v.npy"),
                "--seed",
                "4",
                "--noise",
                "gaussian:sigma=0.1",
                "-o",
                str(legacy),
                "--no-montage",
            ]
        )
        == 0
    )
    assert "--mask-seed N --noise-seed N" in capsys.readouterr().err
    np.testing.assert_array_equal(load_measurements(seeds)["meas"], load_measurements(legacy)["meas"])
    by_file = tmp_path / "file.npz"
    assert main(["simulate", str(tmp_path / "v.npy"), "--mask", str(tmp_path / "m.npy"), "-o", str(by_file), "--no-montage"]) == 0
    assert "use --mask-file FILE" in capsys.readouterr().err
    np.testing.assert_allclose(load_measurements(by_file)["meas"][0, 0], video[0].sum(axis=0), rtol=1e-5)


def test_flags_are_checked_when_read(tmp_path, capsys):
    for argv, expected in (
        (["simulate", "builtin:demo", "--mask", "zebra"], "invalid choice"),
        (["simulate", "builtin:demo", "--mask-seed", "-1"], "must be >= 0"),
        (["simulate", "builtin:demo", "--size", "0x4"], "size must be positive"),
        (["reconstruct", "x.mat", "--device", "bogus", "-o", str(tmp_path)], "expected cpu, cuda or cuda:N"),
        (["reconstruct", "x.mat", "--recon-param", "nope:iterations=3", "-o", str(tmp_path)], "not a reconstruction method"),
        (["compare", "--size", "abc"], "size must be N or HxW"),
    ):
        with pytest.raises(SystemExit) as raised:
            main(argv)
        assert raised.value.code == 2
        assert expected in capsys.readouterr().err, argv
