"""The published networks' registry: names and presets, checkpoints in every official layout,
errors that name the keys, and the ``reconstruct`` wiring (backends, Bayer, tiling, the CLI)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.io
import torch

from snapcap.cacti import CactiOperator
from snapcap.cacti.masks import random_binary
from snapcap.cli import main
from snapcap.errors import ConfigError, DataFileError
from snapcap.recon.api import METHODS, reconstruct
from snapcap.recon.nets import NETS, create_net, infer_config, list_nets, load_checkpoint, net_config, read_state_dict
from snapcap.recon.nets.inference import window_starts

SMALL = {"in_ch": 8, "units": 1, "group_num": 2}  # an EfficientSCI far below the published sizes
SMALL_TEXT = "in_ch=8,units=1,group_num=2"


def small(color: int = 1, seed: int = 0):
    torch.manual_seed(seed)
    return create_net("efficientsci", color_ch=color, **SMALL)


def scene(B: int = 8, size: int = 32, N: int = 2, seed: int = 0):
    rng = np.random.default_rng(seed)
    frames = rng.random((N, B, size, size), dtype=np.float32)
    op = CactiOperator(random_binary(B, size, size, seed=seed))
    return op, np.asarray(op.A(frames), dtype=np.float32)


def test_names_are_the_networks_and_their_presets():
    names = list_nets()
    assert names[:3] == ["birnat", "stformer", "efficientsci"]
    for preset in ("stformer-base", "efficientsci-tiny", "efficientsci-small", "efficientsci-base", "efficientsci-large"):
        assert preset in names
    assert net_config("efficientsci-base") == {"in_ch": 64, "units": 8, "group_num": 4, "color_ch": 1}
    assert net_config("efficientsci-base", color_ch=3)["color_ch"] == 3
    with pytest.raises(ConfigError, match="unknown network 'efficientsci-huge'"):
        create_net("efficientsci-huge")
    with pytest.raises(ConfigError, match="unknown argument.*channels.*it takes in_ch, units, group_num, color_ch"):
        create_net("efficientsci", channels=3)
    for name in NETS:
        assert name in METHODS


@pytest.mark.parametrize(
    "layout",
    [
        lambda sd: {"epoch": 3, "model_state_dict": sd, "optim_state_dict": {}},  # the cacti toolbox's training files
        lambda sd: {"state_dict": sd},
        lambda sd: sd,  # bare
        lambda sd: {"model_state_dict": {f"module.{k}": v for k, v in sd.items()}},  # saved from DDP
        lambda sd: {"epoch": 7, "psnr": np.float64(31.5), "curve": np.zeros(3), "state_dict": sd},  # numpy beside
    ],
    ids=["toolbox", "state_dict", "bare", "ddp", "numpy-metrics"],
)
def test_every_official_layout_loads_to_the_same_network(tmp_path, layout):
    source = small(seed=1)
    path = tmp_path / "ckpt.pth"
    torch.save(layout(source.state_dict()), path)
    assert read_state_dict(path).keys() == source.state_dict().keys()
    net = load_checkpoint(small(seed=2), path)
    op, meas = scene()
    masks = torch.tensor(np.asarray(op.masks, dtype=np.float32))
    with torch.no_grad():
        torch.testing.assert_close(net(torch.from_numpy(meas), masks), source(torch.from_numpy(meas), masks), rtol=0, atol=0)


def test_a_checkpoint_of_another_network_or_size_is_refused_with_its_keys(tmp_path):
    path = tmp_path / "other.pth"
    torch.save({"model_state_dict": create_net("efficientsci", in_ch=16, units=1, group_num=2).state_dict()}, path)
    with pytest.raises(ConfigError, match=r"other\.pth: not a checkpoint of this efficientsci .*of another shape"):
        load_checkpoint(small(), path)
    birnat = tmp_path / "birnat.pth"
    torch.save(create_net("birnat").state_dict(), birnat)
    with pytest.raises(ConfigError, match=r"missing \d+ key\(s\): .*unexpected \d+ key\(s\): first_frame_net\."):
        load_checkpoint(small(), birnat)


def test_damaged_and_pickled_files_are_data_errors(tmp_path):
    with pytest.raises(DataFileError, match="no such checkpoint"):
        read_state_dict(tmp_path / "absent.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a torch file")
    with pytest.raises(DataFileError, match=r"junk\.pth: not a readable torch checkpoint"):
        read_state_dict(tmp_path / "junk.pth")
    torch.save(small(), tmp_path / "module.pth")  # a whole pickled module, as BIRNAT's authors saved theirs
    with pytest.raises(DataFileError, match="pickled code"):
        read_state_dict(tmp_path / "module.pth")
    torch.save({"epoch": 1}, tmp_path / "empty.pth")
    with pytest.raises(DataFileError, match="no state dict found"):
        read_state_dict(tmp_path / "empty.pth")


def test_the_preset_and_colour_variant_are_read_from_a_checkpoints_shapes():
    with torch.device("meta"):
        for preset in ("efficientsci-tiny", "efficientsci-small"):
            for color in (1, 3):
                state = create_net(preset, color_ch=color).state_dict()
                assert infer_config("efficientsci", state) == (preset, dict(net_config(preset), color_ch=color))
        state = create_net("efficientsci-tiny").state_dict()
    with pytest.raises(ConfigError, match="not a efficientsci preset|not an? efficientsci preset"):
        infer_config("efficientsci", state, preset="stformer-base")
    with pytest.raises(ConfigError, match="matches no efficientsci preset"):
        infer_config("efficientsci", small().state_dict())


def test_stformer_checkpoints_without_the_unused_conv_cat_load(tmp_path):
    entry = NETS["stformer"]
    assert entry.optional_keys, "the standalone STFormer files lack the toolbox's conv_cat"
    torch.manual_seed(0)
    net = create_net("stformer", units=1, dim=16)
    state = {k: v for k, v in net.state_dict().items() if ".conv_cat." not in k}  # the standalone repository's keys
    assert len(state) < len(net.state_dict())
    path = tmp_path / "standalone.pth"
    torch.save({"model_state_dict": state}, path)
    torch.manual_seed(1)
    other = load_checkpoint(create_net("stformer", units=1, dim=16), path)
    for key, value in state.items():
        torch.testing.assert_close(other.state_dict()[key], value, rtol=0, atol=0)
    state.pop(next(iter(state)))  # anything else missing is an error
    torch.save(state, path)
    with pytest.raises(ConfigError, match="missing 1 key"):
        load_checkpoint(create_net("stformer", units=1, dim=16), path)


def test_reconstruct_runs_a_checkpoint_in_the_callers_backend(tmp_path):
    net = small(seed=3)
    path = tmp_path / "small.pth"
    torch.save({"model_state_dict": net.state_dict()}, path)
    op, meas = scene()
    with torch.no_grad():
        expected = net(torch.from_numpy(meas), torch.tensor(np.asarray(op.masks, dtype=np.float32))).numpy()
    out = reconstruct(meas, op, "efficientsci", weights=str(path), config=SMALL_TEXT).frames
    assert isinstance(out, np.ndarray) and out.shape == (2, 8, 32, 32)
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-6)
    import snapcap.recon.api as api

    calls = []
    to_numpy = api.to_numpy
    api.to_numpy = lambda x: calls.append(type(x)) or to_numpy(x)
    try:
        torch_out = reconstruct(torch.from_numpy(meas), op, "efficientsci", weights=str(path), config=SMALL_TEXT).frames
    finally:
        api.to_numpy = to_numpy
    assert isinstance(torch_out, torch.Tensor) and calls == []  # a tensor stays a tensor: no round trip through numpy
    np.testing.assert_allclose(torch_out.numpy(), expected, rtol=0, atol=1e-6)
    one = reconstruct(meas[0], op, "efficientsci", weights=str(path), config=SMALL_TEXT, batch_size=1).frames
    np.testing.assert_allclose(one, expected[0], rtol=0, atol=1e-5)
    with pytest.raises(ConfigError, match="needs weights="):
        reconstruct(meas, op, "efficientsci")
    with pytest.raises(ConfigError, match="float16 inference is for CUDA"):
        reconstruct(meas, op, "efficientsci", weights=str(path), config=SMALL_TEXT, half=True)


def test_a_colour_network_takes_the_bayer_mosaic_and_returns_rgb(tmp_path):
    net = small(color=3, seed=4)
    path = tmp_path / "colour.pth"
    torch.save(net.state_dict(), path)
    masks = random_binary(8, 32, 32, seed=0)
    op = CactiOperator(masks, bayer="rggb")
    frames = np.random.default_rng(0).random((1, 8, 32, 32, 3), dtype=np.float32)
    meas = np.asarray(op.A(frames), dtype=np.float32)
    out = reconstruct(meas, op, "efficientsci", weights=str(path), config=SMALL_TEXT.replace("in_ch", "color_ch=3,in_ch")).frames
    assert out.shape == (1, 8, 32, 32, 3)
    with pytest.raises(ConfigError, match="needs a Bayer camera"):
        reconstruct(meas, CactiOperator(masks), "efficientsci", weights=str(path), config="color_ch=3," + SMALL_TEXT)


def test_tiles_cover_the_frame_and_blend_back_a_pixelwise_network(tmp_path):
    assert window_starts(512, 256, 32) == [0, 224, 256]
    assert window_starts(100, 128, 16) == [0]
    starts = window_starts(300, 64, 16)
    assert starts[0] == 0 and starts[-1] == 300 - 64 and all(b - a <= 64 - 16 for a, b in zip(starts, starts[1:]))

    class Pixelwise(torch.nn.Module):  # no context: tiling must give exactly the whole-frame output
        def forward(self, meas, masks):
            return meas[:, None] * masks[None] * 0.5

    from snapcap.recon.nets.inference import tiled

    meas, masks = torch.rand(2, 96, 80), torch.rand(8, 96, 80)
    torch.testing.assert_close(tiled(Pixelwise(), meas, masks, 32, 8), Pixelwise()(meas, masks))


def test_the_cli_reconstructs_with_a_network_checkpoint(tmp_path):
    net = small(seed=5)
    path = tmp_path / "small.pth"
    torch.save({"epoch": 0, "model_state_dict": net.state_dict(), "optim_state_dict": {}}, path)
    rng = np.random.default_rng(0)
    orig = rng.integers(0, 256, (32, 32, 8), dtype=np.uint8)
    mask = random_binary(8, 32, 32, seed=0).transpose(1, 2, 0).astype(np.uint8)
    meas = (orig.astype(np.float64) * mask).sum(-1, keepdims=True)
    scipy.io.savemat(tmp_path / "scene_cacti.mat", {"orig": orig, "mask": mask, "meas": meas})  # the benchmark's layout
    code = main(
        ["reconstruct", str(tmp_path / "scene_cacti.mat"), "--method", "efficientsci", "--weights", str(path),
         "--recon-param", f"efficientsci:config={SMALL_TEXT}", "--video", "none", "-o", str(tmp_path / "out")]
    )  # fmt: skip
    assert code == 0
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["method"] == "efficientsci"
    bad = main(
        ["reconstruct", str(tmp_path / "capture.npz"), "--method", "stformer", "--weights", str(path), "-o", str(tmp_path / "x")]
    )
    assert bad == 2


def test_a_network_checkpoint_gives_a_two_stage_row_in_compare(tmp_path):
    from snapcap.compare import compare_preset, run_compare

    path = tmp_path / "small.pth"
    torch.save({"model_state_dict": small(seed=6).state_dict()}, path)
    config = compare_preset(
        "micro",
        B=(4,),
        students=(),
        recon=("gap-tv", "efficientsci"),
        recon_params={"gap-tv": {"iterations": 5}, "efficientsci": {"weights": str(path), "config": SMALL_TEXT}},
    )
    results = run_compare(config, tmp_path / "out", progress=False, quiet=True)
    rows = {row["pipeline"]: row for row in results["rows"]}
    assert set(rows) == {"teacher", "two-stage:gap-tv", "two-stage:efficientsci"}
    assert rows["two-stage:efficientsci"]["psnr"] is not None and rows["two-stage:efficientsci"]["recon_ms"] > 0
    assert "two-stage efficientsci" in (tmp_path / "out" / "report.md").read_text()
    with pytest.raises(ConfigError, match="stformer need their checkpoints: --recon-param stformer:weights=PATH"):
        run_compare(compare_preset("micro", B=(4,), students=(), recon=("stformer",)), tmp_path / "x", progress=False, quiet=True)


def test_each_network_trains_with_its_authors_recipe():
    from snapcap.recon.train import net_training

    for arch, crop in (("efficientsci-tiny", 128), ("stformer-base", 128), ("birnat", 256)):
        config = net_training(arch)
        assert (config.arch, config.loss, config.lr, config.schedule, config.clip, config.patch) == (
            arch,
            "rmse",
            1e-4,
            "constant",
            None,
            crop,
        )
        assert config.flips and config.batch_size == 1
    assert net_training("efficientsci", net=SMALL, steps=5).net == SMALL
    with pytest.raises(ConfigError, match="unknown argument"):
        net_training("efficientsci", net={"depth": 3})
    with pytest.raises(ConfigError, match="l1-stages is the unfolding network's"):
        net_training("efficientsci", loss="l1-stages")


def test_flipped_patches_are_still_the_snapshots_of_their_frames():
    from snapcap.recon.train import PatchSampler

    rng = np.random.default_rng(0)
    frames = rng.random((2, 8, 40, 40), dtype=np.float32)
    masks = random_binary(8, 40, 40, seed=1).astype(np.float32)
    sample = {"frames": frames, "masks": masks, "meas": (frames * masks).sum(1)}
    sampler = PatchSampler([sample], 16, seed=0, flips=True)
    flipped = 0
    for position in range(12):
        meas, patch_masks, target, _ = sampler(position)
        meas, patch_masks, target = (np.asarray(t) for t in (meas, patch_masks, target))
        np.testing.assert_allclose((patch_masks * target).sum(0), meas, rtol=1e-5)
        plain = PatchSampler([sample], 16, seed=0)(position)[0]
        flipped += not np.array_equal(np.asarray(plain), meas)
    assert 0 < flipped < 12


def test_the_cli_trains_a_network_that_reconstruct_then_reads(tmp_path):
    out = tmp_path / "net"
    args = ["train", "recon", "--arch", "efficientsci", "--net-config", SMALL_TEXT, "--num-videos", "8", "--size", "32"]
    assert main([*args, "--T", "1", "--steps", "3", "--patch", "32", "--checkpoint-every", "2", "-o", str(out)]) == 0
    stored = torch.load(out / "model.pt", weights_only=True)
    assert stored["kind"] == "snapcap-net" and stored["config"] == dict(SMALL, color_ch=1)
    assert [json.loads(line)["step"] for line in (out / "log.jsonl").read_text().splitlines()] == [3]
    op, meas = scene(N=1)
    frames = reconstruct(meas[0], op, "efficientsci", weights=str(out / "model.pt")).frames  # sizes read from the file
    assert frames.shape == (8, 32, 32)
    # a rerun with another recipe is refused rather than mixed into the checkpoint
    assert main([*args, "--T", "1", "--steps", "3", "--patch", "32", "--lr", "0.1", "-o", str(out)]) == 2


def test_training_simulates_with_the_target_cameras_mask_file(tmp_path):
    masks = random_binary(8, 32, 32, seed=9)
    np.save(tmp_path / "camera.npy", masks)
    args = ["train", "recon", "--arch", "efficientsci", "--net-config", SMALL_TEXT, "--num-videos", "6", "--T", "1"]
    args += ["--steps", "2", "--patch", "32", "--mask-file", str(tmp_path / "camera.npy")]
    assert main([*args, "--size", "32", "-o", str(tmp_path / "ok")]) == 0
    assert (tmp_path / "ok" / "model.pt").is_file()
    assert main([*args, "--size", "48", "-o", str(tmp_path / "bad")]) == 2  # the file's masks are 32 x 32
    assert main([*args, "--size", "32", "--mask", "shifting", "-o", str(tmp_path / "both")]) == 2
