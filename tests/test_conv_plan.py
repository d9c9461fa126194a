"""The conv plan: what each platform picks, that the lowered program runs it, and
``precision=`` reaching every contraction.  (Every arrangement itself is tested
against lax in ``test_conv.py``.)"""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from cross_lowering import lowered_text
from oracles import lax_conv

import jcnn
from jcnn import conv_arrangements as arr
from jcnn import conv_plan
from jcnn.conv_geometry import Geometry
from jcnn.conv_plan import ConvPlan


def _geo(x_shape, w_shape, stride=1, pad=1, groups=1):
    nd = len(x_shape) - 2
    return Geometry(x_shape, w_shape, (stride,) * nd, ((pad, pad),) * nd, (1,) * nd, groups)


RESNET = _geo((64, 56, 56, 64), (3, 3, 64, 64))
STRIDED = _geo((64, 56, 56, 128), (3, 3, 128, 128), stride=2)
DEPTHWISE = _geo((64, 56, 56, 144), (3, 3, 1, 144), groups=144)
LENET1 = _geo((16, 28, 28, 1), (5, 5, 1, 32), pad=2)
LENET2 = _geo((16, 14, 14, 32), (5, 5, 32, 64), pad=2)  # 0.6 MiB of patches per example
CPU_SUITE = _geo((16, 32, 32, 64), (3, 3, 64, 64))
HUGE = _geo((2, 512, 512, 64), (3, 3, 64, 64))  # one example's patch matrix: 604 MB
WIDE = _geo((64, 56, 56, 64), (3, 3, 64, 128))  # 128 output channels


@pytest.mark.parametrize("geo,platform,want", [
    # CPU: batch blocks whose patch matrix fits 7 MiB of f32 (one example when it
    # does not); per-offset loops when one example's is over 16 MiB
    (CPU_SUITE, "cpu", ConvPlan("gather", "scatter", "gather", 2)),
    (RESNET, "cpu", ConvPlan("gather", "scatter", "gather", 1)),
    (STRIDED, "cpu", ConvPlan("gather", "scatter", "gather", 2)),
    (LENET2, "cpu", ConvPlan("gather", "scatter", "gather", 8)),
    (DEPTHWISE, "cpu", ConvPlan("depthwise", "fullconv", "depthwise", 1)),
    (LENET1, "cpu", ConvPlan("offsets", "scatter", "gather", 0)),
    (HUGE, "cpu", ConvPlan("scan", "fullconv", "scan", 1)),
    # GPU/TPU: the whole batch in one block unless the memory budget demands blocks;
    # CUDA runs the layers of the offline table's Pallas region (the fused kernels moved
    # fewer bytes than the XLA plan on every measured layer) on the kernels
    (CPU_SUITE, "cuda", ConvPlan("pallas", "pallas", "pallas", 0)),
    (RESNET, "cuda", ConvPlan("pallas", "pallas", "pallas", 0)),
    (WIDE, "cuda", ConvPlan("pallas", "pallas", "pallas", 0)),
    (STRIDED, "cuda", ConvPlan("pallas", "pallas", "pallas", 0)),
    (DEPTHWISE, "cuda", ConvPlan("pallas", "pallas", "pallas", 0)),
    (HUGE, "cuda", ConvPlan("pallas", "pallas", "pallas", 1)),
    (LENET2, "cuda", ConvPlan("gather", "scatter", "offsets", 0)),  # 5×5: not measured
    (DEPTHWISE, "rocm", ConvPlan("depthwise", "fullconv", "offsets", 0)),
    (HUGE, "rocm", ConvPlan("gather", "scatter", "offsets", 1)),
    (RESNET, "tpu", ConvPlan("gather", "scatter", "offsets", 0)),
])
def test_plan_pins(geo, platform, want):
    got = conv_plan.plan(geo, jnp.float32, platform)
    assert got == want
    assert hash(got) == hash(want)  # static argument of the custom_vjp
    assert got.check(geo) is got


def test_plan_groups_platforms_and_rejects_unknown():
    plans = conv_plan.plans_for(RESNET, jnp.float32)
    assert [ps for ps, _ in plans] == [("cpu",), ("cuda",), ("rocm", "tpu")]
    assert [ps for ps, _ in conv_plan.plans_for(LENET2, jnp.float32)] == [
        ("cpu",), ("cuda", "rocm", "tpu")]
    assert len(conv_plan.plans_for(LENET1, jnp.float32, ("cuda", "tpu"))) == 1
    with pytest.raises(ValueError, match="unknown platform 'metal'"):
        conv_plan.plan(RESNET, jnp.float32, "metal")


