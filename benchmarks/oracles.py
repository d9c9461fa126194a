"""The oracles: XLA's own convolution and pooling (``lax.conv_general_dilated``,
``lax.reduce_window``) with plain autodiff, channels-last — the one
implementation the tests compare jcnn against, and the benchmarks' speed
baseline (``benchmarks/lax_twin.py`` runs them at JAX's default precision).

``lax_twin(model)`` is a :mod:`jcnn.nn` model rebuilt from these ops, reading
the same params.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from jax import lax

from jcnn._padding_rules import ntuple
from jcnn.padding import padding_pairs

__all__ = ["HIGHEST", "lax_avg_pool", "lax_batch_norm", "lax_conv", "lax_conv_transpose",
           "lax_max_pool", "lax_sum_pool", "lax_twin", "lax_twin_with_state"]

HIGHEST = lax.Precision.HIGHEST


def _dims(nd):
    sp = "DHW"[3 - nd:] if nd <= 3 else "".join(chr(ord("a") + i) for i in range(nd))
    return f"N{sp}C", f"{sp}IO", f"N{sp}C"


def lax_conv(x, w, b=None, *, stride=1, padding="VALID", dilation=1, groups=1,
             precision=HIGHEST):
    """``lax.conv_general_dilated`` in channels-last layout; any of jcnn's padding forms.

    The input is zero-padded with ``jnp.pad`` and the convolution is ``VALID``:
    the same values as passing the pads to lax, but lax's VJP of a *padded*
    convolution makes XLA abort the process for some strided shapes (an
    ``algebraic_simplifier`` CHECK failure; ``tools/repro_xla_lax_vjp_abort.py``).
    This way the input gradient is lax's transpose of an unpadded convolution
    followed by the transpose of the pad (a slice).
    """
    nd = x.ndim - 2
    stride = ntuple(stride, nd, "stride", "lax")
    dilation = ntuple(dilation, nd, "dilation", "lax")
    pads = padding_pairs(padding, x.shape[1:-1], w.shape[:-2], stride, dilation)
    # the barrier keeps XLA from folding the pad (or, in the VJP, the slice that is its
    # transpose) back into the convolution: the form that aborts
    x = lax.optimization_barrier(jnp.pad(x, ((0, 0), *pads, (0, 0))))
    dn = lax.conv_dimension_numbers(x.shape, w.shape, _dims(nd))
    y = lax.conv_general_dilated(x, w, stride, "VALID", rhs_dilation=dilation,
                                 dimension_numbers=dn, feature_group_count=groups,
                                 precision=precision)
    return y if b is None else y + b


def _pool_geometry(x, window, stride, padding):
    nd = x.ndim - 2
    window = ntuple(window, nd, "window", "lax")
    stride = window if stride is None else ntuple(stride, nd, "stride", "lax")
    pads = padding_pairs(padding, x.shape[1:-1], window, stride)
    return (1, *window, 1), (1, *stride, 1), ((0, 0), *pads, (0, 0))


def lax_max_pool(x, window, stride=None, padding="VALID"):
    dims, strides, pads = _pool_geometry(x, window, stride, padding)
    return lax.reduce_window(x, np.array(-np.inf, x.dtype), lax.max, dims, strides, pads)


def lax_sum_pool(x, window, stride=None, padding="VALID"):
    dims, strides, pads = _pool_geometry(x, window, stride, padding)
    return lax.reduce_window(x, np.zeros((), x.dtype), lax.add, dims, strides, pads)


def lax_avg_pool(x, window, stride=None, padding="VALID"):
    dims, _, _ = _pool_geometry(x, window, stride, padding)
    return lax_sum_pool(x, window, stride, padding) / np.prod(dims)


def lax_batch_norm(x, scale, offset, eps=1e-5):
    """Batch norm by its formula (plain autodiff): ``(y, mean, biased var)``."""
    axes = tuple(range(x.ndim - 1))
    xf = x.astype(jnp.promote_types(x.dtype, jnp.float32))
    mean = jnp.mean(xf, axes)
    var = jnp.mean((xf - mean) ** 2, axes)
    y = (xf - mean) / jnp.sqrt(var + eps) * scale + offset
    return y.astype(x.dtype), mean, var


def _twin(layer, precision):
    """``run(params, state, x, train) -> (y, state)`` of one layer, from lax and jnp."""
    cfg = dict(layer.config)
    name = layer.name
    if name == "serial":
        runs = [_twin(child, precision) for child in layer.layers]

        def run(params, state, x, train):
            new, state = [], state if layer.stateful else _no_state(layer)
            for f, p, s in zip(runs, params, state, strict=True):
                x, s = f(p, s, x, train)
                new.append(s)
            return x, tuple(new)

        return run
    if name == "residual":
        block, shortcut = (_twin(child, precision) for child in layer.layers)

        def run(params, state, x, train):
            state = state if layer.stateful else _no_state(layer)
            yb, sb = block(params["block"], state["block"], x, train)
            ys, ss = shortcut(params["shortcut"], state["shortcut"], x, train)
            return yb + ys, {"block": sb, "shortcut": ss}

        return run
    if name == "BatchNorm":
        m, eps = cfg["momentum"], cfg["eps"]

        def run(params, state, x, train):
            if not train:
                y = (x - state["mean"]) / jnp.sqrt(state["var"] + eps) * params["scale"] \
                    + params["offset"]
                return y, state
            y, mean, var = lax_batch_norm(x, params["scale"], params["offset"], eps)
            upd = {k: m * state[k] + (1 - m) * lax.stop_gradient(v).astype(state[k].dtype)
                   for k, v in (("mean", mean), ("var", var))}
            return y, upd

        return run

    def plain(params, x, train):
        if name == "Conv":
            return lax_conv(x, params["w"], params.get("b"), stride=cfg["stride"],
                            padding=cfg["padding"], dilation=cfg["dilation"],
                            groups=cfg["groups"], precision=precision)
        if name in ("MaxPool", "AvgPool"):
            if cfg.get("ceil_mode"):
                raise NotImplementedError("lax_twin: ceil_mode")
            pool = lax_max_pool if name == "MaxPool" else lax_avg_pool
            return pool(x, cfg["window"], cfg["stride"], cfg["padding"])
        if name == "Dense":
            return jnp.matmul(x, params["w"], precision=precision) + params.get("b", 0)
        if name == "Relu":
            return jnp.where(x > 0, x, 0.0)  # relu′(0) = 0, as jcnn.relu
        if name == "Flatten":
            return x.reshape(x.shape[0], -1)
        if name == "GlobalAvgPool":
            return jnp.mean(x, axis=tuple(range(1, x.ndim - 1)))
        if name == "Identity":
            return x
        if name == "Dropout":
            if train:
                raise NotImplementedError("lax_twin: dropout in training mode")
            return x
        raise NotImplementedError(f"lax_twin: layer {name}")

    return lambda params, state, x, train: (plain(params, x, train), state)


def lax_twin_with_state(model, precision=HIGHEST):
    """``apply(params, state, x, *, train=False) -> (y, state)`` of ``model`` rebuilt from
    lax convolutions and pools and batch norm's formula (any :mod:`jcnn.nn` model)."""
    run = _twin(model, precision)
    return lambda params, state, x, *, train=False: run(params, state, x, train)


