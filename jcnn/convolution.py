"""Convolution as explicit windowed sums, with a hand-written backward.

Layout is channels-last: ``x`` is ``(N, *spatial, C_in)`` and ``w`` is
``(*window, C_in // groups, C_out)`` — the article's ``[n, n, n_c] * [f, f, n_c]``
with ``n_f = C_out`` filters stacked last (§6).

Forward (§3, §6, §7)::

    Z[n, p, o] = Σ_k Σ_i  X_pad[n, p·s + k·d, i] · W[k, i, o]  + b[o]

Backward (§9), written by hand as a ``jax.custom_vjp``::

    dX = full_conv(spread_s(dZ), rot180(W))   cropped by the padding
    dW[k] = Σ_{n,p} X_pad[n, p·s + k·d]ᵀ · dZ[n, p]     (correlation of X and dZ)
    db = Σ_{n,p} dZ[n, p]

``spread_s`` puts ``s − 1`` zeros between cotangent values; rows of ``X`` the
forward never read (when ``(n + 2p − f) mod s ≠ 0``) get zero gradient.  ``dX``
is computed by ``conv`` itself or as the same sum scattered back without the
inserted zeros, ``dW`` by slices and contractions — all differentiable ops, so the
backward is differentiable again: ``jax.grad(jax.grad(...))``, Hessian-vector
products and ``jax.jacrev(jax.grad(...))`` work.  Forward-mode autodiff
(``jax.jvp``, ``jax.jacfwd``) cannot pass through a ``custom_vjp``; use
reverse-over-reverse instead.
"""

from __future__ import annotations

import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from . import window as win
from ._checks import acc_dtype, as_float_array, check_batched, same_dtype
from .padding import (
    PaddingLike,
    border_pad,
    check_padding_mode,
    conv_out_shape,
    ntuple,
    padding_pairs,
)

__all__ = ["conv", "conv1d", "conv2d", "conv3d", "conv_transpose", "convolve2d"]

STRATEGIES = ("offsets", "gather", "shift", "scan", "depthwise")


# --------------------------------------------------------------------------- #
# How the windowed sums are arranged.  Every arrangement computes exactly the
# sum above; they differ only in how XLA sees the work.
# --------------------------------------------------------------------------- #
GATHER_LIMIT = 1 << 22  # elements of one block's patch matrix (16 MiB in f32)


def choose_strategy(window, c_in: int, c_out: int, groups: int, positions: int = 1) -> str:
    """Pick the arrangement of the windowed sums for one layer shape.

    Every arrangement computes the same sum; measured on a 2-core CPU
    (``python -m benchmarks.arrangements``):

    * ``"depthwise"`` (one input channel per group): a multiply-add per offset,
      there is nothing to contract.
    * ``"gather"``: stack the ``K`` offset slices (:func:`jcnn.window.patches`,
      built one dim at a time) and do one matmul with contraction length
      ``K·C_in``, in batch blocks whose patch matrix stays under
      ``GATHER_LIMIT`` elements (one block when the whole batch fits) — one
      long contraction keeps the GEMM busy and a block stays in cache
      (16×32×32×64 3×3 forward: four examples per block 3.8–4.2 ms, one
      4.1–4.4, all 16 at once 17, lax 5.5–5.7).  A 4 MiB limit used a third
      of the temp memory but, forward and backward together, ran 1.1–1.5×
      slower on four of the suite's five large layers (loop overhead of more,
      smaller blocks), so the limit stays at 16 MiB.
    * ``"scan"``: one matmul per offset as a ``lax.scan`` adding into one
      accumulator — for layers where a single example's patch matrix
      (``positions · K · C_in``, ``positions = Π out``) exceeds the limit.
    * ``"offsets"``: one matmul per offset, unrolled — for a single input
      channel, where each is an outer product XLA fuses into one multiply-add
      loop (28×28×1 5×5×32: 0.18 ms median, gathered 0.24, lax 0.16).
    * ``"shift"`` (every offset's products in one matmul over the padded input,
      then shifted into place) is kept as an oracle-tested alternative; it lost
      on every measured shape.
    """
    cig = c_in // groups
    if groups > 1 and cig == 1:
        return "depthwise"
    if cig == 1:
        return "offsets"
    return "gather" if positions * math.prod(window) * cig <= GATHER_LIMIT else "scan"


