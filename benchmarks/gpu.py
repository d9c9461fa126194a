"""The GPU suite: ``python -m benchmarks --suite gpu [--quick] [--out BENCHMARKS.md]``.

ResNet-50 / MobileNet layers (batch 64) in f32 and bf16, forward + backward
(``y, vjp = jax.vjp(conv, x, w)`` returning ``y`` and both gradients for a dense
random cotangent) and forward alone: jcnn vs ``lax.conv_general_dilated``
(cuDNN) vs PyTorch CUDA when installed, alternated in one process; compile
seconds, temp memory against the layer's input + output bytes, achieved
TFLOP/s; then a CIFAR-sized VGG train step (batch 256, adam) against its lax
twin.  On a GPU each layer also runs with the fused Pallas kernels forced
(``plan=ConvPlan("pallas", "pallas", "pallas")``: forward, dX by stride phase,
dW), in a table of its own — the measurement the plan's GPU policy waits for
before it picks them.  f32 runs at JAX's default precision on both sides (TF32
products on NVIDIA GPUs), as a user's model would.  Tests never assert on these
numbers.
"""

from __future__ import annotations

import math
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

import jcnn
from jcnn import conv_plan, nn
from jcnn.conv_geometry import Geometry
from jcnn.padding import ntuple, padding_pairs

from .contenders import time_blocks, torch_conv, torch_module
from .lax_twin import lax_conv, lax_twin

# name, x shape, w shape, stride, groups
LAYERS = [
    ("ResNet-50 stem 224²×3 7×7/2 →64", (64, 224, 224, 3), (7, 7, 3, 64), 2, 1),
    ("56²×64 3×3 →64", (64, 56, 56, 64), (3, 3, 64, 64), 1, 1),
    ("28²×128 3×3 →128", (64, 28, 28, 128), (3, 3, 128, 128), 1, 1),
    ("14²×256 3×3 →256", (64, 14, 14, 256), (3, 3, 256, 256), 1, 1),
    ("7²×512 3×3 →512", (64, 7, 7, 512), (3, 3, 512, 512), 1, 1),
    ("56²×256 1×1 →64", (64, 56, 56, 256), (1, 1, 256, 64), 1, 1),
    ("56²×128 3×3/2 →128", (64, 56, 56, 128), (3, 3, 128, 128), 2, 1),
    ("MobileNet depthwise 56²×144 3×3", (64, 56, 56, 144), (3, 3, 1, 144), 1, 144),
]
QUICK_LAYERS = [
    ("tiny 16²×8 3×3 →8", (4, 16, 16, 8), (3, 3, 8, 8), 1, 1),
    ("tiny depthwise 16²×8", (4, 16, 16, 8), (3, 3, 1, 8), 1, 8),
]
BF16_LAYERS = ("56²×64 3×3 →64", "28²×128 3×3 →128", "14²×256 3×3 →256", "7²×512 3×3 →512")

# dense peak (no sparsity) of the GPUs this suite has run on, TFLOP/s: TF32, bf16
PEAKS = {"H100": (494.7, 989.4), "H200": (494.7, 989.4), "A100": (156.0, 312.0)}


def _peak(kind):
    for name, peak in PEAKS.items():
        if name in kind:
            return peak
    return None


def time_alternated(fns, args, rounds=15, target=0.02):
    """Median seconds per call of each contender on a GPU: ``rounds`` alternating
    blocks of ~``target`` s of back-to-back calls, one wait per block
    (:func:`benchmarks.contenders.time_blocks` with ``per_call=False``)."""
    return time_blocks(fns, args, rounds=rounds, block_seconds=target, min_calls=1,
                       max_calls=200, per_call=False)


def compile_stats(fn, args):
    t = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    seconds = time.perf_counter() - t
    mem = compiled.memory_analysis()
    temp = getattr(mem, "temp_size_in_bytes", None) if mem is not None else None
    return compiled, seconds, temp


def _torch_contender(x_shape, w_shape, stride, groups, pads, dtype, rounds=15):
    """PyTorch/cuDNN's ``(fwd, fwd_bwd)`` seconds and version, or None without CUDA."""
    c = torch_conv(x_shape, w_shape, stride, pads, groups, dtype, device="cuda")
    if c is None:
        return None
    fwd, fwd_bwd, sync = c
    t = time_blocks({"fwd": fwd, "fb": fwd_bwd}, rounds=rounds, block_seconds=0.02,
                    min_calls=1, max_calls=200, per_call=False, sync=sync)
    return (t["fwd"], t["fb"]), torch_module("cuda").__version__


