"""Conv's forward windowed sum as one fused Pallas kernel (an arrangement).

From Piotr Skalski's "Gentle Dive into Math Behind Convolutional Neural Networks"
(§3, §6).  The kernel computes the article's sum for one tile of output rows ×
output channels of one image::

    Z[n, p, q, o] = Σ_i Σ_j  X_pad[n, p·s_h + i·d_h, q·s_w + j·d_w, :] · W[i, j, :, o]

walking the kernel offsets ``(i, j)``: each offset's strided slice of the padded
image is loaded straight from the input and multiplied into one f32
accumulator — no patch matrix and no per-offset product is written to memory
(the XLA arrangements in :mod:`jcnn.conv_arrangements` write one or the other).
At stride 1 the padded image is flattened to ``(Hp·Wp, C)`` rows and the outputs
are computed on the padded width, so that offset ``(i, j)`` is one contiguous
shift by ``i·d_h·Wp + j·d_w`` rows (the discarded ``Wp - OW`` columns per row are
the price); strided layers load strided ``rows × cols`` tiles.  Input channels
are walked in chunks by a loop that Triton pipelines.  Groups run as one kernel
call per group.  Tile sizes and Triton's warps and stages are module constants
chosen from ``python -m benchmarks.pallas_gpu tune`` on an H200 (BENCHMARKS.md).

On a GPU the kernel compiles through Pallas (Triton); anywhere else it runs in
Pallas' interpret mode, which is how the tests check it on a CPU.  The plan
(:mod:`jcnn.conv_plan`) picks it on CUDA only where an H200 measured it faster
than every XLA arrangement (f32 stride-1 3×3 layers of up to 64 channels,
forward and dX); ``plan=ConvPlan(forward="pallas", ...)`` forces it anywhere.
Two spatial dims (1-D convolutions are lifted to 2-D); tested with jax 0.10
(interpret mode, CUDA lowering) and compiled on jax 0.11.2 with CUDA.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl

from ._checks import acc_dtype

__all__ = ["as_2d", "call", "flat_tiles", "forward_pallas", "on_platforms", "pad_for_tiles",
           "tiles", "unravel"]

TILE_POSITIONS = 128  # output positions (rows × columns) per program
TILE_CHANNELS = 64  # output channels per program, at most
CHUNK_CHANNELS = 64  # input channels per product, at most
MIN_DIM = 16  # Triton's smallest matrix-product dimension
NUM_WARPS = 4  # Triton's warps per program
NUM_STAGES = 3  # Triton's software-pipeline stages
_GPUS = ("cuda", "rocm")


def _pow2_at_least(n: int) -> int:
    return 1 << max(n - 1, 0).bit_length()


def _pow2_at_most(n: int) -> int:
    return 1 << (max(n, 1).bit_length() - 1)


def tiles(out_h: int, out_w: int, c_in: int, c_out: int) -> dict:
    """One program's tile, every size a power of two (as Triton's blocks): ``cols``
    output columns, ``rows`` output rows (``rows·cols`` about
    :data:`TILE_POSITIONS`, at least 16), ``out`` output channels (up to
    :data:`TILE_CHANNELS`) and ``chunk`` input channels per product (up to
    :data:`CHUNK_CHANNELS`, at least 16; the channels are zero-padded to a
    multiple of it).

    Examples:
      >>> from jcnn.conv_pallas import tiles
      >>> tiles(56, 56, 64, 64)
      {'rows': 2, 'cols': 64, 'out': 64, 'chunk': 64}
      >>> tiles(7, 7, 3, 10)
      {'rows': 8, 'cols': 8, 'out': 16, 'chunk': 16}
    """
    cols = min(_pow2_at_least(out_w), TILE_POSITIONS)
    rows = max(min(_pow2_at_least(out_h), TILE_POSITIONS // cols), MIN_DIM // cols, 1)
    out = max(min(TILE_CHANNELS, _pow2_at_least(c_out)), MIN_DIM)
    chunk = max(min(CHUNK_CHANNELS, _pow2_at_least(c_in)), MIN_DIM)
    return {"rows": rows, "cols": cols, "out": out, "chunk": chunk}


def unravel(index, sizes):
    """``index`` as digits of the mixed radix ``sizes`` (most significant first),
    with ``lax.div``/``lax.rem`` in ``index``'s own integer type (what Triton's
    lowering accepts; ``jnp``'s ``//`` and ``%`` add boolean fix-ups it rejects)."""
    digits = []
    for size in reversed(sizes[1:]):
        if size == 1:
            digits.append(jnp.zeros_like(index))
            continue
        size = jnp.asarray(size, index.dtype)
        digits.append(jax.lax.rem(index, size))
        index = jax.lax.div(index, size)
    return (index, *reversed(digits))


