"""upsample (jcnn/upsampling.py): nearest and bilinear against a plain reference, the
hand-written backward passes against ``jax.vjp`` of it, hand-worked numbers, PyTorch."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jcnn.upsampling import upsample


def _matrix(n, s, method):
    """The ``(n·s, n)`` interpolation matrix of one dim, straight from PyTorch's rule
    (``align_corners=False``): source ``max((o + ½)/s − ½, 0)``, neighbour clamped."""
    a = np.zeros((n * s, n))
    for o in range(n * s):
        if method == "nearest":
            a[o, o // s] = 1.0
            continue
        src = max((o + 0.5) / s - 0.5, 0.0)
        i0 = int(np.floor(src))
        lam = src - i0
        a[o, i0] += 1 - lam
        a[o, min(i0 + 1, n - 1)] += lam
    return a


def reference(x, scale, method):
    """Plain f64 reference: one matrix product per spatial dim (autodiff for the VJP)."""
    for k, s in enumerate(scale):
        a = jnp.asarray(_matrix(x.shape[1 + k], s, method))
        x = jnp.moveaxis(jnp.tensordot(a, jnp.moveaxis(x, 1 + k, 0), axes=1), 0, 1 + k)
    return x


@settings(max_examples=max(25, settings.default.max_examples // 4))  # one compile each
@given(st.sampled_from([1, 2, 3]), st.sampled_from(["nearest", "bilinear"]),
       st.integers(0, 2**31 - 1), st.data())
def test_matches_reference_forward_and_backward(nd, method, seed, data):
    sizes = tuple(data.draw(st.integers(1, 4 if nd < 3 else 3)) for _ in range(nd))
    scale = tuple(data.draw(st.integers(1, 3)) for _ in range(nd))
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((data.draw(st.integers(1, 2)), *sizes, data.draw(st.integers(1, 3))))
    g = rng.standard_normal((x.shape[0], *(n * s for n, s in zip(sizes, scale)), x.shape[-1]))

    @jax.jit
    def run(x, g):
        y, vjp = jax.vjp(lambda x: upsample(x, scale, method=method), x)
        y_ref, vjp_ref = jax.vjp(lambda x: reference(x, scale, method), x)
        return y, vjp(g)[0], y_ref, vjp_ref(g)[0]

    y, dx, y_ref, dx_ref = run(x, g)
    assert y.shape == g.shape and dx.shape == x.shape
    np.testing.assert_allclose(y, y_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dx, dx_ref, rtol=1e-12, atol=1e-12)
    # every output is a convex combination of inputs: the cotangent's total is kept
    np.testing.assert_allclose(dx.sum(), g.sum(), rtol=1e-10, atol=1e-10)


def test_hand_worked_numbers():
    x = jnp.array([[0.0, 4.0], [8.0, 12.0]])[None, :, :, None]
    # per dim [a, b] → [a, ¾a + ¼b, ¼a + ¾b, b]
    np.testing.assert_array_equal(upsample(x, 2, method="bilinear")[0, :, :, 0],
                                  [[0, 1, 3, 4], [2, 3, 5, 6], [6, 7, 9, 10], [8, 9, 11, 12]])
    np.testing.assert_array_equal(upsample(x, (1, 2))[0, :, :, 0],
                                  [[0, 0, 4, 4], [8, 8, 12, 12]])
    # scale 3 in 1-D: sources −⅓ (clamped to 0), 0, ⅓, ⅔, 1, 4/3 (neighbour clamped)
    y = upsample(jnp.array([[[0.0], [3.0]]]), 3, method="bilinear")[0, :, 0]
    np.testing.assert_allclose(y, [0, 0, 1, 2, 3, 3], atol=1e-6)
    # backward: nearest sums the block, bilinear sends ¾/¼ of each cotangent
    dx = jax.grad(lambda x: jnp.sum(upsample(x, (2, 3))))(x)
    np.testing.assert_array_equal(dx, np.full(x.shape, 6.0))
    unit = jnp.array([0.0, 1.0, 0.0, 0.0])[None, :, None]
    _, vjp = jax.vjp(lambda v: upsample(v, 2, method="bilinear"), jnp.zeros((1, 2, 1)))
    np.testing.assert_array_equal(vjp(unit)[0][0, :, 0], [0.75, 0.25])
    _, vjp = jax.vjp(lambda v: upsample(v, 2, method="bilinear"), jnp.zeros((1, 1, 1)))
    np.testing.assert_array_equal(vjp(jnp.ones((1, 2, 1)))[0][0, :, 0], [2.0])  # n = 1


def test_second_order_and_dtypes():
    rng = np.random.default_rng(0)
    x, v = rng.standard_normal((2, 1, 3, 2, 2))

    def hvp(f, x):  # reverse over reverse: the backward pass differentiated again
        grad_dot = lambda x: jnp.sum(jax.grad(lambda x: jnp.sum(f(x) ** 3))(x) * v)  # noqa: E731
        return jax.grad(grad_dot)(x)

    for method, scale in (("bilinear", (2, 2)), ("nearest", (3, 1))):
        ours = jax.jit(lambda x: hvp(lambda x: upsample(x, scale, method=method), x))
        ref = jax.jit(lambda x: hvp(lambda x: reference(x, scale, method), x))
        np.testing.assert_allclose(ours(x), ref(x), rtol=1e-12, atol=1e-12)
        y = upsample(jnp.ones((1, 2, 2, 1), jnp.bfloat16), 2, method=method)
        assert y.dtype == jnp.bfloat16 and bool(jnp.all(y == 1))


def test_errors():
    x = jnp.ones((1, 4, 4, 2))
    with pytest.raises(ValueError, match=r"upsample: `method` must be one of"):
        upsample(x, 2, method="bicubic")
    with pytest.raises(ValueError, match=r"upsample: `scale` must be >= 1"):
        upsample(x, 0)
    with pytest.raises(ValueError, match=r"upsample: `scale` needs one value per spatial dim"):
        upsample(x, (2, 2, 2))
    with pytest.raises(TypeError, match=r"upsample: `scale` must be an integer"):
        upsample(x, 1.5)
    with pytest.raises(TypeError, match=r"upsample: `x` must have a floating-point dtype"):
        upsample(jnp.ones((1, 4, 4, 2), jnp.int32), 2)
    with pytest.raises(ValueError, match=r"upsample: `x` must be \(N, \*spatial, C\)"):
        upsample(jnp.ones((4, 2)), 2)


def test_matches_pytorch_interpolate():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    for method, shape, scale in (("bilinear", (2, 5, 3, 3), (2, 3)),
                                 ("bilinear", (1, 4, 2), (3,)),
                                 ("bilinear", (1, 2, 3, 2, 2), (2, 2, 3)),
                                 ("nearest", (2, 3, 4, 2), (3, 2))):
        x = rng.standard_normal(shape).astype(np.float32)
        mode = method if method == "nearest" else {1: "linear", 2: "bilinear",
                                                   3: "trilinear"}[len(scale)]
        xt = torch.tensor(np.moveaxis(x, -1, 1), requires_grad=True)
        yt = torch.nn.functional.interpolate(xt, scale_factor=scale, mode=mode,
                                             **({} if method == "nearest"
                                                else {"align_corners": False}))
        g = rng.standard_normal(yt.shape).astype(np.float32)
        yt.backward(torch.tensor(g))

        @jax.jit
        def run(x, g):
            y, vjp = jax.vjp(lambda x: upsample(x, scale, method=method), x)
            return y, vjp(g)[0]

        y, dx = run(jnp.asarray(x), jnp.asarray(np.moveaxis(g, 1, -1)))
        np.testing.assert_allclose(y, np.moveaxis(yt.detach().numpy(), 1, -1), atol=1e-6)
        np.testing.assert_allclose(dx, np.moveaxis(xt.grad.numpy(), 1, -1), atol=1e-5)
