"""The layers without weights that change the shape: pools, adaptive and global
pools, :data:`Flatten` (re-exported by :mod:`jcnn.nn`)."""

from __future__ import annotations

import math

from . import adaptive_pooling, linear, pooling
from ._layer_shapes import check_input_shape, per_dim, shape_of
from .layer import Layer
from .padding import PaddingLike


def _pool_layer(name, fn, sized=None, **opts) -> Layer:
    """A layer of ``fn(x, **opts)``; ``sized`` names the option (``window``,
    ``output_size``) that an int gives for every spatial dim of the input."""

    def expanded(shape):
        if sized is None:
            return opts
        return {**opts, sized: per_dim(name, opts[sized], shape, sized)}

    def init(key, input_shape):
        input_shape = check_input_shape(name, input_shape)
        kw = expanded(input_shape)
        return shape_of(lambda x: fn(x, **kw), input_shape), {}

    def apply(params, x, *, key=None, train=False):
        return fn(x, **expanded(x.shape))

    return Layer(init, apply, name, (), tuple(opts.items()))


def MaxPool(window, *, stride=None, padding: PaddingLike = "VALID", ceil_mode=False) -> Layer:
    """:func:`jcnn.max_pool` as a layer; ``window`` one size per spatial dim, or one
    int for all of them.

    Examples:
      >>> import jax, jcnn
      >>> jcnn.nn.MaxPool((2, 2)).init(jax.random.key(0), (-1, 28, 28, 8))[0]
      (-1, 14, 14, 8)
      >>> jcnn.nn.MaxPool(2).init(jax.random.key(0), (-1, 8, 8, 8, 1))[0]
      (-1, 4, 4, 4, 1)
    """
    return _pool_layer("MaxPool", pooling.max_pool, "window", window=window, stride=stride,
                       padding=padding, ceil_mode=ceil_mode)


def AvgPool(window, *, stride=None, padding: PaddingLike = "VALID", count_include_pad=True,
            ceil_mode=False) -> Layer:
    """:func:`jcnn.avg_pool` as a layer; ``window`` one size per spatial dim, or one
    int for all of them.

    Examples:
      >>> import jax, jcnn
      >>> jcnn.nn.AvgPool((2, 2)).init(jax.random.key(0), (-1, 28, 28, 8))[0]
      (-1, 14, 14, 8)
    """
    return _pool_layer("AvgPool", pooling.avg_pool, "window", window=window, stride=stride,
                       padding=padding, count_include_pad=count_include_pad,
                       ceil_mode=ceil_mode)


def AdaptiveAvgPool(output_size) -> Layer:
    """:func:`jcnn.adaptive_avg_pool` as a layer; ``output_size`` one per spatial dim,
    or one int for all of them.

    Examples:
      >>> import jax, jcnn
      >>> jcnn.nn.AdaptiveAvgPool((1, 1)).init(jax.random.key(0), (-1, 7, 7, 8))[0]
      (-1, 1, 1, 8)
    """
    return _pool_layer("AdaptiveAvgPool", adaptive_pooling.adaptive_avg_pool, "output_size",
                       output_size=output_size)


def AdaptiveMaxPool(output_size) -> Layer:
    """:func:`jcnn.adaptive_max_pool` as a layer; ``output_size`` one per spatial dim,
    or one int for all of them.

    Examples:
      >>> import jax, jcnn
      >>> jcnn.nn.AdaptiveMaxPool((2, 2)).init(jax.random.key(0), (-1, 7, 7, 8))[0]
      (-1, 2, 2, 8)
    """
    return _pool_layer("AdaptiveMaxPool", adaptive_pooling.adaptive_max_pool, "output_size",
                       output_size=output_size)


GlobalAvgPool = _pool_layer("GlobalAvgPool", pooling.global_avg_pool)
GlobalMaxPool = _pool_layer("GlobalMaxPool", pooling.global_max_pool)


def _flatten_init(key, input_shape):
    input_shape = check_input_shape("Flatten", input_shape)
    return (input_shape[0], math.prod(input_shape[1:])), {}


Flatten = Layer(_flatten_init, lambda params, x, *, key=None, train=False: linear.flatten(x),
                "Flatten")
