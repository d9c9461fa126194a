"""Layer API, summary, training loop, checkpoints, data loading, data parallelism."""

import gzip
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jcnn
from benchmarks.lax_twin import lax_twin
from jcnn import checkpoint, nn
from jcnn.data import load_digits, load_mnist, read_idx, write_idx
from jcnn.training import fit, make_train_step

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples"))
import autoencoder_digits  # noqa: E402
import train_digits  # noqa: E402
import train_mnist  # noqa: E402

KEY = jax.random.key(0)


@pytest.mark.parametrize("layer,shape", [
    (nn.Conv(5, (3, 3)), (2, 9, 9, 3)),
    (nn.Conv(4, (3, 2), stride=2, padding="SAME", dilation=(1, 2)), (2, 9, 8, 2)),
    (nn.Conv(6, (3,), groups=3, padding=((1, 0),)), (1, 7, 3)),
    (nn.Conv(2, (2, 2, 2), padding=1), (1, 4, 4, 4, 2)),
    (nn.Conv(3, (3, 3), padding=2, padding_mode="reflect"), (2, 6, 5, 2)),
    (nn.ConvTranspose(4, (3, 3), stride=2, padding=1, output_padding=1), (2, 5, 4, 3)),
    (nn.ConvTranspose(4, (2, 2, 2), stride=2, groups=2), (1, 2, 3, 2, 2)),
    (nn.AdaptiveAvgPool((3, 2)), (2, 7, 5, 3)),
    (nn.AdaptiveMaxPool((4,)), (2, 9, 3)),
    (nn.MaxPool((2, 2)), (2, 9, 9, 3)),
    (nn.MaxPool((3, 3), stride=2, padding=1, ceil_mode=True), (2, 10, 9, 3)),
    (nn.AvgPool((2, 3), count_include_pad=False, padding=1), (1, 6, 7, 2)),
    (nn.GlobalAvgPool, (2, 5, 5, 3)),
    (nn.GlobalMaxPool, (2, 5, 3)),
    (nn.Flatten, (2, 3, 4, 5)),
    (nn.Dense(7), (3, 11)),
    (nn.Relu, (2, 3)), (nn.LeakyRelu(0.1), (2, 3)), (nn.Sigmoid, (2, 3)), (nn.Tanh, (2, 3)),
    (nn.Softmax, (2, 3)), (nn.LogSoftmax, (2, 3)), (nn.Dropout(0.5), (4, 6)),
])
def test_init_shape_equals_apply_shape(layer, shape):
    out_shape, params = layer.init(KEY, (-1, *shape[1:]))
    y = layer.apply(params, jnp.ones(shape, jnp.float32), key=KEY, train=True)
    assert out_shape == (-1, *y.shape[1:])


def test_serial_shapes_and_params_are_plain_pytrees():
    model = train_digits.digits_model()
    out_shape, params = model.init(KEY, (-1, 8, 8, 1))
    assert out_shape == (-1, 10)
    assert isinstance(params, tuple) and all(isinstance(p, dict) for p in params)
    assert params[0]["w"].shape == (3, 3, 1, 32) and params[0]["b"].shape == (32,)
    y = model.apply(params, jnp.ones((5, 8, 8, 1), jnp.float32))
    assert y.shape == (5, 10)
    # optax and tree_util take the params as they are
    opt = optax.adam(1e-3)
    state = opt.init(params)
    updates, _ = opt.update(jax.tree_util.tree_map(jnp.ones_like, params), state, params)
    assert jax.tree_util.tree_structure(updates) == jax.tree_util.tree_structure(params)


def test_initialisers_have_the_stated_scale():
    _, p = nn.Conv(256, (3, 3)).init(KEY, (-1, 16, 16, 64))
    fan_in = 3 * 3 * 64
    assert abs(float(jnp.std(p["w"])) - np.sqrt(2 / fan_in)) < 0.02 * np.sqrt(2 / fan_in)
    _, p = nn.Dense(300).init(KEY, (-1, 500))
    limit = np.sqrt(6 / 800)
    assert float(jnp.abs(p["w"]).max()) <= limit and float(jnp.abs(p["w"]).max()) > 0.95 * limit


