"""Tables of a model's layers: output shapes, parameter counts and, per
convolution, what a dense layer between the same sizes would need (article §8).

Only shapes are computed (``jax.eval_shape``): no parameters are initialised,
so a summary of a large model is instant.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax

from .layer import Layer, output_shape, param_count

__all__ = ["summary", "summary_rows"]


def _leaf_row(layer, label, shape):
    box = {}

    def init(k):
        out, p = layer.init(k, shape)
        box["out"] = tuple(out)
        state = layer.init_state(shape) if layer.stateful else {}
        return p, state

    params, state = jax.eval_shape(init, jax.random.key(0))
    out = box["out"]
    row = {"name": f"{label}: {layer.name}", "input_shape": shape, "output_shape": out,
           "params": param_count(params), "state": param_count(state), "dense_params": None}
    if layer.name in ("Conv", "ConvTranspose"):
        n_in, n_out = math.prod(shape[1:]), math.prod(out[1:])
        row["dense_params"] = n_in * n_out + (n_out if "b" in params else 0)
    return row


def summary_rows(model: Layer, input_shape: Sequence[int], _prefix: str = "") -> list[dict]:
    """One dict per leaf layer: ``name`` (``"2.1: Conv"`` inside nested blocks),
    ``input_shape``, ``output_shape``, ``params``, ``state`` (scalars of state,
    e.g. batch norm's running statistics) and, for convolutions,
    ``dense_params`` — what a dense layer mapping the same input size to the same
    output size would need (article §8).

    Inside a :func:`~jcnn.nn.residual` block, branch 0 is the block and branch 1
    the shortcut; both read the block's input.

    Examples:
      >>> import jcnn
      >>> nn = jcnn.nn
      >>> inner = nn.serial(nn.Conv(4, (3, 3), padding="SAME"), nn.Relu)
      >>> [r["name"] for r in nn.summary_rows(nn.serial(inner, nn.Flatten), (-1, 8, 8, 1))]
      ['0.0: Conv', '0.1: Relu', '1: Flatten']
      >>> [r["name"] for r in nn.summary_rows(nn.residual(inner), (-1, 8, 8, 4))]
      ['0.0.0: Conv', '0.0.1: Relu', '0.1: Identity']
    """
    if model.name == "mixed_precision":  # a dtype policy around the model: its rows
        return summary_rows(model.layers[0], input_shape, _prefix)
    layers = model.layers if model.layers and model.name != "residual" else (model,)
    rows, shape = [], tuple(input_shape)
    for i, layer in enumerate(layers):
        label = f"{_prefix}{i}"
        if layer.name == "residual":  # two branches on the same input
            inner = []
            for j, branch in enumerate(layer.layers):
                inner += summary_rows(branch, shape, f"{label}.{j}.") if branch.layers else \
                    [_leaf_row(branch, f"{label}.{j}", shape)]
            rows += inner
            shape = output_shape(layer, shape)
        elif layer.layers:  # a nested chain: its own rows, numbered under this one
            inner = summary_rows(layer, shape, f"{label}.")
            rows += inner
            shape = inner[-1]["output_shape"] if inner else shape
        else:
            rows.append(_leaf_row(layer, label, shape))
            shape = rows[-1]["output_shape"]
    return rows


def summary(model: Layer, input_shape: Sequence[int]) -> str:
    """A table of layers, output shapes, parameter counts and, per conv, the
    parameters of the dense layer with the same input/output sizes (article §8).
    Layers inside nested compositions get numbered rows (``1.0: Conv``); a
    ``state`` column appears when the model has state (batch norm).  Only
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
    with_state = any(r["state"] for r in rows)
    head = ("layer", "output shape", "params", *(("state",) if with_state else ()),
            "dense equivalent", "ratio")
    lines = []
    for r in rows:
        dense = r["dense_params"]
        ratio = f"{dense / r['params']:,.0f}x" if dense else ""
        state = (f"{r['state']:,}",) if with_state else ()
        lines.append((r["name"], str(r["output_shape"]), f"{r['params']:,}", *state,
                      f"{dense:,}" if dense else "", ratio))
    total = sum(r["params"] for r in rows)
    total_state = (f"{sum(r['state'] for r in rows):,}",) if with_state else ()
    lines.append(("total", "", f"{total:,}", *total_state, "", ""))
    widths = [max(len(row[c]) for row in [head, *lines]) for c in range(len(head))]
    fmt = "  ".join(f"{{:<{w}}}" if c < 2 else f"{{:>{w}}}" for c, w in enumerate(widths))
    out = [fmt.format(*head), fmt.format(*("-" * w for w in widths))]
    out += [fmt.format(*row) for row in lines]
    return "\n".join(out)
