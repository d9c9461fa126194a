"""Which arrangement of the windowed sums runs where: one plan per platform.

:mod:`jcnn.conv_arrangements` registers the arrangements (forward, dX, dW),
each computing exactly the article's sums; this module is the only place that
picks one.  :func:`plan` maps a layer's :class:`~jcnn.conv_geometry.Geometry`,
dtype and platform to a :class:`ConvPlan` — a frozen, hashable value that the
``custom_vjp`` receives statically — and :func:`dispatch` stages the
per-platform choice with ``jax.lax.platform_dependent``, so the program picks
its plan where it is lowered (right under ``jit``, AOT lowering for another
platform, and export), not from the default backend of the Python process.

The thresholds and per-part choices are data: ``jcnn/conv_policy_table.py``,
generated from the measurements in ``benchmarks/measured/`` by ``python -m
benchmarks.arrangements --write-policy`` (numbers in BENCHMARKS.md).  Why the
policies have the shape they have:

* **CPU** — a patch matrix that stays in cache: ``"gather"`` (one long
  contraction keeps the GEMM busy) in batch blocks whose patch matrix holds at
  most ``block_elements``; a small layer whose whole batch fits runs in one
  block.  ``"scan"`` (one offset per loop step) when one example's patch matrix
  is over ``scan_elements``; ``"offsets"`` for one input channel (K outer
  products XLA fuses into one multiply-add loop); ``"depthwise"`` for one
  channel per group, its dW products in blocks of ``depthwise_elements`` per
  offset.  dX: ``"scatter"`` (no product with an inserted zero) except stride-1
  layers that are depthwise or over the scan limit, where the full convolution
  through conv itself is cheaper.
* **Accelerators** — whole-batch GEMMs: a GPU needs the long ``M`` dimension
  to fill its SMs, and batch blocks serialise small GEMMs; blocks only when one
  block's patch or product matrix would pass ``block_bytes``.  Per part and
  layer class, the arrangement that won the measured layers.
* **CUDA** — the accelerator policy, with the fused Pallas kernels where they
  win (``pallas``: per part, the cases and channel ranges): where the program
  compiled for an H200 offline moves fewer HBM bytes with them than with the XLA
  arrangements (a GPU is lent rarely; bytes are what a memory-bound layer's time
  follows) and no GPU sweep of the same kernels says they lose; only for static
  shapes whose arrays stay under ``pallas_elements`` (the kernels index in 32
  bits).  ROCm and TPU keep the
  accelerator policy: the kernels were not measured there.

Symbolic sizes (``jax.export`` shape polymorphism) get the whole batch in one
block and no kernel: a block size or a Pallas grid needs static sizes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import jax
import jax.numpy as jnp

from . import conv_arrangements as arr
from .conv_geometry import Geometry
from .conv_policy_table import POLICY

__all__ = ["PLATFORMS", "ConvPlan", "batch_block", "describe", "dispatch", "plan", "plans_for"]

PLATFORMS = ("cpu", "cuda", "rocm", "tpu")
_CPU, _ACC, _CUDA = POLICY["cpu"], POLICY["accelerator"], POLICY["cuda"]


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

    def check(self, geo: Geometry, dtype=None, fn: str = "conv") -> ConvPlan:
        """ValueError unless every name exists and its arrangement supports ``geo``."""
        for kind, name in (("forward", self.forward), ("input_grad", self.input_grad),
                           ("weight_grad", self.weight_grad)):
            table = arr.TABLES[kind]
            if name not in table:
                raise ValueError(f"{fn}: unknown {kind} arrangement {name!r}; "
                                 f"expected one of {sorted(table)}")
            why = table[name].supports(geo, dtype)
            if why is not None:
                raise ValueError(f"{fn}: the {name!r} {kind} {why}")
        if not isinstance(self.block, int) or self.block < 0:
            raise ValueError(f"{fn}: plan block must be an int >= 0, got {self.block!r}")
        return self


def batch_block(n, per_example, limit: int) -> int | None:
    """The largest divisor ``B`` of ``n`` with ``B · per_example ≤ limit``
    (``None`` when one example alone is over the limit; ``0``, the whole batch,
    when a size is symbolic).

    Examples:
      >>> from jcnn.conv_plan import batch_block
      >>> batch_block(16, 3, 10), batch_block(16, 11, 10)
      (2, None)
    """
    if not (isinstance(n, int) and isinstance(per_example, int)):
        return 0
    if per_example > limit:
        return None
    return max((b for b in range(1, n + 1) if n % b == 0 and b * per_example <= limit),
               default=1)  # an empty batch is one (empty) block


def _fits(size, limit: int) -> bool:
    """``size ≤ limit``, and true for a symbolic size (no block can be chosen)."""
    return not isinstance(size, int) or size <= limit


def _largest_matrix(geo: Geometry):
    """Elements per example of the largest patch/product matrix a plan may build:
    ``Π out · K · C_in/G`` (``· G`` for depthwise dW's per-offset products)."""
    return geo.patch_size * (geo.groups if geo.depthwise else 1)


def _whole(block, n) -> int:
    """The plan's ``block`` (``0``: the whole batch) from :func:`batch_block`'s."""
    if not isinstance(n, int):
        return 0
    block = block or 1  # one example over the limit still runs one at a time
    return block if block < n else 0


def _cpu(geo: Geometry, dtype) -> ConvPlan:
    n, per_example = geo.batch, geo.patch_size
    fits = _fits(per_example, _CPU["scan_elements"])
    if geo.depthwise:
        forward = weight_grad = "depthwise"
    elif geo.cig == 1:
        forward, weight_grad = "offsets", "gather" if fits else "scan"
    else:
        forward = weight_grad = "gather" if fits else "scan"
    stride1 = max(geo.stride) == 1
    input_grad = "fullconv" if (not fits or geo.depthwise) and stride1 else "scatter"
    if not geo.static:
        return ConvPlan(forward, input_grad, weight_grad, 0)
    if geo.depthwise:  # one offset's products, (N, *out, C_out)
        block = batch_block(n, math.prod(geo.out_shape) * geo.c_out, _CPU["depthwise_elements"])
    else:
        block = batch_block(n, per_example, _CPU["block_elements"])
    return ConvPlan(forward, input_grad, weight_grad, _whole(block, n))


def _accelerator(geo: Geometry, dtype) -> ConvPlan:
    n = geo.batch
    per_example = _largest_matrix(geo) * max(jnp.dtype(dtype).itemsize, 4)  # products in f32
    block = batch_block(n, per_example, _ACC["block_bytes"])
    fits = block is not None
    cls = "depthwise" if geo.depthwise else "dense"
    forward = _ACC[f"forward_{cls}"] if fits or geo.depthwise else "scan"
    weight_grad = _ACC[f"weight_grad_{cls}"]
    stride1 = max(geo.stride) == 1
    input_grad = _ACC[f"input_grad_{cls}"] if fits else "fullconv"
    if input_grad == "fullconv" and not stride1:  # it would multiply the inserted zeros
        input_grad = "scatter"
    return ConvPlan(forward, input_grad, weight_grad, _whole(block, n))


def _in_region(case: dict, geo: Geometry, dtype, contracted: int, produced: int) -> bool:
    lo, hi = case["contracted"]
    groups = geo.depthwise if case["groups"] == "depthwise" else geo.groups == case["groups"]
    return (dtype == jnp.dtype(case["dtype"]) and geo.window == tuple(case["window"])
            and geo.stride == tuple(case["stride"]) and geo.dilation == tuple(case["dilation"])
            and groups and lo <= contracted <= hi and produced <= case["produced_max"])


def _pallas_measured(kind: str, geo: Geometry, dtype) -> bool:
    """Whether ``kind`` of this layer is inside the measured Pallas region
    (the policy table's ``cuda.pallas``): static sizes, arrays under
    ``pallas_elements``, and one of the measured cases."""
    if not geo.static:
        return False
    per_group = (geo.cig, geo.c_out // geo.groups)  # contracted and produced, per group
    contracted, produced = per_group[::-1] if kind == "input_grad" else per_group
    limit = _CUDA["pallas_elements"]
    if max(math.prod(geo.x_shape), geo.batch * math.prod(geo.out_shape) * geo.c_out) >= limit:
        return False
    return any(_in_region(c, geo, dtype, contracted, produced) for c in _CUDA["pallas"][kind])


def _cuda(geo: Geometry, dtype) -> ConvPlan:
    """The accelerator policy, with the fused Pallas kernels where they were
    measured to win (the forward and dW contract C_in into C_out, dX the reverse)."""
    p = _accelerator(geo, dtype)
    pick = {kind: "pallas" if _pallas_measured(kind, geo, dtype) else getattr(p, kind)
            for kind in ("forward", "input_grad", "weight_grad")}
    return replace(p, **pick)


_POLICIES = {"cpu": _cpu, "cuda": _cuda, "rocm": _accelerator, "tpu": _accelerator}


def plan(geo: Geometry, dtype, platform: str) -> ConvPlan:
    """The arrangements ``platform`` runs for this geometry and dtype.

    >>> from jcnn.conv_geometry import Geometry
    >>> from jcnn.conv_plan import plan
    >>> geo = Geometry((64, 56, 56, 64), (3, 3, 64, 64), (1, 1), ((1, 1), (1, 1)), (1, 1), 1)
    >>> plan(geo, "float32", "cuda")      # the fused Pallas kernels
    ConvPlan(forward='pallas', input_grad='pallas', weight_grad='pallas', block=0)
    >>> plan(geo, "float32", "tpu")       # the whole batch in one GEMM
    ConvPlan(forward='gather', input_grad='scatter', weight_grad='offsets', block=0)
    >>> plan(geo, "float32", "cpu").block  # one example's patch matrix is a block
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

