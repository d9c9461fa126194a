"""What every jcnn Pallas kernel shares: tile settings, the ``pallas_call`` set-up,
masked loads and stores by computed offsets, the walks of a windowed sum by
stride phase, and the primitive that runs a kernel where it can.

Kernels live one op per module (``jcnn.conv_pallas``,
``jcnn.conv_pallas_dgrad``, ``jcnn.conv_pallas_wgrad``,
``jcnn.conv_pallas_depthwise``) and import only this module,
``jcnn.conv_geometry``, ``jcnn._checks`` and each other.

Every kernel sees its arrays whole and flattened (``flat_ref``) and
computes each element's offset itself: taps outside the image, the tails of
channel and position tiles are masked (``load`` reads zero there,
``store`` writes nothing), so no array is padded, cropped or copied around
a kernel.  Offsets are 32-bit: the plan keeps the kernels to arrays under 2³¹
elements.

``platform_kernel`` is how a kernel enters a program.  It binds one
primitive whose lowering picks, per platform the program is lowered for,

* the compiled (Triton) kernel on CUDA and ROCm,
* the same kernel in Pallas' interpret mode anywhere else (how the tests run
  it on a CPU),
* the XLA ``fallback`` arrangement under ``jax.export`` (a Triton call is not a
  stable, serialisable custom call) — so an exported program never holds one,

and whose JVP and batching rules are the fallback's: transformations never
enter the ``pallas_call`` (which has no JVP), and a program lowered for
several platforms at once lowers the compiled kernel only for the GPUs.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl
from jax.extend.core import Primitive
from jax.interpreters import ad, batching, mlir

__all__ = ["GPUS", "MIN_PROGRAMS", "TileSizes", "Walk", "as_2d", "call", "flat_ref",
           "forward_walk", "input_grad_walk", "load", "pick", "platform_kernel", "pow2_at_least",
           "shares", "store", "unravel"]

GPUS = ("cuda", "rocm")
MIN_PROGRAMS = 256  # split a reduction until about this many programs run at once


@dataclasses.dataclass(frozen=True)
class TileSizes:
    """One kernel call's tile settings, a static (hashable) argument like Pallas'
    own ``BlockSizes``: output ``positions`` per program, ``out`` output channels
    per program (at most), ``chunk`` contracted channels per product (at most),
    and Triton's ``num_warps`` and ``num_stages``.  ``min_dim`` is Triton's
    smallest matrix-product dimension.

    Examples:
      >>> from jcnn._pallas_base import TileSizes
      >>> TileSizes(positions=64).positions, TileSizes().chunk
      (64, 64)
    """

    positions: int = 128
    out: int = 64
    chunk: int = 64
    num_warps: int = 4
    num_stages: int = 3
    min_dim: int = 16


def pow2_at_least(n: int) -> int:
    """The smallest power of two ``≥ n`` (1 for ``n ≤ 1``)."""
    return 1 << max(n - 1, 0).bit_length()


def shares(total: int, programs: int) -> int:
    """How many shares a reduction over ``total`` steps is split into so that
    ``programs · shares`` is about ``MIN_PROGRAMS`` (at least 1, at most
    ``total``).

    Examples:
      >>> from jcnn._pallas_base import shares
      >>> shares(1568, 9), shares(1568, 576), shares(3, 1)
      (29, 1, 3)
    """
    return max(1, min(total, -(-MIN_PROGRAMS // max(programs, 1))))


@dataclasses.dataclass(frozen=True)
class Walk:
    """How one spatial dim of a windowed sum is walked, per *phase* ``φ``: the
    sum's position ``t`` (``t < extent[φ]``) is destination row ``y0[φ] + s·t``
    and reads source row ``a·t + e0[φ] + b·u`` through kernel offset
    ``i0[φ] + step·u`` for ``u < taps[φ]``.  The forward pass is one phase
    (``a`` the stride, ``b`` the dilation, ``e0 = −p_low``); the input gradient
    one per stride phase (``input_grad_walk``).
    """

    src: int  # source rows
    dst: int  # destination rows
    a: int
    b: int
    s: int
    step: int
    y0: tuple
    e0: tuple
    i0: tuple
    taps: tuple
    extent: tuple

    @property
    def phases(self) -> int:
        return len(self.y0)


def forward_walk(n: int, f: int, s: int, d: int, lo: int, m: int) -> Walk:
    """The forward sum along one dim: output ``p`` reads input ``p·s + i·d − lo``.

    Examples:
      >>> from jcnn._pallas_base import forward_walk
      >>> forward_walk(8, 3, 2, 1, 1, 4).e0
      (-1,)
    """
    return Walk(n, m, s, d, 1, 1, (0,), (-lo,), (0,), (f,), (m,))


def input_grad_walk(n: int, f: int, s: int, d: int, lo: int, m: int) -> Walk:
    """The input gradient along one dim by stride phase: input row ``y`` (phase
    ``φ = (y + lo) mod s``) gathers cotangent rows ``(y + lo − i·d)/s`` over the
    kernel offsets ``i`` with ``i·d ≡ φ (mod s)`` — ``i = i0 + u·s/g``, ``g =
    gcd(d, s)``, reading row ``t + e0 − u·d/g`` for ``y = y0 + s·t`` (module
    docstring of ``jcnn.conv_pallas_dgrad``).  A phase no offset reaches
    keeps ``taps = 0``: its rows are written zero.

    Examples:
      >>> from jcnn._pallas_base import input_grad_walk
      >>> w = input_grad_walk(8, 3, 2, 1, 1, 4)  # 3 taps, stride 2, padding 1
      >>> w.y0, w.i0, w.taps, w.e0, w.b
      ((1, 0), (0, 1), (2, 1), (1, 0), -1)
    """
    g = math.gcd(d, s)
    rows = []
    for phase in range(s):
        y0 = (phase - lo) % s
        if y0 >= n:
            continue
        taps = [k for k in range(f) if (k * d) % s == phase]
        i0 = taps[0] if taps else 0
        rows.append((y0, (y0 + lo - i0 * d) // s, i0, len(taps), -(-(n - y0) // s)))
    y0, e0, i0, taps, extent = zip(*rows)
    return Walk(m, n, 1, -(d // g), s, s // g, y0, e0, i0, taps, extent)


def pick(values, index):
    """``values[index]`` for a traced scalar ``index`` (a chain of selects; the
    value itself when there is one).

    Examples:
      >>> import jax.numpy as jnp
      >>> from jcnn._pallas_base import pick
      >>> int(pick((5, 7, 9), jnp.int32(2))), pick((4,), None)
      (9, 4)
    """
    if len(set(values)) == 1:
        return values[0]
    out = jnp.int32(values[0])
    for k, v in enumerate(values[1:], start=1):
        out = jnp.where(index == k, jnp.int32(v), out)
    return out


def flat_ref(shape):
    """A ``BlockSpec`` handing every program the whole flattened array: the
    kernels compute their own element offsets."""
    return pl.BlockSpec((math.prod(shape),), lambda *_: (0,))


def load(ref, offsets, mask):
    """``ref[offsets]`` where ``mask``, zero elsewhere (nothing is read there)."""
    from jax.experimental.pallas import triton as plgpu

    return plgpu.load(ref.at[offsets], mask=mask, other=0)


def store(ref, offsets, value, mask):
    """``ref[offsets] = value`` where ``mask``.  Masked-off offsets are sent past the
    end, where interpret mode's scatter drops them (a wrapped or clamped index
    could land on another program's element; a GPU writes nothing there)."""
    from jax.experimental.pallas import triton as plgpu

    offsets = jnp.where(mask, offsets, jnp.int32(ref.shape[0]))
    plgpu.store(ref.at[offsets], value.astype(ref.dtype), mask=mask)


