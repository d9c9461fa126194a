"""Weights from PyTorch: a ``state_dict`` (as NumPy arrays) onto a jcnn model's params.

The jcnn model's layers that hold parameters are walked in the order they run
(``serial`` children in order, a ``residual``'s block before its shortcut), the
state dict's modules in their order (``"layer1.0.conv1.weight"`` belongs to
module ``"layer1.0.conv1"``; modules appear in the order PyTorch registered
them), and each pair is converted:

* ``Conv`` ← ``Conv{1,2,3}d``: weight ``(O, I/g, *k)`` → ``(*k, I/g, O)``,
  ``w = W.transpose(2, …, d + 1, 1, 0)``; bias as it is.
* ``ConvTranspose`` ← ``ConvTranspose{1,2,3}d``: weight ``(I, O/g, *k)`` →
  ``(*k, O/g, I)``, the same permutation (``jcnn.conv_transpose``'s kernel is
  that of the conv mapping ``O`` channels back to ``I``).
* ``Dense`` ← ``Linear``: ``(out, in)`` → ``w = Wᵀ`` ``(in, out)``, its rows
  reordered after a flatten (below).
* ``BatchNorm`` ← ``BatchNorm{1,2,3}d``: weight, bias → params ``scale``,
  ``offset``; ``running_mean``, ``running_var`` → state ``mean``, ``var``
  (``num_batches_tracked`` is dropped; ``affine=False`` gives ones and zeros).
* ``GroupNorm`` ← ``GroupNorm`` (``affine=True``, the default; give it the same
  ``groups`` and ``eps``): weight, bias → ``scale``, ``offset``.
* ``SeparableConv`` ← two modules, the depthwise conv (``groups = C_in``) and the
  pointwise 1×1 conv; a depthwise bias folds into ``b``
  (``pointwise(z + b_dw) = pointwise(z) + b_dw·W_pw``).

**The flatten.**  PyTorch flattens ``(N, C, H, W)`` in ``C, H, W`` order, jcnn
flattens ``(N, H, W, C)`` in ``H, W, C`` order, so the first ``Linear`` after a
flatten sees its inputs in another order: its rows are permuted here (copying
``W.T`` alone gives a model that runs and is wrong).  Every shape is checked;
a mismatch names the jcnn layer (its index among the layers with parameters,
its place in the model and its name) and the PyTorch module.

**Batch norm.**  Only the weights travel: give the jcnn ``BatchNorm`` the same
``eps`` (both default to ``1e-5``) and, to continue training,
``momentum=momentum_from_torch(m)`` — jcnn's running statistics move as
``running = momentum·running + (1 − momentum)·batch``, PyTorch's as
``running = (1 − m)·running + m·batch``, so PyTorch's default ``0.1`` is
jcnn's default ``0.9``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .layer import Layer, output_shape

__all__ = ["load_torch_state_dict", "momentum_from_torch"]

_FN = "load_torch_state_dict"


def momentum_from_torch(momentum: float) -> float:
    """jcnn ``BatchNorm``'s ``momentum`` for a PyTorch ``BatchNorm``'s: ``1 − momentum``.

    PyTorch updates ``running = (1 − m)·running + m·batch``, jcnn
    ``running = momentum·running + (1 − momentum)·batch``.  PyTorch's
    ``momentum=None`` (a cumulative average) has no jcnn counterpart.  (One more
    difference, for continued training only: PyTorch's running variance moves
    toward the unbiased batch variance ``M/(M − 1)·σ²``, jcnn's toward ``σ²``.)

    Examples:
      >>> from jcnn.torch_weights import momentum_from_torch
      >>> momentum_from_torch(0.1)
      0.9
    """
    if momentum is None or isinstance(momentum, bool) or not 0.0 < momentum <= 1.0:
        raise ValueError(f"momentum_from_torch: PyTorch's `momentum` must be in (0, 1], got "
                         f"{momentum!r} (momentum=None, a cumulative average, has no jcnn "
                         "counterpart)")
    return round(1.0 - momentum, 12)


# --------------------------------------------------------------------------- #
# The two sequences: the model's layers with parameters, the state dict's modules
# --------------------------------------------------------------------------- #
def _modules(state_dict):
    """``[(module name, {param name: array})]`` in the state dict's order."""
    if not isinstance(state_dict, Mapping):
        raise TypeError(f"{_FN}: `state_dict` must be a mapping of names to arrays "
                        f"(model.state_dict(), or {{k: v.numpy() ...}}), got "
                        f"{type(state_dict).__name__}")
    modules: dict[str, dict[str, np.ndarray]] = {}
    for key, value in state_dict.items():
        module, _, leaf = key.rpartition(".")
        modules.setdefault(module, {})[leaf] = np.asarray(value)
    return list(modules.items())


def _chw_to_hwc(shape):
    """For a flatten of ``(N, *spatial, C)``: ``perm[j]`` is the PyTorch (``C, *spatial``
    order) position of jcnn's (``*spatial, C`` order) feature ``j``."""
    *spatial, c = shape[1:]
    return np.moveaxis(np.arange(c * int(np.prod(spatial))).reshape(c, *spatial), 0, -1).ravel()


def _walk(layer, shape, where, keys, perm, params, out):
    """Append ``(where, layer, keys, perm)`` for every layer with
    parameters or state, in the order they run; return ``(output shape, perm)``.
    ``perm`` is the pending CHW → HWC feature order after a ``Flatten``."""
    if layer.name == "serial":
        for i, child in enumerate(layer.layers):
            shape, perm = _walk(child, shape, f"{where}[{i}]", (*keys, i), perm, params, out)
        return shape, perm
    if layer.name == "residual":
        out_shape, block_perm = _walk(layer.layers[0], shape, f"{where}.block",
                                      (*keys, "block"), perm, params, out)
        _walk(layer.layers[1], shape, f"{where}.shortcut", (*keys, "shortcut"), perm, params,
              out)
        return out_shape, block_perm
    out_shape = output_shape(layer, shape)
    if layer.name == "Flatten":
        return out_shape, (_chw_to_hwc(shape) if len(shape) > 2 else perm)
    if layer.stateful or jax.tree_util.tree_leaves(_get(params, keys)):
        out.append((where, layer, keys, perm))
        if layer.name == "Dense":
            perm = None  # its outputs are in the same order in both frameworks
    if perm is not None and tuple(out_shape[1:]) != tuple(shape[1:]):
        perm = None
    return out_shape, perm


def _get(tree, keys):
    for k in keys:
        tree = tree[k]
    return tree


def _set(tree, keys, value):
    """A copy of ``tree`` with the subtree at ``keys`` replaced (tuples and dicts)."""
    if not keys:
        return value
    k, rest = keys[0], keys[1:]
    if isinstance(tree, tuple):
        return tuple(_set(v, rest, value) if i == k else v for i, v in enumerate(tree))
    return {**tree, k: _set(tree[k], rest, value)}


# --------------------------------------------------------------------------- #
# One converter per jcnn layer kind
# --------------------------------------------------------------------------- #
class _Pair:
    """One jcnn layer and the module(s) it takes: conversions and checks that name both."""

    def __init__(self, index, where, layer, perm, modules):
        self.label = f"layer {index} ({where}: {layer.name})"
        self.perm, self.modules = perm, modules

    def fail(self, msg):
        names = ", ".join(repr(m) for m, _ in self.modules)
        raise ValueError(f"{_FN}: {self.label}, PyTorch module {names}: {msg}")

    def leaves(self, which, required, optional=()):
        name, leaves = self.modules[which]
        missing = [k for k in required if k not in leaves]
        extra = [k for k in leaves if k not in (*required, *optional)]
        if missing or extra:
            self.fail(f"expected entries {sorted(required)} (optional {sorted(optional)}), got "
                      f"{sorted(leaves)}; are the modules in the order the jcnn model runs "
                      "its layers?")
        return leaves

    def take(self, which, leaf, value, target, torch_shape=None):
        """``value`` (converted) as ``target``'s dtype, after checking its shape."""
        if value.shape != target.shape:
            name = self.modules[which][0]
            want = target.shape if torch_shape is None else torch_shape
            self.fail(f"'{name}.{leaf}' has shape {self.modules[which][1][leaf].shape} but the "
                      f"jcnn layer needs {want} in PyTorch's layout (jcnn's {target.shape})")
        return jnp.asarray(value, dtype=target.dtype)


def _kernel(w):
    """``(O, I, *k)`` → ``(*k, I, O)`` (conv and conv-transpose weights alike)."""
    return np.transpose(w, (*range(2, w.ndim), 1, 0)) if w.ndim >= 3 else w


def _untorch(shape):
    """jcnn's ``(*k, I, O)`` in PyTorch's layout ``(O, I, *k)``."""
    return (shape[-1], shape[-2], *shape[:-2]) if len(shape) >= 3 else shape


def _conv_like(pair, p, s):
    has_b = "b" in p
    leaves = pair.leaves(0, ("weight", "bias") if has_b else ("weight",))
    if leaves["weight"].ndim != p["w"].ndim:
        pair.fail(f"holds a {leaves['weight'].ndim}-d weight {leaves['weight'].shape}, the "
                  f"jcnn layer a {p['w'].ndim}-d kernel; are the modules in the order the jcnn "
                  "model runs its layers?")
    new = {"w": pair.take(0, "weight", _kernel(leaves["weight"]), p["w"], _untorch(p["w"].shape))}
    if has_b:
        new["b"] = pair.take(0, "bias", leaves["bias"], p["b"])
    return new, s


def _features(pair, v):
    """A per-feature vector (or ``Wᵀ``'s rows) in jcnn's order after a flatten."""
    return v[pair.perm] if pair.perm is not None and len(pair.perm) == v.shape[0] else v


def _dense(pair, p, s):
    has_b = "b" in p
    leaves = pair.leaves(0, ("weight", "bias") if has_b else ("weight",))
    w = leaves["weight"]
    if w.ndim != 2:
        pair.fail(f"holds a {w.ndim}-d weight {w.shape}, a Linear's is (out, in); are the "
                  "modules in the order the jcnn model runs its layers?")
    # rows in jcnn's flatten order: PyTorch flattened C, H, W, jcnn H, W, C
    new = {"w": pair.take(0, "weight", _features(pair, w.T), p["w"], p["w"].shape[::-1])}
    if has_b:
        new["b"] = pair.take(0, "bias", leaves["bias"], p["b"])
    return new, s


def _affine(pair, p, leaves):
    if "weight" in leaves:
        return {"scale": pair.take(0, "weight", _features(pair, leaves["weight"]), p["scale"]),
                "offset": pair.take(0, "bias", _features(pair, leaves["bias"]), p["offset"])}
    return {"scale": jnp.ones_like(p["scale"]), "offset": jnp.zeros_like(p["offset"])}


def _batch_norm(pair, p, s):
    stats = ("running_mean", "running_var")
    leaves = pair.modules[0][1]
    affine = ("weight", "bias") if "weight" in leaves or "bias" in leaves else ()
    leaves = pair.leaves(0, (*affine, *stats), ("num_batches_tracked",))
    new_s = {"mean": pair.take(0, "running_mean", _features(pair, leaves["running_mean"]),
                               s["mean"]),
             "var": pair.take(0, "running_var", _features(pair, leaves["running_var"]),
                              s["var"])}
    return _affine(pair, p, leaves), new_s


def _group_norm(pair, p, s):
    return _affine(pair, p, pair.leaves(0, ("weight", "bias"))), s


def _separable(pair, p, s):
    dw = pair.leaves(0, ("weight",), ("bias",))
    has_b = "b" in p
    pw = pair.leaves(1, ("weight", "bias") if has_b else ("weight",))
    new = {"depthwise": pair.take(0, "weight", _kernel(dw["weight"]), p["depthwise"],
                                  _untorch(p["depthwise"].shape)),
           "pointwise": pair.take(1, "weight", _kernel(pw["weight"]), p["pointwise"],
                                  _untorch(p["pointwise"].shape))}
    if "bias" in dw:
        if not has_b:
            pair.fail("the depthwise conv has a bias, which folds into the pointwise bias; "
                      "build the jcnn SeparableConv with use_bias=True")
        # pointwise(z + b_dw) = pointwise(z) + b_dw · W_pw: the depthwise bias folds into b
        b_dw = pair.take(0, "bias", dw["bias"], jnp.zeros(p["pointwise"].shape[-2]))
        pw_b = pair.take(1, "bias", pw["bias"], p["b"])
        new["b"] = (pw_b + b_dw @ new["pointwise"].reshape(-1, p["b"].shape[0])).astype(
            p["b"].dtype)
    elif has_b:
        new["b"] = pair.take(1, "bias", pw["bias"], p["b"])
    return new, s


# name → (modules taken, converter)
_CONVERTERS = {
    "Conv": (1, _conv_like),
    "ConvTranspose": (1, _conv_like),
    "Dense": (1, _dense),
    "BatchNorm": (1, _batch_norm),
    "GroupNorm": (1, _group_norm),
    "SeparableConv": (2, _separable),
}


def load_torch_state_dict(model: Layer, params: Any, state: Any,
                          state_dict: Mapping, *,
                          input_shape: Sequence[int]) -> tuple[Any, Any]:
    """Copy a PyTorch ``state_dict`` into ``model``'s params and state.

    ``state_dict`` maps PyTorch's names to arrays (``{k: v.numpy() for k, v in
    m.state_dict().items()}``; torch is not needed here).  The jcnn layers with
    parameters and the state dict's modules are paired in order; each kernel
    is converted to channels-last (``(O, I, *k) → (*k, I, O)``; see the module
    docstring for every layer), the first ``Linear`` after a flatten gets its
    rows permuted from PyTorch's ``C, H, W`` order to jcnn's ``H, W, C``, and
    every shape is checked.

    Args:
      model: the jcnn model, built to mirror the PyTorch one layer for layer.
      params: what ``nn.init_with_state(model, key, input_shape)`` gave: the
        target shapes and dtypes.
      state: its state (``{}`` for a stateless model).
      state_dict: PyTorch's parameter and buffer names → arrays.
      input_shape: the model's channels-last input shape, e.g. ``(-1, 32, 32, 3)``
        (the flatten's permutation depends on the spatial size).

    Returns:
      ``(params, state)`` with the same structure, holding PyTorch's values.

    Raises:
      ValueError: a shape, a kind of module or the number of modules does not
        match; the message names the jcnn layer (index, place, name) and the
        PyTorch module.

    Examples:
      >>> import jax, numpy as np, jcnn
      >>> nn = jcnn.nn
      >>> model = nn.serial(nn.Conv(2, (1, 1)), nn.Flatten, nn.Dense(1, use_bias=False))
      >>> _, params, state = nn.init_with_state(model, jax.random.key(0), (-1, 1, 2, 1))
      >>> sd = {"0.weight": np.array([[[[1.0]]], [[[2.0]]]]), "0.bias": np.zeros(2),
      ...       "2.weight": np.array([[1.0, 2.0, 3.0, 4.0]])}   # Linear in C, H, W order
      >>> params, state = nn.load_torch_state_dict(model, params, state, sd,
      ...                                          input_shape=(-1, 1, 2, 1))
      >>> params[2]["w"][:, 0].tolist()                         # H, W, C order
      [1.0, 3.0, 2.0, 4.0]
    """
    modules = _modules(state_dict)
    input_shape = tuple(input_shape)
    expected = jax.eval_shape(lambda k: model.init(k, input_shape)[1], jax.random.key(0))
    got = jax.tree_util.tree_map(lambda a: jax.ShapeDtypeStruct(np.shape(a), a.dtype), params)
    if jax.tree_util.tree_structure(got) != jax.tree_util.tree_structure(expected) or any(
            a.shape != b.shape for a, b in zip(jax.tree_util.tree_leaves(got),
                                               jax.tree_util.tree_leaves(expected))):
        raise ValueError(f"{_FN}: `params` is not {model.name}'s params for input shape "
                         f"{input_shape}; pass what nn.init_with_state(model, key, "
                         "input_shape) returned")
    layers = []
    _walk(model, input_shape, "model", (), None, params, layers)
    at = 0
    for index, (where, layer, keys, perm) in enumerate(layers):
        if layer.name not in _CONVERTERS:
            raise ValueError(f"{_FN}: layer {index} ({where}: {layer.name}) has parameters but "
                             f"no PyTorch counterpart here (supported: "
                             f"{', '.join(_CONVERTERS)})")
        count, convert = _CONVERTERS[layer.name]
        if at + count > len(modules):
            needed = sum(_CONVERTERS[e[1].name][0] for e in layers
                         if e[1].name in _CONVERTERS)
            raise ValueError(f"{_FN}: layer {index} ({where}: {layer.name}) has no module left: "
                             f"the state dict has {len(modules)} modules, the model takes "
                             f"{needed}")
        pair = _Pair(index, where, layer, perm, modules[at:at + count])
        s = _get(state, keys) if layer.stateful else None
        p, s = convert(pair, _get(params, keys), s)
        params = _set(params, keys, p)
        if layer.stateful:
            state = _set(state, keys, s)
        at += count
    if at < len(modules):
        rest = ", ".join(repr(m) for m, _ in modules[at:])
        raise ValueError(f"{_FN}: the state dict has {len(modules) - at} module(s) more than "
                         f"the model takes ({at}, for {len(layers)} layers with parameters): "
                         f"{rest}")
    return params, state
