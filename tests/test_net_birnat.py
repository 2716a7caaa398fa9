"""BIRNAT (snapcap.recon.nets.birnat): parameter count, shapes, errors and numerics of the official code."""

from __future__ import annotations

import hashlib
import math

import pytest
import torch

from snapcap.errors import ConfigError, ShapeError
from snapcap.recon.nets.birnat import (
    BIRNAT,
    OPTIONAL_KEYS,
    PAPER_PARAMETERS,
    PRESETS,
    TRAINING_RECIPES,
    state_dict_from_original,
)

# sha256 of the sorted "key:[shape]" lines (joined by "\n") of the official toolbox model's state dict,
# computed from ucaswangls/cacti cacti/models/birnat.py BIRNAT() (239 keys).
OFFICIAL_KEYS_SHA256 = "28536f3ad34d35afdb0db4da4160b669b8b374c3d63c22de13be76a42bc2099d"
OFFICIAL_PARAMETERS = 4_131_640


def fill_weights(model: torch.nn.Module, seed: int = 0, gamma: float = 0.5) -> None:
    """Deterministic weights independent of torch's init: uniform ±sqrt(3 / fan) per weight, ±0.05 biases."""
    generator = torch.Generator().manual_seed(seed)
    state = model.state_dict()
    new = {}
    for key in sorted(state):
        value = state[key]
        if key.endswith("gamma1"):
            new[key] = torch.full(value.shape, gamma, dtype=torch.float64)
        elif value.ndim > 1:
            bound = math.sqrt(3.0 / value[0].numel())
            new[key] = (torch.rand(value.shape, generator=generator, dtype=torch.float64) * 2 - 1) * bound
        else:
            new[key] = (torch.rand(value.shape, generator=generator, dtype=torch.float64) * 2 - 1) * 0.05
    model.load_state_dict({key: new[key].to(state[key].dtype) for key in state})


