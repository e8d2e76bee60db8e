"""Float64 maths whose results are the same bits on every x86-64 (or other IEEE-754) machine.

Why: numpy and the math libraries pick kernels by CPU (numpy's SIMD dispatch for ``sin``/``exp``
on AVX-512, OpenBLAS/MKL/oneDNN kernels for matrix products, reduction orders that follow the
vector width). Their results differ in the last bit between machines, and one last bit can flip
a pixel of SynthReID before JPEG encoding. Everything here uses only IEEE-754 basic operations
(+, -, *, /, sqrt, rint, floor, ldexp: correctly rounded, hence identical everywhere) applied
elementwise in a fixed order: transcendental functions are polynomials after an explicit range
reduction, small matrix products are written-out sums, and reductions run one term after the
other along a fixed axis. Accuracy is about 1e-16 relative (``tests/test_synth_exact.py``
checks it against the C library), which is all the generator needs; determinism is the point.
"""

from __future__ import annotations

import math

import numpy as np

# pi/2 split so that k * _PIO2_HI is exact for |k| < 2**20 (Cody-Waite reduction)
_PIO2_HI = 1.57079632673412561417e00
_PIO2_MID = 6.07710050630396597660e-11
_PIO2_LO = 2.02226624879595063154e-21
_LN2_HI = 6.93147180369123816490e-01  # ln 2 split the same way
_LN2_LO = 1.90821492927058770002e-10
_SIN_COEF = tuple((-1.0 if k % 2 else 1.0) / math.factorial(2 * k + 1) for k in range(1, 10))  # r^3 .. r^19
_COS_COEF = tuple((-1.0 if k % 2 else 1.0) / math.factorial(2 * k) for k in range(1, 11))  # r^2 .. r^20
_EXP_COEF = tuple(1.0 / math.factorial(k) for k in range(18))  # 1 .. r^17
_ATAN_COEF = tuple((-1.0 if k % 2 else 1.0) / (2 * k + 1) for k in range(12))  # t .. t^23


def _horner(x: np.ndarray, coefs: tuple[float, ...]) -> np.ndarray:
    """sum_k coefs[k] * x**k, Horner's scheme from the highest power down."""
    acc = np.full_like(x, coefs[-1])
    for c in coefs[-2::-1]:
        acc = acc * x + c
    return acc


def sincos(x: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    """``(sin x, cos x)`` for |x| < 1e5 (radians)."""
    x = np.asarray(x, dtype=np.float64)
    k = np.rint(x * (2.0 / math.pi))
    r = ((x - k * _PIO2_HI) - k * _PIO2_MID) - k * _PIO2_LO
    r2 = r * r
    s = r + r * (r2 * _horner(r2, _SIN_COEF))
    c = 1.0 + r2 * _horner(r2, _COS_COEF)
    q = k.astype(np.int64) & 3
    sin = np.where(q == 0, s, np.where(q == 1, c, np.where(q == 2, -s, -c)))
    cos = np.where(q == 0, c, np.where(q == 1, -s, np.where(q == 2, -c, s)))
    return sin, cos


def sin(x: np.ndarray | float) -> np.ndarray:
    return sincos(x)[0]


def cos(x: np.ndarray | float) -> np.ndarray:
    return sincos(x)[1]


def exp(x: np.ndarray | float) -> np.ndarray:
    """``e**x`` for x in [-700, 700] (clipped there)."""
    x = np.clip(np.asarray(x, dtype=np.float64), -700.0, 700.0)
    k = np.rint(x * 1.4426950408889634)  # 1 / ln 2
    r = (x - k * _LN2_HI) - k * _LN2_LO
    return np.ldexp(_horner(r, _EXP_COEF), k.astype(np.int64))


def atan2(y: np.ndarray | float, x: np.ndarray | float) -> np.ndarray:
    """The angle of (x, y) in [-pi, pi], like ``math.atan2`` (atan2(0, 0) = 0)."""
    y, x = np.broadcast_arrays(np.asarray(y, dtype=np.float64), np.asarray(x, dtype=np.float64))
    ay, ax = np.abs(y), np.abs(x)
    big, small = np.maximum(ax, ay), np.minimum(ax, ay)
    t = small / np.where(big > 0, big, 1.0)  # in [0, 1]
    for _ in range(3):  # atan(t) = 2 atan(t / (1 + sqrt(1 + t^2))): t <= tan(pi/32) after three halvings
        t = t / (1.0 + np.sqrt(1.0 + t * t))
    a = 8.0 * (t * _horner(t * t, _ATAN_COEF))
    a = np.where(ay > ax, math.pi / 2 - a, a)
    a = np.where(x < 0, math.pi - a, a)
    return np.where(y < 0, -a, a)


def ordered_sum(a: np.ndarray, axis: int) -> np.ndarray:
    """Sum along ``axis`` one term after the other (index 0 first), whatever the CPU."""
    a = np.moveaxis(np.asarray(a), axis, 0)
    acc = a[0].copy()
    for term in a[1:]:
        acc = acc + term
    return acc


def matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b`` for small trailing matrices (..., n, k) x (..., k, m), summed over k in order."""
    acc = a[..., :, 0, None] * b[..., None, 0, :]
    for j in range(1, a.shape[-1]):
        acc = acc + a[..., :, j, None] * b[..., None, j, :]
    return acc


def matvec(m: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``m @ v`` for (..., n, k) x (..., k) -> (..., n), summed over k in order."""
    acc = m[..., :, 0] * v[..., 0, None]
    for j in range(1, m.shape[-1]):
        acc = acc + m[..., :, j] * v[..., j, None]
    return acc


def dot3(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Dot product over a last axis of length 3, as (a0 b0 + a1 b1) + a2 b2."""
    return a[..., 0] * b[..., 0] + a[..., 1] * b[..., 1] + a[..., 2] * b[..., 2]


def normalize(v: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """``v / max(|v|, eps)`` over the last axis (length 3)."""
    return v / np.maximum(np.sqrt(dot3(v, v)), eps)[..., None]


def apply_taps(x: np.ndarray, index: np.ndarray, weight: np.ndarray, axis: int) -> np.ndarray:
    """A linear filter along ``axis``: ``out[i] = sum_t weight[i, t] * x[index[i, t]]``, t in order.

    ``index``/``weight`` are (n_out, taps); unused taps have weight 0 (any valid index). Used for
    separable blurs and resampling with a fixed summation order."""
    x = np.moveaxis(x, axis, 0)
    shape = (-1,) + (1,) * (x.ndim - 1)
    acc = weight[:, 0].reshape(shape) * x[index[:, 0]]
    for t in range(1, index.shape[1]):
        acc = acc + weight[:, t].reshape(shape) * x[index[:, t]]
    return np.moveaxis(acc, 0, axis)
