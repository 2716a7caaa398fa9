"""Tests of snapcap.cacti.noise: statistics, reproducibility, backends, (de)serialisation, errors."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from snapcap.backend import to_numpy
from snapcap.cacti.noise import (
    ADC,
    NOISE_MODELS,
    Compose,
    DarkCurrent,
    FixedPattern,
    Gaussian,
    NoiseModel,
    NoNoise,
    Poisson,
    PoissonGaussian,
    noise_from_dict,
    parse_noise,
)
from snapcap.errors import ConfigError, DTypeError, InvalidValueError, ShapeError

SHAPE = (4, 200, 250)  # 200k pixels
N_SE = 5.0  # tolerance in standard errors


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def check_moments(x: np.ndarray, mean: float, var: float) -> None:
    """Empirical mean and variance of ``x`` agree with theory within N_SE standard errors."""
    x = np.asarray(x, dtype=np.float64).ravel()
    n = x.size
    m = x.mean()
    d = x - m
    v = d.var(ddof=1)
    se_mean = np.sqrt(var / n)
    se_var = np.sqrt(max(np.mean(d**4) - v**2, 0.0) / n)
    assert abs(m - mean) <= N_SE * se_mean + 1e-12, (m, mean, se_mean)
    assert abs(v - var) <= N_SE * se_var + 1e-15, (v, var, se_var)


# --------------------------------------------------------------------------- statistics


@pytest.mark.parametrize("fs", [1.0, 8.0])
def test_gaussian_moments(fs):
    y = np.full(SHAPE, 0.4 * fs)
    out = Gaussian(0.02)(y, rng(1), full_scale=fs)
    check_moments(out, 0.4 * fs, (0.02 * fs) ** 2)


@pytest.mark.parametrize("fs", [1.0, 8.0])
def test_poisson_moments(fs):
    P = 500.0
    for level in (0.05, 0.7):
        y = np.full(SHAPE, level * fs)
        out = Poisson(P)(y, rng(2), full_scale=fs)
        check_moments(out, level * fs, level * fs * fs / P)


def test_poisson_values_are_counts_and_negative_clipped():
    P, fs = 100.0, 4.0
    y = np.linspace(-1.0, fs, 1000).reshape(10, 100)
    out = Poisson(P)(y, rng(3), full_scale=fs)
    counts = out * P / fs
    np.testing.assert_allclose(counts, np.round(counts), atol=1e-9)
    assert np.all(out[y <= 0] == 0)


def test_poisson_gaussian_two_level_moments():
    P, s, fs = 300.0, 0.01, 2.0
    y = np.empty(SHAPE)
    y[:2] = 0.2 * fs
    y[2:] = 0.9 * fs
    out = PoissonGaussian(P, s)(y, rng(4), full_scale=fs)
    for sel in (slice(0, 2), slice(2, 4)):
        level = y[sel].flat[0]
        check_moments(out[sel], level, level * fs / P + (s * fs) ** 2)


def test_dark_current_moments():
    e, P, fs = 3.0, 200.0, 5.0
    y = np.full(SHAPE, 0.3 * fs)
    out = DarkCurrent(e, P)(y, rng(5), full_scale=fs)
    check_moments(out, 0.3 * fs + e * fs / P, e * (fs / P) ** 2)


def test_fixed_pattern_pixel_statistics():
    prnu, dsnu, fs = 0.03, 0.01, 2.0
    fp = FixedPattern(prnu, dsnu, seed=7)
    y = np.full((1, 500, 400), 0.6 * fs)
    out = fp(y, rng(0), full_scale=fs)
    check_moments(out, 0.6 * fs, (prnu * 0.6 * fs) ** 2 + (dsnu * fs) ** 2)


def test_fixed_pattern_same_across_snapshots_and_rngs():
    fp = FixedPattern(0.05, 0.02, seed=3)
    y = np.full((2, 3, 16, 20), 0.5)
    a = fp(y, rng(0))
    b = fp(y, rng(123))
    c = fp(y, None)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, c)
    for i in range(2):
        for j in range(3):
            np.testing.assert_array_equal(a[i, j], a[0, 0])
    assert np.std(a[0, 0]) > 0
    # the passed rng is not consumed
    g = rng(9)
    fp(y, g)
    assert g.random() == rng(9).random()
    # another seed gives another pattern
    assert not np.array_equal(FixedPattern(0.05, 0.02, seed=4)(y), a)
    # gain and offset act as y' = g*y + o
    gain, offset = fp.pattern(16, 20)
    yy = np.linspace(0, 1, 16 * 20).reshape(16, 20)
    np.testing.assert_allclose(fp(yy, full_scale=2.0), gain * yy + offset * 2.0, rtol=1e-12, atol=1e-15)


def test_fixed_pattern_needs_two_axes():
    with pytest.raises(ShapeError):
        FixedPattern(0.01, 0.01)(np.zeros(5))


def test_adc_quantisation_error_on_ramp():
    bits, fs = 8, 3.0
    adc = ADC(bits=bits)
    y = np.linspace(0.0, 0.9 * fs, 200_001)
    err = adc(y, full_scale=fs) - y
    delta = adc.step(fs)
    assert delta == pytest.approx(fs / 255)
    assert abs(err.mean()) < 0.01 * delta
    assert err.var() == pytest.approx(delta**2 / 12, rel=0.02)
    assert np.max(np.abs(err)) <= delta / 2 + 1e-12
    # output lies on the quantisation grid
    k = adc(y, full_scale=fs) / delta
    np.testing.assert_allclose(k, np.round(k), atol=1e-9)


def test_adc_saturation_and_clipping():
    fs = 2.0
    adc = ADC(bits=10)
    y = np.array([[-0.5, 0.0, fs, 1.5 * fs, 10 * fs]])
    out = adc(y, full_scale=fs)
    np.testing.assert_allclose(out, [[0.0, 0.0, fs, fs, fs]])
    # analog gain: saturates at fs / gain
    out2 = ADC(bits=10, gain=4.0)(y, full_scale=fs)
    np.testing.assert_allclose(out2, [[0.0, 0.0, fs / 4, fs / 4, fs / 4]])
    dn = ADC(bits=10, gain=4.0).to_dn(y, full_scale=fs)
    np.testing.assert_array_equal(dn, [[0, 0, 1023, 1023, 1023]])


def test_adc_black_level():
    fs, bits, bl = 1.0, 8, 16
    adc = ADC(bits=bits, black_level=bl)
    d = adc.step(fs)
    y = np.array([[-100 * d, -5 * d, 0.0, 0.5, fs, 2 * fs]])
    dn = adc.to_dn(y, fs)
    np.testing.assert_array_equal(dn, [[0, 11, 16, 16 + round(0.5 * 255), 255, 255]])
    out = adc(y, full_scale=fs)
    np.testing.assert_allclose(out, (dn.astype(float) - bl) * d)
    assert out[0, 0] == pytest.approx(-bl * d)  # clipped at -black_level
    assert out[0, 1] == pytest.approx(-5 * d)  # small negatives survive
    assert out[0, -1] == pytest.approx((255 - bl) * d)  # saturation below fs


@pytest.mark.parametrize("bits,dtype", [(8, np.uint16), (16, np.uint16), (20, np.int32), (31, np.int32), (32, np.int64)])
def test_adc_to_dn_dtype_and_range(bits, dtype):
    adc = ADC(bits=bits)
    for xdt in (np.float32, np.float64):
        y = np.array([[0.0, 0.25, 1.0, 3.0]], dtype=xdt)
        dn = adc.to_dn(y)
        assert dn.dtype == dtype
        assert int(dn[0, 0]) == 0
        assert int(dn.max()) <= 2**bits - 1
        if xdt is np.float64 or bits <= 24:
            assert int(dn[0, 2]) == 2**bits - 1


def test_adc_to_dn_torch_int32():
    torch = pytest.importorskip("torch")
    y = torch.tensor([[0.0, 0.5, 1.0]], dtype=torch.float32)
    dn = ADC(bits=8).to_dn(y)
    assert dn.dtype == torch.int32
    assert dn.tolist() == [[0, 128, 255]]


def test_adc_ignores_rng():
    y = np.linspace(0, 1, 100).reshape(10, 10)
    g = rng(0)
    a = ADC(bits=6)(y, g)
    assert g.random() == rng(0).random()
    np.testing.assert_array_equal(a, ADC(bits=6)(y, None))


def test_no_noise_identity_copy():
    y = np.arange(12.0).reshape(3, 4)
    out = NoNoise()(y, rng(0))
    np.testing.assert_array_equal(out, y)
    assert out is not y and not np.shares_memory(out, y)


# --------------------------------------------------------------------------- reproducibility

ALL_RANDOM = [
    Gaussian(0.05),
    Poisson(200.0),
    PoissonGaussian(200.0, 0.01),
    DarkCurrent(2.0, 100.0),
    Poisson(100.0) >> Gaussian(0.01) >> FixedPattern(0.02, 0.01, seed=1) >> ADC(bits=10),
]


@pytest.mark.parametrize("model", ALL_RANDOM, ids=lambda m: m.to_spec())
def test_same_seed_same_output_different_seed_differs(model):
    y = np.random.default_rng(99).uniform(0, 1, (3, 32, 32))
    a = model(y, rng(5))
    b = model(y, rng(5))
    c = model(y, rng(6))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize(
    "model", ALL_RANDOM + [FixedPattern(0.1, 0.05, 2), ADC(bits=8, gain=1.5, black_level=3)], ids=lambda m: m.to_spec()
)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_numpy_and_torch_identical(model, dtype):
    torch = pytest.importorskip("torch")
    y = np.random.default_rng(1).uniform(0, 1.2, (2, 24, 30)).astype(dtype)
    a = model(y, rng(11), full_scale=1.5)
    b = model(torch.from_numpy(y.copy()), rng(11), full_scale=1.5)
    assert isinstance(b, torch.Tensor)
    np.testing.assert_array_equal(to_numpy(b), a)


def test_random_model_requires_generator():
    y = np.zeros((4, 4))
    with pytest.raises(InvalidValueError, match="Generator"):
        Gaussian(0.1)(y, None)
    with pytest.raises(InvalidValueError, match="Generator"):
        Gaussian(0.1)(y, 5)  # type: ignore[arg-type]
    with pytest.raises(InvalidValueError, match="Generator"):
        Poisson(10)(y, np.random.RandomState(0))  # type: ignore[arg-type]


# --------------------------------------------------------------------------- backend conformance


def _backends():
    out = [pytest.param("numpy", id="numpy")]
    out.append(pytest.param("torch", id="torch"))
    out.append(pytest.param("array_api_strict", id="array_api_strict"))
    return out


def _make(backend: str, arr: np.ndarray):
    if backend == "numpy":
        return arr.copy(), np
    if backend == "torch":
        torch = pytest.importorskip("torch")
        return torch.from_numpy(arr.copy()), torch
    xps = pytest.importorskip("array_api_strict")
    return xps.asarray(arr.copy()), xps


CONFORMANCE_MODELS = [
    NoNoise(),
    Gaussian(0.05),
    Poisson(50.0),
    PoissonGaussian(50.0, 0.02),
    DarkCurrent(1.0, 50.0),
    FixedPattern(0.05, 0.01, seed=2),
    ADC(bits=8, black_level=4),
    Compose((Poisson(80.0), Gaussian(0.01), ADC(bits=12))),
]


@pytest.mark.parametrize("model", CONFORMANCE_MODELS, ids=lambda m: m.kind)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("backend", _backends())
@pytest.mark.parametrize("shape", [(6, 7), (2, 3, 6, 7)], ids=["2d", "batched"])
def test_conformance(model, dtype, backend, shape):
    host = np.random.default_rng(0).uniform(0, 2.0, shape).astype(dtype)
    y, mod = _make(backend, host)
    out = model(y, rng(3), full_scale=2.0)
    assert type(out) is type(y)
    assert out.dtype == y.dtype
    assert tuple(out.shape) == shape
    assert out is not y
    np.testing.assert_array_equal(to_numpy(y), host)  # input not mutated
    # same values as the numpy path
    ref = model(host.copy(), rng(3), full_scale=2.0)
    np.testing.assert_array_equal(to_numpy(out), ref)


@pytest.mark.parametrize("model", [m for m in CONFORMANCE_MODELS if m.kind != "fixed_pattern"], ids=lambda m: m.kind)
@pytest.mark.parametrize("backend", _backends())
@pytest.mark.parametrize("shape", [(), (5,)], ids=["0d", "1d"])
def test_low_rank_inputs(model, backend, shape):
    host = np.full(shape, 0.7, dtype=np.float32)
    y, _ = _make(backend, host)
    out = model(y, rng(1), full_scale=2.0)
    assert tuple(out.shape) == shape and out.dtype == y.dtype
    np.testing.assert_array_equal(to_numpy(out), model(host.copy(), rng(1), full_scale=2.0))


@pytest.mark.parametrize("backend", _backends())
def test_to_dn_backend(backend):
    host = np.array([[0.0, 0.5, 1.0, 2.0]], dtype=np.float32)
    y, _ = _make(backend, host)
    dn = ADC(bits=8).to_dn(y)
    assert type(dn) is type(y)
    np.testing.assert_array_equal(to_numpy(dn), [[0, 128, 255, 255]])


@pytest.mark.parametrize("backend", _backends())
def test_integer_input_rejected(backend):
    y, _ = _make(backend, np.zeros((3, 3), dtype=np.int32))
    with pytest.raises(DTypeError):
        Gaussian(0.1)(y, rng(0))
    with pytest.raises(DTypeError):
        ADC().to_dn(y)


@pytest.mark.parametrize("backend", _backends())
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nonfinite_input_rejected(backend, bad):
    host = np.zeros((3, 3))
    host[1, 1] = bad
    y, _ = _make(backend, host)
    with pytest.raises(InvalidValueError, match="NaN or infinite"):
        Poisson(10.0)(y, rng(0))
    with pytest.raises(InvalidValueError):
        NoNoise()(y, rng(0))


@pytest.mark.parametrize("fs", [0.0, -1.0, float("nan"), float("inf"), "1"])
def test_bad_full_scale(fs):
    with pytest.raises(InvalidValueError, match="full_scale"):
        Gaussian(0.1)(np.zeros((2, 2)), rng(0), full_scale=fs)


# --------------------------------------------------------------------------- composition


def test_rshift_composition_equals_sequential():
    y = np.random.default_rng(0).uniform(0, 1, (2, 16, 16))
    a, b, c = Poisson(100.0), Gaussian(0.02), ADC(bits=8)
    model = a >> b >> c
    assert isinstance(model, Compose)
    assert model.models == (a, b, c)  # flattened
    assert (a >> (b >> c)).models == (a, b, c)
    g = rng(4)
    seq = c(b(a(y, g), g), g)
    np.testing.assert_array_equal(model(y, rng(4)), seq)
    assert Compose([a, Compose((b, c))]) == model


def test_compose_moments_poisson_then_gaussian():
    P, s, fs = 400.0, 0.02, 1.0
    y = np.full(SHAPE, 0.5)
    out = (Poisson(P) >> Gaussian(s))(y, rng(8), full_scale=fs)
    check_moments(out, 0.5, 0.5 * fs / P + (s * fs) ** 2)


def test_compose_rejects_non_models():
    with pytest.raises(InvalidValueError):
        Compose((Gaussian(0.1), "adc"))  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Gaussian(0.1) >> 3  # type: ignore[operator]


def test_empty_compose_is_identity():
    y = np.ones((2, 2))
    out = Compose(())(y)
    np.testing.assert_array_equal(out, y)
    assert out is not y


# --------------------------------------------------------------------------- serialisation

ROUND_TRIP = [
    NoNoise(),
    Gaussian(0.01),
    Poisson(1000),
    PoissonGaussian(1000.0, 0.005),
    DarkCurrent(0.5, 2000.0),
    FixedPattern(0.01, 0.002, seed=42),
    ADC(),
    ADC(bits=8, gain=2.5, black_level=16),
    Poisson(1000) >> Gaussian(0.005) >> ADC(bits=10),
]


@pytest.mark.parametrize("model", ROUND_TRIP, ids=lambda m: m.to_spec())
def test_dict_round_trip(model):
    d = model.to_dict()
    assert d["kind"] == model.kind
    back = noise_from_dict(json.loads(json.dumps(d)))
    assert back == model
    assert type(back) is type(model)


@pytest.mark.parametrize("model", ROUND_TRIP, ids=lambda m: m.to_spec())
def test_spec_round_trip(model):
    assert parse_noise(model.to_spec()) == model


def test_to_dict_contents():
    assert Gaussian(0.01).to_dict() == {"kind": "gaussian", "sigma": 0.01}
    assert NoNoise().to_dict() == {"kind": "none"}
    assert ADC(bits=8).to_dict() == {"kind": "adc", "bits": 8, "gain": 1.0, "black_level": 0}
    assert (Poisson(10) >> Gaussian(0.1)).to_dict() == {
        "kind": "compose",
        "models": [{"kind": "poisson", "photons": 10.0}, {"kind": "gaussian", "sigma": 0.1}],
    }
    assert set(NOISE_MODELS) == {
        "none",
        "gaussian",
        "poisson",
        "poisson_gaussian",
        "dark_current",
        "fixed_pattern",
        "adc",
        "compose",
    }


def test_parse_noise_examples():
    assert parse_noise("none") == NoNoise()
    assert parse_noise("gaussian:sigma=0.01") == Gaussian(0.01)
    assert parse_noise("poisson:photons=1000+gaussian:sigma=0.005") == Compose((Poisson(1000.0), Gaussian(0.005)))
    assert parse_noise("adc:bits=8,gain=1") == ADC(bits=8, gain=1.0)
    assert parse_noise(" Poisson-Gaussian : photons = 50 , sigma = 1e-3 ") == PoissonGaussian(50.0, 0.001)
    assert parse_noise("fixed_pattern:prnu=0.01,dsnu=0.001") == FixedPattern(0.01, 0.001, 0)
    assert isinstance(parse_noise("none"), NoiseModel)


@pytest.mark.parametrize(
    "spec,fragment",
    [
        ("", "non-empty"),
        ("   ", "non-empty"),
        ("gaussian:sigma=0.1+", "empty model"),
        ("foo:x=1", "unknown model 'foo'"),
        ("compose", "unknown model"),
        ("gaussian", "needs parameter"),
        ("gaussian:", "nothing after"),
        ("gaussian:sigma", "not 'param=value'"),
        ("gaussian:sigma=", "not 'param=value'"),
        ("gaussian:sigma=abc", "not a number"),
        ("gaussian:sigma=0.1,sigma=0.2", "given twice"),
        ("gaussian:sigma=0.1,photons=3", "unknown parameter"),
        ("gaussian:sigma=-0.1", "sigma"),
        ("poisson:photons=0", "photons"),
        ("adc:bits=33", "bits"),
        ("adc:bits=8.5", "bits"),
        ("gaussian:sigma=nan", "sigma"),
        ("1gauss", "not a model name"),
    ],
)
def test_parse_noise_errors(spec, fragment):
    with pytest.raises(ConfigError, match="expected|known|needs|given twice|unknown|must|non-empty") as info:
        parse_noise(spec)
    assert fragment in str(info.value)


def test_parse_error_names_part_and_syntax():
    with pytest.raises(ConfigError) as info:
        parse_noise("poisson:photons=100+gaussian:sigma=x")
    msg = str(info.value)
    assert "gaussian:sigma=x" in msg and "name:param=value" in msg


@pytest.mark.parametrize(
    "d,fragment",
    [
        ({"kind": "laser"}, "known kinds"),
        ({"sigma": 0.1}, "no 'kind'"),
        ("gaussian", "dict"),
        ({"kind": "gaussian"}, "needs parameter"),
        ({"kind": "gaussian", "sigma": 0.1, "mu": 0}, "unknown parameter"),
        ({"kind": "compose", "models": "x"}, "compose"),
        ({"kind": "compose", "models": [{"kind": "nope"}]}, "known kinds"),
    ],
)
def test_noise_from_dict_errors(d, fragment):
    with pytest.raises(ConfigError) as info:
        noise_from_dict(d)  # type: ignore[arg-type]
    assert fragment in str(info.value)
    if "known kinds" in fragment:
        assert "gaussian" in str(info.value) and "adc" in str(info.value)


# --------------------------------------------------------------------------- parameter validation


@pytest.mark.parametrize(
    "factory,param",
    [
        (lambda: Gaussian(-0.1), "sigma"),
        (lambda: Gaussian(float("nan")), "sigma"),
        (lambda: Gaussian(float("inf")), "sigma"),
        (lambda: Gaussian("0.1"), "sigma"),
        (lambda: Poisson(0), "photons"),
        (lambda: Poisson(-5.0), "photons"),
        (lambda: Poisson(float("nan")), "photons"),
        (lambda: PoissonGaussian(0.0, 0.1), "photons"),
        (lambda: PoissonGaussian(10.0, -0.1), "sigma"),
        (lambda: DarkCurrent(-1.0, 10.0), "electrons"),
        (lambda: DarkCurrent(1.0, 0.0), "photons"),
        (lambda: FixedPattern(-0.1, 0.0), "prnu"),
        (lambda: FixedPattern(0.1, float("nan")), "dsnu"),
        (lambda: FixedPattern(0.1, 0.1, seed=-1), "seed"),
        (lambda: FixedPattern(0.1, 0.1, seed=1.5), "seed"),
        (lambda: ADC(bits=0), "bits"),
        (lambda: ADC(bits=33), "bits"),
        (lambda: ADC(bits=True), "bits"),
        (lambda: ADC(gain=0.0), "gain"),
        (lambda: ADC(gain=float("nan")), "gain"),
        (lambda: ADC(bits=8, black_level=256), "black_level"),
        (lambda: ADC(black_level=-1), "black_level"),
    ],
)
def test_bad_parameters(factory, param):
    with pytest.raises(InvalidValueError, match=repr(param)):
        factory()


def test_parameters_normalised_and_frozen():
    g = Gaussian(1)
    assert isinstance(g.sigma, float) and g == Gaussian(1.0)
    a = ADC(bits=np.int64(8))
    assert type(a.bits) is int
    with pytest.raises(dataclasses.FrozenInstanceError):
        g.sigma = 0.2  # type: ignore[misc]
    assert hash(Gaussian(0.1)) == hash(Gaussian(0.1))
