"""Bayer colour filter arrays: mosaicking, its adjoint, plane packing and demosaicking.

A colour CACTI camera sees, behind its coded aperture, a sensor with a 2x2 Bayer colour filter
array (CFA). Each pixel keeps one of the three colour channels of the scene, so the forward model
of the colour filter is the linear map

.. math::

    m[i, j] = x[i, j, c(i \\bmod 2, j \\bmod 2)],

where ``c`` reads the channel of the 2x2 cell from the pattern string (``"RGGB"`` lists the
colours of the cell row by row: red at (0, 0), green at (0, 1) and (1, 0), blue at (1, 1)).

Naming of the four sites of a cell: ``R``, ``G1`` (the green on the red row), ``G2`` (the green
on the blue row) and ``B``. :func:`to_planes` splits a mosaic into these four half-resolution
planes in that order and :func:`from_planes` interleaves them back.

Every function here works on numpy, torch and array-api-strict arrays (any array API namespace),
with any leading batch axes, returns arrays of the input's backend, device and dtype, and never
writes into its inputs.
"""

from __future__ import annotations

import functools
from typing import Any

from snapcap.backend import namespace, require_float
from snapcap.errors import ConfigError, DTypeError, ShapeError

__all__ = [
    "PATTERNS",
    "DEMOSAIC_METHODS",
    "normalize_pattern",
    "channel_offsets",
    "mosaic",
    "mosaic_adjoint",
    "to_planes",
    "from_planes",
    "demosaic",
    "BayerMosaic",
]

PATTERNS: tuple[str, ...] = ("RGGB", "BGGR", "GRBG", "GBRG")
"""The supported 2x2 CFA layouts, each read row by row from the top-left pixel."""

DEMOSAIC_METHODS: tuple[str, ...] = ("bilinear", "malvar")
"""The methods :func:`demosaic` understands."""

PLANE_NAMES: tuple[str, ...] = ("R", "G1", "G2", "B")
"""Order of the four sites of a Bayer cell in :func:`to_planes` and :func:`from_planes`."""

_CHANNEL_OF_PLANE = {"R": 0, "G1": 1, "G2": 1, "B": 2}


# --------------------------------------------------------------------------------------------
# Patterns
# --------------------------------------------------------------------------------------------


def normalize_pattern(pattern: str | None, name: str = "pattern") -> str | None:
    """The canonical upper-case spelling of a Bayer pattern, or ``None`` for no CFA.

    Args:
        pattern: one of ``"RGGB"``, ``"BGGR"``, ``"GRBG"``, ``"GBRG"`` in any case, or ``None``
            / ``"none"`` for a monochrome sensor.
        name: the argument name used in error messages.

    Returns:
        The pattern in upper case, or ``None``.

    Raises:
        ConfigError: if ``pattern`` is not a string naming one of :data:`PATTERNS`.
    """
    if pattern is None:
        return None
    if not isinstance(pattern, str):
        raise ConfigError(
            f"{name} must be a string, one of {', '.join(PATTERNS)} (case-insensitive) or None, "
            f"got {type(pattern).__name__} {pattern!r}"
        )
    canonical = pattern.strip().upper()
    if canonical == "NONE":
        return None
    if canonical not in PATTERNS:
        raise ConfigError(f"{name} must be one of {', '.join(PATTERNS)} (case-insensitive) or None, got {pattern!r}")
    return canonical


def _require_pattern(pattern: str | None, name: str = "pattern") -> str:
    """Like :func:`normalize_pattern`, but ``None`` is an error: a CFA is needed here."""
    canonical = normalize_pattern(pattern, name)
    if canonical is None:
        raise ConfigError(f"{name} must be one of {', '.join(PATTERNS)} here, got {pattern!r} (no colour filter)")
    return canonical


@functools.lru_cache(maxsize=None)
def _offsets(pattern: str) -> tuple[tuple[int, int], ...]:
    """(row, col) of R, G1, G2, B in the 2x2 cell of a canonical pattern."""
    cell = {(row, col): pattern[2 * row + col] for row in range(2) for col in range(2)}
    red = next(pos for pos, colour in cell.items() if colour == "R")
    blue = next(pos for pos, colour in cell.items() if colour == "B")
    greens = [pos for pos, colour in cell.items() if colour == "G"]
    green_on_red_row = next(pos for pos in greens if pos[0] == red[0])
    green_on_blue_row = next(pos for pos in greens if pos[0] == blue[0])
    return (red, green_on_red_row, green_on_blue_row, blue)


