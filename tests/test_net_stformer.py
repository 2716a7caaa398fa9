"""STFormer (snapcap.recon.nets.stformer): sizes, shape contract, and agreement with the authors' code.

The golden numbers and key hashes below were produced with the authors' own model files
(ucaswangls/STFormer ``cacti/models/stformer.py`` and the CACTI toolbox's copy, with einops and timm
installed outside this repository), run the way their ``tools/test.py`` runs it: one measurement at a
time, ``y`` of shape (1, 1, H, W), ``Phi`` (1, B, H, W) and ``Phi_s = np.sum(mask, 0)`` with zeros set
to 1. Weights: :func:`_fill` below applied to our module and loaded into theirs (strict).
"""

from __future__ import annotations

import hashlib
import math

import pytest
import torch

from snapcap.errors import ConfigError, ShapeError
from snapcap.recon.nets.stformer import (
    OFFICIAL_PARAMETERS,
    OPTIONAL_KEYS,
    PAPER_PARAMETERS,
    PRESETS,
    SIZE_MULTIPLE,
    THOP_PARAMETERS,
    TRAINING_RECIPES,
    STFormer,
    bias_table_parameters,
    is_optional_key,
)

# sha256 of the sorted "key:shape" lines (shape as comma-joined ints) of the authors' STFormer(cc, units=2, dim=8, frames=8).
TOOLBOX_KEYS_SHA256 = {  # ucaswangls/cacti cacti/models/stformer.py (122 keys: has conv_cat)
    1: "6d38671564af15c912db40e76b0e4287d9b09c06be5ca3b3c150b06864efff72",
    3: "87dc70518f2200af43a6845929ddab85a81455e7075c2a26c3f8037db433459e",
}
STANDALONE_KEYS_SHA256 = {  # ucaswangls/STFormer cacti/models/stformer.py (114 keys: no conv_cat)
    1: "dc54e6eed8262e604b32f22dc453ad048618fac5f884da816c1b8d78822093cd",
    3: "5f84f89d12507b74168b1e0f457de50497d070faf9c65a4c1bcb3aececa2ba3e",
}

# Output of the authors' model, STFormer(cc, units=1, dim=8, frames=8), weights from _fill, inputs from _inputs(2, 8, 32, 32).
GOLDEN = {
    1: {
        "shape": (2, 8, 32, 32),
        "mean": -0.3527424043219991,
        "std": 0.38480770681166204,
        "absmax": 1.9454057216644287,
        "head": [-0.012355, 0.284082, -0.268383, 0.132952],
        "tail": [0.069998, 0.324651, 0.130069, 0.005097],
    },
    3: {  # their (N, 3, B, H, W) permuted to (N, B, H, W, 3)
        "shape": (2, 8, 32, 32, 3),
        "mean": -0.084125445317819,
        "std": 0.5658328826061196,
        "absmax": 2.4510364532470703,
        "head": [0.035385, -0.067159, 0.161793, -0.019538],
        "tail": [-0.219629, -0.072587, 0.158727, -0.108704],
    },
}


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _fill(model: torch.nn.Module, seed: int = 0) -> None:
    """Deterministic weights, assigned by sorted key (so independent of construction order and RNG use)."""
    generator = torch.Generator().manual_seed(seed)
    state = model.state_dict()
    with torch.no_grad():
        for key in sorted(state):
            tensor = state[key]
            if not tensor.is_floating_point():
                continue
            values = torch.randn(tensor.shape, generator=generator, dtype=torch.float64)
            if key.endswith("weight") and tensor.ndim > 1:
                values = values / math.sqrt(tensor.shape[1] * math.prod(tensor.shape[2:]))
            elif key.endswith("weight"):
                values = 1 + 0.1 * values
            else:
                values = 0.02 * values
            tensor.copy_(values.to(tensor.dtype))


