"""Real captures, the rig emulator, calibration and ``snapcap capture``."""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest
from helpers import DATA, data_path

from snapcap.cacti.masks import dmd, shifting
from snapcap.errors import (
    ConfigError,
    DataFileError,
    InvalidValueError,
    MissingKeyError,
    ShapeError,
    SnapcapError,
)
from snapcap.hardware import (
    LAYOUTS,
    MaskRequiredError,
    Rig,
    UnknownLayoutError,
    calibrate_masks,
    calibration_target,
    detect_layout,
    estimate_mismatch,
    load_capture,
    mix_clock,
    phase_correlation,
    write_capture,
    write_dng,
    write_mask_file,
    write_mat_v5,
    write_mat_v73,
)
from snapcap.matfile import load_mat

PNG = b"\x89PNG\r\n\x1a\n"
QIAO_FRAMES = {"duomino": 6, "pendulumBall": 4, "waterBalloon": 1}
QIAO_FILES = sorted((DATA / "real_qiao2020").glob("cr*/meas_*_cr_*.mat"))
GRAY_FILES = ["drop40_cacti.mat", "runner40_cacti.mat", "drop8_cacti.mat", "runner8_cacti.mat"]


def run_cli(*argv: str) -> int:
    """The snapcap command, with SnapcapErrors raised (as the library raises them) instead of printed."""
    from snapcap.cli.main import build_parser

    args = build_parser().parse_args(list(argv))
    return int(args.func(args) or 0)


@pytest.fixture(scope="session")
def real_mask_file(tmp_path_factory) -> Path:
    """An emulated real_mask.mat: key 'mask', 512×512×50 (the real one is not shipped)."""
    path = tmp_path_factory.mktemp("realmask") / "real_mask.mat"
    masks = shifting(50, 512, 512, seed=3)
    write_mat_v5(path, mask=np.transpose(masks, (1, 2, 0)).astype(np.uint8))
    return path


# --------------------------------------------------------------------------------------------
# the layout table
# --------------------------------------------------------------------------------------------


def test_layout_table_is_complete():
    names = [layout.name for layout in LAYOUTS]
    assert len(names) == len(set(names))
    assert {
        "qiao2020-dmd",
        "bayer-real",
        "bayer-midscale",
        "gray-benchmark",
        "raw-frame",
        "snapcap-meas",
        "snapcap-dataset",
    } <= set(names)
    for layout in LAYOUTS:
        for text in (layout.detect, layout.orientation, layout.normalisation, layout.mask):
            assert isinstance(text, str) and text


# --------------------------------------------------------------------------------------------
# the real Qiao et al. 2020 captures
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", QIAO_FILES or [None], ids=lambda p: "missing" if p is None else p.name)
def test_real_qiao_files(path, real_mask_file):
    if path is None:
        data_path("real_qiao2020/cr10/meas_duomino_cr_10.mat")
    match = re.match(r"meas_(\w+?)_cr_(\d+)\.mat", path.name)
    scene, B = match.group(1), int(match.group(2))
    N = QIAO_FRAMES[scene]
    capture = load_capture(path, mask=real_mask_file)
    assert capture.layout == "qiao2020-dmd" and capture.bayer is None and capture.B == B
    assert capture.meas.shape == (N, 512, 512) and capture.meas.dtype == np.float32
    assert capture.masks.shape == (B, 512, 512) and capture.masks.dtype == np.float32
    stored = load_mat(path, ["meas"])["meas"]
    expected = np.transpose(stored[:, :, None] if stored.ndim == 2 else stored, (2, 0, 1)).astype(np.float64) / 255 * B / 2
    np.testing.assert_allclose(capture.meas, expected, rtol=1e-6)
    assert "meas/255·B/2" in capture.normalisation and f"B={B}" in capture.normalisation
    assert any("45°" in note for note in capture.notes)
    json.dumps(capture.describe())
    assert capture.operator().B == B


def test_real_qiao_without_mask(capsys):
    path = data_path("real_qiao2020/cr20/meas_pendulumBall_cr_20.mat")
    with pytest.raises(MaskRequiredError, match=r"real_mask\.mat.*'mask'.*512×512×≥B.*--mask.*mask="):
        load_capture(path)
    capture = load_capture(path, require_mask=False)
    assert capture.masks is None and capture.meas.shape == (4, 512, 512)
    with pytest.raises(MaskRequiredError, match="real_mask.mat"):
        capture.operator()
    assert run_cli("capture", "info", str(path)) == 0
    out = capsys.readouterr().out
    assert "qiao2020-dmd" in out and "B:             20" in out and "meas/255·B/2" in out and "real_mask.mat" in out
    assert run_cli("capture", "info", str(path), "--json") == 0
    info = json.loads(capsys.readouterr().out)
    assert info["layout"] == "qiao2020-dmd" and info["meas_shape"] == [4, 512, 512] and info["masks_shape"] is None
    assert info["raw_range"][1] <= 255


