"""Adaptive pools (jcnn/adaptive_pooling.py) against a loop over PyTorch's windows."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import jcnn


def _adaptive_oracle(x, out, reduce):
    """PyTorch's adaptive windows as explicit loops over output positions (jnp, so
    autodiff gives an independent gradient)."""
    import itertools

    sizes = x.shape[1:-1]
    bounds = [[(i * n // o, -(-(i + 1) * n // o)) for i in range(o)] for n, o in
              zip(sizes, out)]
    vals = []
    for p in itertools.product(*(range(o) for o in out)):
        sl = x[(slice(None), *(slice(*bounds[d][i]) for d, i in enumerate(p)), slice(None))]
        vals.append(reduce(sl.reshape(x.shape[0], -1, x.shape[-1]), axis=1))
    return jnp.stack(vals, 1).reshape(x.shape[0], *out, x.shape[-1])


@given(st.sampled_from([1, 2, 3]), st.integers(0, 2**31 - 1), st.data())
def test_adaptive_pools_match_loop_oracle(nd, seed, data):
    sizes = tuple(data.draw(st.integers(1, 7 if nd < 3 else 3)) for _ in range(nd))
    out = tuple(data.draw(st.integers(1, n + (2 if nd < 3 else 0))) for n in sizes)
    rng = np.random.default_rng(seed)
    x = rng.permutation(np.prod((2, *sizes, 2))).reshape(2, *sizes, 2) / 10.0  # tie-free
    ct = rng.standard_normal((2, *out, 2))
    @jax.jit
    def run(x, ct):
        res = []
        for ours, red in ((jcnn.adaptive_avg_pool, jnp.mean),
                          (jcnn.adaptive_max_pool, jnp.max)):
            y, vjp = jax.vjp(lambda x, ours=ours: ours(x, out), x)
            yr, vjpr = jax.vjp(lambda x, red=red: _adaptive_oracle(x, out, red), x)
            res.append((y, yr, vjp(ct)[0], vjpr(ct)[0]))
        return res

    for y, yr, g, gr in run(x, ct):
        np.testing.assert_allclose(y, yr, rtol=1e-12)
        np.testing.assert_allclose(g, gr, rtol=1e-12, atol=1e-14)


def test_adaptive_max_ties_and_global_equivalence():
    x = jnp.ones((1, 5, 5, 1))
    g = jax.grad(lambda x: jnp.sum(jcnn.adaptive_max_pool(x, (2, 2))))(x)
    # windows [0,3) and [2,5) per dim: first maxima at (0,0), (0,2), (2,0), (2,2)
    assert float(g.sum()) == 4 and g[0, 0, 0, 0] == 1 and g[0, 2, 2, 0] == 1
    x = np.random.default_rng(0).standard_normal((2, 6, 4, 3))
    np.testing.assert_allclose(jcnn.adaptive_avg_pool(x, (1, 1))[:, 0, 0], jcnn.global_avg_pool(x))
    np.testing.assert_allclose(jcnn.adaptive_max_pool(x, (3, 2)), jcnn.max_pool(x, (2, 2)))
    with pytest.raises(ValueError, match="adaptive_avg_pool: `output_size` must be >= 1"):
        jcnn.adaptive_avg_pool(x, (2, 0))

