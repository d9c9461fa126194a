"""load_torch_state_dict (jcnn/torch_weights.py): a PyTorch-layout state dict run by a
NumPy re-implementation of PyTorch's layers (NCHW) gives the jcnn model's logits; real
PyTorch models when torch is installed."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jcnn import nn
from jcnn._nn_extra import SeparableConv
from jcnn._nn_vocab import GroupNorm
from jcnn.torch_weights import load_torch_state_dict, momentum_from_torch

KEY = jax.random.key(0)


# ------------------------------------------------------------------ PyTorch's layers in NumPy
def np_conv(x, w, b=None, stride=1, padding=0, groups=1):
    """``F.conv2d`` on NCHW ``x``, OIHW ``w``: a sum over kernel offsets."""
    x = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    ho, wo = (h - kh) // stride + 1, (wd - kw) // stride + 1
    out = np.zeros((n, o, ho, wo))
    og = o // groups
    for g in range(groups):
        xs, ws = x[:, g * cg:(g + 1) * cg], w[g * og:(g + 1) * og]
        for i in range(kh):
            for j in range(kw):
                patch = xs[:, :, i:i + stride * (ho - 1) + 1:stride,
                           j:j + stride * (wo - 1) + 1:stride]
                out[:, g * og:(g + 1) * og] += np.einsum("nchw,oc->nohw", patch, ws[:, :, i, j])
    return out if b is None else out + b[None, :, None, None]


def np_conv_transpose(x, w, b=None, stride=1, padding=0):
    """``F.conv_transpose2d`` on NCHW ``x``, ``w`` ``(C_in, C_out, kh, kw)``: every input
    pixel scatters ``x·w`` onto the ``stride``-spaced output grid, then ``padding`` crops."""
    n, c, h, wd = x.shape
    _, o, kh, kw = w.shape
    out = np.zeros((n, o, (h - 1) * stride + kh, (wd - 1) * stride + kw))
    for i in range(kh):
        for j in range(kw):
            out[:, :, i:i + stride * (h - 1) + 1:stride, j:j + stride * (wd - 1) + 1:stride] += \
                np.einsum("nchw,co->nohw", x, w[:, :, i, j])
    out = out[:, :, padding:out.shape[2] - padding, padding:out.shape[3] - padding]
    return out if b is None else out + b[None, :, None, None]


def np_bn(x, sd, m, eps=1e-5):
    """``BatchNorm`` in eval mode; channels on axis 1."""
    shape = (1, -1) + (1,) * (x.ndim - 2)
    mean, var = sd[f"{m}.running_mean"].reshape(shape), sd[f"{m}.running_var"].reshape(shape)
    return (x - mean) / np.sqrt(var + eps) * sd[f"{m}.weight"].reshape(shape) \
        + sd[f"{m}.bias"].reshape(shape)


def relu(x):
    return np.maximum(x, 0)


def np_max_pool2(x):
    n, c, h, w = x.shape
    return x.reshape(n, c, h // 2, 2, w // 2, 2).max(axis=(3, 5))


# ------------------------------------------------------------------ one model, two layouts
def jcnn_model():
    """stem, a strided residual block with a projection, a separable conv, a transposed conv,
    a pool and a dense head after a flatten (its rows are the CHW → HWC permutation)."""
    return nn.serial(
        nn.Conv(4, (3, 3), padding=1, use_bias=False), nn.BatchNorm(), nn.Relu,
        nn.residual(nn.serial(nn.Conv(6, (3, 3), stride=2, padding=1, use_bias=False),
                              nn.BatchNorm(), nn.Relu,
                              nn.Conv(6, (3, 3), padding=1, groups=2, use_bias=False),
                              nn.BatchNorm()),
                    nn.serial(nn.Conv(6, (1, 1), stride=2, use_bias=False), nn.BatchNorm())),
        nn.Relu,
        SeparableConv(4, 3, padding=1),
        nn.ConvTranspose(3, (2, 2), stride=2),
        nn.MaxPool((2, 2)),
        nn.Flatten, nn.Dense(5), nn.Relu, nn.Dense(3),
    )


INPUT = (-1, 6, 4, 3)  # not square: H and W cannot be swapped unnoticed


def torch_state_dict(rng):
    """The same model's weights in PyTorch's names, order and layouts."""
    sd = {}

    def conv(name, o, i, k, bias=False):
        sd[f"{name}.weight"] = rng.standard_normal((o, i, k, k)) / np.sqrt(i * k * k)
        if bias:
            sd[f"{name}.bias"] = rng.standard_normal(o)

    def bn(name, c):
        sd[f"{name}.weight"] = rng.uniform(0.5, 1.5, c)
        sd[f"{name}.bias"] = rng.standard_normal(c)
        sd[f"{name}.running_mean"] = rng.standard_normal(c)
        sd[f"{name}.running_var"] = rng.uniform(0.5, 2.0, c)
        sd[f"{name}.num_batches_tracked"] = np.array(7)

    conv("stem.0", 4, 3, 3), bn("stem.1", 4)
    conv("layer1.conv1", 6, 4, 3), bn("layer1.bn1", 6)
    conv("layer1.conv2", 6, 3, 3), bn("layer1.bn2", 6)  # groups=2: I/g = 3
    conv("layer1.downsample.0", 6, 4, 1), bn("layer1.downsample.1", 6)
    conv("sep.depthwise", 6, 1, 3, bias=True)
    conv("sep.pointwise", 4, 6, 1, bias=True)
    sd["up.weight"] = rng.standard_normal((4, 3, 2, 2))  # ConvTranspose2d(4, 3): (I, O, k, k)
    sd["up.bias"] = rng.standard_normal(3)
    sd["fc1.weight"], sd["fc1.bias"] = rng.standard_normal((5, 18)), rng.standard_normal(5)
    sd["fc2.weight"], sd["fc2.bias"] = rng.standard_normal((3, 5)), rng.standard_normal(3)
    return sd


def torch_forward(sd, x):
    """The model as PyTorch runs it, NCHW, from the state dict."""
    h = relu(np_bn(np_conv(x, sd["stem.0.weight"], padding=1), sd, "stem.1"))
    b = relu(np_bn(np_conv(h, sd["layer1.conv1.weight"], stride=2, padding=1), sd, "layer1.bn1"))
    b = np_bn(np_conv(b, sd["layer1.conv2.weight"], padding=1, groups=2), sd, "layer1.bn2")
    s = np_bn(np_conv(h, sd["layer1.downsample.0.weight"], stride=2), sd, "layer1.downsample.1")
    h = relu(b + s)
    h = np_conv(h, sd["sep.depthwise.weight"], sd["sep.depthwise.bias"], padding=1, groups=4)
    h = np_conv(h, sd["sep.pointwise.weight"], sd["sep.pointwise.bias"])
    h = np_max_pool2(np_conv_transpose(h, sd["up.weight"], sd["up.bias"], stride=2))
    h = h.reshape(h.shape[0], -1)  # PyTorch's flatten: C, H, W order
    h = relu(h @ sd["fc1.weight"].T + sd["fc1.bias"])
    return h @ sd["fc2.weight"].T + sd["fc2.bias"]


def _f64(tree):
    return jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64), tree)


@pytest.fixture(scope="module")
def loaded():
    rng = np.random.default_rng(0)
    model, sd = jcnn_model(), torch_state_dict(rng)
    _, params, state = nn.init_with_state(model, KEY, INPUT)
    params, state = _f64(params), _f64(state)
    new_params, new_state = load_torch_state_dict(model, params, state, sd, input_shape=INPUT)
    x = rng.standard_normal((2, 3, 6, 4))  # NCHW
    apply = jax.jit(lambda p, s, x: nn.apply_with_state(model, p, s, x)[0])
    return model, sd, params, state, new_params, new_state, x, apply


def test_logits_match_pytorch_layout_in_numpy(loaded):
    model, sd, params, state, new_params, new_state, x, apply = loaded
    logits = apply(new_params, new_state, jnp.asarray(x.transpose(0, 2, 3, 1)))
    np.testing.assert_allclose(logits, torch_forward(sd, x), rtol=1e-10, atol=1e-10)
    # the structure and dtypes are the targets'; batch norm's buffers went to the state
    assert jax.tree_util.tree_structure(new_params) == jax.tree_util.tree_structure(params)
    assert all(a.dtype == jnp.float64 for a in jax.tree_util.tree_leaves(new_params))
    np.testing.assert_array_equal(new_state[1]["var"], sd["stem.1.running_var"])
    # a hand port that copies fc1.weight.T without the CHW → HWC permutation is wrong
    naive = list(new_params)
    naive[9] = {**naive[9], "w": jnp.asarray(sd["fc1.weight"].T)}
    wrong = apply(tuple(naive), new_state, jnp.asarray(x.transpose(0, 2, 3, 1)))
    assert np.max(np.abs(wrong - torch_forward(sd, x))) > 1e-2


def np_group_norm(x, sd, m, groups, eps=1e-5):
    n, c = x.shape[:2]
    g = x.reshape(n, groups, -1)
    g = (g - g.mean(-1, keepdims=True)) / np.sqrt(g.var(-1, keepdims=True) + eps)
    shape = (1, -1) + (1,) * (x.ndim - 2)
    return g.reshape(x.shape) * sd[f"{m}.weight"].reshape(shape) + sd[f"{m}.bias"].reshape(shape)


def test_group_norm_and_per_feature_layers_between_flatten_and_dense():
    """Conv → GroupNorm → Flatten → BatchNorm1d → Linear: the batch norm's vectors are in
    C, H, W order too."""
    rng = np.random.default_rng(1)
    model = nn.serial(nn.Conv(4, (1, 1)), GroupNorm(2), nn.Flatten, nn.BatchNorm(),
                      nn.Dropout(0.5), nn.Dense(3))
    sd = {"0.weight": rng.standard_normal((4, 1, 1, 1)), "0.bias": rng.standard_normal(4),
          "1.weight": rng.standard_normal(4), "1.bias": rng.standard_normal(4),
          "3.weight": rng.standard_normal(24), "3.bias": rng.standard_normal(24),
          "3.running_mean": rng.standard_normal(24), "3.running_var": rng.uniform(1, 2, 24),
          "5.weight": rng.standard_normal((3, 24)), "5.bias": rng.standard_normal(3)}
    _, params, state = nn.init_with_state(model, KEY, (-1, 2, 3, 1))
    params, state = load_torch_state_dict(model, _f64(params), _f64(state), sd,
                                          input_shape=(-1, 2, 3, 1))
    x = rng.standard_normal((4, 1, 2, 3))
    h = np_group_norm(np_conv(x, sd["0.weight"], sd["0.bias"]), sd, "1", 2)
    h = np_bn(h.reshape(4, -1), sd, "3")
    ref = h @ sd["5.weight"].T + sd["5.bias"]
    y = jax.jit(lambda p, s, x: nn.apply_with_state(model, p, s, x)[0])(
        params, state, jnp.asarray(x.transpose(0, 2, 3, 1)))
    np.testing.assert_allclose(y, ref, rtol=1e-10, atol=1e-10)


def test_mismatches_name_the_layer_and_the_module(loaded):
    model, sd, params, state, *_ = loaded

    def load(d, **kw):
        return load_torch_state_dict(model, params, state, d, input_shape=INPUT, **kw)

    bad = {**sd, "layer1.conv2.weight": np.zeros((6, 6, 3, 3))}  # groups forgotten
    with pytest.raises(ValueError, match=r"load_torch_state_dict: layer 4 \(model\[3\]\.block"
                                         r"\[3\]: Conv\), PyTorch module 'layer1.conv2': "
                                         r"'layer1.conv2.weight' has shape \(6, 6, 3, 3\) but "
                                         r"the jcnn layer needs \(6, 3, 3, 3\)"):
        load(bad)
    bad = {**sd, "fc1.weight": np.zeros((5, 24))}
    with pytest.raises(ValueError, match=r"layer 10 \(model\[9\]: Dense\).*'fc1.weight' has "
                                         r"shape \(5, 24\) but the jcnn layer needs \(5, 18\)"):
        load(bad)
    bad = {k: v for k, v in sd.items() if k != "up.bias"}
    with pytest.raises(ValueError, match=r"layer 9 \(model\[6\]: ConvTranspose\), PyTorch "
                                         r"module 'up': expected entries \['bias', 'weight'\]"):
        load(bad)
    swapped = dict(sorted(sd.items(), key=lambda kv: kv[0].startswith("stem.1")))  # bn last
    with pytest.raises(ValueError, match=r"layer 1 \(model\[1\]: BatchNorm\), PyTorch module "
                                         r"'layer1.conv1'.*in the order"):
        load(swapped)
    with pytest.raises(ValueError, match=r"the state dict has 1 module\(s\) more than the model "
                                         r"takes \(13, for 12 layers with parameters\): 'fc3'"):
        load({**sd, "fc3.weight": np.zeros((1, 3))})
    with pytest.raises(ValueError, match=r"layer 11 \(model\[11\]: Dense\) has no module left"):
        load({k: v for k, v in sd.items() if not k.startswith("fc2")})
    with pytest.raises(ValueError, match=r"`params` is not serial's params for input shape "
                                         r"\(-1, 8, 4, 3\)"):
        load_torch_state_dict(model, params, state, sd, input_shape=(-1, 8, 4, 3))
    with pytest.raises(TypeError, match=r"`state_dict` must be a mapping"):
        load(list(sd.items()))
    odd = nn.serial(nn.Layer(lambda k, s: (s, {"a": jnp.zeros(1)}), lambda p, x, **kw: x, "Odd"))
    with pytest.raises(ValueError, match=r"layer 0 \(model\[0\]: Odd\) has parameters but no "
                                         r"PyTorch counterpart"):
        load_torch_state_dict(odd, ({"a": jnp.zeros(1)},), {}, {"a.weight": np.zeros(1)},
                              input_shape=(-1, 2))


def test_batch_norm_momentum_conversion():
    """One training step of jcnn's BatchNorm(momentum=momentum_from_torch(m)) moves the running
    statistics as PyTorch's formula does: (1 − m)·running + m·batch (biased variance here)."""
    m = 0.3
    layer = nn.BatchNorm(momentum=momentum_from_torch(m))
    x = np.random.default_rng(2).standard_normal((5, 3, 2))
    _, params, state = nn.init_with_state(layer, KEY, (-1, 3, 2))
    state = {"mean": jnp.asarray([0.5, -1.0]), "var": jnp.asarray([2.0, 0.5])}
    _, new = layer.apply(_f64(params), jnp.asarray(x), state=_f64(state), train=True)
    np.testing.assert_allclose(new["mean"], (1 - m) * np.array([0.5, -1.0])
                               + m * x.mean(axis=(0, 1)), rtol=1e-12)
    np.testing.assert_allclose(new["var"], (1 - m) * np.array([2.0, 0.5])
                               + m * x.var(axis=(0, 1)), rtol=1e-12)
    assert momentum_from_torch(0.1) == 0.9 and momentum_from_torch(1.0) == 0.0
    for bad in (None, 0.0, 1.5):
        with pytest.raises(ValueError, match=r"momentum_from_torch: PyTorch's `momentum` must "
                                             r"be in \(0, 1\]"):
            momentum_from_torch(bad)


