"""A Pallas kernel branch survives every way a program is built: lowered for
several platforms at once, differentiated by plain autodiff, exported with
symbolic sizes (jcnn/_pallas_base.py's ``platform_kernel``)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from cross_lowering import lowered_text
from jax import export
from oracles import lax_conv

import jcnn
from jcnn import conv_plan, convolution
from jcnn._pallas_base import platform_kernel
from jcnn.conv_geometry import Geometry

# a layer whose CUDA plan runs the Pallas kernels (the policy table's region)
X_SHAPE, W_SHAPE = (2, 12, 12, 32), (3, 3, 32, 32)
GEO = Geometry(X_SHAPE, W_SHAPE, (1, 1), ((1, 1), (1, 1)), (1, 1), 1)


def _inputs(dtype=jnp.float32):
    rng = np.random.default_rng(0)
    return (jnp.asarray(rng.standard_normal(X_SHAPE), dtype),
            jnp.asarray(rng.standard_normal(W_SHAPE) * 0.1, dtype))


def test_the_layer_is_in_the_cuda_pallas_region():
    p = conv_plan.plan(GEO, jnp.float32, "cuda")
    assert (p.forward, p.input_grad, p.weight_grad) == ("pallas", "pallas", "pallas")
    assert conv_plan.plan(GEO, jnp.float32, "cpu").forward != "pallas"


def test_lowering_for_cpu_and_cuda_at_once_keeps_the_kernel_for_cuda_only():
    x, w = _inputs()
    f = jax.jit(lambda x, w: jcnn.conv(x, w, padding="SAME"))
    text = lowered_text(f, x, w, platforms=("cpu", "cuda"))
    assert "jcnn_conv_forward" in text  # the Triton kernel, in the CUDA branch
    cpu_only = lowered_text(f, x, w, platforms=("cpu",))
    assert "jcnn_conv_forward" not in cpu_only and "triton" not in cpu_only


def test_plain_autodiff_of_the_planned_forward_matches_lax():
    """The benchmark's autodiff contender differentiates the forward without the
    custom rule; the kernel's JVP is its XLA fallback's."""
    x, w = _inputs(jnp.float64)
    plans = conv_plan.plans_for(GEO, jnp.float32)  # the CUDA plan holds the kernel

    def plain(x, w):
        return convolution._forward(x, w, None, GEO, None, plans).sum()

    def ref(x, w):
        return lax_conv(x, w, None, stride=(1, 1), padding=((1, 1), (1, 1))).sum()

    got = jax.grad(plain, argnums=(0, 1))(x, w)
    want = jax.grad(ref, argnums=(0, 1))(x, w)
    for g, r in zip(got, want):
        np.testing.assert_allclose(g, r, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("spatial", ["static", "symbolic"])
def test_export_with_a_symbolic_batch_for_three_platforms_round_trips(spatial):
    x, w = _inputs()
    b, h = export.symbolic_shape("b, h")
    shape = (b, *X_SHAPE[1:]) if spatial == "static" else (b, h, h, X_SHAPE[-1])

    def step(x, w):  # forward and both gradients: every part of the plan
        y, vjp = jax.vjp(lambda x, w: jcnn.conv(x, w, padding="SAME"), x, w)
        return y, *vjp(jnp.ones_like(y))

    exp = export.export(jax.jit(step), platforms=("cpu", "cuda", "tpu"))(
        jax.ShapeDtypeStruct(shape, jnp.float32), jax.ShapeDtypeStruct(W_SHAPE, jnp.float32))
    assert "triton" not in exp.mlir_module()  # no unstable custom call is exported
    back = export.deserialize(exp.serialize())
    for n in (1, 3):
        xs = jnp.tile(x, (2, 1, 1, 1))[:n]
        for got, want in zip(back.call(xs, w), jax.jit(step)(xs, w)):
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_platform_kernel_runs_the_kernel_and_differentiates_the_fallback():
    calls = []

    def kernel(x, interpret):
        calls.append(interpret)
        return 3.0 * x  # a different formula from the fallback, to tell them apart

    def fallback(x):
        return 2.0 * x

    x = jnp.arange(4.0)
    np.testing.assert_allclose(jax.jit(lambda x: platform_kernel(kernel, fallback, x))(x),
                               3.0 * x)
    assert calls == [True]  # interpreted off a GPU
    g = jax.grad(lambda x: platform_kernel(kernel, fallback, x).sum())(x)
    np.testing.assert_allclose(g, 2.0 * jnp.ones(4))  # the fallback's derivative
    v = jax.vmap(lambda x: platform_kernel(kernel, fallback, x))(jnp.ones((3, 4)))
    np.testing.assert_allclose(v, 3.0 * jnp.ones((3, 4)))
    exported = export.export(jax.jit(lambda x: platform_kernel(kernel, fallback, x)))(x)
    np.testing.assert_allclose(export.deserialize(exported.serialize()).call(x), 2.0 * x)
