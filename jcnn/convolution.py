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
from ._checks import acc_dtype, as_float_array, canonical_precision, check_batched, same_dtype
from .conv_arrangements import Geometry, rot180
from .conv_plan import ConvPlan
from .padding import PaddingLike, border_pad, check_padding_mode, ntuple, padding_pairs

__all__ = [
    "ConvPlan",
    "canonicalize",
    "conv",
    "conv1d",
    "conv2d",
    "conv3d",
    "conv_planned",
    "conv_transpose",
    "convolve2d",
    "layout_hint",
    "rot180",
]


# --------------------------------------------------------------------------- #
# The custom_vjp: forward, and right under it the article's backward.
# --------------------------------------------------------------------------- #
def _bias_sum(g, b):
    if b is None:
        return None
    return jnp.sum(g, axis=tuple(range(g.ndim - 1)), dtype=acc_dtype(g.dtype)).astype(b.dtype)


def _forward(x, w, b, geo, precision, plans):
    """The windowed-sum forward of the plan's arrangement (no custom rule)."""
    def run(platforms, p, x, w):
        return arr.FORWARD[p.forward](x, w, geo, block=p.block, precision=precision,
                                      platforms=platforms)

    out = conv_plan.dispatch(plans, run, x, w)
    if b is not None:
        out = out + b.astype(out.dtype)
    return out.astype(x.dtype)


def _grads(g, x, w, geo, precision, plans):
    """``(dX, dW)``: the plan's input- and weight-gradient arrangements."""
    def run(platforms, p, g, x, w):
        kw = dict(block=p.block, precision=precision, platforms=platforms)
        return (arr.INPUT_GRAD[p.input_grad](g, w, geo, **kw),
                arr.WEIGHT_GRAD[p.weight_grad](x, g, geo, **kw))

    return conv_plan.dispatch(plans, run, g, x, w)


@partial(jax.custom_vjp, nondiff_argnums=(3, 4, 5))
def _conv(x, w, b, geo, precision, plans):
    return _forward(x, w, b, geo, precision, plans)


def _conv_fwd(x, w, b, geo, precision, plans):
    return _forward(x, w, b, geo, precision, plans), (x, w, b)


def _conv_bwd(geo, precision, plans, res, g):
    x, w, b = res
    dx, dw = _grads(g, x, w, geo, precision, plans)
    return dx, dw, _bias_sum(g, b)


_conv.defvjp(_conv_fwd, _conv_bwd)


def conv_planned(x, w, b, stride, pads, dilation, groups, precision=None,
                 platforms=conv_plan.PLATFORMS, plan=None):
    """The custom_vjp on checked, canonical arguments, planned for ``platforms``
    (or with ``plan`` forced on all of them)."""
    geo = Geometry(tuple(x.shape), tuple(w.shape), tuple(stride), tuple(map(tuple, pads)),
                   tuple(dilation), groups)
    if plan is None:
        plans = conv_plan.plans_for(geo, x.dtype, tuple(platforms))
    else:
        plans = ((tuple(platforms), plan.check(geo)),)
    return _conv(x, w, b, geo, precision, plans)


# --------------------------------------------------------------------------- #
# Argument checks shared by conv and conv_transpose.
# --------------------------------------------------------------------------- #
def layout_hint(nd: int) -> str:
    """What channels-last means, and how to convert a PyTorch kernel."""
    sp = ("L",) if nd == 1 else ("H", "W") if nd == 2 else ("D", "H", "W") if nd == 3 else \
        tuple(f"S{i}" for i in range(nd))
    win = ", ".join(f"k{a.lower()}" for a in sp)
    perm = ", ".join(map(str, (*range(2, nd + 2), 1, 0)))
    return (f"; jcnn is channels-last: x (N, {', '.join(sp)}, C), w ({win}, C_in, C_out) — "
            f"a PyTorch kernel (C_out, C_in, {win}) is w.transpose({perm})")


def _common(fn, x, w, b, stride, dilation, groups, nd, w_layout):
    """Arrays, ranks, dtypes and the int arguments of a conv-like call."""
    x = as_float_array(x, "x", fn)
    w = as_float_array(w, "w", fn)
    b = None if b is None else as_float_array(b, "b", fn)
    nd = check_batched(x, "x", fn, nd)
    shapes = f"(x.shape={x.shape}, w.shape={w.shape})"
    if w.ndim != nd + 2:
        raise ValueError(f"{fn}: w must be {nd + 2}-d {w_layout} for {nd} spatial dims "
                         f"{shapes}")
    same_dtype(fn, x=x, w=w, b=b)
    stride = ntuple(stride, nd, "stride", fn)
    dilation = ntuple(dilation, nd, "dilation", fn)
    (groups,) = ntuple(groups, 1, "groups", fn)
    if 0 in w.shape[:-2]:
        raise ValueError(f"{fn}: the kernel window {w.shape[:-2]} has a zero-size dim {shapes}")
    return x, w, b, nd, stride, dilation, groups, shapes


