"""The speed baseline: the tests' oracles (``benchmarks/oracles.py``, the one
implementation of lax's convolution, pooling and model twin) at JAX's default
precision — what a user of ``lax.conv_general_dilated`` would run."""

from __future__ import annotations

from functools import partial

from .oracles import lax_avg_pool, lax_max_pool
from .oracles import lax_conv as _lax_conv
from .oracles import lax_twin as _lax_twin

__all__ = ["lax_avg_pool", "lax_conv", "lax_max_pool", "lax_twin"]

lax_conv = partial(_lax_conv, precision=None)
lax_twin = partial(_lax_twin, precision=None)
