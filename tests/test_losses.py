"""The losses (jcnn/losses.py, jcnn/elementwise_losses.py): values and hand-written
gradients against optax and against autodiff of the plain formulas (f64), hand-worked
numbers, ignored positions, low precision, errors; PyTorch's values when installed."""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from cases import finite_difference_check
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import jcnn
from jcnn.elementwise_losses import (
    binary_cross_entropy_with_logits,
    huber_loss,
    mean_squared_error,
)
from jcnn.losses import focal_loss, softmax_cross_entropy


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


# ----------------------------------------------------------------- plain formulas
def _reduce(losses, reduction, keep):
    if reduction == "none":
        return losses
    return jnp.sum(losses) if reduction == "sum" else jnp.sum(losses) / jnp.sum(keep)


def ref_log_softmax(z):
    return z - jnp.log(jnp.sum(jnp.exp(z), -1, keepdims=True))


def ref_cross_entropy(z, labels, smoothing, ignore, reduction):
    """``−Σ q log p`` with ``q`` the one-hot label (or the probabilities) smoothed."""
    k = z.shape[-1]
    if jnp.issubdtype(labels.dtype, jnp.floating):
        q, keep = labels, jnp.ones(z.shape[:-1], bool)
    else:
        q = (labels[..., None] == jnp.arange(k)).astype(z.dtype)
        keep = jnp.ones(labels.shape, bool) if ignore is None else labels != ignore
    q = (1 - smoothing) * q + smoothing / k
    losses = jnp.where(keep, -jnp.sum(q * ref_log_softmax(z), -1), 0.0)
    return _reduce(losses, reduction, keep)


def ref_focal(z, labels, gamma, reduction):
    p = jnp.exp(z) / jnp.sum(jnp.exp(z), -1, keepdims=True)
    pt = jnp.sum(jnp.where(labels[..., None] == jnp.arange(z.shape[-1]), p, 0.0), -1)
    return _reduce(-(1 - pt) ** gamma * jnp.log(pt), reduction, jnp.ones(pt.shape, bool))


@st.composite
def class_cases(draw):
    """Logits ``(*lead, K)``, labels (int, some ignored, or probabilities), options."""
    lead = tuple(draw(st.integers(1, 3)) for _ in range(draw(st.integers(1, 3))))
    k = draw(st.integers(2, 4))
    rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
    z = rng.standard_normal((*lead, k)) * draw(st.sampled_from([0.1, 1.0, 5.0]))
    kind = draw(st.sampled_from(["int", "ignore", "probs"]))
    if kind == "probs":
        labels = rng.dirichlet(np.ones(k), lead)
    else:
        labels = rng.integers(0, k, lead)
        if kind == "ignore":
            labels = np.where(rng.random(lead) < 0.4, -1, labels)
            labels.flat[0] = 0  # one position kept: the mean is defined
    reduction = draw(st.sampled_from(["mean", "sum", "none"]))
    ct = rng.standard_normal(lead) if reduction == "none" else np.float64(rng.standard_normal())
    return z, labels, -1 if kind == "ignore" else None, reduction, ct, \
        draw(st.sampled_from([0.0, 0.1, 0.5])), draw(st.sampled_from([0.0, 0.5, 1.0, 2.0]))


@partial(jax.jit, static_argnames=("smoothing", "ignore", "reduction"))
def _ce_vjps(z, labels, ct, *, smoothing, ignore, reduction):
    probabilities = jnp.issubdtype(labels.dtype, jnp.floating)  # they get a gradient too
    out = []
    for f in (lambda z, y: softmax_cross_entropy(z, y, label_smoothing=smoothing,
                                                 ignore_label=ignore, reduction=reduction),
              lambda z, y: ref_cross_entropy(z, y, smoothing, ignore, reduction)):
        if probabilities:
            value, vjp = jax.vjp(f, z, labels)
        else:
            value, vjp = jax.vjp(lambda z: f(z, labels), z)
        out.append((value, vjp(ct)))
    return out


