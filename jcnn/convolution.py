"""Convolution as explicit windowed sums, with a hand-written backward.

The math of Piotr Skalski's "Gentle Dive into Math Behind Convolutional Neural
Networks", channels-last: ``x`` is ``(N, *spatial, C_in)`` and ``w`` is
``(*window, C_in // groups, C_out)`` — the article's ``[n, n, n_c] * [f, f, n_c]``
with ``n_f = C_out`` filters stacked last (§6).

Forward (§3, §6, §7)::

    Z[n, p, o] = Σ_k Σ_i  X_pad[n, p·s + k·d, i] · W[k, i, o]  + b[o]

Backward (§9), written by hand as a ``jax.custom_vjp``::

    dX = full_conv(spread_s(dZ), rot180(W))   cropped by the padding
    dW[k] = Σ_{n,p} X_pad[n, p·s + k·d]ᵀ · dZ[n, p]     (correlation of X and dZ)
    db = Σ_{n,p} dZ[n, p]

``spread_s`` puts ``s − 1`` zeros between cotangent values; rows of ``X`` the
forward never read (when ``(n + 2p − f) mod s ≠ 0``) get zero gradient.  How each
sum is laid out for the compiler (:mod:`jcnn.conv_arrangements`) is chosen per
platform by :mod:`jcnn.conv_plan`; this module holds the ``custom_vjp`` and the
public entry points.  Every arrangement is built from differentiable ops, so the
backward is differentiable again: ``jax.grad(jax.grad(...))``, Hessian-vector
products and ``jax.jacrev(jax.grad(...))`` work.  Forward-mode autodiff
(``jax.jvp``, ``jax.jacfwd``) cannot pass through a ``custom_vjp``; use
reverse-over-reverse instead.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp

from . import conv_arrangements as arr
from . import conv_plan
from ._checks import acc_dtype, as_float_array, canonical_precision
from ._conv_args import canonicalize, check_plan
from ._padding_rules import check_padding_mode
from .conv_geometry import Geometry, rot180
from .conv_plan import ConvPlan
from .padding import PaddingLike, border_pad

__all__ = ["ConvPlan", "conv", "conv1d", "conv2d", "conv3d", "convolve2d", "rot180"]


# --------------------------------------------------------------------------- #
# The custom_vjp: forward, and right under it the article's backward.
# --------------------------------------------------------------------------- #
def _bias_sum(g, b):
    if b is None:
        return None
    return jnp.sum(g, axis=tuple(range(g.ndim - 1)), dtype=acc_dtype(g.dtype)).astype(b.dtype)


def _nested(x, w, stride, pads, dilation, groups, *, precision, platforms):
    """The planned convolution an arrangement nests (``"fullconv"``, ``"phases"``):
    ``x`` and ``w`` already checked, no bias."""
    return _planned(x, w, None, stride, pads, dilation, groups, precision, platforms)


def _forward(x, w, b, geo, precision, plans):
    """The windowed-sum forward of the plan's arrangement (no custom rule): the
    bias added in the arrangement's output dtype (f32 for bf16/f16 inputs unless
    the arrangement rounds itself), one rounding to ``x``'s dtype."""
    def run(platforms, p, x, w, *b):
        out = arr.FORWARD[p.forward](x, w, geo, block=p.block, precision=precision,
                                     platforms=platforms, conv=_nested)
        if b:
            out = out + b[0].astype(out.dtype)
        return out.astype(x.dtype)

    return conv_plan.dispatch(plans, run, x, w, *([] if b is None else [b]))


def _grads(g, x, w, geo, precision, plans):
    """``(dX, dW)``: the plan's input- and weight-gradient arrangements."""
    def run(platforms, p, g, x, w):
        kw = dict(block=p.block, precision=precision, platforms=platforms, conv=_nested)
        return (arr.INPUT_GRAD[p.input_grad](g, w, geo, **kw),
                arr.WEIGHT_GRAD[p.weight_grad](x, g, geo, **kw))

    return conv_plan.dispatch(plans, run, g, x, w)


@partial(jax.custom_vjp, nondiff_argnums=(3, 4, 5))
def _conv_vjp(x, w, b, geo, precision, plans):
    return _forward(x, w, b, geo, precision, plans)


def _conv_fwd(x, w, b, geo, precision, plans):
    return _forward(x, w, b, geo, precision, plans), (x, w, b)


def _conv_bwd(geo, precision, plans, res, g):
    x, w, b = res
    dx, dw = _grads(g, x, w, geo, precision, plans)
    return dx, dw, _bias_sum(g, b)