def canonicalize(fn, x, w, b, stride, padding, dilation, groups, nd=None):
    """Check a conv call and return ``(x, w, b, stride, pads, dilation, groups)``."""
    x, w, b, nd, stride, dilation, groups, shapes = _common(
        fn, x, w, b, stride, dilation, groups, nd, "(*window, C_in/groups, C_out)")
    nd = len(w.shape) - 2
    c_in, cig, c_out = x.shape[-1], w.shape[-2], w.shape[-1]
    if c_in % groups or c_out % groups:
        raise ValueError(
            f"{fn}: `groups` (={groups}) must divide the input channels (={c_in}) "
            f"and the output channels (={c_out}) {shapes}"
        )
    if c_in // groups != cig:
        expect = f"{cig * groups} ({cig} per group x {groups} groups)" if groups > 1 else cig
        raise ValueError(f"{fn}: x has {c_in} channels but w expects {expect} {shapes}"
                         f"{layout_hint(nd)}")
    if b is not None and b.shape != (c_out,):
        raise ValueError(
            f"{fn}: b must have shape ({c_out},) to match w's {c_out} output "
            f"channels, got b.shape={b.shape} {shapes}"
        )
    window = w.shape[:-2]
    pads = padding_pairs(padding, x.shape[1:-1], window, stride, dilation, fn)
    for i, (n, f, (lo, hi), d) in enumerate(zip(x.shape[1:-1], window, pads, dilation)):
        f_eff = (f - 1) * d + 1
        if n + lo + hi < f_eff:
            raise ValueError(
                f"{fn}: the kernel (size {f}, dilation {d}: {f_eff}) is larger than the "
                f"padded input ({n} + {lo} + {hi} = {n + lo + hi}) in spatial dim {i} {shapes}"
                f"{layout_hint(nd)}"
            )
    return x, w, b, stride, pads, dilation, groups


def _check_plan(plan, fn):
    if plan is not None and not isinstance(plan, ConvPlan):
        raise TypeError(f"{fn}: `plan` must be a jcnn.ConvPlan or None, got "
                        f"{type(plan).__name__}")
    return plan


def _entry(fn, nd, x, w, b, stride, padding, dilation, groups, padding_mode="zeros",
           precision=None, plan=None):
    x, w, b, stride, pads, dilation, groups = canonicalize(
        fn, x, w, b, stride, padding, dilation, groups, nd)
    precision = canonical_precision(precision, fn)
    plan = _check_plan(plan, fn)
    if check_padding_mode(padding_mode, pads, x.shape[1:-1], fn) != "zeros":
        x, pads = border_pad(x, pads, padding_mode), ((0, 0),) * len(pads)
    return conv_planned(x, w, b, stride, pads, dilation, groups, precision, plan=plan)


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


# --------------------------------------------------------------------------- #
# Transposed convolution: conv's input gradient as a forward op.
# --------------------------------------------------------------------------- #
@partial(jax.custom_vjp, nondiff_argnums=(3, 4, 5))
def _conv_t(x, w, b, geo, precision, plans):
    """``y = Aᵀx`` with ``A`` the conv of ``geo`` (whose input has ``y``'s shape)."""
    def run(platforms, p, x, w):
        return arr.INPUT_GRAD[p.input_grad](x, w, geo, block=p.block, precision=precision,
                                            platforms=platforms)

    y = conv_plan.dispatch(plans, run, x, w)
    return y if b is None else (y + b.astype(y.dtype)).astype(y.dtype)


def _conv_t_fwd(x, w, b, geo, precision, plans):
    return _conv_t(x, w, b, geo, precision, plans), (x, w, b)


def _conv_t_bwd(geo, precision, plans, res, g):
    x, w, b = res
    # y = Aᵀx, so dx = A g (conv forward) and dw is the conv's weight correlation
    # with the roles of input and cotangent swapped
    dx = _conv(g, w, None, geo, precision, plans)

    def run(platforms, p, g, x):
        return arr.WEIGHT_GRAD[p.weight_grad](g, x, geo, block=p.block, precision=precision,
                                              platforms=platforms)

    return dx, conv_plan.dispatch(plans, run, g, x), _bias_sum(g, b)


_conv_t.defvjp(_conv_t_fwd, _conv_t_bwd)