def _inputs(n: int, b: int, h: int, w: int, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Binary masks (B, H, W) and the unscaled measurement of uniform [0, 1) frames."""
    generator = torch.Generator().manual_seed(seed)
    masks = torch.randint(0, 2, (b, h, w), generator=generator).float()
    frames = torch.rand(n, b, h, w, generator=generator)
    return (masks[None] * frames).sum(1), masks


def _key_hash(state: dict[str, torch.Tensor]) -> str:
    lines = "\n".join(sorted(f"{key}:{','.join(map(str, value.shape))}" for key, value in state.items()))
    return hashlib.sha256(lines.encode()).hexdigest()


def _tiny(color_channels: int = 1, units: int = 1) -> STFormer:
    model = STFormer(color_channels, units, 8, 8)
    _fill(model)
    return model.eval()


# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_parameter_counts(name):
    config = PRESETS[name]
    with torch.device("meta"):
        model = STFormer(**config)
    total = sum(p.numel() for p in model.parameters())
    extra = model.conv_cat_parameters()
    block_dim = 4 * config["dim"]
    assert extra == config["units"] * 2 * (2 * block_dim * block_dim + block_dim)
    assert total - extra == OFFICIAL_PARAMETERS[name]
    # counted as the authors count (thop): without the relative-position-bias tables and the unused conv_cat
    thop_count = total - extra - bias_table_parameters(config["units"], config["frames"])
    assert round(thop_count / 1e6, 2) == THOP_PARAMETERS[name]
    if name in PAPER_PARAMETERS:
        assert round(thop_count / 1e6, 2) == PAPER_PARAMETERS[name]


def test_constants():
    assert set(TRAINING_RECIPES) == set(PRESETS)
    for recipe in TRAINING_RECIPES.values():
        assert recipe["optimizer"] == "Adam" and recipe["lr"] == 1e-4 and recipe["epochs"] == 120
        assert recipe["crop_size"] == (128, 128)
    assert set(PAPER_PARAMETERS) <= set(PRESETS)
    assert OPTIONAL_KEYS == ("conv_cat.",)
    assert is_optional_key("layers.3.blocks.1.conv_cat.weight")
    assert not is_optional_key("layers.3.blocks.1.attn.qkv.weight")
    assert not is_optional_key("layers.3.blocks.1.xconv_cat.weight")


@pytest.mark.parametrize("color_channels", [1, 3])
def test_keys_match_official(color_channels):
    model = STFormer(color_channels, 2, 8, 8)
    state = model.state_dict()
    assert len(state) == 122
    assert _key_hash(state) == TOOLBOX_KEYS_SHA256[color_channels]
    standalone = {key: value for key, value in state.items() if not is_optional_key(key)}
    assert len(standalone) == 114
    assert _key_hash(standalone) == STANDALONE_KEYS_SHA256[color_channels]
    # a standalone checkpoint loads with only the optional keys missing
    result = STFormer(color_channels, 2, 8, 8).load_state_dict(standalone, strict=False)
    assert not result.unexpected_keys
    assert result.missing_keys and all(is_optional_key(key) for key in result.missing_keys)


def test_relative_position_indices():
    block = STFormer(1, 1, 8, 8).layers[0].blocks[1]
    space = block.attn.relative_position_index
    assert space.shape == (49, 49) and int(space.max()) == 168 and int(space[0, 0]) == 84
    assert int(space[0, 48]) == 0 and int(space[48, 0]) == 168
    time = block.time_attn.relative_position_index
    assert torch.equal(time, torch.arange(8)[:, None] - torch.arange(8)[None, :] + 7)
    assert block.shift_size == (0, 3, 3) and STFormer(1, 1, 8, 8).layers[0].blocks[0].shift_size == (0, 0, 0)


@pytest.mark.parametrize("color_channels", [1, 3])
def test_golden_output(color_channels):
    model = _tiny(color_channels)
    meas, masks = _inputs(2, 8, 32, 32)
    with torch.no_grad():
        out = model(meas, masks)
    golden = GOLDEN[color_channels]
    assert out.dtype == torch.float32
    assert tuple(out.shape) == golden["shape"]
    out = out.double()
    assert out.mean().item() == pytest.approx(golden["mean"], abs=1e-4)
    assert out.std().item() == pytest.approx(golden["std"], abs=1e-4)
    assert out.abs().max().item() == pytest.approx(golden["absmax"], abs=1e-4)
    flat = out.reshape(-1)
    assert flat[:4].tolist() == pytest.approx(golden["head"], abs=1e-4)
    assert flat[-4:].tolist() == pytest.approx(golden["tail"], abs=1e-4)


@pytest.mark.parametrize("color_channels", [1, 3])
def test_shape_contract(color_channels):
    model = _tiny(color_channels)
    meas, masks = _inputs(2, 8, 12, 20)  # H/2 = 6 fits one window; W/2 = 10 is padded to 14
    with torch.no_grad():
        shared = model(meas.double(), masks.double())
        per_sample = model(meas, masks[None].expand(2, -1, -1, -1))
        official = model.forward_official(meas[:, None], masks[None].expand(2, -1, -1, -1), masks.sum(0).clamp(min=1)[None, None])
    expected = (2, 8, 12, 20) if color_channels == 1 else (2, 8, 12, 20, 3)
    assert tuple(shared.shape) == expected and shared.dtype == torch.float32
    assert torch.allclose(shared, per_sample, atol=1e-5)
    assert isinstance(official, list) and len(official) == 1
    reference = official[0] if color_channels == 1 else official[0].permute(0, 2, 3, 4, 1)
    assert torch.allclose(shared, reference, atol=1e-5)


def test_fewer_frames_than_built_for():
    model = _tiny()
    meas, masks = _inputs(1, 6, 16, 16)
    with torch.no_grad():
        assert tuple(model(meas, masks).shape) == (1, 6, 16, 16)


@pytest.mark.parametrize(
    ("meas_shape", "masks_shape", "words"),
    [
        ((1, 31, 32), (8, 31, 32), f"multiples of {SIZE_MULTIPLE}"),
        ((1, 32, 18 + 1), (8, 32, 19), f"multiples of {SIZE_MULTIPLE}"),
        ((32, 32), (8, 32, 32), "(N, H, W)"),
        ((1, 32, 32), (32, 32), "(B, H, W)"),
        ((1, 32, 32), (8, 32, 30), "do not match"),
        ((2, 32, 32), (3, 8, 32, 32), "do not match"),
        ((1, 32, 32), (9, 32, 32), "frames=8"),
    ],
)
def test_shape_errors(meas_shape, masks_shape, words):
    model = STFormer(1, 1, 8, 8)
    with pytest.raises(ShapeError, match=words.replace("(", r"\(").replace(")", r"\)")):
        model(torch.zeros(meas_shape), torch.ones(masks_shape))


def test_config_errors():
    with pytest.raises(ConfigError):
        STFormer(2, 1, 8)
    with pytest.raises(ConfigError):
        STFormer(1, 1, 7)
