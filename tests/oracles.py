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

from jcnn.padding import ntuple, padding_pairs

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
    ``algebraic_simplifier`` CHECK failure; ``tests/repro_xla_lax_vjp_abort.py``).
    This way the input gradient is lax's transpose of an unpadded convolution
    followed by the transpose of the pad (a slice).
    """
    nd = x.ndim - 2
    stride = ntuple(stride, nd, "stride", "lax")
    dilation = ntuple(dilation, nd, "dilation", "lax")
    pads = padding_pairs(padding, x.shape[1:-1], w.shape[:-2], stride, dilation, "lax")
    x = jnp.pad(x, ((0, 0), *pads, (0, 0)))
    dn = lax.conv_dimension_numbers(x.shape, w.shape, _dims(nd))
    y = lax.conv_general_dilated(x, w, stride, "VALID", rhs_dilation=dilation,
                                 dimension_numbers=dn, feature_group_count=groups,
                                 precision=precision)
    return y if b is None else y + b


def _pool_geometry(x, window, stride, padding):
    nd = x.ndim - 2
    window = ntuple(window, nd, "window", "lax")
    stride = window if stride is None else ntuple(stride, nd, "stride", "lax")
    pads = padding_pairs(padding, x.shape[1:-1], window, stride, (1,) * nd, "lax")
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


def lax_twin(model, precision=HIGHEST):
    """``apply(params, x)`` (inference) of ``model`` with lax convolutions and pools."""
    layers = model.layers or (model,)

    def apply(params, x, *, key=None, train=False):
        for layer, p in zip(layers, params):
            cfg = dict(layer.config)
            if layer.name == "Conv":
                x = lax_conv(x, p["w"], p.get("b"), stride=cfg["stride"],
                             padding=cfg["padding"], dilation=cfg["dilation"],
                             groups=cfg["groups"], precision=precision)
            elif layer.name in ("MaxPool", "AvgPool"):
                if cfg.get("ceil_mode"):
                    raise NotImplementedError("lax_twin: ceil_mode")
                pool = lax_max_pool if layer.name == "MaxPool" else lax_avg_pool
                x = pool(x, cfg["window"], cfg["stride"], cfg["padding"])
            elif layer.name == "Dense":
                x = jnp.matmul(x, p["w"], precision=precision) + (p["b"] if "b" in p else 0)
            elif layer.name == "Relu":
                x = jnp.where(x > 0, x, 0.0)  # relu′(0) = 0, as jcnn.relu
            elif layer.name == "Flatten":
                x = x.reshape(x.shape[0], -1)
            elif layer.name == "GlobalAvgPool":
                x = jnp.mean(x, axis=tuple(range(1, x.ndim - 1)))
            elif layer.name == "Dropout":
                if train:
                    raise NotImplementedError("lax_twin: dropout in training mode")
            else:
                raise NotImplementedError(f"lax_twin: layer {layer.name}")
        return x

    return apply
