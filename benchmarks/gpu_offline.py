"""The GPU table compiled for an H200 without a GPU: ``python -m benchmarks.gpu_offline``.

Needs jax/jaxlib 0.11.x with ``jax-cuda12-plugin`` and ``jax-cuda12-pjrt`` (Python ≥ 3.12;
``make gpu-offline`` makes that virtual environment), and no GPU or driver: XLA compiles for
the target described in ``H200_TARGET`` ("deviceless" compile) with its own Triton and
ptxas.  For each layer of ``benchmarks.gpu.LAYERS`` (batch 64) and each dtype, one
subprocess compiles the forward + backward program (``y, vjp = jax.vjp(conv, x, w)``
returning ``y`` and both gradients for a dense cotangent) of jcnn's CUDA plan, another that
of ``lax.conv_general_dilated`` (cuDNN), each dumping its optimized HLO, thunk sequence and
ptxas log; ``benchmarks.gpu_offline_parse`` reads them into one row per kernel (grid,
threads, registers, shared memory, spills, blocks per SM, waves, HBM bytes).

Options: ``--layers l56 dw`` (names or aliases in ``ALIASES``), ``--dtype float32
bfloat16``, ``--plan pallas,pallas,pallas`` (force a ``jcnn.ConvPlan``), ``--json PATH``,
``--write-benchmarks`` (rewrite BENCHMARKS.md's ``gpu-offline`` section), ``--check`` (exit 1
when jcnn's program does not compile, a kernel fits no SM or a Pallas kernel spills; a spill
in XLA's own fusions fails too with ``--strict``: the CI guard), ``--no-lax`` (jcnn only),
``--no-kernels`` (no per-kernel tables), ``--src CHECKOUT`` (measure another checkout's
jcnn), ``--keep DIR`` (keep the dumps and logs), ``--jobs N``.
What this cannot tell: time.  Bytes, launches, occupancy and waves are its proxies.
"""

from __future__ import annotations

import argparse
import ast
import concurrent.futures
import glob
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

from . import gpu_offline_parse as parse

H200_TARGET = """\
gpu_device_info {
  threads_per_block_limit: 1024
  threads_per_warp: 32
  shared_memory_per_block: 49152
  shared_memory_per_core: 233472
  threads_per_core_limit: 2048
  core_count: 132
  fpus_per_core: 128
  block_dim_limit_x: 2147483647
  block_dim_limit_y: 65535
  block_dim_limit_z: 65535
  memory_bandwidth: 4800000000000
  l2_cache_size: 52428800
  clock_rate_ghz: 1.98
  device_memory_size: 150000000000
  shared_memory_per_block_optin: 232448
  cuda_compute_capability {
    major: 9
  }
  registers_per_core_limit: 65536
  registers_per_block_limit: 65536
}
platform_name: "CUDA"
dnn_version_info {
  major: 9
  minor: 8
}
runtime_version {
  major: 12
  minor: 8
  patch: 0
}
device_description_str: "NVIDIA H200"
"""
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# the names shared/gpu-offline/offline.py gave the GPU table's layers
ALIASES = {"stem": "224x3-7x7-s2", "l56": "56x64", "l28": "28x128", "l14": "14x256",
           "l7": "7x512", "p1x1": "56x256-1x1", "s2": "56x128-s2", "dw": "56x144-dw",
           "tiny": "16x8", "tiny-dw": "16x8-dw"}


def layer_name(x_shape, w_shape, stride, groups) -> str:
    """``56x64``, ``224x3-7x7-s2``, ``56x144-dw``: input size × channels, then what differs
    from a 3×3 stride-1 dense convolution."""
    name = f"{x_shape[1]}x{x_shape[-1]}"
    if tuple(w_shape[:-2]) != (3, 3):
        name += "-" + "x".join(map(str, w_shape[:-2]))
    if stride != 1:
        name += f"-s{stride}"
    if groups != 1:
        name += "-dw" if w_shape[-2] == 1 else f"-g{groups}"
    return name


def layers() -> dict[str, tuple]:
    """``name → (label, x shape, w shape, stride, groups)``: ``LAYERS`` and ``QUICK_LAYERS`` of
    ``benchmarks/gpu.py`` (the GPU suite's table and its two tiny layers), read from its
    source so that listing them imports neither jax nor jcnn."""
    tree = ast.parse(open(os.path.join(ROOT, "benchmarks", "gpu.py")).read())
    found = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 \
                and getattr(node.targets[0], "id", None) in ("LAYERS", "QUICK_LAYERS"):
            found[node.targets[0].id] = ast.literal_eval(node.value)
    return {layer_name(*spec[1:]): spec for spec in found["LAYERS"] + found["QUICK_LAYERS"]}


