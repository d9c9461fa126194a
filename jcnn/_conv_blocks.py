"""Small pieces the XLA arrangements of conv's windowed sums share: batch
blocks, per-group contractions, the offsets' slices."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from . import window as win

__all__ = []

def grouped(a: jax.Array, groups: int) -> jax.Array:
    """``(..., C)`` → ``(..., G, C // G)``."""
    return a.reshape(*a.shape[:-1], groups, a.shape[-1] // groups)


def _blocks(block, arrays):
    """The arrays split along the batch into ``(n // block, block, ...)``."""
    n = arrays[0].shape[0]
    return tuple(a.reshape(n // block, block, *a.shape[1:]) for a in arrays)


def map_blocks(fn, block, *arrays):
    """``fn`` on consecutive batch blocks of ``block`` examples (a ``lax.map``), the
    results concatenated — ``fn(*arrays)`` itself when one block is the batch."""
    n = arrays[0].shape[0]
    if not block or block >= n:
        return fn(*arrays)
    out = jax.lax.map(lambda c: fn(*c), _blocks(block, arrays))
    return out.reshape(n, *out.shape[2:])


def sum_blocks(fn, block, *arrays):
    """``Σ fn(block)`` over consecutive batch blocks (a ``lax.scan`` with one
    accumulator) — ``fn(*arrays)`` itself when one block is the batch."""
    if not block or block >= arrays[0].shape[0]:
        return fn(*arrays)
    init = jax.eval_shape(fn, *(a[:block] for a in arrays))
    return jax.lax.scan(lambda tot, c: (tot + fn(*c), None),
                        jnp.zeros(init.shape, init.dtype), _blocks(block, arrays))[0]


def contract(sl, w_i, groups, acc, precision):
    """``(N, *out, C_in) · (C_in/G, C_out)`` per group → ``(N, *out, C_out)``."""
    if groups == 1:
        return jnp.matmul(sl, w_i, precision=precision, preferred_element_type=acc)
    out = jnp.einsum("...gi,igo->...go", grouped(sl, groups), grouped(w_i, groups),
                     precision=precision, preferred_element_type=acc)
    return out.reshape(*out.shape[:-2], w_i.shape[-1])


def slices(xp, geo):
    return [win.window_slice(xp, k, geo.out_shape, geo.stride, geo.dilation)
            for k in win.offsets(geo.window)]


def add_all(terms):
    out = None
    for t in terms:
        out = t if out is None else out + t
    return out
