"""Shared Hypothesis strategies (conv and pool cases) and a finite-difference check;
the lax oracles are in ``oracles.py``."""

from __future__ import annotations

from dataclasses import dataclass

import jax.numpy as jnp
import numpy as np
from hypothesis import strategies as st

from jcnn.data import write_idx


@dataclass(frozen=True)
class ConvCase:
    x_shape: tuple
    w_shape: tuple
    stride: tuple
    padding: object  # any public padding form
    pads: tuple  # the same padding as explicit (low, high) pairs
    dilation: tuple
    groups: int
    bias: bool
    seed: int

    @property
    def nd(self):
        return len(self.stride)

    def arrays(self, dtype=np.float64):
        rng = np.random.default_rng(self.seed)
        x = rng.standard_normal(self.x_shape).astype(dtype)
        w = rng.standard_normal(self.w_shape).astype(dtype)
        b = rng.standard_normal(self.w_shape[-1]).astype(dtype) if self.bias else None
        return x, w, b

    def kwargs(self):
        return dict(stride=self.stride, padding=self.padding, dilation=self.dilation,
                    groups=self.groups)


def _same_pair(n, f, s, d):
    out = -(-n // s)
    total = max((out - 1) * s + (f - 1) * d + 1 - n, 0)
    return total // 2, total - total // 2


@st.composite
def conv_cases(draw, nd=None, max_kernel=5, max_stride=3, max_dilation=3, batch=(1, 2)):
    """Compatible conv arguments: every padding form, groups, even kernels, s > f."""
    nd = draw(st.sampled_from([1, 2, 3])) if nd is None else nd
    kmax = min(max_kernel, 3) if nd == 3 else max_kernel
    window = tuple(draw(st.integers(1, kmax)) for _ in range(nd))
    stride = tuple(draw(st.integers(1, max_stride)) for _ in range(nd))
    dilation = tuple(draw(st.integers(1, max_dilation if nd < 3 else 2)) for _ in range(nd))
    form = draw(st.sampled_from(["VALID", "SAME", "same", "int", "ints", "pairs"]))
    if form == "int":
        p = draw(st.integers(0, 3))
        pads_raw, padding = [(p, p)] * nd, p
    elif form == "ints":
        ps = [draw(st.integers(0, 3)) for _ in range(nd)]
        pads_raw, padding = [(p, p) for p in ps], tuple(ps)
    elif form == "pairs":
        pads_raw = [(draw(st.integers(0, 3)), draw(st.integers(0, 3))) for _ in range(nd)]
        padding = tuple(pads_raw)
    else:
        pads_raw, padding = None, form
    sizes = []
    for i in range(nd):
        f_eff = (window[i] - 1) * dilation[i] + 1
        extra = pads_raw[i][0] + pads_raw[i][1] if pads_raw else 0
        lo = max(1, f_eff - extra) if form not in ("SAME", "same") else 1
        sizes.append(draw(st.integers(lo, lo + (3 if nd == 3 else 5))))
    if pads_raw is None:
        pads = (tuple(_same_pair(n, f, s, d) for n, f, s, d in
                      zip(sizes, window, stride, dilation)) if form != "VALID"
                else ((0, 0),) * nd)
    else:
        pads = tuple(pads_raw)
    groups = draw(st.integers(1, 3))
    cig = draw(st.integers(1, 3))
    cog = draw(st.integers(1, 3))
    n = draw(st.sampled_from(batch))
    return ConvCase(
        x_shape=(n, *sizes, groups * cig),
        w_shape=(*window, cig, groups * cog),
        stride=stride, padding=padding, pads=pads, dilation=dilation, groups=groups,
        bias=draw(st.booleans()), seed=draw(st.integers(0, 2**31 - 1)),
    )


@dataclass(frozen=True)
class PoolCase:
    x_shape: tuple
    window: tuple
    stride: tuple
    padding: object
    pads: tuple
    seed: int


@st.composite
def pool_cases(draw, nd=None):
    """Pool arguments within PyTorch's rule (padding <= window // 2 per side)."""
    nd = draw(st.sampled_from([1, 2, 3])) if nd is None else nd
    window = tuple(draw(st.integers(1, 3 if nd == 3 else 4)) for _ in range(nd))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    pads = tuple((draw(st.integers(0, f // 2)), draw(st.integers(0, f // 2))) for f in window)
    form = draw(st.sampled_from(["pairs", "VALID"]))
    if form == "VALID":
        pads = ((0, 0),) * nd
    sizes = tuple(draw(st.integers(max(1, f - lo - hi), f + 4)) for f, (lo, hi) in
                  zip(window, pads))
    n = draw(st.integers(1, 2))
    c = draw(st.integers(1, 3))
    return PoolCase((n, *sizes, c), window, stride, pads if form == "pairs" else "VALID",
                    pads, draw(st.integers(0, 2**31 - 1)))


def finite_difference_check(f, args, seed, eps=1e-5, rtol=1e-5, atol=1e-7):
    """First and second order derivatives of scalar ``f`` vs central differences.

    The jitted equivalent of ``jax.test_util.check_grads(f, args, order=2,
    modes=["rev"])``: for random directions ``v`` and ``u`` it compares
    ``<∇f, v>`` with ``(f(a + εv) − f(a − εv)) / 2ε`` and the reverse-over-reverse
    ``<H v, u>`` with ``(<∇f(a + εv), u> − <∇f(a − εv), u>) / 2ε``, all in one
    compiled program (check_grads retraces per call, too slow for 200 examples).
    """
    import jax

    rng = np.random.default_rng(seed)
    vs = tuple(rng.standard_normal(np.shape(a)) for a in args)
    us = tuple(rng.standard_normal(np.shape(a)) for a in args)

    def shift(a, v, t):
        return tuple(x + t * y for x, y in zip(a, v))

    def dot(a, b):
        return sum(jnp.vdot(x, y) for x, y in zip(a, b))

    grad = jax.grad(lambda *a: f(*a), argnums=tuple(range(len(args))))

    @jax.jit
    def run(args, vs, us):
        fd1 = (f(*shift(args, vs, eps)) - f(*shift(args, vs, -eps))) / (2 * eps)
        an1 = dot(grad(*args), vs)
        fd2 = (dot(grad(*shift(args, vs, eps)), us)
               - dot(grad(*shift(args, vs, -eps)), us)) / (2 * eps)
        hvp = jax.grad(lambda *a: dot(grad(*a), us), argnums=tuple(range(len(args))))(*args)
        an2 = dot(hvp, vs)
        return fd1, an1, fd2, an2

    fd1, an1, fd2, an2 = run(tuple(args), vs, us)
    np.testing.assert_allclose(an1, fd1, rtol=rtol, atol=atol, err_msg="first order")
    np.testing.assert_allclose(an2, fd2, rtol=rtol, atol=atol, err_msg="second order")


def write_toy_mnist(d, n_train=64, n_test=32, compress=False, seed=0):
    """The four MNIST IDX files of a learnable toy (class c lights up row block c)."""
    rng = np.random.default_rng(seed)
    labels = {"train": rng.integers(0, 10, n_train), "t10k": rng.integers(0, 10, n_test)}
    for split, lab in labels.items():
        # a learnable toy: class c lights up row block c
        img = rng.integers(0, 40, (len(lab), 28, 28)).astype(np.uint8)
        for i, c in enumerate(lab):
            img[i, 2 * c + 4:2 * c + 7, 4:24] = 255
        write_idx(d / f"{split}-images-idx3-ubyte{'.gz' if compress else ''}", img,
                  compress=compress)
        write_idx(d / f"{split}-labels-idx1-ubyte{'.gz' if compress else ''}",
                  lab.astype(np.uint8), compress=compress)
    return labels


@st.composite
def transpose_cases(draw):
    """conv_transpose arguments (a dict): any rank, stride, dilation, output padding,
    padding up to what the full output allows, groups."""
    nd = draw(st.sampled_from([1, 2, 3]))
    window = tuple(draw(st.integers(1, 3 if nd == 3 else 4)) for _ in range(nd))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(nd))
    out_pad = tuple(draw(st.integers(0, s - 1)) for s in stride)
    sizes = tuple(draw(st.integers(1, 4)) for _ in range(nd))
    pads = []
    for n, f, s, d, op in zip(sizes, window, stride, dilation, out_pad):
        full = (n - 1) * s + (f - 1) * d + 1 + op
        lo = draw(st.integers(0, min(2, full - 1)))
        hi = draw(st.integers(0, min(2, full - 1 - lo)))
        pads.append((lo, hi))
    groups = draw(st.integers(1, 2))
    return dict(x=(draw(st.integers(1, 2)), *sizes, groups * draw(st.integers(1, 2))),
                window=window, stride=stride, dilation=dilation, output_padding=out_pad,
                pads=tuple(pads), groups=groups, cog=draw(st.integers(1, 2)),
                bias=draw(st.booleans()), seed=draw(st.integers(0, 2**31 - 1)))