def channel_offsets(pattern: str) -> dict[str, tuple[int, int]]:
    """Where each of the four sites of the pattern lies in the 2x2 cell.

    The site ``s`` at offset ``(r, c)`` covers the pixels ``m[..., r::2, c::2]``.

    Args:
        pattern: a Bayer pattern (see :func:`normalize_pattern`); ``None`` is not allowed.

    Returns:
        ``{"R": (r, c), "G1": (r, c), "G2": (r, c), "B": (r, c)}`` where ``G1`` is the green on
        the red row and ``G2`` the green on the blue row.

    Raises:
        ConfigError: for an unknown pattern or ``None``.
    """
    return dict(zip(PLANE_NAMES, _offsets(_require_pattern(pattern))))


# --------------------------------------------------------------------------------------------
# Shape checks and interleaving
# --------------------------------------------------------------------------------------------


def _shape(x: Any) -> tuple[int, ...]:
    return tuple(int(size) for size in x.shape)


def _check_even_image(x: Any, name: str, image_axes: tuple[int, int], layout: str) -> tuple[int, int]:
    """Check that the (H, W) axes of ``x`` exist and are even and non-zero; return (H, W)."""
    shape = _shape(x)
    needed = -min(image_axes)
    if len(shape) < needed:
        raise ShapeError(f"{name} must have shape {layout}, got shape {shape}")
    height, width = shape[image_axes[0]], shape[image_axes[1]]
    if height == 0 or width == 0 or height % 2 or width % 2:
        raise ShapeError(
            f"{name} must have shape {layout} with H and W even and positive (whole 2x2 Bayer "
            f"cells), got shape {shape} (H={height}, W={width})"
        )
    return height, width


def _interleave(xp: Any, cell: dict[tuple[int, int], Any]) -> Any:
    """Build (..., 2h, 2w) from four (..., h, w) arrays keyed by their (row, col) in the cell.

    ``out[..., 2i + r, 2j + c] = cell[(r, c)][..., i, j]``.
    """
    top = xp.stack((cell[(0, 0)], cell[(0, 1)]), axis=-1)  # (..., h, w, 2)
    bottom = xp.stack((cell[(1, 0)], cell[(1, 1)]), axis=-1)
    both = xp.stack((top, bottom), axis=-3)  # (..., h, 2, w, 2)
    shape = _shape(both)
    return xp.reshape(both, shape[:-4] + (2 * shape[-4], 2 * shape[-2]))


def _assemble(xp: Any, pattern: str, planes: tuple[Any, Any, Any, Any]) -> Any:
    """Interleave four site planes given in (R, G1, G2, B) order into a (..., H, W) image."""
    return _interleave(xp, dict(zip(_offsets(pattern), planes)))


def _split(m: Any, pattern: str) -> tuple[Any, Any, Any, Any]:
    """The four (..., H/2, W/2) site planes of ``m`` in (R, G1, G2, B) order (views)."""
    return tuple(m[..., row::2, col::2] for row, col in _offsets(pattern))  # type: ignore[return-value]


# --------------------------------------------------------------------------------------------
# Planes
# --------------------------------------------------------------------------------------------


def to_planes(m: Any, pattern: str) -> Any:
    """Split a Bayer mosaic into its four half-resolution site planes.

    .. math::

        P[..., k, i, j] = m[..., 2i + r_k, 2j + c_k], \\quad k \\in (R, G_1, G_2, B),

    with ``(r_k, c_k)`` from :func:`channel_offsets`.

    Args:
        m: mosaic of shape (..., H, W), H and W even; any dtype.
        pattern: the Bayer pattern of ``m``.

    Returns:
        Array of shape (..., 4, H/2, W/2), planes in the order R, G1, G2, B.

    Raises:
        ShapeError: if ``m`` has fewer than 2 axes or odd H or W.
        ConfigError: for an unknown pattern.
    """
    xp = namespace(m)
    pattern = _require_pattern(pattern)
    _check_even_image(m, "m", (-2, -1), "(..., H, W)")
    return xp.stack(_split(m, pattern), axis=-3)


