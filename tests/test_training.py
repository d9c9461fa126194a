"""The training loop (jcnn/training.py) and the example scripts."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import autoencoder_digits
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import train_digits
import train_fashion
import train_mnist
from cases import write_toy_mnist

import jcnn
from jcnn import nn
from jcnn.data import load_digits
from jcnn.training import fit, make_train_step, predict

ROOT = Path(__file__).resolve().parents[1]


KEY = jax.random.key(0)


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


def _bn_model():
    return nn.serial(nn.Conv(8, (3, 3), padding="SAME", use_bias=False), nn.BatchNorm(),
                     nn.Relu, nn.residual(nn.serial(nn.Conv(8, (3, 3), padding=1), nn.BatchNorm())),
                     nn.MaxPool((2, 2)), nn.Flatten, nn.Dense(10))


def test_stateful_model_trains_and_resumes_exactly_with_its_state(digits, tmp_path):
    """Batch norm's running statistics: returned by fit, saved in the checkpoint,
    restored on resume (the resumed run equals the straight one bit for bit), and
    used by evaluation."""
    common = dict(input_shape=(-1, 8, 8, 1), batch_size=64, lr=3e-3, progress=False)
    params, state, history, _ = fit(_bn_model(), digits, epochs=3, **common)
    fit(_bn_model(), digits, epochs=3, out_dir=tmp_path, stop_after=1, **common)
    p2, s2, h2, _ = fit(_bn_model(), digits, epochs=3, out_dir=tmp_path, resume=True, **common)
    assert history.test_accuracy[-1] > 0.6 and h2.test_accuracy == history.test_accuracy
    for a, b in zip(jax.tree_util.tree_leaves((params, state)),
                    jax.tree_util.tree_leaves((p2, s2))):
        np.testing.assert_array_equal(a, b)
    assert float(jnp.abs(state[1]["mean"]).max()) > 0  # the running mean moved off zero
    # evaluation reads the running statistics: fit's test accuracy is reproduced with them
    model = _bn_model()
    logits, same = model.apply(params, digits[2], state=state, train=False)
    np.testing.assert_allclose(float(jnp.mean(jnp.argmax(logits, -1) == digits[3])),
                               history.test_accuracy[-1])
    for a, b in zip(jax.tree_util.tree_leaves(same), jax.tree_util.tree_leaves(state)):
        np.testing.assert_array_equal(a, b)  # evaluation leaves the statistics alone


def test_stateful_train_step_threads_the_state(digits):
    model, opt = _bn_model(), optax.adam(1e-3)
    _, params, state = nn.init_with_state(model, KEY, (-1, 8, 8, 1))
    step = make_train_step(model, opt)
    params, new_state, opt_state, loss, acc = step(params, state, opt.init(params),
                                                   digits[0][:32], digits[1][:32], KEY)
    assert loss.shape == () and new_state[1]["mean"].shape == (8,)
    assert not np.allclose(new_state[1]["mean"], 0.0)


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


def test_train_mnist_example_runs_on_small_idx_files(tmp_path):
    write_toy_mnist(tmp_path, n_train=256, n_test=64, compress=True)
    out = tmp_path / "run"
    _, history, metrics = train_mnist.main([
        "--data-dir", str(tmp_path), "--epochs", "2", "--batch-size", "64", "--no-progress",
        "--out", str(out), "--metrics-json", str(tmp_path / "m.json"), "--lr", "2e-3"])
    saved = json.loads((tmp_path / "m.json").read_text())
    assert set(saved) == {"test_accuracy", "train_seconds", "images_per_second", "epochs",
                          "compile_seconds", "seconds_per_epoch", "seed", "epochs_total",
                          "batch_size", "lr"}
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


@pytest.mark.parametrize("model", ["lenet", "resnet"])
def test_train_fashion_example_on_small_idx_files(tmp_path, model):
    write_toy_mnist(tmp_path, n_train=64, n_test=32, compress=True)
    out = tmp_path / "run"
    _, history, metrics = train_fashion.main([
        "--model", model, "--data-dir", str(tmp_path), "--epochs", "2", "--batch-size", "32",
        "--no-progress", "--out", str(out), "--metrics-json", str(tmp_path / "m.json")])
    saved = json.loads((tmp_path / "m.json").read_text())
    assert saved["epochs"] == 2 and saved["test_accuracy"] == history.test_accuracy[-1]
    assert saved["seconds_per_epoch"] > 0
    for name in ("checkpoint.npz", "curves.png", "confusion.png"):
        assert (out / name).stat().st_size > 1000, name
    _, history2, _ = train_fashion.main([
        "--model", model, "--data-dir", str(tmp_path), "--epochs", "3", "--batch-size", "32",
        "--no-progress", "--out", str(out), "--resume"])
    assert history2.test_accuracy[:2] == history.test_accuracy


def test_fit_augments_training_batches_only(digits):
    """An augmentation that blanks every image leaves the model only the class
    prior: training accuracy falls to about the commonest class's share."""
    common = dict(input_shape=(-1, 8, 8, 1), epochs=3, batch_size=64, lr=3e-3, progress=False)
    _, plain, _ = fit(_small_model(), digits, **common)
    _, blank, _ = fit(_small_model(), digits, augment=lambda key, x: jnp.zeros_like(x), **common)
    assert plain.train_accuracy[-1] > 0.6 and blank.train_accuracy[-1] < 0.2
    _, same, _ = fit(_small_model(), digits, augment=lambda key, x: x, **common)
    assert plain.test_accuracy == same.test_accuracy  # an identity changes nothing
    with pytest.raises(TypeError, match="fit: `augment` must be a function"):
        fit(_small_model(), digits, augment="flip", **common)


def test_predict_equals_the_argmax_of_apply(digits):
    model = _bn_model()
    _, params, state = nn.init_with_state(model, KEY, (-1, 8, 8, 1))
    x = digits[2][:37]
    want = jnp.argmax(model.apply(params, x, state=state)[0], -1)
    np.testing.assert_array_equal(predict(model, params, x, state=state, batch_size=16), want)
    with pytest.raises(TypeError, match="predict: the model has state"):
        predict(model, params, x)


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

