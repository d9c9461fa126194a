"""The training loop (jcnn/training.py and its parts jcnn/_fit_*.py) and the example scripts."""

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
from jcnn import checkpoint, nn
from jcnn.data import load_digits
from jcnn.training import FitResult, TrainingDiverged, fit, make_train_step

ROOT = Path(__file__).resolve().parents[1]
KEY = jax.random.key(0)
SHAPE = (-1, 8, 8, 1)


def _small_model():
    return nn.serial(nn.Conv(8, 3, padding="SAME"), nn.Relu, nn.MaxPool(2), nn.Flatten,
                     nn.Dense(10))


def _bn_model():
    return nn.serial(nn.Conv(8, (3, 3), padding="SAME", use_bias=False), nn.BatchNorm(),
                     nn.Relu, nn.residual(nn.serial(nn.Conv(8, (3, 3), padding=1), nn.BatchNorm())),
                     nn.MaxPool((2, 2)), nn.Flatten, nn.Dense(10))


@pytest.fixture(scope="module")
def digits():
    return load_digits(seed=0)


def _same_leaves(a, b):
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True):
        np.testing.assert_array_equal(x, y)


def test_short_training_beats_chance(digits):
    result = fit(_small_model(), digits, input_shape=SHAPE, epochs=3, batch_size=64, lr=3e-3,
                 progress=False)
    assert isinstance(result, FitResult) and result.state == {}
    history, stats = result.history, result.stats
    assert history.test_accuracy[-1] > 0.6  # chance is 0.1
    assert history.train_loss[-1] < history.train_loss[0]
    assert stats["epochs"] == 3 and stats["images_per_second"] > 0
    assert stats["skipped_steps"] == 0


def test_resume_continues_the_run_exactly(digits, tmp_path):
    common = dict(input_shape=SHAPE, batch_size=64, lr=3e-3, progress=False)
    straight = fit(_small_model(), digits, epochs=3, **common)
    fit(_small_model(), digits, epochs=3, out_dir=tmp_path, stop_after=1, **common)
    resumed = fit(_small_model(), digits, epochs=3, out_dir=tmp_path, resume=True, **common)
    _same_leaves(straight.params, resumed.params)
    assert resumed.history.test_accuracy == straight.history.test_accuracy


def test_stateful_model_trains_and_resumes_exactly_with_its_state(digits, tmp_path):
    """Batch norm's running statistics: returned by fit, saved in the checkpoint,
    restored on resume (the resumed run equals the straight one bit for bit), and
    used by evaluation; load_params reads the weights without the optimizer."""
    common = dict(input_shape=SHAPE, batch_size=64, lr=3e-3, progress=False)
    params, state, history, _ = fit(_bn_model(), digits, epochs=3, **common)
    fit(_bn_model(), digits, epochs=3, out_dir=tmp_path, stop_after=1, **common)
    p2, s2, h2, _ = fit(_bn_model(), digits, epochs=3, out_dir=tmp_path, resume=True, **common)
    assert history.test_accuracy[-1] > 0.6 and h2.test_accuracy == history.test_accuracy
    _same_leaves((params, state), (p2, s2))
    _same_leaves(checkpoint.load_params(tmp_path / "checkpoint.npz"), (p2, s2))
    assert float(jnp.abs(state[1]["mean"]).max()) > 0  # the running mean moved off zero
    # evaluation reads the running statistics: fit's test accuracy is reproduced with them
    model = _bn_model()
    logits, same = model.apply(params, digits[2], state=state, train=False)
    np.testing.assert_allclose(float(jnp.mean(jnp.argmax(logits, -1) == digits[3])),
                               history.test_accuracy[-1], rtol=1e-6)
    _same_leaves(same, state)  # evaluation leaves the statistics alone


def test_stateful_train_step_threads_the_state(digits):
    model, opt = _bn_model(), optax.adam(1e-3)
    _, params, state = nn.init_with_state(model, KEY, SHAPE)
    step = make_train_step(model, opt)
    params, new_state, opt_state, loss, metrics = step(params, state, opt.init(params),
                                                       digits[0][:32], digits[1][:32], KEY)
    assert loss.shape == () and new_state[1]["mean"].shape == (8,) and metrics == {}
    assert not np.allclose(new_state[1]["mean"], 0.0)


def test_training_is_deterministic(digits):
    common = dict(input_shape=SHAPE, epochs=1, batch_size=64, progress=False, seed=3)
    a = fit(train_digits.digits_model(), digits, **common)
    b = fit(train_digits.digits_model(), digits, **common)
    _same_leaves(a.params, b.params)


