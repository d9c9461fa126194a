"""Minimal repros (plain JAX, no jcnn) of two ways XLA aborts the process while
compiling a ``lax.conv_general_dilated`` — both found in the test suite's oracles,
never in jcnn's own programs.

``python tools/repro_xla_lax_vjp_abort.py`` — the VJP of a stride-2 conv whose 5-row
kernel covers the whole padded input (1 row + 2 + 2 padding):

    F algebraic_simplifier.cc:586] Check failed: computation->Accept(this) is OK
    (INVALID_ARGUMENT: Window dimensions do not match RHS shape: ...)

Found by ``tools/abort_sweep.py`` (seed 800) in the oracle part ("lax-vjp") of the
conv properties; jcnn's own forward + VJP for the same shape compiles and matches its
plain autodiff.  Seen on jax/jaxlib 0.10.2 (CPU), with and without
``jax_disable_most_optimizations``.  Run: ``python tools/repro_xla_lax_vjp_abort.py``
(expect exit status 134, SIGABRT, while XLA compiles).

The same convolution written as ``jnp.pad`` followed by a ``VALID`` lax convolution
differentiates and compiles fine; that is how ``tests/oracles.py`` computes the oracle,
and this shape is pinned as an ``@example`` of ``test_vjp_matches_lax_and_plain_autodiff``.

``python tools/repro_xla_lax_vjp_abort.py transpose`` — a grouped 3-D convolution
with ``lhs_dilation`` 2 on the middle dim, kernel dilation 2 on the others and
padding 1 on the last (a transposed convolution written the usual way, as
``test_conv_transpose.py``'s oracle was): the
same ``algebraic_simplifier.cc:586`` CHECK ("Window dimensions do not match RHS
shape"), with and without ``jax_disable_most_optimizations``.  Found by
``python tools/abort_sweep.py --kind transpose`` (seed 1000) after a thorough run
aborted in that module.  Spreading the input with ``lax.pad`` and running a ``VALID``
stride-1 convolution is not enough (seed 1001 aborted again: XLA's simplifier folds
the pad back into the convolution); the oracle now puts an optimisation barrier
between the two, and both shapes are pinned as ``@example``s.
"""

import jax
import numpy as np
from jax import lax

jax.config.update("jax_enable_x64", True)
x = np.random.default_rng(0).standard_normal((1, 1, 4, 2))  # (N, H, W, C)
w = np.random.default_rng(1).standard_normal((5, 2, 2, 2))  # (kh, kw, C_in, C_out)


def conv(x, w):
    return lax.conv_general_dilated(x, w, (2, 2), ((2, 2), (1, 1)),
                                    dimension_numbers=("NHWC", "HWIO", "NHWC"))


def forward_and_vjp(x, w):
    y, vjp = jax.vjp(conv, x, w)
    return y, *vjp(y)


def transposed(x, w):
    return lax.conv_general_dilated(
        x, w, (1, 1, 1), ((0, 0), (0, 0), (1, 1)), lhs_dilation=(1, 2, 1),
        rhs_dilation=(2, 1, 2), dimension_numbers=("NDHWC", "DHWIO", "NDHWC"),
        feature_group_count=2)


if __name__ == "__main__":
    import sys

    if sys.argv[1:] == ["transpose"]:
        xt = np.random.default_rng(0).standard_normal((1, 1, 4, 1, 4))
        wt = np.random.default_rng(1).standard_normal((1, 2, 2, 2, 4))
        print(jax.jit(transposed)(xt, wt).shape)  # aborts inside XLA
    else:
        print([a.shape for a in jax.jit(forward_and_vjp)(x, w)])  # aborts inside XLA
