"""padding_mode (jcnn/padding.py border_pad) against jnp.pad."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from oracles import lax_conv

import jcnn

_NP_MODE = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}


@given(st.sampled_from(["reflect", "replicate", "circular"]), st.sampled_from([1, 2, 3]),
       st.integers(0, 2**31 - 1), st.data())
def test_padding_modes_match_jnp_pad_oracle(mode, nd, seed, data):
    sizes = tuple(data.draw(st.integers(3, 5)) for _ in range(nd))
    window = tuple(data.draw(st.integers(1, 3)) for _ in range(nd))
    pads = tuple((data.draw(st.integers(0, 2)), data.draw(st.integers(0, 2)))
                 for _ in range(nd))
    stride = tuple(data.draw(st.integers(1, 2)) for _ in range(nd))
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, *sizes, 2))
    w = rng.standard_normal((*window, 2, 3))

    def ours(x, w):
        return jcnn.conv(x, w, stride=stride, padding=pads, padding_mode=mode)

    def ref(x, w):
        xp = jnp.pad(x, ((0, 0), *pads, (0, 0)), mode=_NP_MODE[mode])
        return lax_conv(xp, w, stride=stride, padding=((0, 0),) * nd, dilation=(1,) * nd,
                        groups=1)

    @jax.jit
    def run(x, w, ct):
        return jax.vjp(ours, x, w)[1](ct), jax.vjp(ref, x, w)[1](ct), ours(x, w), ref(x, w)

    ct = rng.standard_normal(jax.eval_shape(ref, x, w).shape)
    g, gr, y, yr = run(x, w, ct)
    np.testing.assert_allclose(y, yr, rtol=1e-10, atol=1e-10)
    for a, r in zip(g, gr):  # border gradients fold back onto their source pixels
        np.testing.assert_allclose(a, r, rtol=1e-10, atol=1e-10)


def test_padding_mode_by_hand_and_errors():
    x = jnp.arange(4.0).reshape(1, 4, 1)
    one = jnp.ones((1, 1, 1))
    pad = {m: jcnn.conv(x, one, padding=[(2, 2)], padding_mode=m)[0, :, 0]
           for m in ("zeros", "reflect", "replicate", "circular")}
    np.testing.assert_array_equal(pad["zeros"], [0, 0, 0, 1, 2, 3, 0, 0])
    np.testing.assert_array_equal(pad["reflect"], [2, 1, 0, 1, 2, 3, 2, 1])
    np.testing.assert_array_equal(pad["replicate"], [0, 0, 0, 1, 2, 3, 3, 3])
    np.testing.assert_array_equal(pad["circular"], [2, 3, 0, 1, 2, 3, 0, 1])
    g = jax.grad(lambda x: jnp.sum(jcnn.conv(x, one, padding=[(2, 2)],
                                             padding_mode="replicate")))(x)
    np.testing.assert_array_equal(g[0, :, 0], [3, 1, 1, 3])  # edges counted 3 times
    with pytest.raises(ValueError, match="conv: reflect padding \\(4, 4\\) must be smaller"):
        jcnn.conv(x, one, padding=4, padding_mode="reflect")
    with pytest.raises(ValueError, match="conv: circular padding \\(5, 5\\) must not exceed"):
        jcnn.conv(x, one, padding=5, padding_mode="circular")
    with pytest.raises(ValueError, match="conv: unknown padding_mode 'mirror'"):
        jcnn.conv(x, one, padding=1, padding_mode="mirror")



def test_border_pad_by_hand_checks_its_arguments():
    """The public border_pad: every mode by hand (zeros included — it once padded
    circularly, as did any unknown mode name), and errors naming it."""
    x = jnp.arange(1.0, 4.0).reshape(1, 3, 1)
    got = {m: jcnn.border_pad(x, ((2, 1),), m)[0, :, 0].tolist() for m in jcnn.PADDING_MODES}
    assert got == {"zeros": [0, 0, 1, 2, 3, 0], "reflect": [3, 2, 1, 2, 3, 2],
                   "replicate": [1, 1, 1, 2, 3, 3], "circular": [2, 3, 1, 2, 3, 1]}
    g = jax.grad(lambda x: jcnn.border_pad(x, ((1, 1),), "zeros").sum())(x)
    np.testing.assert_array_equal(g[0, :, 0], [1, 1, 1])
    with pytest.raises(ValueError, match="border_pad: unknown padding_mode 'wrap'"):
        jcnn.border_pad(x, ((1, 1),), "wrap")
    with pytest.raises(ValueError, match=r"border_pad: pads must be one \(low, high\) pair"):
        jcnn.border_pad(x, ((1, 1), (1, 1)), "zeros")
    with pytest.raises(ValueError, match="border_pad: `padding` must be non-negative"):
        jcnn.border_pad(x, ((-1, 1),), "reflect")
    with pytest.raises(ValueError, match="border_pad: x must be"):
        jcnn.border_pad(jnp.ones(3), ((1, 1),), "zeros")


def test_padding_pairs_public_signature():
    assert jcnn.padding_pairs("SAME", (7, 8), (3, 2), stride=(2, 1)) == ((1, 1), (0, 1))
    assert jcnn.padding_pairs(2, (5,), 3) == ((2, 2),)
    assert jcnn.padding_pairs("valid", (5, 5), (3, 3), 2, 2) == ((0, 0), (0, 0))
    with pytest.raises(ValueError, match="padding_pairs: `stride` needs one value per"):
        jcnn.padding_pairs("SAME", (5, 5), (3, 3), stride=(1, 1, 1))
    with pytest.raises(TypeError, match="padding_pairs: in_sizes must be a sequence"):
        jcnn.padding_pairs("SAME", 5, (3,))
    with pytest.raises(ValueError, match="padding_pairs: unknown padding 'FULL'"):
        jcnn.padding_pairs("FULL", (5,), (3,))
