"""ReLU's smooth successors — GELU, SiLU, ELU, softplus — and hard swish, each
with its explicit derivative ``g′``.

As in `jcnn.activations`, each is a ``jax.custom_jvp`` whose tangent rule is
``g′(Z)``, which JAX transposes into the backward pass ``dZ = dA ⊙ g′(Z)``
(reverse mode, forward mode and higher orders all use the formula):

==========  ==========================================  ================================
activation  g(Z)                                        g′(Z)
==========  ==========================================  ================================
gelu        Z·Φ(Z),  Φ(Z) = ½(1 + erf(Z/√2))            Φ(Z) + Z·φ(Z),  φ = e^(−Z²/2)/√(2π)
gelu tanh   ½Z(1 + tanh u),  u = √(2/π)(Z + 0.044715Z³)  ½(1 + tanh u) + ½Z(1 − tanh²u)·u′
silu        Z·σ(Z)                                      σ(Z)(1 + Z(1 − σ(Z)))
elu         Z if Z > 0 else α(e^Z − 1)                   1 if Z > 0 else α·e^Z
softplus    log(1 + e^Z)                                σ(Z)
hard_swish  Z·min(max(Z + 3, 0), 6)/6                   0, Z/3 + ½, 1  (Z ≤ −3, < 3, ≥ 3)
==========  ==========================================  ================================

with ``u′ = √(2/π)(1 + 3·0.044715Z²)`` and ``σ`` the sigmoid.  At its kinks
``hard_swish′`` takes PyTorch's values (0 at −3, 1 at 3), and ``elu′(0) = α``.
"""

from __future__ import annotations

import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from ._checks import as_float_array

__all__ = ["elu", "gelu", "hard_swish", "silu", "softplus"]

_SQRT_2_OVER_PI = math.sqrt(2 / math.pi)
_CUBIC = 0.044715


@jax.custom_jvp
def _gelu_erf(z):
    return z * 0.5 * (1 + lax.erf(z / math.sqrt(2)))


@_gelu_erf.defjvp
def _gelu_erf_jvp(primals, tangents):
    (z,), (t,) = primals, tangents
    cdf = 0.5 * (1 + lax.erf(z / math.sqrt(2)))  # Φ(z)
    pdf = jnp.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)  # φ(z)
    return _gelu_erf(z), t * (cdf + z * pdf)


@jax.custom_jvp
def _gelu_tanh(z):
    return 0.5 * z * (1 + jnp.tanh(_SQRT_2_OVER_PI * (z + _CUBIC * z ** 3)))


@_gelu_tanh.defjvp
def _gelu_tanh_jvp(primals, tangents):
    (z,), (t,) = primals, tangents
    th = jnp.tanh(_SQRT_2_OVER_PI * (z + _CUBIC * z ** 3))
    du = _SQRT_2_OVER_PI * (1 + 3 * _CUBIC * z * z)
    return _gelu_tanh(z), t * (0.5 * (1 + th) + 0.5 * z * (1 - th * th) * du)


def gelu(x: jax.typing.ArrayLike, approximate: bool = False) -> jax.Array:
    """Gaussian error linear unit ``x·Φ(x)`` (``Φ`` the standard normal CDF);
    ``approximate=True`` uses the tanh form ``½x(1 + tanh(√(2/π)(x + 0.044715x³)))``.

    Derivative ``Φ(x) + x·φ(x)`` (exact form) or the tanh form's own derivative
    (module table) — PyTorch's ``F.gelu(x, approximate="none" | "tanh")``.

    Examples:
      >>> import jax.numpy as jnp, jcnn
      >>> [round(v, 4) for v in jcnn.gelu(jnp.array([-1.0, 0.0, 1.0])).tolist()]
      [-0.1587, 0.0, 0.8413]
      >>> [round(v, 4) for v in jcnn.gelu(jnp.array([1.0]), approximate=True).tolist()]
      [0.8412]
    """
    if not isinstance(approximate, (bool, np.bool_)):
        raise TypeError(f"gelu: `approximate` must be True or False, got {approximate!r}")
    x = as_float_array(x, "x", "gelu")
    return _gelu_tanh(x) if approximate else _gelu_erf(x)


