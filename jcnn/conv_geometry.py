"""One convolution's static geometry, computed once: the bottom of the conv wing.

From Piotr Skalski's "Gentle Dive into Math Behind Convolutional Neural Networks"
(§4, §5, §6).  Everything above this module — the arrangements of the windowed
sums, the Pallas kernels, the plan and the ``custom_vjp`` — reads a layer's
sizes from one :class:`Geometry` instead of recomputing them::

    f_eff = (f − 1)·d + 1                      (the dilated window)
    n_pad = n + p_low + p_high                 (the padded input)
    n_out = ⌊(n_pad − f_eff) / s⌋ + 1          (§5)

and :func:`rot180`, the kernel that carries a cotangent back through the layer
(§9).  Sizes may be symbolic (``jax.export``'s shape polymorphism): every
property is plain arithmetic, and :attr:`Geometry.static` says whether all of
them are ints.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import jax
import jax.numpy as jnp

__all__ = ["Geometry", "effective_window", "rot180"]


def effective_window(f: int, d: int) -> int:
    """The span of an ``f``-tap window dilated by ``d``: ``(f − 1)·d + 1``.

    Examples:
      >>> from jcnn.conv_geometry import effective_window
      >>> effective_window(3, 2)  # taps at 0, 2, 4
      5
    """
    return (f - 1) * d + 1


@dataclass(frozen=True)
class Geometry:
    """One convolution's static shape: what every arrangement, kernel and plan reads.

    Examples:
      >>> from jcnn.conv_geometry import Geometry
      >>> geo = Geometry((8, 32, 32, 3), (3, 3, 3, 16), (2, 2), ((1, 1), (1, 1)), (1, 1), 1)
      >>> geo.padded, geo.out_shape, geo.flops
      ((34, 34), (16, 16), 1769472)
    """

    x_shape: tuple  # (N, *spatial, C_in)
    w_shape: tuple  # (*window, C_in // groups, C_out)
    stride: tuple[int, ...]
    pads: tuple[tuple[int, int], ...]
    dilation: tuple[int, ...]
    groups: int

    @property
    def window(self) -> tuple[int, ...]:
        return tuple(self.w_shape[:-2])

    @property
    def f_eff(self) -> tuple[int, ...]:
        """The dilated window per spatial dim."""
        return tuple(effective_window(f, d) for f, d in zip(self.window, self.dilation))

    @property
    def in_sizes(self) -> tuple:
        return tuple(self.x_shape[1:-1])

    @property
    def padded(self) -> tuple:
        """The padded input's spatial sizes ``n + p_low + p_high``."""
        return tuple(n + lo + hi for n, (lo, hi) in zip(self.in_sizes, self.pads))

    @property
    def out_shape(self) -> tuple:
        return tuple((n - f) // s + 1 for n, f, s in zip(self.padded, self.f_eff, self.stride))

    @property
    def unread(self) -> tuple:
        """Per dim, the padded input's high rows no window reaches
        (``(n_pad − f_eff) mod s``): their gradient is zero."""
        return tuple((n - f) % s for n, f, s in zip(self.padded, self.f_eff, self.stride))

    @property
    def batch(self):
        return self.x_shape[0]

    @property
    def c_in(self):
        return self.x_shape[-1]

    @property
    def cig(self) -> int:  # input channels per group
        return self.w_shape[-2]

    @property
    def c_out(self) -> int:
        return self.w_shape[-1]

    @property
    def k_total(self) -> int:  # kernel offsets
        return math.prod(self.window)

    @property
    def depthwise(self) -> bool:
        return self.groups > 1 and self.cig == 1

    @property
    def patch_size(self):
        """Elements of one example's patch matrix (``Π out · K · C_in/G``)."""
        return math.prod(self.out_shape) * self.k_total * self.cig

    @property
    def flops(self):
        """Multiply-adds × 2 of the forward pass."""
        return 2 * self.batch * math.prod(self.out_shape) * self.c_out * self.k_total * self.cig

    @property
    def static(self) -> bool:
        """Whether every size is a Python int (not symbolic, as under ``jax.export``)."""
        return all(isinstance(v, int) for v in self.x_shape)

    @property
    def nd(self) -> int:
        return len(self.window)


def rot180(w: jax.Array, groups: int = 1) -> jax.Array:
    """The kernel rotated by 180° with input/output channels swapped per group.

    ``(*window, C_in/G, C_out)`` → ``(*window, C_out/G, C_in)``: the kernel that
    carries a cotangent back through the layer (article §9).

    Examples:
      >>> import jax.numpy as jnp, jcnn
      >>> w = jnp.arange(4.0).reshape(2, 2, 1, 1)
      >>> jcnn.rot180(w)[..., 0, 0].tolist()
      [[3.0, 2.0], [1.0, 0.0]]
    """
    nd = w.ndim - 2
    cig, c_out = w.shape[-2:]
    flipped = jnp.flip(w, axis=tuple(range(nd)))
    split = flipped.reshape(*w.shape[:-1], groups, c_out // groups)  # (*win, cig, G, cog)
    swapped = jnp.swapaxes(split, -3, -1)  # (*win, cog, G, cig)
    return swapped.reshape(*w.shape[:-2], c_out // groups, groups * cig)
