"""Measurement noise and sensor models for snapshot compressive imaging (CACTI).

A CACTI measurement is ``y = sum_k C_k * X_k``, an array ``(..., H, W)`` of real floats with
values in ``[0, full_scale]``, where ``full_scale`` is the measurement value that maps to the
sensor's full scale (the simulator passes it: typically ``B`` or the maximum of ``sum_k C_k``).
The models here are small composable objects in the deepinv style,
``measurement = sensor(noise(A x))``::

    model = Poisson(photons=1000) >> Gaussian(sigma=0.005) >> ADC(bits=10)
    y_noisy = model(y, np.random.default_rng(seed), full_scale=B)

Every parameter is relative to full scale, so a model means the same thing whatever ``B``.

Randomness comes only from the :class:`numpy.random.Generator` passed to :meth:`NoiseModel.apply`.
The draws are made on the host with numpy and moved to the input's backend with
:func:`snapcap.backend.from_numpy`, so a recorded seed reproduces the output bit for bit on
numpy, torch, cupy or array-api-strict. The remaining arithmetic runs in the input's namespace;
the output has the input's backend, device, dtype and shape (any leading batch axes), and the
input is never modified.

Models are frozen dataclasses; :meth:`NoiseModel.to_dict` / :func:`noise_from_dict` round-trip
them through JSON and :func:`parse_noise` reads the command-line syntax
``"poisson:photons=1000+gaussian:sigma=0.005"``.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from snapcap.backend import from_numpy, is_torch, require_finite, require_float, to_numpy
from snapcap.errors import ConfigError, InvalidValueError, ShapeError

__all__ = [
    "NoiseModel",
    "NoNoise",
    "Gaussian",
    "Poisson",
    "PoissonGaussian",
    "DarkCurrent",
    "FixedPattern",
    "ADC",
    "Compose",
    "NOISE_MODELS",
    "noise_from_dict",
    "parse_noise",
]

_SPEC_SYNTAX = (
    "expected 'name' or 'name:param=value,param=value', models joined by '+', "
    "e.g. 'poisson:photons=1000+gaussian:sigma=0.005' or 'adc:bits=8,gain=1'"
)


# --------------------------------------------------------------------------- parameter checks


def _real(owner: str, name: str, value: Any, *, positive: bool = False) -> float:
    """``value`` as a finite float, ``>= 0`` (``> 0`` if ``positive``), else InvalidValueError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidValueError(f"{owner}: parameter {name!r} must be a real number, got {value!r}")
    out = float(value)
    if not math.isfinite(out):
        raise InvalidValueError(f"{owner}: parameter {name!r} must be finite, got {out!r}")
    if positive and out <= 0:
        raise InvalidValueError(f"{owner}: parameter {name!r} must be > 0, got {out!r}")
    if out < 0:
        raise InvalidValueError(f"{owner}: parameter {name!r} must be >= 0, got {out!r}")
    return out


