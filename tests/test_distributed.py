"""fit under JAX's multi-process runtime: two processes on this machine (gloo
collectives on the CPU, a localhost coordinator) train as one process does.

Each process feeds its half of every batch; the loss history and the final
parameters (and batch-norm statistics) must equal those of the same training in
a single process to 1e-6, and only process 0 writes the checkpoint."""

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent("""
    import json, sys
    import jax
    process, processes, port, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
    if processes > 1:
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize(f"localhost:{port}", num_processes=processes,
                                   process_id=process)
    import numpy as np
    from jcnn import nn
    from jcnn.data import load_digits
    from jcnn.training import fit
    x, y, x_test, y_test = load_digits(seed=0)
    model = nn.serial(nn.Conv(4, 3, use_bias=False), nn.BatchNorm(), nn.Relu, nn.MaxPool(2),
                      nn.Flatten, nn.Dense(10))
    result = fit(model, (x[:128], y[:128], x_test[:50], y_test[:50]), input_shape=(-1, 8, 8, 1),
                 epochs=2, batch_size=32, lr=1e-2, progress=False,
                 out_dir=f"{out}/run{processes}-{process}")
    assert jax.process_count() == processes
    leaves = [np.asarray(a).tolist() for a in jax.tree_util.tree_leaves(result[:2])]
    with open(f"{out}/result{processes}-{process}.json", "w") as f:
        json.dump({"history": result.history.as_dict(), "leaves": leaves}, f)
""")


def _free_port():
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def test_two_processes_train_as_one(tmp_path):
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=str(ROOT))
    env.pop("XLA_FLAGS", None)  # one CPU device per process
    port = str(_free_port())
    runs = [(0, 1, "0"), (0, 2, port), (1, 2, port)]  # all three at once
    procs = [subprocess.Popen([sys.executable, "-c", SCRIPT, str(p), str(n), q, str(tmp_path)],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for p, n, q in runs]
    for proc in procs:
        _, err = proc.communicate(timeout=900)
        assert proc.returncode == 0, err[-3000:]
    one, *two = (json.loads((tmp_path / f"result{n}-{p}.json").read_text()) for p, n, _ in runs)
    for other in two:
        for key in ("train_loss", "test_loss", "train_accuracy", "test_accuracy"):
            np.testing.assert_allclose(other["history"][key], one["history"][key], rtol=1e-6)
        for a, b in zip(one["leaves"], other["leaves"], strict=True):
            np.testing.assert_allclose(np.array(b), np.array(a), rtol=1e-6, atol=1e-6)
    assert (tmp_path / "run1-0" / "checkpoint.npz").is_file()
    assert (tmp_path / "run2-0" / "checkpoint.npz").is_file()
    assert not (tmp_path / "run2-1").exists()  # process 1 of the pair writes nothing
