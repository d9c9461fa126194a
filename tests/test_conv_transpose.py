"""conv_transpose against lax and PyTorch's shapes; second derivatives of the ops
built on conv's machinery (transpose, border padding, adaptive pools, unpooling)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from cases import finite_difference_check, transpose_cases
from hypothesis import example, given, settings
from oracles import lax_conv, lax_conv_transpose

import jcnn


def _arrays(c):
    rng = np.random.default_rng(c["seed"])
    x = rng.standard_normal(c["x"])
    w = rng.standard_normal((*c["window"], c["cog"], c["x"][-1]))
    b = rng.standard_normal(c["cog"] * c["groups"]) if c["bias"] else None
    return x, w, b


def _ours(c):
    return lambda x, w, b=None: jcnn.conv_transpose(
        x, w, b, stride=c["stride"], padding=c["pads"], output_padding=c["output_padding"],
        dilation=c["dilation"], groups=c["groups"])


def _lax_dilated(c):
    """Oracle 1: lax's convolution with ``lhs_dilation`` (:func:`oracles.lax_conv_transpose`)."""
    return lambda x, w, b=None: lax_conv_transpose(
        x, w, b, stride=c["stride"], pads=c["pads"], output_padding=c["output_padding"],
        dilation=c["dilation"], groups=c["groups"])


# made XLA abort the process compiling the old lhs_dilation oracle
# (tools/repro_xla_lax_vjp_abort.py transpose); the second also with the pad
# folded back into the conv when no barrier kept it apart
@example({"x": (1, 3, 2, 1, 2), "window": (2, 3, 2), "stride": (2, 1, 1),
          "dilation": (1, 2, 1), "output_padding": (1, 0, 0),
          "pads": ((1, 2), (1, 1), (1, 0)), "groups": 2, "cog": 1, "bias": True, "seed": 344})
@example({"x": (1, 1, 4, 1, 4), "window": (1, 2, 2), "stride": (1, 2, 1),
          "dilation": (2, 1, 2), "output_padding": (0, 1, 0),
          "pads": ((0, 0), (1, 2), (1, 1)), "groups": 2, "cog": 2, "bias": False,
          "seed": 102677})