def test_init_says_which_layer_breaks():
    model = nn.serial(nn.Conv(4, (3, 3)), nn.Relu, nn.Dense(3))
    with pytest.raises(ValueError, match=r"serial: layer 2 \(Dense\) cannot take input shape "
                                         r"\(-1, 4, 4, 4\).*Flatten"):
        model.init(KEY, (-1, 6, 6, 1))
    with pytest.raises(ValueError, match=r"serial: layer 1 \(MaxPool\).*window 5 is larger"):
        nn.serial(nn.Conv(2, (3, 3)), nn.MaxPool((5, 5))).init(KEY, (-1, 6, 6, 1))
    with pytest.raises(ValueError, match=r"layer 0 \(Conv\).*does not match the window"):
        nn.serial(nn.Conv(2, (3, 3))).init(KEY, (-1, 6, 1))
    with pytest.raises(TypeError, match="serial: argument 1 is not a Layer"):
        nn.serial(nn.Relu, nn.Conv)
    with pytest.raises(ValueError, match="Dropout: `rate` must be in"):
        nn.Dropout(1.0)
    with pytest.raises(ValueError, match="needs a PRNG `key`"):
        nn.Dropout(0.5).apply({}, jnp.ones(3), train=True)


def test_summary_numbers_by_hand():
    model = nn.serial(nn.Conv(4, (3, 3)), nn.Relu, nn.MaxPool((2, 2)), nn.Flatten, nn.Dense(10))
    rows = nn.summary_rows(model, (-1, 6, 6, 1))
    # conv: 3·3·1·4 weights + 4 biases = 40; output 4·4·4 = 64 values from 36 inputs,
    # so a dense layer would need 36·64 + 64 = 2,368 parameters
    assert rows[0]["params"] == 40 and rows[0]["output_shape"] == (-1, 4, 4, 4)
    assert rows[0]["dense_params"] == 2368
    assert rows[2]["output_shape"] == (-1, 2, 2, 4) and rows[3]["output_shape"] == (-1, 16)
    assert rows[4]["params"] == 16 * 10 + 10
    text = nn.summary(model, (-1, 6, 6, 1))
    assert "2,368" in text and "59x" in text  # 2,368 / 40 ≈ 59
    assert text.splitlines()[-1].split()[:2] == ["total", "210"]
    assert sum(r["params"] for r in rows) == 210


def test_lax_twin_agrees_in_loss_and_gradients():
    model = train_digits.digits_model()
    _, params = model.init(KEY, (-1, 8, 8, 1))
    x_tr, y_tr, _, _ = load_digits()
    x, y = x_tr[:64], y_tr[:64]
    twin = lax_twin(model)

    def loss(apply):
        return lambda p: jcnn.softmax_cross_entropy(apply(p, x), y)

    with jax.default_matmul_precision("highest"):  # f32 products on a GPU too, both sides
        l1, g1 = jax.jit(jax.value_and_grad(loss(model.apply)))(params)
        l2, g2 = jax.jit(jax.value_and_grad(loss(twin)))(params)
    np.testing.assert_allclose(l1, l2, rtol=1e-5)
    for a, b in zip(jax.tree_util.tree_leaves(g1), jax.tree_util.tree_leaves(g2)):
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-6)


def _small_model():
    return nn.serial(nn.Conv(8, (3, 3), padding="SAME"), nn.Relu, nn.MaxPool((2, 2)), nn.Flatten,
                     nn.Dense(10))


@pytest.fixture(scope="module")
def digits():
    return load_digits(seed=0)


def test_short_training_beats_chance(digits):
    _, history, stats = fit(_small_model(), digits, input_shape=(-1, 8, 8, 1), epochs=3,
                            batch_size=64, lr=3e-3, progress=False)
    assert history.test_accuracy[-1] > 0.6  # chance is 0.1
    assert history.train_loss[-1] < history.train_loss[0]
    assert stats["epochs"] == 3 and stats["images_per_second"] > 0