PALLAS = jcnn.ConvPlan("pallas", "pallas", "pallas")


def bench_layer(name, x_shape, w_shape, stride, groups, dtype, rounds, pallas=False):
    rng = np.random.default_rng(0)
    jdt = jnp.dtype(dtype)
    x = jnp.asarray(rng.standard_normal(x_shape), jdt)
    w = jnp.asarray(rng.standard_normal(w_shape) * 0.05, jdt)
    nd = len(x_shape) - 2
    stride_t = ntuple(stride, nd, "stride", "bench")
    pads = padding_pairs("SAME", x_shape[1:-1], w_shape[:-2], stride_t)
    kw = dict(stride=stride, padding=pads, groups=groups)
    fwds = {"jcnn": lambda x, w: jcnn.conv(x, w, **kw),
            "lax": lambda x, w: lax_conv(x, w, **kw)}
    if pallas:  # the fused kernels, forced (the plan does not pick them yet)
        fwds["pallas"] = lambda x, w: jcnn.conv(x, w, plan=PALLAS, **kw)
    y_shape = jax.eval_shape(fwds["lax"], x, w).shape
    ct = jnp.asarray(rng.standard_normal(y_shape), jdt)

    def fwd_bwd(f):
        def run(x, w, ct):
            y, vjp = jax.vjp(f, x, w)
            return y, *vjp(ct)
        return run

    geo = Geometry(x_shape, w_shape, stride_t, tuple(pads), (1,) * nd, groups)
    row = {"name": name, "dtype": dtype, "gflop": geo.flops / 1e9,
           "io_bytes": (math.prod(x_shape) + math.prod(y_shape)) * jdt.itemsize,
           "plan": conv_plan.describe(((("cuda",), conv_plan.plan(geo, jdt, "cuda")),))}
    fc, fbc = {}, {}
    for k, f in fwds.items():
        try:
            fc[k], row[f"compile_fwd_{k}"], _ = compile_stats(f, (x, w))
            fbc[k], row[f"compile_{k}"], row[f"temp_{k}"] = compile_stats(fwd_bwd(f), (x, w, ct))
        except Exception as e:  # noqa: BLE001 - a forced kernel that cannot compile is reported
            if k != "pallas":
                raise
            fc.pop(k, None)
            row["pallas_error"] = f"{type(e).__name__}: {str(e)[:160]}"
            print(f"  {name} [{dtype}]: pallas failed: {row['pallas_error']}", flush=True)
    for k, v in time_alternated(fc, (x, w), rounds).items():
        row[f"fwd_{k}"] = v
    for k, v in time_alternated(fbc, (x, w, ct), rounds).items():
        row[f"fb_{k}"] = v
    torch_c = _torch_contender(x_shape, w_shape, stride, groups, pads, dtype)
    if torch_c is not None:
        (row["fwd_torch"], row["fb_torch"]), row["torch_version"] = torch_c
    return row


def vgg_model():
    """CIFAR-sized VGG: conv 64-64-pool-128-128-pool-256-pool, dense 256-10."""
    c = lambda n: (nn.Conv(n, (3, 3), padding="SAME"), nn.Relu)  # noqa: E731
    return nn.serial(*c(64), *c(64), nn.MaxPool((2, 2)), *c(128), *c(128), nn.MaxPool((2, 2)),
                     *c(256), nn.MaxPool((2, 2)), nn.Flatten, nn.Dense(256), nn.Relu, nn.Dense(10))


def train_step(apply, opt):
    """One optax step of softmax cross-entropy through ``apply``: what both train-step
    benchmarks time for jcnn's model and its lax twin."""
    import optax

    def step(params, state, x, y):
        loss, g = jax.value_and_grad(
            lambda p: jcnn.softmax_cross_entropy(apply(p, x), y))(params)
        u, state = opt.update(g, state, params)
        return optax.apply_updates(params, u), state, loss
    return step


