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
(the protocol: :mod:`jcnn.layer`).  :func:`residual` adds a skip connection;
:func:`mixed_precision` runs any model in bf16/f16 with f32 parameters.

Every layer is used the same way: a constructor is called (``nn.Conv(8, 3)``,
``nn.LeakyRelu(0.1)``), and a layer without arguments is a layer already
(``nn.Relu``; ``nn.Relu()`` is the same layer).  Window sizes may be one int
for every spatial dim of the input the model is built on.

Example::

    model = nn.serial(nn.Conv(16, (3, 3), padding="SAME"), nn.Relu, nn.MaxPool((2, 2)),
                      nn.Flatten, nn.Dense(10))
    out_shape, params = model.init(jax.random.key(0), (-1, 8, 8, 1))
    logits = model.apply(params, x)
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from . import activations
from ._layer_shapes import check_input_shape
from ._layers_conv import Conv, ConvTranspose, Dense, glorot_uniform, he_normal
from ._layers_pool import (
    AdaptiveAvgPool,
    AdaptiveMaxPool,
    AvgPool,
    Flatten,
    GlobalAvgPool,
    GlobalMaxPool,
    MaxPool,
)
from ._nn_extra import DropPath, SeparableConv, SpatialDropout, Upsample
from ._nn_vocab import Elu, Gelu, GroupNorm, HardSwish, InstanceNorm, LayerNorm, Silu, Softplus
from .combinators import Identity, mixed_precision, residual, serial
from .layer import Layer, apply_with_state, init_with_state, output_shape, param_count
from .normalization import batch_norm, batch_norm_inference
from .summary import summary, summary_rows
from .torch_weights import load_torch_state_dict, momentum_from_torch

__all__ = [
    "AdaptiveAvgPool",
    "AdaptiveMaxPool",
    "AvgPool",
    "BatchNorm",
    "Conv",
    "ConvTranspose",
    "Dense",
    "DropPath",
    "Dropout",
    "Elu",
    "Flatten",
    "Gelu",
    "GlobalAvgPool",
    "GlobalMaxPool",
    "GroupNorm",
    "HardSwish",
    "Identity",
    "InstanceNorm",
    "Layer",
    "LayerNorm",
    "LeakyRelu",
    "LogSoftmax",
    "MaxPool",
    "Relu",
    "SeparableConv",
    "Sigmoid",
    "Silu",
    "Softmax",
    "Softplus",
    "SpatialDropout",
    "Tanh",
    "Upsample",
    "apply_with_state",
    "glorot_uniform",
    "he_normal",
    "init_with_state",
    "load_torch_state_dict",
    "mixed_precision",
    "momentum_from_torch",
    "output_shape",
    "param_count",
    "residual",
    "serial",
    "summary",
    "summary_rows",
]


for _f in (Conv, ConvTranspose, Dense, MaxPool, AvgPool, AdaptiveAvgPool, AdaptiveMaxPool):
    _f.__module__ = __name__  # documented (and doctested) as jcnn.nn.X, as numpy's set_module


def _no_params(name):
    def init(key, input_shape):
        return check_input_shape(name, input_shape), {}

    return init


def _elementwise(name, fn, **config) -> Layer:
    return Layer(_no_params(name), lambda params, x, *, key=None, train=False: fn(x), name, (),
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

    return Layer(_no_params("Dropout"), apply, "Dropout", (), (("rate", rate),))


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
        c = _channels(check_input_shape("BatchNorm", input_shape))
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