def test_real_qiao_mask_errors(tmp_path):
    path = data_path("real_qiao2020/cr20/meas_waterBalloon_cr_20.mat")
    few = tmp_path / "few.mat"
    write_mask_file(few, shifting(10, 512, 512))
    with pytest.raises(ShapeError, match="holds 10 frames; B=20"):
        load_capture(path, mask=few)
    small = tmp_path / "small.mat"
    write_mask_file(small, shifting(20, 256, 256))
    with pytest.raises(ShapeError, match=r"512×512.*256×256"):
        load_capture(path, mask=small)
    nan = tmp_path / "nan.mat"
    masks = shifting(20, 512, 512)
    masks[3, 7, 9] = np.nan
    write_mask_file(nan, masks)
    with pytest.raises(InvalidValueError, match="NaN"):
        load_capture(path, mask=nan)
    with pytest.raises(MissingKeyError, match="'Phi2'"):
        load_capture(path, mask=few, mask_key="Phi2")
    with pytest.raises(ConfigError, match="cr_20.*B=10"):
        load_capture(path, B=10, require_mask=False)


def test_inputs_reads_captures(tmp_path, real_mask_file):
    from snapcap.recon.inputs import load_recon_input

    path = data_path("real_qiao2020/cr10/meas_duomino_cr_10.mat")
    recon_input = load_recon_input(path, mask=real_mask_file, snapshots="0,2")
    assert recon_input.meas.shape == (2, 512, 512) and recon_input.operator.B == 10
    assert "qiao2020-dmd" in recon_input.description and recon_input.meta["capture"]["layout"] == "qiao2020-dmd"


# --------------------------------------------------------------------------------------------
# the grayscale benchmark files
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", GRAY_FILES)
def test_gray_benchmark_files(name):
    path = data_path(f"gray_benchmark/{name}")
    capture = load_capture(path)
    assert capture.layout == "gray-benchmark" and capture.B == 8 and capture.meas.shape == (5, 256, 256)
    stored = load_mat(path, ["meas", "orig"])
    np.testing.assert_allclose(capture.meas, np.transpose(stored["meas"], (2, 0, 1)) / 255.0, rtol=1e-6)
    covered = 5 if name.startswith(("drop40", "runner40")) else 1
    assert capture.truth.shape == (covered, 8, 256, 256)
    np.testing.assert_allclose(capture.truth[0, 3], stored["orig"][:, :, 3] / 255.0, rtol=1e-6)
    assert any("verified" in note and "exactly" in note for note in capture.notes)
    # the model holds: A(truth) = meas in normalised units
    np.testing.assert_allclose(capture.operator().A(capture.truth[:covered]), capture.meas[:covered], atol=1e-4)


# --------------------------------------------------------------------------------------------
# the emulator
# --------------------------------------------------------------------------------------------


def test_dmd_plane_is_masks_dmd():
    rig = Rig(H=40, W=40, B=4, seed=2, margin=6)
    plane = rig.plane()
    rows = int(np.ceil(52 * 3.45 / 7.56)) + 1
    cells = (np.random.default_rng(2).random((4, rows, rows)) < 0.5).astype(float)
    expected = dmd(4, 52, 52, patterns=cells)[:, 6:46, 6:46]
    np.testing.assert_allclose(rig.nominal_masks(), expected, atol=1e-6)
    assert plane.fine.shape == (4, 4 * 52, 4 * 52)


@pytest.mark.parametrize("source", ["dmd", "piezo"])
def test_effective_masks_model(source):
    rig = Rig(H=32, W=40, B=5, source=source, seed=1)
    nominal = rig.nominal_masks()
    np.testing.assert_array_equal(rig.effective_masks(), nominal)
    # integer shifts move the masks by whole pixels (+x right, +y down)
    moved = rig.with_mismatch(dx=2.0, dy=-1.0).effective_masks()
    np.testing.assert_allclose(moved[:, :-1, 2:], nominal[:, 1:, :-2], atol=1e-6)
    # duty cycle and gain scale; the clock offset mixes neighbours (wrapping or holding)
    np.testing.assert_allclose(rig.with_mismatch(duty_cycle=0.8, gain=1.1).effective_masks(), 0.88 * nominal, rtol=1e-5)
    mixed = rig.with_mismatch(clock_offset=0.25).effective_masks()
    np.testing.assert_allclose(mixed[1], 0.75 * nominal[1] + 0.25 * nominal[2], atol=1e-6)
    np.testing.assert_allclose(mixed[-1], 0.75 * nominal[-1] + 0.25 * nominal[0], atol=1e-6)
    held = rig.with_mismatch(clock_offset=0.25, clock_wrap="hold").effective_masks()
    np.testing.assert_allclose(held[-1], nominal[-1], atol=1e-6)
    # blur and sub-pixel shifts conserve light away from the edges, rotation changes the masks
    soft = rig.with_mismatch(blur=0.7, dx=0.3).effective_masks()
    assert abs(soft[:, 8:-8, 8:-8].mean() - nominal[:, 8:-8, 8:-8].mean()) < 0.02
    assert soft.std() < nominal.std()
    turned = rig.with_mismatch(rotation=1.0).effective_masks()
    assert np.abs(turned - nominal)[:, 12:20, 16:24].max() < np.abs(turned - nominal).max()