def _lowered(fn, args, platform):
    return lowered_text(fn, *args, platforms=(platform,))


def _fwd_bwd(**kw):
    def run(x, w, ct):
        y, vjp = jax.vjp(lambda x, w: jcnn.conv(x, w, **kw), x, w)
        return y, *vjp(ct)
    return run


def test_lowering_picks_the_platform_plan():
    """The plan is chosen where the program is lowered (``platform_dependent``), not
    from the process's backend: lowered here for a TPU the 56²×64 → 128 layer runs in
    one whole-batch block (no loop), for a CPU in batch blocks (a while loop)."""
    x = jax.ShapeDtypeStruct(WIDE.x_shape, jnp.float32)
    w = jax.ShapeDtypeStruct(WIDE.w_shape, jnp.float32)
    ct = jax.ShapeDtypeStruct((64, 56, 56, 128), jnp.float32)
    fn = _fwd_bwd(padding="SAME")
    gpu, cpu = _lowered(fn, (x, w, ct), "tpu"), _lowered(fn, (x, w, ct), "cpu")
    assert "stablehlo.while" not in gpu
    assert "stablehlo.while" in cpu
    # the accelerator's forward is one GEMM over the whole batch's patch matrix
    assert re.search(r"dot_general.*tensor<64x56x56x576xf32>", gpu)
    assert not re.search(r"dot_general.*tensor<64x56x56x576xf32>", cpu)
    assert "triton" not in gpu


def test_cuda_lowers_the_pallas_kernels_for_the_measured_layer():
    """56²×64 → 64 in f32: forward, dX and dW are one Triton kernel each, with no pad,
    slice or patch-matrix GEMM around them; for a TPU the same program keeps the
    gathered GEMM."""
    x = jax.ShapeDtypeStruct(RESNET.x_shape, jnp.float32)
    w = jax.ShapeDtypeStruct(RESNET.w_shape, jnp.float32)
    fn = _fwd_bwd(padding="SAME")
    cuda, tpu = (_lowered(fn, (x, w, x), p) for p in ("cuda", "tpu"))
    assert cuda.count("custom_call @__gpu$xla.gpu.triton") == 3
    for name in ("jcnn_conv_forward", "jcnn_conv_transposed", "jcnn_conv_weight_grad"):
        assert name in cuda
    assert not re.search(r"stablehlo\.(pad|slice|dot_general|convolution)\b", cuda)
    assert "triton" not in tpu and re.search(r"dot_general.*tensor<64x56x56x576xf32>", tpu)


def test_platform_dependent_runs_the_cpu_branch_here():
    """Executed on this machine, a conv whose plans differ per platform gives lax's
    values: the CPU branch is the one that runs."""
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((8, 9, 9, 3)), rng.standard_normal((3, 3, 3, 4))
    geo = _geo(x.shape, w.shape)
    assert len(conv_plan.plans_for(geo, x.dtype)) >= 1
    got = jax.jit(lambda x, w: jcnn.conv(x, w, padding=1))(x, w)
    want = lax_conv(x, w, stride=(1, 1), padding=((1, 1),) * 2, dilation=(1, 1), groups=1)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_dispatch_branches_per_platform():
    """Two plans, two branches: each lowered program contains only its own."""
    plans = ((("cpu",), ConvPlan("gather", "scatter", "gather")),
             (("cuda", "rocm", "tpu"), ConvPlan("offsets", "scatter", "gather")))

    def fn(x):
        return conv_plan.dispatch(plans, lambda ps, p, x: x * (1.0 if p.forward == "gather"
                                                               else 2.0), x)

    x = jax.ShapeDtypeStruct((3,), jnp.float32)
    assert "2.0" in _lowered(fn, (x,), "cuda") and "2.0" not in _lowered(fn, (x,), "cpu")
    here = 1.0 if jax.devices()[0].platform == "cpu" else 2.0  # the branch that runs here
    np.testing.assert_array_equal(jax.jit(fn)(jnp.ones(3)), np.full(3, here))


