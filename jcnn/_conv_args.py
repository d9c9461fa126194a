"""Argument checks shared by conv and conv_transpose: arrays, ranks, dtypes,
strides, groups, padding — canonicalised once, errors naming the function."""

from __future__ import annotations

from ._checks import as_float_array, check_batched, same_dtype
from ._padding_rules import ntuple, resolve_padding
from .conv_plan import ConvPlan

__all__ = []


def layout_hint(nd: int) -> str:
    """What channels-last means, and how to convert a PyTorch kernel."""
    sp = ("L",) if nd == 1 else ("H", "W") if nd == 2 else ("D", "H", "W") if nd == 3 else \
        tuple(f"S{i}" for i in range(nd))
    win = ", ".join(f"k{a.lower()}" for a in sp)
    perm = ", ".join(map(str, (*range(2, nd + 2), 1, 0)))
    return (f"; jcnn is channels-last: x (N, {', '.join(sp)}, C), w ({win}, C_in, C_out) — "
            f"a PyTorch kernel (C_out, C_in, {win}) is w.transpose({perm})")


def common(fn, x, w, b, stride, dilation, groups, nd, w_layout):
    """Arrays, ranks, dtypes and the int arguments of a conv-like call."""
    x = as_float_array(x, "x", fn)
    w = as_float_array(w, "w", fn)
    b = None if b is None else as_float_array(b, "b", fn)
    nd = check_batched(x, "x", fn, nd)
    shapes = f"(x.shape={x.shape}, w.shape={w.shape})"
    if w.ndim != nd + 2:
        raise ValueError(f"{fn}: w must be {nd + 2}-d {w_layout} for {nd} spatial dims "
                         f"{shapes}")
    same_dtype(fn, x=x, w=w, b=b)
    stride = ntuple(stride, nd, "stride", fn)
    dilation = ntuple(dilation, nd, "dilation", fn)
    (groups,) = ntuple(groups, 1, "groups", fn)
    if 0 in w.shape[:-2]:
        raise ValueError(f"{fn}: the kernel window {w.shape[:-2]} has a zero-size dim {shapes}")
    return x, w, b, nd, stride, dilation, groups, shapes


def canonicalize(fn, x, w, b, stride, padding, dilation, groups, nd=None):
    """Check a conv call and return ``(x, w, b, stride, pads, dilation, groups)``."""
    x, w, b, nd, stride, dilation, groups, shapes = common(
        fn, x, w, b, stride, dilation, groups, nd, "(*window, C_in/groups, C_out)")
    nd = len(w.shape) - 2
    c_in, cig, c_out = x.shape[-1], w.shape[-2], w.shape[-1]
    if c_in % groups or c_out % groups:
        raise ValueError(
            f"{fn}: `groups` (={groups}) must divide the input channels (={c_in}) "
            f"and the output channels (={c_out}) {shapes}"
        )
    if c_in // groups != cig:
        expect = f"{cig * groups} ({cig} per group x {groups} groups)" if groups > 1 else cig
        raise ValueError(f"{fn}: x has {c_in} channels but w expects {expect} {shapes}"
                         f"{layout_hint(nd)}")
    if b is not None and b.shape != (c_out,):
        raise ValueError(
            f"{fn}: b must have shape ({c_out},) to match w's {c_out} output "
            f"channels, got b.shape={b.shape} {shapes}"
        )
    window = w.shape[:-2]
    pads = resolve_padding(padding, x.shape[1:-1], window, stride, dilation, fn)
    for i, (n, f, (lo, hi), d) in enumerate(zip(x.shape[1:-1], window, pads, dilation)):
        f_eff = (f - 1) * d + 1
        if n + lo + hi < f_eff:
            raise ValueError(
                f"{fn}: the kernel (size {f}, dilation {d}: {f_eff}) is larger than the "
                f"padded input ({n} + {lo} + {hi} = {n + lo + hi}) in spatial dim {i} {shapes}"
                f"{layout_hint(nd)}"
            )
    return x, w, b, stride, pads, dilation, groups


def check_plan(plan, fn):
    if plan is not None and not isinstance(plan, ConvPlan):
        raise TypeError(f"{fn}: `plan` must be a jcnn.ConvPlan or None, got "
                        f"{type(plan).__name__}")
    return plan