def bench_train_step(n, rounds, quick):
    import optax

    model = vgg_model()
    size = 8 if quick else 32
    _, params = model.init(jax.random.key(0), (-1, size, size, 3))
    opt = optax.adam(1e-3)
    state = opt.init(params)
    x = jnp.asarray(np.random.default_rng(2).standard_normal((n, size, size, 3)), jnp.float32)
    y = jnp.asarray(np.arange(n) % 10, jnp.int32)

    row, compiled = {"name": f"CIFAR VGG train step (batch {n}, adam)"}, {}
    for k, apply in (("jcnn", model.apply), ("lax", lax_twin(model))):
        compiled[k], row[f"compile_{k}"], row[f"temp_{k}"] = compile_stats(
            train_step(apply, opt), (params, state, x, y))
    t = time_alternated(compiled, (params, state, x, y), rounds)
    for k, v in t.items():
        row[f"step_{k}"] = v
        row[f"ips_{k}"] = n / v
    return row


def _gmean(values):
    return math.exp(statistics.fmean(math.log(v) for v in values))


def _pallas_table(sub, dtype, peak):
    """The fused Pallas kernels forced (``plan=ConvPlan("pallas", "pallas",
    "pallas")``) against lax (cuDNN), per layer."""
    pk = peak[0 if dtype == "float32" else 1] if peak else None
    lines = [f"\n#### {dtype}: the Pallas kernels forced (forward, dX by stride phase, dW)\n",
             "| layer | pallas ms | lax ms | pallas/lax | fwd pallas/lax | pallas TFLOP/s | "
             "% peak | compile s | temp MB | temp / (in+out) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in (r for r in sub if "fb_pallas" in r):
        tflops = 3 * r["gflop"] / r["fb_pallas"] / 1e3
        lines.append(
            f"| {r['name']} | {r['fb_pallas'] * 1e3:.3f} | {r['fb_lax'] * 1e3:.3f} | "
            f"**{r['fb_pallas'] / r['fb_lax']:.2f}** | {r['fwd_pallas'] / r['fwd_lax']:.2f} | "
            f"{tflops:.1f} | {f'{100 * tflops / pk:.0f}' if pk else '–'} | "
            f"{r['compile_pallas']:.2f} | {(r['temp_pallas'] or 0) / 2**20:.0f} | "
            f"{(r['temp_pallas'] or 0) / r['io_bytes']:.2f} |")
    ratios = [r["fb_pallas"] / r["fb_lax"] for r in sub if "fb_pallas" in r]
    fwd = [r["fwd_pallas"] / r["fwd_lax"] for r in sub if "fb_pallas" in r]
    lines.append(f"\n{dtype}, Pallas: geometric mean pallas/lax fwd+bwd **{_gmean(ratios):.2f}** "
                 f"(worst {max(ratios):.2f}); forward **{_gmean(fwd):.2f}** "
                 f"(worst {max(fwd):.2f}).\n")
    return lines


def render(rows, train, device):
    kind = device.device_kind
    peak = _peak(kind)
    lines = [f"Device: **{kind}** ({device.platform}); jax {jax.__version__}. Command: "
             "`python -m benchmarks --suite gpu`. Batch 64, padding SAME, contenders "
             "alternated in one process, medians of back-to-back calls. f32 at JAX's default "
             "precision (TF32 products) on both sides."
             + (f" Dense peak used for `% peak`: {peak[0]:.0f} TFLOP/s TF32, {peak[1]:.0f} "
                "bf16." if peak else "") + "\n"]
    has_torch = any("fb_torch" in r for r in rows)
    for dtype in ("float32", "bfloat16"):
        sub = [r for r in rows if r["dtype"] == dtype]
        if not sub:
            continue
        lines.append(f"\n#### {dtype}: forward + backward (y, dx, dw)\n")
        head = ["layer", "jcnn ms", "lax ms", "jcnn/lax", "fwd jcnn/lax", "jcnn TFLOP/s",
                "% peak", "compile jcnn/lax s", "temp MB jcnn/lax", "temp / (in+out)",
                "plan"]
        if has_torch:
            head[3:3] = ["torch ms"]
        lines.append("| " + " | ".join(head) + " |")
        lines.append("|" + "---|" * len(head))
        for r in sub:
            tflops = 3 * r["gflop"] / r["fb_jcnn"] / 1e3
            pk = peak[0 if dtype == "float32" else 1] if peak else None
            cells = [r["name"], f"{r['fb_jcnn'] * 1e3:.3f}", f"{r['fb_lax'] * 1e3:.3f}",
                     f"**{r['fb_jcnn'] / r['fb_lax']:.2f}**",
                     f"{r['fwd_jcnn'] / r['fwd_lax']:.2f}", f"{tflops:.1f}",
                     f"{100 * tflops / pk:.0f}" if pk else "–",
                     f"{r['compile_jcnn']:.2f} / {r['compile_lax']:.2f}",
                     f"{(r['temp_jcnn'] or 0) / 2**20:.0f} / {(r['temp_lax'] or 0) / 2**20:.0f}",
                     f"{(r['temp_jcnn'] or 0) / r['io_bytes']:.2f}", r["plan"]]
            if has_torch:
                cells[3:3] = [f"{r['fb_torch'] * 1e3:.3f}" if "fb_torch" in r else "–"]
            lines.append("| " + " | ".join(cells) + " |")
        fb = [r["fb_jcnn"] / r["fb_lax"] for r in sub]
        fw = [r["fwd_jcnn"] / r["fwd_lax"] for r in sub]
        lines.append(f"\n{dtype}: geometric mean jcnn/lax fwd+bwd **{_gmean(fb):.2f}** (worst "
                     f"{max(fb):.2f}); forward **{_gmean(fw):.2f}** (worst {max(fw):.2f}).")
        if has_torch:
            tr = [r["fb_jcnn"] / r["fb_torch"] for r in sub if "fb_torch" in r]
            lines.append(f" jcnn/torch fwd+bwd {_gmean(tr):.2f} (PyTorch "
                         f"{sub[0].get('torch_version', '?')}, cuDNN, channels_last).")
        lines.append("")
        if any("fb_pallas" in r for r in sub):
            lines += _pallas_table(sub, dtype, peak)
    if train:
        lines.append("\n#### Train step\n")
        lines.append("| step | jcnn images/s | lax twin images/s | jcnn/lax speed | "
                     "compile jcnn / lax s |")
        lines.append("|---|---|---|---|---|")
        lines.append(f"| {train['name']} | {train['ips_jcnn']:.0f} | {train['ips_lax']:.0f} | "
                     f"**{train['ips_jcnn'] / train['ips_lax']:.2f}** | "
                     f"{train['compile_jcnn']:.2f} / {train['compile_lax']:.2f} |")
    return "\n".join(lines) + "\n"


def run(quick=False, rounds=None, pallas=None):
    """``pallas``: also time the fused Pallas kernels (default: on a GPU)."""
    rounds = rounds or (3 if quick else 15)
    if pallas is None:
        pallas = jax.default_backend() in ("gpu", "cuda", "rocm")
    layers = QUICK_LAYERS if quick else LAYERS
    rows = []
    for dtype in ("float32", "bfloat16"):
        for name, xs, ws, s, g in layers:
            if dtype == "bfloat16" and not quick and name not in BF16_LAYERS:
                continue
            r = bench_layer(name, xs, ws, s, g, dtype, rounds, pallas)
            rows.append(r)
            print(f"{dtype:8s} {name:36s} fwd+bwd jcnn {r['fb_jcnn'] * 1e3:7.3f} ms  lax "
                  f"{r['fb_lax'] * 1e3:7.3f}  ratio {r['fb_jcnn'] / r['fb_lax']:.2f}  fwd "
                  f"{r['fwd_jcnn'] / r['fwd_lax']:.2f}  torch "
                  f"{r.get('fb_torch', float('nan')) * 1e3:.3f}  temp/io "
                  f"{(r['temp_jcnn'] or 0) / r['io_bytes']:.2f}  [{r['plan']}]"
                  + (f"  pallas {r['fb_pallas'] * 1e3:.3f} ms ({r['fb_pallas'] / r['fb_lax']:.2f}"
                     f" lax, fwd {r['fwd_pallas'] / r['fwd_lax']:.2f}, temp/io "
                     f"{(r['temp_pallas'] or 0) / r['io_bytes']:.2f})" if "fb_pallas" in r
                     else ""), flush=True)
    train = bench_train_step(16 if quick else 256, rounds, quick)
    print(f"train step: jcnn {train['ips_jcnn']:.0f} images/s, lax {train['ips_lax']:.0f}; "
          f"compile {train['compile_jcnn']:.2f} / {train['compile_lax']:.2f} s", flush=True)
    return render(rows, train, jax.devices()[0]), rows, train