_conv_vjp.defvjp(_conv_fwd, _conv_bwd)


def _planned(x, w, b, stride, pads, dilation, groups, precision=None,
            platforms=conv_plan.PLATFORMS, plan=None):
    """The custom_vjp on checked, canonical arguments, planned for ``platforms``
    (or with ``plan`` forced on all of them)."""
    geo = Geometry(tuple(x.shape), tuple(w.shape), tuple(stride), tuple(map(tuple, pads)),
                   tuple(dilation), groups)
    if plan is None:
        plans = conv_plan.plans_for(geo, x.dtype, tuple(platforms))
    else:
        plans = ((tuple(platforms), plan.check(geo, x.dtype)),)
    return _conv_vjp(x, w, b, geo, precision, plans)


def _entry(fn, nd, x, w, b, stride, padding, dilation, groups, padding_mode="zeros",
           precision=None, plan=None):
    x, w, b, stride, pads, dilation, groups = canonicalize(
        fn, x, w, b, stride, padding, dilation, groups, nd)
    precision = canonical_precision(precision, fn)
    plan = check_plan(plan, fn)
    if check_padding_mode(padding_mode, pads, x.shape[1:-1], fn) != "zeros":
        x, pads = border_pad(x, pads, padding_mode), ((0, 0),) * len(pads)
    return _planned(x, w, b, stride, pads, dilation, groups, precision, plan=plan)


def conv(
    x: jax.typing.ArrayLike,
    w: jax.typing.ArrayLike,
    b: jax.typing.ArrayLike | None = None,
    *,
    stride: int | tuple[int, ...] = 1,
    padding: PaddingLike = "VALID",
    dilation: int | tuple[int, ...] = 1,
    groups: int = 1,
    padding_mode: str = "zeros",
    precision: str | jax.lax.Precision | None = None,
    plan: ConvPlan | None = None,
) -> jax.Array:
    """N-d convolution layer (cross-correlation), channels-last.

    ``Z[n, p, o] = Σ_k Σ_i X_pad[n, p·s + k·d, i] · W[k, i, o] + b[o]``

    Args:
      x: input ``(N, *spatial, C_in)`` — one to three (or more) spatial dims.
      w: kernel ``(*window, C_in // groups, C_out)``.
      b: optional bias ``(C_out,)``.
      stride: an int or one int per spatial dim.
      padding: ``"VALID"``, ``"SAME"``, an int, one int per spatial dim, or one
        ``(low, high)`` pair per spatial dim (see :mod:`jcnn.padding`).
      dilation: kernel dilation, an int or one int per spatial dim.
      groups: split channels into this many independent groups
        (``groups == C_in`` with one channel per group is depthwise).
      padding_mode: what the padding holds — ``"zeros"``, or copies of border
        pixels: ``"reflect"`` (mirrored, edge not repeated), ``"replicate"``
        (the edge repeated) or ``"circular"`` (wrapped around), as PyTorch.
        Their gradients fold back onto the source pixels.
      precision: precision of every contraction, forward and backward, as
        ``lax.dot``'s: ``None``/``"default"`` (on a GPU/TPU f32 products may
        run in TF32/bf16 passes), ``"high"``, ``"highest"`` (full f32) or a
        ``jax.lax.Precision``.
      plan: force the arrangements (:class:`jcnn.ConvPlan`) on every platform,
        for measurement and tests; ``None`` lets :mod:`jcnn.conv_plan` choose
        per platform.

    Returns:
      ``(N, *out_spatial, C_out)`` with ``out = ⌊(n + p_lo + p_hi − f_eff)/s⌋ + 1``,
      in ``x``'s dtype (bf16/f16 accumulate in f32).

    The backward is a hand-written ``custom_vjp`` (article §9); it is itself
    differentiable, so reverse-over-reverse works.  Forward mode
    (``jax.jvp``/``jax.jacfwd``) does not: use ``jax.jacrev``.

    Examples:
      >>> import jax.numpy as jnp, jcnn
      >>> x = jnp.ones((1, 6, 6, 1)); w = jnp.ones((3, 3, 1, 1))
      >>> jcnn.conv(x, w).shape            # 6×6 ∗ 3×3 valid → 4×4
      (1, 4, 4, 1)
    """
    return _entry("conv", None, x, w, b, stride, padding, dilation, groups, padding_mode,
                  precision, plan)


