"""More ``jcnn.nn`` layers: channel and path dropout, separable convolution, upsampling.

Each is a factory returning a ``jcnn.layer.Layer`` (``nn.DropPath(0.1)``),
re-exported from ``jcnn.nn``:

* ``SpatialDropout`` — drops whole channels of an example (a feature map
  at a time), the regulariser for conv features whose neighbouring pixels are
  strongly correlated;
* ``DropPath`` — stochastic depth: drops a residual block's whole branch
  for an example, so that ``residual(serial(..., DropPath(p)))`` sometimes
  reduces to its shortcut;
* ``SeparableConv`` — a depthwise convolution (``groups = C_in``) then a
  pointwise 1×1 one;
* ``Upsample`` — ``jcnn.upsample`` as a layer.

Both dropouts are inverted (the kept values scaled by ``1 / (1 − rate)``, so
evaluation is the identity) and need a PRNG ``key`` when ``train=True``.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp

from ._layer_shapes import check_input_shape, per_dim, shape_of
from .convolution import conv
from .layer import Layer
from .padding import PaddingLike, ntuple
from .upsampling import METHODS, upsample

__all__ = ["DropPath", "SeparableConv", "SpatialDropout", "Upsample"]


def _no_params(key, input_shape):
    return tuple(input_shape), {}


def _check_rate(name, rate):
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"{name}: `rate` must be in [0, 1), got {rate!r}")


def _dropout(name, rate, mask_shape) -> Layer:
    """Inverted dropout with one Bernoulli draw per entry of ``mask_shape(x.shape)``,
    broadcast over the rest of ``x``."""
    _check_rate(name, rate)

    def apply(params, x, *, key=None, train=False):
        if not train or rate == 0.0:
            return x
        if key is None:
            raise ValueError(f"{name}: apply(..., train=True) needs a PRNG `key`")
        keep = jax.random.bernoulli(key, 1.0 - rate, mask_shape(x.shape))
        return jnp.where(keep, x / (1.0 - rate), jnp.zeros_like(x))

    return Layer(_no_params, apply, name, (), (("rate", rate),))


def SpatialDropout(rate: float) -> Layer:
    """Channel dropout: with ``train=True`` zero each ``(example, channel)`` feature
    map with probability ``rate`` and scale the rest by ``1 / (1 − rate)``;
    identity otherwise.  ``x`` is ``(N, *spatial, C)`` (PyTorch's ``Dropout1d/2d/3d``,
    channels-last): the mask is ``(N, 1, …, 1, C)``.

    Examples:
      >>> import jax, jax.numpy as jnp, jcnn
      >>> layer = jcnn.nn.SpatialDropout(0.5)
      >>> y = layer.apply({}, jnp.ones((2, 3, 3, 8)), key=jax.random.key(0), train=True)
      >>> [sorted(set(y[n, :, :, c].ravel().tolist())) in ([0.0], [2.0])
      ...  for n in range(2) for c in range(8)] == [True] * 16   # whole maps kept or dropped
      True
    """
    layer = _dropout("SpatialDropout", rate,
                     lambda shape: (shape[0], *(1,) * (len(shape) - 2), shape[-1]))

    def init(key, input_shape):
        input_shape = check_input_shape("SpatialDropout", input_shape)
        if len(input_shape) < 3:
            raise ValueError(f"SpatialDropout: expects (N, *spatial, C) input, got shape "
                             f"{tuple(input_shape)}; use Dropout on (N, D) features")
        return tuple(input_shape), {}

    return layer._replace(init=init)


def DropPath(rate: float) -> Layer:
    """Stochastic depth: with ``train=True`` zero a whole example with probability
    ``rate`` (mask ``(N, 1, …, 1)``) and scale the kept ones by ``1 / (1 − rate)``;
    identity otherwise.  Put it last in a residual block's branch,
    ``nn.residual(nn.serial(conv, bn, relu, conv, bn, nn.DropPath(0.1)))``, so a
    dropped example takes only the shortcut.

    Examples:
      >>> import jax, jax.numpy as jnp, jcnn
      >>> layer = jcnn.nn.DropPath(0.5)
      >>> y = layer.apply({}, jnp.ones((6, 2, 2, 3)), key=jax.random.key(0), train=True)
      >>> all(sorted(set(y[n].ravel().tolist())) in ([0.0], [2.0]) for n in range(6))
      True
      >>> block = jcnn.nn.residual(jcnn.nn.serial(jcnn.nn.Conv(3, (1, 1)), layer))
      >>> block.init(jax.random.key(0), (-1, 2, 2, 3))[0]
      (-1, 2, 2, 3)
    """
    return _dropout("DropPath", rate, lambda shape: (shape[0], *(1,) * (len(shape) - 1)))


def SeparableConv(
    out_channels: int,
    kernel_size: int | Sequence[int],
    *,
    stride: int | Sequence[int] = 1,
    padding: PaddingLike = "SAME",
    depth_multiplier: int = 1,
    use_bias: bool = True,
    w_init=jax.nn.initializers.he_normal(),
) -> Layer:
    """Depthwise-separable convolution: a depthwise conv, then a pointwise 1×1 conv.

    ``z = conv(x, W_dw, groups=C_in, stride, padding)`` filters each input
    channel on its own (``depth_multiplier`` filters per channel), then
    ``y = conv(z, W_pw) + b`` mixes channels — ``k^d·C_in·m + C_in·m·C_out``
    weights instead of a full conv's ``k^d·C_in·C_out``.  Params:
    ``{"depthwise": (*window, 1, C_in·m), "pointwise": (1, …, 1, C_in·m, C_out),
    "b": (C_out,)}`` (Keras' layout; a depthwise bias would only add a constant
    the pointwise bias already can).  An int ``kernel_size`` (or ``stride``)
    applies to every spatial dim of the input that ``init`` sees.

    Examples:
      >>> import jax, jcnn
      >>> layer = jcnn.nn.SeparableConv(16, 3, stride=2)
      >>> shape, params = layer.init(jax.random.key(0), (-1, 8, 8, 4))
      >>> shape, params["depthwise"].shape, params["pointwise"].shape
      ((-1, 4, 4, 16), (3, 3, 1, 4), (1, 1, 4, 16))
    """
    name = "SeparableConv"
    (depth_multiplier,) = ntuple(depth_multiplier, 1, "depth_multiplier", name)
    (out_channels,) = ntuple(out_channels, 1, "out_channels", name)
    if not callable(w_init):
        raise TypeError(f"{name}: `w_init` must be a JAX initializer init(key, shape, dtype), "
                        f"got {w_init!r}")

    def init(key, input_shape):
        input_shape = check_input_shape(name, input_shape)
        win = ntuple(per_dim(name, kernel_size, input_shape, "kernel_size"), len(input_shape) - 2,
                     "kernel_size", name)
        mid = input_shape[-1] * depth_multiplier
        dw_shape, pw_shape = (*win, 1, mid), (*(1,) * len(win), mid, out_channels)
        k_dw, k_pw = jax.random.split(key)
        params = {"depthwise": w_init(k_dw, dw_shape, jnp.float32),
                  "pointwise": w_init(k_pw, pw_shape, jnp.float32)}
        if use_bias:
            params["b"] = jnp.zeros((out_channels,), jnp.float32)
        out = shape_of(lambda x, dw, pw: apply({"depthwise": dw, "pointwise": pw}, x),
                       input_shape, dw_shape, pw_shape)
        return out, params

    def apply(params, x, *, key=None, train=False):
        z = conv(x, params["depthwise"], stride=stride, padding=padding, groups=x.shape[-1])
        return conv(z, params["pointwise"], params.get("b"))

    config = dict(out_channels=out_channels, kernel_size=kernel_size, stride=stride,
                  padding=padding, depth_multiplier=depth_multiplier, use_bias=use_bias)
    return Layer(init, apply, name, (), tuple(config.items()))


def Upsample(scale: int | Sequence[int], *, method: str = "nearest") -> Layer:
    """``jcnn.upsample`` as a layer: every spatial size times ``scale``
    (``"nearest"`` or ``"bilinear"``); no params.

    Examples:
      >>> import jax, jcnn
      >>> jcnn.nn.Upsample(2, method="bilinear").init(jax.random.key(0), (-1, 7, 7, 8))[0]
      (-1, 14, 14, 8)
    """
    if method not in METHODS:
        raise ValueError(f"Upsample: `method` must be one of {METHODS}, got {method!r}")

    def init(key, input_shape):
        input_shape = check_input_shape("Upsample", input_shape)
        factors = ntuple(per_dim("Upsample", scale, input_shape, "scale"),
                         len(input_shape) - 2, "scale", "Upsample")
        return (input_shape[0], *(n * s for n, s in zip(input_shape[1:-1], factors)),
                input_shape[-1]), {}

    def apply(params, x, *, key=None, train=False):
        return upsample(x, scale, method=method)

    return Layer(init, apply, "Upsample", (), (("scale", scale), ("method", method)))
