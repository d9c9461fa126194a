"""Upsampling by an integer factor per spatial dim, with hand-written backward passes.

Channels-last: ``x`` is ``(N, *spatial, C)`` and each spatial size ``n`` becomes
``n·s``.  Output position ``o = i·s + r`` (``0 ≤ r < s``) along a dim reads:

* **nearest** — ``y[o] = x[⌊o / s⌋] = x[i]``: every pixel copied into an
  ``s × s`` block.  Backward: each block's cotangents summed back onto its
  source pixel, ``dx[i] = Σ_r dy[i·s + r]``.
* **bilinear** — PyTorch's ``F.interpolate(mode="bilinear",
  align_corners=False)``, one dim at a time (separable): the source coordinate
  is ``(o + ½)/s − ½ = i + δ_r`` with ``δ_r = (r + ½)/s − ½ ∈ (−½, ½)``, so

      ``y[i·s + r] = (1 − |δ_r|)·x[i] + |δ_r|·x[i + sign(δ_r)]``

  with ``x[−1] = x[0]`` and ``x[n] = x[n − 1]`` (the coordinate is clamped at
  the borders).  Each phase ``r`` is a weighted sum of two shifted slices of
  the edge-padded ``x``; the backward is that map's adjoint: phase ``r``'s
  cotangent goes back to ``i`` with weight ``1 − |δ_r|`` and to
  ``i + sign(δ_r)`` with weight ``|δ_r|``, and what lands on the padding folds
  onto the border pixel it copied.  The same rule on every spatial dim gives
  PyTorch's ``linear`` (1-D) and ``trilinear`` (3-D) too.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp

from ._checks import acc_dtype, as_float_array, check_batched
from .padding import ntuple

__all__ = ["upsample"]

METHODS = ("nearest", "bilinear")


# --------------------------------------------------------------------------- #
# nearest: copy into blocks / sum the blocks
# --------------------------------------------------------------------------- #
def _nearest(x, scale):
    n, *sizes, c = x.shape
    expanded = []
    for size, s in zip(sizes, scale):
        expanded += [size, s]
    # x[n, i, 1, j, 1, c] broadcast to (n, i, s0, j, s1, c): y[i·s0 + r0, j·s1 + r1] = x[i, j]
    blocks = x.reshape(n, *(d for size in sizes for d in (size, 1)), c)
    return jnp.broadcast_to(blocks, (n, *expanded, c)).reshape(
        n, *(size * s for size, s in zip(sizes, scale)), c)


def _nearest_adjoint(g, scale):
    n, *sizes, c = g.shape
    split = [d for size, s in zip(sizes, scale) for d in (size // s, s)]
    block_axes = tuple(2 + 2 * k for k in range(len(scale)))
    return jnp.sum(g.reshape(n, *split, c), axis=block_axes)  # dx[i] = Σ_r dy[i·s + r]


# --------------------------------------------------------------------------- #
# bilinear: per dim, two shifted slices per phase / their adjoint
# --------------------------------------------------------------------------- #
def _phases(s):
    """``δ_r = (r + ½)/s − ½`` for ``r = 0 … s − 1``: where output phase ``r`` samples."""
    return [(r + 0.5) / s - 0.5 for r in range(s)]


def _pad(v, axis, lo, hi, mode="constant"):
    pads = [(0, 0)] * v.ndim
    pads[axis] = (lo, hi)
    return jnp.pad(v, pads, mode=mode)


def _slice(v, axis, start, stop):
    return jax.lax.slice_in_dim(v, start, stop, axis=axis)


def _linear_axis(x, axis, s):
    """One dim of the separable interpolation: ``(…, n, …) → (…, n·s, …)``."""
    if s == 1:
        return x
    n = x.shape[axis]
    edged = _pad(x, axis, 1, 1, mode="edge")  # x[−1] = x[0], x[n] = x[n − 1]
    up, down = _slice(edged, axis, 2, n + 2), _slice(edged, axis, 0, n)  # x[i ± 1]
    phases = [(1 - abs(d)) * x + abs(d) * (up if d > 0 else down) for d in _phases(s)]
    y = jnp.stack(phases, axis=axis + 1)  # (…, n, s, …): y[i·s + r] = phase r at i
    return y.reshape(*x.shape[:axis], n * s, *x.shape[axis + 1:])


def _up_adjoint(v, axis):
    """The transpose of ``x ↦ x[i + 1]`` (clamped): ``v[i]`` goes to ``i + 1``, the
    last one back onto ``n − 1``."""
    n = v.shape[axis]
    return _pad(_slice(v, axis, 0, n - 1), axis, 1, 0) + _pad(_slice(v, axis, n - 1, n),
                                                              axis, n - 1, 0)


def _down_adjoint(v, axis):
    """The transpose of ``x ↦ x[i − 1]`` (clamped): ``v[i]`` goes to ``i − 1``, the
    first one back onto 0."""
    n = v.shape[axis]
    return _pad(_slice(v, axis, 1, n), axis, 0, 1) + _pad(_slice(v, axis, 0, 1), axis, 0, n - 1)


def _linear_axis_adjoint(g, axis, s):
    """The transpose of ``_linear_axis``: ``(…, n·s, …) → (…, n, …)``."""
    if s == 1:
        return g
    n = g.shape[axis] // s
    g = g.reshape(*g.shape[:axis], n, s, *g.shape[axis + 1:])
    same = up = down = 0.0
    for r, d in enumerate(_phases(s)):
        gr = jax.lax.index_in_dim(g, r, axis=axis + 1, keepdims=False)
        same = same + (1 - abs(d)) * gr  # back onto x[i]
        if d > 0:
            up = up + d * gr  # onto x[i + 1]
        else:
            down = down - d * gr  # onto x[i − 1]
    return same + _up_adjoint(up, axis) + _down_adjoint(down, axis)


def _bilinear(x, scale):
    xf = x.astype(acc_dtype(x.dtype))
    for k, s in enumerate(scale):
        xf = _linear_axis(xf, 1 + k, s)
    return xf.astype(x.dtype)


def _bilinear_adjoint(g, scale):
    gf = g.astype(acc_dtype(g.dtype))
    for k, s in reversed(list(enumerate(scale))):
        gf = _linear_axis_adjoint(gf, 1 + k, s)
    return gf.astype(g.dtype)


# --------------------------------------------------------------------------- #
# The custom_vjp and the public entry point
# --------------------------------------------------------------------------- #
_FORWARD = {"nearest": _nearest, "bilinear": _bilinear}
_ADJOINT = {"nearest": _nearest_adjoint, "bilinear": _bilinear_adjoint}


@partial(jax.custom_vjp, nondiff_argnums=(1, 2))
def _upsample(x, scale, method):
    return _FORWARD[method](x, scale)


def _upsample_fwd(x, scale, method):
    return _upsample(x, scale, method), None  # linear in x: nothing to keep


def _upsample_bwd(scale, method, _, g):
    return (_ADJOINT[method](g, scale),)


_upsample.defvjp(_upsample_fwd, _upsample_bwd)


def upsample(x: jax.typing.ArrayLike, scale: int | tuple[int, ...], *,
             method: str = "nearest") -> jax.Array:
    """Upsample every spatial dim of a channels-last ``x`` by an integer factor.

    ``nearest``: ``y[o] = x[⌊o / s⌋]`` (each pixel becomes an ``s × s`` block);
    ``bilinear``: PyTorch's ``F.interpolate(x, scale_factor=s, mode="bilinear",
    align_corners=False)`` — ``y[o] = (1 − λ)·x[i₀] + λ·x[i₀ + 1]`` with
    source coordinate ``max((o + ½)/s − ½, 0) = i₀ + λ`` (``i₀ + 1`` clamped to
    the last pixel), applied separably to every spatial dim (on 1-D and 3-D
    inputs it is PyTorch's ``linear`` and ``trilinear``).  The backward passes
    are written by hand: nearest sums each block onto its source pixel,
    bilinear runs the interpolation's adjoint (see the module docstring).

    Args:
      x: input ``(N, *spatial, C)``, any number of spatial dims.
      scale: an int ``≥ 1`` or one per spatial dim.
      method: ``"nearest"`` or ``"bilinear"``.

    Returns:
      ``(N, *(n·s for each spatial dim), C)`` in ``x``'s dtype (bf16/f16
      interpolate in f32).

    Examples:
      >>> import jax.numpy as jnp, jcnn
      >>> x = jnp.array([[[0.0], [4.0]]])             # (N=1, L=2, C=1)
      >>> jcnn.upsample(x, 2)[0, :, 0].tolist()
      [0.0, 0.0, 4.0, 4.0]
      >>> jcnn.upsample(x, 2, method="bilinear")[0, :, 0].tolist()
      [0.0, 1.0, 3.0, 4.0]
    """
    fn = "upsample"
    x = as_float_array(x, "x", fn)
    nd = check_batched(x, "x", fn)
    if method not in METHODS:
        raise ValueError(f"{fn}: `method` must be one of {METHODS}, got {method!r}")
    scale = ntuple(scale, nd, "scale", fn)
    if 0 in x.shape[1:-1]:
        raise ValueError(f"{fn}: x has a zero-size spatial dim (x.shape={x.shape})")
    return _upsample(x, scale, method)