def from_planes(planes: Any, pattern: str) -> Any:
    """Interleave four site planes back into a Bayer mosaic; the inverse of :func:`to_planes`.

    .. math::

        m[..., 2i + r_k, 2j + c_k] = P[..., k, i, j], \\quad k \\in (R, G_1, G_2, B).

    Args:
        planes: array of shape (..., 4, h, w), planes in the order R, G1, G2, B; any dtype.
        pattern: the Bayer pattern of the result.

    Returns:
        Mosaic of shape (..., 2h, 2w).

    Raises:
        ShapeError: if ``planes`` has fewer than 3 axes or its axis -3 is not of size 4.
        ConfigError: for an unknown pattern.
    """
    xp = namespace(planes)
    pattern = _require_pattern(pattern)
    shape = _shape(planes)
    if len(shape) < 3 or shape[-3] != 4:
        raise ShapeError(f"planes must have shape (..., 4, h, w) (planes R, G1, G2, B), got shape {shape}")
    return _assemble(xp, pattern, tuple(planes[..., index, :, :] for index in range(4)))  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# Forward model and adjoint
# --------------------------------------------------------------------------------------------


def mosaic(rgb: Any, pattern: str) -> Any:
    """Apply the colour filter array: keep at each pixel the channel the CFA lets through.

    .. math::

        m[..., i, j] = x[..., i, j, c(i \\bmod 2, j \\bmod 2)]

    Args:
        rgb: colour frames of shape (..., H, W, 3), H and W even; any real dtype (it is a
            selection, so uint8 video can be mosaicked before it is converted to float).
        pattern: the Bayer pattern.

    Returns:
        Mosaic of shape (..., H, W), same backend, device and dtype as ``rgb``.

    Raises:
        ShapeError: if the last axis is not 3 or H or W is odd.
        DTypeError: if ``rgb`` is not a real numeric array.
        ConfigError: for an unknown pattern.
    """
    xp = namespace(rgb)
    pattern = _require_pattern(pattern)
    shape = _shape(rgb)
    if len(shape) < 3 or shape[-1] != 3:
        raise ShapeError(f"rgb must have shape (..., H, W, 3) (last axis the R, G, B channels), got shape {shape}")
    _check_even_image(rgb, "rgb", (-3, -2), "(..., H, W, 3)")
    if not xp.isdtype(rgb.dtype, ("real floating", "integral")):
        raise DTypeError(f"rgb must be a real numeric array, got dtype {rgb.dtype}")
    planes = tuple(rgb[..., row::2, col::2, _CHANNEL_OF_PLANE[site]] for site, (row, col) in zip(PLANE_NAMES, _offsets(pattern)))
    return _assemble(xp, pattern, planes)  # type: ignore[arg-type]


def mosaic_adjoint(m: Any, pattern: str) -> Any:
    """Adjoint of :func:`mosaic`: put each sample back in its CFA channel, zeros elsewhere.

    .. math::

        (M^\\top m)[..., i, j, k] = m[..., i, j] \\; [k = c(i \\bmod 2, j \\bmod 2)],
        \\qquad M M^\\top = I.

    Args:
        m: mosaic of shape (..., H, W), real floating, H and W even.
        pattern: the Bayer pattern.

    Returns:
        Array of shape (..., H, W, 3), same backend, device and dtype as ``m``.

    Raises:
        ShapeError: if H or W is odd.
        DTypeError: if ``m`` is not real floating.
        ConfigError: for an unknown pattern.
    """
    xp = namespace(m)
    pattern = _require_pattern(pattern)
    _check_even_image(m, "m", (-2, -1), "(..., H, W)")
    require_float(m, "m")
    return xp.stack(_masked_channels(xp, m, pattern), axis=-1)


def _masked_channels(xp: Any, m: Any, pattern: str) -> tuple[Any, Any, Any]:
    """The R, G and B channels of the mosaic with zeros at the pixels of the other colours."""
    red, green1, green2, blue = _split(m, pattern)
    zero = xp.zeros_like(red)
    return (
        _assemble(xp, pattern, (red, zero, zero, zero)),
        _assemble(xp, pattern, (zero, green1, green2, zero)),
        _assemble(xp, pattern, (zero, zero, zero, blue)),
    )