def test_mix_clock_and_rig_validation():
    masks = np.arange(3 * 2 * 2, dtype=float).reshape(3, 2, 2)
    np.testing.assert_allclose(mix_clock(masks, 0.5)[0], (masks[0] + masks[1]) / 2)
    with pytest.raises(InvalidValueError):
        mix_clock(masks, 1.0)
    with pytest.raises(ConfigError):
        mix_clock(masks, 0.1, "loop")
    with pytest.raises(InvalidValueError):
        Rig(duty_cycle=0.0)
    with pytest.raises(ConfigError):
        Rig(source="slm")
    with pytest.raises(ConfigError):
        Rig(noise="poisson:photons=-")
    with pytest.raises(InvalidValueError, match="margin"):
        Rig(H=32, W=32, margin=2, dx=3.0).effective_masks()
    with pytest.raises(ConfigError, match="unknown mismatch"):
        Rig().with_mismatch(shear=1.0)


def test_capture_shapes_and_noise():
    from snapcap.datasets.synthetic import demo_video

    rig = Rig(H=32, W=32, B=4, noise="poisson:photons=1000", adc_bits=10)
    video = demo_video(8, 32, 32, rgb=False)
    one = rig.capture(video, seed=1)
    assert one.shape == (2, 32, 32) and one.dtype == np.float32
    np.testing.assert_array_equal(one, rig.capture(video, seed=1))
    assert not np.array_equal(one, rig.capture(video, seed=2))
    many = rig.capture(np.stack([video, video]), seed=1)
    assert many.shape == (2, 2, 32, 32)
    np.testing.assert_array_equal(many[0], one)
    clean = Rig(H=32, W=32, B=4).capture(video)
    assert 0.01 < np.abs(one - clean).mean() < 0.15 * clean.mean()
    with pytest.raises(ShapeError, match="multiple of B"):
        rig.capture(video[:6])
    with pytest.raises(ShapeError):
        rig.capture(demo_video(8, 32, 32, rgb=True))
    colour = Rig(H=32, W=32, B=4, bayer="RGGB").capture(demo_video(8, 32, 32, rgb=True))
    assert colour.shape == (2, 32, 32)
    seq = rig.calibration_sequence(repeats=3, seed=0)
    assert seq.shape == (4, 3, 32, 32)


# --------------------------------------------------------------------------------------------
# emulator -> file -> driver
# --------------------------------------------------------------------------------------------


def _video(rgb: bool, size: int = 32, frames: int = 16, level: float = 0.5) -> np.ndarray:
    from snapcap.datasets.synthetic import demo_video

    return (demo_video(frames, size, size, rgb=rgb) * level).astype(np.float32)


@pytest.mark.parametrize("version", ["v5", "v7.3"])
def test_round_trip_qiao(tmp_path, version):
    rig = Rig(H=32, W=32, B=8, dx=0.3, noise="gaussian:sigma=0.002")
    meas = rig.capture(_video(False), seed=4)
    written = write_capture(tmp_path / "meas_emulated.mat", rig, meas, "qiao2020-dmd", version=version)
    assert written.path.name == "meas_emulated_cr_8.mat" and written.mask_path.name == "real_mask.mat" and written.clipped == 0
    stored = load_mat(written.path, ["meas"])["meas"]
    assert stored.dtype == np.uint8 and stored.shape == (32, 32, 2)
    assert detect_layout(written.path) == "qiao2020-dmd"
    capture = load_capture(written.path, mask=written.mask_path)
    assert capture.layout == "qiao2020-dmd" and capture.B == 8
    step = (8 / 2) / 255
    assert np.abs(capture.meas - meas).max() <= step / 2 + 1e-6
    np.testing.assert_array_equal(capture.masks, rig.effective_masks())
    # one snapshot is stored 2-D, like the waterBalloon files
    single = write_capture(tmp_path / "one_cr_8.mat", rig, meas[0], "qiao2020-dmd", mask_path=tmp_path / "m.mat")
    assert load_mat(single.path, ["meas"])["meas"].shape == (32, 32)
    assert load_capture(single.path, mask=single.mask_path).meas.shape == (1, 32, 32)


def test_round_trip_gray_benchmark(tmp_path):
    rig = Rig(H=32, W=32, B=8, source="piezo", blur=0.4)
    video = _video(False, level=1.0)
    meas = rig.capture(video)
    written = write_capture(tmp_path / "bench.mat", rig, meas, "gray-benchmark", truth=video.reshape(2, 8, 32, 32))
    capture = load_capture(written.path)
    assert capture.layout == "gray-benchmark"
    np.testing.assert_allclose(capture.meas, meas, rtol=1e-5, atol=1e-6)
    assert np.abs(capture.truth - video.reshape(2, 8, 32, 32)).max() <= 0.5 / 255 + 1e-6
    assert any(note.startswith("verified on snapshots 0..1") for note in capture.notes)
    v73 = write_capture(tmp_path / "bench73.mat", rig, meas, "gray-benchmark", truth=video.reshape(2, 8, 32, 32), version="v7.3")
    np.testing.assert_allclose(load_capture(v73.path).meas, capture.meas)