def conv_transpose(
    x: jax.typing.ArrayLike,
    w: jax.typing.ArrayLike,
    b: jax.typing.ArrayLike | None = None,
    *,
    stride: int | tuple[int, ...] = 1,
    padding: PaddingLike = 0,
    output_padding: int | tuple[int, ...] = 0,
    dilation: int | tuple[int, ...] = 1,
    groups: int = 1,
    padding_mode: str = "zeros",
    precision: str | jax.lax.Precision | None = None,
) -> jax.Array:
    """N-d transposed convolution, channels-last: the adjoint of :func:`conv`.

    ``conv_transpose(x, w)`` is exactly conv's input gradient (article §9) —
    the full convolution of the stride-spread ``x`` with ``rot180(w)`` — run
    as a forward op: for any ``u``, ``<conv(u, w), x> = <u, conv_transpose(x, w)>``
    when the geometry (stride, padding, dilation, groups) is the same.

    Shapes and padding follow PyTorch's ``conv_transpose{1,2,3}d`` (channels
    last): ``x`` is ``(N, *spatial, C_in)``, ``w`` is
    ``(*window, C_out // groups, C_in)`` — the kernel of the conv that maps
    ``C_out`` channels back to ``C_in`` — and each output size is

        ``(n − 1)·s − p_low − p_high + d·(f − 1) + output_padding + 1``

    ``padding`` (an int, one per dim, ``(low, high)`` pairs or ``"VALID"`` = 0)
    crops the full output; ``output_padding`` (``< stride``) adds rows at the
    high end, picking among the input sizes a strided conv maps to the same
    size.  Only ``padding_mode="zeros"`` (as PyTorch).

    Backward: ``dx = conv(dy, w)`` and ``dw`` the conv's weight correlation with
    ``dy`` as the input; both differentiable again.

    Examples:
      >>> import jax.numpy as jnp, jcnn
      >>> jcnn.conv_transpose(jnp.ones((1, 4, 4, 8)), jnp.ones((2, 2, 3, 8)), stride=2).shape
      (1, 8, 8, 3)
    """
    fn = "conv_transpose"
    x, w, b, nd, stride, dilation, groups, shapes = _common(
        fn, x, w, b, stride, dilation, groups, None, "(*window, C_out/groups, C_in)")
    precision = canonical_precision(precision, fn)
    output_padding = ntuple(output_padding, nd, "output_padding", fn, minimum=0)
    if padding_mode != "zeros":
        raise ValueError(f"{fn}: only padding_mode='zeros' is supported (as PyTorch), "
                         f"got {padding_mode!r}")
    c_in = x.shape[-1]
    if c_in % groups:
        raise ValueError(f"{fn}: `groups` (={groups}) must divide the input channels "
                         f"(={c_in}) {shapes}")
    if w.shape[-1] != c_in:
        raise ValueError(f"{fn}: x has {c_in} channels but w expects {w.shape[-1]} "
                         f"(w is (*window, C_out/groups, C_in)) {shapes}{layout_hint(nd)}")
    c_out = w.shape[-2] * groups
    if b is not None and b.shape != (c_out,):
        raise ValueError(f"{fn}: b must have shape ({c_out},), got b.shape={b.shape} {shapes}")
    if isinstance(padding, str) and padding.upper() == "SAME":
        raise ValueError(f"{fn}: padding 'SAME' is not defined for a transposed conv; "
                         "give the (low, high) crop per dim")
    pads = padding_pairs(padding, x.shape[1:-1], w.shape[:-2], stride, dilation, fn)
    out_sizes = []
    for i, (n, f, s, (lo, hi), d, op) in enumerate(
        zip(x.shape[1:-1], w.shape[:-2], stride, pads, dilation, output_padding)
    ):
        if op >= s:
            raise ValueError(f"{fn}: output_padding ({op}) must be smaller than the stride "
                             f"({s}) in spatial dim {i}")
        size = (n - 1) * s - lo - hi + (f - 1) * d + 1 + op
        if size < 1:
            raise ValueError(f"{fn}: padding ({lo}, {hi}) crops the whole output in spatial "
                             f"dim {i} (full size {size + lo + hi}) {shapes}")
        out_sizes.append(size)
    geo = Geometry((x.shape[0], *out_sizes, c_out), tuple(w.shape), stride, tuple(pads),
                   dilation, groups)
    return _conv_t(x, w, b, geo, precision, conv_plan.plans_for(geo, x.dtype))


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
    out = conv_planned(image[None, :, :, None], flipped[:, :, None, None], None, (1, 1), pads,
                       (1, 1), 1)
    return out[0, :, :, 0]
