"""Transposed convolution: conv's input gradient (article §9) as a forward op.

``conv_transpose(x, w)`` is the adjoint of :func:`jcnn.conv`: the full
convolution of the stride-spread ``x`` with ``rot180(w)``, run by the plan's
input-gradient arrangement, with a hand-written backward (``dx = conv(dy, w)``,
``dw`` conv's weight correlation with the roles swapped).
"""

from __future__ import annotations

from functools import partial

import jax

from . import conv_arrangements as arr
from . import conv_plan
from ._checks import canonical_precision
from ._conv_args import common, layout_hint
from ._padding_rules import ntuple, resolve_padding
from .conv_geometry import Geometry
from .convolution import _bias_sum, _conv_vjp, _nested
from .padding import PaddingLike

__all__ = ["conv_transpose"]


@partial(jax.custom_vjp, nondiff_argnums=(3, 4, 5))
def _conv_t(x, w, b, geo, precision, plans):
    """``y = Aᵀx`` with ``A`` the conv of ``geo`` (whose input has ``y``'s shape)."""
    def run(platforms, p, x, w):
        return arr.INPUT_GRAD[p.input_grad](x, w, geo, block=p.block, precision=precision,
                                            platforms=platforms, conv=_nested)

    y = conv_plan.dispatch(plans, run, x, w)
    return y if b is None else (y + b.astype(y.dtype)).astype(y.dtype)


def _conv_t_fwd(x, w, b, geo, precision, plans):
    return _conv_t(x, w, b, geo, precision, plans), (x, w, b)


def _conv_t_bwd(geo, precision, plans, res, g):
    x, w, b = res
    # y = Aᵀx, so dx = A g (conv forward) and dw is the conv's weight correlation
    # with the roles of input and cotangent swapped
    dx = _conv_vjp(g, w, None, geo, precision, plans)

    def run(platforms, p, g, x):
        return arr.WEIGHT_GRAD[p.weight_grad](g, x, geo, block=p.block, precision=precision,
                                              platforms=platforms, conv=_nested)

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
    x, w, b, nd, stride, dilation, groups, shapes = common(
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
    pads = resolve_padding(padding, x.shape[1:-1], w.shape[:-2], stride, dilation, fn)
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