# --------------------------------------------------------------------------------------------
# 2-D filtering on the array API
# --------------------------------------------------------------------------------------------


def _reflect_pad_axis(xp: Any, x: Any, pad: int, axis: int) -> Any:
    """Reflect-pad ``x`` by ``pad`` on both sides of ``axis`` (-2 or -1), edge not repeated.

    ``x[-k] = x[k]`` and ``x[n - 1 + k] = x[n - 1 - k]`` (numpy's ``mode="reflect"``). Pads wider
    than ``n - 1`` are built by reflecting again, so the result stays periodic with period
    ``2 (n - 1)``; in particular the parity of every index, and hence the Bayer phase, is kept.
    """
    remaining = pad
    while remaining > 0:
        size = int(x.shape[axis])
        step = min(remaining, size - 1)
        if axis == -1:
            left = xp.flip(x[..., 1 : step + 1], axis=-1)
            right = xp.flip(x[..., size - 1 - step : size - 1], axis=-1)
        else:
            left = xp.flip(x[..., 1 : step + 1, :], axis=-2)
            right = xp.flip(x[..., size - 1 - step : size - 1, :], axis=-2)
        x = xp.concat((left, x, right), axis=axis)
        remaining -= step
    return x


def _kernel_terms(kernel: tuple[tuple[float, ...], ...]) -> tuple[tuple[float, tuple[tuple[int, int], ...]], ...]:
    """Group the non-zero taps of a centred odd kernel by coefficient: ((coef, ((di, dj), ...)), ...)."""
    radius = len(kernel) // 2
    groups: dict[float, list[tuple[int, int]]] = {}
    for row, values in enumerate(kernel):
        for col, coef in enumerate(values):
            if coef != 0:
                groups.setdefault(float(coef), []).append((row - radius, col - radius))
    return tuple((coef, tuple(taps)) for coef, taps in groups.items())


def _transpose(kernel: tuple[tuple[float, ...], ...]) -> tuple[tuple[float, ...], ...]:
    return tuple(zip(*kernel))


def _filter(padded: Any, terms: Any, pad: int, height: int, width: int, scale: float) -> Any:
    """Correlate a padded (..., H + 2 pad, W + 2 pad) image with a kernel given as grouped taps.

    .. math::

        y[..., i, j] = s \\sum_{(d_i, d_j)} k[d_i, d_j] \\; x[..., i + d_i, j + d_j]

    (all kernels used here are symmetric, so correlation and convolution agree).
    """
    total = None
    for coef, taps in terms:
        group = None
        for d_row, d_col in taps:
            window = padded[..., pad + d_row : pad + d_row + height, pad + d_col : pad + d_col + width]
            group = window if group is None else group + window
        group = group * coef
        total = group if total is None else total + group
    return total * scale


# Malvar-He-Cutler (2004) kernels, to be divided by 8.
_MALVAR_G_AT_RB = (
    (0, 0, -1, 0, 0),
    (0, 0, 2, 0, 0),
    (-1, 2, 4, 2, -1),
    (0, 0, 2, 0, 0),
    (0, 0, -1, 0, 0),
)
# R at a green pixel of a red row (red neighbours left and right); B at a green of a blue row.
_MALVAR_ROW = (
    (0, 0, 0.5, 0, 0),
    (0, -1, 0, -1, 0),
    (-1, 4, 5, 4, -1),
    (0, -1, 0, -1, 0),
    (0, 0, 0.5, 0, 0),
)
# R at a green pixel of a blue row (red neighbours above and below); B at a green of a red row.
_MALVAR_COL = _transpose(_MALVAR_ROW)
# R at a blue pixel; B at a red pixel.
_MALVAR_DIAG = (
    (0, 0, -1.5, 0, 0),
    (0, 2, 0, 2, 0),
    (-1.5, 0, 6, 0, -1.5),
    (0, 2, 0, 2, 0),
    (0, 0, -1.5, 0, 0),
)
# Bilinear kernels, to be divided by 4, applied to the masked channels.
_BILINEAR_G = (
    (0, 1, 0),
    (1, 4, 1),
    (0, 1, 0),
)
_BILINEAR_RB = (
    (1, 2, 1),
    (2, 4, 2),
    (1, 2, 1),
)