def test_round_trip_bayer_real(tmp_path):
    rig = Rig(H=32, W=32, B=8, bayer="RGGB", rotation=0.5)
    meas = rig.capture(_video(True, level=0.4))
    written = write_capture(tmp_path / "hammer_cacti.mat", rig, meas, "bayer-real")
    assert written.clipped == 0
    capture = load_capture(written.path)
    assert capture.layout == "bayer-real" and capture.bayer == "RGGB" and capture.B == 8
    assert np.abs(capture.meas - meas).max() <= 4 / 255 / 2 + 1e-6
    np.testing.assert_allclose(capture.masks, rig.effective_masks())
    assert capture.operator().frame_shape == (8, 32, 32, 3)
    # values that do not identify the camera's scale are refused, unless normalisation= says it
    odd = tmp_path / "odd.mat"
    write_mat_v5(odd, meas_bayer=np.transpose(meas, (1, 2, 0)) * 3.7, mask=np.transpose(rig.effective_masks(), (1, 2, 0)))
    with pytest.raises(InvalidValueError, match="normalisation="):
        load_capture(odd)
    np.testing.assert_allclose(load_capture(odd, normalisation="scale:3.7").meas, meas, rtol=1e-5)
    peak = load_capture(odd, normalisation="peak")
    assert abs(float(peak.meas.max()) - 4.0) < 1e-5 and "max(meas)" in peak.normalisation


def test_round_trip_bayer_midscale(tmp_path):
    rig = Rig(H=32, W=32, B=8, bayer="RGGB", dy=0.4)
    video = _video(True, level=1.0)
    meas = rig.capture(video)
    written = write_capture(tmp_path / "Traffic_bayer.mat", rig, meas, "bayer-midscale", truth=video.reshape(2, 8, 32, 32, 3))
    assert open(written.path, "rb").read(10) == b"MATLAB 7.3"
    with h5py.File(written.path, "r") as handle:
        assert handle["orig"].shape == (16, 3, 32, 32)  # h5py sees MATLAB's axes reversed
    capture = load_capture(written.path)
    assert capture.layout == "bayer-midscale" and capture.bayer == "RGGB"
    np.testing.assert_allclose(capture.meas, meas, rtol=1e-5, atol=1e-6)
    assert capture.truth.shape == (2, 8, 32, 32, 3) and capture.truth_mosaic.shape == (2, 8, 32, 32)
    assert np.abs(capture.truth - video.reshape(2, 8, 32, 32, 3)).max() <= 0.5 / 255 + 1e-6
    assert any("verified" in note for note in capture.notes)


def test_round_trip_raw_dng(tmp_path):
    rig = Rig(H=32, W=48, B=8, bayer="GRBG", adc_bits=12, noise="gaussian:sigma=0.001")
    video = _video(True, size=32, frames=8)
    video = np.concatenate([video, video[:, :, :16]], axis=2)  # 32×48
    meas = rig.capture(video)
    written = write_capture(tmp_path / "frame.dng", rig, meas, "raw-frame")
    with pytest.raises(MaskRequiredError, match="B="):
        load_capture(written.path)
    with pytest.raises(ConfigError, match="B="):
        load_capture(written.path, mask=written.mask_path)
    capture = load_capture(written.path, mask=written.mask_path, B=8)
    assert capture.layout == "raw-frame" and capture.bayer == "GRBG" and capture.meas.shape == (1, 32, 48)
    fs = rig.capture_full_scale()
    assert np.abs(capture.meas[0] - meas[0] / fs).max() <= 0.5 / (4095 - 64) + 1e-6
    np.testing.assert_allclose(capture.masks, rig.effective_masks())
    info = load_capture(written.path, require_mask=False)
    assert info.masks is None and info.B is None


@pytest.mark.parametrize("pattern", ["RGGB", "BGGR", "GRBG", "GBRG"])
@pytest.mark.parametrize("bits", [10, 12, 16])
def test_dng_bit_exact(tmp_path, pattern, bits):
    import rawpy

    rng = np.random.default_rng(bits)
    raw = rng.integers(0, 2**bits, (24, 36)).astype(np.uint16)
    black, white = 2 ** (bits - 6), 2**bits - 5
    path = write_dng(tmp_path / "x.dng", raw, bayer=pattern, black_level=black, white_level=white, bits=bits)
    with rawpy.imread(str(path)) as image:
        np.testing.assert_array_equal(image.raw_image_visible, raw)
        letters = "".join(image.color_desc.decode()[i] for i in image.raw_pattern.reshape(-1))
        assert letters == pattern
        assert list(image.black_level_per_channel) == [black] * 4 and image.white_level == white
    capture = load_capture(path, require_mask=False)
    assert capture.bayer == pattern and capture.raw_range == (float(raw.min()), float(raw.max()))
    np.testing.assert_allclose(capture.meas[0], (raw.astype(np.float64) - black) / (white - black), rtol=1e-6)


def test_dng_writer_refuses_what_librar_cannot_read(tmp_path):
    with pytest.raises(ShapeError, match="22"):
        write_dng(tmp_path / "tiny.dng", np.zeros((16, 16), np.uint16))
    with pytest.raises(InvalidValueError):
        write_dng(tmp_path / "x.dng", np.zeros((24, 24), np.uint16), bits=14)
    with pytest.raises(ConfigError):
        write_dng(tmp_path / "x.dng", np.zeros((24, 24), np.uint16), bayer=None)


