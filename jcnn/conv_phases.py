"""The input gradient of a strided convolution split by stride phase: the
article's full convolution without multiplying the inserted zeros.

From Piotr Skalski's "Gentle Dive into Math Behind Convolutional Neural Networks"
(§9).  ``dX`` is the full convolution of the stride-dilated cotangent with
rot180(W) (the ``"fullconv"`` arrangement computes it that
way, ``s − 1`` zeros between the cotangent's values).  Per spatial dim, the
padded input rows ``r = a + s·t`` of one *phase* ``a`` (``0 ≤ a < s``) are
reached only by the kernel offsets ``k`` with ``k·d ≡ a (mod s)``, each from
cotangent row ``q = t − (k·d − a)/s``::

    dX_pad[a + s·t] = Σ_{k·d ≡ a (mod s)}  dZ[t − (k·d − a)/s] · W[k]ᵀ

— for each phase a stride-1 correlation of the (padded) cotangent with the
phase's sub-kernel of rot180(W), dilated by ``d / gcd(d, s)``.  Every phase
runs through the planned convolution the registry passes in; the phases are interleaved back and
the forward's padding cropped.  Stride 1 is one phase: exactly the full
convolution.
"""

from __future__ import annotations

import itertools
import math

import jax.numpy as jnp

from .conv_geometry import rot180

__all__ = ["input_grad_phases", "phase_taps"]


def phase_taps(f: int, s: int, d: int, a: int) -> list[int]:
    """The kernel offsets ``k`` (ascending) whose taps land on phase ``a``:
    ``k·d ≡ a (mod s)``.

    Examples:
      >>> from jcnn.conv_phases import phase_taps
      >>> [phase_taps(3, 2, 1, a) for a in range(2)]  # a 3-tap kernel, stride 2
      [[0, 2], [1]]
      >>> [phase_taps(4, 2, 2, a) for a in range(2)]  # dilation 2: every tap on phase 0
      [[0, 1, 2, 3], []]
    """
    return [k for k in range(f) if (k * d) % s == a]


def _dim_plan(n, f, s, lo, hi, d, m):
    """Per phase ``a`` of one spatial dim: ``(a, rows, taps, left, right, dilation)`` —
    the phase's padded-input rows ``a, a + s, …`` (``rows`` of them), its taps, the
    cotangent's left padding and right padding (negative: crop) and the
    sub-kernel's dilation."""
    n_pad = n + lo + hi
    plans = []
    for a in range(s):
        rows = max(0, -(-(n_pad - a) // s))
        taps = phase_taps(f, s, d, a)
        if not taps or not rows:
            plans.append((a, rows, [], 0, 0, 1))
            continue
        e0 = (taps[0] * d - a) // s
        de = d // math.gcd(d, s)
        span = (len(taps) - 1) * de
        left = e0 + span
        right = rows + span - left - m
        plans.append((a, rows, taps, left, right, de))
    return plans


def input_grad_phases(g, w, geo, *, block, precision, platforms, conv=None):
    """dX by stride phase (module docstring): each phase's stride-1 correlation
    through ``conv``, the planned convolution the registry passes in."""
    if conv is None:
        raise ValueError("conv: the 'phases' input gradient needs the planned convolution "
                         "(conv=) to run each phase through")
    nd = len(geo.window)
    n_batch, c_in = g.shape[0], geo.groups * geo.cig
    dims = [_dim_plan(n, f, s, lo, hi, d, m) for n, f, s, (lo, hi), d, m in
            zip(geo.in_sizes, geo.window, geo.stride, geo.pads, geo.dilation, geo.out_shape)]
    wt = rot180(w, geo.groups)  # (*window, C_out/G, C_in): flipped, channels swapped
    n_pad = list(geo.padded)
    out_dtype = jnp.result_type(g.dtype, w.dtype)
    dx = jnp.zeros((n_batch, *n_pad, c_in), out_dtype)
    for phase in itertools.product(*dims):
        if any(not taps for _, _, taps, *_ in phase):
            continue  # rows no tap reaches: their gradient is zero
        gp = g
        for axis, (_, _, _, left, right, _) in enumerate(phase, start=1):
            if left < 0 or right < 0:  # crop what the phase never reads
                stop = gp.shape[axis] + min(right, 0)
                gp = gp[(slice(None),) * axis + (slice(max(-left, 0), stop),)]
        gp = jnp.pad(gp, ((0, 0), *((max(left, 0), max(right, 0))
                                    for _, _, _, left, right, _ in phase), (0, 0)))
        # the phase's sub-kernel of rot180(W): flipped taps f − 1 − k, ascending
        index = tuple(slice(f - 1 - taps[-1], f - taps[0], (taps[1] - taps[0]) if len(taps) > 1
                            else 1)
                      for f, (_, _, taps, *_) in zip(geo.window, phase))
        sub = wt[index]
        h = conv(gp, sub, (1,) * nd, ((0, 0),) * nd, tuple(de for *_, de in phase),
                 geo.groups, precision=precision, platforms=platforms)
        where = (slice(None), *(slice(a, None, s) for (a, *_), s in zip(phase, geo.stride)))
        dx = dx.at[where].set(h.astype(out_dtype))
    crop = (slice(None), *(slice(lo, lo + n) for n, (lo, _) in zip(geo.in_sizes, geo.pads)))
    return dx[crop]