_TERMS = {
    name: _kernel_terms(kernel)
    for name, kernel in {
        "malvar_g": _MALVAR_G_AT_RB,
        "malvar_row": _MALVAR_ROW,
        "malvar_col": _MALVAR_COL,
        "malvar_diag": _MALVAR_DIAG,
        "bilinear_g": _BILINEAR_G,
        "bilinear_rb": _BILINEAR_RB,
    }.items()
}


def _normalize_method(method: str) -> str:
    if not isinstance(method, str) or method.strip().lower() not in DEMOSAIC_METHODS:
        raise ConfigError(f"method must be one of {', '.join(DEMOSAIC_METHODS)}, got {method!r}")
    return method.strip().lower()


def _pad2d(xp: Any, x: Any, pad: int) -> Any:
    return _reflect_pad_axis(xp, _reflect_pad_axis(xp, x, pad, -2), pad, -1)


def demosaic(m: Any, pattern: str, method: str = "malvar") -> Any:
    """Interpolate the two missing colours at every pixel of a Bayer mosaic.

    The sampled value of each pixel is kept exactly; the missing ones are linear filters of the
    mosaic, computed on a reflect-padded image (``x[-k] = x[k]``, which keeps the Bayer phase).

    ``"bilinear"``: each channel ``c`` is interpolated from its masked samples
    :math:`m_c = m \\cdot [\\mathrm{cfa} = c]`,

    .. math::

        \\hat G = \\frac{1}{4}\\begin{bmatrix}0&1&0\\\\1&4&1\\\\0&1&0\\end{bmatrix} * m_G, \\qquad
        \\hat R = \\frac{1}{4}\\begin{bmatrix}1&2&1\\\\2&4&2\\\\1&2&1\\end{bmatrix} * m_R
        \\quad (\\text{same for } B).

    ``"malvar"`` (Malvar, He and Cutler, ICASSP 2004): bilinear interpolation corrected by the
    Laplacian of the sampled channel, i.e. the 5x5 filters (all divided by 8) applied to the
    full mosaic ``m``:

    .. math::

        G@R,B: \\begin{bmatrix}0&0&-1&0&0\\\\0&0&2&0&0\\\\-1&2&4&2&-1\\\\0&0&2&0&0\\\\0&0&-1&0&0\\end{bmatrix}
        \\quad
        R@G_{R\\,row}: \\begin{bmatrix}0&0&\\tfrac12&0&0\\\\0&-1&0&-1&0\\\\-1&4&5&4&-1\\\\
        0&-1&0&-1&0\\\\0&0&\\tfrac12&0&0\\end{bmatrix}
        \\quad
        R@B: \\begin{bmatrix}0&0&-\\tfrac32&0&0\\\\0&2&0&2&0\\\\-\\tfrac32&0&6&0&-\\tfrac32\\\\
        0&2&0&2&0\\\\0&0&-\\tfrac32&0&0\\end{bmatrix}

    with the transpose of the second for R at a green of a blue row, and the same filters with R
    and B swapped for blue.

    Both methods reproduce constant colour images exactly everywhere and per-channel linear
    ramps exactly away from the border (1 pixel for bilinear, 2 for malvar).

    Args:
        m: mosaic of shape (..., H, W), real floating, H and W even.
        pattern: the Bayer pattern of ``m``.
        method: ``"malvar"`` (default) or ``"bilinear"``.

    Returns:
        RGB frames of shape (..., H, W, 3), same backend, device and dtype as ``m``.

    Raises:
        ShapeError: if ``m`` has fewer than 2 axes or odd H or W.
        DTypeError: if ``m`` is not real floating.
        ConfigError: for an unknown pattern or method.
    """
    xp = namespace(m)
    pattern = _require_pattern(pattern)
    method = _normalize_method(method)
    height, width = _check_even_image(m, "m", (-2, -1), "(..., H, W)")
    require_float(m, "m")
    red, green1, green2, blue = _split(m, pattern)

    if method == "bilinear":
        masked_red, masked_green, masked_blue = _masked_channels(xp, m, pattern)
        est_red = _split(_filter(_pad2d(xp, masked_red, 1), _TERMS["bilinear_rb"], 1, height, width, 0.25), pattern)
        est_green = _split(_filter(_pad2d(xp, masked_green, 1), _TERMS["bilinear_g"], 1, height, width, 0.25), pattern)
        est_blue = _split(_filter(_pad2d(xp, masked_blue, 1), _TERMS["bilinear_rb"], 1, height, width, 0.25), pattern)
        red_planes = (red, est_red[1], est_red[2], est_red[3])
        green_planes = (est_green[0], green1, green2, est_green[3])
        blue_planes = (est_blue[0], est_blue[1], est_blue[2], blue)
    else:
        padded = _pad2d(xp, m, 2)
        at_rb = _split(_filter(padded, _TERMS["malvar_g"], 2, height, width, 0.125), pattern)
        row = _split(_filter(padded, _TERMS["malvar_row"], 2, height, width, 0.125), pattern)
        col = _split(_filter(padded, _TERMS["malvar_col"], 2, height, width, 0.125), pattern)
        diag = _split(_filter(padded, _TERMS["malvar_diag"], 2, height, width, 0.125), pattern)
        # Sites in (R, G1, G2, B) order; G1 has red left/right and blue above/below.
        red_planes = (red, row[1], col[2], diag[3])
        green_planes = (at_rb[0], green1, green2, at_rb[3])
        blue_planes = (diag[0], col[1], row[2], blue)

    channels = tuple(_assemble(xp, pattern, planes) for planes in (red_planes, green_planes, blue_planes))
    return xp.stack(channels, axis=-1)