def conv1d(x, w, b=None, *, stride=1, padding="VALID", dilation=1, groups=1,
           padding_mode="zeros", precision=None, plan=None) -> jax.Array:
    """:func:`conv` for ``x`` of shape ``(N, L, C_in)``; checks the rank.

    Examples:
      >>> import jax.numpy as jnp, jcnn
      >>> jcnn.conv1d(jnp.ones((2, 10, 3)), jnp.ones((3, 3, 8)), stride=2).shape
      (2, 4, 8)
    """
    return _entry("conv1d", 1, x, w, b, stride, padding, dilation, groups, padding_mode,
                  precision, plan)


def conv2d(x, w, b=None, *, stride=1, padding="VALID", dilation=1, groups=1,
           padding_mode="zeros", precision=None, plan=None) -> jax.Array:
    """:func:`conv` for ``x`` of shape ``(N, H, W, C_in)``; checks the rank.

    Examples:
      >>> import jax.numpy as jnp, jcnn
      >>> jcnn.conv2d(jnp.ones((2, 8, 8, 3)), jnp.ones((3, 3, 3, 4)), padding="SAME").shape
      (2, 8, 8, 4)
    """
    return _entry("conv2d", 2, x, w, b, stride, padding, dilation, groups, padding_mode,
                  precision, plan)


def conv3d(x, w, b=None, *, stride=1, padding="VALID", dilation=1, groups=1,
           padding_mode="zeros", precision=None, plan=None) -> jax.Array:
    """:func:`conv` for ``x`` of shape ``(N, D, H, W, C_in)``; checks the rank.

    Examples:
      >>> import jax.numpy as jnp, jcnn
      >>> jcnn.conv3d(jnp.ones((1, 4, 4, 4, 2)), jnp.ones((2, 2, 2, 2, 5))).shape
      (1, 3, 3, 3, 5)
    """
    return _entry("conv3d", 3, x, w, b, stride, padding, dilation, groups, padding_mode,
                  precision, plan)


def convolve2d(
    image: jax.typing.ArrayLike, kernel: jax.typing.ArrayLike, mode: str = "full"
) -> jax.Array:
    """True 2-D convolution (kernel flipped), the article's §3 formula.

    ``G[m, n] = Σ_j Σ_k h[j, k] · f[m − j, n − k]``

    Modes follow ``scipy.signal.convolve2d``: ``"full"`` (every overlap,
    ``(H + kh − 1, W + kw − 1)``), ``"valid"`` (no zero padding; the larger
    array must contain the smaller, which may be either) and ``"same"`` (the
    centre of ``"full"``, ``image``'s shape).

    Examples:
      >>> import jax.numpy as jnp, jcnn
      >>> jcnn.convolve2d(jnp.ones((6, 6)), jnp.ones((3, 3)), "valid").shape
      (4, 4)
    """
    fn = "convolve2d"
    image, kernel = jnp.asarray(image), jnp.asarray(kernel)
    dtype = jnp.result_type(image, kernel)
    if not jnp.issubdtype(dtype, jnp.floating):
        dtype = jnp.result_type(float)
    image = as_float_array(image.astype(dtype), "image", fn)
    kernel = as_float_array(kernel.astype(dtype), "kernel", fn)
    if image.ndim != 2 or kernel.ndim != 2:
        raise ValueError(
            f"{fn}: image and kernel must be 2-d, got image.shape={image.shape}, "
            f"kernel.shape={kernel.shape}"
        )
    if 0 in image.shape or 0 in kernel.shape:
        raise ValueError(
            f"{fn}: empty input, image.shape={image.shape}, kernel.shape={kernel.shape}"
        )
    if not isinstance(mode, str) or mode.lower() not in ("full", "valid", "same"):
        raise ValueError(f"{fn}: mode must be 'full', 'valid' or 'same', got {mode!r}")
    mode = mode.lower()
    if mode == "valid":
        if all(k >= i for i, k in zip(image.shape, kernel.shape)) and image.shape != kernel.shape:
            image, kernel = kernel, image  # convolution commutes (scipy's rule)
        elif not all(i >= k for i, k in zip(image.shape, kernel.shape)):
            raise ValueError(
                f"{fn}: in 'valid' mode one input must be at least as large as the other "
                f"in every dim, got image.shape={image.shape}, kernel.shape={kernel.shape}"
            )
        pads = ((0, 0), (0, 0))
    elif mode == "full":
        pads = tuple((k - 1, k - 1) for k in kernel.shape)
    else:
        pads = tuple((k // 2, (k - 1) // 2) for k in kernel.shape)
    flipped = kernel[::-1, ::-1]
    out = _planned(image[None, :, :, None], flipped[:, :, None, None], None, (1, 1), pads,
                       (1, 1), 1)
    return out[0, :, :, 0]
