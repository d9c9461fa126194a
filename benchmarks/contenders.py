"""What the CPU and GPU suites share: one timer and one PyTorch contender.

``time_blocks`` runs each contender in blocks of consecutive calls, the
contenders' blocks alternating, each block after untimed "settle" calls (at
least two, and at least 10 ms of them) — as a training loop calls one program
over and over.  Alternating single calls measured something else on a CPU:
PyTorch's OpenMP threads keep spinning after its call, and a jcnn program right
after it ran slower than alone (BENCHMARKS.md).  On a GPU, ``per_call=False``
times a whole block and waits once, so launch overhead does not hide
sub-millisecond kernels.

``torch_conv`` is PyTorch's convolution on the same shapes (NCHW on a CPU, its
native layout; channels-last on CUDA, with cuDNN's autotuner on), as closures
that ignore their arguments so they alternate with the JAX contenders.
"""

from __future__ import annotations

import os
import statistics
import time

import jax


def time_blocks(fns, args=(), *, rounds=5, block_seconds=0.2, min_calls=2, max_calls=60,
                per_call=True, sync=jax.block_until_ready):
    """Median seconds per call of each contender ``fns[name](*args)``.

    ``rounds`` blocks per contender; a block has ``block_seconds`` of calls
    (between ``min_calls`` and ``max_calls``); ``per_call`` times every call and
    syncs each (``sync(result)``), else the block is timed as a whole."""
    cost = {}
    for k, f in fns.items():
        sync(f(*args))  # warm up (compiles)
        t = time.perf_counter()
        sync(f(*args))
        cost[k] = max(time.perf_counter() - t, 1e-6)
    times = {k: [] for k in fns}
    for _ in range(rounds):
        for k, f in fns.items():
            calls = max(min_calls, min(max_calls, int(block_seconds / cost[k])))
            for _ in range(max(2, int(0.01 / cost[k]))):
                sync(f(*args))  # settle: the previous contender's threads go quiet
            if per_call:
                for _ in range(calls):
                    t = time.perf_counter()
                    sync(f(*args))
                    times[k].append(time.perf_counter() - t)
            else:
                t = time.perf_counter()
                out = None
                for _ in range(calls):
                    out = f(*args)
                sync(out)
                times[k].append((time.perf_counter() - t) / calls)
    return {k: statistics.median(v) for k, v in times.items()}


def torch_module(device="cpu"):
    """PyTorch (with as many CPU threads as XLA's CPU client uses), or None when it
    is not installed or the device is missing."""
    try:
        import torch
    except ImportError:
        return None
    if device == "cuda" and not torch.cuda.is_available():
        return None
    torch.set_num_threads(os.cpu_count() or 1)
    if device == "cuda":
        torch.backends.cudnn.benchmark = True
    return torch


def torch_conv(x_shape, w_shape, stride, pads, groups, dtype="float32", device="cpu"):
    """PyTorch's conv of channels-last ``x_shape``/``w_shape`` with jcnn's
    ``(low, high)`` ``pads``: ``(fwd, fwd_bwd, sync)`` closures — the backward takes
    a dense random cotangent, ``y.backward(ct)``, as ``jax.vjp`` does — or None."""
    torch = torch_module(device)
    if torch is None:
        return None
    nd = len(x_shape) - 2
    dev = torch.device(device)
    tdt = {"float32": torch.float32, "bfloat16": torch.bfloat16}[str(dtype)]
    g = torch.Generator().manual_seed(0)
    x = torch.randn(x_shape[0], x_shape[-1], *x_shape[1:-1], generator=g, dtype=tdt).to(dev)
    w = (torch.randn(w_shape[-1], w_shape[-2], *w_shape[:-2], generator=g, dtype=tdt) * 0.1
         ).to(dev)
    if device == "cuda" and nd == 2:
        x = x.to(memory_format=torch.channels_last)
        w = w.to(memory_format=torch.channels_last)
    x.requires_grad_(True)
    w.requires_grad_(True)
    symmetric = all(lo == hi for lo, hi in pads)
    pad = tuple(lo for lo, _ in pads) if symmetric else 0
    flat = [p for lo_hi in reversed(pads) for p in lo_hi]  # F.pad: last dim first
    conv = {1: torch.nn.functional.conv1d, 2: torch.nn.functional.conv2d,
            3: torch.nn.functional.conv3d}[nd]

    def run(x, w):
        xin = x if symmetric else torch.nn.functional.pad(x, flat)
        return conv(xin, w, stride=stride, padding=pad, groups=groups)

    with torch.no_grad():
        ct = torch.randn(run(x, w).shape, generator=None, dtype=tdt, device=dev)

    def fwd(*_):
        with torch.no_grad():
            return run(x, w)

    def fwd_bwd(*_):
        x.grad = w.grad = None
        y = run(x, w)
        y.backward(ct)
        return x.grad

    def sync(_):
        if device == "cuda":
            torch.cuda.synchronize()

    return fwd, fwd_bwd, sync
