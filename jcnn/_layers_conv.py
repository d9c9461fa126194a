"""The layers with weights: :func:`Conv`, :func:`ConvTranspose`, :func:`Dense`, and
their initialisers (re-exported by :mod:`jcnn.nn`)."""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp

from . import linear
from ._layer_shapes import check_input_shape, per_dim, shape_of
from .convolution import conv
from .layer import Layer
from .padding import PaddingLike
from .transposed_conv import conv_transpose

# ``w_init`` is a JAX initializer, ``init(key, shape, dtype) -> array``: anything
# from ``jax.nn.initializers`` (whose fan-in/fan-out rule, channels-last —
# ``in_axis=-2, out_axis=-1``, the window as receptive field — is exactly the
# layout of jcnn's kernels ``(*window, C_in/groups, C_out)`` and dense
# ``(D_in, D_out)`` weights).
he_normal = jax.nn.initializers.he_normal()
"""He/Kaiming normal, ``N(0, 2 / fan_in)`` (truncated, as JAX's): keeps ReLU
activations' scale.  The default of the conv layers."""
glorot_uniform = jax.nn.initializers.glorot_uniform()
"""Glorot/Xavier uniform, ``U(±sqrt(6 / (fan_in + fan_out)))``: the default of
:func:`Dense`."""


def _check_init(name, w_init):
    if not callable(w_init):
        raise TypeError(f"{name}: `w_init` must be a JAX initializer init(key, shape, dtype) "
                        f"such as jax.nn.initializers.he_normal(), got {w_init!r}")
    return w_init


def _weights(key, w_shape, w_init, n_out, use_bias):
    """``{"w": w_init(key, shape, f32), "b": zeros}`` (no ``"b"`` without a bias)."""
    params = {"w": w_init(key, w_shape, jnp.float32)}
    if use_bias:
        params["b"] = jnp.zeros((n_out,), jnp.float32)
    return params


def Conv(
    out_channels: int,
    window: int | Sequence[int],
    *,
    stride: int | Sequence[int] = 1,
    padding: PaddingLike = "VALID",
    dilation: int | Sequence[int] = 1,
    groups: int = 1,
    padding_mode: str = "zeros",
    use_bias: bool = True,
    w_init=he_normal,
) -> Layer:
    """N-d convolution layer (:func:`jcnn.conv`); kernel ``(*window, C_in/groups, C_out)``.

    ``window`` is one size per spatial dim (``(3, 3)``), or one int for every
    spatial dim of the input ``init`` sees (``3`` is ``(3, 3)`` on images,
    ``(3,)`` on sequences).  ``w_init`` is a JAX initializer
    (``jax.nn.initializers.*``).  Params: ``{"w": kernel, "b": bias}``.

    Examples:
      >>> import jax, jcnn
      >>> layer = jcnn.nn.Conv(8, (3, 3), padding="SAME")
      >>> layer.init(jax.random.key(0), (-1, 28, 28, 1))[0]
      (-1, 28, 28, 8)
      >>> jcnn.nn.Conv(8, 3).init(jax.random.key(0), (-1, 28, 28, 1))[1]["w"].shape
      (3, 3, 1, 8)
    """
    w_init = _check_init("Conv", w_init)
    opts = dict(stride=stride, padding=padding, dilation=dilation, groups=groups,
                padding_mode=padding_mode)

    def init(key, input_shape):
        input_shape = check_input_shape("Conv", input_shape)
        win = per_dim("Conv", window, input_shape)
        c_in = input_shape[-1]
        if c_in % groups:
            raise ValueError(f"Conv: `groups` (={groups}) must divide the input channels "
                             f"(={c_in}) of input shape {input_shape}")
        w_shape = (*win, c_in // groups, out_channels)
        out_shape = shape_of(lambda x, w: conv(x, w, **opts), input_shape, w_shape)
        return out_shape, _weights(key, w_shape, w_init, out_channels, use_bias)

    def apply(params, x, *, key=None, train=False):
        return conv(x, params["w"], params.get("b"), **opts)

    config = dict(out_channels=out_channels, window=window, use_bias=use_bias, **opts)
    return Layer(init, apply, "Conv", (), tuple(config.items()))


def ConvTranspose(
    out_channels: int,
    window: int | Sequence[int],
    *,
    stride: int | Sequence[int] = 1,
    padding: PaddingLike = 0,
    output_padding: int | Sequence[int] = 0,
    dilation: int | Sequence[int] = 1,
    groups: int = 1,
    use_bias: bool = True,
    w_init=jax.nn.initializers.he_normal(in_axis=-1, out_axis=-2),
) -> Layer:
    """Transposed convolution layer (:func:`jcnn.conv_transpose`), PyTorch's
    shapes; kernel ``(*window, C_out/groups, C_in)`` (so the default He
    initializer reads its fan-in from the last axis); ``window`` one size per
    spatial dim, or one int for all of them.

    Examples:
      >>> import jax, jcnn
      >>> layer = jcnn.nn.ConvTranspose(4, (2, 2), stride=2)
      >>> layer.init(jax.random.key(0), (-1, 7, 7, 8))[0]
      (-1, 14, 14, 4)
    """
    w_init = _check_init("ConvTranspose", w_init)
    opts = dict(stride=stride, padding=padding, output_padding=output_padding,
                dilation=dilation, groups=groups)

    def init(key, input_shape):
        input_shape = check_input_shape("ConvTranspose", input_shape)
        win = per_dim("ConvTranspose", window, input_shape)
        if out_channels % groups:
            raise ValueError(f"ConvTranspose: `groups` (={groups}) must divide out_channels "
                             f"(={out_channels})")
        w_shape = (*win, out_channels // groups, input_shape[-1])
        out_shape = shape_of(lambda x, w: conv_transpose(x, w, **opts), input_shape, w_shape)
        return out_shape, _weights(key, w_shape, w_init, out_channels, use_bias)

    def apply(params, x, *, key=None, train=False):
        return conv_transpose(x, params["w"], params.get("b"), **opts)

    config = dict(out_channels=out_channels, window=window, use_bias=use_bias, **opts)
    return Layer(init, apply, "ConvTranspose", (), tuple(config.items()))


def Dense(out_features: int, *, use_bias: bool = True, w_init=glorot_uniform) -> Layer:
    """Fully connected layer (:func:`jcnn.dense`) on ``(N, D)`` inputs; ``w_init`` a
    JAX initializer.

    Examples:
      >>> import jax, jcnn
      >>> jcnn.nn.Dense(10).init(jax.random.key(0), (-1, 64))[0]
      (-1, 10)
    """
    w_init = _check_init("Dense", w_init)

    def init(key, input_shape):
        input_shape = check_input_shape("Dense", input_shape)
        if len(input_shape) != 2:
            raise ValueError(
                f"Dense: expects (N, D) input, got shape {input_shape}; "
                "put Flatten (or GlobalAvgPool) before it"
            )
        d_in = input_shape[1]
        params = _weights(key, (d_in, out_features), w_init, out_features, use_bias)
        return (input_shape[0], out_features), params

    def apply(params, x, *, key=None, train=False):
        return linear.dense(x, params["w"], params.get("b"))

    return Layer(init, apply, "Dense", (), (("out_features", out_features),
                                            ("use_bias", use_bias)))
