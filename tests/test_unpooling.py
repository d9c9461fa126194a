"""max_pool_with_indices and max_unpool (jcnn/unpooling.py)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import jcnn


@given(st.sampled_from([1, 2]), st.integers(0, 2**31 - 1), st.data())
def test_return_indices_and_max_unpool(nd, seed, data):
    window = tuple(data.draw(st.integers(1, 3)) for _ in range(nd))
    stride = tuple(data.draw(st.integers(1, 3)) for _ in range(nd))
    pads = tuple((data.draw(st.integers(0, f // 2)),) * 2 for f in window)
    sizes = tuple(data.draw(st.integers(max(1, f - 2 * p[0]), f + 4)) for f, p in
                  zip(window, pads))
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 3, (2, *sizes, 2)).astype(np.float64)  # many ties
    @jax.jit
    def run(x, z):
        y, idx = jcnn.max_pool_with_indices(x, window, stride=stride, padding=pads)
        y2 = jcnn.max_pool(x, window, stride=stride, padding=pads)
        g = jax.grad(lambda x: jnp.sum(jcnn.max_pool(x, window, stride=stride,
                                                     padding=pads)))(x)
        up, vjp = jax.vjp(lambda y: jcnn.max_unpool(y, idx, window, stride=stride,
                                                    padding=pads, output_size=sizes), y)
        return y, idx, y2, g, up, vjp(z)[0]

    z = rng.standard_normal(x.shape)
    y, idx, y2, g, up, gy = run(x, z)
    np.testing.assert_array_equal(y, y2)
    # the index is the row-major first maximum: the same element the gradient picks
    flat = x.reshape(2, -1, 2)
    np.testing.assert_array_equal(np.take_along_axis(flat, np.asarray(idx).reshape(2, -1, 2),
                                                     1).reshape(y.shape), y)
    counts = np.zeros_like(flat)
    for n, c in np.ndindex(2, 2):
        np.add.at(counts[n, :, c], np.asarray(idx)[n, ..., c].ravel(), 1)
    np.testing.assert_array_equal(counts.reshape(x.shape), g)
    # max_unpool puts values back at their indices; its backward gathers
    assert up.shape == x.shape
    np.testing.assert_array_equal(up.reshape(2, -1, 2).sum(1), np.asarray(y).reshape(2, -1, 2)
                                  .sum(1))
    np.testing.assert_allclose(gy, np.take_along_axis(z.reshape(2, -1, 2),
                                                      np.asarray(idx).reshape(2, -1, 2), 1)
                               .reshape(y.shape))


def test_max_unpool_default_size_and_errors():
    x = jnp.arange(16.0).reshape(1, 4, 4, 1)
    y, idx = jcnn.max_pool_with_indices(x, (2, 2))
    up = jcnn.max_unpool(y, idx, (2, 2))
    assert up.shape == (1, 4, 4, 1)  # (2 − 1)·2 + 2
    np.testing.assert_array_equal(up[0, :, :, 0], np.where(np.isin(np.arange(16), [5, 7, 13, 15]),
                                                           np.arange(16.0), 0).reshape(4, 4))
    with pytest.raises(ValueError, match="max_unpool: indices must be integers shaped like y"):
        jcnn.max_unpool(y, idx[..., :0], (2, 2))
    with pytest.raises(ValueError, match=r"max_unpool: indices must lie in \[0, 4\)"):
        jcnn.max_unpool(y, idx, (2, 2), output_size=(2, 2))

