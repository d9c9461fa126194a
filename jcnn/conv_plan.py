"""Which arrangement of the windowed sums runs where: one plan per platform.

:mod:`jcnn.conv_arrangements` holds the arrangements (forward, dX, dW), each
computing exactly the article's sums; this module is the only place that picks
one.  :func:`plan` maps a layer's geometry, dtype and platform to a
:class:`ConvPlan` — a frozen, hashable value that the ``custom_vjp`` receives
statically — and :func:`dispatch` stages the per-platform choice with
``jax.lax.platform_dependent``, so the program picks its plan where it is
lowered (right under ``jit``, AOT lowering for another platform, and export),
not from the default backend of the Python process.

The policies, and why (measurements in BENCHMARKS.md; ``python -m benchmarks
.arrangements`` re-measures them):

* **CPU** — a patch matrix that stays in cache.  ``"gather"`` in batch blocks
  whose patch matrix holds at most ``CPU_BLOCK_ELEMENTS`` (7 MiB of f32): one
  long contraction keeps the GEMM busy while the block stays in cache.  On the
  CPU suite's layers (batch 16; forward + dX + dW of the plan's arrangements per
  block size, ``python -m benchmarks.arrangements --blocks``) the best block
  held 4.5–6.8 MiB: two examples of 32²×64 3×3 (13.7 ms; one example 15.4,
  four 15.3, the whole batch 65), two of the 16³×8 3-D layer (3.0 ms; the whole
  batch 5.0), eight of the 5×5, 7×7/2 and 3×3/2 layers (1.04–1.14× faster than
  the whole batch); a small layer whose whole batch fits runs in one block.
  ``"scan"`` (one offset per loop step) when a single example's patch matrix
  is over ``CPU_SCAN_ELEMENTS`` (16 MiB); ``"offsets"`` for one input channel
  (K outer products XLA fuses into one multiply-add loop); ``"depthwise"`` for
  one channel per group, forward and dW (all offsets' dW sums in one variadic
  reduction: 1.6× faster than one pass per offset), its dW products in blocks of
  at most ``CPU_DEPTHWISE_ELEMENTS`` per offset (0.5 MiB: 1.13 ms, against
  1.40 for 1 MiB and 1.66 for the whole batch).  dX: ``"scatter"`` (no product
  with an inserted zero) except stride-1 layers that are depthwise or over the
  scan limit, where the full convolution through conv itself is cheaper.
* **GPU** — whole-batch GEMMs: a GPU needs the long ``M`` dimension to fill its
  SMs, and batch blocks serialise small GEMMs (the whole batch in one block
  took the ResNet-50 layers' geometric mean from 4.6× cuDNN's time to 1.6×).
  Blocks only when one block's patch or product matrix would pass
  ``GPU_BLOCK_BYTES``.  Per part, from the H200 sweep in BENCHMARKS.md: the
  gathered forward won every layer but one (``"shift"`` by 8 % on 56²×64);
  ``"scatter"`` dX won every strided and non-depthwise layer, ``"fullconv"``
  the depthwise one; dW per offset (``"offsets"``) beat the gathered GEMM on
  every 3×3 layer.  Arrangements not yet measured on a GPU (the stacked
  ``"depthwise"`` dW; ``"fullconv"`` dX for bf16, whose patch matrix would be
  half of scatter's f32 products) stay off until a measured table says they win.
  The fused ``"pallas"`` kernels (CUDA only: they compile through Triton) run
  the forward and dX of f32 stride-1 3×3 layers that contract one whole chunk
  of 32–64 channels into at most 64 (``PALLAS_CHANNELS``): on 56²×64 the H200
  sweep timed the forward 1.5× faster than the best XLA arrangement
  (``"shift"``) and dX 1.2× faster (``"scatter"``), with no patch matrix.  They
  lost everywhere else they were timed (the 7×7/2 stem, 1×1, depthwise, and dW
  on every layer) or were not yet timed (bf16, layers over 64 channels since
  the one-loop form that fits their shared memory), so the XLA arrangements
  keep those.
* **TPU** (and any other platform) — the GPU policy; it has not been measured
  on a TPU.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import jax
import jax.numpy as jnp

from . import conv_arrangements as arr
from .conv_arrangements import Geometry

__all__ = [
    "PLATFORMS",
    "ConvPlan",
    "Geometry",
    "batch_block",
    "describe",
    "dispatch",
    "flops",
    "plan",
    "plans_for",
]

PLATFORMS = ("cpu", "cuda", "rocm", "tpu")
CPU_BLOCK_ELEMENTS = 7 << 18  # one CPU block's patch matrix (7 MiB of f32)
CPU_SCAN_ELEMENTS = 1 << 22  # one example's patch matrix beyond which a CPU loops per offset
CPU_DEPTHWISE_ELEMENTS = 1 << 17  # one CPU block's per-offset depthwise products (0.5 MiB)
GPU_BLOCK_BYTES = 1 << 30  # one accelerator block's patch or product matrix
PALLAS_CHANNELS = (32, 64)  # contracted channels where CUDA runs the Pallas forward/dX
PALLAS_ELEMENTS = 1 << 30  # and only below this many input or output elements


@dataclass(frozen=True)
class ConvPlan:
    """The arrangements one convolution runs: names in the
    :mod:`jcnn.conv_arrangements` registries, and ``block``, the examples per
    batch block for those that build a patch or product matrix (``0``: the
    whole batch at once)."""

    forward: str
    input_grad: str
    weight_grad: str
    block: int = 0

    def check(self, geo: Geometry, fn: str = "conv") -> ConvPlan:
        """ValueError unless every name exists and fits ``geo``."""
        for kind, name, table in (("forward", self.forward, arr.FORWARD),
                                  ("input_grad", self.input_grad, arr.INPUT_GRAD),
                                  ("weight_grad", self.weight_grad, arr.WEIGHT_GRAD)):
            if name not in table:
                raise ValueError(f"{fn}: unknown {kind} arrangement {name!r}; "
                                 f"expected one of {sorted(table)}")
        for kind, name in (("forward", self.forward), ("weight_grad", self.weight_grad)):
            if name == "depthwise" and not geo.depthwise:
                raise ValueError(f"{fn}: the 'depthwise' {kind} needs one input channel per "
                                 f"group (w.shape={geo.w_shape}, groups={geo.groups})")
        for kind, name in (("forward", self.forward), ("input_grad", self.input_grad),
                           ("weight_grad", self.weight_grad)):
            if name == "pallas" and len(geo.window) > 2:
                raise ValueError(f"{fn}: the 'pallas' {kind} takes 1-D and 2-D convolutions, "
                                 f"not {len(geo.window)}-D (window {geo.window})")
        if not isinstance(self.block, int) or self.block < 0:
            raise ValueError(f"{fn}: plan block must be an int >= 0, got {self.block!r}")
        return self


def batch_block(n: int, per_example: int, limit: int) -> int | None:
    """The largest divisor ``B`` of ``n`` with ``B · per_example ≤ limit``
    (``None`` when one example alone is over the limit)."""
    if per_example > limit:
        return None
    return max((b for b in range(1, n + 1) if n % b == 0 and b * per_example <= limit),
               default=1)  # an empty batch is one (empty) block


def _largest_matrix(geo: Geometry) -> int:
    """Elements per example of the largest patch/product matrix a plan may build:
    ``Π out · K · C_in/G`` (``· G`` for depthwise dW's per-offset products)."""
    return geo.patch_size * (geo.groups if geo.depthwise else 1)


def _cpu(geo: Geometry, dtype) -> ConvPlan:
    n, per_example = geo.x_shape[0], geo.patch_size
    fits = per_example <= CPU_SCAN_ELEMENTS
    if geo.depthwise:
        forward = weight_grad = "depthwise"
    elif geo.cig == 1:
        forward, weight_grad = "offsets", "gather" if fits else "scan"
    else:
        forward = weight_grad = "gather" if fits else "scan"
    stride1 = max(geo.stride) == 1
    input_grad = "fullconv" if (not fits or geo.depthwise) and stride1 else "scatter"
    if geo.depthwise:  # one offset's products, (N, *out, C_out)
        block = batch_block(n, math.prod(geo.out_shape) * geo.c_out, CPU_DEPTHWISE_ELEMENTS)
    else:
        block = batch_block(n, per_example, CPU_BLOCK_ELEMENTS)
    block = block or 1
    return ConvPlan(forward, input_grad, weight_grad, block if block < n else 0)


def _accelerator(geo: Geometry, dtype) -> ConvPlan:
    n = geo.x_shape[0]
    per_example = _largest_matrix(geo) * max(jnp.dtype(dtype).itemsize, 4)  # products in f32
    block = batch_block(n, per_example, GPU_BLOCK_BYTES)
    fits = block is not None
    stride1 = max(geo.stride) == 1
    if geo.depthwise:
        forward, weight_grad = "depthwise", "offsets"
    else:
        forward, weight_grad = ("gather" if fits else "scan"), "offsets"
    input_grad = "fullconv" if (not fits or geo.depthwise) and stride1 else "scatter"
    block = block or 1
    return ConvPlan(forward, input_grad, weight_grad, block if block < n else 0)


def _pallas_measured(geo: Geometry, dtype, contracted: int, produced: int) -> bool:
    """Inside the region where the H200 sweep timed the fused Pallas kernel
    faster than every XLA arrangement: f32, a 3×3 window at stride and dilation 1,
    no groups, one whole chunk of contracted channels, at most one tile of
    produced channels (:data:`PALLAS_CHANNELS`), and input and output under
    :data:`PALLAS_ELEMENTS` (the kernels index in 32 bits)."""
    lo, hi = PALLAS_CHANNELS
    return (dtype == jnp.float32 and geo.window == (3, 3) and geo.stride == (1, 1)
            and geo.dilation == (1, 1) and geo.groups == 1 and lo <= contracted <= hi
            and produced <= hi and max(math.prod(geo.x_shape), geo.x_shape[0]
                                       * math.prod(geo.out_shape) * geo.c_out) < PALLAS_ELEMENTS)


def _cuda(geo: Geometry, dtype) -> ConvPlan:
    """The accelerator policy, with the fused Pallas forward and dX where they were
    measured to win (the forward contracts C_in into C_out, dX the reverse)."""
    p = _accelerator(geo, dtype)
    c_in = geo.x_shape[-1]
    forward = "pallas" if _pallas_measured(geo, dtype, c_in, geo.c_out) else p.forward
    input_grad = "pallas" if _pallas_measured(geo, dtype, geo.c_out, c_in) else p.input_grad
    return replace(p, forward=forward, input_grad=input_grad)


_POLICIES = {"cpu": _cpu, "cuda": _cuda, "rocm": _accelerator, "tpu": _accelerator}


def plan(geo: Geometry, dtype, platform: str) -> ConvPlan:
    """The arrangements ``platform`` runs for this geometry and dtype.

    >>> from jcnn.conv_plan import Geometry, plan
    >>> geo = Geometry((64, 56, 56, 64), (3, 3, 64, 64), (1, 1), ((1, 1), (1, 1)), (1, 1), 1)
    >>> plan(geo, "float32", "cuda")      # the fused Pallas kernels, dW per offset
    ConvPlan(forward='pallas', input_grad='pallas', weight_grad='offsets', block=0)
    >>> plan(geo, "float32", "tpu")       # the whole batch in one GEMM
    ConvPlan(forward='gather', input_grad='scatter', weight_grad='offsets', block=0)
    >>> plan(geo, "float32", "cpu").block  # one example's patch matrix: 6.9 MiB
    1
    """
    if platform not in _POLICIES:
        raise ValueError(f"plan: unknown platform {platform!r}; expected one of {PLATFORMS}")
    return _POLICIES[platform](geo, jnp.dtype(dtype))


Plans = tuple[tuple[tuple[str, ...], ConvPlan], ...]


def plans_for(geo: Geometry, dtype, platforms: tuple[str, ...] = PLATFORMS) -> Plans:
    """``((platforms, plan), ...)``: the platforms grouped by the plan they get."""
    groups: dict[ConvPlan, list[str]] = {}
    for p in platforms:
        groups.setdefault(plan(geo, dtype, p), []).append(p)
    return tuple((tuple(ps), pl) for pl, ps in groups.items())


def dispatch(plans: Plans, fn, *args):
    """``fn(platforms, plan, *args)`` with the plan of the platform the program is
    lowered for.  One plan for all: a plain call.  Several: one
    ``lax.platform_dependent`` branch each (platforms outside :data:`PLATFORMS`
    take the TPU/default group's)."""
    if len(plans) == 1:
        (platforms, p), = plans
        return fn(platforms, p, *args)
    branches = {}
    default = None
    for platforms, p in plans:
        def branch(*a, _ps=platforms, _p=p):
            return fn(_ps, _p, *a)
        for name in platforms:
            branches[name] = branch
        if "tpu" in platforms or default is None:
            default = branch
    return jax.lax.platform_dependent(*args, default=default, **branches)


def describe(plans: Plans) -> str:
    """One line per platform group, for benchmarks and error messages."""
    return "; ".join(f"{'/'.join(ps)}: fwd={p.forward} dx={p.input_grad} "
                     f"dw={p.weight_grad} block={p.block or 'batch'}" for ps, p in plans)


def flops(geo: Geometry) -> int:
    """Multiply-adds × 2 of the forward pass."""
    return 2 * geo.x_shape[0] * math.prod(geo.out_shape) * geo.c_out * geo.k_total * geo.cig
