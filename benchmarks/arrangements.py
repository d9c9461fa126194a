"""Time every arrangement of the windowed sums on the suite's shapes:
``python -m benchmarks.arrangements`` — the measurements behind
``jcnn.convolution.choose_strategy`` and the backward's choices."""

from __future__ import annotations

import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from jcnn import convolution as C
from jcnn.padding import conv_out_shape, padding_pairs

from .__main__ import conv_suite, quick_suite
from .lax_twin import lax_conv


def _median(f, args, repeats):
    jax.block_until_ready(f(*args))
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        jax.block_until_ready(f(*args))
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def main(argv=None):
    quick = "--quick" in (argv or sys.argv[1:])
    repeats = 3 if quick else 10
    for shape in (quick_suite(2) if quick else conv_suite(16)):
        rng = np.random.default_rng(0)
        x = jnp.asarray(rng.standard_normal(shape.x), jnp.float32)
        w = jnp.asarray(rng.standard_normal(shape.w) * 0.1, jnp.float32)
        nd = len(shape.x) - 2
        s, d, G = (shape.stride,) * nd, (1,) * nd, shape.groups
        pads = padding_pairs(shape.padding, shape.x[1:-1], shape.w[:-2], s, d, "bench")
        out = conv_out_shape(shape.x[1:-1], shape.w[:-2], s, pads, d)
        g = jnp.asarray(rng.standard_normal((shape.x[0], *out, shape.w[-1])), jnp.float32)
        kw = dict(stride=shape.stride, padding=shape.padding, groups=G)
        res = {"lax fwd": _median(jax.jit(lambda x, w: lax_conv(x, w, **kw)), (x, w), repeats)}
        depthwise = shape.w[-2] == 1 and G > 1
        paths = ["offsets", "gather", "shift", "scan"] + (["depthwise"] if depthwise else [])
        for p in paths:
            f = jax.jit(lambda x, w, p=p: C._forward(x, w, None, s, pads, d, G, p))
            res[f"fwd {p}"] = _median(f, (x, w), repeats)
        _, vjp = jax.vjp(lambda x, w: lax_conv(x, w, **kw), x, w)
        res["lax bwd"] = _median(jax.jit(vjp), (g,), repeats)
        for p in ("fullconv", "scatter"):
            f = jax.jit(lambda g, w, p=p: C._input_grad(g, w, shape.x[1:-1], s, pads, d, G, p))
            res[f"dx {p}"] = _median(f, (g, w), repeats)
        for p in ("offsets", "gather", "scan"):
            f = jax.jit(lambda x, g, p=p: C._weight_grad(x, g, shape.w, s, pads, d, G, p))
            res[f"dw {p}"] = _median(f, (x, g), repeats)
        print(f"{shape.name:28s} " + "  ".join(f"{k} {v * 1e3:6.2f}" for k, v in res.items()),
              flush=True)


if __name__ == "__main__":
    main()
