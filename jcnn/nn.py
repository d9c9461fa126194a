"""A functional layer API in the stax/optax tradition.

From Piotr Skalski's "Gentle Dive into Math Behind Convolutional Neural Networks"
(§7–§8).

A layer is a :class:`Layer` — a NamedTuple of two pure functions::

    init(key, input_shape) -> (output_shape, params)
    apply(params, x, *, key=None, train=False) -> y

Shapes are channels-last and include the batch dim (which may be ``-1``).
Params are plain pytrees — a dict of arrays per layer, a tuple of those for
:func:`serial` — so optax, ``jax.tree_util`` and checkpointing take them as
they are.

Layers with state (:func:`BatchNorm`'s running statistics) also have
``init_state(input_shape) -> state``, and their ``apply`` takes ``state=`` and
returns ``(y, new_state)``; a composition with such a layer inside is stateful
too.  :func:`init_with_state` / :func:`apply_with_state` call any layer that way
(the protocol: :mod:`jcnn.layer`).  :func:`residual` adds a skip connection.

Example::

    model = nn.serial(nn.Conv(16, (3, 3), padding="SAME"), nn.Relu, nn.MaxPool((2, 2)),
                      nn.Flatten, nn.Dense(10))
    out_shape, params = model.init(jax.random.key(0), (-1, 8, 8, 1))
    logits = model.apply(params, x)
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp

from . import activations, adaptive_pooling, linear, pooling
from .combinators import Identity, residual, serial
from .convolution import conv, conv_transpose
from .layer import Layer, apply_with_state, init_with_state, output_shape, param_count
from .normalization import batch_norm, batch_norm_inference
from .padding import PaddingLike
from .summary import summary, summary_rows

__all__ = [
    "AdaptiveAvgPool",
    "AdaptiveMaxPool",
    "AvgPool",
    "BatchNorm",
    "Conv",
    "ConvTranspose",
    "Dense",
    "Dropout",
    "Flatten",
    "GlobalAvgPool",
    "GlobalMaxPool",
    "Identity",
    "Layer",
    "LeakyRelu",
    "LogSoftmax",
    "MaxPool",
    "Relu",
    "Sigmoid",
    "Softmax",
    "Tanh",
    "apply_with_state",
    "glorot_uniform",
    "he_normal",
    "init_with_state",
    "output_shape",
    "param_count",
    "residual",
    "serial",
    "summary",
    "summary_rows",
]


# ----------------------------------------------------------------- initialisers
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


def _explicit(name, window, what="window"):
    """A layer's window as a tuple: an int would silently mean "every spatial dim
    of whatever input arrives", so a 2-D model fed an unbatched ``(H, W, C)``
    image would build as 1-D."""
    if isinstance(window, Sequence) and not isinstance(window, str):
        return tuple(window)
    raise TypeError(f"{name}: an int `{what}` ({window!r}) does not say how many spatial dims "
                    f"the layer has; give one per spatial dim, e.g. {what}=({window!r}, "
                    f"{window!r}) for images")


def _shape_of(fn, input_shape, *arg_shapes):
    """Output shape of ``fn`` on an input of ``input_shape`` (batch -1 → 1), by tracing."""
    concrete = tuple(1 if d == -1 else d for d in input_shape)
    structs = [jax.ShapeDtypeStruct(concrete, jnp.float32)]
    structs += [jax.ShapeDtypeStruct(s, jnp.float32) for s in arg_shapes]
    out = jax.eval_shape(fn, *structs).shape
    return (input_shape[0], *out[1:])


def _window_for(name, input_shape, win) -> tuple[int, ...]:
    """Check that ``input_shape`` is ``(N, *spatial, C)`` with ``len(win)`` spatial dims."""
    nd = len(input_shape) - 2
    if nd < 1 or len(win) != nd:
        raise ValueError(
            f"{name}: input shape {tuple(input_shape)} does not match the window {win} "
            f"(need (N, *spatial, C) with {len(win)} spatial dims)"
        )
    return win


def _weights(key, w_shape, w_init, n_out, use_bias):
    """``{"w": w_init(key, shape, f32), "b": zeros}`` (no ``"b"`` without a bias)."""
    params = {"w": w_init(key, w_shape, jnp.float32)}
    if use_bias:
        params["b"] = jnp.zeros((n_out,), jnp.float32)
    return params


def _no_params(key, input_shape):
    return tuple(input_shape), {}


# ----------------------------------------------------------------- layers
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

    ``window`` has one size per spatial dim (``(3, 3)`` for images): it fixes the
    layer's rank, and ``init`` rejects an input of another rank.  ``w_init`` is
    a JAX initializer (``jax.nn.initializers.*``).  Params: ``{"w": kernel,
    "b": bias}``.

    Examples:
      >>> import jax, jcnn
      >>> layer = jcnn.nn.Conv(8, (3, 3), padding="SAME")
      >>> layer.init(jax.random.key(0), (-1, 28, 28, 1))[0]
      (-1, 28, 28, 8)
    """
    window = _explicit("Conv", window)
    w_init = _check_init("Conv", w_init)
    opts = dict(stride=stride, padding=padding, dilation=dilation, groups=groups,
                padding_mode=padding_mode)

    def init(key, input_shape):
        win = _window_for("Conv", input_shape, window)
        c_in = input_shape[-1]
        if c_in % groups:
            raise ValueError(f"Conv: `groups` (={groups}) must divide the input channels "
                             f"(={c_in}) of input shape {tuple(input_shape)}")
        w_shape = (*win, c_in // groups, out_channels)
        out_shape = _shape_of(lambda x, w: conv(x, w, **opts), input_shape, w_shape)
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
    spatial dim.

    Examples:
      >>> import jax, jcnn
      >>> layer = jcnn.nn.ConvTranspose(4, (2, 2), stride=2)
      >>> layer.init(jax.random.key(0), (-1, 7, 7, 8))[0]
      (-1, 14, 14, 4)
    """
    window = _explicit("ConvTranspose", window)
    w_init = _check_init("ConvTranspose", w_init)
    opts = dict(stride=stride, padding=padding, output_padding=output_padding,
                dilation=dilation, groups=groups)

    def init(key, input_shape):
        win = _window_for("ConvTranspose", input_shape, window)
        if out_channels % groups:
            raise ValueError(f"ConvTranspose: `groups` (={groups}) must divide out_channels "
                             f"(={out_channels})")
        c_in = input_shape[-1]
        w_shape = (*win, out_channels // groups, c_in)
        out_shape = _shape_of(lambda x, w: conv_transpose(x, w, **opts), input_shape, w_shape)
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
        if len(input_shape) != 2:
            raise ValueError(
                f"Dense: expects (N, D) input, got shape {tuple(input_shape)}; "
                "put Flatten (or GlobalAvgPool) before it"
            )
        d_in = input_shape[1]
        params = _weights(key, (d_in, out_features), w_init, out_features, use_bias)
        return (input_shape[0], out_features), params

    def apply(params, x, *, key=None, train=False):
        return linear.dense(x, params["w"], params.get("b"))

    return Layer(init, apply, "Dense", (), (("out_features", out_features),
                                            ("use_bias", use_bias)))


def _pool_layer(name, fn, **opts) -> Layer:
    def init(key, input_shape):
        return _shape_of(lambda x: fn(x, **opts), input_shape), {}

    def apply(params, x, *, key=None, train=False):
        return fn(x, **opts)

    return Layer(init, apply, name, (), tuple(opts.items()))


def MaxPool(window, *, stride=None, padding: PaddingLike = "VALID", ceil_mode=False) -> Layer:
    """:func:`jcnn.max_pool` as a layer; ``window`` one size per spatial dim.

    Examples:
      >>> import jax, jcnn
      >>> jcnn.nn.MaxPool((2, 2)).init(jax.random.key(0), (-1, 28, 28, 8))[0]
      (-1, 14, 14, 8)
    """
    window = _explicit("MaxPool", window)
    return _pool_layer("MaxPool", pooling.max_pool, window=window, stride=stride,
                       padding=padding, ceil_mode=ceil_mode)


def AvgPool(window, *, stride=None, padding: PaddingLike = "VALID", count_include_pad=True,
            ceil_mode=False) -> Layer:
    """:func:`jcnn.avg_pool` as a layer; ``window`` one size per spatial dim.

    Examples:
      >>> import jax, jcnn
      >>> jcnn.nn.AvgPool((2, 2)).init(jax.random.key(0), (-1, 28, 28, 8))[0]
      (-1, 14, 14, 8)
    """
    window = _explicit("AvgPool", window)
    return _pool_layer("AvgPool", pooling.avg_pool, window=window, stride=stride,
                       padding=padding, count_include_pad=count_include_pad,
                       ceil_mode=ceil_mode)


def AdaptiveAvgPool(output_size) -> Layer:
    """:func:`jcnn.adaptive_avg_pool` as a layer; ``output_size`` one per spatial dim.

    Examples:
      >>> import jax, jcnn
      >>> jcnn.nn.AdaptiveAvgPool((1, 1)).init(jax.random.key(0), (-1, 7, 7, 8))[0]
      (-1, 1, 1, 8)
    """
    output_size = _explicit("AdaptiveAvgPool", output_size, "output_size")
    return _pool_layer("AdaptiveAvgPool", adaptive_pooling.adaptive_avg_pool,
                       output_size=output_size)


def AdaptiveMaxPool(output_size) -> Layer:
    """:func:`jcnn.adaptive_max_pool` as a layer; ``output_size`` one per spatial dim.

    Examples:
      >>> import jax, jcnn
      >>> jcnn.nn.AdaptiveMaxPool((2, 2)).init(jax.random.key(0), (-1, 7, 7, 8))[0]
      (-1, 2, 2, 8)
    """
    output_size = _explicit("AdaptiveMaxPool", output_size, "output_size")
    return _pool_layer("AdaptiveMaxPool", adaptive_pooling.adaptive_max_pool,
                       output_size=output_size)


GlobalAvgPool = _pool_layer("GlobalAvgPool", pooling.global_avg_pool)
GlobalMaxPool = _pool_layer("GlobalMaxPool", pooling.global_max_pool)


def _flatten_init(key, input_shape):
    return (input_shape[0], math.prod(input_shape[1:])), {}


Flatten = Layer(_flatten_init, lambda params, x, *, key=None, train=False: linear.flatten(x),
                "Flatten")


def _elementwise(name, fn, **config) -> Layer:
    return Layer(_no_params, lambda params, x, *, key=None, train=False: fn(x), name, (),
                 tuple(config.items()))


Relu = _elementwise("Relu", activations.relu)
Sigmoid = _elementwise("Sigmoid", activations.sigmoid)
Tanh = _elementwise("Tanh", activations.tanh)
Softmax = _elementwise("Softmax", activations.softmax)
LogSoftmax = _elementwise("LogSoftmax", activations.log_softmax)


def LeakyRelu(negative_slope: float = 0.01) -> Layer:
    """:func:`jcnn.leaky_relu` as a layer.

    Examples:
      >>> import jax, jax.numpy as jnp, jcnn
      >>> jcnn.nn.LeakyRelu(0.5).apply({}, jnp.array([-2.0, 1.0])).tolist()
      [-1.0, 1.0]
    """
    return _elementwise("LeakyRelu", lambda x: activations.leaky_relu(x, negative_slope),
                        negative_slope=negative_slope)


def Dropout(rate: float) -> Layer:
    """Inverted dropout: with ``train=True`` zero each element with probability
    ``rate`` and scale the rest by ``1 / (1 − rate)``; identity otherwise.

    Examples:
      >>> import jax, jax.numpy as jnp, jcnn
      >>> layer = jcnn.nn.Dropout(0.5)
      >>> layer.apply({}, jnp.ones(4)).tolist()  # evaluation: identity
      [1.0, 1.0, 1.0, 1.0]
      >>> set(layer.apply({}, jnp.ones(1000), key=jax.random.key(0), train=True).tolist())
      {0.0, 2.0}
    """
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"Dropout: `rate` must be in [0, 1), got {rate!r}")

    def apply(params, x, *, key=None, train=False):
        if not train or rate == 0.0:
            return x
        if key is None:
            raise ValueError("Dropout: apply(..., train=True) needs a PRNG `key`")
        keep = jax.random.bernoulli(key, 1.0 - rate, x.shape)
        return jnp.where(keep, x / (1.0 - rate), jnp.zeros_like(x))

    return Layer(_no_params, apply, "Dropout", (), (("rate", rate),))


def BatchNorm(*, momentum: float = 0.9, eps: float = 1e-5, axis_name=None) -> Layer:
    """Batch normalisation (:func:`jcnn.batch_norm`) over every axis but the channels.

    Params ``{"scale": γ, "offset": β}`` (ones, zeros); state ``{"mean", "var"}``
    (zeros, ones).  With ``train=True`` the batch's statistics normalise ``x``
    and the running ones move toward them:
    ``running = momentum·running + (1 − momentum)·batch`` (biased variance, as
    the normalisation uses); with ``train=False`` the running statistics
    normalise and the state comes back unchanged.  ``axis_name`` averages the
    batch statistics over a mapped axis (``shard_map``/``pmap``); under
    ``jax.jit`` with a sharded batch (``fit``'s data parallelism) the plain
    statistics already span every device.

    Examples:
      >>> import jax, jax.numpy as jnp, jcnn
      >>> layer = jcnn.nn.BatchNorm(momentum=0.5)
      >>> _, params, state = jcnn.nn.init_with_state(layer, jax.random.key(0), (-1, 1))
      >>> y, state = layer.apply(params, jnp.array([[1.0], [3.0]]), state=state, train=True)
      >>> y[:, 0].round(3).tolist(), state["mean"].tolist(), state["var"].tolist()
      ([-1.0, 1.0], [1.0], [1.0])
    """
    if not 0.0 <= momentum < 1.0:
        raise ValueError(f"BatchNorm: `momentum` must be in [0, 1), got {momentum!r}")
    if not eps > 0:
        raise ValueError(f"BatchNorm: `eps` must be positive, got {eps!r}")

    def _channels(input_shape):
        if len(input_shape) < 2:
            raise ValueError(f"BatchNorm: expects (N, ..., C) input, got shape "
                             f"{tuple(input_shape)}")
        return input_shape[-1]

    def init(key, input_shape):
        c = _channels(input_shape)
        return tuple(input_shape), {"scale": jnp.ones((c,), jnp.float32),
                                    "offset": jnp.zeros((c,), jnp.float32)}

    def init_state(input_shape):
        c = _channels(input_shape)
        return {"mean": jnp.zeros((c,), jnp.float32), "var": jnp.ones((c,), jnp.float32)}

    def apply(params, x, *, state=None, key=None, train=False):
        if state is None:
            raise TypeError("BatchNorm: apply needs `state=` (its running statistics; "
                            "nn.init_with_state gives the first one) and returns (y, state)")
        if not train:
            y = batch_norm_inference(x, params["scale"], params["offset"], state["mean"],
                                     state["var"], eps=eps)
            return y, state
        y, mean, var = batch_norm(x, params["scale"], params["offset"], eps=eps,
                                  axis_name=axis_name)

        def update(running, batch):
            batch = jax.lax.stop_gradient(batch).astype(running.dtype)
            return momentum * running + (1.0 - momentum) * batch

        return y, {"mean": update(state["mean"], mean), "var": update(state["var"], var)}

    config = (("momentum", momentum), ("eps", eps), ("axis_name", axis_name))
    return Layer(init, apply, "BatchNorm", (), config, init_state)