@settings(max_examples=max(12, settings.default.max_examples // 4))  # a compile per shape
@given(class_cases())
def test_cross_entropy_matches_the_formula(case):
    """Any leading axes, integer labels (some ignored) or probabilities, smoothing and
    each reduction: the value and the gradients (logits; probabilities) of
    ``−Σ q log p`` by autodiff (f64)."""
    z, labels, ignore, reduction, ct, smoothing, _ = case
    (value, grads), (want, want_grads) = _ce_vjps(z, labels, ct, smoothing=smoothing,
                                                  ignore=ignore, reduction=reduction)
    np.testing.assert_allclose(value, want, rtol=1e-12, atol=1e-13)
    for a, b in zip(grads, want_grads, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-13)


@partial(jax.jit, static_argnames=("gamma", "reduction"))
def _focal_vjps(z, labels, ct, *, gamma, reduction):
    out = []
    for f in (lambda z: focal_loss(z, labels, gamma=gamma, reduction=reduction),
              lambda z: ref_focal(z, labels, gamma, reduction)):
        value, vjp = jax.vjp(f, z)
        out.append((value, vjp(ct)[0]))
    return out


@settings(max_examples=max(8, settings.default.max_examples // 8))
@given(class_cases())
@example((np.array([[0.3, -1.0, 2.0]]), np.array([2]), None, "mean", np.float64(1.0), 0.0,
          0.5))  # γ < 1: (1 − p_t)^(γ−1) is large where p_t is near 1
def test_focal_loss_matches_the_formula(case):
    z, labels, _, reduction, ct, _, gamma = case
    if jnp.issubdtype(labels.dtype, jnp.floating):
        labels = np.argmax(labels, -1)
    labels = np.where(labels < 0, 0, labels)
    (value, g), (want, want_g) = _focal_vjps(z, labels, ct, gamma=gamma, reduction=reduction)
    np.testing.assert_allclose(value, want, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(g, want_g, rtol=1e-9, atol=1e-12)


_ELEMENTWISE = {  # ours, the plain formula (reduction "none")
    "bce": (binary_cross_entropy_with_logits,
            lambda z, y: -y * jnp.log(1 / (1 + jnp.exp(-z)))
            - (1 - y) * jnp.log(1 - 1 / (1 + jnp.exp(-z)))),
    "mse": (mean_squared_error, lambda p, t: (p - t) ** 2),
    "huber": (partial(huber_loss, delta=0.7),
              lambda p, t: jnp.where(jnp.abs(p - t) <= 0.7, 0.5 * (p - t) ** 2,
                                     0.7 * (jnp.abs(p - t) - 0.35))),
}


@partial(jax.jit, static_argnames=("name", "reduction"))
def _elementwise_run(a, b, ct, v, *, name, reduction):
    """Value, vjp and reverse-over-reverse HVP, both arguments."""
    ours, plain = _ELEMENTWISE[name]
    out = []
    for f in (partial(ours, reduction=reduction),
              lambda a, b: _reduce(plain(a, b), reduction, jnp.ones(a.shape, bool))):
        value, vjp = jax.vjp(f, a, b)
        hvp = jax.grad(lambda a, b: jnp.vdot(jax.vjp(f, a, b)[1](ct)[0], v), (0, 1))(a, b)
        out.append((value, vjp(ct), hvp))
    return out


@pytest.mark.parametrize("name", list(_ELEMENTWISE))
@given(a=hnp.arrays(np.float64, (3, 4), elements=st.floats(-6, 6)),
       b=hnp.arrays(np.float64, (3, 4), elements=st.floats(0, 1)),
       reduction=st.sampled_from(["mean", "sum", "none"]), seed=st.integers(0, 2**31 - 1))
def test_elementwise_losses_match_the_formula(name, a, b, reduction, seed):
    rng = np.random.default_rng(seed)
    ct = rng.standard_normal((3, 4)) if reduction == "none" else np.float64(1.5)
    (value, grads, hvp), (want, want_grads, want_hvp) = _elementwise_run(
        a, b, ct, rng.standard_normal((3, 4)), name=name, reduction=reduction)
    np.testing.assert_allclose(value, want, rtol=1e-11, atol=1e-12)
    for x, y in zip((*grads, *hvp), (*want_grads, *want_hvp)):
        np.testing.assert_allclose(x, y, rtol=1e-9, atol=1e-11)


# ----------------------------------------------------------------- hand-worked numbers
def test_label_smoothing_hand_numbers():
    """Logits (log 3, 0): p = (3/4, 1/4).  Label 0 with ε = 1/2: q = (1/2)(1, 0) + 1/4 =
    (3/4, 1/4) = p, so the loss is p's entropy and the gradient p − q is zero; with
    ε = 0 it is −log(3/4) and the gradient (−1/4, 1/4)."""
    z, y = jnp.array([[np.log(3.0), 0.0]]), jnp.array([0])
    f = jax.jit(jax.value_and_grad(softmax_cross_entropy), static_argnames="label_smoothing")
    loss, g = f(z, y, label_smoothing=0.5)
    assert float(loss) == pytest.approx(-(0.75 * np.log(0.75) + 0.25 * np.log(0.25)))
    np.testing.assert_allclose(g, [[0.0, 0.0]], atol=1e-15)
    loss, g = f(z, y, label_smoothing=0.0)
    assert float(loss) == pytest.approx(-np.log(0.75))
    np.testing.assert_allclose(g, [[-0.25, 0.25]], rtol=1e-12)


def test_ignored_pixels_hand_numbers():
    """Per pixel (1, 2, 2, K=2), zero logits: each kept pixel loses log 2 and gets
    gradient (1/2 − onehot)/3 under the mean over the 3 kept pixels; the ignored one
    contributes 0 and gets 0."""
    z = jnp.zeros((1, 2, 2, 2))
    y = jnp.array([[[0, 1], [-100, 1]]])
    f = jax.jit(jax.value_and_grad(partial(softmax_cross_entropy, ignore_label=-100)))
    loss, g = f(z, y)
    assert float(loss) == pytest.approx(np.log(2))
    np.testing.assert_allclose(g[0], [[[-1 / 6, 1 / 6], [1 / 6, -1 / 6]],
                                      [[0.0, 0.0], [1 / 6, -1 / 6]]], rtol=1e-12)
    assert float(softmax_cross_entropy(z, y, ignore_label=-100, reduction="sum")) == \
        pytest.approx(3 * np.log(2))
    np.testing.assert_allclose(softmax_cross_entropy(z, y, ignore_label=-100, reduction="none"),
                               [[[np.log(2), np.log(2)], [0.0, np.log(2)]]], rtol=1e-12)
    # every position ignored: the mean is 0/0, as PyTorch's
    assert np.isnan(softmax_cross_entropy(z, jnp.full((1, 2, 2), -100), ignore_label=-100))


def test_probability_labels_hand_numbers():
    """Logits (0, 0), targets (0.3, 0.7): loss log 2, dZ = p − q = (0.2, −0.2),
    dq = −log p = (log 2, log 2)."""
    loss, (gz, gq) = jax.value_and_grad(softmax_cross_entropy, (0, 1))(
        jnp.zeros((1, 2)), jnp.array([[0.3, 0.7]]))
    assert float(loss) == pytest.approx(np.log(2))
    np.testing.assert_allclose(gz, [[0.2, -0.2]], rtol=1e-12)
    np.testing.assert_allclose(gq, [[np.log(2), np.log(2)]], rtol=1e-12)


def test_focal_hand_numbers():
    """p_t = 1/2, γ = 2: ℓ = (1/2)²·log 2; c = (1/2)² − 2·(1/2)·(1/2)·log(1/2) = 1/4 + (log 2)/2,
    dZ = c·(p − onehot) = c·(−1/2, 1/2).  γ = 0 is cross-entropy.  At p_t = 1 (γ = 1/2)
    the gradient is 0, not 0·∞."""
    loss, g = jax.value_and_grad(focal_loss)(jnp.zeros((1, 2)), jnp.array([0]))
    assert float(loss) == pytest.approx(0.25 * np.log(2))
    c = 0.25 + np.log(2) / 2
    np.testing.assert_allclose(g, [[-c / 2, c / 2]], rtol=1e-12)
    z = jnp.array([[0.3, -1.0, 2.0], [1.0, 1.0, 0.0]])
    y = jnp.array([2, 0])
    np.testing.assert_allclose(jax.grad(partial(focal_loss, gamma=0.0))(z, y),
                               jax.grad(softmax_cross_entropy)(z, y), rtol=1e-12)
    g = jax.grad(partial(focal_loss, gamma=0.5))(jnp.array([[800.0, 0.0]]), jnp.array([0]))
    np.testing.assert_array_equal(g, [[0.0, 0.0]])


def test_elementwise_hand_numbers():
    """BCE at z = 0: log 2 and dz = σ(0) − y = ∓1/2; squared error of r = (1, −2):
    (1 + 4)/2 and 2r/2; Huber with δ = 2 of r = (1, 3): (½, 2·(3 − 1)) and clip(r, ±2)/2."""
    z, y = jnp.zeros(2), jnp.array([1.0, 0.0])
    loss, g = jax.value_and_grad(binary_cross_entropy_with_logits)(z, y)
    assert float(loss) == pytest.approx(np.log(2))
    np.testing.assert_allclose(g, [-0.25, 0.25], rtol=1e-12)
    assert float(binary_cross_entropy_with_logits(jnp.array([-1000.0]), jnp.array([1.0]))) \
        == 1000.0  # no overflow: max(z, 0) − z·y + log(1 + e^−|z|)
    p, t = jnp.array([1.0, 2.0]), jnp.array([0.0, 4.0])
    loss, (gp, gt) = jax.value_and_grad(mean_squared_error, (0, 1))(p, t)
    assert float(loss) == 2.5
    np.testing.assert_allclose((gp, gt), [[1.0, -2.0], [-1.0, 2.0]])
    p, t = jnp.array([1.0, 3.0]), jnp.zeros(2)
    f = partial(huber_loss, delta=2.0)
    np.testing.assert_allclose(f(p, t, reduction="none"), [0.5, 4.0])
    np.testing.assert_allclose(jax.grad(f)(p, t), [0.5, 1.0])
    assert float(f(p, t, reduction="sum")) == 4.5


def test_second_order_by_finite_differences():
    rng = np.random.default_rng(3)
    z, y = rng.standard_normal((2, 3, 4)), rng.integers(0, 4, (2, 3))
    y[0, 0] = 7  # ignored
    finite_difference_check(
        lambda z: softmax_cross_entropy(jnp.tanh(z) * 3, y, label_smoothing=0.2,
                                        ignore_label=7), (z,), 0)
    finite_difference_check(lambda z: focal_loss(jnp.tanh(z) * 3, np.where(y == 7, 1, y),
                                                  gamma=1.5), (z,), 1)


def test_out_of_range_labels():
    z = jnp.zeros((2, 3))
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\), got values from 5 to "
                                         r"5 \(besides ignore_label=-1\)"):
        softmax_cross_entropy(z, jnp.array([-1, 5]), ignore_label=-1)
    assert np.isnan(jax.jit(partial(softmax_cross_entropy, ignore_label=-1))(
        z, jnp.array([-1, 5])))
    assert np.isnan(jax.jit(focal_loss)(z, jnp.array([0, 3])))
    with pytest.raises(ValueError, match=r"focal_loss: labels must lie in \[0, 3\)"):
        focal_loss(z, jnp.array([0, 3]))


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
def test_low_precision_losses_are_f32_gradients_keep_the_dtype(dtype):
    rng = np.random.default_rng(4)
    z = jnp.asarray(rng.standard_normal((2, 3, 3, 4)), dtype)
    y = jnp.asarray(rng.integers(0, 4, (2, 3, 3)))
    t = jnp.asarray(rng.random((2, 3, 3, 4)), dtype)

    @jax.jit
    def run(z, t):
        fs = (lambda z, t: softmax_cross_entropy(z, y, ignore_label=0, label_smoothing=0.1),
              lambda z, t: softmax_cross_entropy(z, jax.nn.softmax(t.astype(jnp.float32))
                                                 .astype(dtype)),
              lambda z, t: focal_loss(z, y), binary_cross_entropy_with_logits,
              mean_squared_error, huber_loss)
        return [jax.value_and_grad(f, (0, 1))(z, t) for f in fs]

    z64, t64 = np.asarray(z, np.float64), np.asarray(t, np.float64)
    wants = [ref_cross_entropy(z64, np.asarray(y), 0.1, 0, "mean"), None,
             ref_focal(z64, np.asarray(y), 2.0, "mean"), None,
             np.mean((z64 - t64) ** 2), None]
    for (loss, (gz, gt)), want in zip(run(z, t), wants):
        assert loss.dtype == jnp.float32 and gz.dtype == gt.dtype == dtype
        if want is not None:
            assert float(loss) == pytest.approx(float(want), rel=1e-5)


# ----------------------------------------------------------------- errors
Z, Y = np.zeros((4, 3), np.float32), np.zeros(4, np.int32)


@pytest.mark.parametrize("fn, args, kwargs, error, match", [
    (softmax_cross_entropy, (Z, Y), {"reduction": "avg"}, ValueError,
     r"softmax_cross_entropy: `reduction` must be 'mean', 'sum' or 'none', got 'avg'"),
    (softmax_cross_entropy, (Z, np.zeros(4, np.float32)), {}, TypeError,
     r"softmax_cross_entropy: labels must be integer class indices of shape \(4,\) or "
     r"probabilities of the logits' shape \(4, 3\), got dtype float32"),
    (softmax_cross_entropy, (Z, np.zeros((4, 1), np.int32)), {}, ValueError,
     r"softmax_cross_entropy: labels must have shape \(4,\) to match logits.shape=\(4, 3\), "
     r"got labels.shape=\(4, 1\)"),
    (softmax_cross_entropy, (np.zeros((2, 5, 3), np.float32), np.zeros((2, 3), np.int32)), {},
     ValueError, r"labels must have shape \(2, 5\)"),
    (softmax_cross_entropy, (Z, np.full((4, 3), 1 / 3, np.float32)), {"ignore_label": 0},
     ValueError, r"softmax_cross_entropy: `ignore_label` applies to integer labels only"),
    (softmax_cross_entropy, (Z, Y), {"ignore_label": 1.0}, TypeError,
     "softmax_cross_entropy: `ignore_label` must be None or an int"),
    (softmax_cross_entropy, (Z, Y), {"label_smoothing": 1.5}, ValueError,
     r"softmax_cross_entropy: `label_smoothing` must be in \[0, 1\], got 1.5"),
    (softmax_cross_entropy, (Z, Y), {"label_smoothing": None}, TypeError,
     "softmax_cross_entropy: `label_smoothing` must be a Python number"),
    (softmax_cross_entropy, (np.zeros(3, np.float32), np.zeros((), np.int32)), {}, ValueError,
     r"softmax_cross_entropy: logits must be \(N, K\) or \(N, \*spatial, K\)"),
    (focal_loss, (Z, Y), {"gamma": -1.0}, ValueError, "focal_loss: `gamma` must be >= 0"),
    (focal_loss, (Z, Y), {"gamma": "2"}, TypeError, "focal_loss: `gamma` must be a Python"),
    (focal_loss, (Z, np.zeros((4, 3), np.float32)), {}, TypeError,
     "focal_loss: labels must be integer class indices, got dtype float32"),
    (focal_loss, (Z, np.zeros(3, np.int32)), {}, ValueError,
     r"focal_loss: labels must have shape \(4,\)"),
    (focal_loss, (Z, Y), {"reduction": None}, ValueError, "focal_loss: `reduction` must be"),
    (binary_cross_entropy_with_logits, (Z, np.zeros((4, 1), np.float32)), {}, ValueError,
     r"binary_cross_entropy_with_logits: `targets` must have the shape of `logits`, got "
     r"logits.shape=\(4, 3\), targets.shape=\(4, 1\)"),
    (binary_cross_entropy_with_logits, (Z, np.zeros((4, 3), np.int32)), {}, TypeError,
     "binary_cross_entropy_with_logits: `targets` must have a floating-point dtype"),
    (binary_cross_entropy_with_logits, (Z, Z), {"reduction": "MEAN"}, ValueError,
     "binary_cross_entropy_with_logits: `reduction` must be"),
    (mean_squared_error, (Z, np.zeros(3, np.float32)), {}, ValueError,
     r"mean_squared_error: `target` must have the shape of `pred`"),
    (mean_squared_error, (np.zeros(3, np.int32), np.zeros(3, np.float32)), {}, TypeError,
     "mean_squared_error: `pred` must have a floating-point dtype"),
    (huber_loss, (Z, Z), {"delta": -1.0}, ValueError,
     "huber_loss: `delta` must be positive, got -1.0"),
    (huber_loss, (Z, Z), {"delta": 0}, ValueError, "huber_loss: `delta` must be positive"),
    (huber_loss, (Z, Z), {"delta": "1"}, TypeError, "huber_loss: `delta` must be a Python"),
    (huber_loss, (Z, Z.T), {}, ValueError, "huber_loss: `target` must have the shape"),
])
def test_bad_input_is_named(fn, args, kwargs, error, match):
    with pytest.raises(error, match=match):
        fn(*args, **kwargs)
    with pytest.raises(error, match=match):  # the same error while tracing under jit
        jax.jit(lambda *a: fn(*a, **kwargs))(*args)


# ----------------------------------------------------------------- PyTorch (optional)
def test_matches_pytorch():
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(9)
    z = rng.standard_normal((2, 3, 4, 5)) * 2  # (N, H, W, K)
    y = rng.integers(0, 5, (2, 3, 4))
    y[0, 0, :2] = -100
    zt = torch.from_numpy(np.moveaxis(z, -1, 1).copy())  # classes second, as PyTorch's
    for smoothing in (0.0, 0.2):
        for reduction in ("mean", "sum", "none"):
            want = F.cross_entropy(zt, torch.from_numpy(y), ignore_index=-100,
                                   label_smoothing=smoothing, reduction=reduction).numpy()
            got = softmax_cross_entropy(z, y, ignore_label=-100, label_smoothing=smoothing,
                                        reduction=reduction)
            np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    q = rng.dirichlet(np.ones(5), (2, 3, 4))
    want = F.cross_entropy(zt, torch.from_numpy(np.moveaxis(q, -1, 1).copy()),
                           label_smoothing=0.3).numpy()
    np.testing.assert_allclose(softmax_cross_entropy(z, q, label_smoothing=0.3), want,
                               rtol=1e-10)
    a, b = rng.standard_normal((3, 4)) * 3, rng.random((3, 4))
    at, bt = torch.from_numpy(a), torch.from_numpy(b)
    for reduction in ("mean", "sum", "none"):
        np.testing.assert_allclose(
            binary_cross_entropy_with_logits(a, b, reduction=reduction),
            F.binary_cross_entropy_with_logits(at, bt, reduction=reduction).numpy(), rtol=1e-10)
        np.testing.assert_allclose(mean_squared_error(a, b, reduction=reduction),
                                   F.mse_loss(at, bt, reduction=reduction).numpy(), rtol=1e-12)
        np.testing.assert_allclose(huber_loss(a, b, delta=1.5, reduction=reduction),
                                   F.huber_loss(at, bt, delta=1.5, reduction=reduction).numpy(),
                                   rtol=1e-12)