def lax_twin(model, precision=HIGHEST):
    """``apply(params, x)`` (inference) of a stateless ``model`` with lax convolutions
    and pools."""
    run = _twin(model, precision)
    state = _no_state(model)

    def apply(params, x, *, key=None, train=False):
        return run(params, state, x, train)[0]

    return apply


def _no_state(layer):
    if layer.name == "serial":
        return tuple(_no_state(child) for child in layer.layers)
    if layer.name == "residual":
        return {"block": _no_state(layer.layers[0]), "shortcut": _no_state(layer.layers[1])}
    return {}


def lax_conv_transpose(x, w, b=None, *, stride, pads, output_padding, dilation, groups,
                       precision=HIGHEST):
    """``conv_transpose`` by lax, as the textbook defines it: the input spread by the
    stride (``s − 1`` zeros between values, ``lax.pad``'s interior padding), padded
    (or cropped) to the full convolution's extent, then a stride-1 ``VALID``
    ``conv_general_dilated`` with the flipped kernel, channels swapped per group;
    ``w`` is ``(*window, C_out/G, C_in)`` as jcnn's.

    Not ``lhs_dilation`` with the (possibly negative) padding passed to lax: XLA
    aborts the process compiling that for some grouped shapes (an
    ``algebraic_simplifier`` CHECK failure; ``tools/repro_xla_lax_vjp_abort.py
    transpose``) — and an optimisation barrier after the pad, or XLA's simplifier
    folds the pad back into that form and aborts the same way."""
    nd = x.ndim - 2
    cig = w.shape[-1] // groups
    # (*win, cog, C_in) -> per group swap -> (*win, C_in/g, g*cog), flipped
    wt = w.reshape(*w.shape[:-2], w.shape[-2], groups, cig)
    wt = jnp.swapaxes(wt, -3, -1).reshape(*w.shape[:-2], cig, groups * w.shape[-2])
    wt = jnp.flip(wt, axis=tuple(range(nd)))
    full = [((k - 1) * d - lo, (k - 1) * d - hi + op, s - 1) for k, d, (lo, hi), op, s in
            zip(w.shape[:-2], dilation, pads, output_padding, stride)]
    # the barrier keeps XLA from folding the pad back into the conv as lhs_dilation
    xs = lax.optimization_barrier(lax.pad(x, jnp.zeros((), x.dtype), [(0, 0, 0), *full, (0, 0, 0)]))
    dn = lax.conv_dimension_numbers(xs.shape, wt.shape, _dims(nd))
    y = lax.conv_general_dilated(xs, wt, (1,) * nd, "VALID", rhs_dilation=dilation,
                                 dimension_numbers=dn, feature_group_count=groups,
                                 precision=precision)
    return y if b is None else y + b
