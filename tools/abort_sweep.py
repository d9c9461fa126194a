"""Find conv shapes that make XLA abort the process while compiling.

``python tools/abort_sweep.py [--kind conv|transpose] [--cases 2000] [--workers 2]
[--seed 0] [--out FILE]``

Each worker is a subprocess that draws cases from the test suite's own strategy
(``tests/cases.py``' ``conv_cases`` or ``transpose_cases``: the space the properties
draw from) with the test suite's JAX settings (f64 on, most optimisations off),
and for each case compiles, one at a time, the programs a property compiles.
``--kind conv`` (test_conv.py's properties):

* ``jcnn``     — jcnn's forward + VJP (f64), and its f32/bf16/f16 gradients;
* ``lax-vjp``  — the oracle: ``lax.conv_general_dilated`` and its VJP (f64; the oracle
  pads with ``jnp.pad`` first, since lax's VJP of a padded conv aborted for seed 800);
* ``lax-lowp`` — the oracle's gradient of bf16-rounded inputs, in f64.

``--kind transpose`` (test_conv_transpose.py's):

* ``jcnn``        — jcnn's ``conv_transpose`` forward + VJP (f64);
* ``lax-dilated`` — the oracle ``conv_general_dilated`` with ``lhs_dilation``;
* ``lax-adjoint`` — the oracle as lax's VJP of the forward conv, and the gradients
  from the adjoint identity (lax's conv of the cotangent and its VJP in ``w``).

Before each compile the worker prints the case and the part; when a worker dies
(XLA's ``CHECK`` failures abort the process: no Python exception), the parent
records the last case and part it printed and starts a new worker after it.
The result says which program aborts, for which shapes.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TESTS = os.path.join(ROOT, "tests")  # the suite's strategies (cases.py) and oracles


def _transpose_parts(c):
    """The programs of test_conv_transpose.py's property, one per part."""
    import jax
    import numpy as np
    from oracles import lax_conv, lax_conv_transpose

    import jcnn

    rng = np.random.default_rng(c["seed"])
    x = rng.standard_normal(c["x"])
    w = rng.standard_normal((*c["window"], c["cog"], c["x"][-1]))
    geo = dict(stride=c["stride"], dilation=c["dilation"], groups=c["groups"])

    def ours(x, w):
        y, vjp = jax.vjp(lambda x, w: jcnn.conv_transpose(
            x, w, padding=c["pads"], output_padding=c["output_padding"], **geo), x, w)
        return [y, *vjp(y)]

    def dilated(x, w):
        return lax_conv_transpose(x, w, pads=c["pads"], output_padding=c["output_padding"],
                                  **geo)

    y_shape = jax.eval_shape(ours, x, w)[0].shape

    def adjoint(x, w):
        ct = jax.numpy.ones(y_shape, x.dtype)
        u = jax.numpy.zeros((*y_shape[:-1], w.shape[-2] * c["groups"]), x.dtype)
        t = jax.vjp(lambda u: lax_conv(u, w, padding=c["pads"], **geo), u)[1](x)[0]
        dx = lax_conv(ct, w, padding=c["pads"], **geo)
        dw = jax.vjp(lambda w: lax_conv(ct, w, padding=c["pads"], **geo), w)[1](x)[0]
        return [t, dx, dw]

    return {"jcnn": ours, "lax-dilated": dilated, "lax-adjoint": adjoint}, (x, w)