def test_resume_continues_the_run_exactly(digits, tmp_path):
    common = dict(input_shape=(-1, 8, 8, 1), batch_size=64, lr=3e-3, progress=False)
    straight, h_straight, _ = fit(_small_model(), digits, epochs=3, **common)
    fit(_small_model(), digits, epochs=3, out_dir=tmp_path, stop_after=1, **common)
    resumed, h_resumed, _ = fit(_small_model(), digits, epochs=3, out_dir=tmp_path,
                                resume=True, **common)
    for a, b in zip(jax.tree_util.tree_leaves(straight), jax.tree_util.tree_leaves(resumed)):
        np.testing.assert_array_equal(a, b)
    assert h_resumed.test_accuracy == h_straight.test_accuracy


def test_training_is_deterministic(digits):
    common = dict(input_shape=(-1, 8, 8, 1), epochs=1, batch_size=64, progress=False, seed=3)
    a, _, _ = fit(train_digits.digits_model(), digits, **common)
    b, _, _ = fit(train_digits.digits_model(), digits, **common)
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
        np.testing.assert_array_equal(x, y)


def test_train_step_compiles_once(digits):
    model, opt = _small_model(), optax.adam(1e-3)
    _, params = model.init(KEY, (-1, 8, 8, 1))
    state = opt.init(params)
    step = make_train_step(model, opt)
    x, y = digits[0], digits[1]
    for i in range(5):
        params, state, loss, _ = step(params, state, x[i * 32:(i + 1) * 32],
                                      y[i * 32:(i + 1) * 32], jax.random.key(i))
    assert step._cache_size() == 1


# ------------------------------------------------------------------ checkpoints
def _tree():
    _, params = _small_model().init(KEY, (-1, 8, 8, 1))
    return params, optax.adam(1e-3).init(params)


def test_checkpoint_round_trip(tmp_path):
    tree = _tree()
    checkpoint.save(tmp_path / "c.npz", tree, metadata={"epoch": 3})
    back, meta = checkpoint.restore(tmp_path / "c.npz", tree)
    assert meta == {"epoch": 3}
    for a, b in zip(jax.tree_util.tree_leaves(tree), jax.tree_util.tree_leaves(back)):
        np.testing.assert_array_equal(a, b)
        assert a.dtype == b.dtype
    assert jax.tree_util.tree_structure(back) == jax.tree_util.tree_structure(tree)


def test_checkpoint_corrupt_and_mismatched(tmp_path):
    tree = _tree()
    path = tmp_path / "c.npz"
    checkpoint.save(path, tree)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(checkpoint.CheckpointError, match="corrupt or not a jcnn checkpoint"):
        checkpoint.restore(path, tree)
    checkpoint.save(path, tree)
    other = nn.serial(nn.Conv(4, (3, 3)), nn.Flatten, nn.Dense(10)).init(KEY, (-1, 8, 8, 1))[1]
    with pytest.raises(checkpoint.CheckpointError, match="different structure|leaf"):
        checkpoint.restore(path, other)
    wide = _small_model().init(KEY, (-1, 16, 16, 1))[1]  # same structure, other shapes
    checkpoint.save(tmp_path / "w.npz", (wide, optax.adam(1e-3).init(wide)))
    with pytest.raises(checkpoint.CheckpointError, match=r"leaf .* is float32\[512, 10\], "
                                                         r"expected float32\[128, 10\]"):
        checkpoint.restore(tmp_path / "w.npz", tree)
    with pytest.raises(FileNotFoundError):
        checkpoint.restore(tmp_path / "missing.npz", tree)


def test_interrupted_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    tree = _tree()
    path = tmp_path / "c.npz"
    checkpoint.save(path, tree, metadata={"epoch": 1})
    real_savez = np.savez

    def dying_savez(f, **arrays):  # writes part of the file, then the process "dies"
        real_savez(f, **dict(list(arrays.items())[:2]))
        raise KeyboardInterrupt("killed mid-save")

    monkeypatch.setattr(np, "savez", dying_savez)
    with pytest.raises(KeyboardInterrupt):
        checkpoint.save(path, jax.tree_util.tree_map(lambda a: a + 1, tree),
                        metadata={"epoch": 2})
    monkeypatch.undo()
    back, meta = checkpoint.restore(path, tree)
    assert meta == {"epoch": 1}
    np.testing.assert_array_equal(jax.tree_util.tree_leaves(back)[0],
                                  jax.tree_util.tree_leaves(tree)[0])
    assert sorted(os.listdir(tmp_path)) == ["c.npz"]  # no temp file left behind


