"""A convolutional autoencoder on the bundled digits: conv/pool down, conv_transpose up.

    python examples/autoencoder_digits.py --out runs/autoencoder

The encoder squeezes each 8×8 digit to a 2×2×16 code with convolutions and max
pooling; the decoder grows it back with transposed convolutions (jcnn's
``conv_transpose`` — the conv input-gradient run forward).  Trained with optax
(adam) on the mean squared error; writes ``reconstructions.png`` (inputs above,
reconstructions below) and prints the test error.  ``fit`` trains it like the
classifiers, with the images as their own targets and a squared-error loss.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import optax

from jcnn import nn
from jcnn.data import load_digits
from jcnn.training import fit, predict

INPUT_SHAPE = (-1, 8, 8, 1)


def autoencoder():
    encoder = [
        nn.Conv(16, (3, 3), padding=1, padding_mode="replicate"), nn.Relu,  # 8×8×16
        nn.MaxPool((2, 2)),                                                       # 4×4×16
        nn.Conv(16, (3, 3), padding="SAME"), nn.Relu,
        nn.MaxPool((2, 2)),                                                       # 2×2×16
    ]
    decoder = [
        nn.ConvTranspose(16, (2, 2), stride=2), nn.Relu,                      # 4×4×16
        nn.ConvTranspose(16, (2, 2), stride=2), nn.Relu,                      # 8×8×16
        nn.Conv(1, (3, 3), padding="SAME"), nn.Sigmoid,                       # 8×8×1
    ]
    return nn.serial(*encoder, *decoder)


def mse(outputs, targets):
    """Mean squared error per pixel, the autoencoder's loss."""
    return jnp.mean((outputs - targets) ** 2)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("runs/autoencoder"))
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    x_tr, _, x_te, _ = load_digits(seed=args.seed)
    model = autoencoder()
    print(nn.summary(model, INPUT_SHAPE))
    # the targets are the inputs; a constant learning rate, as adam's default
    params, _, history, _ = fit(model, (x_tr, x_tr, x_te, x_te), input_shape=INPUT_SHAPE,
                                epochs=args.epochs, batch_size=args.batch_size, seed=args.seed,
                                loss=mse, optimizer=optax.adam(args.lr),
                                progress=not args.no_progress)
    test_mse = history.test_loss
    baseline = float(np.mean((x_te - x_tr.mean(0)) ** 2))  # predicting the mean digit
    args.out.mkdir(parents=True, exist_ok=True)
    recon = predict(model, params, x_te[:10], output="logits")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 10, figsize=(12, 2.8))
    for i in range(10):
        axes[0, i].imshow(x_te[i, :, :, 0], cmap="gray_r", vmin=0, vmax=1)
        axes[1, i].imshow(recon[i, :, :, 0], cmap="gray_r", vmin=0, vmax=1)
        axes[0, i].axis("off")
        axes[1, i].axis("off")
    axes[0, 0].set_title("input", loc="left")
    axes[1, 0].set_title("reconstruction", loc="left")
    fig.suptitle(f"conv autoencoder, 2×2×16 code: test MSE {test_mse[-1]:.4f} "
                 f"(mean-digit baseline {baseline:.4f})")
    fig.savefig(args.out / "reconstructions.png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    metrics = {"test_mse": test_mse[-1], "baseline_mse": baseline, "history": test_mse}
    (args.out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    print(f"test MSE {test_mse[-1]:.4f} (mean-digit baseline {baseline:.4f}); "
          f"wrote {args.out / 'reconstructions.png'}")
    return metrics


if __name__ == "__main__":
    main()