def worker(seed: int, count: int, kind: str = "conv") -> None:
    sys.path[:0] = [TESTS, ROOT]
    import jax

    jax.config.update("jax_enable_x64", True)
    jax.config.update("jax_disable_most_optimizations", True)
    import jax.numpy as jnp
    import numpy as np
    from cases import conv_cases, transpose_cases
    from hypothesis import HealthCheck, given, settings
    from oracles import lax_conv

    import jcnn

    def lax_fn(case):
        return lambda x, w: lax_conv(x, w, stride=case.stride, padding=case.pads,
                                     dilation=case.dilation, groups=case.groups)

    def parts(case):
        x, w, _ = case.arrays()
        kw = case.kwargs()

        def ours(x, w):
            y, vjp = jax.vjp(lambda x, w: jcnn.conv(x, w, **kw), x, w)
            out = [y, *vjp(y)]
            for dt in (jnp.float32, jnp.bfloat16, jnp.float16):
                out += jax.grad(lambda x, w: jnp.sum(jcnn.conv(x, w, **kw).astype(jnp.float32)),
                                (0, 1))(x.astype(dt), w.astype(dt))
            return out

        ref = lax_fn(case)

        def ref_vjp(x, w):
            y, vjp = jax.vjp(ref, x, w)
            return [y, *vjp(y)]

        def ref_lowp(x, w):
            xr = x.astype(jnp.bfloat16).astype(jnp.float64)
            wr = w.astype(jnp.bfloat16).astype(jnp.float64)
            return jax.grad(lambda x, w: jnp.sum(ref(x, w)), (0, 1))(xr, wr)

        return {"jcnn": ours, "lax-vjp": ref_vjp, "lax-lowp": ref_lowp}, (x, w)

    @settings(max_examples=count, database=None, deadline=None, derandomize=False,
              suppress_health_check=list(HealthCheck))
    @given(transpose_cases() if kind == "transpose" else conv_cases())
    def run(case):
        fns, args = _transpose_parts(case) if kind == "transpose" else parts(case)
        for name, fn in fns.items():
            print("CASE", json.dumps({"part": name, "case": repr(case)}), flush=True)
            try:
                jax.jit(fn).lower(*args).compile()
            except Exception as e:  # noqa: BLE001 - an ordinary error is not an abort
                print("ERROR", json.dumps({"part": name, "case": repr(case),
                                           "error": f"{type(e).__name__}: {e}"[:300]}),
                      flush=True)
        print("OK", flush=True)

    np.random.seed(seed)
    from hypothesis import seed as hseed

    hseed(seed)(run)()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--kind", choices=("conv", "transpose"), default="conv",
                   help="which properties' programs: conv's or conv_transpose's")
    p.add_argument("--cases", type=int, default=2000, help="cases per worker run")
    p.add_argument("--workers", type=int, default=1, help="worker runs (seeds) in all")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="write the aborts found here (JSON)")
    p.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker is not None:
        worker(args.worker, args.cases, args.kind)
        return
    aborts, compiled = [], 0
    for k in range(args.workers):
        seed = args.seed + k
        log = f"{args.out or 'abort_sweep'}.seed{seed}.log"  # progress, readable while it runs
        with open(log, "w") as out:
            proc = subprocess.run([sys.executable, __file__, "--worker", str(seed), "--cases",
                                   str(args.cases), "--kind", args.kind], stdout=out,
                                  stderr=subprocess.PIPE,
                                  text=True)
        with open(log) as f:
            lines = f.read().splitlines()
        compiled += sum(line == "OK" for line in lines)
        last = next((json.loads(line[5:]) for line in reversed(lines)
                     if line.startswith("CASE ")), None)
        errors = [json.loads(line[6:]) for line in lines if line.startswith("ERROR ")]
        for e in errors:
            print(f"seed {seed}: error (not an abort) in {e['part']}: {e['case']}: "
                  f"{e['error']}", flush=True)
        killed = proc.returncode < 0 or proc.returncode == 134
        if killed and lines and lines[-1].startswith("CASE "):
            tail = proc.stderr.strip().splitlines()[-3:]
            aborts.append({"seed": seed, "returncode": proc.returncode, **last,
                           "stderr": tail})
            print(f"seed {seed}: ABORT ({proc.returncode}) in {last['part']}: {last['case']}\n"
                  + "\n".join(tail), flush=True)
        elif proc.returncode != 0:
            print(f"seed {seed}: worker failed ({proc.returncode}):\n{proc.stderr[-2000:]}",
                  flush=True)
        else:
            print(f"seed {seed}: {sum(line == 'OK' for line in lines)} cases compiled, "
                  "no abort", flush=True)
    print(f"{compiled} cases compiled in all, {len(aborts)} aborts")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(aborts, f, indent=1)


if __name__ == "__main__":
    main()