def unravel(index, sizes):
    """``index`` as digits of the mixed radix ``sizes`` (most significant first),
    with ``lax.div``/``lax.rem`` in ``index``'s own integer type (what Triton's
    lowering accepts; ``jnp``'s ``//`` and ``%`` add boolean fix-ups it rejects).

    Examples:
      >>> import jax.numpy as jnp
      >>> from jcnn._pallas_base import unravel
      >>> [int(d) for d in unravel(jnp.int32(23), (None, 3, 4))]  # 23 = 1·12 + 2·4 + 3
      [1, 2, 3]
    """
    digits = []
    for size in reversed(sizes[1:]):
        if isinstance(size, int) and size == 1:
            digits.append(jnp.zeros_like(index))
            continue
        size = jnp.asarray(size).astype(index.dtype)
        digits.append(jax.lax.rem(index, size))
        index = jax.lax.div(index, size)
    return (index, *reversed(digits))


def _triton_params(tile: TileSizes):
    """Triton's compiler parameters (without them a CUDA lowering picks Mosaic GPU,
    which stages whole blocks — here a whole padded image — in shared memory)."""
    from jax.experimental.pallas import triton as plgpu

    return plgpu.CompilerParams(num_warps=tile.num_warps, num_stages=tile.num_stages)


def call(kernel, *, out_shape, grid, in_specs, out_specs, name, interpret,
         tile: TileSizes = TileSizes()):
    """``pl.pallas_call`` as every jcnn kernel runs it: interpret mode off a GPU,
    Triton's compiler parameters (from ``tile``) on one."""
    return pl.pallas_call(kernel, out_shape=out_shape, grid=grid, in_specs=in_specs,
                          out_specs=out_specs, interpret=interpret,
                          compiler_params=None if interpret else _triton_params(tile),
                          name=name)