@pytest.mark.parametrize("plan,match", [
    (ConvPlan("im2col", "scatter", "gather"), "unknown forward arrangement 'im2col'"),
    (ConvPlan("gather", "nope", "gather"), "unknown input_grad arrangement 'nope'"),
    (ConvPlan("gather", "scatter", "nope"), "unknown weight_grad arrangement 'nope'"),
    (ConvPlan("depthwise", "scatter", "gather"), "'depthwise' forward needs one input"),
    (ConvPlan("gather", "scatter", "depthwise"), "'depthwise' weight_grad needs one input"),
    (ConvPlan("gather", "scatter", "gather", -1), "block must be an int >= 0"),
])
def test_forced_plan_is_checked(plan, match):
    with pytest.raises(ValueError, match=match):
        jcnn.conv(jnp.ones((2, 5, 5, 2)), jnp.ones((3, 3, 2, 4)), plan=plan)


def test_forced_plan_type():
    with pytest.raises(TypeError, match="`plan` must be a jcnn.ConvPlan"):
        jcnn.conv(jnp.ones((2, 5, 5, 2)), jnp.ones((3, 3, 2, 4)), plan="gather")


def test_registry_is_what_the_plan_names():
    names = {(p.forward, p.input_grad, p.weight_grad)
             for geo in (RESNET, STRIDED, DEPTHWISE, LENET1, CPU_SUITE, HUGE)
             for platform in conv_plan.PLATFORMS
             for p in [conv_plan.plan(geo, jnp.float32, platform)]}
    for fwd, dx, dw in names:
        assert fwd in arr.FORWARD and dx in arr.INPUT_GRAD and dw in arr.WEIGHT_GRAD


# --------------------------------------------------------------------------- #
# precision=
# --------------------------------------------------------------------------- #
def _precisions(text):
    """The precision list of every dot_general in a lowered program."""
    return [re.search(r"precision = \[([^\]]*)\]", line).group(1) if "precision =" in line
            else "DEFAULT" for line in text.splitlines() if "dot_general" in line]


@pytest.mark.parametrize("precision,want", [("highest", "HIGHEST"), ("high", "HIGH"),
                                            (jax.lax.Precision.HIGHEST, "HIGHEST")])
def test_precision_reaches_every_contraction(precision, want):
    """Forward, dX and dW (and the dense head) all carry the requested precision."""
    x = jax.ShapeDtypeStruct((4, 10, 10, 8), jnp.float32)
    w = jax.ShapeDtypeStruct((3, 3, 8, 8), jnp.float32)
    ct = jax.ShapeDtypeStruct((4, 5, 5, 8), jnp.float32)
    for platform in ("cpu", "cuda"):
        for kw in (dict(stride=2, padding=1), dict(stride=1, padding=0, dilation=2)):
            text = _lowered(_fwd_bwd(precision=precision, **kw), (x, w,
                            jax.ShapeDtypeStruct(jax.eval_shape(
                                lambda x, w: jcnn.conv(x, w, **kw), x, w).shape,
                                jnp.float32)), platform)
            found = _precisions(text)
            assert len(found) >= 3, (platform, kw)
            assert all(set(f.split(", ")) == {want} for f in found), found

    def dense_fb(x, w, ct):
        y, vjp = jax.vjp(lambda x, w: jcnn.dense(x, w, precision=precision), x, w)
        return y, *vjp(ct)

    text = _lowered(dense_fb, (jax.ShapeDtypeStruct((4, 6), jnp.float32),
                               jax.ShapeDtypeStruct((6, 3), jnp.float32),
                               jax.ShapeDtypeStruct((4, 3), jnp.float32)), "cuda")
    found = _precisions(text)
    assert len(found) == 3 and all(want in f for f in found)
    del ct


def test_default_precision_follows_jax_config():
    x = jax.ShapeDtypeStruct((2, 6, 6, 4), jnp.float32)
    w = jax.ShapeDtypeStruct((3, 3, 4, 4), jnp.float32)
    default = _precisions(_lowered(lambda x, w: jcnn.conv(x, w), (x, w), "cuda"))
    assert default in (["DEFAULT"], ["DEFAULT, DEFAULT"])
    with jax.default_matmul_precision("highest"):
        text = _lowered(lambda x, w: jcnn.conv(x, w), (x, w), "cuda")
    assert _precisions(text) == ["HIGHEST, HIGHEST"]