@given(transpose_cases())
def test_conv_transpose_matches_oracles(c):
    x, w, b = _arrays(c)
    args = (x, w) if b is None else (x, w, b)
    y_shape = jax.eval_shape(_ours(c), *args).shape
    ct = np.random.default_rng(c["seed"] + 1).standard_normal(y_shape)
    u = np.zeros((*y_shape[:-1], c["cog"] * c["groups"]))

    geometry = dict(stride=c["stride"], padding=c["pads"], dilation=c["dilation"],
                    groups=c["groups"])

    @jax.jit
    def run(ct, *args):
        y, vjp = jax.vjp(_ours(c), *args)
        yr = _lax_dilated(c)(*args)
        # oracle 2, the defining identity: conv_transpose(x) = vjp of lax's conv at x
        lax_t = jax.vjp(lambda u: lax_conv(u, args[1], **geometry), u)[1](args[0])[0]
        # gradients from the adjoint identity <conv_transpose(x, w), ct> = <x, conv(ct, w)>:
        # dx = conv(ct, w), dw = (d/dw) <x, conv(ct, w)>, db = Σ ct — all by lax
        dx = lax_conv(ct, args[1], **geometry)
        dw = jax.vjp(lambda w: lax_conv(ct, w, **geometry), args[1])[1](args[0])[0]
        grads = (dx, dw) + ((ct.sum(tuple(range(ct.ndim - 1))),) if len(args) == 3 else ())
        return y, yr, lax_t, vjp(ct), grads

    y, yr, lax_t, g, gr = run(ct, *args)
    np.testing.assert_allclose(y, yr, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(y - (0 if b is None else b), lax_t, rtol=1e-10, atol=1e-10)
    for a, r in zip(g, gr):
        np.testing.assert_allclose(a, r, rtol=1e-10, atol=1e-10)


@settings(max_examples=max(20, settings.default.max_examples // 4))  # second order: slow
@given(transpose_cases())
def test_conv_transpose_second_order(c):
    x, w, b = _arrays(c)
    args = (x, w) if b is None else (x, w, b)
    finite_difference_check(lambda *a: jnp.sum(jnp.tanh(_ours(c)(*a))), args, c["seed"])


def test_conv_transpose_pytorch_shapes_by_hand():
    # PyTorch: ConvTranspose2d(k=3, stride=2, padding=1, output_padding=1) doubles 5 -> 10
    y = jcnn.conv_transpose(jnp.ones((1, 5, 5, 4)), jnp.ones((3, 3, 8, 4)), stride=2,
                            padding=1, output_padding=1)
    assert y.shape == (1, 10, 10, 8)
    # a 1x1 input scatters the kernel itself (rotated by nothing: it is W · x)
    w = jnp.arange(9.0).reshape(3, 3, 1, 1)
    np.testing.assert_array_equal(jcnn.conv_transpose(jnp.ones((1, 1, 1, 1)), w)[0, :, :, 0],
                                  w[:, :, 0, 0])


@pytest.mark.parametrize("bad,match", [
    (dict(output_padding=2, stride=2), r"output_padding \(2\) must be smaller than the stride"),
    (dict(padding="SAME"), r"padding 'SAME' is not defined for a transposed conv"),
    (dict(padding=-1), r"`padding` must be non-negative"),
    (dict(padding=5), r"padding \(5, 5\) crops the whole output"),
    (dict(padding_mode="reflect"), r"only padding_mode='zeros'"),
    (dict(groups=3), r"`groups` \(=3\) must divide the input channels \(=4\)"),
])
def test_conv_transpose_errors(bad, match):
    with pytest.raises(ValueError, match="conv_transpose: " + match.lstrip("`")
                       if not match.startswith("`") else match):
        jcnn.conv_transpose(jnp.ones((1, 3, 3, 4)), jnp.ones((3, 3, 2, 4)), **bad)


def test_conv_transpose_channel_error():
    with pytest.raises(ValueError, match=r"conv_transpose: x has 4 channels but w expects 3"):
        jcnn.conv_transpose(jnp.ones((1, 3, 3, 4)), jnp.ones((3, 3, 2, 3)))


@pytest.mark.parametrize("name,fn,shape", [
    ("reflect", lambda x: jcnn.conv(x, jnp.ones((3, 3, 2, 2)) * 0.3, padding=(2, 1),
                                    padding_mode="reflect"), (1, 4, 5, 2)),
    ("replicate", lambda x: jcnn.conv(x, jnp.ones((2, 2, 2, 1)) * 0.3, stride=2, padding=1,
                                      padding_mode="replicate"), (2, 5, 4, 2)),
    ("circular", lambda x: jcnn.conv(x, jnp.ones((3, 2, 1)) * 0.3, padding=[(2, 1)],
                                     padding_mode="circular"), (1, 4, 2)),
    ("adaptive_avg", lambda x: jcnn.adaptive_avg_pool(x, (2, 3)), (1, 5, 4, 2)),
    ("adaptive_max", lambda x: jcnn.adaptive_max_pool(x, (3, 2)), (1, 5, 4, 2)),
    ("conv_transpose", lambda x: jcnn.conv_transpose(x, jnp.ones((3, 3, 2, 2)) * 0.3,
                                                     stride=2, padding=1,
                                                     output_padding=1), (1, 3, 3, 2)),
    ("unpool", lambda x: jcnn.max_unpool(*jcnn.max_pool_with_indices(x, (2, 2)), (2, 2)),
     (1, 4, 4, 2)),
])
def test_new_ops_check_grads_order_2(name, fn, shape):
    rng = np.random.default_rng(0)
    x = rng.permutation(int(np.prod(shape))).reshape(shape) / 7.0  # tie-free for the maxima
    from jax.test_util import check_grads

    check_grads(lambda x: jnp.sum(jnp.sin(fn(x))), (x,), order=2, modes=["rev"])

