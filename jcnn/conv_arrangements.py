"""The registry of conv's arrangements: name → how to run it and where it applies.

From Piotr Skalski's "Gentle Dive into Math Behind Convolutional Neural Networks"
(§3, §6, §9).  Every forward arrangement computes the article's sum::

    Z[n, p, o] = Σ_k Σ_i  X_pad[n, p·s + k·d, i] · W[k, i, o]

every input-gradient arrangement its full convolution of the cotangent with
rot180(W), every weight-gradient arrangement the correlation of X with dZ.  They
differ only in how the work is laid out for the compiler:
:mod:`jcnn.conv_forward` and :mod:`jcnn.conv_backward` (XLA ops),
:mod:`jcnn.conv_phases` (dX by stride phase) and the fused Pallas kernels
(:mod:`jcnn.conv_pallas`, :mod:`jcnn.conv_pallas_dgrad`,
:mod:`jcnn.conv_pallas_wgrad`, :mod:`jcnn.conv_pallas_depthwise`; Triton) and a
Hopper forward (:mod:`jcnn.conv_mosaic`; Mosaic GPU).

Forward arrangements return the accumulation dtype (f32 for bf16/f16), except
the fused forward kernel, which rounds to the input's dtype itself; dX and dW
arrangements return their inputs' dtype.

Each entry is an :class:`Arrangement`: its function, called as
``fn(a, b, geo, *, block, precision, platforms, conv)`` (``conv`` is the planned
convolution, for the arrangements that nest one), and ``supports(geo, dtype)``,
``None`` where it applies or the reason it does not — read by the plan's checks
and by the tests, from this one place.  The kernels enter a program through
:func:`jcnn._pallas_base.platform_kernel`, with an XLA arrangement as the
fallback that export and autodiff see.  None of them chooses:
:mod:`jcnn.conv_plan` does.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import jax.numpy as jnp

from . import conv_backward as bwd
from . import conv_forward as fwd
from ._pallas_base import platform_kernel
from .conv_geometry import Geometry
from .conv_mosaic import forward_mosaic
from .conv_pallas import forward_pallas
from .conv_pallas_depthwise import forward_pallas_depthwise, weight_grad_pallas_depthwise
from .conv_pallas_dgrad import input_grad_pallas
from .conv_pallas_wgrad import weight_grad_pallas
from .conv_phases import input_grad_phases

__all__ = ["FORWARD", "INPUT_GRAD", "WEIGHT_GRAD", "Arrangement", "supported"]


def _anywhere(geo: Geometry, dtype) -> str | None:
    return None


def _depthwise_only(geo: Geometry, dtype) -> str | None:
    if not geo.depthwise:
        return (f"needs one input channel per group (w.shape={geo.w_shape}, "
                f"groups={geo.groups})")
    return None


def _mosaic_fits(geo: Geometry, dtype) -> str | None:
    """The Mosaic GPU (Hopper) forward: bf16/f16, stride 1, one group; it compiles
    only for CUDA and is interpreted only by jax >= 0.11."""
    why = _kernel_fits(geo, dtype)
    if why is None and (geo.groups != 1 or max(geo.stride) != 1):
        why = f"takes stride 1 and one group (stride {geo.stride}, groups {geo.groups})"
    if why is None and dtype is not None and str(jnp.dtype(dtype)) not in ("bfloat16",
                                                                             "float16"):
        why = f"takes bfloat16 or float16 operands, not {jnp.dtype(dtype)}"
    return why


def _kernel_fits(geo: Geometry, dtype) -> str | None:
    if geo.nd > 2:
        return f"takes 1-D and 2-D convolutions, not {geo.nd}-D (window {geo.window})"
    if not geo.static:
        return f"needs static sizes (x.shape={geo.x_shape})"
    return None


@dataclass(frozen=True)
class Arrangement:
    """One arrangement: ``fn`` and ``supports(geo, dtype) -> None | reason``."""

    fn: Callable
    supports: Callable = _anywhere

    def __call__(self, a, b, geo, *, block=0, precision=None, platforms=("cpu",), conv=None):
        return self.fn(a, b, geo, block=block, precision=precision, platforms=platforms,
                       conv=conv)


def _on_kernel(kernel, depthwise_kernel, fallback, narrow=False):
    """A Pallas kernel as an arrangement: compiled on a GPU, interpreted elsewhere,
    ``fallback`` (an XLA arrangement, whole batch) under export and autodiff;
    depthwise geometries routed to ``depthwise_kernel`` when there is one.
    ``narrow``: a forward kernel that rounds its f32 sums to the input's dtype
    itself (bf16/f16: no f32 output written and converted by XLA afterwards)."""
    def run(a, b, geo, *, block, precision, platforms, conv=None):
        chosen = depthwise_kernel if (geo.depthwise and depthwise_kernel) else kernel
        extra = {"out_dtype": a.dtype} if narrow else {}
        k = functools.partial(chosen, geo=geo, precision=precision, **extra)
        fb = functools.partial(fallback, geo=geo, block=0, precision=precision,
                               platforms=platforms, conv=conv)
        return platform_kernel(lambda a, b, interpret: k(a, b, interpret=interpret),
                               lambda a, b: fb(a, b).astype(a.dtype) if narrow else fb(a, b),
                               a, b)
    run.__doc__ = f"The fused kernel ``{kernel.__module__}.{kernel.__name__}``."
    return run


def _kwargs_last(fn):
    """``fn(a, b, geo, ...)`` callable with ``geo=`` as a keyword (for partial)."""
    return lambda a, b, *, geo, **kw: fn(a, b, geo, **kw)


FORWARD = {
    "gather": Arrangement(fwd.forward_gather),
    "offsets": Arrangement(fwd.forward_offsets),
    "scan": Arrangement(fwd.forward_scan),
    "shift": Arrangement(fwd.forward_shift),
    "depthwise": Arrangement(fwd.forward_depthwise, _depthwise_only),
    "pallas": Arrangement(_on_kernel(_kwargs_last(forward_pallas),
                                     _kwargs_last(forward_pallas_depthwise),
                                     _kwargs_last(fwd.forward_offsets), narrow=True),
                          _kernel_fits),
    # a Hopper kernel (TMA, wgmma) on Pallas' Mosaic GPU backend; not measured on a GPU
    # yet, so no policy picks it: plan=ConvPlan("mosaic", ...) does
    "mosaic": Arrangement(_on_kernel(_kwargs_last(forward_mosaic), None,
                                     _kwargs_last(fwd.forward_offsets)), _mosaic_fits),
}
INPUT_GRAD = {
    "scatter": Arrangement(bwd.input_grad_scatter),
    "fullconv": Arrangement(bwd.input_grad_fullconv),
    "phases": Arrangement(input_grad_phases),
    "pallas": Arrangement(_on_kernel(_kwargs_last(input_grad_pallas), None,
                                     _kwargs_last(bwd.input_grad_scatter)), _kernel_fits),
}
WEIGHT_GRAD = {
    "gather": Arrangement(bwd.weight_grad_gather),
    "offsets": Arrangement(bwd.weight_grad_offsets),
    "scan": Arrangement(bwd.weight_grad_scan),
    "depthwise": Arrangement(bwd.weight_grad_depthwise, _depthwise_only),
    "pallas": Arrangement(_on_kernel(_kwargs_last(weight_grad_pallas),
                                     _kwargs_last(weight_grad_pallas_depthwise),
                                     _kwargs_last(bwd.weight_grad_offsets)), _kernel_fits),
}
TABLES = {"forward": FORWARD, "input_grad": INPUT_GRAD, "weight_grad": WEIGHT_GRAD}


def supported(kind: str, geo: Geometry, dtype) -> list[str]:
    """The names of ``kind``'s arrangements (``"forward"``, ``"input_grad"``,
    ``"weight_grad"``) that apply to ``geo``.

    Examples:
      >>> from jcnn.conv_arrangements import supported
      >>> from jcnn.conv_geometry import Geometry
      >>> geo = Geometry((2, 8, 8, 4), (3, 3, 4, 8), (1, 1), ((0, 0), (0, 0)), (1, 1), 1)
      >>> supported("forward", geo, "float32")
      ['gather', 'offsets', 'scan', 'shift', 'pallas']
    """
    return [name for name, a in TABLES[kind].items() if a.supports(geo, dtype) is None]