def _triton_params():
    """Triton's compiler parameters (without them a CUDA lowering picks Mosaic GPU,
    which stages whole blocks — here a whole padded image — in shared memory)."""
    from jax.experimental.pallas import triton as plgpu

    return plgpu.CompilerParams(num_warps=NUM_WARPS, num_stages=NUM_STAGES)


def call(kernel, *, out_shape, grid, in_specs, out_specs, name, interpret):
    """``pl.pallas_call`` as every jcnn kernel runs it: interpret mode off a GPU,
    Triton's compiler parameters on one."""
    return pl.pallas_call(kernel, out_shape=out_shape, grid=grid, in_specs=in_specs,
                          out_specs=out_specs, interpret=interpret,
                          compiler_params=None if interpret else _triton_params(), name=name)


def pad_for_tiles(xp, steps, t, window, stride, dilation, c_pad):
    """``xp`` ``(N, Hp, Wp, C)`` with zeros below, right and after the channels
    (``C`` → ``c_pad``), so that the strided loads of ``steps`` tiles of
    ``t["rows"] × t["cols"]`` outputs stay inside the array and every channel
    tile is whole; zeros add nothing to a sum.  With a 1×1 window, unit stride
    and dilation it pads a cotangent ``dZ`` to whole tiles.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jcnn.conv_pallas import pad_for_tiles
      >>> xp = jnp.ones((1, 5, 5, 3))  # 2 × 1 tiles of 4 × 8 outputs, 3 × 3 window
      >>> pad_for_tiles(xp, (2, 1), {"rows": 4, "cols": 8}, (3, 3), (1, 1), (1, 1), 4).shape
      (1, 10, 10, 4)
    """
    need = [(n * size - 1) * s + (k - 1) * d + 1
            for n, size, s, k, d in zip(steps, (t["rows"], t["cols"]), stride, window, dilation)]
    return jnp.pad(xp, ((0, 0), (0, max(need[0] - xp.shape[1], 0)),
                        (0, max(need[1] - xp.shape[2], 0)), (0, c_pad - xp.shape[3])))


