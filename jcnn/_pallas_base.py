"""What every jcnn Pallas kernel shares: tile settings, the ``pallas_call`` set-up,
padding for whole tiles, and the primitive that runs a kernel where it can.

Kernels live one op per module (:mod:`jcnn.conv_pallas`,
:mod:`jcnn.conv_pallas_wgrad`, :mod:`jcnn.conv_pallas_depthwise`) and import
only this module and :mod:`jcnn.conv_geometry`.

:func:`platform_kernel` is how a kernel enters a program.  It binds one
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

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl
from jax.extend.core import Primitive
from jax.interpreters import ad, batching, mlir

__all__ = ["GPUS", "MIN_PROGRAMS", "TileSizes", "as_2d", "batch_shares", "call", "flat_tiles",
           "pad_for_tiles", "platform_kernel", "pow2_at_least", "tiles", "unravel"]

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


def tiles(out_h: int, out_w: int, c_in: int, c_out: int, tile: TileSizes = TileSizes()) -> dict:
    """One program's tile, every size a power of two (as Triton's blocks): ``cols``
    output columns, ``rows`` output rows (``rows·cols`` about ``tile.positions``, at
    least ``tile.min_dim``), ``out`` output channels (up to ``tile.out``) and
    ``chunk`` input channels per product (up to ``tile.chunk``, at least
    ``tile.min_dim``).

    Examples:
      >>> from jcnn._pallas_base import tiles
      >>> tiles(56, 56, 64, 64)
      {'rows': 2, 'cols': 64, 'out': 64, 'chunk': 64}
      >>> tiles(7, 7, 3, 10)
      {'rows': 8, 'cols': 8, 'out': 16, 'chunk': 16}
    """
    cols = min(pow2_at_least(out_w), tile.positions)
    rows = max(min(pow2_at_least(out_h), tile.positions // cols), tile.min_dim // cols, 1)
    out = max(min(tile.out, pow2_at_least(c_out)), tile.min_dim)
    chunk = max(min(tile.chunk, pow2_at_least(c_in)), tile.min_dim)
    return {"rows": rows, "cols": cols, "out": out, "chunk": chunk}


def flat_tiles(positions: int, c_in: int, c_out: int, tile: TileSizes = TileSizes()) -> dict:
    """A tile over flattened positions: ``positions`` (up to ``tile.positions``, at
    least ``tile.min_dim``), ``out`` and ``chunk`` as in :func:`tiles`.

    Examples:
      >>> from jcnn._pallas_base import flat_tiles
      >>> flat_tiles(56 * 58, 64, 64)
      {'positions': 128, 'out': 64, 'chunk': 64}
      >>> flat_tiles(9, 3, 10)
      {'positions': 16, 'out': 16, 'chunk': 16}
    """
    t = tiles(1, positions, c_in, c_out, tile)
    return {"positions": max(min(pow2_at_least(positions), tile.positions), tile.min_dim),
            "out": t["out"], "chunk": t["chunk"]}


def batch_shares(n: int, programs: int) -> int:
    """How many shares a reduction over ``n`` items is split into: the largest
    divisor of ``n`` that keeps ``programs · shares`` at most about
    :data:`MIN_PROGRAMS` (at least 1).

    Examples:
      >>> from jcnn._pallas_base import batch_shares
      >>> batch_shares(64, 9 * 2 * 1)  # 3×3, 64 → 64 channels: 18 programs per share
      8
      >>> batch_shares(64, 9 * 16 * 8)  # 512 → 512: enough programs already
      1
    """
    want = max(1, -(-MIN_PROGRAMS // max(programs, 1)))
    return max(d for d in range(1, n + 1) if n % d == 0 and d <= want)


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
        if size == 1:
            digits.append(jnp.zeros_like(index))
            continue
        size = jnp.asarray(size, index.dtype)
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


def pad_for_tiles(xp, steps, t, window, stride, dilation, c_pad):
    """``xp`` ``(N, Hp, Wp, C)`` with zeros below, right and after the channels
    (``C`` → ``c_pad``), so that the strided loads of ``steps`` tiles of
    ``t["rows"] × t["cols"]`` outputs stay inside the array and every channel
    tile is whole; zeros add nothing to a sum.  With a 1×1 window, unit stride
    and dilation it pads a cotangent ``dZ`` to whole tiles.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jcnn._pallas_base import pad_for_tiles
      >>> xp = jnp.ones((1, 5, 5, 3))  # 2 × 1 tiles of 4 × 8 outputs, 3 × 3 window
      >>> pad_for_tiles(xp, (2, 1), {"rows": 4, "cols": 8}, (3, 3), (1, 1), (1, 1), 4).shape
      (1, 10, 10, 4)
    """
    need = [(n * size - 1) * s + (k - 1) * d + 1
            for n, size, s, k, d in zip(steps, (t["rows"], t["cols"]), stride, window, dilation)]
    return jnp.pad(xp, ((0, 0), (0, max(need[0] - xp.shape[1], 0)),
                        (0, max(need[1] - xp.shape[2], 0)), (0, c_pad - xp.shape[3])))


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