@jax.custom_jvp
def _silu(z):
    return z * lax.logistic(z)


@_silu.defjvp
def _silu_jvp(primals, tangents):
    (z,), (t,) = primals, tangents
    s = lax.logistic(z)
    return _silu(z), t * s * (1 + z * (1 - s))


def silu(x: jax.typing.ArrayLike) -> jax.Array:
    """Sigmoid linear unit (swish) ``x·σ(x)``; derivative ``σ(x)(1 + x(1 − σ(x)))``.

    Examples:
      >>> import jax.numpy as jnp, jcnn
      >>> [round(v, 4) for v in jcnn.silu(jnp.array([0.0, 2.0])).tolist()]  # 2·σ(2)
      [0.0, 1.7616]
    """
    return _silu(as_float_array(x, "x", "silu"))


@partial(jax.custom_jvp, nondiff_argnums=(1,))
def _elu(z, alpha):
    return jnp.where(z > 0, z, alpha * jnp.expm1(jnp.minimum(z, 0)))


@_elu.defjvp
def _elu_jvp(alpha, primals, tangents):
    (z,), (t,) = primals, tangents
    return _elu(z, alpha), jnp.where(z > 0, t, alpha * jnp.exp(jnp.minimum(z, 0)) * t)


def elu(x: jax.typing.ArrayLike, alpha: float = 1.0) -> jax.Array:
    """Exponential linear unit: ``x`` where ``x > 0``, else ``α(e^x − 1)``;
    derivative 1 or ``α·e^x``.

    Examples:
      >>> import jax.numpy as jnp, jcnn
      >>> y = jcnn.elu(jnp.array([-1.0, 2.0]), alpha=2.0)  # 2(e⁻¹ − 1), 2
      >>> [round(v, 4) for v in y.tolist()]
      [-1.2642, 2.0]
    """
    if isinstance(alpha, (bool, np.bool_)) or not isinstance(
            alpha, (int, float, np.integer, np.floating)):
        raise TypeError(f"elu: `alpha` must be a Python number, got {alpha!r}")
    return _elu(as_float_array(x, "x", "elu"), float(alpha))


@jax.custom_jvp
def _softplus(z):
    return jnp.maximum(z, 0) + jnp.log1p(jnp.exp(-jnp.abs(z)))  # log(1 + e^z), no overflow


@_softplus.defjvp
def _softplus_jvp(primals, tangents):
    (z,), (t,) = primals, tangents
    return _softplus(z), t * lax.logistic(z)


def softplus(x: jax.typing.ArrayLike) -> jax.Array:
    """``log(1 + e^x)``, a smooth ReLU; derivative ``σ(x)``.

    Examples:
      >>> import jax.numpy as jnp, jcnn
      >>> y = jcnn.softplus(jnp.array([0.0, 1000.0]))  # log 2; no overflow
      >>> [round(v, 4) for v in y.tolist()]
      [0.6931, 1000.0]
    """
    return _softplus(as_float_array(x, "x", "softplus"))


@jax.custom_jvp
def _hard_swish(z):
    return z * jnp.clip(z + 3, 0, 6) / 6


@_hard_swish.defjvp
def _hard_swish_jvp(primals, tangents):
    (z,), (t,) = primals, tangents
    slope = jnp.where(z <= -3, 0.0, jnp.where(z < 3, z / 3 + 0.5, 1.0)).astype(t.dtype)
    return _hard_swish(z), t * slope


def hard_swish(x: jax.typing.ArrayLike) -> jax.Array:
    """``x·relu6(x + 3)/6`` (MobileNetV3), piecewise: 0, ``x(x + 3)/6``, ``x``;
    derivative 0, ``x/3 + ½``, 1 (up to −3, between, from 3 on).

    Examples:
      >>> import jax.numpy as jnp, jcnn
      >>> y = jcnn.hard_swish(jnp.array([-1.5, 1.0, 4.0]))  # −1.5·1.5/6, 1·4/6, 4
      >>> [round(v, 4) for v in y.tolist()]
      [-0.375, 0.6667, 4.0]
    """
    return _hard_swish(as_float_array(x, "x", "hard_swish"))
