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

Example::

    model = nn.serial(nn.Conv(16, (3, 3), padding="SAME"), nn.Relu, nn.MaxPool((2, 2)),
                      nn.Flatten, nn.Dense(10))
    out_shape, params = model.init(jax.random.key(0), (-1, 8, 8, 1))
    logits = model.apply(params, x)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from . import activations, adaptive_pooling, linear, pooling
from .convolution import conv, conv_transpose
from .padding import PaddingLike

__all__ = [
    "AdaptiveAvgPool",
    "AdaptiveMaxPool",
    "AvgPool",
    "Conv",
    "ConvTranspose",
    "Dense",
    "Dropout",
    "Flatten",
    "GlobalAvgPool",
    "GlobalMaxPool",
    "Layer",
    "LeakyRelu",
    "LogSoftmax",
    "MaxPool",
    "Relu",
    "Sigmoid",
    "Softmax",
    "Tanh",
    "glorot_uniform",
    "he_normal",
    "param_count",
    "serial",
    "summary",
    "summary_rows",
]


class Layer(NamedTuple):
    """``init(key, input_shape) -> (output_shape, params)``; ``apply(params, x, *, key, train)``.

    ``name`` labels the layer in errors and :func:`summary`; ``layers`` holds
    the children of a :func:`serial` composition; ``config`` the constructor's
    arguments (for summaries and for rebuilding the layer elsewhere).
    """

    init: Callable[..., tuple[tuple[int, ...], Any]]
    apply: Callable[..., jax.Array]
    name: str = "layer"
    layers: tuple = ()
    config: tuple = ()  # (key, value) pairs; a tuple so the layer stays hashable


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


def param_count(params) -> int:
    """Total number of scalars in a params pytree.

    Examples:
      >>> import jax, jax.numpy as jnp, jcnn
      >>> jcnn.nn.param_count({"w": jnp.ones((3, 3, 1, 8)), "b": jnp.ones(8)})
      80
    """
    return sum(int(math.prod(p.shape)) for p in jax.tree_util.tree_leaves(params))


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


def serial(*layers: Layer) -> Layer:
    """Compose layers in sequence; params are the tuple of the layers' params.

    An error inside ``init`` or ``apply`` names the layer (its index and name)
    and the input shape it got.

    Examples:
      >>> import jax, jax.numpy as jnp, jcnn
      >>> nn = jcnn.nn
      >>> model = nn.serial(nn.Conv(4, (3, 3)), nn.Relu, nn.Flatten, nn.Dense(2))
      >>> shape, params = model.init(jax.random.key(0), (-1, 6, 6, 1))
      >>> shape, model.apply(params, jnp.ones((5, 6, 6, 1), jnp.float32)).shape
      ((-1, 2), (5, 2))
    """
    for i, layer in enumerate(layers):
        if not isinstance(layer, Layer):
            raise TypeError(f"serial: argument {i} is not a Layer (got {layer!r}); "
                            "constructors like nn.Conv(...) must be called")

    def init(key, input_shape):
        keys = jax.random.split(key, max(len(layers), 1))
        shape, params = tuple(input_shape), []
        for i, (layer, k) in enumerate(zip(layers, keys)):
            try:
                shape, p = layer.init(k, shape)
            except (ValueError, TypeError) as e:
                raise type(e)(
                    f"serial: layer {i} ({layer.name}) cannot take input shape {shape}: {e}"
                ) from e
            params.append(p)
        return shape, tuple(params)

    def apply(params, x, *, key=None, train=False):
        if len(params) != len(layers):
            raise ValueError(f"serial: got params for {len(params)} layers, "
                             f"the model has {len(layers)}")
        keys = (jax.random.split(key, len(layers)) if key is not None
                else [None] * len(layers))
        for i, (layer, p, k) in enumerate(zip(layers, params, keys)):
            try:
                x = layer.apply(p, x, key=k, train=train)
            except (ValueError, TypeError) as e:
                raise type(e)(f"serial: layer {i} ({layer.name}) failed on input shape "
                              f"{tuple(x.shape)}: {e}") from e
        return x

    return Layer(init, apply, "serial", tuple(layers))