def _integer(owner: str, name: str, value: Any, lo: int, hi: int | None = None) -> int:
    """``value`` as an int in ``[lo, hi]``, else InvalidValueError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InvalidValueError(f"{owner}: parameter {name!r} must be an integer, got {value!r}")
    out = int(value)
    if out < lo or (hi is not None and out > hi):
        bound = f"in {lo}..{hi}" if hi is not None else f">= {lo}"
        raise InvalidValueError(f"{owner}: parameter {name!r} must be {bound}, got {out}")
    return out


def _set(obj: Any, name: str, value: Any) -> None:
    object.__setattr__(obj, name, value)  # frozen dataclasses: normalise in __post_init__


def _check_full_scale(full_scale: Any) -> float:
    if isinstance(full_scale, bool) or not isinstance(full_scale, numbers.Real):
        raise InvalidValueError(f"full_scale must be a positive real number, got {full_scale!r}")
    fs = float(full_scale)
    if not (math.isfinite(fs) and fs > 0):
        raise InvalidValueError(f"full_scale must be a positive finite number, got {fs!r}")
    return fs


def _check_rng(rng: Any) -> None:
    if rng is not None and not isinstance(rng, np.random.Generator):
        raise InvalidValueError(
            f"rng must be a numpy.random.Generator (e.g. np.random.default_rng(seed)), got {type(rng).__name__}"
        )


def _need_rng(rng: np.random.Generator | None, kind: str) -> np.random.Generator:
    if rng is None:
        raise InvalidValueError(
            f"noise model {kind!r} is random and needs a numpy.random.Generator, e.g. rng=np.random.default_rng(seed); got None"
        )
    return rng


def _host_shape(y: Any) -> tuple[int, ...]:
    return tuple(int(s) for s in y.shape)


def _moved(host: Any, y: Any, xp: Any) -> Any:
    """Host float array moved to ``y``'s backend, device and dtype, with ``y``'s shape.

    ``from_numpy`` may turn a 0-d array into shape ``(1,)`` (``np.ascontiguousarray``), hence
    the reshape.
    """
    out = from_numpy(np.asarray(host, dtype=np.float64), y)
    if out.ndim != y.ndim:
        out = xp.reshape(out, _host_shape(y))
    return out


def _poisson_counts(rng: np.random.Generator, lam: np.ndarray | float, size: tuple[int, ...] | None) -> np.ndarray:
    try:
        return np.asarray(rng.poisson(lam, size=size))
    except ValueError as exc:  # lam too large for numpy's sampler
        raise InvalidValueError(f"Poisson rate out of range for numpy's sampler: {exc}") from exc


# --------------------------------------------------------------------------- base class


class NoiseModel:
    """Base class of noise and sensor models.

    Subclasses are frozen dataclasses whose fields are the model parameters; they implement
    :meth:`_apply`. :meth:`apply` validates its arguments and calls it.
    """

    kind: ClassVar[str] = ""

    def apply(self, y: Any, rng: np.random.Generator | None = None, full_scale: float = 1.0) -> Any:
        """The noisy measurement.

        Args:
            y: measurement, real floating array ``(..., H, W)`` of any backend, values in
                ``[0, full_scale]``. Not modified.
            rng: source of every random draw; deterministic models accept ``None``.
            full_scale: measurement value that maps to the sensor's full scale (> 0).

        Returns:
            A new array with ``y``'s backend, device, dtype and shape.

        Raises:
            DTypeError: ``y`` is not real floating.
            InvalidValueError: ``y`` holds NaN/inf, ``full_scale`` is not positive, ``rng`` is
                not a Generator (or missing for a random model).
        """
        xp = require_float(y, "y")
        require_finite(y, "y")
        fs = _check_full_scale(full_scale)
        _check_rng(rng)
        return self._apply(xp, y, rng, fs)

    def __call__(self, y: Any, rng: np.random.Generator | None = None, full_scale: float = 1.0) -> Any:
        """Alias of :meth:`apply`."""
        return self.apply(y, rng, full_scale)

    def _apply(self, xp: Any, y: Any, rng: np.random.Generator | None, fs: float) -> Any:
        raise NotImplementedError

    def params(self) -> dict[str, Any]:
        """The parameters, by name (JSON-serialisable)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}  # type: ignore[arg-type]

    def to_dict(self) -> dict[str, Any]:
        """``{"kind": name, **params}``, JSON-serialisable; inverse of :func:`noise_from_dict`."""
        return {"kind": self.kind, **self.params()}

    def to_spec(self) -> str:
        """The command-line form read by :func:`parse_noise`."""
        params = self.params()
        if not params:
            return self.kind
        return self.kind + ":" + ",".join(f"{k}={v!r}" for k, v in params.items())

    def __rshift__(self, other: Any) -> Compose:
        """``a >> b``: apply ``a`` then ``b``."""
        if not isinstance(other, NoiseModel):
            return NotImplemented
        return Compose((self, other))


# --------------------------------------------------------------------------- models


@dataclass(frozen=True)
class NoNoise(NoiseModel):
    """Identity: ``y' = y`` (a copy). Mean ``y``, variance 0."""

    kind: ClassVar[str] = "none"

    def _apply(self, xp: Any, y: Any, rng: np.random.Generator | None, fs: float) -> Any:
        return xp.asarray(y, copy=True)


