"""Compositions of layers: :func:`serial` (a chain) and :func:`residual` (a skip
connection, ``y = block(x) + shortcut(x)``).

Both are stateful when a child is (:mod:`jcnn.layer`): their state is the
children's states in the same structure as their params.
"""

from __future__ import annotations

import jax

from .layer import Layer, apply_with_state, output_shape

__all__ = ["Identity", "residual", "serial"]


def _identity_init(key, input_shape):
    return tuple(input_shape), {}


Identity = Layer(_identity_init, lambda params, x, *, key=None, train=False: x, "Identity")
"""``y = x``: the shortcut of a :func:`residual` block whose shapes already match."""


def _check_layers(name, layers):
    for i, layer in enumerate(layers):
        if not isinstance(layer, Layer):
            raise TypeError(f"{name}: argument {i} is not a Layer (got {layer!r}); "
                            "constructors like nn.Conv(...) must be called")


def _needs_state(name, state):
    if state is None:
        raise TypeError(f"{name}: this model has state (e.g. BatchNorm's running statistics): "
                        "call apply(params, x, state=state, ...) and take (y, new_state), "
                        "or use nn.apply_with_state; nn.init_with_state gives the first state")


def _keys(key, n):
    return list(jax.random.split(key, n)) if key is not None else [None] * n


def serial(*layers: Layer) -> Layer:
    """Compose layers in sequence; params (and state) are tuples, one entry per layer.

    An error inside ``init`` or ``apply`` names the layer (its index and name)
    and the input shape it got.  With a stateful child (``BatchNorm``) the
    composition is stateful: ``apply(params, x, state=state, ...)`` returns
    ``(y, new_state)``.

    Examples:
      >>> import jax, jax.numpy as jnp, jcnn
      >>> nn = jcnn.nn
      >>> model = nn.serial(nn.Conv(4, (3, 3)), nn.Relu, nn.Flatten, nn.Dense(2))
      >>> shape, params = model.init(jax.random.key(0), (-1, 6, 6, 1))
      >>> shape, model.apply(params, jnp.ones((5, 6, 6, 1), jnp.float32)).shape
      ((-1, 2), (5, 2))
    """
    _check_layers("serial", layers)

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
        return tuple(shape), tuple(params)

    def init_state(input_shape):
        shape, states = tuple(input_shape), []
        for layer in layers:
            states.append(layer.init_state(shape) if layer.stateful else {})
            shape = output_shape(layer, shape)
        return tuple(states)

    def run(params, state, x, key, train):
        if len(params) != len(layers):
            raise ValueError(f"serial: got params for {len(params)} layers, "
                             f"the model has {len(layers)}")
        new_state = []
        for i, (layer, p, s, k) in enumerate(zip(layers, params, state,
                                                 _keys(key, len(layers)))):
            try:
                x, s = apply_with_state(layer, p, s, x, key=k, train=train)
            except (ValueError, TypeError) as e:
                raise type(e)(f"serial: layer {i} ({layer.name}) failed on input shape "
                              f"{tuple(x.shape)}: {e}") from e
            new_state.append(s)
        return x, tuple(new_state)

    if not any(layer.stateful for layer in layers):
        def apply(params, x, *, key=None, train=False):
            return run(params, ({},) * len(layers), x, key, train)[0]

        return Layer(init, apply, "serial", tuple(layers))

    def apply_stateful(params, x, *, state=None, key=None, train=False):
        _needs_state("serial", state)
        if len(state) != len(layers):
            raise ValueError(f"serial: got state for {len(state)} layers, "
                             f"the model has {len(layers)}")
        return run(params, state, x, key, train)

    return Layer(init, apply_stateful, "serial", tuple(layers), (), init_state)


def residual(block: Layer, shortcut: Layer | None = None) -> Layer:
    """A skip connection: ``y = block(x) + shortcut(x)`` (``shortcut`` defaults to
    :data:`Identity`).

    When the block changes the shape (a strided first conv, more channels), give
    a projection shortcut — typically a 1×1 strided convolution,
    ``nn.Conv(c_out, (1, 1), stride=2, use_bias=False)`` — and ``init`` checks
    that both branches produce the same shape.  Params (and state) are
    ``{"block": ..., "shortcut": ...}``.  The backward pass needs nothing new: the
    cotangent of a sum reaches both branches unchanged.

    Examples:
      >>> import jax, jax.numpy as jnp, jcnn
      >>> nn = jcnn.nn
      >>> block = nn.serial(nn.Conv(8, (3, 3), stride=2, padding=1), nn.Relu,
      ...                   nn.Conv(8, (3, 3), padding=1))
      >>> layer = nn.residual(block, shortcut=nn.Conv(8, (1, 1), stride=2))
      >>> layer.init(jax.random.key(0), (-1, 8, 8, 4))[0]
      (-1, 4, 4, 8)
    """
    shortcut = Identity if shortcut is None else shortcut
    _check_layers("residual", (block, shortcut))
    branches = (("block", block), ("shortcut", shortcut))

    def init(key, input_shape):
        k_block, k_short = jax.random.split(key)
        out_b, p_b = block.init(k_block, tuple(input_shape))
        out_s, p_s = shortcut.init(k_short, tuple(input_shape))
        if tuple(out_b) != tuple(out_s):
            raise ValueError(
                f"residual: on input shape {tuple(input_shape)} the block gives {tuple(out_b)} "
                f"but the shortcut ({shortcut.name}) gives {tuple(out_s)}; give a projection "
                f"shortcut that matches, e.g. nn.Conv({out_b[-1]}, (1, 1), stride=...)")
        return tuple(out_b), {"block": p_b, "shortcut": p_s}

    def init_state(input_shape):
        return {name: (layer.init_state(tuple(input_shape)) if layer.stateful else {})
                for name, layer in branches}

    def run(params, state, x, key, train):
        keys = _keys(key, 2)
        outs, new_state = [], {}
        for (name, layer), k in zip(branches, keys):
            try:
                y, new_state[name] = apply_with_state(layer, params[name], state[name], x,
                                                      key=k, train=train)
            except (ValueError, TypeError) as e:
                raise type(e)(f"residual: the {name} ({layer.name}) failed on input shape "
                              f"{tuple(x.shape)}: {e}") from e
            outs.append(y)
        return outs[0] + outs[1], new_state

    if not (block.stateful or shortcut.stateful):
        def apply(params, x, *, key=None, train=False):
            return run(params, {"block": {}, "shortcut": {}}, x, key, train)[0]

        return Layer(init, apply, "residual", (block, shortcut))

    def apply_stateful(params, x, *, state=None, key=None, train=False):
        _needs_state("residual", state)
        return run(params, state, x, key, train)

    return Layer(init, apply_stateful, "residual", (block, shortcut), (), init_state)
