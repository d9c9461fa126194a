"""softmax_cross_entropy (jcnn/losses.py) against optax's and hand-worked numbers."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given
from hypothesis import strategies as st

import jcnn


def _ce_ref(z, labels):  # an independent implementation: optax's, and its autodiff
    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(z, labels))


@jax.jit
def _ce_run(z, labels, v):
    out = []
    for f in (jcnn.softmax_cross_entropy, _ce_ref):
        hvp = jax.grad(lambda z: jnp.vdot(jax.grad(f)(z, labels), v))(z)
        out.append((f(z, labels), jax.grad(f)(z, labels), hvp))
    return out


@given(st.sampled_from([1, 4]), st.sampled_from([2, 5]), st.integers(0, 2**31 - 1),
       st.floats(0.1, 50))
def test_cross_entropy_matches_reference(n, k, seed, scale):
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal((n, k)) * scale
    labels = rng.integers(0, k, n)
    (loss, g, h), (lr, gr, hr) = _ce_run(logits, labels, rng.standard_normal((n, k)))
    np.testing.assert_allclose(loss, lr, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(g, gr, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(g.sum(1), 0.0, atol=1e-12)  # rows of softmax − onehot
    np.testing.assert_allclose(h, hr, rtol=1e-8, atol=1e-12)


def test_cross_entropy_hand_numbers():
    # uniform logits over K classes: loss log K, gradient (1/K − onehot)/N
    loss = jcnn.softmax_cross_entropy(jnp.zeros((2, 4)), jnp.array([1, 3]))
    assert float(loss) == pytest.approx(np.log(4))
    g = jax.grad(jcnn.softmax_cross_entropy)(jnp.zeros((2, 4)), jnp.array([1, 3]))
    np.testing.assert_allclose(g, [[0.125, -0.375, 0.125, 0.125],
                                   [0.125, 0.125, 0.125, -0.375]])
    # huge logits stay finite (log-sum-exp)
    assert np.isfinite(jcnn.softmax_cross_entropy(jnp.array([[1e4, -1e4]]), jnp.array([1])))


def test_cross_entropy_low_precision_accumulates():
    z = jnp.zeros((1600, 3), jnp.bfloat16)
    loss = jcnn.softmax_cross_entropy(z, jnp.zeros(1600, jnp.int32))
    assert loss.dtype == jnp.float32 and float(loss) == pytest.approx(np.log(3), rel=1e-6)
    assert jax.grad(jcnn.softmax_cross_entropy)(z, jnp.zeros(1600, jnp.int32)).dtype == \
        jnp.bfloat16