@dataclass(frozen=True)
class Gaussian(NoiseModel):
    """Additive white Gaussian (read) noise.

    ``y' = y + sigma * fs * n``, ``n ~ N(0, 1)`` i.i.d. per pixel.
    Mean ``y``, variance ``(sigma * fs)**2``.

    Args:
        sigma: standard deviation relative to full scale (>= 0).
    """

    sigma: float
    kind: ClassVar[str] = "gaussian"

    def __post_init__(self) -> None:
        _set(self, "sigma", _real("gaussian", "sigma", self.sigma))

    def _apply(self, xp: Any, y: Any, rng: np.random.Generator | None, fs: float) -> Any:
        rng = _need_rng(rng, self.kind)
        noise = (self.sigma * fs) * rng.standard_normal(_host_shape(y))
        return y + _moved(noise, y, xp)


def _shot(y: Any, rng: np.random.Generator, fs: float, photons: float) -> np.ndarray:
    """Host float64 ``Poisson(clip(y, 0) / fs * P) * fs / P``.

    The rate is computed on the host in float64 from ``y``'s values so that the draw does not
    depend on the backend's rounding.
    """
    lam = np.clip(np.asarray(to_numpy(y), dtype=np.float64), 0.0, None) * (photons / fs)
    return _poisson_counts(rng, lam, None) * (fs / photons)


@dataclass(frozen=True)
class Poisson(NoiseModel):
    """Photon shot noise.

    ``y' = Poisson(clip(y, 0) / fs * P) * fs / P`` with ``P`` the expected photo-electrons at
    full scale. For ``y >= 0``: mean ``y``, variance ``y * fs / P``. Negative values become 0.

    Args:
        photons: photo-electrons at full scale (> 0); larger means less noise.
    """

    photons: float
    kind: ClassVar[str] = "poisson"

    def __post_init__(self) -> None:
        _set(self, "photons", _real("poisson", "photons", self.photons, positive=True))

    def _apply(self, xp: Any, y: Any, rng: np.random.Generator | None, fs: float) -> Any:
        rng = _need_rng(rng, self.kind)
        return _moved(_shot(y, rng, fs, self.photons), y, xp)


@dataclass(frozen=True)
class PoissonGaussian(NoiseModel):
    """Shot noise followed by read noise (the usual sensor model).

    ``y' = Poisson(clip(y, 0) / fs * P) * fs / P + sigma * fs * n``, ``n ~ N(0, 1)``; the
    Poisson draws are taken from ``rng`` before the Gaussian ones.
    For ``y >= 0``: mean ``y``, variance ``y * fs / P + (sigma * fs)**2``.

    Args:
        photons: photo-electrons at full scale (> 0).
        sigma: read-noise standard deviation relative to full scale (>= 0).
    """

    photons: float
    sigma: float
    kind: ClassVar[str] = "poisson_gaussian"

    def __post_init__(self) -> None:
        _set(self, "photons", _real("poisson_gaussian", "photons", self.photons, positive=True))
        _set(self, "sigma", _real("poisson_gaussian", "sigma", self.sigma))

    def _apply(self, xp: Any, y: Any, rng: np.random.Generator | None, fs: float) -> Any:
        rng = _need_rng(rng, self.kind)
        shot = _shot(y, rng, fs, self.photons)
        read = (self.sigma * fs) * rng.standard_normal(shot.shape)
        return _moved(shot + read, y, xp)


@dataclass(frozen=True)
class DarkCurrent(NoiseModel):
    """Thermal (dark) electrons accumulated during the exposure.

    ``y' = y + Poisson(e) * fs / P`` i.i.d. per pixel, with ``e`` the mean dark electrons per
    pixel per exposure and ``P`` the photo-electrons at full scale.
    Mean ``y + e * fs / P``, variance ``e * (fs / P)**2``.

    Args:
        electrons: mean dark electrons per pixel per exposure (>= 0).
        photons: photo-electrons at full scale (> 0), converting electrons to measurement units.
    """

    electrons: float
    photons: float
    kind: ClassVar[str] = "dark_current"

    def __post_init__(self) -> None:
        _set(self, "electrons", _real("dark_current", "electrons", self.electrons))
        _set(self, "photons", _real("dark_current", "photons", self.photons, positive=True))

    def _apply(self, xp: Any, y: Any, rng: np.random.Generator | None, fs: float) -> Any:
        rng = _need_rng(rng, self.kind)
        dark = _poisson_counts(rng, self.electrons, _host_shape(y)) * (fs / self.photons)
        return y + _moved(dark, y, xp)