# ---------------------------------------------------------------- the child: one compile
def _child(spec: dict) -> dict:
    """Compile one program for the H200 target; runs in its own process (XLA_FLAGS with the
    dump directory are set by the parent before jax is imported)."""
    if spec.get("src"):  # measure another checkout's jcnn
        sys.path.insert(0, os.path.abspath(spec["src"]))
    import jax
    import jax.numpy as jnp
    from jax.experimental import topologies
    from jax.sharding import (
        AbstractDevice,
        AbstractMesh,
        AxisType,
        SingleDeviceSharding,
        use_abstract_mesh,
    )

    import jcnn

    jax.config.update("jax_platforms", "cpu")
    topo = topologies.get_topology_desc(platform="cuda", target_config=H200_TARGET,
                                        topology="1x1x1")
    sh = SingleDeviceSharding(topo.devices[0])
    xs, ws, stride, groups = tuple(spec["x"]), tuple(spec["w"]), spec["stride"], spec["groups"]
    dt = jnp.dtype(spec["dtype"])
    nd = len(xs) - 2
    pads = same_pads(xs, ws, stride)
    kw = dict(stride=stride, padding=pads, groups=groups)
    if spec["who"] == "lax":  # what a user writes: the pads handed to cuDNN
        dn = ("N" + "DHW"[3 - nd:] + "C", "DHW"[3 - nd:] + "IO", "N" + "DHW"[3 - nd:] + "C")
        conv = lambda x, w: jax.lax.conv_general_dilated(  # noqa: E731
            x, w, (stride,) * nd, pads, dimension_numbers=dn, feature_group_count=groups)
    else:
        plan = jcnn.ConvPlan(*spec["plan"]) if spec.get("plan") else None
        conv = lambda x, w: jcnn.conv(x, w, plan=plan, **kw)  # noqa: E731

    def fwd_bwd(x, w, ct):
        y, vjp = jax.vjp(conv, x, w)
        return (y, *vjp(ct))

    res = {"ok": False, "plan": plan_text(spec)}
    t = time.perf_counter()
    try:
        y = jax.eval_shape(conv, jax.ShapeDtypeStruct(xs, dt), jax.ShapeDtypeStruct(ws, dt))
        args = [jax.ShapeDtypeStruct(s, dt, sharding=sh) for s in (xs, ws, y.shape)]
        dev = AbstractDevice(device_kind="NVIDIA H200", num_cores=132, platform="cuda")
        mesh = AbstractMesh((1,), ("x",), (AxisType.Explicit,), abstract_device=dev)
        with use_abstract_mesh(mesh):
            lowered = jax.jit(fwd_bwd).trace(*args).lower()
        compiled = lowered.compile()
        res["ok"] = True
        mem = compiled.memory_analysis()
        res["temp_bytes"] = getattr(mem, "temp_size_in_bytes", None) if mem is not None else None
    except Exception as e:  # noqa: BLE001 - a kernel that does not fit is a result
        res["error"] = f"{type(e).__name__}: {e}"[:2000]
    res["compile_s"] = round(time.perf_counter() - t, 1)
    return res


# ---------------------------------------------------------------- the parent
def _first(dump, pattern):
    files = sorted(glob.glob(os.path.join(dump, pattern)))
    return open(files[0]).read() if files else ""


def _tail(log: str, n: int = 1500) -> str:
    """The end of a child's output without XLA's info lines."""
    keep = [ln for ln in log.splitlines() if not re.match(r"[IW]\d{4} |WARNING: All log", ln)]
    return "\n".join(keep)[-n:]