def test_snapcap_measurement_and_dataset_files(tmp_path):
    from dataset_fixtures import TinyCorpus

    from snapcap.cacti.simulate import simulate
    from snapcap.cacti.store import save_measurements
    from snapcap.datasets.h5 import DatasetConfig, make_dataset

    video = (np.random.default_rng(0).random((2, 8, 16, 16)) * 255).astype(np.uint8)
    result = simulate(video, B=4, masks="random", seed=1)
    for suffix in (".npz", ".h5"):
        path = save_measurements(tmp_path / f"sim{suffix}", result.meas, result.masks, result.params, frames=video)
        capture = load_capture(path)
        assert capture.layout == "snapcap-meas" and capture.meas.shape == (4, 16, 16) and capture.B == 4
        np.testing.assert_allclose(capture.meas, np.asarray(result.meas).reshape(4, 16, 16))
        np.testing.assert_allclose(capture.operator().A(capture.truth), capture.meas, atol=1e-4)
    out = tmp_path / "data.h5"
    make_dataset(TinyCorpus(3), out, DatasetConfig(B=4, T=2, size=(16, 16), gray=True, part_size=2), progress=False, workers=1)
    first = load_capture(out)
    second = load_capture(out, sample=2)
    assert first.layout == "snapcap-dataset" and first.meas.shape == (2, 16, 16) and first.truth.shape == (2, 4, 16, 16)
    assert not np.array_equal(first.meas, second.meas)
    np.testing.assert_allclose(first.operator().A(first.truth), first.meas, atol=1e-4)
    with pytest.raises(ConfigError, match="sample=3"):
        load_capture(out, sample=3)


# --------------------------------------------------------------------------------------------
# bad files
# --------------------------------------------------------------------------------------------