def _grouped(a: jax.Array, groups: int) -> jax.Array:
    """``(..., C)`` → ``(..., G, C // G)``."""
    return a.reshape(*a.shape[:-1], groups, a.shape[-1] // groups)


def _starts(window, dilation):
    """``(K, nd)`` int array: where each kernel offset's slice starts (``k·d``)."""
    return np.array([[k * d for k, d in zip(off, dilation)] for off in win.offsets(window)],
                    np.int32).reshape(-1, len(window))


def _strided(a, stride):
    """Every ``s``-th element along the spatial dims of ``(N, *spatial, C)``."""
    if all(st == 1 for st in stride):
        return a
    return jax.lax.slice(a, (0,) * a.ndim, a.shape, (1, *stride, 1))


def _batch_block(n: int, per_example: int) -> int | None:
    """How many examples one block holds: the largest divisor ``B`` of ``n`` with
    ``B · per_example ≤ GATHER_LIMIT`` (``None`` when one example is already over)."""
    if per_example > GATHER_LIMIT:
        return None
    return max((b for b in range(1, n + 1) if n % b == 0 and b * per_example <= GATHER_LIMIT),
               default=1)  # an empty batch is one (empty) block


def _blocks(block, arrays):
    """The arrays split along the batch into ``(n // block, block, ...)``."""
    n = arrays[0].shape[0]
    return tuple(a.reshape(n // block, block, *a.shape[1:]) for a in arrays)


def _map_blocks(fn, block, *arrays):
    """``fn`` on consecutive batch blocks of ``block`` examples (a ``lax.map``), the
    results concatenated — ``fn(*arrays)`` itself when one block is the batch."""
    n = arrays[0].shape[0]
    if block >= n:
        return fn(*arrays)
    out = jax.lax.map(lambda c: fn(*c), _blocks(block, arrays))
    return out.reshape(n, *out.shape[2:])


def _sum_blocks(fn, block, *arrays):
    """``Σ fn(block)`` over consecutive batch blocks (a ``lax.scan`` with one
    accumulator) — ``fn(*arrays)`` itself when one block is the batch."""
    if block >= arrays[0].shape[0]:
        return fn(*arrays)
    init = jax.eval_shape(fn, *(a[:block] for a in arrays))
    return jax.lax.scan(lambda tot, c: (tot + fn(*c), None),
                        jnp.zeros(init.shape, init.dtype), _blocks(block, arrays))[0]


def _offset_slice(xp, start, out_shape, stride):
    """``window_slice`` at a traced start (``_starts`` row): the scan arrangements' read."""
    zero = jnp.zeros((), jnp.int32)
    span = [(m - 1) * st + 1 for m, st in zip(out_shape, stride)]
    return _strided(jax.lax.dynamic_slice(
        xp, (zero, *start, zero), (xp.shape[0], *span, xp.shape[-1])), stride)


def _contract(sl, w_i, groups, acc):
    """``(N, *out, C_in) · (C_in/G, C_out)`` per group → ``(N, *out, C_out)``."""
    if groups == 1:
        return jnp.matmul(sl, w_i, preferred_element_type=acc)
    out = jnp.einsum("...gi,igo->...go", _grouped(sl, groups), _grouped(w_i, groups),
                     preferred_element_type=acc)
    return out.reshape(*out.shape[:-2], w_i.shape[-1])


def _windowed_sum(xp, w, out_shape, stride, dilation, groups, strategy):
    """Σ_k slice_k(xp) · W[k] over kernel offsets ``k``, in the accumulation dtype."""
    window, (cig, c_out) = w.shape[:-2], w.shape[-2:]
    acc = acc_dtype(xp.dtype)
    n_off = math.prod(window)
    wk = w.reshape(n_off, cig, c_out)
    if strategy in ("depthwise", "offsets"):
        slices = [win.window_slice(xp, k, out_shape, stride, dilation)
                  for k in win.offsets(window)]
    if strategy == "depthwise":
        mult = c_out // groups
        out = None
        for i, sl in enumerate(slices):
            sl = jnp.repeat(sl, mult, axis=-1) if mult > 1 else sl
            term = sl.astype(acc) * wk[i, 0].astype(acc)
            out = term if out is None else out + term
        return out
    if strategy == "gather":
        patches = win.patches(xp, window, out_shape, stride, dilation)  # (N, *out, K, C_in)
        if groups == 1:
            flat = patches.reshape(*patches.shape[:-2], n_off * cig)
            return jnp.matmul(
                flat, w.reshape(-1, c_out), preferred_element_type=acc
            )
        patches = _grouped(patches, groups)  # (N, *out, K, G, cig)
        wg = _grouped(wk, groups)  # (K, cig, G, cog)
        out = jnp.einsum("...kgi,kigo->...go", patches, wg, preferred_element_type=acc)
        return out.reshape(*out.shape[:-2], c_out)
    if strategy == "scan":
        # the same sum as "offsets", as a loop over offsets that adds into one
        # accumulator: XLA reuses that buffer instead of holding K products
        starts = jnp.asarray(_starts(window, dilation), jnp.int32)

        def body(total, item):
            start, w_i = item
            sl = _offset_slice(xp, start, out_shape, stride)
            return total + _contract(sl, w_i, groups, acc), None

        init = jnp.zeros((xp.shape[0], *out_shape, c_out), acc)
        return jax.lax.scan(body, init, (starts, wk))[0]
    if strategy == "shift":
        # all offsets' products in one matmul over the padded input, then each
        # offset's plane shifted (strided-sliced) into place and added
        if groups == 1:
            prods = jnp.einsum("...i,kio->...ko", xp, wk, preferred_element_type=acc)
        else:
            prods = jnp.einsum("...gi,kigo->...kgo", _grouped(xp, groups), _grouped(wk, groups),
                               preferred_element_type=acc)
            prods = prods.reshape(*prods.shape[:-2], c_out)
        out = None
        for i, k in enumerate(win.offsets(window)):
            term = win.window_slice(prods[..., i, :], k, out_shape, stride, dilation)
            out = term if out is None else out + term
        return out
    if strategy == "offsets":
        out = None
        for i, sl in enumerate(slices):
            term = _contract(sl, wk[i], groups, acc)
            out = term if out is None else out + term
        return out
    raise ValueError(f"unknown strategy {strategy!r}; expected one of {STRATEGIES}")


def _forward(x, w, b, stride, pads, dilation, groups, strategy=None):
    """The plain windowed-sum forward (no custom rule): conv's definition."""
    window = w.shape[:-2]
    out_shape = conv_out_shape(x.shape[1:-1], window, stride, pads, dilation)
    if strategy is None:
        positions = math.prod(out_shape)  # per example
        strategy = choose_strategy(window, x.shape[-1], w.shape[-1], groups, positions)
    def run(xc):
        xp = win.pad_spatial(xc, pads)
        return _windowed_sum(xp, w, out_shape, stride, dilation, groups, strategy)

    if strategy == "gather":  # in batch blocks whose patch matrix fits GATHER_LIMIT
        per_example = math.prod(out_shape) * math.prod(window) * w.shape[-2]
        out = _map_blocks(run, _batch_block(x.shape[0], per_example) or 1, x)
    else:
        out = run(x)
    if b is not None:
        out = out + b.astype(out.dtype)
    return out.astype(x.dtype)


# --------------------------------------------------------------------------- #
# The hand-written backward.
# --------------------------------------------------------------------------- #
def rot180(w: jax.Array, groups: int = 1) -> jax.Array:
    """The kernel rotated by 180° with input/output channels swapped per group.

    ``(*window, C_in/G, C_out)`` → ``(*window, C_out/G, C_in)``: the kernel that
    carries a cotangent back through the layer (article §9).
    """
    nd = w.ndim - 2
    cig, c_out = w.shape[-2:]
    flipped = jnp.flip(w, axis=tuple(range(nd)))
    split = flipped.reshape(*w.shape[:-1], groups, c_out // groups)  # (*win, cig, G, cog)
    swapped = jnp.swapaxes(split, -3, -1)  # (*win, cog, G, cig)
    return swapped.reshape(*w.shape[:-2], c_out // groups, groups * cig)


def _input_grad(g, w, in_sizes, stride, pads, dilation, groups, strategy=None):
    """dX, the article's full convolution of the spread cotangent with rot180(W).

    Two arrangements of the same sum:

    * ``"fullconv"``: spread ``dZ`` by the stride (``s − 1`` zeros between
      values), pad it by ``f_eff − 1`` (the full convolution) minus the forward's
      padding, and run :func:`conv` with ``rot180(W)``.  High rows the forward
      never read (``(n + 2p − f) mod s ≠ 0``) get zero.
    * ``"scatter"``: each cotangent value scatters ``W · dZ[p]`` back over the
      window it came from (§9): one matmul ``dZ · W[k]ᵀ`` for all offsets ``k``,
      then every offset's plane put back where the forward's slice read it
      (:func:`jcnn.window.scatter_patches`: one dim at a time, strided dims
      split by phase, so no product with an inserted zero and no add of one).

    ``"scatter"`` runs in batch blocks whose products ``B·Π out·K·C_in`` fit
    ``GATHER_LIMIT`` (all at once 23–33 ms on 16×32×32×64 3×3, in blocks 4.4,
    lax 5.4; 7×7/2 stem 1.6–2.0 ms, lax 2.5; the full conv multiplies the
    inserted zeros: 68 ms).  ``"fullconv"`` is chosen for stride-1 depthwise
    layers (0.5 ms, scatter 8) and stride-1 layers where a single example's
    products exceed the limit (there :func:`conv`'s ``"scan"`` bounds memory).
    """
    window, (cig, c_out) = w.shape[:-2], w.shape[-2:]
    k_total = math.prod(window)
    if strategy is None:
        big = math.prod(g.shape[1:-1]) * k_total * cig > GATHER_LIMIT  # one example's
        depthwise = cig == 1 and groups > 1
        strategy = "fullconv" if (big or depthwise) and max(stride) == 1 else "scatter"
    nd = len(in_sizes)
    if strategy == "scatter":
        acc = acc_dtype(g.dtype)
        wk = w.reshape(k_total, cig, c_out)
        padded = [n + lo + hi for n, (lo, hi) in zip(in_sizes, pads)]

        def scatter(gc):
            if cig == 1 and groups > 1:  # depthwise: elementwise products, summed per group
                prods = gc[..., None, :].astype(acc) * wk[:, 0].astype(acc)  # (.., K, C_out)
                prods = _grouped(prods, groups).sum(-1)  # (B, *out, K, C_in)
            elif groups == 1:  # a plain 2-D GEMM (a size-1 group axis made XLA's dot 2× slower)
                prods = jnp.einsum("...o,kio->...ki", gc, wk, preferred_element_type=acc)
            else:  # one matmul for all offsets: (B, *out, C_out) · (C_out, K·C_in)
                prods = jnp.einsum("...go,kigo->...kgi", _grouped(gc, groups),
                                   _grouped(wk, groups), preferred_element_type=acc)
                prods = prods.reshape(*prods.shape[:-2], groups * cig)  # (B, *out, K, C_in)
            dxp = win.scatter_patches(prods, window, padded, stride, dilation)
            return win.pad_spatial(dxp, [(-lo, -hi) for lo, hi in pads]).astype(g.dtype)

        block = _batch_block(g.shape[0], math.prod(g.shape[1:-1]) * k_total * cig) or 1
        return _map_blocks(scatter, block, g)
    if strategy != "fullconv":
        raise ValueError(f"unknown input-gradient strategy {strategy!r}")
    config = []
    for n, f, s, (lo, hi), d in zip(in_sizes, w.shape[:-2], stride, pads, dilation):
        f_eff = (f - 1) * d + 1
        unread = (n + lo + hi - f_eff) % s  # high rows the forward never reached
        config.append((f_eff - 1 - lo, f_eff - 1 - hi + unread, s - 1))
    gp = jax.lax.pad(g, jnp.zeros((), g.dtype), [(0, 0, 0), *config, (0, 0, 0)])
    return _conv(gp, rot180(w, groups), None, (1,) * nd, ((0, 0),) * nd, dilation, groups)


def _weight_grad(x, g, w_shape, stride, pads, dilation, groups, strategy=None):
    """dW[k] = Σ_{n,p} X_pad[n, p·s + k·d]ᵀ dZ[n, p]: correlation of X with dZ.

    The forward's arrangements, chosen the same way: ``"gather"`` (the patch
    matrix, one GEMM ``dZᵀ · patches`` per batch block, the blocks' sums added;
    7×7/2 stem 2.3–3.1 ms vs 3.6–3.9 per offset, lax 2.4; 16×32×32×64 3×3
    4.8 ms vs 9.4 per offset, lax 8.6); ``"scan"`` (a loop over offsets, one slice
    live at a time) when one example's patch matrix is over ``GATHER_LIMIT``;
    ``"offsets"`` (one contraction per offset, in batch blocks whose ``K``
    products fit the limit) for depthwise layers (16×32×32×64 3×3: 3.7–3.9 ms,
    all 16 examples at once 8.8, lax 9.1–9.8).
    """
    window, (cig, c_out) = w_shape[:-2], w_shape[-2:]
    if strategy is None:
        if cig == 1 and groups > 1:
            strategy = "offsets"
        elif math.prod(g.shape[1:-1]) * math.prod(window) * cig <= GATHER_LIMIT:
            strategy = "gather"
        else:
            strategy = "scan"
    acc = acc_dtype(x.dtype)
    out_shape = g.shape[1:-1]

    def correlate(sl, gc):  # Σ_m slice[m]ᵀ dZ[m], per group → (cig, G, cog)
        if cig == 1 and groups > 1:  # depthwise: elementwise products summed over positions
            positions = tuple(range(sl.ndim - 1))  # (not flattened first: 4× faster)
            if c_out == groups:
                return (sl.astype(acc) * gc.astype(acc)).sum(positions).reshape(1, groups, 1)
            prod = sl[..., None].astype(acc) * _grouped(gc, groups).astype(acc)
            return prod.sum(positions)[None]
        sl2 = _grouped(sl.reshape(-1, groups * cig), groups)  # (M, G, cig)
        g2 = _grouped(gc.reshape(-1, c_out), groups)  # (M, G, cog)
        if groups == 1:  # a plain 2-D GEMM (no batch dimension of size 1)
            return jnp.matmul(sl2[:, 0].T, g2[:, 0], preferred_element_type=acc)[:, None]
        return jnp.einsum("mgi,mgo->igo", sl2, g2, preferred_element_type=acc)

    if strategy == "scan":
        # one offset per loop step: XLA runs each step's contraction as one plain
        # GEMM on a materialised slice (unrolled, the K contractions with fused
        # slices ran 2x slower on every wide layer measured)
        starts = jnp.asarray(_starts(window, dilation), jnp.int32)
        xp = win.pad_spatial(x, pads)

        def body(carry, start):
            return carry, correlate(_offset_slice(xp, start, out_shape, stride), g)

        dw = jax.lax.scan(body, None, starts)[1]
        return dw.reshape(w_shape).astype(x.dtype)

    k_total = math.prod(window)

    def gathered(xc, gc):  # one GEMM (K·C_in, M) · (M, C_out) over a batch block
        patches = win.patches(win.pad_spatial(xc, pads), window, out_shape, stride, dilation)
        gc2 = _grouped(gc.reshape(-1, c_out), groups)
        if groups == 1:  # a plain 2-D GEMM, dWᵀ = dZᵀ · patches (1.4× faster than
            flat = patches.reshape(-1, k_total * cig)  # patchesᵀ · dZ on 3×3×64→64)
            if flat.dtype != acc:  # XLA CPU has no bf16·bf16→f32 dot this way round
                flat, gc2 = flat.astype(acc), gc2.astype(acc)
            return jnp.matmul(gc2[:, 0].T, flat, preferred_element_type=acc)  # dWᵀ
        patches = _grouped(patches.reshape(-1, k_total, groups * cig), groups)
        return jnp.einsum("mkgi,mgo->kigo", patches, gc2, preferred_element_type=acc)

    def per_offset(xc, gc):  # one contraction per offset over a batch block
        xpc = win.pad_spatial(xc, pads)
        return jnp.stack([correlate(win.window_slice(xpc, k, out_shape, stride, dilation), gc)
                          for k in win.offsets(window)])

    if strategy == "gather":  # blocks sized by the patch matrix
        fn, per_example = gathered, math.prod(out_shape) * k_total * cig
    elif strategy == "offsets":  # blocks sized by the K products of all channels (depthwise
        # 16×32×32×64 3×3: 2.0 ms in blocks of 4 examples vs 8.8 all at once)
        fn, per_example = per_offset, math.prod(out_shape) * k_total * groups * cig
    else:
        raise ValueError(f"unknown weight-gradient strategy {strategy!r}")
    dw = _sum_blocks(fn, _batch_block(x.shape[0], per_example) or 1, x, g)
    if strategy == "gather" and groups == 1:
        dw = dw.T  # summed as dWᵀ, transposed once
    return dw.reshape(w_shape).astype(x.dtype)


@partial(jax.custom_vjp, nondiff_argnums=(3, 4, 5, 6))
def _conv(x, w, b, stride, pads, dilation, groups):
    return _forward(x, w, b, stride, pads, dilation, groups)


def _conv_fwd(x, w, b, stride, pads, dilation, groups):
    return _forward(x, w, b, stride, pads, dilation, groups), (x, w, b)


def _conv_bwd(stride, pads, dilation, groups, res, g):
    x, w, b = res
    dx = _input_grad(g, w, x.shape[1:-1], stride, pads, dilation, groups)
    dw = _weight_grad(x, g, w.shape, stride, pads, dilation, groups)
    db = None
    if b is not None:
        axes = tuple(range(g.ndim - 1))
        db = jnp.sum(g, axis=axes, dtype=acc_dtype(g.dtype)).astype(b.dtype)
    return dx, dw, db


_conv.defvjp(_conv_fwd, _conv_bwd)


# --------------------------------------------------------------------------- #
# Public entry points: validate, canonicalise, call the custom_vjp core.
# --------------------------------------------------------------------------- #
def canonicalize(fn, x, w, b, stride, padding, dilation, groups, nd=None):
    """Check a conv call and return ``(x, w, b, stride, pads, dilation, groups)``."""
    x = as_float_array(x, "x", fn)
    w = as_float_array(w, "w", fn)
    b = None if b is None else as_float_array(b, "b", fn)
    nd = check_batched(x, "x", fn, nd)
    shapes = f"(x.shape={x.shape}, w.shape={w.shape})"
    if w.ndim != nd + 2:
        raise ValueError(
            f"{fn}: w must be {nd + 2}-d (*window, C_in/groups, C_out) for "
            f"{nd} spatial dims {shapes}"
        )
    same_dtype(fn, x=x, w=w, b=b)
    stride = ntuple(stride, nd, "stride", fn)
    dilation = ntuple(dilation, nd, "dilation", fn)
    (groups,) = ntuple(groups, 1, "groups", fn)
    c_in, cig, c_out = x.shape[-1], w.shape[-2], w.shape[-1]
    if c_in % groups or c_out % groups:
        raise ValueError(
            f"{fn}: `groups` (={groups}) must divide the input channels (={c_in}) "
            f"and the output channels (={c_out}) {shapes}"
        )
    if c_in // groups != cig:
        expect = f"{cig * groups} ({cig} per group x {groups} groups)" if groups > 1 else cig
        raise ValueError(f"{fn}: x has {c_in} channels but w expects {expect} {shapes}")
    if b is not None and b.shape != (c_out,):
        raise ValueError(
            f"{fn}: b must have shape ({c_out},) to match w's {c_out} output "
            f"channels, got b.shape={b.shape} {shapes}"
        )
    window = w.shape[:-2]
    if 0 in window:
        raise ValueError(f"{fn}: the kernel window {window} has a zero-size dim {shapes}")
    pads = padding_pairs(padding, x.shape[1:-1], window, stride, dilation, fn)
    for i, (n, f, (lo, hi), d) in enumerate(zip(x.shape[1:-1], window, pads, dilation)):
        f_eff = (f - 1) * d + 1
        if n + lo + hi < f_eff:
            raise ValueError(
                f"{fn}: the kernel (size {f}, dilation {d}: {f_eff}) is larger than the "
                f"padded input ({n} + {lo} + {hi} = {n + lo + hi}) in spatial dim {i} {shapes}"
            )
    return x, w, b, stride, pads, dilation, groups


def _entry(fn, nd, x, w, b, stride, padding, dilation, groups, padding_mode="zeros"):
    x, w, b, stride, pads, dilation, groups = canonicalize(
        fn, x, w, b, stride, padding, dilation, groups, nd)
    if check_padding_mode(padding_mode, pads, x.shape[1:-1], fn) != "zeros":
        x, pads = border_pad(x, pads, padding_mode), ((0, 0),) * len(pads)
    return _conv(x, w, b, stride, pads, dilation, groups)


def conv(
    x: jax.typing.ArrayLike,
    w: jax.typing.ArrayLike,
    b: jax.typing.ArrayLike | None = None,
    *,
    stride: int | tuple[int, ...] = 1,
    padding: PaddingLike = "VALID",
    dilation: int | tuple[int, ...] = 1,
    groups: int = 1,
    padding_mode: str = "zeros",
) -> jax.Array:
    """N-d convolution layer (cross-correlation), channels-last.

    ``Z[n, p, o] = Σ_k Σ_i X_pad[n, p·s + k·d, i] · W[k, i, o] + b[o]``

    Args:
      x: input ``(N, *spatial, C_in)`` — one to three (or more) spatial dims.
      w: kernel ``(*window, C_in // groups, C_out)``.
      b: optional bias ``(C_out,)``.
      stride: an int or one int per spatial dim.
      padding: ``"VALID"``, ``"SAME"``, an int, one int per spatial dim, or one
        ``(low, high)`` pair per spatial dim (see :mod:`jcnn.padding`).
      dilation: kernel dilation, an int or one int per spatial dim.
      groups: split channels into this many independent groups
        (``groups == C_in`` with one channel per group is depthwise).
      padding_mode: what the padding holds — ``"zeros"``, or copies of border
        pixels: ``"reflect"`` (mirrored, edge not repeated), ``"replicate"``
        (the edge repeated) or ``"circular"`` (wrapped around), as PyTorch.
        Their gradients fold back onto the source pixels.

    Returns:
      ``(N, *out_spatial, C_out)`` with ``out = ⌊(n + p_lo + p_hi − f_eff)/s⌋ + 1``,
      in ``x``'s dtype (bf16/f16 accumulate in f32).

    The backward is a hand-written ``custom_vjp`` (article §9); it is itself
    differentiable, so reverse-over-reverse works.  Forward mode
    (``jax.jvp``/``jax.jacfwd``) does not: use ``jax.jacrev``.

    Examples:
      >>> import jax.numpy as jnp, jcnn
      >>> x = jnp.ones((1, 6, 6, 1)); w = jnp.ones((3, 3, 1, 1))
      >>> jcnn.conv(x, w).shape            # 6×6 ∗ 3×3 valid → 4×4
      (1, 4, 4, 1)
    """
    return _entry("conv", None, x, w, b, stride, padding, dilation, groups, padding_mode)


def conv1d(x, w, b=None, *, stride=1, padding="VALID", dilation=1, groups=1,
           padding_mode="zeros") -> jax.Array:
    """:func:`conv` for ``x`` of shape ``(N, L, C_in)``; checks the rank."""
    return _entry("conv1d", 1, x, w, b, stride, padding, dilation, groups, padding_mode)


def conv2d(x, w, b=None, *, stride=1, padding="VALID", dilation=1, groups=1,
           padding_mode="zeros") -> jax.Array:
    """:func:`conv` for ``x`` of shape ``(N, H, W, C_in)``; checks the rank."""
    return _entry("conv2d", 2, x, w, b, stride, padding, dilation, groups, padding_mode)


def conv3d(x, w, b=None, *, stride=1, padding="VALID", dilation=1, groups=1,
           padding_mode="zeros") -> jax.Array:
    """:func:`conv` for ``x`` of shape ``(N, D, H, W, C_in)``; checks the rank."""
    return _entry("conv3d", 3, x, w, b, stride, padding, dilation, groups, padding_mode)


# --------------------------------------------------------------------------- #
# Transposed convolution: conv's input gradient as a forward op.
# --------------------------------------------------------------------------- #
@partial(jax.custom_vjp, nondiff_argnums=(3, 4, 5, 6, 7))
def _conv_t(x, w, b, stride, pads, dilation, groups, out_sizes):
    y = _input_grad(x, w, out_sizes, stride, pads, dilation, groups)
    return y if b is None else (y + b.astype(y.dtype)).astype(y.dtype)


def _conv_t_fwd(x, w, b, stride, pads, dilation, groups, out_sizes):
    return _conv_t(x, w, b, stride, pads, dilation, groups, out_sizes), (x, w, b)


def _conv_t_bwd(stride, pads, dilation, groups, out_sizes, res, g):
    x, w, b = res
    # y = Aᵀx with A the conv by w, so dx = A g (conv forward) and dw is the
    # conv's weight correlation with the roles of input and cotangent swapped
    dx = _conv(g, w, None, stride, pads, dilation, groups)
    dw = _weight_grad(g, x, w.shape, stride, pads, dilation, groups)
    db = None
    if b is not None:
        db = jnp.sum(g, axis=tuple(range(g.ndim - 1)), dtype=acc_dtype(g.dtype)).astype(b.dtype)
    return dx, dw, db


_conv_t.defvjp(_conv_t_fwd, _conv_t_bwd)


def conv_transpose(
    x: jax.typing.ArrayLike,
    w: jax.typing.ArrayLike,
    b: jax.typing.ArrayLike | None = None,
    *,
    stride: int | tuple[int, ...] = 1,
    padding: PaddingLike = 0,
    output_padding: int | tuple[int, ...] = 0,
    dilation: int | tuple[int, ...] = 1,
    groups: int = 1,
    padding_mode: str = "zeros",
) -> jax.Array:
    """N-d transposed convolution, channels-last: the adjoint of :func:`conv`.

    ``conv_transpose(x, w)`` is exactly conv's input gradient (article §9) —
    the full convolution of the stride-spread ``x`` with ``rot180(w)`` — run
    as a forward op: for any ``u``, ``<conv(u, w), x> = <u, conv_transpose(x, w)>``
    when the geometry (stride, padding, dilation, groups) is the same.

    Shapes and padding follow PyTorch's ``conv_transpose{1,2,3}d`` (channels
    last): ``x`` is ``(N, *spatial, C_in)``, ``w`` is
    ``(*window, C_out // groups, C_in)`` — the kernel of the conv that maps
    ``C_out`` channels back to ``C_in`` — and each output size is

        ``(n − 1)·s − p_low − p_high + d·(f − 1) + output_padding + 1``

    ``padding`` (an int, one per dim, ``(low, high)`` pairs or ``"VALID"`` = 0)
    crops the full output; ``output_padding`` (``< stride``) adds rows at the
    high end, picking among the input sizes a strided conv maps to the same
    size.  Only ``padding_mode="zeros"`` (as PyTorch).

    Backward: ``dx = conv(dy, w)`` and ``dw`` the conv's weight correlation with
    ``dy`` as the input; both differentiable again.
    """
    fn = "conv_transpose"
    x = as_float_array(x, "x", fn)
    w = as_float_array(w, "w", fn)
    b = None if b is None else as_float_array(b, "b", fn)
    nd = check_batched(x, "x", fn)
    shapes = f"(x.shape={x.shape}, w.shape={w.shape})"
    if w.ndim != nd + 2:
        raise ValueError(f"{fn}: w must be {nd + 2}-d (*window, C_out/groups, C_in) for "
                         f"{nd} spatial dims {shapes}")
    same_dtype(fn, x=x, w=w, b=b)
    stride = ntuple(stride, nd, "stride", fn)
    dilation = ntuple(dilation, nd, "dilation", fn)
    output_padding = ntuple(output_padding, nd, "output_padding", fn, minimum=0)
    (groups,) = ntuple(groups, 1, "groups", fn)
    if padding_mode != "zeros":
        raise ValueError(f"{fn}: only padding_mode='zeros' is supported (as PyTorch), "
                         f"got {padding_mode!r}")
    c_in = x.shape[-1]
    if c_in % groups:
        raise ValueError(f"{fn}: `groups` (={groups}) must divide the input channels "
                         f"(={c_in}) {shapes}")
    if w.shape[-1] != c_in:
        raise ValueError(f"{fn}: x has {c_in} channels but w expects {w.shape[-1]} "
                         f"(w is (*window, C_out/groups, C_in)) {shapes}")
    c_out = w.shape[-2] * groups
    if b is not None and b.shape != (c_out,):
        raise ValueError(f"{fn}: b must have shape ({c_out},), got b.shape={b.shape} {shapes}")
    if 0 in w.shape[:-2]:
        raise ValueError(f"{fn}: the kernel window {w.shape[:-2]} has a zero-size dim {shapes}")
    if isinstance(padding, str) and padding.upper() == "SAME":
        raise ValueError(f"{fn}: padding 'SAME' is not defined for a transposed conv; "
                         "give the (low, high) crop per dim")
    pads = padding_pairs(padding, x.shape[1:-1], w.shape[:-2], stride, dilation, fn)
    out_sizes = []
    for i, (n, f, s, (lo, hi), d, op) in enumerate(
        zip(x.shape[1:-1], w.shape[:-2], stride, pads, dilation, output_padding)
    ):
        if op >= s:
            raise ValueError(f"{fn}: output_padding ({op}) must be smaller than the stride "
                             f"({s}) in spatial dim {i}")
        size = (n - 1) * s - lo - hi + (f - 1) * d + 1 + op
        if size < 1:
            raise ValueError(f"{fn}: padding ({lo}, {hi}) crops the whole output in spatial "
                             f"dim {i} (full size {size + lo + hi}) {shapes}")
        out_sizes.append(size)
    return _conv_t(x, w, b, stride, pads, dilation, groups, tuple(out_sizes))


def convolve2d(
    image: jax.typing.ArrayLike, kernel: jax.typing.ArrayLike, mode: str = "full"
) -> jax.Array:
    """True 2-D convolution (kernel flipped), the article's §3 formula.

    ``G[m, n] = Σ_j Σ_k h[j, k] · f[m − j, n − k]``

    Modes follow ``scipy.signal.convolve2d``: ``"full"`` (every overlap,
    ``(H + kh − 1, W + kw − 1)``), ``"valid"`` (no zero padding; the larger
    array must contain the smaller, which may be either) and ``"same"`` (the
    centre of ``"full"``, ``image``'s shape).

    Examples:
      >>> import jax.numpy as jnp, jcnn
      >>> jcnn.convolve2d(jnp.ones((6, 6)), jnp.ones((3, 3)), "valid").shape
      (4, 4)
    """
    fn = "convolve2d"
    image, kernel = jnp.asarray(image), jnp.asarray(kernel)
    dtype = jnp.result_type(image, kernel)
    if not jnp.issubdtype(dtype, jnp.floating):
        dtype = jnp.result_type(float)
    image = as_float_array(image.astype(dtype), "image", fn)
    kernel = as_float_array(kernel.astype(dtype), "kernel", fn)
    if image.ndim != 2 or kernel.ndim != 2:
        raise ValueError(
            f"{fn}: image and kernel must be 2-d, got image.shape={image.shape}, "
            f"kernel.shape={kernel.shape}"
        )
    if 0 in image.shape or 0 in kernel.shape:
        raise ValueError(
            f"{fn}: empty input, image.shape={image.shape}, kernel.shape={kernel.shape}"
        )
    if not isinstance(mode, str) or mode.lower() not in ("full", "valid", "same"):
        raise ValueError(f"{fn}: mode must be 'full', 'valid' or 'same', got {mode!r}")
    mode = mode.lower()
    if mode == "valid":
        if all(k >= i for i, k in zip(image.shape, kernel.shape)) and image.shape != kernel.shape:
            image, kernel = kernel, image  # convolution commutes (scipy's rule)
        elif not all(i >= k for i, k in zip(image.shape, kernel.shape)):
            raise ValueError(
                f"{fn}: in 'valid' mode one input must be at least as large as the other "
                f"in every dim, got image.shape={image.shape}, kernel.shape={kernel.shape}"
            )
        pads = ((0, 0), (0, 0))
    elif mode == "full":
        pads = tuple((k - 1, k - 1) for k in kernel.shape)
    else:
        pads = tuple((k // 2, (k - 1) // 2) for k in kernel.shape)
    flipped = kernel[::-1, ::-1]
    out = _conv(
        image[None, :, :, None], flipped[:, :, None, None], None, (1, 1), pads, (1, 1), 1
    )
    return out[0, :, :, 0]