# ------------------------------------------------------------------ real PyTorch
def test_pytorch_resnet_gives_the_same_logits():
    torch = pytest.importorskip("torch")
    tnn = torch.nn
    torch.manual_seed(0)

    class Block(tnn.Module):
        def __init__(self, c_in, c_out, stride):
            super().__init__()
            self.conv1 = tnn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
            self.bn1 = tnn.BatchNorm2d(c_out)
            self.conv2 = tnn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
            self.bn2 = tnn.BatchNorm2d(c_out)
            self.downsample = (tnn.Sequential(tnn.Conv2d(c_in, c_out, 1, stride, bias=False),
                                              tnn.BatchNorm2d(c_out))
                               if stride != 1 or c_in != c_out else None)

        def forward(self, x):
            y = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
            return torch.relu(y + (x if self.downsample is None else self.downsample(x)))

    net = tnn.Sequential(tnn.Conv2d(3, 8, 3, padding=1, bias=False), tnn.BatchNorm2d(8),
                         tnn.ReLU(), Block(8, 8, 1), Block(8, 16, 2), tnn.Flatten(),
                         tnn.Linear(16 * 4 * 3, 10))
    with torch.no_grad():  # running statistics away from (0, 1): a few training batches
        for _ in range(3):
            net(torch.randn(16, 3, 8, 6) * 2 + 1)
    net.eval()

    def block(c_in, c_out, stride):
        body = nn.serial(nn.Conv(c_out, (3, 3), stride=stride, padding=1, use_bias=False),
                         nn.BatchNorm(), nn.Relu,
                         nn.Conv(c_out, (3, 3), padding=1, use_bias=False), nn.BatchNorm())
        short = (nn.serial(nn.Conv(c_out, (1, 1), stride=stride, use_bias=False), nn.BatchNorm())
                 if stride != 1 or c_in != c_out else None)
        return nn.serial(nn.residual(body, short), nn.Relu)

    model = nn.serial(nn.Conv(8, (3, 3), padding=1, use_bias=False), nn.BatchNorm(), nn.Relu,
                      block(8, 8, 1), block(8, 16, 2), nn.Flatten, nn.Dense(10))
    shape = (-1, 8, 6, 3)
    _, params, state = nn.init_with_state(model, KEY, shape)
    sd = {k: v.numpy() for k, v in net.state_dict().items()}
    raw = load_torch_state_dict(model, params, state, net.state_dict(), input_shape=shape)
    params, state = load_torch_state_dict(model, params, state, sd, input_shape=shape)
    for a, b in zip(jax.tree_util.tree_leaves(raw), jax.tree_util.tree_leaves((params, state))):
        np.testing.assert_array_equal(a, b)  # torch tensors work as they are, too
    x = torch.randn(4, 3, 8, 6)
    with torch.no_grad():
        want = net(x).numpy()
    run = jax.jit(lambda p, s, x: nn.apply_with_state(model, p, s, x)[0])
    got = run(params, state, jnp.asarray(x.numpy().transpose(0, 2, 3, 1)))
    assert got.dtype == jnp.float32
    err = float(np.max(np.abs(np.asarray(got) - want)))
    print(f"PyTorch ResNet-style model: max |logit difference| {err:.2e} (f32)")
    assert err < 1e-5, err