@functools.lru_cache(maxsize=16)
def _fixed_pattern(seed: int, height: int, width: int, prnu: float, dsnu: float) -> tuple[np.ndarray, np.ndarray]:
    """Read-only host gain ``1 + prnu * z1`` and relative offset ``dsnu * z2`` maps ``(H, W)``."""
    gen = np.random.default_rng(seed)
    z_gain = gen.standard_normal((height, width))
    z_offset = gen.standard_normal((height, width))  # always drawn: offsets do not depend on prnu
    gain = 1.0 + prnu * z_gain
    offset = dsnu * z_offset
    gain.setflags(write=False)
    offset.setflags(write=False)
    return gain, offset


@dataclass(frozen=True)
class FixedPattern(NoiseModel):
    """Fixed-pattern noise: photo-response (PRNU) and dark-signal (DSNU) non-uniformity.

    ``y' = g * y + o`` with per-pixel gain ``g = 1 + prnu * z1`` and offset
    ``o = dsnu * fs * z2``, ``z1, z2 ~ N(0, 1)`` drawn over the last two axes ``(H, W)`` from
    ``np.random.default_rng(seed)``: the same pattern for every snapshot and batch element, and
    independent of the ``rng`` passed to :meth:`apply` (which it does not consume).
    Over pixels: mean ``y``, variance ``(prnu * y)**2 + (dsnu * fs)**2``.

    Args:
        prnu: relative standard deviation of the pixel gains (>= 0).
        dsnu: standard deviation of the pixel offsets relative to full scale (>= 0).
        seed: seed of the sensor's pattern (>= 0).
    """

    prnu: float
    dsnu: float
    seed: int = 0
    kind: ClassVar[str] = "fixed_pattern"

    def __post_init__(self) -> None:
        _set(self, "prnu", _real("fixed_pattern", "prnu", self.prnu))
        _set(self, "dsnu", _real("fixed_pattern", "dsnu", self.dsnu))
        _set(self, "seed", _integer("fixed_pattern", "seed", self.seed, 0))

    def pattern(self, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
        """Host float64 gain map and offset map (relative to full scale), each ``(H, W)``."""
        return _fixed_pattern(self.seed, int(height), int(width), self.prnu, self.dsnu)

    def _apply(self, xp: Any, y: Any, rng: np.random.Generator | None, fs: float) -> Any:
        if y.ndim < 2:
            raise ShapeError(f"fixed_pattern needs y with at least 2 axes (..., H, W), got shape {tuple(y.shape)}")
        gain, offset = self.pattern(y.shape[-2], y.shape[-1])
        # copy: torch.from_numpy would otherwise share (and warn about) the read-only cached map
        return y * from_numpy(np.array(gain), y) + from_numpy(offset * fs, y)


@dataclass(frozen=True)
class ADC(NoiseModel):
    """Analog-to-digital conversion: gain, black level, quantisation, saturation and clipping.

    With ``L = 2**bits - 1``::

        DN = clip(round(y / fs * gain * L) + black_level, 0, L)
        y' = (DN - black_level) / (gain * L) * fs

    so ``y'`` is in measurement units, quantised in steps ``D = fs / (gain * L)``, saturates at
    ``(L - black_level) * D`` (about ``fs / gain``) and clips at ``-black_level * D``.
    Deterministic (``rng`` is ignored). Rounding is half to even. For inputs spread over many
    levels the quantisation error ``y' - y`` has mean 0 and variance ``D**2 / 12``.

    Float32 represents every level exactly only for ``bits <= 24``.

    Args:
        bits: ADC resolution, 1..32.
        gain: analog gain (> 0); full scale of the ADC is reached at ``y = fs / gain``.
        black_level: DN added before clipping, 0..L.
    """

    bits: int = 12
    gain: float = 1.0
    black_level: int = 0
    kind: ClassVar[str] = "adc"

    def __post_init__(self) -> None:
        _set(self, "bits", _integer("adc", "bits", self.bits, 1, 32))
        _set(self, "gain", _real("adc", "gain", self.gain, positive=True))
        _set(self, "black_level", _integer("adc", "black_level", self.black_level, 0, 2**self.bits - 1))

    @property
    def levels(self) -> int:
        """``L = 2**bits - 1``, the largest DN."""
        return 2**self.bits - 1

    def step(self, full_scale: float = 1.0) -> float:
        """Quantisation step ``D = fs / (gain * L)`` in measurement units."""
        return float(full_scale) / (self.gain * self.levels)

    def _dn_float(self, xp: Any, y: Any, fs: float) -> Any:
        """DN as integral floats in ``y``'s dtype, clipped to ``[0, L]``."""
        top = float(self.levels)
        finfo = xp.finfo(y.dtype)
        mantissa = 1 - round(math.log2(float(finfo.eps)))
        if self.bits > mantissa:  # L is not representable: clip to the largest float below it
            top = float(2**self.bits - 2 ** (self.bits - mantissa))
        top = min(top, float(finfo.max))
        dn = xp.round(y * (self.gain * self.levels / fs))
        if self.black_level:
            dn = dn + float(self.black_level)
        return xp.clip(dn, 0.0, top)

    def to_dn(self, y: Any, full_scale: float = 1.0) -> Any:
        """The integer digital numbers ``DN``, on ``y``'s backend and device.

        Returns:
            ``uint16`` when ``bits <= 16`` (``int32`` on torch, whose uint16 lacks arithmetic),
            ``int32`` when ``bits <= 31``, ``int64`` for 32 bits.
        """
        xp = require_float(y, "y")
        require_finite(y, "y")
        fs = _check_full_scale(full_scale)
        if self.bits <= 16 and not is_torch(y):
            dtype = xp.uint16
        elif self.bits <= 31:
            dtype = xp.int32
        else:
            dtype = xp.int64
        return xp.astype(self._dn_float(xp, y, fs), dtype)

    def _apply(self, xp: Any, y: Any, rng: np.random.Generator | None, fs: float) -> Any:
        dn = self._dn_float(xp, y, fs)
        if self.black_level:
            dn = dn - float(self.black_level)
        return dn * (fs / (self.gain * self.levels))


@dataclass(frozen=True)
class Compose(NoiseModel):
    """Models applied in order: ``Compose((a, b))(y) = b(a(y))``, also written ``a >> b``.

    Nested composes are flattened. The draws of each model are taken from the same ``rng`` in
    order, so mean and variance follow from the composed models' formulas.

    Args:
        models: the models, first applied first.
    """

    models: tuple[NoiseModel, ...] = ()
    kind: ClassVar[str] = "compose"

    def __post_init__(self) -> None:
        if isinstance(self.models, NoiseModel) or not isinstance(self.models, (tuple, list)):
            raise InvalidValueError(f"compose: 'models' must be a tuple of NoiseModel, got {self.models!r}")
        flat: list[NoiseModel] = []
        for m in self.models:
            if isinstance(m, Compose):
                flat.extend(m.models)
            elif isinstance(m, NoiseModel):
                flat.append(m)
            else:
                raise InvalidValueError(f"compose: every model must be a NoiseModel, got {m!r}")
        _set(self, "models", tuple(flat))

    def _apply(self, xp: Any, y: Any, rng: np.random.Generator | None, fs: float) -> Any:
        out = xp.asarray(y, copy=True) if not self.models else y
        for m in self.models:
            out = m._apply(xp, out, rng, fs)
        return out

    def to_dict(self) -> dict[str, Any]:
        """``{"kind": "compose", "models": [m.to_dict(), ...]}``."""
        return {"kind": self.kind, "models": [m.to_dict() for m in self.models]}

    def to_spec(self) -> str:
        return "+".join(m.to_spec() for m in self.models) if self.models else "none"


# --------------------------------------------------------------------------- (de)serialisation

NOISE_MODELS: dict[str, type[NoiseModel]] = {
    "none": NoNoise,
    "gaussian": Gaussian,
    "poisson": Poisson,
    "poisson_gaussian": PoissonGaussian,
    "dark_current": DarkCurrent,
    "fixed_pattern": FixedPattern,
    "adc": ADC,
    "compose": Compose,
}
"""Registry: ``kind`` name to model class."""


def _known() -> str:
    return ", ".join(sorted(NOISE_MODELS))


def _build(cls: type[NoiseModel], kind: str, params: Mapping[str, Any], where: str) -> NoiseModel:
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(params) - set(fields))
    if unknown:
        accepted = ", ".join(fields) or "none"
        raise ConfigError(f"{where}: unknown parameter(s) {unknown} for noise model {kind!r}; accepted: {accepted}")
    missing = [
        n
        for n, f in fields.items()
        if n not in params and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ConfigError(f"{where}: noise model {kind!r} needs parameter(s) {missing}")
    return cls(**params)


def noise_from_dict(d: Mapping[str, Any]) -> NoiseModel:
    """The model described by ``d``, the output of :meth:`NoiseModel.to_dict`.

    Raises:
        ConfigError: ``d`` is not a mapping, lacks ``"kind"``, names an unknown kind or has
            unknown or missing parameters.
        InvalidValueError: a parameter value is out of range.
    """
    if not isinstance(d, Mapping):
        raise ConfigError(f"noise description must be a dict with a 'kind' key, got {type(d).__name__}")
    if "kind" not in d:
        raise ConfigError(f"noise description {dict(d)!r} has no 'kind' key; known kinds: {_known()}")
    kind = d["kind"]
    cls = NOISE_MODELS.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise ConfigError(f"unknown noise kind {kind!r}; known kinds: {_known()}")
    params = {k: v for k, v in d.items() if k != "kind"}
    if cls is Compose:
        models = params.get("models", [])
        extra = sorted(set(params) - {"models"})
        if extra or not isinstance(models, (list, tuple)):
            raise ConfigError(f"compose description must be {{'kind': 'compose', 'models': [...]}}, got {dict(d)!r}")
        return Compose(tuple(noise_from_dict(m) for m in models))
    return _build(cls, kind, params, "noise description")


_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_INT = re.compile(r"^[+-]?\d+$")


def _parse_value(text: str, part: str) -> int | float:
    if _INT.match(text):
        return int(text)
    try:
        return float(text)
    except ValueError:
        raise ConfigError(f"noise spec part {part!r}: value {text!r} is not a number; {_SPEC_SYNTAX}") from None


def parse_noise(spec: str) -> NoiseModel:
    """The model described by a command-line string.

    Syntax: models joined by ``+``; each is ``name`` or ``name:param=value,param=value``, with
    names from :data:`NOISE_MODELS` (``-`` may stand for ``_``). Examples: ``"none"``,
    ``"gaussian:sigma=0.01"``, ``"poisson:photons=1000+gaussian:sigma=0.005"``,
    ``"adc:bits=8,gain=1"``. A single model is returned as is, several as a :class:`Compose`.

    Raises:
        ConfigError: naming the offending part, for bad syntax, unknown models or parameters,
            and out-of-range values.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError(f"noise spec must be a non-empty string, got {spec!r}; {_SPEC_SYNTAX}")
    models: list[NoiseModel] = []
    for raw in spec.split("+"):
        part = raw.strip()
        if not part:
            raise ConfigError(f"noise spec {spec!r} has an empty model between '+' signs; {_SPEC_SYNTAX}")
        name, sep, rest = part.partition(":")
        name = name.strip().lower().replace("-", "_")
        if not _NAME.match(name):
            raise ConfigError(f"noise spec part {part!r}: {name!r} is not a model name; {_SPEC_SYNTAX}")
        cls = NOISE_MODELS.get(name)
        if cls is None or cls is Compose:
            known = ", ".join(k for k in sorted(NOISE_MODELS) if k != "compose")
            raise ConfigError(f"noise spec part {part!r}: unknown model {name!r}; known models: {known}")
        params: dict[str, Any] = {}
        if sep:
            if not rest.strip():
                raise ConfigError(f"noise spec part {part!r}: nothing after ':'; {_SPEC_SYNTAX}")
            for item in rest.split(","):
                key, eq, value = item.partition("=")
                key, value = key.strip(), value.strip()
                if not eq or not key or not value:
                    raise ConfigError(f"noise spec part {part!r}: {item.strip()!r} is not 'param=value'; {_SPEC_SYNTAX}")
                if key in params:
                    raise ConfigError(f"noise spec part {part!r}: parameter {key!r} given twice")
                params[key] = _parse_value(value, part)
        try:
            models.append(_build(cls, name, params, f"noise spec part {part!r}"))
        except InvalidValueError as exc:
            raise ConfigError(f"noise spec part {part!r}: {exc}") from exc
    return models[0] if len(models) == 1 else Compose(tuple(models))
