"""The bad-input catalogue: every bad call raises ValueError/TypeError naming the
function and the offending shapes or values, while tracing — eagerly and under jit."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jcnn

f32 = jnp.float32
X4 = np.ones((2, 8, 8, 3), np.float32)  # (N, H, W, C)
W4 = np.ones((3, 3, 3, 4), np.float32)
X3 = np.ones((2, 8, 3), np.float32)

# (id, function, arrays, keyword args, exception, message regex, also under jit)
CATALOGUE = [
    # conv: ranks and shapes
    ("conv-x-rank-2", jcnn.conv, (np.ones((8, 3), f32), np.ones((3, 3, 4), f32)), {},
     ValueError, r"conv: `x` must be \(N, \*spatial, C\).*x.shape=\(8, 3\)", True),
    ("conv-w-rank", jcnn.conv, (X4, np.ones((3, 3, 4), f32)), {},
     ValueError, r"conv: w must be 4-d.*w.shape=\(3, 3, 4\)", True),
    ("conv-channels", jcnn.conv, (X4, np.ones((3, 3, 4, 16), f32)), {},
     ValueError, r"conv: x has 3 channels but w expects 4 \(x.shape=\(2, 8, 8, 3\)", True),
    ("conv-groups-divide", jcnn.conv, (X4, np.ones((3, 3, 1, 4), f32)), {"groups": 2},
     ValueError, r"conv: `groups` \(=2\) must divide the input channels \(=3\)", True),
    ("conv-groups-cout", jcnn.conv, (np.ones((1, 5, 5, 4), f32), np.ones((3, 3, 2, 3), f32)),
     {"groups": 2}, ValueError, r"output channels \(=3\)", True),
    ("conv-groups-per-group", jcnn.conv, (np.ones((1, 5, 5, 4), f32),
                                          np.ones((3, 3, 1, 4), f32)), {"groups": 2},
     ValueError, r"x has 4 channels but w expects 2 \(1 per group x 2 groups\)", True),
    ("conv-groups-zero", jcnn.conv, (X4, W4), {"groups": 0},
     ValueError, r"conv: `groups` must be >= 1, got 0", True),
    ("conv-groups-float", jcnn.conv, (X4, W4), {"groups": 1.5},
     TypeError, r"conv: `groups` must be an integer, got 1.5", True),
    ("conv-stride-zero", jcnn.conv, (X4, W4), {"stride": 0},
     ValueError, r"conv: `stride` must be >= 1, got 0", True),
    ("conv-stride-negative-per-dim", jcnn.conv, (X4, W4), {"stride": (1, -2)},
     ValueError, r"conv: `stride` must be >= 1, got \(1, -2\)", True),
    ("conv-stride-length", jcnn.conv, (X4, W4), {"stride": (1, 2, 3)},
     ValueError, r"conv: `stride` needs one value per spatial dim \(2\)", True),
    ("conv-stride-float", jcnn.conv, (X4, W4), {"stride": 2.0},
     TypeError, r"conv: `stride` must be an integer, got 2.0", True),
    ("conv-stride-bool", jcnn.conv, (X4, W4), {"stride": True},
     TypeError, r"conv: `stride` must be an integer, got the bool True", True),
    ("conv-dilation-zero", jcnn.conv, (X4, W4), {"dilation": 0},
     ValueError, r"conv: `dilation` must be >= 1, got 0", True),
    ("conv-dilation-length", jcnn.conv, (X4, W4), {"dilation": (1,)},
     ValueError, r"conv: `dilation` needs one value per spatial dim \(2\), got \(1,\)", True),
    ("conv-padding-negative", jcnn.conv, (X4, W4), {"padding": -1},
     ValueError, r"conv: `padding` must be non-negative, got -1", True),
    ("conv-padding-negative-pair", jcnn.conv, (X4, W4), {"padding": ((0, 1), (-1, 0))},
     ValueError, r"conv: `padding` must be non-negative", True),
    ("conv-padding-string", jcnn.conv, (X4, W4), {"padding": "FULL"},
     ValueError, r"conv: unknown padding 'FULL'", True),
    ("conv-padding-length", jcnn.conv, (X4, W4), {"padding": (1, 1, 1)},
     ValueError, r"conv: `padding` needs one entry per spatial dim \(2\)", True),
    ("conv-padding-triple", jcnn.conv, (X4, W4), {"padding": ((1, 1, 1), (0, 0))},
     ValueError, r"conv: each `padding` pair must be \(low, high\)", True),
    ("conv-padding-float", jcnn.conv, (X4, W4), {"padding": 1.5},
     TypeError, r"conv: `padding` must be an integer, got 1.5", True),
    ("conv-bias-shape", jcnn.conv, (X4, W4, np.ones(3, f32)), {},
     ValueError, r"conv: b must have shape \(4,\).*b.shape=\(3,\)", True),
    ("conv-kernel-too-large", jcnn.conv, (X4, np.ones((9, 3, 3, 4), f32)), {},
     ValueError, r"conv: the kernel \(size 9, dilation 1: 9\) is larger than the padded "
                 r"input \(8 \+ 0 \+ 0 = 8\)", True),
    ("conv-dilated-kernel-too-large", jcnn.conv, (X4, W4), {"dilation": 4},
     ValueError, r"conv: the kernel \(size 3, dilation 4: 9\) is larger", True),
    ("conv-int-input", jcnn.conv, (np.ones((2, 8, 8, 3), np.int32), W4), {},
     TypeError, r"conv: `x` must have a floating-point dtype, got int32", True),
    ("conv-int-kernel", jcnn.conv, (X4, np.ones((3, 3, 3, 4), np.int32)), {},
     TypeError, r"conv: `w` must have a floating-point dtype, got int32", True),
    ("conv-mixed-dtypes", jcnn.conv, (X4, np.ones((3, 3, 3, 4), np.float16)), {},
     TypeError, r"conv: arrays must share one dtype, got x.dtype=float32, w.dtype=float16",
     True),
    ("conv-zero-window", jcnn.conv, (X4, np.ones((0, 3, 3, 4), f32)), {},
     ValueError, r"conv: the kernel window \(0, 3\) has a zero-size dim", True),
    ("conv3d-given-4d", jcnn.conv3d, (X4, W4), {},
     ValueError, r"conv3d: `x` must be 5-d \(N, spatial, spatial, spatial, C\), "
                 r"got x.shape=\(2, 8, 8, 3\)", True),
    ("conv1d-given-4d", jcnn.conv1d, (X4, W4), {},
     ValueError, r"conv1d: `x` must be 3-d", True),
    ("conv2d-given-3d", jcnn.conv2d, (X3, np.ones((3, 3, 4), f32)), {},
     ValueError, r"conv2d: `x` must be 4-d", True),
    # convolve2d
    ("convolve2d-rank", jcnn.convolve2d, (np.ones((3, 3, 1), f32), np.ones((2, 2), f32)), {},
     ValueError, r"convolve2d: image and kernel must be 2-d, got image.shape=\(3, 3, 1\)",
     True),
    ("convolve2d-mode", jcnn.convolve2d, (np.ones((3, 3), f32), np.ones((2, 2), f32)),
     {"mode": "circular"}, ValueError, r"convolve2d: mode must be 'full', 'valid' or 'same'",
     True),
    ("convolve2d-valid-neither-contains", jcnn.convolve2d,
     (np.ones((3, 5), f32), np.ones((4, 2), f32)), {"mode": "valid"},
     ValueError, r"convolve2d: in 'valid' mode one input must be at least as large", True),
    ("conv-padding-mode", jcnn.conv, (X4, W4), {"padding": 1, "padding_mode": "mirror"},
     ValueError, r"conv: unknown padding_mode 'mirror'", True),
    ("conv-reflect-too-wide", jcnn.conv, (X4, W4), {"padding": 8, "padding_mode": "reflect"},
     ValueError, r"conv: reflect padding \(8, 8\) must be smaller than the input size 8", True),
    ("conv_transpose-output-padding", jcnn.conv_transpose, (X4, np.ones((3, 3, 2, 3), f32)),
     {"stride": 2, "output_padding": 2}, ValueError,
     r"conv_transpose: output_padding \(2\) must be smaller than the stride \(2\)", True),
    ("conv_transpose-channels", jcnn.conv_transpose, (X4, W4), {},
     ValueError, r"conv_transpose: x has 3 channels but w expects 4", True),
    ("adaptive_avg_pool-size", jcnn.adaptive_avg_pool, (X4, (2, 0)), {},
     ValueError, r"adaptive_avg_pool: `output_size` must be >= 1, got \(2, 0\)", True),
    ("adaptive_max_pool-length", jcnn.adaptive_max_pool, (X4, (2, 2, 2)), {},
     ValueError, r"adaptive_max_pool: `x` must be 5-d \(N, spatial, spatial, spatial, C\)",
     True),
    ("max_unpool-float-indices", jcnn.max_unpool, (X4, X4, (2, 2)), {},
     ValueError, r"max_unpool: indices must be integers shaped like y", True),
    # output_size
    ("output_size-kernel-too-large", jcnn.output_size, (3, 5), {},
     ValueError, r"output_size: the \(dilated\) kernel \(5\) is larger than the padded "
                 r"input \(3 \+ 0 \+ 0 = 3\)", False),
    ("output_size-stride-zero", jcnn.output_size, (8, 3), {"stride": 0},
     ValueError, r"output_size: `stride` must be >= 1", False),
    ("output_size-float-n", jcnn.output_size, (8.0, 3), {},
     TypeError, r"output_size: `n` must be an integer", False),
    # pools
    ("max_pool-window-zero", jcnn.max_pool2d, (X4, 0), {},
     ValueError, r"max_pool2d: `window` must be >= 1, got 0", True),
    ("max_pool-stride-zero", jcnn.max_pool2d, (X4, 2), {"stride": 0},
     ValueError, r"max_pool2d: `stride` must be >= 1, got 0", True),
    ("max_pool-window-too-large", jcnn.max_pool2d, (X4, 9), {},
     ValueError, r"max_pool2d: window 9 is larger than the padded input \(8 \+ 0 \+ 0 = 8\)",
     True),
    ("max_pool-window-length", jcnn.max_pool, (X4, (2, 2, 2)), {},
     ValueError, r"max_pool: `x` must be 5-d \(N, spatial, spatial, spatial, C\) to pool 3 "
                 r"spatial dims, got x.shape=\(2, 8, 8, 3\)", True),
    ("max_pool2d-window-length", jcnn.max_pool2d, (X4, (2, 2, 2)), {},
     ValueError, r"max_pool2d: `window` needs one value per spatial dim \(2\)", True),
    ("max_pool-int-window", jcnn.max_pool, (X4, 2), {},
     TypeError, r"max_pool: an int `window` \(2\) does not say how many spatial dims to "
                r"pool; give one per spatial dim, e.g. window=\(2, 2\), or call "
                r"max_pool2d\(x, 2\)", True),
    ("max_pool-unbatched", jcnn.max_pool, (np.ones((28, 28, 3), f32), (2, 2)), {},
     ValueError, r"max_pool: `x` must be 4-d .*x.shape=\(28, 28, 3\); a single example "
                 r"needs a batch axis: x\[None\]", True),
    ("max_pool2d-unbatched", jcnn.max_pool2d, (np.ones((28, 28, 3), f32), 2), {},
     ValueError, r"max_pool2d: `x` must be 4-d .*x\[None\]", True),
    ("global_avg_pool2d-unbatched", jcnn.global_avg_pool2d, (np.ones((28, 28, 3), f32),), {},
     ValueError, r"global_avg_pool2d: `x` must be 4-d .*x.shape=\(28, 28, 3\)", True),
    ("adaptive_avg_pool-int", jcnn.adaptive_avg_pool, (X4, 2), {},
     TypeError, r"adaptive_avg_pool: an int `output_size` \(2\) does not say how many spatial "
                r"dims to pool; give one per spatial dim, e.g. output_size=\(2, 2\) \(x", True),
    ("max_pool-padding-over-half", jcnn.max_pool2d, (X4, 3), {"padding": 2},
     ValueError, r"max_pool2d: padding \(2, 2\) in spatial dim 0 is wider than half the "
                 r"window \(3 // 2 = 1\)", True),
    ("max_pool-padding-negative", jcnn.max_pool2d, (X4, 3), {"padding": -1},
     ValueError, r"max_pool2d: `padding` must be non-negative", True),
    ("max_pool-padding-string", jcnn.max_pool2d, (X4, 2), {"padding": "full"},
     ValueError, r"max_pool2d: unknown padding 'full'", True),
    ("max_pool-rank", jcnn.max_pool1d, (np.ones((8, 3), f32), 2), {},
     ValueError, r"max_pool1d: `x` must be 3-d \(N, spatial, C\).*x.shape=\(8, 3\)", True),
    ("max_pool-4-spatial", jcnn.max_pool, (np.ones((1, 2, 2, 2, 2, 1), f32), (2,) * 4), {},
     ValueError, r"max_pool: 1 to 3 spatial dims are supported", True),
    ("max_pool-int", jcnn.max_pool2d, (np.ones((1, 4, 4, 1), np.int32), 2), {},
     TypeError, r"max_pool2d: `x` must have a floating-point dtype, got int32", True),
    ("max_pool-ceil-mode-type", jcnn.max_pool2d, (X4, 2), {"ceil_mode": "yes"},
     TypeError, r"max_pool2d: `ceil_mode` must be a bool", True),
    ("avg_pool-stride-length", jcnn.avg_pool2d, (X4, 2), {"stride": (1, 1, 1)},
     ValueError, r"avg_pool2d: `stride` needs one value per spatial dim \(2\)", True),
    ("avg_pool-padding-over-half", jcnn.avg_pool2d, (X4, 2), {"padding": ((0, 0), (0, 2))},
     ValueError, r"avg_pool2d: padding \(0, 2\) in spatial dim 1 is wider than half", True),
    ("avg_pool-count-include-pad-type", jcnn.avg_pool2d, (X4, 2), {"count_include_pad": 1},
     TypeError, r"avg_pool2d: `count_include_pad` must be a bool", True),
    ("global_avg_pool-rank", jcnn.global_avg_pool, (np.ones((4, 3), f32),), {},
     ValueError, r"global_avg_pool: `x` must be \(N, \*spatial, C\)", True),
    ("global_max_pool-int", jcnn.global_max_pool, (np.ones((1, 4, 4, 1), np.int8),), {},
     TypeError, r"global_max_pool: `x` must have a floating-point dtype, got int8", True),
    # activations
    ("relu-int", jcnn.relu, (np.arange(3),), {},
     TypeError, r"relu: `x` must have a floating-point dtype, got int", True),
    ("softmax-axis", jcnn.softmax, (np.ones((2, 3), f32),), {"axis": 2},
     ValueError, r"softmax: axis 2 is out of range for x.shape=\(2, 3\)", True),
    ("log_softmax-axis-type", jcnn.log_softmax, (np.ones((2, 3), f32),), {"axis": 1.0},
     TypeError, r"log_softmax: `axis` must be an int", True),
    ("leaky_relu-slope-type", jcnn.leaky_relu, (np.ones(3, f32),), {"negative_slope": "a"},
     TypeError, r"leaky_relu: `negative_slope` must be a Python number", True),
    # dense and loss
    ("dense-features", jcnn.dense, (np.ones((2, 5), f32), np.ones((4, 3), f32)), {},
     ValueError, r"dense: x has 5 features but w expects 4 \(x.shape=\(2, 5\), "
                 r"w.shape=\(4, 3\)\)", True),
    ("dense-rank", jcnn.dense, (X4, np.ones((4, 3), f32)), {},
     ValueError, r"dense: x must be \(N, D_in\).*jcnn.flatten", True),
    ("dense-bias", jcnn.dense, (np.ones((2, 4), f32), np.ones((4, 3), f32),
                                np.ones(4, f32)), {},
     ValueError, r"dense: b must have shape \(3,\), got b.shape=\(4,\)", True),
    ("loss-logits-rank", jcnn.softmax_cross_entropy, (np.ones(3, f32), np.zeros(3, np.int32)),
     {}, ValueError, r"softmax_cross_entropy: logits must be \(N, K\)", True),
    ("loss-labels-shape", jcnn.softmax_cross_entropy,
     (np.ones((4, 3), f32), np.zeros((4, 1), np.int32)), {},
     ValueError, r"labels must have shape \(4,\).*labels.shape=\(4, 1\)", True),
    ("loss-labels-float", jcnn.softmax_cross_entropy,
     (np.ones((4, 3), f32), np.zeros(4, f32)), {},
     TypeError, r"softmax_cross_entropy: labels must be integer class indices", True),
    ("loss-labels-range", jcnn.softmax_cross_entropy,
     (np.ones((2, 3), f32), np.array([0, 3])), {},
     ValueError, r"softmax_cross_entropy: labels must lie in \[0, 3\), got values from 0 "
                 r"to 3", False),
    ("loss-labels-negative", jcnn.softmax_cross_entropy,
     (np.ones((2, 3), f32), np.array([-1, 0])), {},
     ValueError, r"labels must lie in \[0, 3\), got values from -1", False),
]


@pytest.mark.parametrize("name,fn,arrays,kwargs,exc,match,jit_ok", CATALOGUE,
                         ids=[c[0] for c in CATALOGUE])
def test_bad_input(name, fn, arrays, kwargs, exc, match, jit_ok):
    with pytest.raises(exc, match=match):
        fn(*arrays, **kwargs)
    if jit_ok:  # the same error while tracing under jit: never an XLA error
        array_args = [a for a in arrays if isinstance(a, np.ndarray)]
        others = [a for a in arrays if not isinstance(a, np.ndarray)]

        def call(*arrs):
            return fn(*arrs, *others, **kwargs)

        with pytest.raises(exc, match=match):
            jax.jit(call)(*array_args)


def test_catalogue_ids_are_unique():
    assert len({c[0] for c in CATALOGUE}) == len(CATALOGUE)


@pytest.mark.parametrize("fn,x_shape,w_shape", [
    (jcnn.conv2d, (2, 32, 32, 3), (16, 3, 5, 5)),  # a PyTorch OIHW kernel
    (jcnn.conv, (2, 8, 8, 3), (9, 3, 3, 4)),  # kernel larger than the input
])
def test_layout_mistakes_get_a_layout_hint(fn, x_shape, w_shape):
    with pytest.raises(ValueError, match=r"channels-last: x \(N, H, W, C\), w \(kh, kw, C_in, "
                                         r"C_out\).*w\.transpose\(2, 3, 1, 0\)"):
        fn(np.ones(x_shape, np.float32), np.ones(w_shape, np.float32))


def test_traced_stride_says_mark_it_static():
    x, w = jnp.ones((1, 8, 8, 1)), jnp.ones((3, 3, 1, 1))
    with pytest.raises(TypeError, match=r"conv2d: `stride` must be a Python int known while "
                                        r"tracing.*static_argnames=\('stride',\)"):
        jax.jit(jcnn.conv2d)(x, w, stride=2)
    assert jax.jit(jcnn.conv2d, static_argnames=("stride",))(x, w, stride=2).shape == \
        (1, 3, 3, 1)


def test_out_of_range_labels_under_jit_give_nan():
    loss = jax.jit(jcnn.softmax_cross_entropy)(jnp.ones((2, 3)), jnp.array([0, 5]))
    assert np.isnan(loss)