# ----------------------------------------------------------------- summary
def summary_rows(model: Layer, input_shape: Sequence[int], _prefix: str = "") -> list[dict]:
    """One dict per leaf layer: ``name`` (``"2.1: Conv"`` inside nested blocks),
    ``input_shape``, ``output_shape``, ``params`` and, for convolutions,
    ``dense_params`` — what a dense layer mapping the same input size to the same
    output size would need (article §8).  Only shapes are computed
    (``jax.eval_shape``): no parameters are initialised.
    Examples:
      >>> import jcnn
      >>> nn = jcnn.nn
      >>> inner = nn.serial(nn.Conv(4, (3, 3), padding="SAME"), nn.Relu)
      >>> [r["name"] for r in nn.summary_rows(nn.serial(inner, nn.Flatten), (-1, 8, 8, 1))]
      ['0.0: Conv', '0.1: Relu', '1: Flatten']
    """
    layers = model.layers or (model,)
    rows, shape = [], tuple(input_shape)
    for i, layer in enumerate(layers):
        label = f"{_prefix}{i}"
        if layer.layers:  # a nested composition: its own rows, numbered under this one
            inner = summary_rows(layer, shape, f"{label}.")
            rows += inner
            shape = inner[-1]["output_shape"] if inner else shape
            continue
        box = {}

        def init(k, lay=layer, s=shape):
            out, p = lay.init(k, s)
            box["out"] = tuple(out)
            return p

        params = jax.eval_shape(init, jax.random.key(0))
        out = box["out"]
        row = {"name": f"{label}: {layer.name}", "input_shape": shape, "output_shape": out,
               "params": param_count(params), "dense_params": None}
        if layer.name in ("Conv", "ConvTranspose"):
            n_in, n_out = math.prod(shape[1:]), math.prod(out[1:])
            row["dense_params"] = n_in * n_out + (n_out if "b" in params else 0)
        rows.append(row)
        shape = out
    return rows


def summary(model: Layer, input_shape: Sequence[int]) -> str:
    """A table of layers, output shapes, parameter counts and, per conv, the
    parameters of the dense layer with the same input/output sizes (article §8).
    Layers inside nested compositions get numbered rows (``1.0: Conv``); only
    shapes are computed, no parameters initialised.

    Examples:
      >>> import jax, jax.numpy as jnp, jcnn
      >>> nn = jcnn.nn
      >>> print(jcnn.nn.summary(nn.serial(nn.Conv(8, (3, 3)), nn.Relu), (-1, 28, 28, 1)))
      layer    output shape     params  dense equivalent    ratio
      -------  ---------------  ------  ----------------  -------
      0: Conv  (-1, 26, 26, 8)      80         4,245,280  53,066x
      1: Relu  (-1, 26, 26, 8)       0
      total                         80
    """
    rows = summary_rows(model, input_shape)
    head = ("layer", "output shape", "params", "dense equivalent", "ratio")
    lines = []
    for i, r in enumerate(rows):
        dense = r["dense_params"]
        ratio = f"{dense / r['params']:,.0f}x" if dense else ""
        lines.append((r["name"], str(r["output_shape"]), f"{r['params']:,}",
                      f"{dense:,}" if dense else "", ratio))
    total = sum(r["params"] for r in rows)
    lines.append(("total", "", f"{total:,}", "", ""))
    widths = [max(len(row[c]) for row in [head, *lines]) for c in range(len(head))]
    fmt = "  ".join(f"{{:<{w}}}" if c < 2 else f"{{:>{w}}}" for c, w in enumerate(widths))
    out = [fmt.format(*head), fmt.format(*("-" * w for w in widths))]
    out += [fmt.format(*row) for row in lines]
    return "\n".join(out)