def make_inputs(n: int = 2, b: int = 8, h: int = 32, w: int = 32, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Unscaled snapshots of random [0, 1] frames under random binary masks (a 2×2 corner never open)."""
    generator = torch.Generator().manual_seed(seed)
    masks = (torch.rand(b, h, w, generator=generator, dtype=torch.float64) > 0.5).to(torch.float64)
    masks[:, :2, :2] = 0
    frames = torch.rand(n, b, h, w, generator=generator, dtype=torch.float64)
    return (masks * frames).sum(1).float(), masks.float()


@pytest.fixture(scope="module")
def net() -> BIRNAT:
    torch.manual_seed(0)
    model = BIRNAT().eval()
    fill_weights(model)
    return model


def test_parameter_count_matches_paper_and_official():
    with torch.device("meta"):
        model = BIRNAT(**PRESETS["birnat"])
    count = sum(p.numel() for p in model.parameters())
    assert count == OFFICIAL_PARAMETERS
    assert round(count / 1e6, 2) == PAPER_PARAMETERS["birnat"]
    assert sum(p.numel() for p in model.first_frame_net.parameters()) == 3_367_138
    assert sum(p.numel() for p in model.forward_rnn.parameters()) == 382_251
    assert sum(p.numel() for p in model.backrnn.parameters()) == 382_251
    assert model.frames == 8


def test_state_dict_keys_and_shapes_equal_official():
    with torch.device("meta"):
        model = BIRNAT()
    state = model.state_dict()
    lines = "\n".join(sorted(f"{key}:{list(value.shape)}" for key, value in state.items()))
    assert len(state) == 239
    assert hashlib.sha256(lines.encode()).hexdigest() == OFFICIAL_KEYS_SHA256
    assert OPTIONAL_KEYS == ()
    assert {"first_frame_net.att1.gamma1", "forward_rnn.conv_x.8.weight", "backrnn.h_h.3.bias"} <= set(state)


def test_shapes_and_dtype(net):
    meas, masks = make_inputs(2, 8, 16, 24)
    with torch.no_grad():
        shared = net(meas, masks)
        per_sample = net(meas, masks.expand(2, -1, -1, -1))
        outputs = net.forward_official(meas[:, None], masks.expand(2, -1, -1, -1), masks.sum(0).clamp(min=1)[None, None])
    assert shared.shape == (2, 8, 16, 24) and shared.dtype == torch.float32
    torch.testing.assert_close(per_sample, shared, rtol=0, atol=0)
    assert isinstance(outputs, list) and len(outputs) == 2
    assert all(o.shape == (2, 8, 16, 24) for o in outputs)
    torch.testing.assert_close(outputs[-1], shared, rtol=0, atol=0)
    # the forward RNN's first frame is first_frame_net's output, kept by the forward pass
    assert not torch.equal(outputs[0], outputs[1])


def test_errors(net):
    meas, masks = make_inputs(1, 8, 16, 16)
    with pytest.raises(ShapeError, match="B=8"):
        net(meas, masks[:7])
    with pytest.raises(ShapeError, match="B=8"):
        net(meas, torch.cat([masks, masks[:2]])[None])
    with pytest.raises(ShapeError, match="even"):
        net(meas[:, :15], masks[:, :15])
    with pytest.raises(ShapeError):
        net(meas[..., None].expand(-1, -1, -1, 3), masks)
    with pytest.raises(ShapeError):
        net(meas, masks[:, :8])
    with pytest.raises(ShapeError, match="N"):
        net(meas, masks.expand(3, -1, -1, -1))
    with pytest.raises(ShapeError, match="B=8"):
        net.forward_official(meas[:, None], masks[None, :6], masks.sum(0)[None, None])
    with pytest.raises(ConfigError):
        BIRNAT(color_ch=3)
    with pytest.raises(ConfigError):
        BIRNAT(in_ch=2)


def test_golden_numbers_of_official_code(net):
    # Produced in /tmp/birnat_check/golden.py: the official toolbox BIRNAT (ucaswangls/cacti
    # cacti/models/birnat.py, registry stubbed) with fill_weights(seed=0, gamma=0.5), fed the toolbox
    # test-script way (one sample at a time, y (1,1,H,W) unscaled, Phi (1,B,H,W), Phi_s = numpy sum
    # with zeros set to 1), inputs make_inputs(2, 8, 32, 32), float32 on CPU; outputs[-1].
    meas, masks = make_inputs(2, 8, 32, 32)
    assert int((masks.sum(0) == 0).sum()) == 5
    with torch.no_grad():
        out = net(meas, masks)
    assert out.shape == (2, 8, 32, 32)
    expected = {
        (0, 0, 0, 0): 0.13647936284542084,
        (0, 3, 10, 20): 1.2380284070968628,
        (1, 7, 31, 31): -0.15360815823078156,
        (1, 0, 5, 17): 0.41726407408714294,
        (0, 7, 0, 1): 0.17453259229660034,
    }
    for index, value in expected.items():
        assert float(out[index]) == pytest.approx(value, abs=1e-4), index
    assert float(out.double().mean()) == pytest.approx(1.0532729606725155, abs=1e-5)
    assert float(out.double().std()) == pytest.approx(0.5883748791952418, abs=1e-5)
    assert float(out.abs().max()) == pytest.approx(3.119868040084839, abs=1e-4)
    per_frame = [0.815433, 0.764554, 0.734526, 0.861337, 0.850707, 1.518638, 1.972359, 0.90863]
    assert out.double().mean((0, 2, 3)).tolist() == pytest.approx(per_frame, abs=1e-5)
    with torch.no_grad():
        forward_frames = net.forward_official(meas[:, None], masks[None], masks.sum(0).clamp(min=1)[None, None])[0]
    assert float(forward_frames.double().mean()) == pytest.approx(0.40029543278815893, abs=1e-5)
    assert float(forward_frames.double().std()) == pytest.approx(0.3476862406010704, abs=1e-5)


def test_per_sample_masks_run_one_at_a_time(net):
    meas, masks = make_inputs(2, 8, 16, 16, seed=2)
    _, other = make_inputs(1, 8, 16, 16, seed=3)
    stacked = torch.stack([masks, other])
    with torch.no_grad():
        both = net(meas, stacked)
        first = net(meas[:1], masks)
        second = net(meas[1:], other)
    torch.testing.assert_close(both, torch.cat([first, second]), rtol=0, atol=1e-6)


def test_state_dict_from_original_round_trip(net):
    mapped = state_dict_from_original(net.first_frame_net.state_dict(), net.forward_rnn.state_dict(), net.backrnn.state_dict())
    state = net.state_dict()
    assert list(mapped) == list(state)
    assert all(torch.equal(mapped[key], state[key]) for key in state)
    # the authors' cnn1/forward_rnn/backrnn state dicts have exactly these (unprefixed) keys
    assert "conv51.weight" in net.first_frame_net.state_dict()
    assert "att1.gamma1" in net.first_frame_net.state_dict()
    other = BIRNAT()
    assert other.load_state_dict(mapped, strict=True) is not None
    prefixed = state_dict_from_original({f"module.{k}": v for k, v in net.first_frame_net.state_dict().items()}, {}, {})
    assert set(prefixed) == {k for k in state if k.startswith("first_frame_net.")}


def test_training_recipe_lists_both_recipes():
    recipe = TRAINING_RECIPES["birnat"]
    assert set(TRAINING_RECIPES) == set(PRESETS)
    assert recipe["lr"] == 3e-4 and recipe["batch_size"] == 3 and recipe["epochs"] == 100 and recipe["crop_size"] == 256
    assert "0.001" in recipe["loss"]
    assert recipe["toolbox"]["lr"] == 1e-4 and recipe["toolbox"]["epochs"] == 120


def test_gradients_reach_every_submodule():
    model = BIRNAT()
    fill_weights(model, seed=4)
    meas, masks = make_inputs(1, 8, 8, 8)
    outputs = model.forward_official(meas[:, None], masks[None], masks.sum(0).clamp(min=1)[None, None])
    (outputs[0].square().mean() + outputs[1].square().mean()).backward()
    for name in (
        "first_frame_net.conv1.weight",
        "first_frame_net.att1.gamma1",
        "forward_rnn.conv_x.0.weight",
        "backrnn.h_h.0.weight",
    ):
        grad = model.get_parameter(name).grad
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0, name