# ------------------------------------------------------------------ IDX / MNIST
def _write_mnist(d, n_train=64, n_test=32, compress=False, seed=0):
    rng = np.random.default_rng(seed)
    labels = {"train": rng.integers(0, 10, n_train), "t10k": rng.integers(0, 10, n_test)}
    for split, lab in labels.items():
        # a learnable toy: class c lights up row block c
        img = rng.integers(0, 40, (len(lab), 28, 28)).astype(np.uint8)
        for i, c in enumerate(lab):
            img[i, 2 * c + 4:2 * c + 7, 4:24] = 255
        write_idx(d / f"{split}-images-idx3-ubyte{'.gz' if compress else ''}", img,
                  compress=compress)
        write_idx(d / f"{split}-labels-idx1-ubyte{'.gz' if compress else ''}",
                  lab.astype(np.uint8), compress=compress)
    return labels


@pytest.mark.parametrize("compress", [False, True])
def test_idx_round_trip_and_mnist_loader(tmp_path, compress):
    labels = _write_mnist(tmp_path, compress=compress)
    x_tr, y_tr, x_te, y_te = load_mnist(tmp_path)
    assert x_tr.shape == (64, 28, 28, 1) and x_te.shape == (32, 28, 28, 1)
    assert x_tr.dtype == np.float32 and 0 <= x_tr.min() and x_tr.max() == 1.0
    np.testing.assert_array_equal(y_tr, labels["train"])
    a = np.arange(24, dtype=np.int32).reshape(2, 3, 4) - 5
    write_idx(tmp_path / "a.idx", a)
    np.testing.assert_array_equal(read_idx(tmp_path / "a.idx"), a)


def test_idx_hand_written_bytes(tmp_path):
    raw = bytes([0, 0, 0x08, 2, 0, 0, 0, 2, 0, 0, 0, 3, 1, 2, 3, 4, 5, 6])
    (tmp_path / "m").write_bytes(raw)
    np.testing.assert_array_equal(read_idx(tmp_path / "m"), [[1, 2, 3], [4, 5, 6]])
    (tmp_path / "m.gz").write_bytes(gzip.compress(raw))
    np.testing.assert_array_equal(read_idx(tmp_path / "m.gz"), [[1, 2, 3], [4, 5, 6]])
    (tmp_path / "bad").write_bytes(b"\x01\x02\x08\x01")
    with pytest.raises(ValueError, match="not an IDX file"):
        read_idx(tmp_path / "bad")
    (tmp_path / "short").write_bytes(raw[:-1])
    with pytest.raises(ValueError, match="holds 5 data bytes, its header \\(2, 3\\) needs 6"):
        read_idx(tmp_path / "short")


def test_mnist_missing_files_are_named(tmp_path):
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(3, np.uint8))
    with pytest.raises(FileNotFoundError) as e:
        load_mnist(tmp_path)
    msg = str(e.value)
    assert "train-images-idx3-ubyte" in msg and "t10k-labels-idx1-ubyte" in msg
    missing_part = msg.split("(")[0]
    assert "missing in" in missing_part and "train-labels" not in missing_part
    assert missing_part.count("ubyte") == 3


def test_train_mnist_example_runs_on_small_idx_files(tmp_path):
    _write_mnist(tmp_path, n_train=256, n_test=64, compress=True)
    out = tmp_path / "run"
    _, history, metrics = train_mnist.main([
        "--data-dir", str(tmp_path), "--epochs", "2", "--batch-size", "64", "--no-progress",
        "--out", str(out), "--metrics-json", str(tmp_path / "m.json"), "--lr", "2e-3"])
    saved = json.loads((tmp_path / "m.json").read_text())
    assert set(saved) == {"test_accuracy", "train_seconds", "images_per_second", "epochs",
                          "compile_seconds"}
    assert saved["epochs"] == 2 and saved["test_accuracy"] == history.test_accuracy[-1]
    assert (out / "checkpoint.npz").is_file() and (out / "curves.png").stat().st_size > 1000