def test_train_step_compiles_once(digits):
    model, opt = _small_model(), optax.adam(1e-3)
    _, params = model.init(KEY, SHAPE)
    state = opt.init(params)
    step = make_train_step(model, opt)
    x, y = digits[0], digits[1]
    for i in range(5):
        params, state, loss, _ = step(params, state, x[i * 32:(i + 1) * 32],
                                      y[i * 32:(i + 1) * 32], jax.random.key(i))
    assert step._cache_size() == 1


def _mse(outputs, targets):
    return jnp.mean((outputs - targets) ** 2)


def test_fit_trains_a_regression_model_on_its_loss(digits):
    """Float targets and a squared error: fit's evaluation takes the loss it is given
    (no argmax, no accuracy); its test loss is the error computed here directly."""
    model = nn.serial(nn.Conv(4, 3, padding="SAME"), nn.Relu, nn.Conv(1, 3, padding="SAME"))
    x_tr, _, x_te, _ = digits
    targets = (x_tr[:, ::-1], x_te[:, ::-1])  # learn to flip the digits upside down
    result = fit(model, (x_tr, targets[0], x_te, targets[1]), input_shape=SHAPE, epochs=2,
                 lr=1e-2, loss=_mse, progress=False,
                 metrics={"mae": lambda o, t: jnp.mean(jnp.abs(o - t))})
    h = result.history
    assert sorted(h.as_dict()) == ["seconds", "test_loss", "test_mae", "train_loss", "train_mae"]
    out = np.asarray(model.apply(result.params, x_te), np.float64)
    np.testing.assert_allclose(h.test_loss[-1], np.mean((out - targets[1]) ** 2), rtol=1e-5)
    np.testing.assert_allclose(h.test_mae[-1], np.mean(np.abs(out - targets[1])), rtol=1e-5)
    assert h.train_loss[-1] < h.train_loss[0]


def test_fit_starts_from_given_weights(digits):
    """params=/state= start the run.  With a zero learning rate the params come back
    as they went in; the running statistics move as momentum·running + (1 −
    momentum)·batch, so a start 0.5 higher ends 0.5·0.9² higher after two steps;
    the reported test loss is the one of the returned weights."""
    model = nn.serial(nn.Conv(4, 3, use_bias=False), nn.BatchNorm(), nn.Relu, nn.Flatten,
                      nn.Dense(10))
    _, params, state = nn.init_with_state(model, jax.random.key(7), SHAPE)
    data = (digits[0][:128], digits[1][:128], digits[2][:64], digits[3][:64])
    common = dict(input_shape=SHAPE, epochs=1, batch_size=64, params=params,
                  optimizer=optax.sgd(0.0), progress=False)
    a = fit(model, data, state=state, **common)
    b = fit(model, data, state=jax.tree_util.tree_map(lambda s: s + 0.5, state), **common)
    _same_leaves(a.params, params)
    for x, y in zip(jax.tree_util.tree_leaves(a.state), jax.tree_util.tree_leaves(b.state)):
        np.testing.assert_allclose(y - x, 0.5 * 0.9 ** 2, rtol=1e-5)
    logits, _ = model.apply(params, data[2], state=a.state)
    want = jcnn.softmax_cross_entropy(logits, data[3])
    np.testing.assert_allclose(a.history.test_loss[0], want, rtol=1e-5)
    wrong = nn.serial(nn.Conv(4, 3)).init(KEY, SHAPE)[1]
    with pytest.raises(ValueError, match="fit: the given `params` do not fit the model"):
        fit(model, data, input_shape=SHAPE, params=wrong, progress=False)


def test_fit_starts_from_the_models_init_with_its_seed(digits):
    model = nn.serial(nn.Flatten, nn.Dense(10))
    result = fit(model, digits[:2], input_shape=SHAPE, epochs=1, seed=5,
                 optimizer=optax.sgd(0.0), progress=False)
    _same_leaves(result.params, model.init(jax.random.key(5), SHAPE)[1])


X8 = np.zeros((8, 8, 8, 1), np.float32)
Y8 = np.arange(8, dtype=np.int32)


def _with(a, index, value):
    a = a.copy()
    a[index] = value
    return a


