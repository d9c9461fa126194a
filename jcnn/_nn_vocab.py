"""Layers for the per-example normalisations (`jcnn.feature_norm`) and the smooth
activations (`jcnn.smooth_activations`); `jcnn.nn` re-exports them.

Each follows the layer protocol of `jcnn.layer`:
``init(key, input_shape) -> (output_shape, params)`` and
``apply(params, x, *, key=None, train=False) -> y``.  The normalisations
keep no state (their statistics come from each example), so they act the
same in training and evaluation; their params are ``{"scale": γ, "offset": β}``,
ones and zeros of shape ``(C,)``.  Every activation is a factory called with
its options, ``nn.Gelu()``, ``nn.Elu(alpha=0.5)``.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from . import feature_norm, smooth_activations
from .layer import Layer

__all__ = ["Elu", "Gelu", "GroupNorm", "HardSwish", "InstanceNorm", "LayerNorm", "Silu",
           "Softplus"]


def _no_params(key, input_shape):
    return tuple(input_shape), {}


def _elementwise(name, fn, **config) -> Layer:
    return Layer(_no_params, lambda params, x, *, key=None, train=False: fn(x), name, (),
                 tuple(config.items()))


def _check_eps(name, eps):
    if isinstance(eps, (bool, np.bool_)) or not isinstance(eps, (int, float, np.integer,
                                                                 np.floating)):
        raise TypeError(f"{name}: `eps` must be a Python number, got {eps!r}")
    if not eps > 0:
        raise ValueError(f"{name}: `eps` must be positive, got {eps!r}")


def _norm_layer(name, fn, min_rank, shape_check=None, **config) -> Layer:
    """A layer ``fn(x, scale, offset, **config)`` with ``(C,)`` scale and offset."""

    def init(key, input_shape):
        if len(input_shape) < min_rank:
            form = "(N, *spatial, C) with a spatial dim" if min_rank > 2 else "(N, ..., C)"
            raise ValueError(f"{name}: expects {form} input, got shape {tuple(input_shape)}")
        c = input_shape[-1]
        if shape_check is not None:
            shape_check(input_shape)
        return tuple(input_shape), {"scale": jnp.ones((c,), jnp.float32),
                                    "offset": jnp.zeros((c,), jnp.float32)}

    def apply(params, x, *, key=None, train=False):
        return fn(x, params["scale"], params["offset"], **config)

    return Layer(init, apply, name, (), tuple(config.items()))


# ----------------------------------------------------------------- normalisations
def LayerNorm(*, eps: float = 1e-5) -> Layer:
    """`jcnn.layer_norm` over the channel (last) axis as a layer: each position's
    ``C`` values get their own mean and variance.

    Examples:
      >>> import jax, jax.numpy as jnp, jcnn
      >>> layer = jcnn.nn.LayerNorm(eps=1e-12)
      >>> _, params = layer.init(jax.random.key(0), (-1, 2))
      >>> layer.apply(params, jnp.array([[1.0, 3.0]])).round(4).tolist()
      [[-1.0, 1.0]]
    """
    _check_eps("LayerNorm", eps)
    return _norm_layer("LayerNorm", feature_norm.layer_norm, 2, axes=-1, eps=eps)


def GroupNorm(groups: int, *, eps: float = 1e-5) -> Layer:
    """`jcnn.group_norm` as a layer: statistics per example over the spatial axes
    and each of ``groups`` runs of channels; ``groups`` must divide the channels.

    Examples:
      >>> import jax, jcnn
      >>> layer = jcnn.nn.GroupNorm(4)
      >>> shape, params = layer.init(jax.random.key(0), (-1, 8, 8, 16))
      >>> shape, params["scale"].shape
      ((-1, 8, 8, 16), (16,))
    """
    if isinstance(groups, (bool, np.bool_)) or not isinstance(groups, (int, np.integer)):
        raise TypeError(f"GroupNorm: `groups` must be an int, got {groups!r}")
    if groups < 1:
        raise ValueError(f"GroupNorm: `groups` must be positive, got {groups!r}")
    _check_eps("GroupNorm", eps)

    def divides(input_shape):
        if input_shape[-1] % groups:
            raise ValueError(f"GroupNorm: `groups` (={groups}) must divide the channels "
                             f"(={input_shape[-1]}) of input shape {tuple(input_shape)}")

    return _norm_layer("GroupNorm", feature_norm.group_norm, 2, divides, groups=int(groups),
                       eps=eps)


def InstanceNorm(*, eps: float = 1e-5) -> Layer:
    """`jcnn.instance_norm` as a layer: each example's every channel normalised over
    its spatial positions (with a learned ``(C,)`` scale and offset).

    Examples:
      >>> import jax, jax.numpy as jnp, jcnn
      >>> layer = jcnn.nn.InstanceNorm(eps=1e-12)
      >>> _, params = layer.init(jax.random.key(0), (-1, 2, 1))
      >>> layer.apply(params, jnp.array([[[1.0], [3.0]]])).round(4).tolist()
      [[[-1.0], [1.0]]]
    """
    _check_eps("InstanceNorm", eps)
    return _norm_layer("InstanceNorm", feature_norm.instance_norm, 3, eps=eps)


# ----------------------------------------------------------------- activations
def Gelu(approximate: bool = False) -> Layer:
    """`jcnn.gelu` as a layer (``approximate=True``: the tanh form).

    Examples:
      >>> import jax.numpy as jnp, jcnn
      >>> jcnn.nn.Gelu().apply({}, jnp.array([0.0])).tolist()
      [0.0]
    """
    if not isinstance(approximate, (bool, np.bool_)):
        raise TypeError(f"Gelu: `approximate` must be True or False, got {approximate!r}")
    return _elementwise("Gelu", lambda x: smooth_activations.gelu(x, approximate),
                        approximate=bool(approximate))


def Silu() -> Layer:
    """`jcnn.silu` (swish) as a layer.

    Examples:
      >>> import jax.numpy as jnp, jcnn
      >>> jcnn.nn.Silu().apply({}, jnp.array([0.0])).tolist()
      [0.0]
    """
    return _elementwise("Silu", smooth_activations.silu)


def Elu(alpha: float = 1.0) -> Layer:
    """`jcnn.elu` as a layer.

    Examples:
      >>> import jax.numpy as jnp, jcnn
      >>> jcnn.nn.Elu(alpha=0.5).apply({}, jnp.array([2.0])).tolist()
      [2.0]
    """
    if isinstance(alpha, (bool, np.bool_)) or not isinstance(
            alpha, (int, float, np.integer, np.floating)):
        raise TypeError(f"Elu: `alpha` must be a Python number, got {alpha!r}")
    return _elementwise("Elu", lambda x: smooth_activations.elu(x, alpha), alpha=alpha)


def Softplus() -> Layer:
    """`jcnn.softplus` as a layer.

    Examples:
      >>> import jax.numpy as jnp, jcnn
      >>> jcnn.nn.Softplus().apply({}, jnp.array([100.0])).tolist()
      [100.0]
    """
    return _elementwise("Softplus", smooth_activations.softplus)


def HardSwish() -> Layer:
    """`jcnn.hard_swish` as a layer.

    Examples:
      >>> import jax.numpy as jnp, jcnn
      >>> jcnn.nn.HardSwish().apply({}, jnp.array([-1.5, 4.0])).tolist()
      [-0.375, 4.0]
    """
    return _elementwise("HardSwish", smooth_activations.hard_swish)