def test_train_digits_example_flags(tmp_path):
    _, history, metrics = train_digits.main([
        "--epochs", "2", "--batch-size", "32", "--no-progress", "--seed", "1",
        "--out", str(tmp_path), "--metrics-json", str(tmp_path / "m.json")])
    assert metrics["test_accuracy"] > 0.5 and len(history.test_accuracy) == 2
    _, history2, _ = train_digits.main([
        "--epochs", "3", "--batch-size", "32", "--no-progress", "--seed", "1",
        "--out", str(tmp_path), "--resume"])
    assert history2.test_accuracy[:2] == history.test_accuracy and len(history2.test_accuracy) == 3


# ------------------------------------------------------------------ data parallel
def test_sharded_step_equals_single_device_step():
    script = textwrap.dedent(f"""
        import sys; sys.path.insert(0, {str(ROOT)!r})
        import jax, numpy as np, optax
        from jcnn import nn
        from jcnn.data import load_digits
        from jcnn.training import DataParallel, make_train_step
        assert len(jax.devices()) == 4, jax.devices()
        model = nn.serial(nn.Conv(8, (3, 3), padding="SAME"), nn.Relu, nn.MaxPool((2, 2)),
                          nn.Flatten, nn.Dense(10))
        _, params = model.init(jax.random.key(0), (-1, 8, 8, 1))
        opt = optax.adam(1e-2)
        x, y = load_digits()[:2]
        x, y = x[:64], y[:64]
        step = make_train_step(model, opt)
        out = []
        for devices in (jax.devices()[:1], jax.devices()):
            dp = DataParallel(devices)
            p, s = dp.replicate((params, opt.init(params)))
            for i in range(3):
                xb, yb = dp.shard(x, y)
                p, s, loss, _ = step(p, s, xb, yb, jax.random.key(i))
            assert len(xb.sharding.device_set) == len(devices)
            out.append((float(loss), jax.tree_util.tree_leaves(p)))
        (l1, p1), (l4, p4) = out
        assert abs(l1 - l4) <= 1e-5 * abs(l1), (l1, l4)
        for a, b in zip(p1, p4):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
        print("OK", l1, l4)
    """)
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4",
               JAX_PLATFORMS="cpu")
    r = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.startswith("OK")


def test_autoencoder_example_learns_and_draws(tmp_path):
    metrics = autoencoder_digits.main(["--epochs", "3", "--out", str(tmp_path)])
    assert metrics["test_mse"] < 0.5 * metrics["baseline_mse"]  # beats the mean digit
    assert metrics["history"][-1] < metrics["history"][0]
    assert (tmp_path / "reconstructions.png").stat().st_size > 2000


# ------------------------------------------------------------------ first-hour surprises
@pytest.mark.parametrize("make", [lambda: nn.Conv(16, 3), lambda: nn.ConvTranspose(4, 2),
                                  lambda: nn.MaxPool(2), lambda: nn.AvgPool(2),
                                  lambda: nn.AdaptiveAvgPool(1)])
def test_int_windows_in_layers_are_refused(make):
    """An int window would build a 1-D model from an unbatched (H, W, C) shape."""
    with pytest.raises(TypeError, match=r"an int `(window|output_size)` .* does not say how "
                                        r"many spatial dims"):
        make()


def test_unbatched_input_shape_is_an_error_not_a_1d_model():
    with pytest.raises(ValueError, match=r"layer 0 \(Conv\).*does not match the window"):
        nn.serial(nn.Conv(16, (3, 3))).init(KEY, (8, 8, 1))


def test_apply_errors_name_the_layer():
    model = nn.serial(nn.Conv(4, (3, 3)), nn.Relu, nn.Flatten, nn.Dense(3))
    _, params = model.init(KEY, (-1, 6, 6, 1))
    with pytest.raises(ValueError, match=r"serial: layer 0 \(Conv\) failed on input shape "
                                         r"\(2, 6, 6, 2\): conv: x has 2 channels"):
        model.apply(params, jnp.ones((2, 6, 6, 2), jnp.float32))


