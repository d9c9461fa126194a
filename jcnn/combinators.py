"""Compositions of layers: :func:`serial` (a chain), :func:`residual` (a skip
connection, ``y = block(x) + shortcut(x)``) and :func:`mixed_precision` (a model
run in a low-precision dtype with f32 parameters).

Both are stateful when a child is (:mod:`jcnn.layer`): their state is the
children's states in the same structure as their params.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ._layer_shapes import check_input_shape
from .layer import Layer, apply_with_state, output_shape

__all__ = ["Identity", "mixed_precision", "residual", "serial"]


def _identity_init(key, input_shape):
    return tuple(input_shape), {}


Identity = Layer(_identity_init, lambda params, x, *, key=None, train=False: x, "Identity")
"""``y = x``: the shortcut of a :func:`residual` block whose shapes already match."""


def _check_layers(name, layers):
    for i, layer in enumerate(layers):
        if isinstance(layer, Layer):
            continue
        if callable(layer):
            made = getattr(layer, "__name__", repr(layer))
            raise TypeError(f"{name}: argument {i} is {made}, a function that makes a layer, "
                            f"not a Layer: call it, e.g. nn.{made}(...)")
        raise TypeError(f"{name}: argument {i} is not a Layer (got {layer!r})")


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
        shape, params = check_input_shape("serial", input_shape), []
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
        input_shape = check_input_shape("residual", input_shape)
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


_COMPUTE_DTYPES = ("bfloat16", "float16", "float32", "float64")


def _cast(tree, dtype):
    """Floating leaves of ``tree`` in ``dtype``; other leaves (integers) unchanged."""
    def cast(a):
        return a.astype(dtype) if jnp.issubdtype(a.dtype, jnp.floating) else a

    return jax.tree_util.tree_map(cast, tree)


def mixed_precision(model: Layer, compute_dtype=jnp.bfloat16) -> Layer:
    """``model`` computing in ``compute_dtype`` (bf16, f16) with its parameters kept in f32.

    The policy of Flax's ``dtype``/``param_dtype`` and Keras' ``mixed_bfloat16``:
    ``init`` makes the model's own (f32) parameters and state; ``apply`` casts the
    floating parameters and the input to ``compute_dtype`` — so every
    convolution, pool, activation and dense product runs in it (jcnn's ops
    accumulate low precision in f32) — and returns the output in at least f32,
    so a loss on it is computed in f32.  The gradient of the cast is a cast back:
    the parameters, their gradients and the optimizer stay f32.  State (batch
    norm's running statistics) goes in as it is and comes back in its own dtype;
    batch norm computes its statistics in f32.  bf16 keeps f32's range; f16 has a
    narrower one (no loss scaling here), so prefer bf16.

    Examples:
      >>> import jax, jax.numpy as jnp, jcnn
      >>> nn = jcnn.nn
      >>> model = nn.mixed_precision(nn.serial(nn.Conv(4, 3), nn.Relu, nn.Flatten, nn.Dense(2)))
      >>> _, params = model.init(jax.random.key(0), (-1, 6, 6, 1))
      >>> params[0]["w"].dtype, model.apply(params, jnp.ones((3, 6, 6, 1))).dtype
      (dtype('float32'), dtype('float32'))
    """
    _check_layers("mixed_precision", (model,))
    dtype = jnp.dtype(compute_dtype)
    if dtype.name not in _COMPUTE_DTYPES:
        raise TypeError(f"mixed_precision: `compute_dtype` must be one of {_COMPUTE_DTYPES}, "
                        f"got {dtype.name}")

    def run(params, state, x, key, train):
        y, new_state = apply_with_state(model, _cast(params, dtype), state, _cast(x, dtype),
                                        key=key, train=train)
        y = jax.tree_util.tree_map(
            lambda a: a.astype(jnp.promote_types(a.dtype, jnp.float32))
            if jnp.issubdtype(a.dtype, jnp.floating) else a, y)
        new_state = jax.tree_util.tree_map(lambda new, old: new.astype(old.dtype),
                                           new_state, state)
        return y, new_state

    config = (("compute_dtype", dtype.name),)
    if not model.stateful:
        def apply(params, x, *, key=None, train=False):
            return run(params, {}, x, key, train)[0]

        return Layer(model.init, apply, "mixed_precision", (model,), config)

    def apply_stateful(params, x, *, state=None, key=None, train=False):
        _needs_state("mixed_precision", state)
        return run(params, state, x, key, train)

    return Layer(model.init, apply_stateful, "mixed_precision", (model,), config,
                 model.init_state)
