"""dense and flatten (jcnn/linear.py) against plain matrix products."""

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from jax.test_util import check_grads

import jcnn


def _dense_ref(x, w, b):
    return x @ w + b


@jax.jit
def _dense_run(x, w, b, ct):
    out = []
    for f in (jcnn.dense, _dense_ref):
        y, vjp = jax.vjp(f, x, w, b)
        def loss(*a, f=f):
            return jnp.sum(jnp.tanh(f(*a)))

        hvp = jax.grad(lambda x: jnp.vdot(jax.grad(loss, 1)(x, w, b), w))(x)
        out.append((y, *vjp(ct), hvp))
    return out


@given(st.sampled_from([0, 3]), st.sampled_from([1, 4]), st.sampled_from([1, 3]),
       st.integers(0, 2**31 - 1))
def test_dense_matches_reference(n, d_in, d_out, seed):
    rng = np.random.default_rng(seed)
    x, w = rng.standard_normal((n, d_in)), rng.standard_normal((d_in, d_out))
    b = rng.standard_normal(d_out)
    ct = rng.standard_normal((n, d_out))
    ours, ref = _dense_run(x, w, b, ct)
    for a, r in zip(ours, ref):
        np.testing.assert_allclose(a, r, rtol=1e-10, atol=1e-12)


def test_dense_check_grads_and_no_bias():
    rng = np.random.default_rng(0)
    x, w, b = rng.standard_normal((3, 4)), rng.standard_normal((4, 2)), rng.standard_normal(2)
    check_grads(lambda *a: jnp.sum(jnp.tanh(jcnn.dense(*a))), (x, w, b), order=2,
                modes=["rev"])
    np.testing.assert_allclose(jcnn.dense(x, w), x @ w, rtol=1e-12)
    assert jax.grad(lambda w: jnp.sum(jcnn.dense(x, w)))(w).shape == w.shape


def test_flatten_is_row_major_channels_last():
    x = jnp.arange(2 * 3 * 2 * 2.0).reshape(2, 3, 2, 2)
    np.testing.assert_array_equal(jcnn.flatten(x), np.arange(24.0).reshape(2, 12))