@pytest.mark.parametrize("data,message", [
    ((X8, _with(Y8, 5, 10)), r"fit: y_train holds 1 label\(s\) outside \[0, 10\) for a model "
                             r"with 10 outputs, the first 10 at y_train\[5\]"),
    ((X8, Y8, X8, _with(Y8, 2, -1)), r"y_test holds 1 label\(s\) outside \[0, 10\).*y_test\[2\]"),
    ((_with(X8, (3, 2, 5, 0), np.nan), Y8),
     r"fit: x_train holds 1 non-finite value\(s\), the first nan at x_train\[3, 2, 5, 0\]"),
    ((X8, Y8, _with(X8, (0, 0, 0, 0), np.inf), Y8), r"x_test holds 1 non-finite.*inf"),
    ((X8, Y8[:7]), r"fit: x_train and y_train must hold the same number of examples, got "
                   r"x_train.shape=\(8, 8, 8, 1\) and y_train.shape=\(7,\)"),
    ((X8[..., 0], Y8), r"fit: x_train holds examples of shape \(8, 8\) but input_shape is "
                       r"\(-1, 8, 8, 1\)"),
    ((X8, Y8, X8[:0], Y8[:0]), r"fit: the test split is empty"),
    ((X8, Y8, X8, None), r"fit: give both x_test and y_test, or neither"),
    ((X8, Y8, X8, np.zeros((8, 10), np.float32)), r"fit: y_test \(float32\[8, 10\]\) are not "
                                                   r"class labels like y_train's"),
    ((X8,), r"fit: `data` must be \(x_train, y_train\)"),
])
def test_fit_checks_the_data_before_the_first_step(data, message):
    with pytest.raises((ValueError, TypeError), match=message):
        fit(_small_model(), data, input_shape=SHAPE, batch_size=4, progress=False)


def test_fit_checks_float_targets_and_the_loss_on_their_shapes():
    targets = _with(np.zeros((8, 10), np.float32), (4, 1), np.nan)
    with pytest.raises(ValueError, match=r"y_train holds 1 non-finite.*y_train\[4, 1\]"):
        fit(_small_model(), (X8, targets), input_shape=SHAPE, batch_size=4, loss=_mse,
            progress=False)
    with pytest.raises(TypeError, match=r"fit: loss\(outputs, targets\) fails on outputs "
                                        r"\(2, 10\) and targets \(2, 3\)"):
        fit(_small_model(), (X8, np.zeros((8, 3), np.float32)), input_shape=SHAPE,
            batch_size=4, loss=_mse, progress=False)
    with pytest.raises(ValueError, match=r"must return a scalar"):
        fit(_small_model(), (X8, np.zeros((8, 10), np.float32)), input_shape=SHAPE,
            batch_size=4, loss=lambda o, t: (o - t) ** 2, progress=False)


def test_fit_without_a_test_split_and_with_column_labels(digits):
    """(x, y) and (x, y, None, None) train without evaluation; (N, 1) labels are the
    (N,) labels."""
    x, y = digits[0][:256], digits[1][:256]
    common = dict(input_shape=SHAPE, epochs=1, batch_size=64, progress=False)
    a = fit(_small_model(), (x, y), **common)
    b = fit(_small_model(), (x, y[:, None], None, None), **common)
    assert sorted(a.history.as_dict()) == ["seconds", "train_accuracy", "train_loss"]
    assert "test_loss" not in b.history and a.history.train_loss == b.history.train_loss
    _same_leaves(a.params, b.params)


def _ramp_model():
    """out = Σ w·x + b from zeros; on three ones, sgd(0.25) on −mean(out) raises out
    by exactly 1 per step (each of the three weights and the bias gains 0.25)."""
    return nn.serial(nn.Flatten, nn.Dense(1, w_init=jax.nn.initializers.zeros))


def _ramp_loss(out, target):
    """−mean(out), NaN once out passes 4.5: the loss of step s (params after s − 1
    steps, out = s − 1) is NaN from step 6 on."""
    return jnp.where(jnp.mean(out) > 4.5, jnp.nan, -jnp.mean(out)) + 0.0 * jnp.mean(target)


def test_a_nonfinite_loss_stops_training_with_the_last_finite_parameters():
    data = (np.ones((8, 3), np.float32), np.zeros((8, 1), np.float32))
    common = dict(input_shape=(-1, 3), epochs=4, batch_size=4, loss=_ramp_loss,
                  optimizer=optax.sgd(0.25), progress=False)
    with pytest.raises(TrainingDiverged, match=r"non-finite \(loss nan\) at epoch 3, step 2 "
                                               r"of 2.*on_nonfinite='skip'") as e:
        fit(_ramp_model(), data, **common)
    params = e.value.result.params  # after the five finite steps: each weight 5 × 0.25
    np.testing.assert_allclose(params[1]["w"], np.full((3, 1), 1.25))
    np.testing.assert_allclose(params[1]["b"], [1.25])
    assert e.value.result.history.train_loss == [-0.5, -2.5]  # steps 1-2, 3-4: −(0+1)/2, −(2+3)/2
    skipped = fit(_ramp_model(), data, on_nonfinite="skip", **common)
    assert skipped.stats["skipped_steps"] == 3  # steps 6, 7, 8
    np.testing.assert_allclose(skipped.params[1]["b"], [1.25])
    assert skipped.history.train_loss[2] == -4.0 and np.isnan(skipped.history.train_loss[3])