def test_bad_files(tmp_path, real_mask_file):
    rig = Rig(H=32, W=32, B=8)
    meas = rig.capture(_video(False))
    good = write_capture(tmp_path / "meas_x.mat", rig, meas, "qiao2020-dmd")
    data = good.path.read_bytes()
    truncated = tmp_path / "meas_trunc_cr_8.mat"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataFileError, match="meas_trunc_cr_8.mat"):
        load_capture(truncated, mask=good.mask_path)
    v73 = write_capture(tmp_path / "meas_y_cr_8.mat", rig, meas, "qiao2020-dmd", version="v7.3", mask_path=tmp_path / "m73.mat")
    blob = v73.path.read_bytes()
    cut = tmp_path / "meas_cut_cr_8.mat"
    cut.write_bytes(blob[: len(blob) * 2 // 3])
    with pytest.raises(DataFileError, match="meas_cut_cr_8.mat"):
        load_capture(cut, mask=v73.mask_path)
    # wrong keys: the error lists what the file holds
    wrong = tmp_path / "wrong.mat"
    write_mat_v5(wrong, frames=np.zeros((4, 5, 6)), labels=np.ones(3))
    with pytest.raises(UnknownLayoutError, match=r"frames \(4, 5, 6\).*labels \(1, 3\).*Known layouts"):
        load_capture(wrong)
    with pytest.raises(MissingKeyError, match="'meas'.*frames"):
        load_capture(wrong, layout="qiao2020-dmd")
    with pytest.raises(ConfigError, match="unknown capture layout"):
        load_capture(good.path, layout="kobe")
    # masks of the wrong B or size, NaN
    with pytest.raises(ShapeError, match="512×512"):
        load_capture(good.path, mask=real_mask_file)
    with pytest.raises(ShapeError, match="holds 4 frames; B=8"):
        load_capture(good.path, mask=rig.effective_masks()[:4])
    nan_meas = tmp_path / "nan_cr_8.mat"
    values = np.transpose(meas, (1, 2, 0)).astype(np.float64) * 255 / 4
    values[3, 4, 1] = np.nan
    write_mat_v5(nan_meas, meas=values)
    with pytest.raises(InvalidValueError, match="NaN"):
        load_capture(nan_meas, mask=good.mask_path)
    # values that are not 8-bit, no cr_NN, conflicting B
    big = tmp_path / "big_cr_8.mat"
    write_mat_v5(big, meas=np.full((32, 32), 300.0))
    with pytest.raises(InvalidValueError, match=r"0\.\.255.*normalisation="):
        load_capture(big, mask=good.mask_path)
    assert load_capture(big, mask=good.mask_path, normalisation="fullscale:4095").meas.max() == pytest.approx(300 / 4095 * 4)
    anonymous = tmp_path / "anonymous.mat"
    write_mat_v5(anonymous, meas=np.zeros((32, 32), np.uint8))
    with pytest.raises(ConfigError, match="_cr_NN"):
        load_capture(anonymous, mask=good.mask_path)
    assert load_capture(anonymous, mask=good.mask_path, B=8).B == 8
    # a benchmark file whose meas is not on the 8-bit scale of its orig
    scaled = tmp_path / "scaled.mat"
    video = _video(False)
    bench = write_capture(tmp_path / "b.mat", rig, meas, "gray-benchmark", truth=video.reshape(2, 8, 32, 32))
    stored = load_mat(bench.path)
    write_mat_v5(scaled, orig=stored["orig"], mask=stored["mask"], meas=stored["meas"] / 255)
    with pytest.raises(InvalidValueError, match="normalisation="):
        load_capture(scaled)
    # a mask file given as a capture, a missing file, a directory
    with pytest.raises(UnknownLayoutError, match="only masks"):
        load_capture(good.mask_path)
    with pytest.raises(DataFileError, match="no such file"):
        load_capture(tmp_path / "absent.mat")
    with pytest.raises(DataFileError, match="not a regular file"):
        load_capture(tmp_path)


def test_mislabelled_files_are_read_by_content(tmp_path):
    rig = Rig(H=32, W=32, B=8)
    written = write_capture(tmp_path / "meas_z.mat", rig, rig.capture(_video(False)), "qiao2020-dmd")
    renamed = tmp_path / "meas_z_cr_8.npz"
    renamed.write_bytes(written.path.read_bytes())
    capture = load_capture(renamed, mask=written.mask_path)
    assert capture.layout == "qiao2020-dmd" and any("does not match the content" in note for note in capture.notes)
    npz = tmp_path / "meas_w_cr_8.npz"
    np.savez(npz, meas=load_mat(written.path, ["meas"])["meas"])
    np.testing.assert_allclose(load_capture(npz, mask=written.mask_path).meas, capture.meas)
    npy = tmp_path / "meas_v_cr_8.npy"
    np.save(npy, load_mat(written.path, ["meas"])["meas"])
    np.testing.assert_allclose(load_capture(npy, mask=written.mask_path).meas, capture.meas)


# --------------------------------------------------------------------------------------------
# fuzz: nothing but SnapcapError escapes
# --------------------------------------------------------------------------------------------

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

SUFFIXES = [".mat", ".npz", ".npy", ".h5", ".dng", ".nef", ".cr2", ".bin", ""]
KEYS = ["meas", "mask", "orig", "meas_bayer", "mask_bayer", "orig_bayer", "params", "format", "masks", "x"]


@pytest.fixture(scope="module")
def fuzz_seeds(tmp_path_factory) -> dict[str, bytes]:
    """Valid files of every kind, whose bytes the fuzz truncates and mislabels."""
    root = tmp_path_factory.mktemp("seeds")
    rig = Rig(H=24, W=24, B=4, bayer="RGGB")
    video = _video(True, size=24, frames=8)
    meas = rig.capture(video)
    files = {
        "qiao": write_capture(root / "q.mat", rig, meas, "qiao2020-dmd").path,
        "qiao73": write_capture(
            root / "q73_cr_4.mat", rig, meas, "qiao2020-dmd", version="v7.3", mask_path=root / "m73.mat"
        ).path,
        "bayer": write_capture(root / "h.mat", rig, meas, "bayer-real").path,
        "mid": write_capture(root / "mid.mat", rig, meas, "bayer-midscale", truth=video.reshape(2, 4, 24, 24, 3)).path,
        "dng": write_capture(root / "f.dng", rig, meas[:1], "raw-frame").path,
    }
    np.savez(root / "a.npz", meas=np.zeros((24, 24, 2), np.uint8))
    np.save(root / "a.npy", np.zeros((24, 24), np.uint8))
    from snapcap.cacti.store import save_measurements

    save_measurements(root / "s.npz", meas[None], rig.effective_masks(), {"B": 4, "bayer": "RGGB"})
    save_measurements(root / "s.h5", meas[None], rig.effective_masks(), {"B": 4, "bayer": "RGGB"})
    files.update(npz=root / "a.npz", npy=root / "a.npy", snpz=root / "s.npz", sh5=root / "s.h5")
    return {name: Path(path).read_bytes() for name, path in files.items()}


def _must_only_raise_snapcap(path: Path, **kwargs) -> None:
    try:
        load_capture(path, **kwargs)
    except SnapcapError:
        pass


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(
    which=st.sampled_from(["qiao", "qiao73", "bayer", "mid", "dng", "npz", "npy", "snpz", "sh5"]),
    cut=st.floats(0.0, 1.0),
    suffix=st.sampled_from(SUFFIXES),
    flip=st.none() | st.integers(0, 10_000),
    with_mask=st.booleans(),
)
def test_fuzz_truncated_and_mislabelled(tmp_path_factory, fuzz_seeds, which, cut, suffix, flip, with_mask):
    blob = bytearray(fuzz_seeds[which])
    blob = blob[: int(len(blob) * cut)]
    if flip is not None and blob:
        blob[flip % len(blob)] ^= 0xFF
    path = tmp_path_factory.mktemp("fuzz") / f"meas_f_cr_4{suffix}"
    path.write_bytes(bytes(blob))
    _must_only_raise_snapcap(
        path, mask=np.full((4, 24, 24), 0.5, np.float32) if with_mask else None, B=4 if which == "dng" else None
    )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(
    data=st.binary(min_size=0, max_size=2048),
    suffix=st.sampled_from(SUFFIXES),
    head=st.sampled_from(
        [b"", b"MATLAB 5.0 MAT-file", b"MATLAB 7.3 MAT-file", b"\x93NUMPY", b"PK\x03\x04", b"II*\x00", b"\x89HDF\r\n\x1a\n"]
    ),
)
def test_fuzz_random_bytes(tmp_path_factory, data, suffix, head):
    path = tmp_path_factory.mktemp("bytes") / f"random_cr_8{suffix}"
    path.write_bytes(head + data)
    _must_only_raise_snapcap(path, require_mask=False)


_arrays = st.tuples(
    st.sampled_from([np.uint8, np.uint16, np.int32, np.float32, np.float64, np.bool_]),
    st.lists(st.integers(0, 6), min_size=0, max_size=4),
    st.sampled_from([0.0, 1.0, 255.0, 300.0, np.nan, -1.0]),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(
    arrays=st.dictionaries(st.sampled_from(KEYS), _arrays, min_size=1, max_size=4),
    container=st.sampled_from(["mat", "mat73", "npz"]),
    name=st.sampled_from(["meas_r_cr_4", "capture", "x_cr_0"]),
    seed=st.integers(0, 2**16),
)
def test_fuzz_random_arrays_under_random_keys(tmp_path_factory, arrays, container, name, seed):
    rng = np.random.default_rng(seed)
    variables = {}
    for key, (dtype, shape, special) in arrays.items():
        value = rng.random(shape) * 300 if shape else np.asarray(rng.random() * 300)
        if value.size and special != 0.0:
            value.flat[0] = special
        variables[key] = value.astype(dtype) if not (np.dtype(dtype).kind in "iub" and np.isnan(special)) else value
    folder = tmp_path_factory.mktemp("arrays")
    if container == "npz":
        path = folder / f"{name}.npz"
        np.savez(path, **variables)
    else:
        path = folder / f"{name}.mat"
        try:
            (write_mat_v73 if container == "mat73" else write_mat_v5)(path, **variables)
        except (ValueError, TypeError):
            return  # scipy cannot write some shapes (e.g. 0-d object); nothing to read
    _must_only_raise_snapcap(path, require_mask=False)
    _must_only_raise_snapcap(path, mask=np.full((4, 6, 6), 0.5, np.float32))


def test_npz_with_pickled_or_oversized_members(tmp_path):
    pickled = tmp_path / "p.npz"
    np.savez(pickled, meas=np.array([{"a": 1}], dtype=object))
    with pytest.raises(SnapcapError):
        load_capture(pickled, require_mask=False)
    # a member whose header announces far more data than it holds
    lying = tmp_path / "lie.npz"
    header = (
        b"\x93NUMPY\x01\x00"
        + b"v\x00"
        + b"{'descr': '<f8', 'fortran_order': False, 'shape': (100000, 100000), }".ljust(118)
        + b"\n"
    )
    with zipfile.ZipFile(lying, "w") as archive:
        archive.writestr("meas.npy", header + b"\x00" * 64)
    with pytest.raises(DataFileError, match="truncated"):
        load_capture(lying, require_mask=False)


# --------------------------------------------------------------------------------------------
# calibration
# --------------------------------------------------------------------------------------------

MISMATCH = dict(dx=0.6, dy=-0.4, rotation=0.3, blur=0.5, duty_cycle=0.9, clock_offset=0.1)
TOLERANCE = dict(dx=0.05, dy=0.05, rotation=0.05, blur=0.1, duty_cycle=0.02, clock_offset=0.03)
"""Stated tolerances of estimate_mismatch on a 64×64, B=8 rig with 10-bit shot+read noise."""


def test_phase_correlation_finds_shifts():
    from scipy import ndimage

    rng = np.random.default_rng(0)
    image = rng.random((64, 64))
    moved = ndimage.shift(image, (1.3, -2.6), order=1, mode="wrap")
    dy, dx, _ = phase_correlation(moved, image)
    assert abs(dy - 1.3) < 0.15 and abs(dx + 2.6) < 0.15


def test_calibrate_masks_from_sequence():
    rig = Rig(H=32, W=32, B=4, noise="poisson:photons=4000+gaussian:sigma=0.003", adc_bits=10, **MISMATCH)
    truth = rig.effective_masks()
    one = calibrate_masks(rig.calibration_sequence(repeats=1, seed=1))
    many = calibrate_masks(rig.calibration_sequence(repeats=16, seed=1), dark=rig.dark_frames(8, seed=2))
    assert many.masks.shape == (4, 32, 32) and many.repeats == 16 and np.isnan(one.noise_sigma)
    assert np.abs(many.masks - truth).mean() < np.abs(one.masks - truth).mean() / 2
    assert np.abs(many.masks - truth).mean() < 0.004
    assert 0.005 < many.noise_sigma < 0.03 and np.median(many.stderr) < 0.006
    scaled = calibrate_masks(rig.calibration_sequence(repeats=4, seed=1) * 2.0, white=2.0)
    assert np.abs(scaled.masks - truth).mean() < 0.006
    with pytest.raises(ShapeError):
        calibrate_masks(np.zeros((4, 32)))
    with pytest.raises(InvalidValueError):
        calibrate_masks(np.zeros((4, 2, 8, 8)), white=0.0)


def _psnr(rig, meas, masks, truth) -> float:
    from snapcap.recon.api import reconstruct
    from snapcap.recon.metrics import psnr

    result = reconstruct(np.ascontiguousarray(meas, dtype=np.float32), rig.operator(masks), "gap-tv")
    return float(psnr(np.clip(result.frames, 0, 1), truth).mean())


def _calibration_case(source: str, size: int = 64):
    from snapcap.datasets.synthetic import demo_video

    nominal = Rig(H=size, W=size, B=8, source=source, noise="poisson:photons=4000+gaussian:sigma=0.002", adc_bits=10)
    rig = nominal.with_mismatch(**MISMATCH)
    target = calibration_target(8, size, size, T=2, seed=1)
    estimate = estimate_mismatch(nominal, rig.capture(target.reshape(16, size, size), seed=3), target)
    for name, tolerance in TOLERANCE.items():
        assert abs(getattr(estimate, name) - MISMATCH[name]) <= tolerance, (name, getattr(estimate, name))
    assert estimate.success and estimate.relative_residual < 0.05
    measured = calibrate_masks(rig.calibration_sequence(repeats=16, seed=5)).masks
    video = demo_video(16, size, size, rgb=False)
    meas = rig.capture(video, seed=9)
    truth = video.reshape(2, 8, size, size)
    scores = {
        "true": _psnr(rig, meas, rig.effective_masks(), truth),
        "estimated": _psnr(rig, meas, estimate.masks(nominal), truth),
        "measured": _psnr(rig, meas, measured, truth),
        "nominal": _psnr(rig, meas, nominal.nominal_masks(), truth),
    }
    assert abs(scores["estimated"] - scores["true"]) < 0.5, scores
    assert abs(scores["measured"] - scores["true"]) < 0.5, scores
    assert scores["true"] - scores["nominal"] > 3.0, scores


def test_calibration_recovers_dmd_rig():
    _calibration_case("dmd")


@pytest.mark.slow
def test_calibration_recovers_piezo_rig():
    _calibration_case("piezo")


@pytest.mark.slow
def test_estimate_mismatch_bayer_and_array_nominal():
    nominal = Rig(H=48, W=48, B=8, bayer="RGGB", noise="gaussian:sigma=0.002")
    rig = nominal.with_mismatch(dx=-0.7, dy=0.35, rotation=-0.2, blur=0.3, duty_cycle=0.85, clock_offset=0.2)
    scene = np.repeat(calibration_target(8, 48, 48, T=1, seed=2)[..., None], 3, axis=-1) * np.array([1.0, 0.8, 0.6], np.float32)
    estimate = estimate_mismatch(nominal, rig.capture(scene.reshape(8, 48, 48, 3)), scene)
    assert abs(estimate.dx + 0.7) < 0.05 and abs(estimate.dy - 0.35) < 0.05 and abs(estimate.clock_offset - 0.2) < 0.03
    # nominal masks as an array (pixels as uniform squares): the shift is still found
    gray = Rig(H=48, W=48, B=8, source="piezo")
    moved = gray.with_mismatch(dx=0.5, dy=-0.3)
    target = calibration_target(8, 48, 48, seed=4)
    fit = estimate_mismatch(gray.nominal_masks(), moved.capture(target[0]), target, fit_blur=False, fit_clock=False, border=6)
    assert abs(fit.dx - 0.5) < 0.05 and abs(fit.dy + 0.3) < 0.05 and abs(fit.duty_cycle - 1.0) < 0.02


# --------------------------------------------------------------------------------------------
# snapcap capture info / preview
# --------------------------------------------------------------------------------------------


def test_cli_info_and_preview(tmp_path, capsys):
    rig = Rig(H=32, W=32, B=8)
    written = write_capture(tmp_path / "meas_c.mat", rig, rig.capture(_video(False)), "qiao2020-dmd")
    assert run_cli("capture", "info", str(written.path), "--mask-file", str(written.mask_path)) == 0
    out = capsys.readouterr().out
    assert "qiao2020-dmd" in out and "(8, 32, 32)" in out
    out_png = tmp_path / "prev.png"
    assert run_cli("capture", "preview", str(written.path), "-o", str(out_png)) == 0
    assert out_png.read_bytes()[:8] == PNG and "no reconstruction preview" in capsys.readouterr().out
    assert (
        run_cli(
            "capture",
            "preview",
            str(written.path),
            "--mask-file",
            str(written.mask_path),
            "-o",
            str(out_png),
            "--iterations",
            "5",
        )
        == 0
    )
    recon = tmp_path / "prev_recon.png"
    assert recon.read_bytes()[:8] == PNG
    with pytest.raises(ConfigError, match="image"):
        run_cli("capture", "preview", str(written.path), "-o", str(tmp_path / "prev.txt"))
    with pytest.raises(DataFileError, match="no such file"):
        run_cli("capture", "info", str(tmp_path / "missing.mat"))
    wrong_size = tmp_path / "wrong_size.mat"
    write_mask_file(wrong_size, shifting(8, 16, 16))
    with pytest.raises(ShapeError, match="16×16"):
        run_cli("capture", "preview", str(written.path), "--mask-file", str(wrong_size), "-o", str(out_png))
    capsys.readouterr()
    args = (
        "--mask-file",
        str(written.mask_path),
        "--mask-key",
        "mask",
        "--B",
        "8",
        "--layout",
        "qiao2020-dmd",
        "--normalisation",
        "fullscale:255",
    )
    assert run_cli("capture", "info", str(written.path), *args, "--json") == 0
    assert json.loads(capsys.readouterr().out)["masks_shape"] == [8, 32, 32]


def test_cli_preview_benchmark_with_truth(tmp_path):
    path = data_path("gray_benchmark/drop8_cacti.mat")
    out = tmp_path / "drop.png"
    assert run_cli("capture", "preview", str(path), "-o", str(out), "--iterations", "3") == 0
    assert out.read_bytes()[:8] == PNG and (tmp_path / "drop_recon.png").read_bytes()[:8] == PNG