@pytest.mark.parametrize("fn,args", [
    (jcnn.conv, (jnp.ones((1, 5, 5, 1)), jnp.ones((3, 3, 1, 1)))),
    (jcnn.conv_transpose, (jnp.ones((1, 5, 5, 1)), jnp.ones((3, 3, 1, 1)))),
    (jcnn.dense, (jnp.ones((2, 3)), jnp.ones((3, 4)))),
])
def test_bad_precision_is_a_clear_error(fn, args):
    name = fn.__name__
    with pytest.raises(ValueError, match=rf"{name}: `precision` must be None, 'default'"):
        fn(*args, precision="fastest-please")


def test_precision_values_match_lax_at_highest():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 7, 7, 3)).astype(np.float32)
    w = rng.standard_normal((3, 3, 3, 5)).astype(np.float32)
    got = jcnn.conv(x, w, stride=2, padding=1, precision="highest")
    want = lax_conv(x.astype(np.float64), w.astype(np.float64), stride=(2, 2),
                    padding=((1, 1),) * 2, dilation=(1, 1), groups=1)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    y = jcnn.conv_transpose(x, w.transpose(0, 1, 3, 2)[..., :3], stride=2, precision="highest")
    assert y.shape == (2, 15, 15, 5)


def test_policy_table_is_what_the_measurements_give():
    """jcnn/conv_policy_table.py is generated: regenerating it from
    benchmarks/measured/ changes nothing (``--write-policy`` after a new sweep)."""
    from benchmarks import policy

    assert policy.render(policy.derive()) == policy.TABLE.read_text()


def test_policy_rules_follow_the_measurements():
    from benchmarks import policy

    def layer(name, ms, c=64, stride=1):
        return {"name": name, "dtype": "float32", "x": [8, 16, 16, c], "w": [3, 3, c, c],
                "stride": stride, "groups": 1, "ms": ms}

    sweep = {"pallas_version": policy.PALLAS_VERSION, "results": [
        layer("a", {"fwd gather": 2.0, "fwd shift": 1.0, "fwd pallas": 0.5,
                    "dx scatter": 1.0, "dx pallas": 3.0, "dw offsets": 1.0, "dw gather": 2.0}),
        layer("b", {"fwd gather": 2.0, "fwd shift": 1.5, "fwd pallas": 9.0,
                    "dx scatter": 1.0, "dx fullconv": 0.5, "dw offsets": 1.0}, c=128),
        layer("c", {"fwd gather": 1.0, "fwd shift": 3.0, "dx scatter": 1.0, "dw offsets": 1.0},
              stride=2)]}
    derived = policy._gpu(sweep)
    assert derived["defaults"]["forward_dense"] == "shift"  # won two of three layers
    assert derived["defaults"]["input_grad_dense"] == "scatter"
    (case,) = derived["pallas"]["forward"]  # only layer a's forward
    assert case["contracted"] == (32, 64) and case["produced_max"] == 64
    assert derived["pallas"]["input_grad"] == [] and derived["pallas"]["weight_grad"] == []
    old = policy._gpu(dict(sweep, pallas_version=policy.PALLAS_VERSION - 1))
    assert old["pallas"]["forward"] == []  # a sweep of older kernels says nothing of these
    assert old["defaults"] == derived["defaults"]


def test_offline_bytes_put_a_layer_in_the_pallas_region():
    from benchmarks import policy

    def entry(layer, plan, hbm, ok=True, spill=0):
        rows = [{"kind": "__gpu$xla.gpu.triton" if plan == policy.FORCED else "kLoop",
                 "spill": spill}]
        return {"layer": layer, "dtype": "bfloat16", "plan": plan,
                "jcnn": {"ok": ok, "rows": rows, "summary": {"hbm_bytes": hbm}}}

    shapes = {"l128": ("", (64, 28, 28, 128), (3, 3, 128, 128), 1, 1),
              "l256": ("", (64, 14, 14, 256), (3, 3, 256, 256), 1, 1),
              "spills": ("", (64, 7, 7, 512), (3, 3, 512, 512), 1, 1)}
    entries = [entry("l128", policy.FORCED, 100), entry("l128", "gather,scatter,offsets", 500),
               entry("l256", policy.FORCED, 600), entry("l256", "gather,scatter,offsets", 500),
               entry("spills", policy.FORCED, 10, spill=8),
               entry("spills", "gather,scatter,offsets", 500)]
    derived = policy._gpu({"results": []}, entries, shapes)
    for part in ("forward", "input_grad", "weight_grad"):
        (case,) = derived["pallas"][part]  # l128 only: l256 moved more, "spills" spilled
        assert case["dtype"] == "bfloat16" and case["contracted"] == (64, 128)
