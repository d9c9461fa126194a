"""The fused Pallas kernels on a GPU: ``python -m benchmarks.pallas_gpu [check] [tune]
[--json FILE] [--deadline S]``.

``check`` compiles every kernel (forward, dX by stride phase, dW, depthwise) through
``jcnn.conv`` with ``plan=ConvPlan("pallas", "pallas", "pallas")`` on small layers
(strides, dilation, asymmetric padding, groups, depthwise multipliers, 1-D, bf16) and
compares ``y, dx, dw`` with lax's at ``precision="highest"``.  ``tune`` times the
forward, dX and dW kernels per ResNet-50 layer of the GPU suite for a few tile sizes and
Triton parameters (a ``jcnn._pallas_base.TileSizes`` passed to each kernel) against lax's
forward, dX and dW (cuDNN) — the table the default tiles should rest on.
Prints as it goes; stops starting new work after ``--deadline`` seconds.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

import jcnn
from jcnn._pallas_base import TileSizes
from jcnn.conv_geometry import Geometry
from jcnn.conv_pallas import forward_pallas
from jcnn.conv_pallas_depthwise import forward_pallas_depthwise, weight_grad_pallas_depthwise
from jcnn.conv_pallas_dgrad import input_grad_pallas
from jcnn.conv_pallas_wgrad import weight_grad_pallas
from jcnn.padding import ntuple, padding_pairs

from .gpu import LAYERS, time_alternated
from .lax_twin import lax_conv

PALLAS = jcnn.ConvPlan("pallas", "pallas", "pallas")

# x shape, w shape, stride, padding, dilation, groups, dtype
CHECK_CASES = [
    ((2, 9, 11, 5), (3, 3, 5, 7), 1, "SAME", 1, 1, "float32"),
    ((2, 12, 10, 8), (3, 3, 8, 16), 2, "SAME", 1, 1, "float32"),
    ((1, 13, 13, 4), (3, 2, 4, 6), (2, 3), ((1, 2), (0, 1)), 1, 1, "float32"),
    ((2, 15, 14, 6), (3, 3, 6, 5), 1, "VALID", 2, 1, "float32"),
    ((2, 10, 10, 8), (3, 3, 4, 6), 1, "SAME", 1, 2, "float32"),
    ((2, 11, 11, 8), (3, 3, 1, 8), 1, "SAME", 1, 8, "float32"),
    ((2, 11, 11, 4), (5, 5, 1, 8), 2, "SAME", 1, 4, "float32"),
    ((3, 17, 6), (5, 6, 9), 2, "SAME", 1, 1, "float32"),
    ((2, 28, 28, 64), (3, 3, 64, 64), 1, "SAME", 1, 1, "float32"),
    ((2, 14, 14, 32), (3, 3, 32, 48), 2, "SAME", 1, 1, "bfloat16"),
    ((2, 9, 9, 16), (3, 3, 1, 16), 1, "SAME", 1, 16, "bfloat16"),
]

# positions per tile, output channels per tile, contracted chunk, warps, stages; the first
# three are the forward's, dX's and dW's defaults (the offline H200 compile's choices)
CONFIGS = [TileSizes(*c) for c in [
    (64, 64, 64, 4, 3), (64, 64, 32, 4, 3), (128, 64, 32, 4, 3), (128, 64, 64, 4, 3),
    (64, 128, 64, 4, 3), (128, 128, 32, 8, 3), (64, 64, 64, 8, 3), (128, 64, 32, 8, 2)]]


def kernels(geo, tile, interpret=False):
    """The forward, dX and dW kernels of ``geo`` (depthwise or not) with ``tile``,
    compiled for a GPU unless ``interpret``: ``{"fwd" | "dx" | "dw": f(x, w, g)}``."""
    fwd = forward_pallas_depthwise if geo.depthwise else forward_pallas
    dw = weight_grad_pallas_depthwise if geo.depthwise else weight_grad_pallas
    kw = dict(precision=None, interpret=interpret, tile=tile)
    return {"fwd": lambda x, w, g: fwd(x, w, geo, **kw),
            "dx": lambda x, w, g: input_grad_pallas(g, w, geo, **kw),
            "dw": lambda x, w, g: dw(x, g, geo, **kw)}


def tag(tile):
    return "/".join(str(getattr(tile, f)) for f in ("positions", "out", "chunk", "num_warps",
                                                    "num_stages"))


def check():
    failures = 0
    for xs, ws, stride, padding, dilation, groups, dtype in CHECK_CASES:
        rng = np.random.default_rng(0)
        x = jnp.asarray(rng.standard_normal(xs), dtype)
        w = jnp.asarray(rng.standard_normal(ws) * 0.3, dtype)
        nd = len(xs) - 2
        st, dl = ntuple(stride, nd, "stride", "c"), ntuple(dilation, nd, "dilation", "c")
        pads = tuple(padding_pairs(padding, xs[1:-1], ws[:-2], st, dl))
        kw = dict(stride=st, padding=pads, dilation=dl, groups=groups)

        def both(f):
            def run(x, w, ct):
                y, vjp = jax.vjp(f, x, w)
                return (y, *vjp(ct))
            return jax.jit(run)

        ours = both(lambda x, w: jcnn.conv(x, w, plan=PALLAS, precision="highest", **kw))
        ref = both(lambda x, w: lax_conv(x, w, precision=jax.lax.Precision.HIGHEST, **kw))
        y_shape = jax.eval_shape(lambda x, w: lax_conv(x, w, **kw), x, w).shape
        ct = jnp.asarray(rng.standard_normal(y_shape), dtype)
        tol = 1e-4 if dtype == "float32" else 2e-2
        try:
            got, want = ours(x, w, ct), ref(x, w, ct)
            errs = [float(jnp.max(jnp.abs(a.astype(jnp.float32) - b.astype(jnp.float32)))
                         / max(float(jnp.max(jnp.abs(b.astype(jnp.float32)))), 1e-30))
                    for a, b in zip(got, want)]
            shapes_ok = all(a.shape == b.shape and a.dtype == b.dtype for a, b in zip(got, want))
            ok = shapes_ok and max(errs) <= tol
            msg = " ".join(f"{n} {e:.1e}" for n, e in zip(("y", "dx", "dw"), errs))
        except Exception as e:  # noqa: BLE001 - report every case
            ok, msg = False, f"{type(e).__name__}: {str(e)[:300]}"
        failures += not ok
        print(f"check {'ok  ' if ok else 'FAIL'} x{xs} w{ws} s{stride} p{padding} d{dilation} "
              f"g{groups} {dtype}: {msg}", flush=True)
    print(f"check: {len(CHECK_CASES) - failures}/{len(CHECK_CASES)} cases ok", flush=True)
    return failures


def tune(deadline, dtypes=("float32", "bfloat16")):
    start, results = time.perf_counter(), []
    for dtype in dtypes:
        for name, xs, ws, stride, groups in LAYERS:
            if time.perf_counter() - start > deadline:
                print("tune: deadline reached", flush=True)
                return results
            rng = np.random.default_rng(0)
            x = jnp.asarray(rng.standard_normal(xs), dtype)
            w = jnp.asarray(rng.standard_normal(ws) * 0.05, dtype)
            st = ntuple(stride, 2, "stride", "t")
            pads = tuple(padding_pairs("SAME", xs[1:-1], ws[:-2], st))
            geo = Geometry(xs, ws, st, pads, (1, 1), groups)
            g = jnp.asarray(rng.standard_normal((xs[0], *geo.out_shape, ws[-1])), dtype)
            kw = dict(stride=stride, padding=pads, groups=groups)
            _, vjp = jax.vjp(lambda x, w: lax_conv(x, w, **kw), x, w)
            fns = {"lax fwd": jax.jit(lambda x, w, g: lax_conv(x, w, **kw)),
                   "lax dx": jax.jit(lambda x, w, g: vjp(g)[0]),
                   "lax dw": jax.jit(lambda x, w, g: vjp(g)[1])}
            for config in CONFIGS if not geo.depthwise else CONFIGS[:3]:
                for kind, f in kernels(geo, config).items():
                    jf = jax.jit(f)
                    try:
                        t0 = time.perf_counter()
                        jax.block_until_ready(jf(x, w, g))
                        fns[f"{kind} {tag(config)}"] = jf
                        print(f"  {name} {dtype} {kind} {tag(config)}: compiled in "
                              f"{time.perf_counter() - t0:.1f} s", flush=True)
                    except Exception as e:  # noqa: BLE001 - report and go on
                        print(f"  {name} {dtype} {kind} {tag(config)} failed: "
                              f"{type(e).__name__}: {str(e)[:200]}", flush=True)
            ms = {k: v * 1e3 for k, v in time_alternated(fns, (x, w, g), 5).items()}
            results.append({"name": name, "dtype": dtype, "ms": ms})
            for kind in ("fwd", "dx", "dw"):
                parts = sorted((v, k) for k, v in ms.items() if k.endswith(kind)
                               or k.startswith(kind))
                print(f"{name} [{dtype}] {kind}: " + "  ".join(f"{k} {v:.3f}" for v, k in parts),
                      flush=True)
    return results


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("steps", nargs="*", default=["check", "tune"])
    p.add_argument("--json", default=None)
    p.add_argument("--deadline", type=float, default=240.0)
    p.add_argument("--dtypes", default="float32,bfloat16")
    args = p.parse_args(argv if argv is not None else sys.argv[1:])
    out, rc = {}, 0
    if "check" in args.steps:
        rc = int(check() > 0)
    if "tune" in args.steps:
        out["tune"] = tune(args.deadline, tuple(args.dtypes.split(",")))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
    return rc


if __name__ == "__main__":
    sys.exit(main())
