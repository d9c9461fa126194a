"""Input checks shared by the public ops; every failure names the op."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

_LOW_PRECISION = (jnp.bfloat16, jnp.float16)


def as_float_array(value, name: str, fn: str) -> jax.Array:
    """``value`` as a jax array of a floating dtype, else TypeError."""
    if isinstance(value, (str, bytes)) or value is None:
        raise TypeError(f"{fn}: `{name}` must be an array, got {type(value).__name__}")
    try:
        arr = jnp.asarray(value)
    except TypeError as e:
        raise TypeError(f"{fn}: `{name}` must be an array ({e})") from None
    if not jnp.issubdtype(arr.dtype, jnp.floating):
        raise TypeError(
            f"{fn}: `{name}` must have a floating-point dtype, got {arr.dtype} "
            f"({name}.shape={arr.shape}); cast it, e.g. {name}.astype(jnp.float32)"
        )
    return arr


def same_dtype(fn: str, **arrays) -> None:
    """TypeError unless all given arrays (None skipped) share one dtype."""
    named = {k: v for k, v in arrays.items() if v is not None}
    dtypes = {v.dtype for v in named.values()}
    if len(dtypes) > 1:
        desc = ", ".join(f"{k}.dtype={v.dtype}" for k, v in named.items())
        raise TypeError(f"{fn}: arrays must share one dtype, got {desc}")


def acc_dtype(dtype) -> np.dtype:
    """Accumulation dtype: f32 for bf16/f16, the dtype itself otherwise."""
    return jnp.dtype(jnp.float32) if jnp.dtype(dtype) in _LOW_PRECISION else jnp.dtype(dtype)


def check_batched(x: jax.Array, name: str, fn: str, nd: int | None = None) -> int:
    """Rank check for a channels-last batch ``(N, *spatial, C)``; returns #spatial dims."""
    if nd is not None and x.ndim != nd + 2:
        raise ValueError(
            f"{fn}: `{name}` must be {nd + 2}-d (N, {', '.join(['spatial'] * nd)}, C), "
            f"got {name}.shape={x.shape}"
        )
    if x.ndim < 3:
        raise ValueError(
            f"{fn}: `{name}` must be (N, *spatial, C) with at least one spatial dim, "
            f"got {name}.shape={x.shape}"
        )
    return x.ndim - 2


_PRECISIONS = {"default": jax.lax.Precision.DEFAULT, "high": jax.lax.Precision.HIGH,
               "highest": jax.lax.Precision.HIGHEST}


def canonical_precision(precision, fn: str):
    """``precision=`` as ``lax.dot`` takes it: ``None`` (JAX's default, which on a
    GPU/TPU may round f32 products to TF32/bf16), ``"default"``, ``"high"``,
    ``"highest"`` or a ``lax.Precision`` — returned as a ``lax.Precision`` or None."""
    if precision is None or isinstance(precision, jax.lax.Precision):
        return precision
    if isinstance(precision, str) and precision.lower() in _PRECISIONS:
        return _PRECISIONS[precision.lower()]
    raise ValueError(f"{fn}: `precision` must be None, 'default', 'high', 'highest' or a "
                     f"jax.lax.Precision, got {precision!r}")
