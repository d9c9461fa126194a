"""The layer protocol of :mod:`jcnn.nn`: a :class:`Layer` is a pair of pure functions.

A stateless layer (almost all of them)::

    init(key, input_shape) -> (output_shape, params)
    apply(params, x, *, key=None, train=False) -> y

A layer with state — batch norm's running statistics — has one more function,
``init_state(input_shape) -> state``, and its ``apply`` threads the state::

    apply(params, x, *, state, key=None, train=False) -> (y, new_state)

State is a pytree like params (a dict per layer, a tuple for :func:`serial`,
``{}`` for a stateless child), but it is not trained: ``fit`` carries it beside
the params and the optimizer state, checkpoints save it, evaluation reads it.
:func:`init_with_state` and :func:`apply_with_state` call any layer the
stateful way, so code that handles both kinds (``fit``) has one path.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax

from ._layer_shapes import check_input_shape

__all__ = ["Layer", "apply_with_state", "init_with_state", "output_shape", "param_count"]


class Layer(NamedTuple):
    """``init(key, input_shape) -> (output_shape, params)``; ``apply(params, x, *, key, train)``.

    ``name`` labels the layer in errors and summaries; ``layers`` holds the
    children of a composition (:func:`jcnn.nn.serial`, :func:`jcnn.nn.residual`);
    ``config`` the constructor's arguments; ``init_state`` is ``None`` for a
    stateless layer, else ``init_state(input_shape) -> state`` — and then
    ``apply(params, x, *, state, key, train)`` returns ``(y, new_state)``.
    """

    init: Callable[..., tuple[tuple[int, ...], Any]]
    apply: Callable[..., Any]
    name: str = "layer"
    layers: tuple = ()
    config: tuple = ()  # (key, value) pairs; a tuple so the layer stays hashable
    init_state: Callable[..., Any] | None = None

    @property
    def stateful(self) -> bool:
        """Whether ``apply`` takes and returns a ``state``."""
        return self.init_state is not None

    def __call__(self, *args, **kwargs) -> Layer:
        """The layer itself: ``nn.Relu()`` is ``nn.Relu``, so a layer without
        arguments reads like a constructor called with none."""
        if args or kwargs:
            raise TypeError(f"{self.name} is a layer, not a constructor: it takes no "
                            f"arguments (use it as it is); run it with "
                            f".apply(params, x)")
        return self


def param_count(params) -> int:
    """Total number of scalars in a params (or state) pytree.

    Examples:
      >>> import jax, jax.numpy as jnp, jcnn
      >>> jcnn.nn.param_count({"w": jnp.ones((3, 3, 1, 8)), "b": jnp.ones(8)})
      80
    """
    return sum(int(math.prod(p.shape)) for p in jax.tree_util.tree_leaves(params))


def output_shape(layer: Layer, input_shape: Sequence[int]) -> tuple[int, ...]:
    """``layer``'s output shape for ``input_shape``; only shapes are computed
    (``jax.eval_shape``), no parameters are initialised."""
    box = {}
    input_shape = check_input_shape(layer.name, input_shape)

    def init(key):
        out, params = layer.init(key, input_shape)
        box["out"] = tuple(out)
        return params

    jax.eval_shape(init, jax.random.key(0))
    return box["out"]


def init_with_state(layer: Layer, key, input_shape) -> tuple[tuple[int, ...], Any, Any]:
    """``(output_shape, params, state)``; ``state`` is ``{}`` for a stateless layer.

    Examples:
      >>> import jax, jcnn
      >>> nn = jcnn.nn
      >>> model = nn.serial(nn.Conv(4, (3, 3)), nn.BatchNorm(), nn.Relu)
      >>> shape, params, state = nn.init_with_state(model, jax.random.key(0), (-1, 8, 8, 1))
      >>> shape, state[1]["mean"].shape, state[0]
      ((-1, 6, 6, 4), (4,), {})
    """
    input_shape = check_input_shape(layer.name, input_shape)
    out, params = layer.init(key, input_shape)
    state = layer.init_state(input_shape) if layer.stateful else {}
    return tuple(out), params, state


def apply_with_state(layer: Layer, params, state, x, *, key=None, train=False):
    """``(y, new_state)`` for any layer: a stateless one returns ``state`` as it came.

    Examples:
      >>> import jax, jax.numpy as jnp, jcnn
      >>> nn = jcnn.nn
      >>> model = nn.serial(nn.Flatten, nn.Dense(2), nn.BatchNorm())
      >>> _, params, state = nn.init_with_state(model, jax.random.key(0), (-1, 3))
      >>> x = jnp.arange(12.0, dtype=jnp.float32).reshape(4, 3)
      >>> y, new_state = nn.apply_with_state(model, params, state, x, train=True)
      >>> y.shape, bool(jnp.all(new_state[2]["mean"] != state[2]["mean"]))
      ((4, 2), True)
    """
    if layer.stateful:
        return layer.apply(params, x, state=state, key=key, train=train)
    return layer.apply(params, x, key=key, train=train), state

