"""EfficientSCI: parameter counts, shapes, and numbers recorded from the authors' code."""

from __future__ import annotations

import hashlib

import pytest
import torch

from snapcap.errors import InvalidValueError, ShapeError
from snapcap.recon.nets.efficientsci import (
    OPTIONAL_KEYS,
    PAPER_PARAMETERS,
    PRESETS,
    TRAINING_RECIPES,
    EfficientSCI,
)

TINY = {"in_ch": 8, "units": 2, "group_num": 2}


def _count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _inputs(count: int, frames: int, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    masks = (torch.rand(frames, height, width, generator=generator) > 0.5).float()
    video = torch.rand(count, frames, height, width, generator=generator)
    return (video * masks).sum(1), masks


def _key_shapes(model: torch.nn.Module) -> list[str]:
    return [f"{key}:{tuple(value.shape)}" for key, value in model.state_dict().items()]


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_parameters_match_paper(name):
    with torch.device("meta"):
        model = EfficientSCI(**PRESETS[name])
    assert round(_count(model) / 1e6, 2) == PAPER_PARAMETERS[name]


def test_presets_and_recipes_cover_the_same_names():
    assert set(PRESETS) == set(PAPER_PARAMETERS) == set(TRAINING_RECIPES)
    assert PRESETS["efficientsci-base"] == {"in_ch": 64, "units": 8, "group_num": 4, "color_ch": 1}
    assert OPTIONAL_KEYS == ()
    assert TRAINING_RECIPES["efficientsci-base"]["lr"] == 1e-4


def test_default_constructor_is_the_base_preset():
    with torch.device("meta"):
        assert _key_shapes(EfficientSCI()) == _key_shapes(EfficientSCI(**PRESETS["efficientsci-base"]))


@pytest.mark.parametrize("color_ch", [1, 3])
@pytest.mark.parametrize("per_snapshot_masks", [False, True])
def test_shapes_and_dtype(color_ch, per_snapshot_masks):
    model = EfficientSCI(**TINY, color_ch=color_ch).eval()
    meas, masks = _inputs(2, 4, 8, 12)
    if per_snapshot_masks:
        masks = masks[None].repeat(2, 1, 1, 1)
    with torch.no_grad():
        out = model(meas, masks)
    expected = (2, 4, 8, 12) if color_ch == 1 else (2, 4, 8, 12, 3)
    assert out.shape == expected
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all()


def test_forward_official_returns_one_stage_in_the_authors_layout():
    model = EfficientSCI(**TINY, color_ch=3).eval()
    meas, masks = _inputs(2, 4, 8, 8)
    phi = masks[None].expand(2, -1, -1, -1)
    phi_s = phi.sum(1, keepdim=True).clamp_min(1)
    with torch.no_grad():
        stages = model.forward_official(meas[:, None], phi, phi_s)
        direct = model(meas, masks)
    assert isinstance(stages, list) and len(stages) == 1
    assert stages[0].shape == (2, 3, 4, 8, 8)
    torch.testing.assert_close(stages[0].permute(0, 2, 3, 4, 1), direct, rtol=0, atol=0)


def test_zero_mask_sum_is_replaced_by_one():
    model = EfficientSCI(**TINY).eval()
    meas, masks = _inputs(1, 4, 8, 8)
    masks[:, :2, :2] = 0
    with torch.no_grad():
        out = model(meas, masks)
    assert torch.isfinite(out).all()


# Golden numbers: produced by the authors' code (ucaswangls/EfficientSCI @ f123d46,
# cacti/models/efficientsci.py, run unmodified except that its MODELS registry was stubbed, with
# einops 0.8.2 and torch 2.14 CPU): torch.manual_seed(0); EfficientSCI(in_ch=8, units=2,
# group_num=2[, color_ch=3]).eval(); _sharpen(model); inputs from _inputs(2, 4, 16, 16) fed the way
# tools/test.py does (y = meas[:, None], Phi = masks repeated, Phi_s = numpy sum of the masks with
# 0 -> 1); _stats of the output (authors' layout, float64). They check the forward numerics and that
# our modules are created in the authors' order (same initial weights under the same seed). The
# query/key weights are scaled up because at the default init the attention is nearly uniform and
# hides errors there (e.g. a wrong attention scale changes "weighted" by 9e-4, 45x the tolerance).
GOLDEN = {
    1: {
        "shape": (2, 4, 16, 16),
        "sum": -2.4361885134130716,
        "abs_sum": 44.30726587213576,
        "weighted": -0.5825739660855471,
        "entries": [
            -0.019615745171904564,
            0.013474330306053162,
            0.012320317327976227,
            -0.015642162412405014,
            -0.04873308166861534,
        ],
    },
    3: {
        "shape": (2, 3, 4, 16, 16),
        "sum": -23.834618717432022,
        "abs_sum": 170.5221204571426,
        "weighted": 1.7489375984238666,
        "entries": [
            -0.052072830498218536,
            -0.03570457175374031,
            -0.03279103711247444,
            -0.035197172313928604,
            0.05325610563158989,
        ],
    },
}
GOLDEN_INDICES = (0, 1, 100, 777, -1)


def _sharpen(model: torch.nn.Module) -> None:
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.endswith("tsab.qkv.weight"):
                parameter.mul_(10.0)


def _stats(out: torch.Tensor) -> dict:
    flat = out.double().flatten()
    weights = torch.randn(flat.numel(), generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    return {
        "shape": tuple(out.shape),
        "sum": flat.sum().item(),
        "abs_sum": flat.abs().sum().item(),
        "weighted": (flat * weights).sum().item(),
        "entries": [flat[i].item() for i in GOLDEN_INDICES],
    }


@pytest.mark.parametrize("color_ch", [1, 3])
def test_golden_numbers_from_the_official_code(color_ch):
    torch.manual_seed(0)
    model = EfficientSCI(**TINY, color_ch=color_ch).eval()
    _sharpen(model)
    meas, masks = _inputs(2, 4, 16, 16)
    with torch.no_grad():
        out = model(meas, masks)
    if color_ch == 3:  # back to the authors' (N, 3, B, H, W) layout
        out = out.permute(0, 4, 1, 2, 3)
    got, golden = _stats(out), GOLDEN[color_ch]
    assert got["shape"] == golden["shape"]
    assert got["sum"] == pytest.approx(golden["sum"], abs=2e-5)
    assert got["abs_sum"] == pytest.approx(golden["abs_sum"], rel=1e-6)
    assert got["weighted"] == pytest.approx(golden["weighted"], abs=2e-5)
    assert got["entries"] == pytest.approx(golden["entries"], rel=1e-5, abs=1e-7)


# Key names and shapes of the authors' model EfficientSCI(in_ch=8, units=1, group_num=2), in
# state_dict order, printed from their code.
OFFICIAL_TINY_KEYS = [
    "fem.0.weight:(8, 1, 3, 7, 7)",
    "fem.0.bias:(8,)",
    "fem.2.weight:(16, 8, 3, 3, 3)",
    "fem.2.bias:(16,)",
    "fem.4.weight:(32, 16, 3, 3, 3)",
    "fem.4.bias:(32,)",
    "up_conv.weight:(64, 32, 1, 1, 1)",
    "up_conv.bias:(64,)",
    "vrm.0.weight:(16, 16, 3, 3, 3)",
    "vrm.0.bias:(16,)",
    "vrm.2.weight:(8, 16, 1, 1, 1)",
    "vrm.2.bias:(8,)",
    "vrm.4.weight:(1, 8, 3, 3, 3)",
    "vrm.4.bias:(1,)",
    *[
        f"resdnet_list.0.cformer_list.{group}.{entry}"
        for group in (0, 1)
        for entry in (
            "scb.0.weight:(16, 16, 1, 3, 3)",
            "scb.0.bias:(16,)",
            "scb.2.weight:(16, 16, 1, 3, 3)",
            "scb.2.bias:(16,)",
            "tsab.qkv.weight:(24, 16)",
            "tsab.proj.weight:(16, 8)",
            "tsab.proj.bias:(16,)",
            "ffn.0.weight:(16, 16, 3, 3, 3)",
            "ffn.0.bias:(16,)",
            "ffn.2.weight:(16, 16, 1, 1, 1)",
            "ffn.2.bias:(16,)",
        )
    ],
    "resdnet_list.0.dense_conv.0.0.weight:(16, 32, 1, 1, 1)",
    "resdnet_list.0.dense_conv.0.0.bias:(16,)",
    "resdnet_list.0.last_conv.weight:(32, 32, 1, 1, 1)",
    "resdnet_list.0.last_conv.bias:(32,)",
]

# sha256 of "\n".join(sorted("key:shape" lines)) of the authors' base model (430 keys), gray and
# color (the checkpoints efficientsci_base.pth and efficientsci_base_mid_color.pth).
OFFICIAL_BASE_KEY_HASH = {
    1: "2ae1ce9115050cfb1e08a7887b7400c84fc143706cf8bdb3f9dd11bd5e2b79e4",
    3: "c777d59d37c45be8c12996de35c7b8501b2e500a090a9275a9423270cecce741",
}


def test_state_dict_keys_match_official_tiny():
    with torch.device("meta"):
        model = EfficientSCI(in_ch=8, units=1, group_num=2)
    assert _key_shapes(model) == OFFICIAL_TINY_KEYS


@pytest.mark.parametrize("color_ch", [1, 3])
def test_state_dict_keys_match_official_base(color_ch):
    with torch.device("meta"):
        model = EfficientSCI(**{**PRESETS["efficientsci-base"], "color_ch": color_ch})
    lines = _key_shapes(model)
    assert len(lines) == 430
    digest = hashlib.sha256("\n".join(sorted(lines)).encode()).hexdigest()
    assert digest == OFFICIAL_BASE_KEY_HASH[color_ch]


def test_strict_load_round_trip():
    torch.manual_seed(0)
    source = EfficientSCI(**TINY)
    target = EfficientSCI(**TINY)
    target.load_state_dict(source.state_dict(), strict=True)
    for key, value in source.state_dict().items():
        assert torch.equal(value, target.state_dict()[key])


@pytest.mark.parametrize(
    ("meas_shape", "mask_shape"),
    [
        ((2, 8, 9), (4, 8, 9)),  # odd W
        ((2, 7, 8), (4, 7, 8)),  # odd H
        ((8, 8), (4, 8, 8)),  # meas without N
        ((2, 8, 8), (4, 8, 10)),  # spatial mismatch
        ((2, 8, 8), (3, 4, 8, 8)),  # N mismatch
        ((2, 8, 8), (8, 8)),  # masks without B
    ],
)
def test_bad_shapes_raise(meas_shape, mask_shape):
    model = EfficientSCI(**TINY)
    with pytest.raises(ShapeError):
        model(torch.zeros(meas_shape), torch.ones(mask_shape))


def test_odd_size_message_names_the_multiple():
    model = EfficientSCI(**TINY)
    with pytest.raises(ShapeError, match="multiples of 2"):
        model(torch.zeros(1, 8, 9), torch.ones(4, 8, 9))


@pytest.mark.parametrize(
    "kwargs",
    [{"in_ch": 8, "group_num": 3}, {"in_ch": 4, "group_num": 4}, {"color_ch": 2}, {"units": 0}],
)
def test_bad_sizes_raise(kwargs):
    with pytest.raises(InvalidValueError), torch.device("meta"):
        EfficientSCI(**kwargs)