# --------------------------------------------------------------------------------------------
# Operator
# --------------------------------------------------------------------------------------------


class BayerMosaic:
    """The colour filter array as an immutable linear operator.

    .. math::

        A x = M x \\;(\\text{(..., H, W, 3)} \\to \\text{(..., H, W)}), \\qquad
        A^\\top m = M^\\top m, \\qquad A A^\\top = I.

    Args:
        pattern: the Bayer pattern (see :func:`normalize_pattern`); ``None`` is not allowed.

    Raises:
        ConfigError: for an unknown pattern or ``None``.
    """

    __slots__ = ("_pattern",)

    def __init__(self, pattern: str):
        object.__setattr__(self, "_pattern", _require_pattern(pattern))

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"BayerMosaic is immutable; cannot set {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"BayerMosaic is immutable; cannot delete {name!r}")

    def __reduce__(self):
        return (type(self), (self._pattern,))

    @property
    def pattern(self) -> str:
        """The canonical pattern string, e.g. ``"RGGB"``."""
        return self._pattern

    @property
    def offsets(self) -> dict[str, tuple[int, int]]:
        """(row, col) of the R, G1, G2 and B sites in the 2x2 cell (see :func:`channel_offsets`)."""
        return channel_offsets(self._pattern)

    def A(self, rgb: Any) -> Any:
        """Forward model :math:`m = M x`: (..., H, W, 3) -> (..., H, W); see :func:`mosaic`."""
        return mosaic(rgb, self._pattern)

    def A_adjoint(self, m: Any) -> Any:
        """Adjoint :math:`M^\\top m`: (..., H, W) -> (..., H, W, 3); see :func:`mosaic_adjoint`."""
        return mosaic_adjoint(m, self._pattern)

    def __call__(self, rgb: Any) -> Any:
        """Same as :meth:`A`."""
        return self.A(rgb)

    def planes(self, m: Any) -> Any:
        """(..., H, W) -> (..., 4, H/2, W/2) in the order R, G1, G2, B; see :func:`to_planes`."""
        return to_planes(m, self._pattern)

    def from_planes(self, planes: Any) -> Any:
        """(..., 4, h, w) -> (..., 2h, 2w); the inverse of :meth:`planes`."""
        return from_planes(planes, self._pattern)

    def demosaic(self, m: Any, method: str = "malvar") -> Any:
        """(..., H, W) -> (..., H, W, 3); see :func:`demosaic`."""
        return demosaic(m, self._pattern, method)

    def __repr__(self) -> str:
        return f"BayerMosaic({self._pattern!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, BayerMosaic):
            return NotImplemented
        return self._pattern == other._pattern

    def __hash__(self) -> int:
        return hash((BayerMosaic, self._pattern))