def test_train_mnist_example_runs_on_small_idx_files(tmp_path):
    write_toy_mnist(tmp_path, n_train=256, n_test=64, compress=True)
    out = tmp_path / "run"
    _, history, metrics = train_mnist.main([
        "--data-dir", str(tmp_path), "--epochs", "2", "--batch-size", "64", "--no-progress",
        "--out", str(out), "--metrics-json", str(tmp_path / "m.json"), "--lr", "2e-3"])
    saved = json.loads((tmp_path / "m.json").read_text())
    assert set(saved) == {"test_accuracy", "train_seconds", "images_per_second", "epochs",
                          "compile_seconds", "seconds_per_epoch", "seed", "epochs_total",
                          "batch_size", "lr", "skipped_steps"}
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
    common = dict(input_shape=SHAPE, epochs=3, batch_size=64, lr=3e-3, progress=False)
    plain = fit(_small_model(), digits, **common).history
    blank = fit(_small_model(), digits, augment=lambda key, x: jnp.zeros_like(x),
                **common).history
    assert plain.train_accuracy[-1] > 0.6 and blank.train_accuracy[-1] < 0.2
    same = fit(_small_model(), digits, augment=lambda key, x: x, **common).history
    assert plain.test_accuracy == same.test_accuracy  # an identity changes nothing
    with pytest.raises(TypeError, match="fit: `augment` must be a function"):
        fit(_small_model(), digits, augment="flip", **common)


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
    metrics = autoencoder_digits.main(["--epochs", "3", "--out", str(tmp_path),
                                       "--no-progress"])
    assert metrics["test_mse"] < 0.8 * metrics["baseline_mse"]  # beats the mean digit
    assert metrics["history"][-1] < metrics["history"][0]
    assert (tmp_path / "reconstructions.png").stat().st_size > 2000


def test_fit_without_tqdm_prints_epochs(digits, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "tqdm", None)  # as on a plain install
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    _, _, history, stats = fit(_small_model(), digits, input_shape=SHAPE, epochs=2,
                               batch_size=64, lr=3e-3, progress=True)
    out = capsys.readouterr()
    assert "epoch 1/2: train loss" in out.out and "epoch 2/2: train loss" in out.out
    assert "test accuracy" in out.out
    assert "tqdm is not installed" in out.err
    # compilation happens before the clock: training seconds are the epochs' own
    assert stats["compile_seconds"] > 0
    assert stats["train_seconds"] == pytest.approx(sum(history.seconds))


def test_fit_takes_an_optax_optimizer_and_a_loss(digits):
    seen = []

    def loss(logits, labels):
        seen.append(logits.shape)
        return jcnn.softmax_cross_entropy(logits, labels) * 0.0  # no gradient: no learning

    history = fit(_small_model(), digits, input_shape=SHAPE, epochs=2, batch_size=64,
                  progress=False, loss=loss, optimizer=optax.sgd(0.1)).history
    assert seen and (64, 10) in seen
    assert history.test_accuracy[0] == history.test_accuracy[1]  # params never moved
    assert history.test_loss == [0.0, 0.0]  # evaluation reports the given loss
    history = fit(_small_model(), digits, input_shape=SHAPE, epochs=2, batch_size=64,
                  progress=False, optimizer=optax.sgd(0.5)).history
    assert history.test_accuracy[-1] > 0.5
    with pytest.raises(TypeError, match="fit: `optimizer` must be an optax"):
        fit(_small_model(), digits, input_shape=SHAPE, optimizer="adam")


def test_train_step_donates_params_and_optimizer_state():
    model = _small_model()
    _, params = model.init(KEY, SHAPE)
    opt = optax.adam(1e-3)
    state = opt.init(params)
    x, y = jnp.zeros((4, 8, 8, 1), jnp.float32), jnp.zeros(4, jnp.int32)
    text = make_train_step(model, opt).lower(params, state, x, y, KEY).as_text()
    donated = text.count("jax.buffer_donor") + text.count("tf.aliasing_output")
    assert donated >= len(jax.tree_util.tree_leaves((params, state)))