def test_summary_shows_nested_blocks_without_initialising():
    block = nn.serial(nn.Conv(4, (3, 3), padding="SAME"), nn.Relu)
    model = nn.serial(block, nn.MaxPool((2, 2)), nn.Flatten, nn.Dense(10))
    rows = nn.summary_rows(model, (-1, 8, 8, 1))
    assert [r["name"] for r in rows] == ["0.0: Conv", "0.1: Relu", "1: MaxPool", "2: Flatten",
                                         "3: Dense"]
    assert [r["params"] for r in rows] == [3 * 3 * 1 * 4 + 4, 0, 0, 0, 4 * 4 * 4 * 10 + 10]
    assert rows[-1]["output_shape"] == (-1, 10)
    table = nn.summary(model, (-1, 8, 8, 1))
    assert "0.1: Relu" in table and "3: Dense" in table
    # shapes only: 10¹⁰ weights (40 GB of f32) would not fit if they were initialised
    huge = nn.summary_rows(nn.serial(nn.Flatten, nn.Dense(100_000)), (-1, 100_000))
    assert huge[-1]["params"] == 100_000 * 100_000 + 100_000


def test_layers_take_jax_initializers():
    init = jax.nn.initializers.constant(0.5)
    _, p = nn.Conv(2, (3, 3), w_init=init).init(KEY, (-1, 5, 5, 1))
    assert p["w"].shape == (3, 3, 1, 2) and float(p["w"].min()) == float(p["w"].max()) == 0.5
    _, p = nn.Dense(3, w_init=jax.nn.initializers.lecun_normal()).init(KEY, (-1, 4000))
    std = float(jnp.std(p["w"]))
    assert abs(std - (1 / 4000) ** 0.5) < 0.1 * (1 / 4000) ** 0.5  # fan-in from axis -2
    _, p = nn.Conv(64, (3, 3)).init(KEY, (-1, 5, 5, 32))  # default: He normal, fan-in 3·3·32
    assert abs(float(jnp.std(p["w"])) - (2 / 288) ** 0.5) < 0.1 * (2 / 288) ** 0.5
    with pytest.raises(TypeError, match=r"Conv: `w_init` must be a JAX initializer"):
        nn.Conv(2, (3, 3), w_init="he")


def test_fit_without_tqdm_prints_epochs(digits, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "tqdm", None)  # as on a plain install
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    _, history, stats = fit(_small_model(), digits, input_shape=(-1, 8, 8, 1), epochs=2,
                            batch_size=64, lr=3e-3, progress=True)
    out = capsys.readouterr()
    assert "epoch 1/2: loss" in out.out and "epoch 2/2: loss" in out.out
    assert "tqdm is not installed" in out.err
    # compilation happens before the clock: training seconds are the epochs' own
    assert stats["compile_seconds"] > 0
    assert stats["train_seconds"] == pytest.approx(sum(history.seconds))


def test_fit_takes_an_optax_optimizer_and_a_loss(digits):
    seen = []

    def loss(logits, labels):
        seen.append(logits.shape)
        return jcnn.softmax_cross_entropy(logits, labels) * 0.0  # no gradient: no learning

    _, history, _ = fit(_small_model(), digits, input_shape=(-1, 8, 8, 1), epochs=2,
                        batch_size=64, progress=False, loss=loss, optimizer=optax.sgd(0.1))
    assert seen and seen[0] == (64, 10)
    assert history.test_accuracy[0] == history.test_accuracy[1]  # params never moved
    _, history, _ = fit(_small_model(), digits, input_shape=(-1, 8, 8, 1), epochs=2,
                        batch_size=64, progress=False, optimizer=optax.sgd(0.5))
    assert history.test_accuracy[-1] > 0.5
    with pytest.raises(TypeError, match="fit: `optimizer` must be an optax"):
        fit(_small_model(), digits, input_shape=(-1, 8, 8, 1), optimizer="adam")


def test_train_step_donates_params_and_optimizer_state():
    model = _small_model()
    _, params = model.init(KEY, (-1, 8, 8, 1))
    opt = optax.adam(1e-3)
    state = opt.init(params)
    x, y = jnp.zeros((4, 8, 8, 1), jnp.float32), jnp.zeros(4, jnp.int32)
    text = make_train_step(model, opt).lower(params, state, x, y, KEY).as_text()
    donated = text.count("jax.buffer_donor") + text.count("tf.aliasing_output")
    assert donated >= len(jax.tree_util.tree_leaves((params, state)))