def as_2d(x, w, geo):
    """A 1-D convolution as a 2-D one of height 1: ``(x, w, geo, lifted)``."""
    if geo.nd not in (1, 2):
        raise ValueError(f"conv: the 'pallas' arrangements take 1-D and 2-D convolutions, got "
                         f"{geo.nd} spatial dims (window {geo.window})")
    if geo.nd == 2:
        return x, w, geo, False
    geo = dataclasses.replace(geo, x_shape=(geo.x_shape[0], 1, *geo.x_shape[1:]),
                              w_shape=(1, *geo.w_shape), stride=(1, *geo.stride),
                              pads=((0, 0), *geo.pads), dilation=(1, *geo.dilation))
    return (None if x is None else x[:, None]), (None if w is None else w[None]), geo, True


# --------------------------------------------------------------------------- #
# The primitive: a kernel where it compiles, the fallback where it must not run.
# --------------------------------------------------------------------------- #
_kernel_p = Primitive("jcnn_platform_kernel")
_kernel_p.multiple_results = True


def platform_kernel(kernel, fallback, *args):
    """``kernel(*args, interpret=...)`` where the program runs, ``fallback(*args)``
    under export and for every transformation (module docstring).  Both return
    one array of the same shape and dtype.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from jcnn._pallas_base import platform_kernel
      >>> twice = lambda x, interpret: 2 * x
      >>> float(jax.grad(lambda x: platform_kernel(twice, lambda x: 2 * x, x))(3.0))
      2.0
    """
    return _kernel_p.bind(*args, kernel=kernel, fallback=fallback)[0]


def _abstract_eval(*avals, kernel, fallback):
    out = jax.eval_shape(fallback, *(jax.ShapeDtypeStruct(a.shape, a.dtype) for a in avals))
    return [jax.core.ShapedArray(out.shape, out.dtype)]


def _impl(*args, kernel, fallback):
    return jax.jit(lambda *a: _kernel_p.bind(*a, kernel=kernel, fallback=fallback))(*args)


def _lowering(interpret: bool):
    def rule(ctx, *args, kernel, fallback):
        params = getattr(ctx.module_context, "lowering_parameters", None)
        if getattr(params, "for_export", False):
            fn = fallback
        else:
            fn = functools.partial(kernel, interpret=interpret)
        return mlir.lower_fun(lambda *a: [fn(*a)], multiple_results=True)(ctx, *args)
    return rule


def _jvp(primals, tangents, *, kernel, fallback):
    tangents = [ad.instantiate_zeros(t) for t in tangents]
    out = _kernel_p.bind(*primals, kernel=kernel, fallback=fallback)
    return out, [jax.jvp(fallback, tuple(primals), tuple(tangents))[1]]


def _batch(args, dims, *, kernel, fallback):
    args = [a if d is None else jnp.moveaxis(a, d, 0) for a, d in zip(args, dims)]
    axes = tuple(None if d is None else 0 for d in dims)  # None: not mapped

    def mapped_kernel(*a, interpret):
        return jax.vmap(functools.partial(kernel, interpret=interpret), axes)(*a)

    out = _kernel_p.bind(*args, kernel=mapped_kernel, fallback=jax.vmap(fallback, axes))
    return out, [0]


_kernel_p.def_impl(_impl)
_kernel_p.def_abstract_eval(_abstract_eval)
ad.primitive_jvps[_kernel_p] = _jvp
batching.primitive_batchers[_kernel_p] = _batch
mlir.register_lowering(_kernel_p, _lowering(interpret=True))
for _gpu in GPUS:
    mlir.register_lowering(_kernel_p, _lowering(interpret=False), platform=_gpu)