def _offsets_and_chunks(window, c_pad, chunk, product, total):
    """``total`` plus ``product(i, j, c0)`` for every kernel offset ``(i, j)`` and
    input-channel chunk ``c0``.  One chunk: the offsets unrolled.  Several: one
    loop over (chunk, offset) steps with one product each — Triton pipelines the
    loop, staging only one step's tiles per stage (a loop over chunks with the
    offsets unrolled inside staged all nine offsets' tiles: 880 KiB of shared
    memory, more than an H200 has), and its compile time does not grow with the
    channels."""
    kh, kw = window
    if c_pad == chunk:
        for i in range(kh):
            for j in range(kw):
                total += product(i, j, 0)
        return total

    def step(k, total):
        c, i, j = unravel(k, (None, kh, kw))
        return total + product(i, j, pl.multiple_of(c * chunk, chunk))

    return jax.lax.fori_loop(jnp.int32(0), jnp.int32(kh * kw * (c_pad // chunk)), step, total)


def _kernel(x_ref, w_ref, o_ref, *, window, stride, dilation, t, precision, acc):
    (sh, sw), (dh, dw) = stride, dilation
    rows, cols, chunk = t["rows"], t["cols"], t["chunk"]
    h0 = pl.program_id(1) * rows * sh
    w0 = pl.program_id(2) * cols * sw

    def product(i, j, c):
        xs = x_ref[pl.ds(h0 + i * dh, rows, sh), pl.ds(w0 + j * dw, cols, sw), pl.ds(c, chunk)]
        return jnp.dot(xs.reshape(rows * cols, chunk), w_ref[i, j, pl.ds(c, chunk), :],
                       precision=precision, preferred_element_type=acc)

    total = _offsets_and_chunks(window, x_ref.shape[-1], chunk, product,
                                jnp.zeros((rows * cols, t["out"]), acc))
    o_ref[...] = total.reshape(rows, cols, t["out"]).astype(o_ref.dtype)


def _flat_kernel(x_ref, w_ref, o_ref, *, window, dilation, width, t, precision, acc):
    """Stride 1 on the flattened image: offset ``(i, j)`` of output row ``m`` is
    input row ``m + i·d_h·Wp + j·d_w`` — every load one contiguous block."""
    dh, dw = dilation
    m, chunk = t["positions"], t["chunk"]
    m0 = pl.multiple_of(pl.program_id(1) * m, m)

    def product(i, j, c):
        xs = x_ref[pl.ds(m0 + i * dh * width + j * dw, m), pl.ds(c, chunk)]
        return jnp.dot(xs, w_ref[i, j, pl.ds(c, chunk), :], precision=precision,
                       preferred_element_type=acc)

    total = _offsets_and_chunks(window, x_ref.shape[-1], chunk, product,
                                jnp.zeros((m, t["out"]), acc))
    o_ref[...] = total.astype(o_ref.dtype)


def flat_tiles(positions: int, c_in: int, c_out: int) -> dict:
    """The stride-1 kernel's tile: ``positions`` flattened output positions (up to
    :data:`TILE_POSITIONS`, at least 16), ``out`` and ``chunk`` as in :func:`tiles`.

    Examples:
      >>> from jcnn.conv_pallas import flat_tiles
      >>> flat_tiles(56 * 58, 64, 64)
      {'positions': 128, 'out': 64, 'chunk': 64}
      >>> flat_tiles(9, 3, 10)
      {'positions': 16, 'out': 16, 'chunk': 16}
    """
    t = tiles(1, positions, c_in, c_out)
    return {"positions": max(min(_pow2_at_least(positions), TILE_POSITIONS), MIN_DIM),
            "out": t["out"], "chunk": t["chunk"]}


def _weights(w, c_pad, out_pad):
    """``w`` with zero input channels up to ``c_pad`` and output channels up to ``out_pad``."""
    return jnp.pad(w, ((0, 0), (0, 0), (0, c_pad - w.shape[2]), (0, out_pad - w.shape[3])))


def _conv2d_flat(xp, w, out_hw, dilation, precision, interpret):
    """One group at stride 1: the image ``xp`` ``(N, Hp, Wp, C)`` flattened to
    ``(N, Hp·Wp, C)``; the outputs are computed on the padded width (``Wp -
    out_w`` columns per row are discarded), so that every offset is one shift."""
    n, hp, wp, c_in = xp.shape
    kh, kw, _, c_out = w.shape
    (out_h, out_w), (dh, dw) = out_hw, dilation
    t = flat_tiles(out_h * wp, c_in, c_out)
    gm, go = pl.cdiv(out_h * wp, t["positions"]), pl.cdiv(c_out, t["out"])
    c_pad = pl.cdiv(c_in, t["chunk"]) * t["chunk"]
    rows = max(gm * t["positions"] + (kh - 1) * dh * wp + (kw - 1) * dw, hp * wp)
    xf = jnp.pad(xp.reshape(n, hp * wp, c_in), ((0, 0), (0, rows - hp * wp), (0, c_pad - c_in)))
    acc = acc_dtype(xp.dtype)
    kernel = functools.partial(_flat_kernel, window=(kh, kw), dilation=dilation, width=wp, t=t,
                               precision=precision, acc=acc)
    out = call(
        kernel,
        out_shape=jax.ShapeDtypeStruct((n, gm * t["positions"], go * t["out"]), acc),
        grid=(n, gm, go),
        in_specs=[pl.BlockSpec((None, rows, c_pad), lambda b, m, o: (b, 0, 0)),
                  pl.BlockSpec((kh, kw, c_pad, t["out"]), lambda b, m, o: (0, 0, 0, o))],
        out_specs=pl.BlockSpec((None, t["positions"], t["out"]), lambda b, m, o: (b, m, o)),
        name="jcnn_conv_forward_flat",
        interpret=interpret,
    )(xf, _weights(w, c_pad, go * t["out"]))
    return out[:, :out_h * wp, :c_out].reshape(n, out_h, wp, c_out)[:, :, :out_w]


def _conv2d(xp, w, out_hw, stride, dilation, precision, interpret):
    """One group: ``xp`` padded ``(N, Hp, Wp, C)``, ``w`` ``(kh, kw, C, O)``."""
    if stride == (1, 1):
        return _conv2d_flat(xp, w, out_hw, dilation, precision, interpret)
    n, _, _, c_in = xp.shape
    kh, kw, _, c_out = w.shape
    out_h, out_w = out_hw
    t = tiles(out_h, out_w, c_in, c_out)
    gh, gw, go = pl.cdiv(out_h, t["rows"]), pl.cdiv(out_w, t["cols"]), pl.cdiv(c_out, t["out"])
    c_pad = pl.cdiv(c_in, t["chunk"]) * t["chunk"]  # every product has whole chunks
    xp = pad_for_tiles(xp, (gh, gw), t, (kh, kw), stride, dilation, c_pad)
    acc = acc_dtype(xp.dtype)
    kernel = functools.partial(_kernel, window=(kh, kw), stride=stride, dilation=dilation,
                               t=t, precision=precision, acc=acc)
    out = call(
        kernel,
        out_shape=jax.ShapeDtypeStruct((n, gh * t["rows"], gw * t["cols"], go * t["out"]), acc),
        grid=(n, gh, gw, go),
        in_specs=[pl.BlockSpec((None, *xp.shape[1:]), lambda b, h, v, o: (b, 0, 0, 0)),
                  pl.BlockSpec((kh, kw, c_pad, t["out"]), lambda b, h, v, o: (0, 0, 0, o))],
        out_specs=pl.BlockSpec((None, t["rows"], t["cols"], t["out"]),
                               lambda b, h, v, o: (b, h, v, o)),
        name="jcnn_conv_forward",
        interpret=interpret,
    )(xp, _weights(w, c_pad, go * t["out"]))
    return out[:, :out_h, :out_w, :c_out]


def as_2d(x, w, geo):
    """A 1-D convolution as a 2-D one of height 1: ``(x, w, geo, lifted)``."""
    if len(geo.window) not in (1, 2):
        raise ValueError(f"conv: the 'pallas' arrangements take 1-D and 2-D convolutions, got "
                         f"{len(geo.window)} spatial dims (window {geo.window})")
    if len(geo.window) == 2:
        return x, w, geo, False
    geo = dataclasses.replace(geo, x_shape=(geo.x_shape[0], 1, *geo.x_shape[1:]),
                              w_shape=(1, *geo.w_shape), stride=(1, *geo.stride),
                              pads=((0, 0), *geo.pads), dilation=(1, *geo.dilation))
    return (None if x is None else x[:, None]), (None if w is None else w[None]), geo, True


def on_platforms(run, platforms, *args):
    """``run(*args, interpret=...)``: compiled (Triton) where the program is lowered
    for a GPU, in Pallas' interpret mode anywhere else — one
    ``lax.platform_dependent`` when it is lowered for both."""
    gpus = [p for p in platforms if p in _GPUS]
    if not gpus:
        return run(*args, interpret=True)
    if len(gpus) == len(platforms):
        return run(*args, interpret=False)
    compiled = functools.partial(run, interpret=False)
    return jax.lax.platform_dependent(*args, default=functools.partial(run, interpret=True),
                                      **{p: compiled for p in gpus})


def forward_pallas(x, w, geo, *, block, precision, platforms):
    """The fused forward kernel (module docstring); depthwise layers run the
    depthwise kernel (:mod:`jcnn.conv_pallas_depthwise`).  ``block`` is not used
    (the kernels never build a batch-sized temporary)."""
    from .conv_pallas_depthwise import depthwise_forward

    x, w, geo, lifted = as_2d(x, w, geo)
    xp = jnp.pad(x, ((0, 0), *geo.pads, (0, 0)))
    g, cig, cog = geo.groups, geo.cig, geo.c_out // geo.groups

    def run(xp, w, interpret):
        if geo.depthwise:
            return depthwise_forward(xp, w, geo, interpret)
        outs = [_conv2d(xp[..., k * cig:(k + 1) * cig], w[..., k * cog:(k + 1) * cog],
                        geo.out_shape, geo.stride, geo.dilation, precision, interpret)
                for k in range(g)]
        return outs[0] if g == 1 else jnp.concatenate(outs, axis=-1)

    y = on_platforms(run, platforms, xp, w)
    return y[:, 0] if lifted else y