def compile_program(spec: dict, python: str, timeout: float, keep: str | None = None) -> dict:
    """Run one compile in a subprocess and read its dumps into kernel rows."""
    dump = tempfile.mkdtemp(prefix=f"gpu_offline_{spec['who']}_")
    env = dict(os.environ, JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="0",
               TF_CPP_VMODULE="subprocess_compilation=3",
               PYTHONPATH=os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")])),
               XLA_FLAGS=os.environ.get("XLA_FLAGS", "")
               + f" --xla_dump_to={dump} --xla_dump_hlo_as_text")
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    try:
        r = subprocess.run([python, "-m", "benchmarks.gpu_offline", "--child", json.dumps(spec)],
                           env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
        out, log = r.stdout, r.stderr
    except subprocess.TimeoutExpired as e:
        out, log = "", f"timed out after {timeout:.0f} s\n" + (e.stderr or b"").decode()[-2000:]
    lines = [ln for ln in out.splitlines() if ln.startswith("RESULT ")]
    res = json.loads(lines[-1][7:]) if lines else {
        "ok": False, "error": "the compile process died: " + _tail(log + out)}
    res["ptxas_version"] = parse.ptxas_version(log)
    hlo = _first(dump, "*after_optimizations.txt")
    seq = _first(dump, "*thunk_sequence.txt")
    res["rows"] = (parse.kernel_rows(hlo, seq, _first(dump, "*thunk_metadata.txt"), log)
                   if res["ok"] and hlo and seq else [])
    res["summary"] = parse.summarize(res["rows"])
    if keep:
        dest = os.path.join(keep, f"{spec['name']}_{spec['dtype']}_{spec['who']}")
        shutil.rmtree(dest, ignore_errors=True)
        shutil.copytree(dump, dest)
        open(os.path.join(dest, "compile.log"), "w").write(log)
    shutil.rmtree(dump, ignore_errors=True)
    return res


def plan_text(spec: dict) -> str:
    """The plan jcnn's CUDA policy picks for the layer (or the forced one)."""
    if spec.get("plan"):
        return "forced " + ",".join(map(str, spec["plan"]))
    try:
        import jax.numpy as jnp

        from jcnn import conv_plan
        try:
            from jcnn.conv_geometry import Geometry
        except ImportError:  # before jcnn/conv_geometry.py
            from jcnn.conv_arrangements import Geometry
        nd = len(spec["x"]) - 2
        geo = Geometry(tuple(spec["x"]), tuple(spec["w"]), (spec["stride"],) * nd,
                       same_pads(spec["x"], spec["w"], spec["stride"]), (1,) * nd,
                       spec["groups"])
        p = conv_plan.plan(geo, jnp.dtype(spec["dtype"]), "cuda")
        return f"{p.forward},{p.input_grad},{p.weight_grad}" + (f" b{p.block}" if p.block else "")
    except Exception as e:  # noqa: BLE001 - the table still prints without it
        return f"? ({type(e).__name__})"


def same_pads(x, w, stride) -> tuple:
    """``SAME`` padding per spatial dim, as lax and jcnn split it (the smaller half first)."""
    out = []
    for n, k in zip(x[1:-1], w[:-2]):
        total = max((-(-n // stride) - 1) * stride + k - n, 0)
        out.append((total // 2, total - total // 2))
    return tuple(out)


def flop(x, w, stride, groups) -> int:
    """FLOPs of forward + dX + dW: three times the forward's multiply-adds × 2."""
    out = [-(-s // stride) for s in x[1:-1]]  # SAME padding
    return 3 * 2 * x[0] * math.prod(out) * w[-1] * math.prod(w[:-1])


def run_layer(name, spec, dtype, args) -> dict:
    label, xs, ws, stride, groups = spec
    base = {"name": name, "x": list(xs), "w": list(ws), "stride": stride, "groups": groups,
            "dtype": dtype, "plan": args.plan, "src": args.src}
    f = flop(xs, ws, stride, groups)
    result = {"layer": name, "label": label, "dtype": dtype, "flop": f}
    for who in ("jcnn", "lax"):
        if who == "lax" and args.no_lax:
            result[who] = {"ok": False, "error": "not compiled (--no-lax)", "rows": [],
                           "summary": parse.summarize([])}
            continue
        r = compile_program(dict(base, who=who), args.python, args.timeout, args.keep)
        if who == "jcnn":
            result["plan"] = r.get("plan", "?")
        r["roofline"] = parse.roofline(r["summary"]["hbm_bytes"], f, dtype)
        result[who] = r
    j, lx = result["jcnn"], result["lax"]
    result["bytes_ratio"] = (j["summary"]["hbm_bytes"] / lx["summary"]["hbm_bytes"]
                             if j["ok"] and lx["ok"] and lx["summary"]["hbm_bytes"] else None)
    return result


def _print_result(r, kernels):
    j = r["jcnn"]
    print("  ".join(parse.layer_table([r])[1]), flush=True)
    if kernels:
        for who in ("jcnn", "lax"):
            if r[who]["rows"]:
                print(f"  {who} kernels ({r['layer']} {r['dtype']}):")
                print("    " + parse.text_table(parse.kernel_table(r[who]["rows"]))
                      .replace("\n", "\n    "), flush=True)
    if not j["ok"]:
        print("  jcnn does not compile: " + j.get("error", "")[-1500:].replace("\n", "\n    "),
              flush=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.gpu_offline", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--layers", nargs="+", default=None,
                    help="layer names (default: the GPU table); aliases: "
                         + ", ".join(f"{k}={v}" for k, v in ALIASES.items()))
    ap.add_argument("--dtype", nargs="+", default=["float32", "bfloat16"])
    ap.add_argument("--plan", type=lambda s: [int(v) if v.isdigit() else v for v in s.split(",")],
                    help="force jcnn.ConvPlan(fwd, dx, dw[, block]), e.g. pallas,pallas,pallas")
    ap.add_argument("--json", help="write every result (kernel rows included) here")
    ap.add_argument("--write-benchmarks", nargs="?", const="BENCHMARKS.md", default=None,
                    metavar="PATH", help="rewrite the gpu-offline section of PATH "
                                         "(default BENCHMARKS.md)")
    ap.add_argument("--check", action="store_true",
                    help="exit 1 when a kernel of jcnn's program does not compile, spills or "
                         "fits no SM")
    ap.add_argument("--strict", action="store_true",
                    help="with --check: a spill in any kernel fails (default: Pallas kernels)")
    ap.add_argument("--no-lax", action="store_true", help="compile jcnn's program only")
    ap.add_argument("--no-kernels", action="store_true", help="omit the per-kernel tables")
    ap.add_argument("--jobs", type=int, default=1, help="layers compiled at once")
    ap.add_argument("--python", default=sys.executable, help="the Python that compiles")
    ap.add_argument("--timeout", type=float, default=900, help="seconds per compile")
    ap.add_argument("--keep", help="copy each compile's dumps and log under this folder")
    ap.add_argument("--src", help="measure the jcnn of this checkout (default: this one)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print("RESULT " + json.dumps(_child(json.loads(args.child))), flush=True)
        return 0

    table = layers()
    names = [ALIASES.get(n, n) for n in (args.layers or [n for n in table if "16x" not in n])]
    unknown = [n for n in names if n not in table]
    if unknown:
        ap.error(f"unknown layers {unknown}; expected names from {sorted(table)} "
                 f"or aliases {sorted(ALIASES)}")
    for dt in args.dtype:
        if dt not in ("float32", "bfloat16", "float16"):
            ap.error(f"--dtype {dt!r}: expected float32, bfloat16 or float16")
    t0 = time.time()
    todo = [(n, dt) for dt in args.dtype for n in names]
    print(parse.text_table(parse.layer_table([])), flush=True)
    with concurrent.futures.ThreadPoolExecutor(max(1, args.jobs)) as pool:
        futures = [pool.submit(run_layer, n, table[n], dt, args) for n, dt in todo]
        results = []
        for fut in futures:
            results.append(fut.result())
            _print_result(results[-1], not args.no_kernels)
    print()
    print(parse.text_table(parse.layer_table(results)))
    for dt, g in parse.geomeans(results).items():
        if not g["layers"]:
            continue
        print(f"{dt}: geometric mean over {g['layers']} layers, jcnn/lax: HBM bytes "
              f"{g['bytes']:.2f}, kernels {g['kernels']:.2f}, roofline time {g['roofline']:.2f}")
    versions = {r[w].get("ptxas_version") for r in results for w in ("jcnn", "lax")} - {None}
    print(f"{len(todo)} layer×dtype in {time.time() - t0:.0f} s; "
          f"ptxas {', '.join(sorted(versions)) or '?'}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    if args.write_benchmarks:
        cmd = "python -m benchmarks.gpu_offline" + (
            f" --plan {','.join(map(str, args.plan))}" if args.plan else "") + (
            f" --layers {' '.join(args.layers)}" if args.layers else "") + (
            f" --dtype {' '.join(args.dtype)}" + " --write-benchmarks")
        from importlib.metadata import version
        meta = f"jax {version('jax')}, ptxas {', '.join(sorted(versions)) or '?'}."
        path = args.write_benchmarks
        text = open(path).read() if os.path.exists(path) else ""
        with open(path, "w") as f:
            f.write(parse.replace_section(text, parse.render(results, cmd, meta)))
        print(f"wrote the gpu-offline section of {path}")
    if args.check:
        fails, warns = [], []
        for r in results:
            f, w = parse.problems(r, strict=args.strict)
            fails += f
            warns += w
        for w in warns:
            print("gpu-offline check warning: " + w)
        for f in fails:
            print("gpu-offline check FAILED: " + f)
        if fails:
            return 1
        print(f"gpu-offline check: {len(results)} programs of jcnn compile for an H200, every "
              "kernel fits an SM, no Pallas kernel spills"
              + (", no kernel spills" if args.strict else f" ({len(warns)} XLA spill warnings)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
