"""Time every arrangement of the windowed sums, each part on its own:
``python -m benchmarks.arrangements [--suite cpu|gpu] [--dtype float32|bfloat16]
[--blocks] [--quick] [--json FILE] [--render FILE] [--write-policy]`` — the measurements
behind the policies of :mod:`jcnn.conv_plan`.  A GPU sweep's ``--json`` goes to
``benchmarks/measured/`` and ``--write-policy`` regenerates ``jcnn/conv_policy_table.py``
from what is there (:mod:`benchmarks.policy`).

Per layer: lax's forward, dX and dW (the VJP of ``lax.conv_general_dilated``
taking one cotangent, its two halves timed apart), then every registered
forward, input-gradient and weight-gradient arrangement at the block size the
plan would give it (``--blocks`` adds the whole batch and blocks of 1/4 of it).
"""

from __future__ import annotations

import argparse
import json
import sys

import jax
import jax.numpy as jnp
import numpy as np

from jcnn import conv_arrangements as arr
from jcnn import conv_plan
from jcnn.conv_geometry import Geometry
from jcnn.convolution import _nested
from jcnn.padding import ntuple, padding_pairs

from .gpu import LAYERS, QUICK_LAYERS, time_alternated
from .lax_twin import lax_conv


def _cpu_layers(n):
    from .__main__ import conv_suite

    return [(s.name, s.x, s.w, s.stride, s.groups) for s in conv_suite(n)]


def sweep(layers, dtype, platform, blocks=False, rounds=10):
    results = []
    for name, x_shape, w_shape, stride, groups in layers:
        rng = np.random.default_rng(0)
        jdt = jnp.dtype(dtype)
        x = jnp.asarray(rng.standard_normal(x_shape), jdt)
        w = jnp.asarray(rng.standard_normal(w_shape) * 0.05, jdt)
        nd = len(x_shape) - 2
        st = ntuple(stride, nd, "stride", "bench")
        pads = tuple(padding_pairs("SAME", x_shape[1:-1], w_shape[:-2], st))
        geo = Geometry(tuple(x_shape), tuple(w_shape), st, pads, (1,) * nd, groups)
        g = jnp.asarray(rng.standard_normal((x_shape[0], *geo.out_shape, w_shape[-1])), jdt)
        chosen = conv_plan.plan(geo, jdt, platform)
        kw = dict(stride=stride, padding=pads, groups=groups)
        _, vjp_x = jax.vjp(lambda x: lax_conv(x, w, **kw), x)
        _, vjp_w = jax.vjp(lambda w: lax_conv(x, w, **kw), w)
        fns = {"lax fwd": (jax.jit(lambda x, w, g: lax_conv(x, w, **kw))),
               "lax dx": jax.jit(lambda x, w, g: vjp_x(g)[0]),
               "lax dw": jax.jit(lambda x, w, g: vjp_w(g)[0])}
        block_opts = [chosen.block]
        if blocks:
            block_opts += [b for b in (0, max(x_shape[0] // 4, 1)) if b not in block_opts]
        common = dict(precision=None, platforms=(platform,), conv=_nested)
        for b in block_opts:
            tag = "" if b == chosen.block else f" b={b or 'all'}"
            for kind, table in (("fwd", arr.FORWARD), ("dx", arr.INPUT_GRAD),
                                ("dw", arr.WEIGHT_GRAD)):
                for pname, fn in table.items():
                    if fn.supports(geo, jdt) is not None:
                        continue
                    if pname == "pallas" and platform not in ("cuda", "rocm"):
                        continue  # interpret mode elsewhere: a test tool, not a contender
                    if tag and pname in ("offsets", "scan", "shift", "depthwise", "fullconv",
                                         "pallas") \
                            and kind != "dw":
                        continue  # those ignore the block
                    if kind == "fwd":
                        f = jax.jit(lambda x, w, g, fn=fn, b=b: fn(x, w, geo, block=b, **common))
                    elif kind == "dx":
                        f = jax.jit(lambda x, w, g, fn=fn, b=b: fn(g, w, geo, block=b, **common))
                    else:
                        f = jax.jit(lambda x, w, g, fn=fn, b=b: fn(x, g, geo, block=b, **common))
                    fns[f"{kind} {pname}{tag}"] = f
        ok = {}
        for k, f in fns.items():  # an arrangement that cannot compile (memory) is skipped
            try:
                jax.block_until_ready(f(x, w, g))
                ok[k] = f
            except Exception as e:  # noqa: BLE001 - report and go on
                print(f"  {name}: {k} failed: {type(e).__name__}: {str(e)[:120]}", flush=True)
        t = time_alternated(ok, (x, w, g), rounds)
        res = {"name": name, "dtype": dtype, "x": list(x_shape), "w": list(w_shape),
               "stride": stride, "groups": groups, "plan": conv_plan.describe(
            (((platform,), chosen),)), "ms": {k: v * 1e3 for k, v in t.items()}}
        results.append(res)
        print(f"{name} [{dtype}] plan: {res['plan']}", flush=True)
        for kind in ("fwd", "dx", "dw"):
            parts = sorted((v, k) for k, v in res["ms"].items() if k.startswith(kind))
            print(f"   {kind}: " + "  ".join(f"{k[len(kind) + 1:]} {v:.3f}" for v, k in parts),
                  flush=True)
    return results


def render(results) -> str:
    """The sweep as BENCHMARKS.md's table: lax's parts, then every arrangement of
    each part fastest first, the fastest in bold."""
    lines = ["| layer | lax fwd / dX / dW | forward arrangements | dX arrangements | "
             "dW arrangements |", "|---|---|---|---|---|"]
    for res in results:
        ms = res["ms"]
        cells = [res["name"] + ("" if res["dtype"] == "float32" else f" ({res['dtype']})"),
                 " / ".join(f"{ms[f'lax {k}']:.3f}" for k in ("fwd", "dx", "dw"))]
        for kind in ("fwd", "dx", "dw"):
            parts = sorted((v, k[len(kind) + 1:]) for k, v in ms.items()
                           if k.startswith(kind + " "))
            cells.append(", ".join(f"**{k} {v:.3f}**" if i == 0 else f"{k} {v:.3f}"
                                   for i, (v, k) in enumerate(parts)))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--suite", choices=("cpu", "gpu"), default="cpu")
    p.add_argument("--dtype", default="float32")
    p.add_argument("--blocks", action="store_true", help="also other batch-block sizes")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--json", default=None, help="write the timings (ms) here")
    p.add_argument("--render", default=None, metavar="JSON",
                   help="print a --json file as BENCHMARKS.md's table, time nothing")
    p.add_argument("--write-policy", action="store_true",
                   help="regenerate jcnn/conv_policy_table.py from benchmarks/measured/, "
                        "time nothing")
    args = p.parse_args(argv if argv is not None else sys.argv[1:])
    if args.write_policy:
        from . import policy

        print(policy.write(), end="")
        return
    if args.render:
        with open(args.render) as f:
            print(render(json.load(f)), end="")
        return
    if args.suite == "gpu":
        layers, platform = (QUICK_LAYERS if args.quick else LAYERS), "cuda"
    else:
        layers, platform = (QUICK_LAYERS if args.quick else _cpu_layers(16)), "cpu"
    res = sweep(layers, args.dtype, platform, args.blocks, 3 if args.quick else 10)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
