"""Conv's input gradient by stride phase, one fused Pallas kernel.

From Piotr Skalski's "Gentle Dive into Math Behind Convolutional Neural Networks"
(§9).  ``dX`` is the full convolution of the stride-dilated cotangent with
rot180(W).  Per spatial dim, the padded input rows ``r = a + s·t`` of one
*phase* ``a`` (``0 ≤ a < s``) are reached only by the kernel offsets ``k`` with
``k·d ≡ a (mod s)``, each from cotangent row ``q = t − (k·d − a)/s``::

    dX_pad[a + s·t] = Σ_{k·d ≡ a (mod s)}  dZ[t − (k·d − a)/s] · W[k]ᵀ

— per phase a stride-1 correlation of the cotangent with the phase's taps of
rot180(W), and no product with the zeros a stride-dilated cotangent would
hold.  All phases run in one call of the forward kernel
(``jcnn.conv_pallas.tap_sum``; depthwise layers
``jcnn.conv_pallas_depthwise.depthwise_tap_sum``), the phase a grid axis:
each program reads its phase's taps of ``W`` transposed by index arithmetic
and writes its rows of ``dX`` in place, interleaved, unpadded, so ``dX`` is
written once and nothing else is.  Rows no tap reaches (dilation sharing a
factor with the stride) are written zero.  Stride 1 is one phase: exactly the
full convolution.
"""

from __future__ import annotations

from ._pallas_base import TileSizes, as_2d, input_grad_walk
from .conv_pallas import tap_sum
from .conv_pallas_depthwise import DEFAULT as DEPTHWISE
from .conv_pallas_depthwise import depthwise_tap_sum

__all__ = ["DEFAULT", "input_grad_pallas"]

# the forward's tiles with half its chunk: at the forward's, the transposed reads spill
DEFAULT = TileSizes(positions=64, chunk=32)


def input_grad_pallas(g, w, geo, *, precision, interpret, tile=None):
    """dX by stride phase (module docstring): the cotangent ``g`` ``(N, *out,
    C_out)`` and ``w`` ``(*window, C_in/G, C_out)`` of a 1-D or 2-D geometry
    (depthwise or not) → ``(N, *in, C_in)`` in ``g``'s dtype.  ``tile`` (a
    ``jcnn._pallas_base.TileSizes``) defaults to ``DEFAULT`` (depthwise:
    ``jcnn.conv_pallas_depthwise.DEFAULT``).

    Examples:
      >>> import jax.numpy as jnp
      >>> from jcnn.conv_geometry import Geometry
      >>> from jcnn.conv_pallas_dgrad import input_grad_pallas
      >>> geo = Geometry((1, 3, 3, 1), (2, 2, 1, 1), (1, 1), ((0, 0), (0, 0)), (1, 1), 1)
      >>> dx = input_grad_pallas(jnp.ones((1, 2, 2, 1)), jnp.ones((2, 2, 1, 1)), geo,
      ...                        precision=None, interpret=True)
      >>> dx[0, :, :, 0].tolist()  # how many windows cover each input
      [[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]]
    """
    _, w, geo, lifted = as_2d(None, w, geo)
    g = g[:, None] if lifted else g
    walks = tuple(input_grad_walk(n, f, s, d, lo, m) for n, f, s, d, (lo, _), m in
                  zip(geo.in_sizes, geo.window, geo.stride, geo.dilation, geo.pads,
                      geo.out_shape))
    if geo.depthwise:
        dx = depthwise_tap_sum(g, w, walks, geo.groups, transpose=True, out_dtype=g.dtype,
                               interpret=interpret, tile=DEPTHWISE if tile is None else tile)
    else:
        dx = tap_sum(g, w, walks, geo.groups, transpose=True, out_dtype=g.dtype,
                     precision=precision, interpret=interpret,
                     tile=DEFAULT if tile is None else tile)
    return dx[:, 0] if lifted else dx
