"""Deep denoisers: FFDNet (IPOL and KAIR layouts, real checkpoints) and FastDVDnet."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import data_path, to_backend

from snapcap.errors import ConfigError, DataFileError, DTypeError, InvalidValueError, ShapeError
from snapcap.matfile import load_mat
from snapcap.recon.denoisers.base import Denoiser
from snapcap.recon.denoisers.fastdvdnet import (
    FastDVDnet,
    FastDVDnetDenoiser,
    load_fastdvdnet,
    temporal_indices,
    train_fastdvdnet,
)
from snapcap.recon.denoisers.ffdnet import FFDNet, FFDNetDenoiser, FFDNetKAIR, load_ffdnet

SIGMA = 25 / 255


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2)))


@pytest.fixture(scope="module")
def drop_frames() -> np.ndarray:
    """The drop40 ground truth as (40, 256, 256) float32 in [0, 1]."""
    orig = load_mat(data_path("gray_benchmark/drop40_cacti.mat"), ["orig"])["orig"]
    return np.ascontiguousarray(np.moveaxis(orig, -1, 0), dtype=np.float32) / 255


@pytest.fixture(scope="module")
def gray_model() -> FFDNet:
    return load_ffdnet(data_path("weights/net_gray.pth"))


def _noisy(clean: np.ndarray, sigma: float = SIGMA, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (clean + sigma * rng.standard_normal(clean.shape)).astype(np.float32)


def _randomise_bn(model: torch.nn.Module, seed: int = 0) -> None:
    """Non-trivial BatchNorm statistics so a round trip that drops buffers would show."""
    gen = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.copy_(0.1 * torch.randn(module.running_mean.shape, generator=gen))
            module.running_var.copy_(0.5 + torch.rand(module.running_var.shape, generator=gen))


# --- FFDNet: real checkpoints ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "cls", "channels", "convs"),
    [("net_gray.pth", FFDNet, 1, 15), ("net_rgb.pth", FFDNet, 3, 12), ("ffdnet_color.pth", FFDNetKAIR, 3, 12)],
)
def test_checkpoint_keys_match_exactly(name, cls, channels, convs):
    path = data_path(f"weights/{name}")
    raw = torch.load(path, map_location="cpu", weights_only=True)
    keys = {k.removeprefix("module.") for k in raw}
    expected = {k for k in cls(channels).state_dict() if not k.endswith("num_batches_tracked")}
    assert keys == expected  # no missing, no unexpected keys
    model = load_ffdnet(path)
    assert type(model) is cls and model.channels == channels and model.num_conv_layers == convs
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    for key, value in model.state_dict().items():
        if not key.endswith("num_batches_tracked"):
            raw_key = key if key in raw else "module." + key
            assert torch.equal(value, raw[raw_key])


def test_net_gray_denoises(drop_frames, gray_model):
    clean = drop_frames[0]
    noisy = _noisy(clean)
    out = FFDNetDenoiser(gray_model)(noisy, SIGMA)
    before, after = psnr(noisy, clean), psnr(out, clean)
    print(f"\nnet_gray.pth drop40 frame 0, sigma 25/255: PSNR {before:.2f} -> {after:.2f} dB")
    assert out.shape == clean.shape and out.dtype == np.float32
    assert after > before + 5


@pytest.mark.parametrize("name", ["net_rgb.pth", "ffdnet_color.pth"])
def test_colour_checkpoints_denoise(drop_frames, name):
    # A natural-looking colour image: three frames of the drop video as R, G, B.
    clean = np.stack([drop_frames[0], drop_frames[15], drop_frames[30]], axis=-1)[:128, :160]
    noisy = _noisy(clean, seed=1)
    denoiser = FFDNetDenoiser(data_path(f"weights/{name}"))
    assert denoiser.colour
    out = denoiser(noisy, SIGMA)
    before, after = psnr(noisy, clean), psnr(out, clean)
    print(f"\n{name} colour 128x160, sigma 25/255: PSNR {before:.2f} -> {after:.2f} dB")
    assert out.shape == clean.shape
    assert after > before + 5


# --- FFDNet: the protocol --------------------------------------------------------------------


def test_batched_equals_frame_by_frame_and_chunks(gray_model, rng):
    x = rng.random((2, 3, 21, 19)).astype(np.float32)  # odd sizes
    denoiser = FFDNetDenoiser(gray_model)
    assert isinstance(denoiser, Denoiser)
    out = denoiser(x, 0.1)
    assert out.shape == x.shape
    single = np.stack([np.stack([denoiser(x[i, j], 0.1) for j in range(3)]) for i in range(2)])
    np.testing.assert_allclose(out, single, atol=1e-5)
    np.testing.assert_allclose(FFDNetDenoiser(gray_model, batch_size=4)(x, 0.1), out, atol=1e-5)


@pytest.mark.parametrize("shape", [(1, 1), (3, 5, 7), (2, 30, 31), (2, 1, 8, 9)])
def test_odd_and_tiny_sizes(gray_model, rng, shape):
    x = rng.random(shape).astype(np.float32)
    out = FFDNetDenoiser(gray_model)(x, 0.05)
    assert out.shape == x.shape and np.isfinite(out).all()
    assert out.min() >= 0 and out.max() <= 1


def test_backends_dtype_and_no_mutation(gray_model, rng, backend):
    base = rng.random((2, 20, 22))
    for dtype in (np.float32, np.float64):
        x = to_backend(base.astype(dtype), backend)
        copy = np.array(to_backend(base.astype(dtype), "numpy"))
        out = FFDNetDenoiser(gray_model)(x, SIGMA)
        assert type(out) is type(x)
        assert str(out.dtype) == str(x.dtype)
        assert tuple(out.shape) == tuple(x.shape)
        np.testing.assert_array_equal(np.asarray(x if backend != "torch" else x.numpy()), copy)
        ref = FFDNetDenoiser(gray_model)(base.astype(np.float32), SIGMA)
        got = out.numpy() if backend == "torch" else np.asarray(out)
        np.testing.assert_allclose(got, ref, atol=1e-6)


def test_torch_output_is_an_ordinary_tensor(gray_model):
    x = torch.rand(3, 16, 16)
    out = FFDNetDenoiser(gray_model)(x, SIGMA)
    assert not out.is_inference() and not out.requires_grad
    out.mul_(2)  # a solver may update it in place
    x_grad = torch.rand(2, 16, 16, requires_grad=True)
    assert not FFDNetDenoiser(gray_model)(x_grad, SIGMA).requires_grad


def test_unclipped_output_and_sigma_zero(gray_model, rng):
    x = rng.random((2, 16, 16)).astype(np.float32)
    out = FFDNetDenoiser(gray_model, clip=False)(x * 3 - 1, 0.0)
    assert out.min() < 0 or out.max() > 1


def test_ffdnet_bad_input(gray_model, tmp_path):
    denoiser = FFDNetDenoiser(gray_model)
    with pytest.raises(ShapeError):
        denoiser(np.zeros(5, np.float32), SIGMA)
    with pytest.raises(DTypeError):
        denoiser(np.zeros((4, 4), np.uint8), SIGMA)
    with pytest.raises(InvalidValueError):
        denoiser(np.zeros((4, 4), np.float32), -0.1)
    with pytest.raises(InvalidValueError):
        denoiser(np.zeros((4, 4), np.float32), float("nan"))
    with pytest.raises(ShapeError, match="H, W, 3"):
        FFDNetDenoiser(FFDNet(3).eval())(np.zeros((2, 8, 8), np.float32), SIGMA)
    with pytest.raises(ShapeError):
        gray_model(torch.zeros(1, 3, 8, 8), SIGMA)
    with pytest.raises(ConfigError):
        FFDNetDenoiser(gray_model, batch_size=0)
    with pytest.raises(ConfigError):
        load_ffdnet(data_path("weights/net_gray.pth"), layout="dncnn")


def test_ffdnet_checkpoint_errors(tmp_path):
    with pytest.raises(DataFileError, match="does not exist"):
        load_ffdnet(tmp_path / "nope.pth")
    text = tmp_path / "notes.pth"
    text.write_text("this is not a checkpoint\n")
    with pytest.raises(DataFileError, match="not a readable PyTorch checkpoint"):
        load_ffdnet(text)
    gray = data_path("weights/net_gray.pth")
    with pytest.raises(DataFileError, match=r"missing key.*model\.0\.weight.*unexpected key.*intermediate_dncnn"):
        load_ffdnet(gray, layout="kair")
    with pytest.raises(DataFileError, match=r"expected \(96, 15, 3, 3\), found \(64, 5, 3, 3\)"):
        load_ffdnet(gray, channels=3)
    odd = tmp_path / "odd.pth"
    torch.save({"encoder.weight": torch.zeros(3)}, odd)
    with pytest.raises(DataFileError, match="not an FFDNet checkpoint"):
        load_ffdnet(odd)
    fastdvd = tmp_path / "fastdvd.pth"
    torch.save(FastDVDnet(channels=(4, 8, 8), interm_channels=2).state_dict(), fastdvd)
    with pytest.raises(DataFileError, match="load_fastdvdnet"):
        load_ffdnet(fastdvd)


def test_ffdnet_wrapped_checkpoint_round_trip(tmp_path, rng):
    model = FFDNet(1, num_features=8, num_conv_layers=4)
    _randomise_bn(model)
    path = tmp_path / "wrapped.pth"
    torch.save({"epoch": 3, "state_dict": {"module." + k: v for k, v in model.state_dict().items()}}, path)
    loaded = load_ffdnet(path)
    assert (loaded.num_features, loaded.num_conv_layers) == (8, 4)
    x = torch.from_numpy(rng.random((2, 1, 10, 12)).astype(np.float32))
    with torch.no_grad():
        torch.testing.assert_close(loaded(x, 0.1), model.eval()(x, 0.1))
    kair = FFDNetKAIR(1, num_features=8, num_conv_layers=3)
    torch.save({"params": kair.state_dict()}, path)
    assert isinstance(load_ffdnet(path), FFDNetKAIR)


# --- FastDVDnet ------------------------------------------------------------------------------


def _tiny(channels: int = 1) -> FastDVDnet:
    torch.manual_seed(0)
    model = FastDVDnet(num_color_channels=channels, channels=(8, 16, 16), interm_channels=4)
    _randomise_bn(model)
    return model.eval()


def test_official_parameter_names():
    keys = set(FastDVDnet(num_color_channels=3).state_dict())
    for key in (
        "temp1.inc.convblock.0.weight",
        "temp1.inc.convblock.1.running_var",
        "temp1.downc0.convblock.3.convblock.4.weight",
        "temp2.upc2.convblock.1.weight",
        "temp2.outc.convblock.3.weight",
    ):
        assert key in keys
    sd = FastDVDnet(num_color_channels=3).state_dict()
    assert tuple(sd["temp1.inc.convblock.0.weight"].shape) == (90, 4, 3, 3)
    assert tuple(sd["temp1.upc1.convblock.1.weight"].shape) == (128, 64, 3, 3)
    assert tuple(sd["temp2.outc.convblock.3.weight"].shape) == (3, 32, 3, 3)
    gray = FastDVDnet(num_color_channels=1).state_dict()
    assert tuple(gray["temp1.inc.convblock.0.weight"].shape) == (90, 2, 3, 3)


@pytest.mark.parametrize("channels", [1, 3])
def test_fastdvdnet_shapes(channels):
    model = FastDVDnet(num_color_channels=channels).eval()
    x = torch.rand(2, 5 * channels, 18, 23)  # not multiples of 4
    with torch.no_grad():
        assert model(x, 0.1).shape == (2, channels, 18, 23)
        assert model(x, torch.full((2, 1, 18, 23), 0.1)).shape == (2, channels, 18, 23)
    with pytest.raises(ShapeError):
        model(torch.rand(2, 4 * channels, 8, 8), 0.1)
    video = np.random.default_rng(0).random((2, 4, 10, 13) + ((3,) if channels == 3 else ())).astype(np.float32)
    out = FastDVDnetDenoiser(model)(video, SIGMA)
    assert out.shape == video.shape and out.dtype == np.float32


def test_temporal_reflection():
    np.testing.assert_array_equal(temporal_indices(6, range(-2, 8)), [2, 1, 0, 1, 2, 3, 4, 5, 4, 3])
    np.testing.assert_array_equal(temporal_indices(1, range(-2, 3)), [0] * 5)
    np.testing.assert_array_equal(temporal_indices(2, range(-2, 4)), [0, 1, 0, 1, 0, 1])


@pytest.mark.parametrize("frames", [1, 2, 5, 7])
def test_fastdvdnet_denoiser_matches_window_by_window(frames, rng):
    model = _tiny()
    video = rng.random((2, frames, 9, 14)).astype(np.float32)
    out = FastDVDnetDenoiser(model, clip=False)(video, 0.1)
    chunked = FastDVDnetDenoiser(model, clip=False, batch_size=3)(video, 0.1)
    ref = np.empty_like(video)
    with torch.no_grad():
        for v in range(2):
            for t in range(frames):
                window = torch.from_numpy(video[v, temporal_indices(frames, range(t - 2, t + 3))])[None]
                ref[v, t] = model(window, 0.1)[0, 0].numpy()
    scale = max(1.0, float(np.abs(ref).max()))
    np.testing.assert_allclose(out, ref, atol=1e-5 * scale)
    np.testing.assert_allclose(chunked, out, atol=1e-5 * scale)


def test_fastdvdnet_backends_and_errors(rng):
    model = _tiny()
    denoiser = FastDVDnetDenoiser(model)
    x = torch.from_numpy(rng.random((5, 12, 12)))  # float64 torch
    before = x.clone()
    out = denoiser(x, SIGMA)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float64 and out.shape == x.shape
    assert torch.equal(x, before) and not out.is_inference()
    with pytest.raises(ShapeError):
        denoiser(np.zeros((8, 8), np.float32), SIGMA)
    with pytest.raises(ShapeError, match="B, H, W, 3"):
        FastDVDnetDenoiser(_tiny(3))(np.zeros((4, 8, 8), np.float32), SIGMA)
    with pytest.raises(ConfigError):
        FastDVDnet(num_input_frames=3)


def test_fastdvdnet_training_loss_falls():
    model = FastDVDnet(channels=(8, 16, 16), interm_channels=4)
    clips = torch.from_numpy(np.random.default_rng(0).random((2, 6, 12, 12)).astype(np.float32))
    history = train_fastdvdnet(model, clips, steps=25, batch_size=2, lr=3e-3, patch_size=8, seed=0)
    assert len(history) == 25 and all(np.isfinite(history))
    assert np.mean(history[-5:]) < 0.5 * np.mean(history[:5])
    assert not model.training
    with pytest.raises(ShapeError):
        train_fastdvdnet(model, clips[:, :4], steps=1, patch_size=8)
    with pytest.raises(ConfigError):
        train_fastdvdnet(model, clips, steps=1, patch_size=10)
    with pytest.raises(ConfigError):
        train_fastdvdnet(model, clips, steps=1, patch_size=16)


def test_fastdvdnet_save_load_round_trip(tmp_path, rng):
    model = _tiny()
    path = tmp_path / "fastdvdnet.pth"
    torch.save({"module." + k: v for k, v in model.state_dict().items()}, path)
    loaded = load_fastdvdnet(path)
    assert loaded.channels == (8, 16, 16) and loaded.num_color_channels == 1 and not loaded.training
    video = rng.random((6, 12, 16)).astype(np.float32)
    np.testing.assert_array_equal(FastDVDnetDenoiser(loaded)(video, 0.1), FastDVDnetDenoiser(model)(video, 0.1))
    colour = tmp_path / "colour.pth"
    torch.save({"state_dict": FastDVDnet(num_color_channels=3).state_dict()}, colour)
    assert load_fastdvdnet(colour).num_color_channels == 3
    with pytest.raises(DataFileError, match=r"expected \(90, 2, 3, 3\), found \(90, 4, 3, 3\)"):
        load_fastdvdnet(colour, channels=1)


def test_fastdvdnet_checkpoint_errors(tmp_path):
    with pytest.raises(DataFileError, match=r"IPOL FFDNet.*missing key.*temp1\.inc\.convblock\.0\.weight.*load_ffdnet"):
        load_fastdvdnet(data_path("weights/net_gray.pth"))
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"\x00\x01garbage" * 10)
    with pytest.raises(DataFileError, match="not a readable PyTorch checkpoint"):
        load_fastdvdnet(junk)
    with pytest.raises(DataFileError, match="does not exist"):
        load_fastdvdnet(tmp_path / "missing.pth")
    listing = tmp_path / "list.pth"
    torch.save([1, 2, 3], listing)
    with pytest.raises(DataFileError, match="not a state dict"):
        load_fastdvdnet(listing)
    partial = tmp_path / "partial.pth"
    sd = _tiny().state_dict()
    sd.pop("temp2.outc.convblock.3.weight")
    sd["temp2.extra.weight"] = torch.zeros(1)
    torch.save(sd, partial)
    with pytest.raises(
        DataFileError, match=r"1 missing key\(s\): temp2\.outc\.convblock\.3\.weight.*1 unexpected key\(s\): temp2\.extra\.weight"
    ):
        load_fastdvdnet(partial)


# --- heavier cases ---------------------------------------------------------------------------


@pytest.mark.slow
def test_net_gray_on_a_video(drop_frames, gray_model):
    clean = drop_frames[:8]
    noisy = _noisy(clean, sigma=50 / 255, seed=3)
    out = FFDNetDenoiser(gray_model, batch_size=3)(torch.from_numpy(noisy), 50 / 255).numpy()
    assert psnr(out, clean) > psnr(noisy, clean) + 8


@pytest.mark.slow
def test_paper_size_fastdvdnet_trains_and_denoises(drop_frames):
    model = FastDVDnet(num_color_channels=1)
    clips = drop_frames[None, :10, :64, :64]
    history = train_fastdvdnet(model, clips, steps=12, batch_size=2, patch_size=16, seed=0)
    assert np.mean(history[-3:]) < np.mean(history[:3])
    out = FastDVDnetDenoiser(model, batch_size=4)(drop_frames[:8, :64, :64], SIGMA)
    assert out.shape == (8, 64, 64) and np.isfinite(out).all()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_module_matches_cpu(rng):
    path = data_path("weights/net_gray.pth")
    x = rng.random((3, 24, 26)).astype(np.float32)
    cpu = FFDNetDenoiser(path)(x, SIGMA)
    gpu = FFDNetDenoiser(path, device="cuda")
    out_np = gpu(x, SIGMA)
    assert isinstance(out_np, np.ndarray)
    out_t = gpu(torch.from_numpy(x).cuda(), SIGMA)
    assert out_t.is_cuda
    np.testing.assert_allclose(out_np, cpu, atol=1e-3)
    np.testing.assert_allclose(out_t.cpu().numpy(), cpu, atol=1e-3)
    video = FastDVDnetDenoiser(_tiny().cuda())(torch.from_numpy(x).cuda(), SIGMA)
    assert video.is_cuda and video.shape == x.shape
